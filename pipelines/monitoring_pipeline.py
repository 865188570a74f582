"""The monitoring pipeline: drift + live performance -> retrain decision -> report -> retrain if triggered.

`build_monitoring_pipeline(image, ...)` returns the pipeline function;
`compile_monitoring_pipeline` writes the YAML (`pipelines/compiled/monitoring_pipeline.yaml`).
Schedule it with `civicml schedule --pipeline monitoring --cron ...`; locally it runs
through kfp.local like the training pipeline.
"""

from pathlib import Path

from kfp import dsl

from components import monitor_drift, monitor_report, monitor_retrain, monitor_trigger
from pipelines._common import compile_pipeline, task_preparer

PIPELINE_NAME = "civicml-monitoring"


def build_monitoring_pipeline(image: str, default_config_json: str, secret_name=None):
    """Build the pipeline function.

    Args:
        image: The civicml image every component runs in.
        default_config_json: RunConfig JSON used when a run gives no `config_json`.
        secret_name: Kubernetes Secret with store credentials; None for a local-only build.
    """
    c_drift = monitor_drift.component(image)
    c_trigger = monitor_trigger.component(image)
    c_report = monitor_report.component(image)
    c_retrain = monitor_retrain.component(image)

    prepare = task_preparer(secret_name, default_config_json)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="civicml: drift and live performance of the champion; retrain when the policy says so",
    )
    def monitoring_pipeline(config_json: str = default_config_json, version: str = ""):
        # `version` is the model version to watch ("" = the champion); the window is
        # `monitoring.window_source` in the config, so a schedule needs only the config.
        d = prepare(c_drift(config_json=config_json, version=version), "measure-drift")
        t = prepare(
            c_trigger(config_json=config_json, drift=d.outputs["drift"], performance=d.outputs["performance"]),
            "retrain-decision",
        )
        prepare(
            c_report(
                config_json=config_json,
                drift=d.outputs["drift"],
                performance=d.outputs["performance"],
                decision_record=t.outputs["decision_record"],
            ),
            "drift-report",
        )
        with dsl.If(t.outputs["Output"] == "retrain", name="retrain-triggered"):
            prepare(c_retrain(config_json=config_json, drift=d.outputs["drift"]), "retrain")

    return monitoring_pipeline


def compile_monitoring_pipeline(
    output: str | Path, image: str, default_config_json: str, secret_name: str | None = None
) -> Path:
    """Compile the monitoring pipeline to YAML at `output`."""
    return compile_pipeline(build_monitoring_pipeline(image, default_config_json, secret_name), output)

"""The training pipeline: validate -> tune -> train -> evaluate -> gate -> register -> deploy.

`build_training_pipeline(image, ...)` returns the pipeline function; `compile_training_pipeline`
writes the YAML. The same YAML runs on a Kubeflow cluster and locally through kfp.local.
"""

from pathlib import Path

from kfp import dsl

from components import deploy, evaluate, gate, register, train, tune, validate_data
from pipelines._common import compile_pipeline, task_preparer

PIPELINE_NAME = "civicml-training"


def build_training_pipeline(image: str, default_config_json: str, secret_name=None):
    """Build the pipeline function.

    Args:
        image: The civicml image every component runs in.
        default_config_json: RunConfig JSON used when a run gives no `config_json`.
        secret_name: Kubernetes Secret with store credentials; None for a local-only build.
    """
    c_validate = validate_data.component(image)
    c_tune = tune.component(image)
    c_train = train.component(image)
    c_evaluate = evaluate.component(image)
    c_gate = gate.component(image)
    c_register = register.component(image)
    c_deploy = deploy.component(image)

    prepare = task_preparer(secret_name, default_config_json)

    @dsl.pipeline(name=PIPELINE_NAME, description="civicml: validate, tune, train, evaluate, gate and deploy a model")
    def training_pipeline(config_json: str = default_config_json, version: str = "", started_by: str = ""):
        v = prepare(c_validate(config_json=config_json, version=version), "validate-data")
        with dsl.If(v.outputs["Output"] == "ok", name="new-data"):
            t = prepare(c_tune(config_json=config_json, data=v.outputs["data"]), "tune")
            m = prepare(
                c_train(config_json=config_json, data=v.outputs["data"], best_params=t.outputs["best_params"]), "train"
            )
            e = prepare(
                c_evaluate(config_json=config_json, data=v.outputs["data"], model=m.outputs["model"]), "evaluate"
            )
            g = prepare(c_gate(config_json=config_json, evaluation=e.outputs["evaluation"]), "gate")
            r = prepare(
                c_register(
                    config_json=config_json,
                    data=v.outputs["data"],
                    best_params=t.outputs["best_params"],
                    model=m.outputs["model"],
                    evaluation=e.outputs["evaluation"],
                    decision_record=g.outputs["decision_record"],
                    figures=e.outputs["figures"],
                    started_by=started_by,
                ),
                "register",
            )
            with dsl.If(g.outputs["Output"] == "deploy", name="gate-passed"):
                prepare(c_deploy(config_json=config_json, version=r.outputs["Output"]), "deploy")

    return training_pipeline


def compile_training_pipeline(
    output: str | Path, image: str, default_config_json: str, secret_name: str | None = None
) -> Path:
    """Compile the training pipeline to YAML at `output`."""
    return compile_pipeline(build_training_pipeline(image, default_config_json, secret_name), output)

"""Component: the HTML drift report (per-feature charts with alt text and tables)."""

from kfp.dsl import HTML, Artifact, Input, Output

from components._factory import make_component


def monitor_report(
    config_json: str,
    drift: Input[Artifact],
    performance: Input[Artifact],
    decision_record: Input[Artifact],
    report: Output[HTML],
) -> None:
    """Render the drift report: per-feature charts with alt text and tables, and the decision.

    Args:
        config_json: The run config as JSON (`RunConfig`); every step of a run gets the same one.
        drift: The drift document written by `monitor-drift`.
        performance: The live-performance document written by `monitor-drift`.
        decision_record: The retrain decision written by `monitor-trigger`.

    Returns:
        report: The drift report as an HTML page for the KFP UI.
    """
    from civicml.steps.host import run_step

    run_step("monitor_report", config_json, drift.path, performance.path, decision_record.path, report.path)


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(monitor_report, image)

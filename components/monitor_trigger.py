"""Component: apply the retrain policy; the single output is the decision."""

from kfp.dsl import Artifact, Input, Output

from components._factory import make_component


def monitor_trigger(
    config_json: str, drift: Input[Artifact], performance: Input[Artifact], decision_record: Output[Artifact]
) -> str:
    """Apply the retrain policy to the measurements (audited as `retrain_decision`).

    The decision is the single output because kfp.local 2.17 resolves `dsl.If` conditions
    only on a task's single `Output`; the rules travel in `decision_record`.

    Args:
        config_json: The run config as JSON (`RunConfig`); every step of a run gets the same one.
        drift: The drift document written by `monitor-drift`.
        performance: The live-performance document written by `monitor-drift`.

    Returns:
        decision_record: The decision with the rules that made it (JSON).
        Output: `retrain` or `no_retrain`; the pipeline retrains only on `retrain`.
    """
    from civicml.steps.host import run_step

    return run_step("monitor_trigger", config_json, drift.path, performance.path, decision_record.path)["decision"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(monitor_trigger, image)

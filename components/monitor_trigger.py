"""Component: apply the retrain policy; the single output is the decision."""

from kfp.dsl import Artifact, Input, Output

from components._factory import make_component


def monitor_trigger(
    config_json: str, drift: Input[Artifact], performance: Input[Artifact], decision_record: Output[Artifact]
) -> str:
    """Decide `retrain` or `no_retrain` (audited as `retrain_decision`).

    The decision is the single output because kfp.local 2.17 resolves `dsl.If` conditions
    only on a task's single `Output`; the rules travel in `decision_record`.
    """
    from civicml import steps

    return steps.monitor_trigger(config_json, drift.path, performance.path, decision_record.path)["decision"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(monitor_trigger, image)

"""Component: apply the policy gate."""

from kfp.dsl import Artifact, Input, Output

from components._factory import make_component


def gate(config_json: str, evaluation: Input[Artifact], decision_record: Output[Artifact]) -> str:
    """Decide deploy / reject / pending_approval with every rule's threshold and value."""
    from civicml import steps

    return steps.gate(config_json, evaluation.path, decision_record.path)["decision"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(gate, image)

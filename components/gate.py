"""Component: apply the policy gate."""

from kfp.dsl import Artifact, Input, Output

from components._factory import make_component


def gate(config_json: str, evaluation: Input[Artifact], decision_record: Output[Artifact]) -> str:
    """Apply the promotion policy to the evaluation: deploy, reject or wait for a person.

    Every rule (minimum metrics, fairness, skill over the baseline, non-inferiority to the
    champion) is recorded with its threshold, value and verdict. Audited as `gate_decided`.

    Args:
        config_json: The run config as JSON (`RunConfig`); every step of a run gets the same one.
        evaluation: The evaluation document written by `evaluate`.

    Returns:
        decision_record: The decision with every rule (JSON), stored with the version.
        Output: `deploy`, `reject` or `pending_approval`; the pipeline deploys only on `deploy`.
    """
    from civicml.steps.host import run_step

    return run_step("gate", config_json, evaluation.path, decision_record.path)["decision"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(gate, image)

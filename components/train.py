"""Component: train the final model with the best parameters."""

from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components._factory import make_component


def train(config_json: str, data: Input[Dataset], best_params: Input[Artifact], model: Output[Model]) -> str:
    """Fit the final model deterministically and save it without pickle.

    The model is fitted on the training split with the tuned parameters; for binary
    classification the decision threshold is chosen on the validation split. Audited as
    `model_trained`.

    Args:
        config_json: The run config as JSON (`RunConfig`); every step of a run gets the same one.
        data: The splits and feature spec written by `validate-data`.
        best_params: The tuning result written by `tune` (its `best_params`).

    Returns:
        model: The saved model files and the feature spec (no pickle).
        Output: sha256 over the model's files, in order.
    """
    from civicml.steps.host import run_step

    return run_step("train", config_json, data.path, best_params.path, model.path)["model_sha256"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(train, image)

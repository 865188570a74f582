"""Component: train the final model with the best parameters."""

from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components._factory import make_component


def train(config_json: str, data: Input[Dataset], best_params: Input[Artifact], model: Output[Model]) -> str:
    """Fit the model deterministically and save it without pickle; returns its sha256."""
    from civicml import steps

    return steps.train(config_json, data.path, best_params.path, model.path)["model_sha256"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(train, image)

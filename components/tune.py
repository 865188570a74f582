"""Component: hyperparameter search (Optuna locally, Katib on a cluster)."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from components._factory import make_component


def tune(config_json: str, data: Input[Dataset], best_params: Output[Artifact], trials: Output[HTML]) -> float:
    """Search the configured space; write the best parameters and the trials table."""
    from civicml import steps

    return steps.tune(config_json, data.path, best_params.path, trials.path)["best_value"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(tune, image)

"""Component: hyperparameter search (Optuna locally, Katib on a cluster)."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from components._factory import make_component


def tune(config_json: str, data: Input[Dataset], best_params: Output[Artifact], trials: Output[HTML]) -> float:
    """Search the configured hyperparameter space (Optuna locally, Katib on a cluster).

    Trials train on the training split and are scored on the validation split with
    `tuning.objective_metric`. Audited as `tuning_done`.

    Args:
        config_json: The run config as JSON (`RunConfig`); every step of a run gets the same one.
        data: The splits and feature spec written by `validate-data`.

    Returns:
        best_params: The tuning result (JSON): best parameters, best value and every trial.
        trials: The trials table as an HTML page.
        Output: The best objective value.
    """
    from civicml.steps.host import run_step

    return run_step("tune", config_json, data.path, best_params.path, trials.path)["best_value"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(tune, image)

"""Component: retrain on the new data (local training run, or a run submitted to KFP)."""

from kfp.dsl import Artifact, Input

from components._factory import make_component


def monitor_retrain(config_json: str, drift: Input[Artifact]) -> str:
    """Start the training pipeline on the window's data: a local run, or a run submitted to KFP.

    On KFP it submits the compiled training pipeline that ships in the image. A data-batch
    window trains on that batch; a serving-log window (no labels) trains on `data.source`.
    Audited as `retrain_started` / `retrain_finished`.

    Args:
        config_json: The run config as JSON (`RunConfig`); every step of a run gets the same one.
        drift: The drift document written by `monitor-drift` (names the window's source).

    Returns:
        Output: JSON of what was started: target (`kfp` or `local`), run id or version, source.
    """
    import json

    from civicml.steps.host import run_step

    return json.dumps(run_step("monitor_retrain", config_json, drift.path))


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(monitor_retrain, image)

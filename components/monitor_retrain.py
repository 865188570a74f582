"""Component: retrain on the new data (local training run, or a run submitted to KFP)."""

from kfp.dsl import Artifact, Input

from components._factory import make_component


def monitor_retrain(config_json: str, drift: Input[Artifact]) -> str:
    """Start the training pipeline on the window's data; returns what was started (JSON)."""
    import json

    from civicml import steps

    return json.dumps(steps.monitor_retrain(config_json, drift.path))


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(monitor_retrain, image)

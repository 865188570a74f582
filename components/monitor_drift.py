"""Component: drift of a window against a version's reference profile, and live performance."""

from kfp.dsl import Artifact, Output

from components._factory import make_component


def monitor_drift(config_json: str, version: str, drift: Output[Artifact], performance: Output[Artifact]) -> str:
    """Measure drift (PSI, KS / chi-square per feature) and live performance; returns the version compared.

    The window comes from `monitoring.window_source` in the config (serving log or a data batch).
    """
    from civicml import steps

    return steps.monitor_drift(config_json, version, drift.path, performance.path)["version"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(monitor_drift, image)

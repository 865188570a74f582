"""Component: drift of a window against a version's reference profile, and live performance."""

from kfp.dsl import Artifact, Output

from components._factory import make_component


def monitor_drift(config_json: str, version: str, drift: Output[Artifact], performance: Output[Artifact]) -> str:
    """Measure drift of a window against a version's reference profile, and its live performance.

    Drift is PSI and a KS / chi-square test per feature. The window comes from
    `monitoring.window_source` in the config: the model server's prediction log (last
    `monitoring.window_days`) or a new data batch.

    Args:
        config_json: The run config as JSON (`RunConfig`); every step of a run gets the same one.
        version: The version to compare with; empty means the current champion.

    Returns:
        drift: The drift document (JSON): per-feature statistics, summary and messages.
        performance: Live performance on served predictions that have feedback (JSON).
        Output: The version that was compared.
    """
    from civicml.steps.host import run_step

    return run_step("monitor_drift", config_json, version, drift.path, performance.path)["version"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(monitor_drift, image)

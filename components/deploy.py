"""Component: deploy an approved version (local alias or Kubernetes Deployment)."""

from components._factory import make_component


def deploy(config_json: str, version: str) -> str:
    """Promote the registered version with the configured backend (`deploy.target`, `deploy.mode`).

    Runs only when the gate decided `deploy`. Locally the `champion` alias moves (or the version
    becomes the `challenger`); on Kubernetes the model server is rolled out first. The move is a
    compare-and-swap on the champion the version was evaluated against, and it is audited.

    Args:
        config_json: The run config as JSON (`RunConfig`); every step of a run gets the same one.
        version: The version id `register` committed.

    Returns:
        Output: JSON of what moved: the alias, the version and the previous holder.
    """
    import json

    from civicml.steps.host import run_step

    return json.dumps(run_step("deploy", config_json, version))


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(deploy, image)

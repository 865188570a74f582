"""Component: deploy an approved version (local alias or Kubernetes Deployment)."""

from components._factory import make_component


def deploy(config_json: str, version: str) -> str:
    """Promote/deploy `version` with the configured backend; returns where it went."""
    import json

    from civicml import steps

    return json.dumps(steps.deploy(config_json, version))


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(deploy, image)

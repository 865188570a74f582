"""Kubernetes deploy backend: Deployment + Service, server-side applied, rollout watched with a
timeout, rolled back to the previous champion when it fails.

Three modules, one concern each (issue 15); this one keeps the names callers import:
    civicml.deploy.objects  the objects, as pure builders (`build_objects`, `to_yaml`)
    civicml.deploy.client   `KubeClient`, the only code that talks to the API server
    civicml.deploy.rollout  `deploy_version`: apply, wait, roll back, promote
"""

from civicml.deploy.client import _PATHS, APPLY_CONTENT_TYPE, K8S_PERMISSIONS, ApiClientLike, KubeClient
from civicml.deploy.objects import (
    CONFIG_ANNOTATION,
    CONFIG_DIR,
    FIELD_MANAGER,
    ROUTING_ANNOTATION,
    DeployError,
    build_objects,
    ingress_policy,
    owned_object_names,
    pinned_documents,
    server_auth_env,
    to_yaml,
)
from civicml.deploy.rollout import deploy_version, rollout_state, wait_rollout

__all__ = [
    "APPLY_CONTENT_TYPE",
    "CONFIG_ANNOTATION",
    "CONFIG_DIR",
    "FIELD_MANAGER",
    "K8S_PERMISSIONS",
    "ROUTING_ANNOTATION",
    "_PATHS",
    "ApiClientLike",
    "DeployError",
    "KubeClient",
    "build_objects",
    "deploy_version",
    "ingress_policy",
    "owned_object_names",
    "pinned_documents",
    "rollout_state",
    "server_auth_env",
    "to_yaml",
    "wait_rollout",
]

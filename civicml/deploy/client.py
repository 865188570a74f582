"""The one piece of civicml's deploy backend that talks to the API server: two raw REST calls.

Server-side apply (PATCH with `application/apply-patch+yaml`, fieldManager=civicml, force) and reading a
Deployment with its status, through the `kubernetes` client's `ApiClient.call_api`.
"""

from __future__ import annotations

from typing import Any, Protocol

from civicml.deploy.objects import FIELD_MANAGER, DeployError

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"

#: Exactly the (apiGroup, resource, verbs) this module needs, on the objects named by
#: `deploy.name` only (role.yaml lists them as resourceNames). Server-side apply is a
#: PATCH, but when the object does not exist yet the API server also authorizes it as
#: "create" with the object's name, so resourceNames hold for create too. "get" on
#: deployments reads the rollout status; nothing here reads Services (a rollback rebuilds
#: the previous objects from the registry instead).
K8S_PERMISSIONS: list[tuple[str, str, tuple[str, ...]]] = [
    ("apps", "deployments", ("create", "get", "patch")),
    ("", "services", ("create", "patch")),
    # Who may call the server (deploy.client_namespaces) is part of what civicml deploys.
    ("networking.k8s.io", "networkpolicies", ("create", "patch")),
]

_PATHS = {
    ("v1", "Service"): "/api/v1/namespaces/{namespace}/services/{name}",
    ("apps/v1", "Deployment"): "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
    ): "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}",
}


class ApiClientLike(Protocol):
    """The one method of `kubernetes.client.ApiClient` this module uses."""

    def call_api(self, resource_path: str, method: str, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        ...


class KubeClient:
    """Thin wrapper over `kubernetes.client.ApiClient.call_api`: server-side apply and read a Deployment."""

    def __init__(self, api_client: ApiClientLike | None = None):
        if api_client is None:
            from civicml.deploy.cluster import api_client as default_api_client

            api_client = default_api_client()
        self.api = api_client

    @staticmethod
    def path_of(obj: dict[str, Any]) -> str:
        """REST path of an object (only the kinds this module builds)."""
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key not in _PATHS:
            raise DeployError(f"cannot apply {key}: only {sorted(k for _, k in _PATHS)} are supported")
        return _PATHS[key].format(namespace=obj["metadata"]["namespace"], name=obj["metadata"]["name"])

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply `obj` (fieldManager=civicml, force) and return the stored object."""
        return self.api.call_api(
            self.path_of(obj),
            "PATCH",
            query_params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            header_params={"Content-Type": APPLY_CONTENT_TYPE, "Accept": "application/json"},
            body=obj,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        """The Deployment with its status."""
        path = _PATHS[("apps/v1", "Deployment")].format(namespace=namespace, name=name)
        return self.api.call_api(
            path,
            "GET",
            header_params={"Accept": "application/json"},
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )

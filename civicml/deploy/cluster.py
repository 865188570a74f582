"""The one way civicml connects to a Kubernetes API server, and one-line explanations of failures.

Every command that needs a cluster (`tune --backend katib`, `deploy --target kubernetes`,
`rollback`, `doctor`) builds its client with `api_client()`; any failure on the way
(no kubeconfig, an unreachable server, 401/403/404) becomes a `ClusterError` whose
message is one line saying what happened and what to do, so the CLI never shows a
traceback for a missing or unreachable cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Pod Security admission's namespace label (k8s.io/pod-security-admission api/constants.go).
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"


class ClusterError(RuntimeError):
    """The cluster could not be reached or refused a request; the message is one actionable line."""


def api_client() -> Any:
    """A `kubernetes.client.ApiClient` from the in-cluster config, else the kubeconfig.

    Raises:
        ClusterError: neither is available or the kubeconfig is unusable.
    """
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        path = os.environ.get("KUBECONFIG") or "~/.kube/config"
        try:
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
        except (config.ConfigException, OSError, TypeError, ValueError) as err:
            raise ClusterError(
                f"no Kubernetes cluster configured: not running in a pod and no usable kubeconfig at {path} "
                f"({_first_line(err)}); set KUBECONFIG or `kubectl config use-context NAME`"
            ) from None
    return client.ApiClient()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


def _server_message(err: BaseException) -> str:
    """The `message` of the API server's Status body (for a 403 it names the user, verb and resource:
    `User "system:serviceaccount:ns:sa" cannot patch resource "deployments" in API group "apps" ...`).

    upstream: kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go
    (ForbiddenStatusError) @ v1.36.3
    """
    import json

    try:
        message = json.loads(getattr(err, "body", None) or "{}").get("message", "")
    except (ValueError, AttributeError):
        return ""
    return " ".join(str(message).split())[:300]


def explain(err: BaseException, action: str = "talk to the Kubernetes API") -> str:
    """One line for an error from the kubernetes client (HTTP status or connection failure)."""
    status = getattr(err, "status", None)
    if status is not None and status != 0:
        reason = getattr(err, "reason", "") or ""
        said = _server_message(err)
        reason = f"{reason} ({said})" if said else reason
        hint = {
            401: "the credentials were rejected: refresh your kubeconfig token",
            403: "forbidden: the identity lacks RBAC for this (see `civicml doctor` and manifests/base/role.yaml)",
            404: "not found: is the namespace there and the API (CRD) installed?",
        }.get(status, "see the API server's message")
        return f"could not {action}: HTTP {status} {reason}; {hint}"
    return (
        f"could not {action}: the API server is unreachable ({type(err).__name__}: {_first_line(err)}); "
        "check the kube context (`kubectl cluster-info`) and the network"
    )


def is_cluster_failure(err: BaseException) -> bool:
    """True for errors that mean "the cluster is missing, unreachable or said no" (not a civicml bug)."""
    from kubernetes.client.exceptions import ApiException, OpenApiException
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError

    return isinstance(err, (ApiException, OpenApiException, ConfigException, HTTPError, ConnectionError))


def namespace_labels(core: Any, namespace: str) -> dict[str, str] | None:
    """The namespace's labels, or None when this identity may not read namespaces (403).

    Raises:
        ClusterError: the namespace does not exist, or the API server is unreachable.
    """
    from kubernetes.client.exceptions import ApiException

    try:
        ns = core.read_namespace(namespace)
    except ApiException as err:
        if err.status == 403:
            return None
        if err.status == 404:
            raise ClusterError(f"namespace {namespace} does not exist; create it from manifests/base") from None
        raise ClusterError(explain(err, f"read namespace {namespace}")) from None
    except Exception as err:
        if is_cluster_failure(err):
            raise ClusterError(explain(err, f"read namespace {namespace}")) from None
        raise
    labels = ns.metadata.labels if hasattr(ns, "metadata") else (ns.get("metadata") or {}).get("labels")
    return dict(labels or {})


def require_cluster(client: Any = None, timeout: float = 10.0) -> str:
    """Fail fast, in one line, when there is no usable cluster; returns the server's version.

    Raises:
        ClusterError: no kubeconfig, or the API server cannot be reached within `timeout` seconds.
    """
    from kubernetes import client as k8s

    try:
        info = k8s.VersionApi(client or api_client()).get_code(_request_timeout=timeout)
    except ClusterError:
        raise
    except Exception as err:
        if is_cluster_failure(err):
            raise ClusterError(explain(err, "reach the Kubernetes API server")) from None
        raise
    return info.git_version


def true_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An object's status conditions that hold (`status: "True"`), by type."""
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}


@dataclass(frozen=True)
class CustomObject:
    """One namespaced custom object (a Katib Experiment, a Trainer TrainJob) and the calls civicml makes on it.

    Each call turns the API's refusal into the caller's own error with `error(action, err)`, `action`
    being "create", "read" or "delete".

    Args:
        api: A `kubernetes.client.CustomObjectsApi` (or a stand-in with the same methods).
        group, version, plural: The resource.
        namespace, name: The object.
        error: `(action, ApiException) -> Exception` to raise.
    """

    api: Any
    group: str
    version: str
    plural: str
    namespace: str
    name: str
    error: Callable[[str, Exception], Exception]

    def create(self, body: dict[str, Any], on_conflict: Callable[[Exception], None] | None = None) -> None:
        """Create the object from `body`; on HTTP 409 call `on_conflict(err)` instead of failing, when given."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.create_namespaced_custom_object(self.group, self.version, self.namespace, self.plural, body)
        except ApiException as err:
            if on_conflict is None or getattr(err, "status", None) != 409:
                raise self.error("create", err) from None
            on_conflict(err)

    def read(self) -> dict[str, Any]:
        """The object as the API server has it now."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.get_namespaced_custom_object(
                self.group, self.version, self.namespace, self.plural, self.name
            )
        except ApiException as err:
            raise self.error("read", err) from None

    def delete(self) -> None:
        """Delete the object; one that is already gone (404) is fine."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_namespaced_custom_object(self.group, self.version, self.namespace, self.plural, self.name)
        except ApiException as err:
            if getattr(err, "status", None) != 404:
                raise self.error("delete", err) from None

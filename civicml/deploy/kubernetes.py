"""Kubernetes deploy backend: Deployment + Service, server-side applied, rollout watched with a
timeout, rolled back to the previous champion when it fails.

The versions a rollout serves (the routing document) and the server's config are pinned in
the pod template itself, as annotations the pods read back through a downward-API volume.
A ReplicaSet therefore carries exactly what its pods serve, and `kubectl rollout undo`
(the runbook's emergency path) brings back the previous version, not the newest one: a
shared, fixed-name ConfigMap would have been rewritten by the newer rollout. It also means
the pipeline runner needs no write access to any ConfigMap (manifests/base/role.yaml).

The objects are plain dicts (the camelCase JSON the API server takes), built by
`build_objects` so they can be printed (`--dry-run`), validated against the official
schemas and checked against the Pod Security Standard "restricted" profile without a
cluster. `KubeClient` is the only code that talks to the API server: two raw REST
calls through the `kubernetes` client (apply, read a Deployment).

The registry alias moves only after the rollout has succeeded; on failure the
previous champion's objects are re-applied and the alias stays where it was.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from civicml.config import RunConfig
from civicml.deploy.security import (
    restricted_container_security_context,
    restricted_pod_security_context,
    restricted_violations,
)
from civicml.governance.audit import AuditLog
from civicml.serving.routing import (
    CHALLENGER,
    CHAMPION,
    ROUTING_FILE_ENV,
    Routing,
    current_routing,
)
from civicml.storage.registry import ANY, Registry, RegistryError
from civicml.storage.s3_settings import store_secret_env
from civicml.storage.store import resolve_store_uri

FIELD_MANAGER = "civicml"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
CONFIG_DIR = "/etc/civicml"

#: Pod-template annotations holding the documents the pods serve (read through the downward API).
ROUTING_ANNOTATION = "civicml.io/routing"
CONFIG_ANNOTATION = "civicml.io/config"

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


class DeployError(RuntimeError):
    """A Kubernetes deploy failed (the message says whether it was rolled back)."""


def _labels(cfg: RunConfig) -> dict[str, str]:
    # The selector label is immutable on a Deployment: never change it for an existing install.
    return {
        "app.kubernetes.io/name": cfg.deploy.name,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/part-of": "civicml",
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
    }


def owned_object_names(cfg: RunConfig) -> dict[str, str]:
    """resource -> the one object name this module writes (the Role's resourceNames)."""
    return {"deployments": cfg.deploy.name, "services": cfg.deploy.name, "networkpolicies": cfg.deploy.name}


def pinned_documents(deployment: dict[str, Any]) -> tuple[Routing, str]:
    """The routing and the config JSON a Deployment's (or ReplicaSet's) pod template serves."""
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    doc = json.loads(annotations[ROUTING_ANNOTATION])
    return Routing(**doc), annotations[CONFIG_ANNOTATION]


def ingress_policy(cfg: RunConfig, labels: dict[str, str]) -> dict[str, Any]:
    """Who may reach the server's port: pods in its own namespace and in `deploy.client_namespaces`."""
    d = cfg.deploy
    sources: list[dict[str, Any]] = [{"podSelector": {}}]
    sources += [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}} for ns in d.client_namespaces
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": d.name, "namespace": d.namespace, "labels": labels},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": d.name}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": sources, "ports": [{"protocol": "TCP", "port": d.port}]}],
        },
    }


def build_objects(cfg: RunConfig, routing: Routing, store_uri: str | None = None) -> list[dict[str, Any]]:
    """The NetworkPolicy, Service and Deployment that serve `routing` (apply in this order).

    `civicml deploy` is the one owner of these objects (the kustomize base ships none of
    them), so two appliers never roll out a hybrid of their fields.

    Args:
        cfg: Run config (`deploy` and `storage` sections are used).
        routing: Champion version and, optionally, challenger version and share.
        store_uri: Store the pods read models from; defaults to `CIVICML_STORE_URI` / `storage.uri`.

    Raises:
        DeployError: the pod spec would not pass the "restricted" Pod Security Standard.
    """
    d = cfg.deploy
    labels = _labels(cfg)
    selector = {"app.kubernetes.io/name": d.name}
    uri = store_uri or resolve_store_uri(cfg.storage.uri)
    data = {"routing.json": routing.to_json(), "civicml.yaml": cfg.to_json()}
    data_hash = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": d.name, "namespace": d.namespace, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    # The server's own credential: read the registry, write only its logs/ (docs/run-on-kubeflow.md).
    secret = cfg.storage.server_secret_name
    container = {
        "name": "server",
        "image": d.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["civicml"],
        "args": ["serve", "--config", f"{CONFIG_DIR}/civicml.yaml", "--host", "0.0.0.0", "--port", str(d.port)],
        "ports": [{"name": "http", "containerPort": d.port, "protocol": "TCP"}],
        # Endpoint/TLS settings of the store, shared with the pipeline steps (manifests/base/configmap.yaml).
        "envFrom": [{"configMapRef": {"name": "civicml-settings", "optional": True}}],
        "env": [
            {"name": "CIVICML_STORE_URI", "value": uri},
            {"name": ROUTING_FILE_ENV, "value": f"{CONFIG_DIR}/routing.json"},
            *store_secret_env(secret),
            {"name": "HOME", "value": "/tmp"},
            {"name": "TMPDIR", "value": "/tmp"},
            *server_auth_env(cfg),
        ],
        "readinessProbe": {
            "httpGet": {"path": "/v2/health/ready", "port": "http"},
            "initialDelaySeconds": 2,
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        # Loading models from the store can take a while; liveness starts only after this succeeds.
        "startupProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 60,
        },
        "resources": {
            "requests": {"cpu": d.cpu, "memory": d.memory},
            "limits": {"cpu": d.cpu_limit, "memory": d.memory_limit},
        },
        "securityContext": restricted_container_security_context(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec = {
        "serviceAccountName": d.name,
        # The server never calls the Kubernetes API.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": restricted_pod_security_context(),
        # Long enough for uvicorn to finish in-flight requests and flush the prediction log.
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        # Replicas on one node are one node failure from an outage.
        **(
            {
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector},
                    }
                ]
            }
            if d.replicas > 1
            else {}
        ),
        "volumes": [
            # The pod's own annotations, as files: what this ReplicaSet was created to serve.
            {
                "name": "config",
                "downwardAPI": {
                    "items": [
                        {
                            "path": "routing.json",
                            "fieldRef": {"fieldPath": f"metadata.annotations['{ROUTING_ANNOTATION}']"},
                        },
                        {
                            "path": "civicml.yaml",
                            "fieldRef": {"fieldPath": f"metadata.annotations['{CONFIG_ANNOTATION}']"},
                        },
                    ]
                },
            },
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        ],
    }
    violations = restricted_violations(pod_spec)
    if violations:
        raise DeployError(
            "model-server pod would be refused by the restricted Pod Security Standard: " + "; ".join(violations)
        )
    annotations = {
        "civicml.io/champion": routing.champion or "",
        "civicml.io/challenger": routing.challenger or "",
        "civicml.io/challenger-share": f"{routing.effective_share:g}",
        "civicml.io/config-sha256": data_hash,
    }
    # The documents themselves live in the pod template only: a new routing is a new
    # ReplicaSet, and rolling back the Deployment rolls back what its pods serve.
    template_annotations = {
        **annotations,
        ROUTING_ANNOTATION: data["routing.json"],
        CONFIG_ANNOTATION: data["civicml.yaml"],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": d.name, "namespace": d.namespace, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": d.replicas,
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": d.rollout_timeout_seconds,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels, "annotations": template_annotations}, "spec": pod_spec},
        },
    }
    return [ingress_policy(cfg, labels), service, deployment]


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """The objects as one multi-document YAML stream (what `--dry-run` prints)."""
    import yaml

    return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objects)


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


def rollout_state(dep: dict[str, Any]) -> tuple[str, str]:
    """Classify a Deployment like `kubectl rollout status`: ('done'|'progressing'|'failed', detail)."""
    meta, spec, status = dep.get("metadata", {}), dep.get("spec", {}), dep.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return "progressing", "waiting for the controller to observe the new generation"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return "failed", f"progress deadline exceeded: {cond.get('message', '')}"
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    if updated < want:
        return "progressing", f"{updated} of {want} replicas updated"
    if status.get("replicas", 0) > updated:
        return "progressing", f"{status.get('replicas', 0) - updated} old replicas pending termination"
    available = status.get("availableReplicas", 0)
    if available < updated:
        return "progressing", f"{available} of {updated} updated replicas available"
    return "done", f"{available} replicas available"


def wait_rollout(
    client: KubeClient,
    namespace: str,
    name: str,
    timeout: float,
    poll: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll the Deployment until it is rolled out.

    Raises:
        DeployError: the rollout failed or did not finish within `timeout` seconds.
    """
    deadline = clock() + timeout
    while True:
        state, detail = rollout_state(client.read_deployment(namespace, name))
        if state == "done":
            return detail
        if state == "failed":
            raise DeployError(f"rollout of deployment {namespace}/{name} failed: {detail}")
        if clock() >= deadline:
            raise DeployError(f"rollout of deployment {namespace}/{name} did not finish within {timeout:g}s: {detail}")
        sleep(poll)


def _target_routing(cfg: RunConfig, registry: Registry, version: str, mode: str) -> tuple[Routing, str]:
    champion = registry.get_alias(CHAMPION)
    if mode == "challenger" and champion and champion != version:
        return Routing(
            champion=champion, challenger=version, challenger_share=cfg.deploy.challenger_traffic
        ), CHALLENGER
    return Routing(champion=version), CHAMPION


def deploy_version(
    cfg: RunConfig,
    registry: Registry,
    version: str,
    *,
    client: KubeClient | None = None,
    dry_run: bool = False,
    mode: str | None = None,
    by: str = "pipeline",
    expected_champion: Any = ANY,
    reason: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Roll `version` out on Kubernetes, as champion or (mode `challenger`) beside the champion.

    The alias moves, the A/B split and the audit records are the promotion function's
    (`civicml.governance.promotion.promote`); this module hands it the rollout.

    Args:
        cfg: Run config (`deploy`, `storage`).
        registry: The registry holding `version`.
        version: A committed, approved model version.
        client: API edge; a real `KubeClient` is built from the in-cluster or kube config when None.
        dry_run: Only build the objects; nothing is applied and no alias moves.
        mode: `replace` or `challenger`; defaults to `deploy.mode`.
        by: Who deploys, for the audit log.
        expected_champion: Compare-and-swap guard passed to the promotion.
        reason: Why, for the audit log.

    Returns:
        Summary with the applied objects, the alias moved and the rollout detail.

    Raises:
        DeployError: the rollout failed; the previous champion was re-applied (when there is one)
            and no alias moved.
        RegistryError: the version does not exist, is not approved or fails its integrity check.
    """
    from civicml.governance.promotion import check_promotable, promote

    mode = mode or cfg.deploy.mode
    problems = registry.verify(version)
    if problems:
        raise RegistryError(f"refusing to deploy {version}: " + "; ".join(problems))
    routing, alias = _target_routing(cfg, registry, version, mode)
    uri = resolve_store_uri(cfg.storage.uri)
    objects = build_objects(cfg, routing, uri)
    if dry_run:
        return {"target": "kubernetes", "dry_run": True, "alias": alias, "version": version, "objects": objects}
    if not uri.startswith("s3://"):
        raise DeployError(
            f"the model server pods cannot read the store {uri!r}: a Kubernetes deploy needs an object store "
            "(storage.uri or CIVICML_STORE_URI = s3://bucket/prefix)"
        )
    check_promotable(registry, version, AuditLog(registry.store))  # before touching the cluster
    client = client or KubeClient()
    ns, name = cfg.deploy.namespace, cfg.deploy.name

    def rollout(_: Routing) -> str:
        applied = 0
        try:
            for obj in objects:
                client.apply(obj)
                applied += 1
            return wait_rollout(
                client, ns, name, cfg.deploy.rollout_timeout_seconds, cfg.deploy.poll_seconds, sleep, clock
            )
        except Exception as err:  # noqa: BLE001 - any failure after the first apply (API error, timeout) must restore
            why = _one_line(err, f"roll out {ns}/{name}")
            if applied == 0:
                # Refused before anything changed (e.g. a 403): re-applying the previous champion would
                # be refused the same way and only bury the first error.
                AuditLog(registry.store).append(
                    "k8s_rollout_failed", {"version": version, "error": why, "rolled_back_to": None}, actor=by
                )
                raise DeployError(f"{why}; nothing was applied; the registry alias {alias!r} was not moved") from None
            rolled_back = _rollback(cfg, registry, client, version, why, by, sleep, clock)
            raise DeployError(f"{why}; {rolled_back}; the registry alias {alias!r} was not moved") from None

    result = promote(
        registry,
        version,
        by=by,
        reason=f"{reason or 'deploy'}; kubernetes rollout of {ns}/{name}",
        role=alias,
        share=routing.challenger_share,
        expected_champion=expected_champion,
        deployer=rollout,
        target="kubernetes",
    )
    AuditLog(registry.store).append(
        "k8s_deployed",
        {
            "namespace": ns,
            "name": name,
            "version": version,
            "alias": alias,
            "challenger_share": routing.effective_share,
            "rollout": result["rollout"],
        },
        actor=by,
    )
    return {**result, "objects": objects}


def _one_line(err: Exception, action: str) -> str:
    """A cluster error as one line (an ApiException's str carries headers and body); others as they are."""
    from civicml.deploy.cluster import explain, is_cluster_failure

    return explain(err, action) if is_cluster_failure(err) else str(err)


def _rollback(
    cfg: RunConfig,
    registry: Registry,
    client: KubeClient,
    failed: str,
    why: str,
    by: str,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> str:
    previous = current_routing(registry)
    audit = AuditLog(registry.store)
    if not previous.champion:
        audit.append("k8s_rollout_failed", {"version": failed, "error": why, "rolled_back_to": None}, actor=by)
        return "there is no previous champion to roll back to"
    try:
        for obj in build_objects(cfg, previous):
            client.apply(obj)
        detail = wait_rollout(
            client,
            cfg.deploy.namespace,
            cfg.deploy.name,
            cfg.deploy.rollout_timeout_seconds,
            cfg.deploy.poll_seconds,
            sleep,
            clock,
        )
    except Exception as err:  # noqa: BLE001 - report the failed rollback instead of masking the first error
        err_text = _one_line(err, "roll back")
        audit.append(
            "k8s_rollout_failed",
            {"version": failed, "error": why, "rollback_error": err_text, "rolled_back_to": previous.champion},
            actor=by,
        )
        return f"rolling back to {previous.champion} ALSO failed ({err_text}); check the cluster now"
    audit.append(
        "k8s_rollback",
        {
            "version": failed,
            "error": why,
            "rolled_back_to": previous.champion,
            "challenger": previous.challenger,
            "rollout": detail,
        },
        actor=by,
    )
    return f"rolled back to the previous champion {previous.champion}"


def server_auth_env(cfg: RunConfig) -> list[dict[str, Any]]:
    """The server's tokens as env vars from `serving.auth_secret_name` (never in the config or the manifest).

    Optional references: without the Secret the pod still starts, and a token-protected route answers
    503 naming the missing variable instead of blocking the rollout.
    """
    sv = cfg.serving
    names = [a.token_env for a in (sv.predict_auth, sv.feedback_auth) if a.mode == "token"] + [sv.request_id_key_env]
    return [
        {"name": n, "valueFrom": {"secretKeyRef": {"name": sv.auth_secret_name, "key": n, "optional": True}}}
        for n in dict.fromkeys(names)
    ]

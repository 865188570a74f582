"""The Kubernetes objects that serve a model: NetworkPolicy, Service and Deployment, as pure builders.

The objects are plain dicts (the camelCase JSON the API server takes), so they can be printed
(`--dry-run`), validated against the official schemas and checked against the Pod Security Standard
"restricted" profile without a cluster. Nothing here talks to a cluster (`civicml.deploy.client`) or
decides what to roll out (`civicml.deploy.rollout`).

The versions a rollout serves (the routing document) and the server's config are pinned in
the pod template itself, as annotations the pods read back through a downward-API volume.
A ReplicaSet therefore carries exactly what its pods serve, and `kubectl rollout undo`
(the runbook's emergency path) brings back the previous version, not the newest one: a
shared, fixed-name ConfigMap would have been rewritten by the newer rollout. It also means
the pipeline runner needs no write access to any ConfigMap (manifests/base/role.yaml).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from civicml.config import RunConfig
from civicml.deploy.security import (
    restricted_container_security_context,
    restricted_pod_security_context,
    restricted_violations,
)
from civicml.serving.routing import ROUTING_FILE_ENV, Routing
from civicml.storage.s3_settings import store_secret_env
from civicml.storage.store import resolve_store_uri

FIELD_MANAGER = "civicml"
CONFIG_DIR = "/etc/civicml"

#: Pod-template annotations holding the documents the pods serve (read through the downward API).
ROUTING_ANNOTATION = "civicml.io/routing"
CONFIG_ANNOTATION = "civicml.io/config"


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


def _service(cfg: RunConfig, labels: dict[str, str], selector: dict[str, str]) -> dict[str, Any]:
    d = cfg.deploy
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": d.name, "namespace": d.namespace, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _server_container(cfg: RunConfig, uri: str) -> dict[str, Any]:
    d = cfg.deploy
    # The server's own credential: read the registry, write only its logs/ (docs/run-on-kubeflow.md).
    secret = cfg.storage.server_secret_name
    return {
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


def _server_pod_spec(cfg: RunConfig, container: dict[str, Any], selector: dict[str, str]) -> dict[str, Any]:
    d = cfg.deploy
    return {
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
    service = _service(cfg, labels, selector)
    pod_spec = _server_pod_spec(cfg, _server_container(cfg, uri), selector)
    data = {"routing.json": routing.to_json(), "civicml.yaml": cfg.to_json()}
    data_hash = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
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

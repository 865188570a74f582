"""civicml's TrainJob on the real control plane: a TrainJob CRD generated here from the
`kubeflow-trainer-api` models' JSON schema (nothing of upstream's is downloaded or committed),
a server-side dry run of the TrainJob the train step submits, sent as the train step's
ServiceAccount, and that account's RBAC (manifests/base/trainer-role.yaml) read back with `can-i`.

upstream: kubeflow/trainer pkg/apis/trainer/v1alpha1/trainjob_types.go:36-53 @ v2.3.0 (TrainJob,
namespaced, group trainer.kubeflow.org, version v1alpha1, status subresource); the Python models are
generated from the same OpenAPI (api/python_api/kubeflow_trainer_api/models @ v2.3.0).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from civicml.config import load_config
from civicml.deploy import trainjob as tj

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
RUNNER = "civicml-pipeline-runner"
VERSION = "v20261201-120000-abc123"


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """A pydantic JSON schema node as a Kubernetes structural schema: refs inlined, Optional unwrapped."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        if "actual_instance" in target.get("properties", {}):
            # An openapi-generator oneOf wrapper (Quantity: string or number): on the wire it is the
            # value itself, which a CRD spells as int-or-string.
            return {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
        return _structural(target, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        return _structural({**branches[0], **{k: v for k, v in node.items() if k not in ("anyOf", "default")}}, defs)
    out: dict[str, Any] = {}
    for key in ("type", "format", "enum", "required"):
        if key in node:
            out[key] = node[key]
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {k: _structural(v, defs) for k, v in node["properties"].items()}
    if node.get("type") == "array":
        out["items"] = _structural(node.get("items", {}), defs) if node.get("items") else {}
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra and "properties" not in node:
        out["type"] = "object"
        out["additionalProperties"] = _structural(extra, defs)
    if "type" not in out or out.get("items") == {} or (out["type"] == "object" and len(out) == 1):
        # Free-form values (Dict[str, Any], Any): keep them, as the real CRD does for such fields.
        out.setdefault("type", "object")
        out["x-kubernetes-preserve-unknown-fields"] = True
        if out.get("items") == {}:
            out["items"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            out.pop("x-kubernetes-preserve-unknown-fields")
    return out


def trainjob_crd() -> dict[str, Any]:
    """The TrainJob CRD, its openAPIV3Schema generated from `TrainerV1alpha1TrainJob.model_json_schema()`."""
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    schema = TrainerV1alpha1TrainJob.model_json_schema(by_alias=True)
    root = _structural(schema, schema["$defs"])
    props = root["properties"]
    # The API server owns metadata's schema; status is written by the controller only.
    props["metadata"] = {"type": "object"}
    props["status"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{tj.PLURAL}.{tj.GROUP}"},
        "spec": {
            "group": tj.GROUP,
            "scope": "Namespaced",
            "names": {"plural": tj.PLURAL, "singular": "trainjob", "kind": "TrainJob", "listKind": "TrainJobList"},
            "versions": [
                {
                    "name": tj.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def trainjob_api(control_plane):
    kubectl = control_plane.kubectl
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(trainjob_crd()))
    # `kubectl wait` fails at once while the new CRD has no status yet: poll until Established.
    deadline = time.monotonic() + 60
    while True:
        res = kubectl(
            "get",
            f"crd/{tj.PLURAL}.{tj.GROUP}",
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Established')].status}",
            check=False,
        )
        if res.stdout.strip() == "True":
            break
        assert time.monotonic() < deadline, f"CRD {tj.PLURAL}.{tj.GROUP} not Established within 60 s"
        time.sleep(0.5)
    yield kubectl


def _in_namespace(doc: dict[str, Any], ns: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = ns
    for subject in doc.get("subjects", []):
        subject["namespace"] = ns
    return doc


@pytest.fixture
def runner(trainjob_api, restricted_namespace, sa_kubectl):
    """The train step's identity in a restricted namespace with the trainer Role and its binding applied."""
    ns = restricted_namespace
    trainjob_api("create", "serviceaccount", RUNNER, "-n", ns)
    docs = [
        _in_namespace(d, ns)
        for name in ("trainer-role.yaml", "trainer-rolebinding.yaml")
        for d in yaml.safe_load_all((MANIFESTS / "base" / name).read_text())
        if d
    ]
    trainjob_api("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))
    return ns, sa_kubectl(ns, RUNNER)


def _body(ns: str) -> dict[str, Any]:
    cfg = load_config(
        None,
        {"training.workers": 4, "training.backend": "trainjob", "training.namespace": ns, "storage.uri": "s3://b/p"},
    )
    return tj.trainjob_body(tj.build_trainjob(cfg, VERSION))


def test_civicml_trainjob_passes_a_strict_server_side_dry_run_as_the_train_step(runner):
    ns, as_runner = runner
    body = _body(ns)
    res = as_runner(
        "create", "--dry-run=server", "--validate=strict", "-f", "-", "-o", "json", input=json.dumps(body), check=False
    )
    assert res.returncode == 0, res.stderr
    echoed = json.loads(res.stdout)
    # Nothing pruned: every field civicml sends is one the Trainer API defines.
    assert echoed["spec"] == body["spec"]
    assert echoed["metadata"]["name"] == tj.trainjob_name(VERSION)


def test_the_crd_rejects_what_the_trainer_api_rejects(runner):
    ns, as_runner = runner
    body = _body(ns)
    body["spec"]["trainer"]["numNodes"] = "four"
    res = as_runner("create", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False)
    assert res.returncode != 0 and "numNodes" in res.stderr
    body = _body(ns)
    body["spec"]["trainer"]["nodes"] = 4
    res = as_runner("create", "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(body), check=False)
    assert res.returncode != 0 and 'unknown field "spec.trainer.nodes"' in res.stderr


def _can(as_runner, ns: str, verb: str, resource: str, *extra: str) -> bool:
    res = as_runner("auth", "can-i", verb, resource, "-n", ns, *extra, check=False)
    return res.stdout.strip() == "yes"


def test_train_step_rbac_is_what_run_trainjob_calls_and_no_more(runner):
    ns, as_runner = runner
    trainjobs = f"{tj.PLURAL}.{tj.GROUP}"
    for group, resource, verbs in tj.K8S_PERMISSIONS:
        name, _, sub = resource.partition("/")
        target = f"{name}.{group}" if group else name
        for verb in verbs:
            extra = ("--subresource", sub) if sub else ()
            assert _can(as_runner, ns, verb, target, *extra), (verb, resource)
    # Reading a pod's log is `get pods/log`; the account may not exec, create pods or read Secrets.
    assert _can(as_runner, ns, "get", "pods", "--subresource", "log")
    for verb, resource in (
        ("update", trainjobs),
        ("patch", trainjobs),
        ("create", "pods"),
        ("delete", "pods"),
        ("create", "pods/exec"),
        ("get", "secrets"),
        ("create", "jobsets.jobset.x-k8s.io"),
    ):
        assert not _can(as_runner, ns, verb, resource), (verb, resource)
    # And only in its own namespace.
    assert not _can(as_runner, "default", "create", trainjobs)

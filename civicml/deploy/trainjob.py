"""Distributed training on a cluster: a Kubeflow Trainer `TrainJob` on the `xgboost-distributed` runtime.

`build_trainjob` is a pure builder over the Trainer project's own typed models
(`kubeflow_trainer_api`, pydantic); `run_trainjob` is the thin edge that uploads the job and
its shards to the run's staging prefix, creates the TrainJob through the `kubernetes` client's
CustomObjectsApi, polls it, and on success downloads the model rank 0 wrote to the store.

Every node runs ``python -m civicml.modeling.distributed --job-key KEY`` in the civicml image;
the runtime's XGBoost plugin injects `DMLC_TRACKER_URI`, `DMLC_TRACKER_PORT`, `DMLC_TASK_ID`
and `DMLC_NUM_WORKER` (kubeflow/trainer pkg/runtime/framework/plugins/xgboost/xgboost.go:119-139
@ v2.3.0), which a TrainJob may not set itself (xgboost.go:59-69). A failed TrainJob is reported
with its condition and the last log lines of its pods.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from civicml.config import RunConfig
from civicml.deploy.cluster import CustomObject, true_conditions
from civicml.deploy.security import restricted_container_security_context, restricted_pod_security_context
from civicml.modeling.distributed import (
    ENV_NUM_WORKER,
    ENV_TASK_ID,
    ENV_TRACKER_PORT,
    ENV_TRACKER_URI,
    REPORT_PREFIX,
    DistributedTrainingError,
    WorkerJob,
)
from civicml.storage.registry import Registry
from civicml.storage.s3_settings import store_secret_env
from civicml.storage.store import open_store, resolve_store_uri

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
PLURAL = "trainjobs"
RUNTIME_KIND = "ClusterTrainingRuntime"
#: The replicated job and container the XGBoost plugin injects into (constants.Node, constants.go:69 @ v2.3.0).
NODE = "node"
#: JobSet labels every pod with its JobSet's name, which is the TrainJob's (examples/yaml/01-multi-node.yaml:27).
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
#: Names the runtime injects; the Trainer's webhook forbids them in spec.trainer.env (xgboost.go:59-69).
RESERVED_ENV = frozenset({ENV_TRACKER_URI, ENV_TRACKER_PORT, ENV_TASK_ID, ENV_NUM_WORKER})
PATCH_MANAGER = "civicml.io/train"
SETTINGS_CONFIGMAP = "civicml-settings"
LOG_LINES = 20

#: Every (apiGroup, resource, verbs) this module calls; manifests/base/trainer-role.yaml grants exactly these.
K8S_PERMISSIONS: list[tuple[str, str, tuple[str, ...]]] = [
    (GROUP, PLURAL, ("create", "get", "delete")),
    # A failed TrainJob is reported with its pods' last log lines.
    ("", "pods", ("list",)),
    ("", "pods/log", ("get",)),
]


class TrainJobError(DistributedTrainingError):
    """The TrainJob was refused, failed or did not finish in time."""


def trainjob_name(version: str) -> str:
    """The TrainJob's name: a DNS label, short enough for the tracker's `<name>-node-0-0.<name>` host."""
    return f"civicml-train-{version}".lower().replace("_", "-")[:50].rstrip("-")


def job_key(version: str) -> str:
    """Store key of the worker job of `version`'s TrainJob."""
    return f"staging/{version}/trainjob/job.json"


def model_prefix(version: str) -> str:
    """Store prefix where rank 0 writes the model."""
    return f"staging/{version}/trainjob/model"


def build_trainjob(cfg: RunConfig, version: str):
    """The TrainJob for `version`: N nodes of the civicml image running the worker entrypoint.

    Returns:
        A `kubeflow_trainer_api` `TrainerV1alpha1TrainJob`.
    """
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    t = cfg.training

    def setting_env(key: str) -> dict[str, Any]:
        ref = {"name": SETTINGS_CONFIGMAP, "key": key, "optional": True}
        return {"name": key, "valueFrom": {"configMapKeyRef": ref}}

    resources = {"cpu": t.cpu, "memory": t.memory}
    pod_patch = {
        "securityContext": restricted_pod_security_context(),
        "volumes": [{"name": "tmp", "emptyDir": {}}],
        "containers": [
            {
                "name": NODE,
                "securityContext": restricted_container_security_context(),
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
    }
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {
            "name": trainjob_name(version),
            "namespace": t.namespace,
            "labels": {
                "app.kubernetes.io/part-of": "civicml",
                "app.kubernetes.io/component": "train",
                "civicml.io/version": version[:63],
            },
        },
        "spec": {
            "runtimeRef": {"name": t.runtime, "apiGroup": GROUP, "kind": RUNTIME_KIND},
            "activeDeadlineSeconds": t.timeout_seconds,
            "trainer": {
                "image": cfg.deploy.image,
                "command": ["python", "-m", "civicml.modeling.distributed", "--job-key", job_key(version)],
                "numNodes": t.workers,
                "resourcesPerNode": {"requests": resources, "limits": resources},
                "env": [
                    {"name": "CIVICML_STORE_URI", "value": resolve_store_uri(cfg.storage.uri)},
                    setting_env("CIVICML_S3_ENDPOINT"),
                    setting_env("CIVICML_S3_SECURE"),
                    *store_secret_env(cfg.storage.secret_name),
                    {"name": "HOME", "value": "/tmp"},
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                    {"name": "OMP_WAIT_POLICY", "value": "PASSIVE"},
                ],
            },
            "runtimePatches": [
                {
                    "manager": PATCH_MANAGER,
                    "trainingRuntimeSpec": {
                        "template": {
                            "spec": {
                                "replicatedJobs": [
                                    {
                                        "name": NODE,
                                        "template": {
                                            "spec": {
                                                "template": {
                                                    # No Istio sidecar: it never exits, so the Job never completes.
                                                    "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                                                    "spec": pod_patch,
                                                }
                                            }
                                        },
                                    }
                                ]
                            }
                        }
                    },
                }
            ],
        },
    }
    return TrainerV1alpha1TrainJob.from_dict(body)


def trainjob_body(trainjob) -> dict[str, Any]:
    """The dict sent to the API server."""
    return trainjob.to_dict()


def _api_error(action: str, namespace: str, name: str, err: Exception) -> TrainJobError:
    status: Any = getattr(err, "status", None)
    hint = {
        403: f"the service account lacks RBAC for {GROUP}/{PLURAL} in {namespace} "
        "(apply manifests/base/trainer-role.yaml)",
        404: f"no {GROUP}/{VERSION} {PLURAL} API, or namespace {namespace} is missing: is Kubeflow Trainer installed?",
        409: f"a TrainJob named {name} already exists in {namespace}; delete it or use a new version",
    }.get(status, "check the Trainer controller and the API server")
    reason = getattr(err, "reason", "") or type(err).__name__
    return TrainJobError(f"could not {action} TrainJob {namespace}/{name}: HTTP {status} {reason}; {hint}")


def pod_logs(core: Any, namespace: str, name: str, lines: int = LOG_LINES) -> dict[str, list[str]]:
    """The last `lines` log lines of every pod of the TrainJob (empty when they cannot be read)."""
    from kubernetes.client.exceptions import ApiException

    try:
        pods = core.list_namespaced_pod(namespace, label_selector=f"{JOBSET_NAME_LABEL}={name}").items
    except ApiException:
        return {}
    out = {}
    for pod in pods:
        pod_name = pod.metadata.name
        try:
            text = core.read_namespaced_pod_log(pod_name, namespace, container=NODE, tail_lines=lines)
        except ApiException as err:
            text = f"(log not readable: HTTP {getattr(err, 'status', '?')})"
        out[pod_name] = [line for line in (text or "").splitlines() if line.strip()][-lines:]
    return out


def _failed(obj: dict[str, Any], namespace: str, name: str, logs: dict[str, list[str]]) -> TrainJobError:
    c = true_conditions(obj).get("Failed", {})
    parts = [f"TrainJob {namespace}/{name} failed: {c.get('reason', '?')}: {c.get('message', '')}".rstrip()]
    for pod, lines in sorted(logs.items()):
        parts.append(f"  last lines of pod {pod}:")
        parts += [f"    | {line}" for line in lines] or ["    | (no output)"]
    if not logs:
        parts.append(f"  (no pod logs readable; try `kubectl -n {namespace} logs -l {JOBSET_NAME_LABEL}={name}`)")
    return TrainJobError("\n".join(parts))


def submit_and_wait(
    api: Any,
    core: Any,
    body: dict[str, Any],
    *,
    timeout_seconds: float,
    poll_seconds: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Create the TrainJob and poll it until it completes, fails or times out.

    A completed TrainJob is deleted; a failed one is kept for `kubectl describe`.

    Returns:
        The reports the workers printed (rank, rows, peak RSS), read from the pods' logs.

    Raises:
        TrainJobError: refused, failed (with the pods' last log lines), or timed out.
    """
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    job = CustomObject(
        api, GROUP, VERSION, PLURAL, namespace, name, lambda action, err: _api_error(action, namespace, name, err)
    )
    job.create(body)
    start = clock()
    while True:
        obj = job.read()
        conditions = true_conditions(obj)
        if "Failed" in conditions:
            raise _failed(obj, namespace, name, pod_logs(core, namespace, name))
        if "Complete" in conditions:
            logs = pod_logs(core, namespace, name, lines=3)
            job.delete()
            reports = [
                json.loads(x[len(REPORT_PREFIX) :]) for v in logs.values() for x in v if x.startswith(REPORT_PREFIX)
            ]
            return {"reports": sorted(reports, key=lambda r: r.get("rank", 0))}
        if clock() - start >= timeout_seconds:
            raise TrainJobError(
                f"TrainJob {namespace}/{name} did not finish within {timeout_seconds:g}s (training.timeout_seconds); "
                f"it is left in place: `kubectl -n {namespace} describe trainjob {name}`"
            )
        sleep(poll_seconds)


def _default_apis():
    from kubernetes import client

    from civicml.deploy.cluster import ClusterError, api_client

    try:
        api = api_client()
    except ClusterError as err:
        raise TrainJobError(f"training.backend trainjob: {err}") from None
    return client.CustomObjectsApi(api), client.CoreV1Api(api)


def stage_job(cfg: RunConfig, version: str, job: WorkerJob) -> WorkerJob:
    """Upload the shards and the job under `staging/<version>/` (the job last); returns the store-side job."""
    store = open_store(cfg.storage.uri)
    if not store.uri.startswith("s3://"):
        raise TrainJobError(
            f"training.backend trainjob needs an object store the worker pods can reach, but the store is "
            f"{store.uri!r} (a local directory); set storage.uri or CIVICML_STORE_URI to s3://BUCKET/PREFIX"
        )
    registry = Registry(store)
    root = Path(job.shard_root or ".")
    shards = []
    for ref in job.shards:
        uploaded = registry.upload(version, f"train-shards/{ref.key}", (root / ref.key).read_bytes())
        shards.append(ref.model_copy(update={"key": uploaded["key"]}))
    staged = job.model_copy(update={"shards": shards, "shard_root": None, "output": model_prefix(version)})
    store.put_bytes(job_key(version), staged.model_dump_json(indent=2).encode())
    return staged


def run_trainjob(cfg: RunConfig, version: str, job: WorkerJob, model_dir: str | Path, apis=None) -> list[dict]:
    """Train on the cluster: stage the job, run the TrainJob, download the model into `model_dir`.

    Raises:
        TrainJobError: the store is not shared, or the TrainJob was refused, failed or timed out.
    """
    staged = stage_job(cfg, version, job)
    api, core = apis if apis is not None else _default_apis()
    body = trainjob_body(build_trainjob(cfg, version))
    t = cfg.training
    result = submit_and_wait(api, core, body, timeout_seconds=t.timeout_seconds, poll_seconds=t.poll_seconds)
    store = open_store(cfg.storage.uri)
    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = store.list_keys(staged.output.rstrip("/") + "/")
    if not keys:
        raise TrainJobError(f"TrainJob for {version} completed but rank 0 wrote no model under {staged.output}/")
    for key in keys:
        (out / key.rsplit("/", 1)[-1]).write_bytes(store.get_bytes(key))
    return result["reports"]

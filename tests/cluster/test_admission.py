"""The pods civicml causes on a cluster, created with server-side dry-run in a namespace that enforces
the "restricted" Pod Security Standard: the real PodSecurity admission plugin must admit them.

- The Katib trial Job (civicml.tuning.katib_backend.trial_job) and its pod template as a Pod.
- Every KFP component pod of the compiled pipelines as KFP 2.17 runs it on Argo: the executor
  template of KFP's Argo compiler (init containers `init` and `kfp-launcher`, `main`, `wait`),
  with the driver's pod-spec patch (the component's image, env from the platform config, the
  security context from kfp-kubernetes' set_security_context) and Argo's executor containers
  configured as KFP's own manifests configure them; and the driver pod.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from civicml.config import load_config
from civicml.tuning import katib_backend

COMPILED = Path(__file__).resolve().parents[2] / "pipelines" / "compiled"
PIPELINES = sorted(COMPILED.glob("*.yaml"))
KFP_VERSION = "2.17.0"

# upstream: kubeflow/pipelines backend/src/v2/compiler/argocompiler/security_context.go:22-35 @ 2.17.0
KFP_SYSTEM_CONTAINER_SC = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# upstream: kubeflow/pipelines backend/src/v2/compiler/argocompiler/security_context.go:163-174 @ 2.17.0
KFP_USER_CONTAINER_SC = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Argo's executor containers (init, wait), as KFP's manifests configure the workflow controller.
# upstream: kubeflow/pipelines @ 2.17.0
#   manifests/kustomize/third-party/argo/base/workflow-controller-configmap-patch.yaml:37-46
ARGO_EXECUTOR_SC = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _env(executor_cfg: dict) -> list[dict]:
    env = []
    for ref in executor_cfg.get("secretAsEnv", []):
        for k in ref["keyToEnv"]:
            env.append(
                {"name": k["envVar"], "valueFrom": {"secretKeyRef": {"name": ref["secretName"], "key": k["secretKey"]}}}
            )
    for ref in executor_cfg.get("configMapAsEnv", []):
        for k in ref["keyToEnv"]:
            env.append(
                {
                    "name": k["envVar"],
                    "valueFrom": {"configMapKeyRef": {"name": ref["configMapName"], "key": k["configMapKey"]}},
                }
            )
    return env


def kfp_executor_pod(name: str, container: dict, executor_cfg: dict, service_account: str) -> dict:
    """The pod Argo creates for KFP's `system-container-impl` template after the driver's patch."""
    main_sc = copy.deepcopy(KFP_USER_CONTAINER_SC)
    # upstream: kubeflow/pipelines backend/src/v2/driver/k8s.go:749-790 @ 2.17.0 (kfp-kubernetes securityContext)
    # The platform spec is protobuf JSON: int64 fields (runAsUser, runAsGroup) arrive as strings.
    for key, value in (executor_cfg.get("securityContext") or {}).items():
        main_sc[key] = int(value) if key in ("runAsUser", "runAsGroup") else value
    mounts = [{"name": "kfp-launcher", "mountPath": "/kfp-launcher"}]
    scratch = [
        "gcs-scratch",
        "s3-scratch",
        "minio-scratch",
        "dot-local-scratch",
        "dot-cache-scratch",
        "dot-config-scratch",
    ]
    argo = {"name": "var-run-argo", "mountPath": "/var/run/argo"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"pipelines.kubeflow.org/v2_component": "true"}},
        "spec": {
            "serviceAccountName": service_account,
            "restartPolicy": "Never",
            # upstream: kubeflow/pipelines backend/src/v2/compiler/argocompiler/security_context.go:146-160 @ 2.17.0
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [
                {"name": "init", "image": "quay.io/argoproj/argoexec:v4.0.5", "command": ["argoexec", "init"],
                 "volumeMounts": [argo], "securityContext": ARGO_EXECUTOR_SC},
                # upstream: kubeflow/pipelines backend/src/v2/compiler/argocompiler/container.go:513-526 @ 2.17.0
                {"name": "kfp-launcher", "image": f"ghcr.io/kubeflow/kfp-launcher:{KFP_VERSION}",
                 "command": ["launcher-v2"], "args": ["--copy", "/kfp-launcher/launch"],
                 "volumeMounts": mounts, "securityContext": KFP_SYSTEM_CONTAINER_SC},
            ],
            "containers": [
                # upstream: kubeflow/pipelines backend/src/v2/driver/driver.go:318-335,456-460 @ 2.17.0
                {"name": "main", "image": container["image"],
                 "command": ["/kfp-launcher/launch", "--pipeline_name", "p", "--run_id", "r", "--",
                             *container.get("command", []), *container.get("args", [])],
                 "env": _env(executor_cfg),
                 "volumeMounts": mounts + [{"name": s, "mountPath": f"/{s}"} for s in scratch] + [argo],
                 "securityContext": main_sc},
                {"name": "wait", "image": "quay.io/argoproj/argoexec:v4.0.5", "command": ["argoexec", "wait"],
                 "volumeMounts": [argo], "securityContext": ARGO_EXECUTOR_SC},
            ],
            "volumes": [{"name": v, "emptyDir": {}} for v in ["kfp-launcher", *scratch, "var-run-argo"]],
        },
    }  # fmt: skip


def kfp_driver_pod(name: str, service_account: str) -> dict:
    """The container driver pod (`system-container-driver` template)."""
    # upstream: kubeflow/pipelines backend/src/v2/compiler/argocompiler/container.go:270-283 @ 2.17.0
    # upstream: kubeflow/pipelines backend/src/v2/compiler/argocompiler/security_context.go:37-48 @ 2.17.0
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": service_account,
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "init", "image": "quay.io/argoproj/argoexec:v4.0.5",
                                "securityContext": ARGO_EXECUTOR_SC}],
            "containers": [
                {"name": "main", "image": f"ghcr.io/kubeflow/kfp-driver:{KFP_VERSION}", "command": ["driver"],
                 "securityContext": KFP_SYSTEM_CONTAINER_SC},
                {"name": "wait", "image": "quay.io/argoproj/argoexec:v4.0.5", "securityContext": ARGO_EXECUTOR_SC},
            ],
        },
    }  # fmt: skip


def compiled_executors() -> list[tuple[str, str, dict, dict]]:
    out = []
    for path in PIPELINES:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        spec = docs[0]
        platform = next((d for d in docs[1:] if "platforms" in d), {}).get("platforms", {})
        k8s = platform.get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
        for name, executor in spec["deploymentSpec"]["executors"].items():
            out.append((path.stem, name, executor["container"], k8s.get(name, {})))
    return out


@pytest.fixture(scope="module")
def admission_ns(install_overlay):
    """The prod overlay installed: restricted namespace, civicml's ServiceAccounts, ConfigMaps."""
    return install_overlay("overlays/prod")[0]


@pytest.fixture(scope="module")
def pod_creator(admission_ns, control_plane, sa_kubectl):
    """kubectl as a controller that creates pods (Argo's workflow controller, the Job controller):
    a ServiceAccount allowed to create pods and Jobs in the namespace and nothing else."""
    kubectl = control_plane.kubectl
    kubectl("create", "serviceaccount", "pod-creator", "-n", admission_ns)
    kubectl("create", "role", "pod-creator", "-n", admission_ns, "--verb=create", "--resource=pods,jobs.batch")
    kubectl("create", "rolebinding", "pod-creator", "-n", admission_ns, "--role=pod-creator",
            f"--serviceaccount={admission_ns}:pod-creator")  # fmt: skip
    return sa_kubectl(admission_ns, "pod-creator")


def dry_run(kubectl, ns: str, obj: dict):
    obj = {**obj, "metadata": {**obj["metadata"], "namespace": ns}}
    return kubectl("create", "--dry-run=server", "-f", "-", "-o", "json", input=json.dumps(obj), check=False)


def test_katib_trial_job_and_its_pod_are_admitted(admission_ns, pod_creator):
    cfg = load_config(None, {"storage.uri": "s3://civicml/registry", "tuning.backend": "katib"})
    # Exactly the trial spec the Experiment sent to Katib carries.
    body = katib_backend.experiment_body(katib_backend.build_experiment(cfg, "v1"))
    job = copy.deepcopy(body["spec"]["trialTemplate"]["trialSpec"])
    job["metadata"] = {"name": "trial-dry-run"}
    res = dry_run(pod_creator, admission_ns, job)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr  # no PodSecurity warning either
    template = job["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "trial-pod", **template["metadata"]},
           "spec": template["spec"]}  # fmt: skip
    res = dry_run(pod_creator, admission_ns, pod)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize(
    "pipeline,executor,container,config", compiled_executors(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_kfp_component_pod_is_admitted(pipeline, executor, container, config, admission_ns, pod_creator):
    pod = kfp_executor_pod(
        f"{pipeline}-{executor}".replace("_", "-")[:60], container, config, "civicml-pipeline-runner"
    )
    res = dry_run(pod_creator, admission_ns, pod)
    assert res.returncode == 0, f"{pipeline} {executor}: {res.stderr}"


def test_kfp_driver_pod_is_admitted(admission_ns, pod_creator):
    res = dry_run(pod_creator, admission_ns, kfp_driver_pod("driver", "civicml-pipeline-runner"))
    assert res.returncode == 0, res.stderr


def katib_mutated_pod(template: dict, inject_security_context: bool) -> dict:
    """The trial pod after Katib's pod webhook (StdOut collector): a metrics-logger-and-collector
    sidecar, a shared metrics-volume, shareProcessNamespace and the wrapped primary command. The
    sidecar gets a security context only when katib-config sets `injectSecurityContext: true`
    (a copy of the primary container's); Katib's default manifests leave it unset.
    upstream: kubeflow/katib pkg/webhook/v1beta1/pod/inject_webhook.go:131-253 @ v0.19.0
    upstream: kubeflow/katib pkg/webhook/v1beta1/pod/utils.go:230-260,313-319 @ v0.19.0"""
    spec = copy.deepcopy(template["spec"])
    primary = spec["containers"][0]
    mount = {"name": "metrics-volume", "mountPath": "/var/log/katib"}
    primary["command"] = ["sh", "-c"]
    primary["args"] = ["civicml trial 1>/var/log/katib/metrics.log 2>&1 && echo completed > /var/log/katib/$$$$.pid"]
    primary.setdefault("volumeMounts", []).append(mount)
    sidecar = {
        "name": "metrics-logger-and-collector",
        "image": "ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0",
        "args": ["-t", "trial", "-m", "roc_auc", "-path", "/var/log/katib/metrics.log", "-format", "TEXT"],
        "resources": {"limits": {"cpu": "500m", "memory": "100Mi"}, "requests": {"cpu": "50m", "memory": "10Mi"}},
        "volumeMounts": [mount],
    }
    if inject_security_context:
        sidecar["securityContext"] = copy.deepcopy(primary["securityContext"])
    spec["containers"].append(sidecar)
    spec["volumes"].append({"name": "metrics-volume", "emptyDir": {}})
    spec["shareProcessNamespace"] = True
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "trial-mutated"}, "spec": spec}


def _trial_template() -> dict:
    cfg = load_config(None, {"storage.uri": "s3://civicml/registry", "tuning.backend": "katib"})
    body = katib_backend.experiment_body(katib_backend.build_experiment(cfg, "v1"))
    return body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]


def test_katib_mutated_trial_pod_is_admitted_with_inject_security_context(admission_ns, pod_creator):
    res = dry_run(pod_creator, admission_ns, katib_mutated_pod(_trial_template(), inject_security_context=True))
    assert res.returncode == 0, res.stderr


def test_katib_default_sidecar_is_refused_by_restricted(admission_ns, pod_creator):
    """Why the docs tell admins to set katib-config `injectSecurityContext: true`: with Katib's
    default the injected sidecar has no security context and "restricted" refuses every trial pod."""
    res = dry_run(pod_creator, admission_ns, katib_mutated_pod(_trial_template(), inject_security_context=False))
    assert res.returncode != 0
    assert 'violates PodSecurity "restricted' in res.stderr
    assert (
        'container "metrics-logger-and-collector" must set securityContext.allowPrivilegeEscalation=false' in res.stderr
    )

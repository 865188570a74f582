"""The Katib Experiment civicml submits, and the batch/v1 Job each trial runs: pure builders.

Built with the Katib project's own typed models (`kubeflow_katib_api`, pydantic) and turned into the
plain dict the API server takes, so that everything that would reach the cluster can be printed,
validated offline and admitted against a real control plane (tests/cluster) without Katib itself.
Submitting and watching is `civicml.tuning.katib_backend`.
"""

from __future__ import annotations

import json
import re
from hashlib import sha256
from typing import Any

import yaml

from civicml.catalog import TASK_METRICS
from civicml.config import ConfigError, ParamSpec, RunConfig, check_katib_arg_values
from civicml.deploy.security import restricted_container_security_context, restricted_pod_security_context
from civicml.modeling.search_space import space_for
from civicml.storage.s3_settings import store_secret_env
from civicml.storage.store import resolve_store_uri

GROUP = "kubeflow.org"
VERSION = "v1beta1"
PLURAL = "experiments"
TRIAL_PLURAL = "trials"

#: Every (apiGroup, resource, verbs) this module calls; the Role
#: `civicml-pipeline-runner` in manifests/base/role.yaml must grant exactly these.
K8S_PERMISSIONS: list[tuple[str, str, tuple[str, ...]]] = [
    (GROUP, PLURAL, ("create", "get", "delete")),
    # The per-trial table (parameters, state, value) for the tuning report.
    (GROUP, TRIAL_PLURAL, ("list",)),
]

PRIMARY_CONTAINER = "trial"
SERVICE_ACCOUNT = "civicml-pipeline-runner"
#: ConfigMap with the store endpoint settings (manifests/base/configmap.yaml).
SETTINGS_CONFIGMAP = "civicml-settings"
#: Katib's defaults for a batch/v1 Job trial, spelled out so the template does not
#: depend on the admission webhook filling them in.
JOB_SUCCESS_CONDITION = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
VERSION_LABEL = "civicml.io/version"
#: sha256 of the Experiment's spec as civicml built it: a retried tune pod resumes only its own search.
SPEC_ANNOTATION = "civicml.io/spec-sha256"


def experiment_name(cfg: RunConfig, version: str) -> str:
    """A DNS-1123 name for the run's Experiment, short enough for Katib's trial and Job names.

    Katib names trials `<experiment>-<8 chars>` and Jobs after their trial, and Job
    names become pod labels (at most 63 characters), so the name is capped at 40.
    """
    raw = re.sub(r"[^a-z0-9-]+", "-", f"{cfg.name}-{version}".lower()).strip("-") or "civicml"
    if len(raw) <= 40:
        return raw
    digest = sha256(raw.encode()).hexdigest()[:8]
    return f"{raw[:31].rstrip('-')}-{digest}"


def _metric_names(cfg: RunConfig) -> list[str]:
    headline = TASK_METRICS[cfg.task]
    return [m for m in headline if m != cfg.tuning.objective_metric]


def _bound(spec: ParamSpec, value: float) -> str:
    return str(int(value)) if spec.type == "int" else repr(float(value))


def _feasible_space(spec: ParamSpec) -> dict[str, Any]:
    if spec.type == "categorical":
        return {"list": [str(v) for v in spec.values or []]}
    lo, hi = spec.bounds()
    out: dict[str, Any] = {"min": _bound(spec, lo), "max": _bound(spec, hi)}
    if spec.step is not None:
        out["step"] = _bound(spec, spec.step)
    if spec.log:
        out["distribution"] = "logUniform"
    return out


def trial_job(cfg: RunConfig, version: str, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """The batch/v1 Job every trial runs, with `${trialParameters.NAME}` placeholders.

    Args:
        cfg: Run config (image, store, Secret name, trial resources).
        version: The run's version; the trial downloads `staging/<version>/tuning-data/`.
        space: The resolved search space (one `--param` per parameter).
    """
    k = cfg.tuning.katib
    args = ["trial", "--version", version]
    for name in space:
        args += ["--param", f"{name}=${{trialParameters.{name}}}"]

    container = {
        "name": PRIMARY_CONTAINER,
        "image": cfg.deploy.image,
        "imagePullPolicy": "IfNotPresent",
        # Katib's StdOut collector wraps `command` in a shell that tees stdout to its log,
        # so the entrypoint must be in `command`, not only in the image.
        "command": ["civicml"],
        "args": args,
        "env": [
            # The store the tune step uploaded the split to (its own resolved URI).
            {"name": "CIVICML_STORE_URI", "value": resolve_store_uri(cfg.storage.uri)},
            *store_secret_env(cfg.storage.secret_name),
            {"name": "HOME", "value": "/tmp"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        # Endpoint settings (CIVICML_S3_ENDPOINT, ...); optional so a plain namespace still works.
        "envFrom": [{"configMapRef": {"name": SETTINGS_CONFIGMAP, "optional": True}}],
        "resources": {
            "requests": {"cpu": k.cpu, "memory": k.memory},
            "limits": {"cpu": k.cpu, "memory": k.memory},
        },
        "securityContext": restricted_container_security_context(),
        # The root filesystem is read-only; the split is downloaded to /tmp.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            # A failed trial is Katib's to count (maxFailedTrialCount), not the Job's to retry.
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": {"app.kubernetes.io/part-of": "civicml", "app.kubernetes.io/component": "katib-trial"},
                    # An Istio sidecar never exits, so the Job would never complete.
                    "annotations": {"sidecar.istio.io/inject": "false"},
                },
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    # A trial talks to the object store only, never to the Kubernetes API.
                    "automountServiceAccountToken": False,
                    "restartPolicy": "Never",
                    "securityContext": restricted_pod_security_context(),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def build_experiment(cfg: RunConfig, version: str):
    """Build the run's Katib Experiment with the `kubeflow_katib_api` models.

    Returns:
        A `V1beta1Experiment`; `experiment_body` turns it into the dict sent to the API.

    Raises:
        ConfigError: the resolved search space cannot be searched by the algorithm.
    """
    from kubeflow_katib_api import models as m

    t = cfg.tuning
    space = space_for(cfg.model.family, t.search_space, t.algorithm, t.max_trials)
    try:
        check_katib_arg_values(space)
    except ValueError as err:
        raise ConfigError(f"invalid config: tuning.{err}") from None
    metrics = _metric_names(cfg)
    early = None
    if t.early_stopping is not None:
        early = m.V1beta1EarlyStoppingSpec(
            algorithm_name=t.early_stopping.algorithm,
            algorithm_settings=[
                m.V1beta1EarlyStoppingSetting(
                    name="min_trials_required", value=str(t.early_stopping.min_trials_required)
                ),
                m.V1beta1EarlyStoppingSetting(name="start_step", value=str(t.early_stopping.start_step)),
            ],
        )
    spec = m.V1beta1ExperimentSpec(
        objective=m.V1beta1ObjectiveSpec(
            type=t.direction,
            objective_metric_name=t.objective_metric,
            additional_metric_names=metrics,
            # "latest": the trial prints the final model's value last (after any per-round values).
            metric_strategies=[m.V1beta1MetricStrategy(name=n, value="latest") for n in [t.objective_metric, *metrics]],
        ),
        algorithm=m.V1beta1AlgorithmSpec(
            algorithm_name=t.algorithm,
            algorithm_settings=[m.V1beta1AlgorithmSetting(name="random_state", value=str(t.seed))],
        ),
        early_stopping=early,
        # Katib's webhook refuses either above maxTrialCount; the config refuses such values when
        # written, so min() only caps the defaults (e.g. max_failed_trials 3 with max_trials 2).
        parallel_trial_count=min(t.parallel_trials, t.max_trials),
        max_trial_count=t.max_trials,
        max_failed_trial_count=min(t.max_failed_trials, t.max_trials),
        metrics_collector_spec=m.V1beta1MetricsCollectorSpec(collector=m.V1beta1CollectorSpec(kind="StdOut")),
        parameters=[
            m.V1beta1ParameterSpec(
                name=name, parameter_type=p.type, feasible_space=m.V1beta1FeasibleSpace(**_feasible_space(p))
            )
            for name, p in space.items()
        ],
        trial_template=m.V1beta1TrialTemplate(
            primary_container_name=PRIMARY_CONTAINER,
            success_condition=JOB_SUCCESS_CONDITION,
            failure_condition=JOB_FAILURE_CONDITION,
            trial_parameters=[
                m.V1beta1TrialParameterSpec(name=name, reference=name, description=f"{p.type} hyperparameter {name}")
                for name, p in space.items()
            ],
            trial_spec=trial_job(cfg, version, space),
        ),
    )
    spec_hash = sha256(json.dumps(spec.to_dict(), sort_keys=True, default=str).encode()).hexdigest()
    return m.V1beta1Experiment(
        api_version=f"{GROUP}/{VERSION}",
        kind="Experiment",
        metadata=m.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
            name=experiment_name(cfg, version),
            namespace=t.katib.namespace,
            labels={"app.kubernetes.io/part-of": "civicml", VERSION_LABEL: _label_value(version)},
            annotations={SPEC_ANNOTATION: spec_hash},
        ),
        spec=spec,
    )


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")
    return value or "unknown"


def experiment_body(experiment) -> dict[str, Any]:
    """The JSON-ready dict sent to the API server (camelCase keys, no None values)."""
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(experiment.to_dict())


def experiment_yaml(cfg: RunConfig, version: str) -> str:
    """The Experiment as YAML, for `civicml tune --backend katib --dry-run`."""
    return yaml.safe_dump(experiment_body(build_experiment(cfg, version)), sort_keys=False)

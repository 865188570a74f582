"""Hyperparameter search on a cluster: a Katib Experiment whose trials run `civicml trial`.

The Experiment is built with the Katib project's own typed models
(`kubeflow_katib_api`, pydantic) and sent as a plain dict through the `kubernetes`
client's CustomObjectsApi; the `kubeflow-katib` SDK is not used (it pins protobuf<5,
which cannot live beside kfp 2.17). Everything that would reach the API server is
produced by `build_experiment` so that it can be validated offline; `submit_and_wait`
is the thin, stand-in-tested edge.

Each trial is a batch/v1 Job in the civicml image running
``civicml trial --version V --param name=${trialParameters.name} ...``. It reads the
train/valid split that the tune step uploaded to ``staging/<version>/tuning-data/``
(see `civicml.tuning.trial`) with the store credentials from the Kubernetes Secret
`storage.secret_name`, trains one candidate and prints ``name=value`` metric lines for
Katib's StdOut collector. The pod meets the Pod Security Standard "restricted".

Algorithm names are Katib's own (random, tpe, multivariate-tpe, cmaes, grid), all served
by Katib's Optuna suggestion service with `random_state` = `tuning.seed`; early stopping
`medianstop` takes `min_trials_required` and `start_step`. Katib runs
`tuning.parallel_trials` trials at once, so unlike the local Optuna backend its
search is not bit-for-bit reproducible.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from civicml.config import RunConfig
from civicml.deploy.cluster import ENFORCE_LABEL, CustomObject, api_client, namespace_labels, true_conditions
from civicml.modeling.search_space import coerce_params, space_for
from civicml.storage.store import resolve_store_uri
from civicml.tuning.katib_objects import (  # noqa: F401  (re-exported: callers import the builders from here)
    EXPERIMENT_LABEL,
    GROUP,
    JOB_FAILURE_CONDITION,
    JOB_SUCCESS_CONDITION,
    K8S_PERMISSIONS,
    PLURAL,
    PRIMARY_CONTAINER,
    SERVICE_ACCOUNT,
    SETTINGS_CONFIGMAP,
    SPEC_ANNOTATION,
    TRIAL_PLURAL,
    VERSION,
    VERSION_LABEL,
    build_experiment,
    experiment_body,
    experiment_name,
    experiment_yaml,
    trial_job,
)
from civicml.tuning.objective import TuningError

log = logging.getLogger(__name__)


class KatibError(TuningError):
    """The Katib Experiment could not be created, failed, or did not finish in time."""


def require_shared_store(uri: str) -> None:
    """Refuse a store that trial pods cannot reach (anything but `s3://`).

    Raises:
        KatibError: naming the URI and how to point civicml at the cluster's object store.
    """
    if not uri.startswith("s3://"):
        raise KatibError(
            f"tuning.backend katib needs an object store the trial pods can reach, but the store is {uri!r} "
            "(a local directory); set storage.uri or CIVICML_STORE_URI to s3://BUCKET/PREFIX "
            "(the civicml-settings ConfigMap does this on a cluster)"
        )


def _api_error(action: str, namespace: str, name: str, err: Exception) -> KatibError:
    status: Any = getattr(err, "status", None)
    reason = getattr(err, "reason", "") or type(err).__name__
    hint = {
        403: f"the service account lacks RBAC for {GROUP}/{PLURAL} in namespace {namespace} "
        "(apply manifests/base/role.yaml)",
        404: f"no {GROUP}/{VERSION} {PLURAL} API, or namespace {namespace} is missing: is Katib installed?",
        409: f"an Experiment named {name} already exists in {namespace} and is not this run's; delete it "
        f"(`kubectl -n {namespace} delete experiment {name}`) or use a new version",
    }.get(status, "check the Katib controller and the API server")
    return KatibError(f"could not {action} Katib Experiment {namespace}/{name}: HTTP {status} {reason}; {hint}")


def _finished(obj: dict[str, Any], namespace: str, name: str, elapsed: float, timeout_seconds: float) -> bool:
    """True when the Experiment succeeded; KatibError when it failed or ran out of time; else False."""
    status = obj.get("status") or {}
    conditions = true_conditions(obj)
    if "Failed" in conditions:
        c = conditions["Failed"]
        raise KatibError(
            f"Katib Experiment {namespace}/{name} failed: {c.get('reason', '?')}: {c.get('message', '')} "
            f"(trials succeeded {status.get('trialsSucceeded', 0)}, failed {status.get('trialsFailed', 0)}: "
            f"{', '.join(status.get('failedTrialList') or []) or 'none listed'}); "
            f"see `kubectl -n {namespace} logs job/<trial>` for a failed trial"
        )
    if "Succeeded" in conditions:
        return True
    if elapsed >= timeout_seconds:
        raise KatibError(
            f"Katib Experiment {namespace}/{name} did not finish within {timeout_seconds:g}s "
            f"(tuning.katib.timeout_seconds): trials succeeded {status.get('trialsSucceeded', 0)}, "
            f"running {status.get('trialsRunning', 0)}, pending {status.get('trialsPending', 0)}; "
            "raise the timeout or lower tuning.max_trials"
        )
    return False


def submit_and_wait(
    api: Any,
    body: dict[str, Any],
    *,
    timeout_seconds: float,
    retain: bool = False,
    poll_seconds: float = 15.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Create the Experiment, poll it until it succeeds, fails or times out, then clean up.

    Args:
        api: A `kubernetes.client.CustomObjectsApi` (or a stand-in with the same methods).
        body: `experiment_body(build_experiment(...))`.
        timeout_seconds: Give up (and raise) after this long.
        retain: Keep the Experiment (and its trials) afterwards instead of deleting it.
        poll_seconds: Pause between `get` calls (no watch: one verb fewer in the Role).
        clock: Monotonic clock (injected by tests).
        sleep: Sleep function (injected by tests).
        on_poll: Called with the Experiment's status after every poll (progress).

    Returns:
        The final Experiment object and its Trials (as dicts, from the API).

    Raises:
        KatibError: the API refused the Experiment, the Experiment failed, or it timed out.
    """
    experiment = _experiment(api, body)
    experiment.create(body, on_conflict=lambda err: _adopt_existing(experiment, body))
    namespace, name = experiment.namespace, experiment.name
    try:
        start = clock()
        while True:
            obj = experiment.read()
            status = obj.get("status") or {}
            if on_poll:
                on_poll(status)
            if _finished(obj, namespace, name, clock() - start, timeout_seconds):
                return obj, _list_trials(api, namespace, name)
            sleep(poll_seconds)
    finally:
        if not retain:
            experiment.delete()


def _experiment(api: Any, body: dict[str, Any]) -> CustomObject:
    """The Experiment `body` describes, on `api`, with its refusals as `KatibError`s."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    return CustomObject(
        api, GROUP, VERSION, PLURAL, namespace, name, lambda action, err: _api_error(action, namespace, name, err)
    )


def _adopt_existing(experiment: CustomObject, body: dict[str, Any]) -> None:
    """On 409, resume polling the Experiment if it is this run's own (a retried tune pod).

    It is ours when it carries the same civicml version label and spec hash; anything else
    (another run, or the same version with a changed config) is refused, never reused.
    Like google-cloud-pipeline-components' remote runners, a retry resumes the remote job
    instead of failing on the one it started.

    Raises:
        KatibError: the existing Experiment cannot be read or is not this run's.
    """
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    existing = experiment.read()
    their = existing.get("metadata") or {}
    same_version = (their.get("labels") or {}).get(VERSION_LABEL) == meta["labels"][VERSION_LABEL]
    same_spec = (their.get("annotations") or {}).get(SPEC_ANNOTATION) == meta["annotations"][SPEC_ANNOTATION]
    if not (same_version and same_spec):
        why = "another civicml version" if not same_version else "the same version with a different search"
        raise KatibError(
            f"could not create Katib Experiment {namespace}/{name}: HTTP 409 Conflict; it exists and belongs to "
            f"{why}; delete it (`kubectl -n {namespace} delete experiment {name}`) or use a new version"
        ) from None


def _list_trials(api: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    from kubernetes.client.exceptions import ApiException

    try:
        listed = api.list_namespaced_custom_object(
            GROUP, VERSION, namespace, TRIAL_PLURAL, label_selector=f"{EXPERIMENT_LABEL}={name}"
        )
    except ApiException:
        # The table is a report; the optimum comes from the Experiment itself.
        return []
    return list(listed.get("items") or [])


def _metric_value(metrics: list[Any] | None, name: str) -> float | None:
    for metric in metrics or []:
        if metric.name == name:
            raw = metric.latest if metric.latest not in (None, "") else metric.max
            try:
                return float(raw)
            except (TypeError, ValueError):
                return None
    return None


_TRIAL_STATES = ("Succeeded", "Failed", "EarlyStopped", "Killed", "MetricsUnavailable", "Running", "Created")


def result_from_experiment(cfg: RunConfig, obj: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Turn a finished Experiment (and its Trials) into the same result shape as `run_optuna`.

    Raises:
        KatibError: the Experiment has no optimal trial, or its parameters are not in the space.
    """
    from kubeflow_katib_api.models import V1beta1Experiment, V1beta1Trial

    t = cfg.tuning
    space = space_for(cfg.model.family, t.search_space)
    exp = V1beta1Experiment.from_dict(obj)
    name = exp.metadata.name if exp.metadata else "?"
    optimal = exp.status.current_optimal_trial if exp.status else None
    if optimal is None or not optimal.best_trial_name:
        raise KatibError(f"Katib Experiment {name} finished without a successful trial; no parameters to use")
    assigned = {a.name: a.value for a in optimal.parameter_assignments or []}
    try:
        best_params = coerce_params(space, assigned)
    except ValueError as err:
        raise KatibError(
            f"Katib's best trial {optimal.best_trial_name} has parameters outside the space: {err}"
        ) from None
    best_value = _metric_value(optimal.observation.metrics if optimal.observation else None, t.objective_metric)
    if best_value is None:
        raise KatibError(f"Katib's best trial {optimal.best_trial_name} reported no {t.objective_metric}")

    parsed = [V1beta1Trial.from_dict(item) for item in trials]
    parsed.sort(key=lambda tr: (str(tr.metadata.creation_timestamp or ""), tr.metadata.name or ""))
    rows = []
    for number, tr in enumerate(parsed):
        true_types = {c.type for c in (tr.status.conditions or []) if c.status == "True"} if tr.status else set()
        state = next((s for s in _TRIAL_STATES if s in true_types), "Unknown")
        params = {a.name: a.value for a in (tr.spec.parameter_assignments or [])} if tr.spec else {}
        try:
            params = coerce_params(space, params)
        except ValueError:
            pass  # shown as Katib reported it
        value = _metric_value(
            tr.status.observation.metrics if tr.status and tr.status.observation else None, t.objective_metric
        )
        rows.append({"number": number, "name": tr.metadata.name, "state": state.upper(), "value": value, **params})
    return {
        "backend": "katib",
        "algorithm": t.algorithm,
        "objective_metric": t.objective_metric,
        "direction": t.direction,
        "seed": t.seed,
        "experiment": name,
        "best_trial": optimal.best_trial_name,
        "best_params": best_params,
        "best_value": best_value,
        "trials": rows,
    }


def check_pod_security(cfg: RunConfig, labels: dict[str, str] | None) -> str | None:
    """Refuse early stopping where Pod Security "restricted" is enforced; None when fine, else a warning.

    With early stopping Katib adds an `early-stopping` container to the suggestion pod with
    no securityContext, and katib-config has no key to give it one, so "restricted"
    refuses the pod and the Experiment never starts.

    Args:
        cfg: Run config (`tuning.early_stopping`, `tuning.katib.namespace`).
        labels: The tuning namespace's labels, or None when they could not be read.

    Raises:
        KatibError: early stopping is on and the namespace enforces "restricted".
    """
    if cfg.tuning.early_stopping is None:
        return None
    ns = cfg.tuning.katib.namespace
    if labels is None:
        return (
            f"could not read namespace {ns}'s labels (no RBAC for namespaces): if it enforces Pod Security "
            '"restricted", Katib\'s early-stopping container will be refused and the search will not start'
        )
    if labels.get(ENFORCE_LABEL) == "restricted":
        raise KatibError(
            f"tuning.early_stopping ({cfg.tuning.early_stopping.algorithm}) cannot run in namespace {ns}: it enforces "
            'Pod Security "restricted" and Katib adds an early-stopping container to the suggestion pod that no '
            "katib-config can secure. Either turn early stopping off (remove tuning.early_stopping) or tune in a "
            'namespace enforcing "baseline" (set tuning.katib.namespace; see docs/run-on-kubeflow.md)'
        )
    return None


def _default_api():
    from kubernetes import client

    return client.CustomObjectsApi(api_client())


def _default_core():
    from kubernetes import client

    return client.CoreV1Api(api_client())


def run_katib(cfg: RunConfig, version: str, api: Any = None, on_poll=None, core: Any = None) -> dict[str, Any]:
    """Run the configured search as a Katib Experiment and return the `run_optuna`-shaped result.

    The tuning split must already be in the store (`civicml.tuning.trial.upload_tuning_data`;
    the pipeline's tune step does this first).

    Args:
        cfg: Run config (`tuning`, `tuning.katib`, `deploy.image`, `storage`).
        version: The run's version id (names the Experiment; trials read its tuning data).
        api: CustomObjectsApi; default: in-cluster config, else the local kubeconfig.
        on_poll: Progress callback with the Experiment status after each poll.
        core: CoreV1Api for the Pod Security preflight (only read when early stopping is on).

    Raises:
        KatibError: early stopping in a "restricted" namespace, creation refused, Experiment failed, or timeout.
        ClusterError: no cluster configured, or the API server unreachable.
    """
    require_shared_store(resolve_store_uri(cfg.storage.uri))
    body = experiment_body(build_experiment(cfg, version))
    if cfg.tuning.early_stopping is not None:
        core = core if core is not None else _default_core()
        warning = check_pod_security(cfg, namespace_labels(core, cfg.tuning.katib.namespace))
        if warning:
            log.warning(warning)
    api = api if api is not None else _default_api()
    k = cfg.tuning.katib
    obj, trials = submit_and_wait(api, body, timeout_seconds=k.timeout_seconds, retain=k.retain, on_poll=on_poll)
    return result_from_experiment(cfg, obj, trials)

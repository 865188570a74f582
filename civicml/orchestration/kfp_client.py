"""Submit runs and recurring runs to a Kubeflow Pipelines cluster.

The request bodies are built here as `kfp_server_api` models (`V2beta1Run`,
`V2beta1RecurringRun`) and checked by a round trip through `kfp_server_api.ApiClient`
(serialise, deserialise, serialise again: a field the API does not know would be
dropped and fail the check). The calls to the cluster are a few lines around
`kfp.Client(host=..., existing_token=$KFP_TOKEN)`, so everything but the HTTP call is
tested as data. Cron expressions are checked by `civicml.orchestration.cron`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civicml.config import RunConfig
from civicml.governance.audit import default_actor

# Re-exported: the CLI and tests import the schedule check from here.
from civicml.orchestration.cron import Cron, CronError, parse_cron  # noqa: F401

#: What KFP's own runtime calls on the Kubernetes API, as the run's ServiceAccount, in the run's
#: namespace: (apiGroup, resource, verbs, resourceNames or ()). Read from KFP 2.17.0's
#: backend/src/v2 (every client-go call there); manifests/base/role.yaml (civicml-kfp-runtime)
#: must grant exactly this, and tests/cluster checks it with `can-i` as the ServiceAccount.
KFP_RUNTIME_PERMISSIONS: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = [
    # root-DAG driver (driver/root_dag.go:103) and importer (component/importer_launcher.go:331) ->
    # config.FromConfigMap (config/env.go:73): only NotFound is tolerated, a 403 fails the run.
    ("", "configmaps", ("get",), ("kfp-launcher",)),
    # launcher: the object-store credentials named by kfp-launcher's secretRef (objectstore/object_store.go:391).
    ("", "secrets", ("get",), ("civicml-object-store",)),
    # driver reads its own pod (driver/k8s.go:1198, publishDriverExecution); launcher its retry annotation
    # (component/launcher_v2.go:607). Generated names: no resourceNames.
    ("", "pods", ("get",), ()),
    # Argo >= 3.4 executor: step outputs as WorkflowTaskResults (upstream pipeline-runner-role.yaml).
    ("argoproj.io", "workflowtaskresults", ("create", "patch"), ()),
]

KFP_HOST_ENV = "KFP_HOST"
KFP_TOKEN_ENV = "KFP_TOKEN"
PIPELINES = ("training", "monitoring")
COMPILED_DIR = Path("pipelines/compiled")


class SubmitError(RuntimeError):
    """A run could not be submitted (no host, bad pipeline file, cluster refused)."""


# -- request bodies ---------------------------------------------------------------------------------------


def pipeline_spec_from_yaml(path: str | Path) -> dict[str, Any]:
    """The `pipeline_spec` object of a run request, read from a compiled pipeline YAML.

    Parsed through the KFP protobuf messages (so a malformed file fails here, not on the
    cluster) and shaped like kfp.Client does: the bare PipelineSpec, or
    `{pipeline_spec, platform_spec}` when the YAML carries Kubernetes settings (secrets
    as env, ConfigMaps).

    Raises:
        SubmitError: the file is missing or not a compiled pipeline.
    """
    import yaml
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    p = Path(path)
    if not p.is_file():
        raise SubmitError(f"compiled pipeline {p} does not exist; run `civicml compile` first")
    try:
        docs = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
        spec = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
        platform = pipeline_spec_pb2.PlatformSpec()
        for extra in docs[1:]:
            json_format.ParseDict(extra, platform)
    except (yaml.YAMLError, json_format.ParseError, IndexError, TypeError) as err:
        raise SubmitError(f"{p} is not a compiled KFP pipeline: {err}") from None
    spec_dict = json_format.MessageToDict(spec)
    if platform == pipeline_spec_pb2.PlatformSpec():
        return spec_dict
    return {"pipeline_spec": spec_dict, "platform_spec": json_format.MessageToDict(platform)}


def pipeline_parameters(spec: dict[str, Any]) -> set[str]:
    """Names of the pipeline's input parameters (from `root.inputDefinitions`)."""
    root = spec.get("pipeline_spec", spec).get("root", {})
    return set(root.get("inputDefinitions", {}).get("parameters", {}))


def run_parameters(cfg: RunConfig, spec: dict[str, Any], version: str = "") -> dict[str, Any]:
    """Runtime parameters: the config as JSON (never secrets) and, when the pipeline takes them, a
    version and who started the run.

    `started_by` is the person submitting or scheduling (`CIVICML_ACTOR`, set by `--started-by`,
    else the OS user): on the cluster the step pods run as the pipeline's ServiceAccount, so
    without it separation of duties would see the pod's user, not the person.

    Raises:
        SubmitError: the pipeline does not take `config_json`.
    """
    names = pipeline_parameters(spec)
    if "config_json" not in names:
        raise SubmitError(f"the pipeline takes parameters {sorted(names)}, not config_json; is it a civicml pipeline?")
    params: dict[str, Any] = {"config_json": cfg.to_json()}
    if "version" in names:
        params["version"] = version
    if "started_by" in names:
        params["started_by"] = default_actor()
    return params


def kube_context_namespace() -> str | None:
    """The namespace of the current kube context (or of the pod, in a cluster), if any."""
    pod_ns = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    if pod_ns.is_file():
        return pod_ns.read_text().strip() or None
    try:
        from kubernetes import config

        # The client reads $KUBECONFIG once at import; read it now so the current value counts.
        _, context = config.list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG") or None)
    except Exception:  # noqa: BLE001 - no kubeconfig (or a broken one) just means "no context namespace"
        return None
    return (context or {}).get("context", {}).get("namespace") or None


def run_namespace(cfg: RunConfig, namespace: str | None = None) -> str:
    """The namespace runs go to: `--namespace`, else `deploy.namespace`, else the kube context's.

    Multi-user KFP refuses an experiment without one (resource_manager.go CreateExperiment);
    single-user KFP ignores it (ReplaceNamespace) and runs in its own namespace.

    Raises:
        SubmitError: no namespace from any of the three.
    """
    ns = namespace or cfg.deploy.namespace or kube_context_namespace()
    if not ns:
        raise SubmitError(
            "no namespace for the KFP experiment: pass --namespace NS or set deploy.namespace "
            "(the namespace where civicml-pipeline-runner and kfp-launcher live, e.g. your Kubeflow profile)"
        )
    return ns


def build_experiment_request(cfg: RunConfig, namespace: str):
    """The `V2beta1Experiment` that runs are filed under, in `namespace`."""
    import kfp_server_api

    return kfp_server_api.V2beta1Experiment(
        display_name=cfg.monitoring.kfp_experiment,
        description=f"civicml runs of {cfg.name}",
        namespace=namespace,
    )


def _display_name(cfg: RunConfig, pipeline: str, suffix: str = "") -> str:
    return f"{cfg.name}-{pipeline}{suffix}"


def build_run_request(
    cfg: RunConfig, pipeline: str, pipeline_yaml: str | Path, experiment_id: str | None = None, version: str = ""
):
    """A `V2beta1Run` for one run of a compiled pipeline."""
    import kfp_server_api

    spec = pipeline_spec_from_yaml(pipeline_yaml)
    return kfp_server_api.V2beta1Run(
        experiment_id=experiment_id,
        display_name=_display_name(cfg, pipeline, f"-{version}" if version else ""),
        description=f"civicml {pipeline} pipeline, submitted by `civicml submit`",
        pipeline_spec=spec,
        runtime_config=kfp_server_api.V2beta1RuntimeConfig(parameters=run_parameters(cfg, spec, version)),
        service_account=cfg.monitoring.service_account,
    )


def build_recurring_run_request(
    cfg: RunConfig, pipeline: str, pipeline_yaml: str | Path, cron: str, experiment_id: str | None = None
):
    """A `V2beta1RecurringRun`: cron trigger, one run at a time, no backfill of missed runs.

    Returns:
        (request, Cron) — the Cron carries the note when a 5-field expression was converted.
    """
    import kfp_server_api

    parsed = parse_cron(cron)
    spec = pipeline_spec_from_yaml(pipeline_yaml)
    body = kfp_server_api.V2beta1RecurringRun(
        experiment_id=experiment_id,
        display_name=_display_name(cfg, pipeline, "-recurring"),
        description=f"civicml {pipeline} pipeline on cron '{parsed.expression}', created by `civicml schedule`",
        pipeline_spec=spec,
        runtime_config=kfp_server_api.V2beta1RuntimeConfig(parameters=run_parameters(cfg, spec)),
        service_account=cfg.monitoring.service_account,
        # The API carries max_concurrency as an int64 string.
        max_concurrency="1",
        no_catchup=True,
        mode=kfp_server_api.RecurringRunMode.ENABLE,
        trigger=kfp_server_api.V2beta1Trigger(cron_schedule=kfp_server_api.V2beta1CronSchedule(cron=parsed.expression)),
    )
    return body, parsed


class _Response:
    """The minimal response object `ApiClient.deserialize` reads (`.data`)."""

    def __init__(self, data: str):
        self.data = data


def to_json_dict(body: Any) -> dict[str, Any]:
    """The JSON body kfp_server_api would send for a model."""
    import kfp_server_api

    return kfp_server_api.ApiClient().sanitize_for_serialization(body)


def validate_request(body: Any) -> dict[str, Any]:
    """Round-trip a request through `kfp_server_api.ApiClient` and return its JSON form.

    Raises:
        SubmitError: the body does not survive deserialisation into its own model unchanged.
    """
    import kfp_server_api

    client = kfp_server_api.ApiClient()
    data = client.sanitize_for_serialization(body)
    model = type(body).__name__
    try:
        back = client.deserialize(_Response(json.dumps(data)), model)
    except (ValueError, TypeError) as err:
        raise SubmitError(f"{model} request is not valid for the KFP API: {err}") from None
    again = client.sanitize_for_serialization(back)
    if again != data:
        raise SubmitError(
            f"{model} request changed in a round trip through kfp_server_api "
            f"({_first_difference(data, again)}); a field is misspelt or misplaced"
        )
    _check_enums(data, model)
    return data


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in b:
                return f"field {path}{key} is not part of the API model"
            if key not in a or a[key] != b[key]:
                return _first_difference(a.get(key), b[key], f"{path}{key}.")
    return f"value at {path.rstrip('.') or '<root>'} differs"


def _check_enums(data: Any, type_name: str, path: str = "") -> None:
    """The generated models do not check enum values on deserialisation; check them here."""
    import kfp_server_api

    klass = getattr(kfp_server_api.models, type_name, None)
    if klass is None or not isinstance(data, dict):
        if klass is not None and getattr(klass, "allowable_values", None) and data not in klass.allowable_values:
            raise SubmitError(f"{path.rstrip('.')} is {data!r}; the KFP API accepts {klass.allowable_values}")
        return
    for attr, attr_type in klass.openapi_types.items():
        key = klass.attribute_map[attr]
        if key in data:
            _check_enums(data[key], attr_type, f"{path}{key}.")


# -- the thin cluster calls -----------------------------------------------------------------------------------


def kfp_host(cfg: RunConfig, host: str | None = None) -> str | None:
    """The KFP endpoint: explicit `host`, else env KFP_HOST, else `monitoring.kfp_host`."""
    return host or os.environ.get(KFP_HOST_ENV) or cfg.monitoring.kfp_host


def default_pipeline_yaml(pipeline: str) -> Path:
    """Where `civicml compile` writes a pipeline."""
    if pipeline not in PIPELINES:
        raise SubmitError(f"unknown pipeline {pipeline!r}; choose one of {', '.join(PIPELINES)}")
    return COMPILED_DIR / f"{pipeline}_pipeline.yaml"


@dataclass
class Submitted:
    """What the cluster answered."""

    kind: str
    id: str
    host: str
    request: dict[str, Any] = field(default_factory=dict)


def _client(cfg: RunConfig, host: str | None):
    import kfp

    endpoint = kfp_host(cfg, host)
    if not endpoint:
        raise SubmitError(
            f"no KFP endpoint: pass --host, set {KFP_HOST_ENV} or monitoring.kfp_host in the config "
            "(e.g. http://ml-pipeline-ui.kubeflow:80)"
        )
    # The token comes from the environment only; it is never part of a request body or the config.
    return kfp.Client(host=endpoint, existing_token=os.environ.get(KFP_TOKEN_ENV) or None), endpoint


def _experiment_id(client: Any, cfg: RunConfig, namespace: str | None) -> str:
    """Get or create the run's experiment in its namespace (kfp.Client looks it up by name first)."""
    body = build_experiment_request(cfg, run_namespace(cfg, namespace))
    validate_request(body)
    experiment = client.create_experiment(body.display_name, description=body.description, namespace=body.namespace)
    return experiment.experiment_id


def submit_run(
    cfg: RunConfig,
    pipeline: str,
    pipeline_yaml: str | Path | None = None,
    host: str | None = None,
    version: str = "",
    namespace: str | None = None,
) -> Submitted:
    """Submit one run of a compiled pipeline to the cluster, in `run_namespace(cfg, namespace)`."""
    client, endpoint = _client(cfg, host)
    experiment_id = _experiment_id(client, cfg, namespace)
    body = build_run_request(cfg, pipeline, pipeline_yaml or default_pipeline_yaml(pipeline), experiment_id, version)
    data = validate_request(body)
    res = client.runs.run_service_create_run(run=body)
    return Submitted("run", res.run_id, endpoint, data)


def schedule_run(
    cfg: RunConfig,
    pipeline: str,
    cron: str,
    pipeline_yaml: str | Path | None = None,
    host: str | None = None,
    namespace: str | None = None,
) -> Submitted:
    """Create a recurring run of a compiled pipeline on the cluster, in `run_namespace(cfg, namespace)`."""
    client, endpoint = _client(cfg, host)
    experiment_id = _experiment_id(client, cfg, namespace)
    body, _ = build_recurring_run_request(
        cfg, pipeline, pipeline_yaml or default_pipeline_yaml(pipeline), cron, experiment_id
    )
    data = validate_request(body)
    res = client.recurring_runs.recurring_run_service_create_recurring_run(recurring_run=body)
    return Submitted("recurring_run", res.recurring_run_id, endpoint, data)

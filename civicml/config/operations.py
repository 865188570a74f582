"""`storage:`, `audit:`, `steps:`, `deploy:`, `serving:` and `monitoring:`: where things live and run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from civicml.config.base import Strict as _Strict
from civicml.config.checks import check_known_metric


class StorageConfig(_Strict):
    """Where artifacts and the registry live. No credentials here, ever."""

    uri: str = ".civicml"
    secret_name: str = Field("civicml-object-store", description="Kubernetes Secret with the store credentials")
    server_secret_name: str = Field(
        "civicml-model-server-store",
        description="Secret with the model server's own store credential: read-only, plus writes under logs/",
    )
    runs_keep: int = Field(
        20, ge=1, description="run folders (pipeline + kfp.local log) kept under <store>/runs; `models gc` prunes too"
    )


class StepResources(_Strict):
    """CPU/memory requests and limits of every pipeline step's pod (ResourceQuota namespaces need them)."""

    cpu: str = "500m"
    memory: str = "1Gi"
    cpu_limit: str = "2"
    memory_limit: str = "4Gi"


class AuditConfig(_Strict):
    """How the audit log is checked. The private signing key never appears here (see docs/audit.md)."""

    public_keys: list[str] = Field(
        default_factory=list,
        description="Ed25519 public keys ('ed25519:<base64>', from `civicml audit keygen`) whose signatures "
        "`audit verify` trusts; keep every key that ever signed, so that old records stay verifiable after a "
        "rotation. When set, unsigned records and keys found only in the store are refused.",
    )
    signing_secret_name: str | None = Field(
        None,
        description="Kubernetes Secret with the private signing key (key `signing-key.pem`), mounted read-only "
        "into the pipeline's tasks only (the model server never gets it); unset: records are not signed on a cluster",
    )


class DeployConfig(_Strict):
    """How an approved model reaches users."""

    target: Literal["local", "kubernetes"] = "local"
    mode: Literal["replace", "challenger"] = "replace"
    challenger_traffic: float = Field(0.1, ge=0.0, le=1.0)
    namespace: str = "civicml"
    name: str = "civicml-model-server"
    image: str = "ghcr.io/civicml/civicml:0.1.0"
    replicas: int = Field(2, ge=1)
    rollout_timeout_seconds: int = Field(300, ge=10)
    poll_seconds: float = Field(2.0, gt=0, description="how often the rollout status is read")
    port: int = Field(8080, ge=1024, le=65535, description="container port (non-root: above 1023)")
    client_namespaces: list[str] = Field(
        default_factory=list,
        description="namespaces whose pods may call the model server (its own namespace always may)",
    )
    cpu: str = "250m"
    memory: str = "512Mi"
    cpu_limit: str = "1"
    memory_limit: str = "1Gi"
    log_flush_seconds: float = Field(
        0.0,
        ge=0,
        le=10,
        description="how long a prediction may wait for others to share its log write; 0 = write at once "
        "(requests that arrive during a write share the next one)",
    )
    log_batch_records: int = Field(256, ge=1, description="a log batch is written once it holds this many records")
    log_ack: Literal["durable", "early"] = Field(
        "durable",
        description="durable: a prediction is answered once its log record is in the store; early: once queued "
        "(faster; a crash loses the queued records: see civicml.serving.predlog)",
    )


class ClientAuth(_Strict):
    """Who may call a group of server routes.

    `none`: anyone who can reach the port. `token`: `Authorization: Bearer <token>`, where the token
    is the value of the environment variable `token_env` (a Kubernetes Secret on a cluster; never the
    config). `mesh`: mTLS terminated by the service mesh's sidecar, which sets `mesh_header` (Envoy's
    `x-forwarded-client-cert`, with the caller's SPIFFE id as `URI=`); only callers whose identity is in
    `mesh_identities` are admitted. Use `mesh` only when the sidecar sanitises that header (Istio does).
    """

    mode: Literal["none", "token", "mesh"] = "none"
    token_env: str = Field("CIVICML_FEEDBACK_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    mesh_header: str = "x-forwarded-client-cert"
    mesh_identities: list[str] = Field(
        default_factory=list, description="e.g. spiffe://cluster.local/ns/case-system/sa/case-worker"
    )

    @model_validator(mode="after")
    def _mesh_needs_identities(self) -> ClientAuth:
        if self.mode == "mesh" and not self.mesh_identities:
            raise ValueError(
                "mode: mesh needs mesh_identities, the SPIFFE ids allowed to call, e.g. "
                "[spiffe://cluster.local/ns/case-system/sa/case-worker]"
            )
        return self


class ServingConfig(_Strict):
    """The model server's exposure and limits (the same on a laptop and on a cluster)."""

    predict_auth: ClientAuth = Field(
        default_factory=lambda: ClientAuth(mode="none", token_env="CIVICML_PREDICT_TOKEN"),
        description="who may ask for predictions (open by default)",
    )
    feedback_auth: ClientAuth = Field(
        default_factory=lambda: ClientAuth(mode="token"),
        description="who may label predictions; labels decide A/B promotions, so not open by default",
    )
    request_id_key_env: str = Field(
        "CIVICML_REQUEST_ID_KEY",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="env var with the key that signs issued request ids (shared by replicas); unset: the "
        "feedback token, else a per-process key (feedback then only reaches the replica that predicted)",
    )
    auth_secret_name: str = Field(
        "civicml-model-server-auth",
        description="Kubernetes Secret with the tokens (keys named like their env vars: CIVICML_FEEDBACK_TOKEN, ...)",
    )
    metrics: bool = Field(True, description="serve Prometheus /metrics")
    docs: bool = Field(True, description="serve /docs, /redoc and /openapi.json")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="larger bodies get 413 while being read")
    body_timeout_seconds: float = Field(10.0, gt=0, le=300, description="a body not received by then gets 408")
    max_rows: int = Field(10_000, ge=1, description="records (or tensor rows) per request")
    max_explain_rows: int = Field(100, ge=0, description="records per request with explain=true")
    readiness_probe_seconds: float = Field(5.0, ge=0, description="how often readiness re-checks the store")
    refresh_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="how often a running server re-reads the champion/challenger aliases and the A/B share; a "
        "change is served within this plus the new version's load time (civicml.serving.reload)",
    )


class MonitoringConfig(_Strict):
    """When drift or live performance should trigger retraining, and where retraining runs.

    A feature counts as drifted when its two-sample test rejects at `p_value` *and* its PSI
    reaches `feature_psi` (the 0.1 "moderate" band): with thousands of rows a test alone
    flags differences too small to matter. Retraining is triggered when the drifted share
    reaches `max_drift_share`, any PSI reaches `psi_threshold` (the 0.25 "major" band) or a
    live metric falls more than `max_metric_drop` below the version's test value.
    """

    psi_threshold: float = Field(0.25, gt=0, description="PSI at or above this triggers retraining ('major' band)")
    feature_psi: float = Field(0.1, gt=0, description="minimum PSI for a feature to count as drifted ('moderate')")
    max_drift_share: float = Field(0.3, ge=0, le=1)
    max_metric_drop: float = Field(0.05, ge=0)
    performance_metric: str | None = Field(None, description="metric watched live; default roc_auc (r2 for regression)")
    min_new_rows: int = Field(500, ge=0, description="fewer window rows than this never trigger retraining")
    min_feedback_rows: int = Field(200, ge=1, description="labelled rows needed before live performance is judged")
    p_value: float = Field(0.01, gt=0, lt=1)
    window_source: str = Field(
        "",
        description="what to compare with the reference: 'serving-log' (the model server's prediction log), a "
        "data source (path, s3://, demo:...) for a new batch, or '' for data.source",
    )
    window_days: float = Field(7.0, ge=0, description="serving-log window: the last N days (0 = the whole log)")
    retrain_target: Literal["auto", "local", "kfp"] = Field(
        "auto", description="where retraining runs: kfp when a KFP host is set (kfp_host or KFP_HOST), else local"
    )
    kfp_host: str | None = Field(None, description="KFP API endpoint; env KFP_HOST wins; token from env KFP_TOKEN")
    kfp_experiment: str = "civicml"
    service_account: str = "civicml-pipeline-runner"

    @field_validator("performance_metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        return check_known_metric(value)

    @field_validator("kfp_host")
    @classmethod
    def _no_credentials_in_host(cls, value: str | None) -> str | None:
        # The config travels as a pipeline parameter: a URL with user:password@ would leak a secret.
        if value and "@" in value.split("://", 1)[-1].split("/", 1)[0]:
            raise ValueError("kfp_host must not contain credentials (user:password@); set KFP_TOKEN instead")
        return value

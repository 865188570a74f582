"""Run configuration: one validated object that every step receives.

The config travels through the pipeline as a JSON string parameter, so it must
never hold secrets: credentials come from environment variables only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config file or value is wrong; the message names the key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DemoOptions(_Strict):
    """Knobs of the synthetic `demo:benefits` table."""

    rows: int = Field(5000, ge=100, le=10_000_000)
    month: int = Field(1, ge=1, le=36, description="1 = reference month; later months drift")
    bias: float = Field(0.0, ge=0.0, le=1.0, description="strength of injected bias against one group")
    seed: int = 7


class ColumnSpec(_Strict):
    """One column of a declared data contract."""

    name: str
    kind: Literal["numeric", "categorical"]
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None


class DataConfig(_Strict):
    """Where the data comes from and what each column means."""

    source: str = Field("demo:benefits", description="path (.csv/.parquet), s3://bucket/key, or demo:benefits")
    demo: DemoOptions = DemoOptions()
    target: str = "needs_review"
    numeric_features: list[str] | None = None
    categorical_features: list[str] | None = None
    sensitive_attributes: list[str] = Field(default_factory=list)
    allow_sensitive_as_features: bool = False
    pii_columns: list[str] = Field(default_factory=list)
    contract: list[ColumnSpec] | None = Field(
        None, description="declared data contract; when absent it is inferred on the first run and stored"
    )
    out_of_contract: Literal["warn", "error"] = Field(
        "warn",
        description="values outside the contract's ranges or categories: 'warn' (shown on screen, in the KFP "
        "log and on the model card) or 'error' (the run stops in validate-data)",
    )

    @model_validator(mode="after")
    def _target_not_feature(self) -> DataConfig:
        for key in ("numeric_features", "categorical_features"):
            cols = getattr(self, key) or []
            if self.target in cols:
                raise ValueError(f"target {self.target!r} is also listed in data.{key}; remove it from the features")
            pii = set(cols) & set(self.pii_columns)
            if pii:
                raise ValueError(f"PII column(s) {sorted(pii)} listed in data.{key}; PII is never a feature")
        return self


class SplitConfig(_Strict):
    """Deterministic stratified train/valid/test split."""

    valid_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    seed: int = 42


# Hyperparameters each family accepts (fixed in `model.params` or searched in `tuning.search_space`).
# Checked here so a family switch with a leftover parameter fails at load time, naming the key,
# instead of deep inside a tuning trial.
FAMILY_PARAMS: dict[str, frozenset[str]] = {
    "xgboost": frozenset(
        {
            "n_estimators",
            "max_depth",
            "learning_rate",
            "subsample",
            "colsample_bytree",
            "colsample_bylevel",
            "colsample_bynode",
            "min_child_weight",
            "gamma",
            "reg_alpha",
            "reg_lambda",
            "max_bin",
            "max_leaves",
            "grow_policy",
            "scale_pos_weight",
            "max_delta_step",
            "max_cat_to_onehot",
            "max_cat_threshold",
        }
    ),
    "logistic_regression": frozenset(
        {"C", "penalty", "l1_ratio", "max_iter", "tol", "solver", "class_weight", "fit_intercept"}
    ),
    "random_forest": frozenset(
        {
            "n_estimators",
            "max_depth",
            "min_samples_split",
            "min_samples_leaf",
            "max_features",
            "max_leaf_nodes",
            "min_impurity_decrease",
            "bootstrap",
            "class_weight",
            "criterion",
            "max_samples",
            "ccp_alpha",
        }
    ),
}


class ThresholdConfig(_Strict):
    """How the classification decision threshold is chosen on the validation split.

    `fixed` uses `value` (default 0.5); `max_f1` and `max_youden` maximise F1 or TPR − FPR;
    `target_precision` / `target_recall` reach `value` (see `civicml.evaluation.threshold`).
    """

    rule: Literal["fixed", "max_f1", "max_youden", "target_precision", "target_recall"] = "fixed"
    value: float | None = Field(None, gt=0, le=1, description="fixed threshold, or the target precision/recall")

    @model_validator(mode="after")
    def _target(self) -> ThresholdConfig:
        if self.rule.startswith("target_") and self.value is None:
            raise ValueError(f"model.threshold.rule {self.rule} needs model.threshold.value, e.g. value: 0.8")
        return self


class ModelConfig(_Strict):
    """Model family and fixed parameters (tuned ones come from `tuning`)."""

    family: Literal["xgboost", "logistic_regression", "random_forest"] = "xgboost"
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 42
    n_threads: int = Field(2, ge=1, description="fixed so XGBoost `hist` is bit-for-bit reproducible")
    threshold: ThresholdConfig = ThresholdConfig()


class ParamSpec(_Strict):
    """One hyperparameter of the search space (Katib's parameterType vocabulary)."""

    type: Literal["double", "int", "categorical"]
    min: float | None = None
    max: float | None = None
    log: bool = False
    step: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.values:
                raise ValueError("categorical parameter needs a non-empty 'values' list, e.g. values: [a, b]")
        else:
            if self.min is None or self.max is None:
                raise ValueError(f"{self.type} parameter needs 'min' and 'max', e.g. min: 0.01, max: 0.3")
            if self.min >= self.max:
                raise ValueError(f"min ({self.min}) must be < max ({self.max})")
            if self.log and self.min <= 0:
                raise ValueError(f"log scale needs min > 0, got min={self.min}")
            if self.type == "int" and (self.min != int(self.min) or self.max != int(self.max)):
                raise ValueError(f"int parameter needs whole-number bounds, got {self.min}..{self.max}")
            if self.step is not None:
                if self.step <= 0 or self.step > (self.max - self.min) * (1 + 1e-9):
                    raise ValueError(f"step ({self.step}) must be > 0 and <= max - min ({self.max - self.min})")
                if self.log:
                    raise ValueError("a log-scale parameter cannot have a step; drop 'step' or set log: false")
                if self.type == "int" and self.step != int(self.step):
                    raise ValueError(f"int parameter needs a whole-number step, got {self.step}")
        if self.values is not None and self.type != "categorical":
            raise ValueError(f"'values' is only for categorical parameters; this one is {self.type}")
        if self.values is not None:
            if len({str(v) for v in self.values}) != len(self.values):
                raise ValueError(
                    f"categorical values must be distinct (as text, which is how Katib passes them): {self.values}"
                )
            if any(not isinstance(v, (str, int, float, bool)) for v in self.values):
                raise ValueError(f"categorical values must be strings, numbers or booleans, got {self.values}")
        return self

    def grid_size(self) -> int | None:
        """How many points this parameter contributes to a grid (None: not griddable, i.e. double without step)."""
        if self.type == "categorical":
            return len(self.values or [])
        if self.type == "int":
            return int((int(self.max) - int(self.min)) // int(self.step or 1)) + 1
        if self.step is None:
            return None
        return int((self.max - self.min) / self.step + 1e-9) + 1


class EarlyStopping(_Strict):
    """Katib `medianstop` settings; locally Optuna's MedianPruner."""

    algorithm: Literal["medianstop"] = "medianstop"
    min_trials_required: int = Field(3, ge=1)
    start_step: int = Field(5, ge=1)


class KatibOptions(_Strict):
    """Cluster-side settings for the Katib backend."""

    namespace: str = "civicml"
    timeout_seconds: int = Field(3600, ge=60)
    retain: bool = False
    cpu: str = "1"
    memory: str = "2Gi"


ALGORITHMS = ("random", "tpe", "multivariate-tpe", "cmaes", "grid")


class TuningConfig(_Strict):
    """One search space, run by Optuna locally or by Katib on a cluster."""

    backend: Literal["optuna", "katib"] = "optuna"
    algorithm: str = "tpe"
    objective_metric: str = "roc_auc"
    direction: Literal["maximize", "minimize"] = "maximize"
    max_trials: int = Field(8, ge=1, le=10_000)
    parallel_trials: int = Field(
        1,
        ge=1,
        description="Katib only: trials at once. Optuna runs one at a time (n_jobs=1) so a search repeats exactly",
    )
    max_failed_trials: int = Field(3, ge=0)
    seed: int = 42
    early_stopping: EarlyStopping | None = None
    search_space: dict[str, ParamSpec] = Field(default_factory=dict)
    katib: KatibOptions = KatibOptions()

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, value: str) -> str:
        if value not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {value!r}; choose one of {', '.join(ALGORITHMS)}")
        return value

    @field_validator("search_space")
    @classmethod
    def _param_names(cls, value: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        # Names become Katib `${trialParameters.NAME}` placeholders and CLI flags.
        for name in value:
            if not _PARAM_NAME.fullmatch(name):
                raise ValueError(f"parameter name {name!r} must be letters, digits and '_' (e.g. learning_rate)")
        return value

    @model_validator(mode="after")
    def _check(self) -> TuningConfig:
        # An empty space means "the model family's default", checked when resolved
        # (civicml.modeling.search_space.space_for), where the family is known.
        if self.search_space:
            check_space_for_algorithm(self.algorithm, self.search_space, self.max_trials)
            if self.backend == "katib":
                check_katib_arg_values(self.search_space)
        # Katib's Experiment webhook refuses both (validator.go); an unset value is capped
        # at max_trials when the Experiment is built, a value the user wrote is refused here.
        # (Optuna runs one trial at a time and ignores both bounds, so only Katib is checked.)
        for name in ("max_failed_trials", "parallel_trials"):
            value = getattr(self, name)
            if self.backend == "katib" and name in self.model_fields_set and value > self.max_trials:
                raise ValueError(
                    f"tuning.{name} ({value}) is larger than tuning.max_trials ({self.max_trials}); Katib refuses "
                    f"such an Experiment: set {name} to at most {self.max_trials} (e.g. {name}: "
                    f"{min(value, self.max_trials)}) or raise max_trials"
                )
        return self


#: Values Katib can pass to a trial safely: its webhook joins the trial's args with spaces
#: into one `sh -c` string without quoting, so a space or shell character would split or
#: run as shell syntax.
KATIB_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.+-]+")


def check_katib_arg_values(space: dict[str, ParamSpec]) -> None:
    """Raise ValueError for a categorical value Katib would pass to `sh -c` unquoted."""
    for name, p in space.items():
        if p.type != "categorical":
            continue
        bad = [v for v in p.values or [] if not KATIB_SAFE_VALUE.fullmatch(str(v))]
        if bad:
            raise ValueError(
                f"search_space.{name}: value(s) {bad!r} contain spaces or shell characters; Katib passes trial "
                "arguments to `sh -c` unquoted, so they would break the trial command. Use letters, digits and "
                "_ . + - only (e.g. 'squared_error' rather than 'squared error')"
            )


_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_space_for_algorithm(algorithm: str, space: dict[str, ParamSpec], max_trials: int) -> None:
    """Raise ValueError when `space` cannot be searched by `algorithm` (the same rules Katib applies)."""
    if algorithm == "cmaes":
        continuous = [n for n, p in space.items() if p.type != "categorical"]
        if len(continuous) < 2:
            raise ValueError(
                f"algorithm cmaes needs at least two continuous (double/int) parameters in search_space, "
                f"got {continuous or 'none'}; add one or choose tpe"
            )
    if algorithm == "grid":
        bad = [n for n, p in space.items() if p.grid_size() is None]
        if bad:
            raise ValueError(f"algorithm grid needs 'step' on every double parameter (and no log scale): {bad}")
        combos = 1
        for p in space.values():
            combos *= p.grid_size() or 1
        if max_trials > combos:
            raise ValueError(
                f"algorithm grid: max_trials ({max_trials}) exceeds the {combos} grid points; Katib rejects "
                f"this, lower max_trials to {combos} or refine the grid"
            )


# Metric names a policy may use, by direction (mirrors civicml.evaluation.metrics; config sits below it).
HIGHER_IS_BETTER_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "r2")
LOWER_IS_BETTER_METRICS = ("log_loss", "brier", "mse", "rmse", "mae")


# Which fairness measures each task produces (civicml.evaluation.fairness): one place for the gate and
# the config check.
FAIRNESS_METRICS_BY_TASK = {
    "binary_classification": ("demographic_parity_ratio", "demographic_parity_difference", "equalized_odds_difference"),
    "regression": tuple(f"{m}_{k}" for m in ("mae", "mse", "mean_prediction") for k in ("difference", "ratio")),
}


class FairnessRule(_Strict):
    """A fairness limit applied to every sensitive attribute (or to `attributes` only).

    Example (the four-fifths rule): `{metric: demographic_parity_ratio, min: 0.8}`.
    """

    metric: Literal[
        "demographic_parity_ratio",
        "demographic_parity_difference",
        "equalized_odds_difference",
        "mae_difference",
        "mae_ratio",
        "mse_difference",
        "mse_ratio",
        "mean_prediction_difference",
        "mean_prediction_ratio",
    ]
    min: float | None = None
    max: float | None = None
    attributes: list[str] | None = Field(None, description="restrict the rule to these attributes; default all")
    optional: bool = Field(
        False,
        description="when the rule cannot be measured (no sensitive attribute configured) it is shown as not "
        "measured and does not fail the gate; a required rule that cannot be measured fails it",
    )

    @model_validator(mode="after")
    def _bound(self) -> FairnessRule:
        if self.min is None and self.max is None:
            raise ValueError(
                f"fairness rule on {self.metric} needs 'min' or 'max', e.g. {{metric: {self.metric}, "
                + ("min: 0.8}" if self.metric.endswith("ratio") else "max: 0.1}")
            )
        return self


SKILL_DEFAULTS = {"binary_classification": ("balanced_accuracy", 0.05), "regression": ("rmse", 0.0)}


class SkillRule(_Strict):
    """The model must beat the no-skill baseline (majority class / prior; the mean for regression).

    The margin is the model's metric minus the baseline's (flipped for lower-is-better metrics, so
    positive = better). Judged on the margin's 95% bootstrap lower bound unless `use_ci_lower_bound`
    is false. Defaults: balanced_accuracy with `min_margin` 0.05 for classification (a constant
    predictor has 0.5 whatever the class balance); rmse with `min_margin` 0 for regression.
    """

    enabled: bool = True
    metric: str | None = Field(None, description="default: balanced_accuracy (classification), rmse (regression)")
    min_margin: float | None = Field(None, description="default: 0.05 (classification), 0.0 (regression)")
    use_ci_lower_bound: bool = True

    def resolved(self, task: str) -> tuple[str, float]:
        """(metric, min_margin) with the task defaults filled in."""
        metric, margin = SKILL_DEFAULTS[task]
        return (self.metric or metric, margin if self.min_margin is None else self.min_margin)

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        known = HIGHER_IS_BETTER_METRICS + LOWER_IS_BETTER_METRICS
        if value is not None and value not in known:
            raise ValueError(f"unknown metric {value!r} in policy.skill.metric; use one of {', '.join(known)}")
        return value


class PolicyConfig(_Strict):
    """Gate rules: what a model must meet before it may serve anyone.

    `min_metrics` None means the task default: `{roc_auc: 0.7}` for classification,
    `{r2: 0.0}` (better than predicting the mean) for regression.
    """

    min_metrics: dict[str, float] | None = None
    max_metrics: dict[str, float] = Field(default_factory=dict)
    use_ci_lower_bound: bool = Field(
        False, description="judge min_metrics on the 95% CI lower bound (max_metrics on the upper bound)"
    )
    fairness: list[FairnessRule] = Field(
        # The built-in rule is optional: a project that names no sensitive attribute sees "not measured".
        # A rule the user writes is required unless it says `optional: true`.
        default_factory=lambda: [FairnessRule(metric="demographic_parity_ratio", min=0.8, optional=True)]
    )
    skill: SkillRule = SkillRule()
    min_group_count: int = Field(30, ge=1)
    non_inferiority_margin: float = Field(0.01, ge=0.0)
    require_approval: Literal["always", "never", "borderline"] = "never"
    borderline_margin: float = Field(0.02, ge=0.0)
    borderline_approvals: int = Field(
        1,
        ge=1,
        le=5,
        description="approvals from different people a version needs when the gate marks it borderline",
    )

    @model_validator(mode="after")
    def _metric_names(self) -> PolicyConfig:
        for name in self.min_metrics or {}:
            if name in LOWER_IS_BETTER_METRICS:
                raise ValueError(f"{name} is lower-is-better: put it under policy.max_metrics, not min_metrics")
            if name not in HIGHER_IS_BETTER_METRICS:
                raise ValueError(
                    f"unknown metric {name!r} in policy.min_metrics; use one of {', '.join(HIGHER_IS_BETTER_METRICS)}"
                )
        for name in self.max_metrics:
            if name in HIGHER_IS_BETTER_METRICS:
                raise ValueError(f"{name} is higher-is-better: put it under policy.min_metrics, not max_metrics")
            if name not in LOWER_IS_BETTER_METRICS:
                raise ValueError(
                    f"unknown metric {name!r} in policy.max_metrics; use one of {', '.join(LOWER_IS_BETTER_METRICS)}"
                )
        return self


class TrainingConfig(_Strict):
    """Where the final fit runs: one process, or XGBoost's collective across `workers` processes."""

    workers: int = Field(
        1, ge=1, le=64, description="1 = one process; N > 1 = N XGBoost workers, each reading only its shard"
    )
    backend: Literal["local", "trainjob"] = Field(
        "local", description="local: N processes on loopback; trainjob: a Kubeflow Trainer TrainJob (cluster)"
    )
    runtime: str = Field("xgboost-distributed", description="the Kubeflow Trainer ClusterTrainingRuntime")
    namespace: str = "civicml"
    cpu: str = "1"
    memory: str = "2Gi"
    timeout_seconds: int = Field(3600, ge=10, description="the whole distributed fit, workers included")
    poll_seconds: float = Field(5.0, gt=0)


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
        if value is not None and value not in HIGHER_IS_BETTER_METRICS + LOWER_IS_BETTER_METRICS:
            raise ValueError(
                f"unknown metric {value!r}; use one of {', '.join(HIGHER_IS_BETTER_METRICS + LOWER_IS_BETTER_METRICS)}"
            )
        return value

    @field_validator("kfp_host")
    @classmethod
    def _no_credentials_in_host(cls, value: str | None) -> str | None:
        # The config travels as a pipeline parameter: a URL with user:password@ would leak a secret.
        if value and "@" in value.split("://", 1)[-1].split("/", 1)[0]:
            raise ValueError("kfp_host must not contain credentials (user:password@); set KFP_TOKEN instead")
        return value


class CardConfig(_Strict):
    """Text for the model card that only people can write."""

    # No defaults about a use the user did not describe: an unset field is shown as missing on the card.
    title: str | None = Field(None, description="default: the project's name")
    owner: str | None = None
    contact: str | None = Field(None, description="where to report a problem with the model, e.g. an email")
    intended_use: str | None = Field(None, description="what the model is for and who acts on its output")
    out_of_scope: str | None = Field(None, description="uses the model must not be put to")
    limitations: str | None = Field(None, description="data, population and period it was not validated for")
    ethical_considerations: str | None = None

    def missing(self) -> list[str]:
        """The `card.*` keys a reviewer needs that nobody wrote."""
        return [k for k in ("owner", "intended_use", "limitations") if not (getattr(self, k) or "").strip()]


# The metrics each task produces (civicml.evaluation.metrics computes exactly these).
TASK_METRICS = {
    "binary_classification": (
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
    ),
    "regression": ("mse", "rmse", "mae", "r2"),
}
TASK_DEFAULT_OBJECTIVE = {"binary_classification": "roc_auc", "regression": "rmse"}


def check_against_task(cfg: RunConfig) -> RunConfig:
    """Refuse metric names the task cannot produce, before any step runs; fill task defaults.

    Checked: `tuning.objective_metric` and `tuning.direction`, `policy.min_metrics`/`max_metrics`,
    `policy.fairness[*].metric` and `policy.skill.metric`. Each message names the key and the fix.
    Unset tuning keys take the task's default (roc_auc/maximize; rmse/minimize for regression).
    """
    task = cfg.task
    produced = TASK_METRICS[task]
    tuning = cfg.tuning
    if "objective_metric" not in tuning.model_fields_set:
        tuning.objective_metric = TASK_DEFAULT_OBJECTIVE[task]
    metric = tuning.objective_metric
    if metric not in produced:
        raise ValueError(
            f"tuning.objective_metric {metric!r} is not computed for task {task}; use one of {', '.join(produced)} "
            f"(e.g. tuning: {{objective_metric: {TASK_DEFAULT_OBJECTIVE[task]}}})"
        )
    wanted = "minimize" if metric in LOWER_IS_BETTER_METRICS else "maximize"
    if "direction" not in tuning.model_fields_set:
        tuning.direction = wanted
    elif tuning.direction != wanted:
        raise ValueError(
            f"tuning.direction is {tuning.direction!r}, but {metric} is best {wanted}d: set direction: {wanted}"
        )
    policy = cfg.policy
    for key, names in (("policy.min_metrics", policy.min_metrics or {}), ("policy.max_metrics", policy.max_metrics)):
        wrong = sorted(set(names) - set(produced))
        if wrong:
            raise ValueError(
                f"{key} has {wrong}, which task {task} does not compute (they would fail every model); "
                f"use metrics of {task}: {', '.join(produced)}"
            )
    fair = FAIRNESS_METRICS_BY_TASK[task]
    if "fairness" not in policy.model_fields_set and task == "regression":
        # The built-in rule is the four-fifths rule on selection rates; for regression the same 0.8 on the
        # ratio of the groups' mean absolute errors (optional, like the classification default).
        policy.fairness = [FairnessRule(metric="mae_ratio", min=0.8, optional=True)]
    for i, rule in enumerate(policy.fairness):
        if rule.metric not in fair:
            raise ValueError(
                f"policy.fairness[{i}].metric {rule.metric!r} is not measured for task {task}; use one of "
                f"{', '.join(fair)}"
            )
    if policy.skill.metric is not None and policy.skill.metric not in produced:
        raise ValueError(
            f"policy.skill.metric {policy.skill.metric!r} is not computed for task {task}; use one of "
            f"{', '.join(produced)}"
        )
    return cfg


class TransparencyConfig(_Strict):
    """What only people know, for the UK Algorithmic Transparency Recording Standard (ATRS v3) record.

    Each key is the ATRS v3 attribute of the same name. Nothing here is ever invented: a key left
    empty is shown in the record as "not filled in", naming this key. Facts the system knows (model,
    data, metrics, fairness, gate, approvals) come from the version's lineage instead.
    """

    organisation_name: str | None = Field(None, description="0.12 / 2.1.1, e.g. 'Department for Work and Pensions'")
    organisation_type: str | None = Field(None, description="0.3, e.g. 'Ministerial department'")
    function: str | None = Field(None, description="0.4, e.g. 'Benefits and welfare'")
    region: str | None = Field(None, description="0.14, e.g. 'England'")
    phase: str | None = Field(None, description="0.13 / 2.4.1.2: 'Pre-deployment', 'Beta/Pilot', 'Production'...")
    one_sentence_description: str | None = Field(None, description="0.15: the record's subheading")
    description: str | None = Field(None, description="1.2: plain-language summary (how and why the tool is used)")
    website_url: str | None = Field(None, description="1.3: page with more information")
    contact_email: str | None = Field(None, description="1.4: a team address, not a person's")
    team: str | None = Field(None, description="2.1.2")
    senior_responsible_owner: str | None = Field(None, description="2.1.3: name and role title")
    external_supplier_involvement: str | None = Field(None, description="2.1.4: 'No', or 'Yes' with 2.1.4.x")
    external_supplier: str | None = None
    companies_house_number: str | None = None
    external_supplier_role: str | None = None
    procurement_procedure_type: str | None = None
    data_access_terms: str | None = None
    scope: str | None = Field(None, description="2.2.2: purpose and the scenarios it is designed for")
    benefit: str | None = Field(None, description="2.2.3")
    previous_process: str | None = Field(None, description="2.2.4: how decisions were made before")
    alternatives_considered: str | None = Field(None, description="2.2.5")
    process_integration: str | None = Field(None, description="2.3.1: where the output enters the decision")
    provided_information: str | None = Field(None, description="2.3.2: what the decision maker sees")
    frequency_and_scale_of_usage: str | None = Field(None, description="2.3.3")
    human_decisions_and_review: str | None = Field(None, description="2.3.4: decisions people take")
    required_training: str | None = Field(None, description="2.3.5")
    appeals_and_review: str | None = Field(None, description="2.3.6: how the public can appeal")
    system_architecture: str | None = Field(None, description="2.4.1.1")
    maintenance: str | None = Field(None, description="2.4.1.3: review and retraining schedule")
    data_description: str | None = Field(None, description="2.4.3.3")
    data_modality: str | None = Field(None, description="2.4.3.2, e.g. 'Tabular'")
    source_data_url: str | None = Field(None, description="2.4.3.7")
    data_collection: str | None = Field(None, description="2.4.3.8: original purpose of collection")
    data_sharing_agreements: str | None = Field(None, description="2.4.3.10")
    data_access_and_storage: str | None = Field(None, description="2.4.3.11")
    impact_assessment: str | None = Field(None, description="2.5.1: DPIA, EIA... with dates")
    risks_and_mitigations: str | None = Field(None, description="2.5.2: risks people identified")


class ReviewConfig(_Strict):
    """The reviewer console (`civicml review`): who may see and decide what.

    Roles, lowest first: `viewer` reads everything; `reviewer` may also reject a pending version;
    `approver` may approve or reject. An entry is a user name (`alice@example.gov.uk`) or a group
    (`group:model-approvers`); `*` means everyone who signed in. A person's role is the highest
    that lists them; someone listed nowhere is refused.
    """

    behind_gateway: bool = Field(
        False,
        description="trust the user header set by the Kubeflow gateway (only when nothing else can reach the "
        "console); otherwise people sign in with a name and the token printed at start-up",
    )
    user_header: str = Field("kubeflow-userid", min_length=1)
    groups_header: str | None = Field("kubeflow-groups", description="comma-separated groups; None ignores groups")
    user_prefix: str = Field("", description="prefix the gateway puts before the user name (removed), e.g. 'accounts:'")
    viewers: list[str] = Field(default_factory=lambda: ["*"])
    reviewers: list[str] = Field(default_factory=list)
    approvers: list[str] = Field(default_factory=list)
    session_minutes: int = Field(30, ge=1, le=24 * 60, description="a session expires this long after sign-in")
    path_prefix: str = Field(
        "",
        pattern=r"^(/[A-Za-z0-9._~-]+)*$",
        description="URL prefix the gateway serves the console under, e.g. /civicml-review ('' = the root)",
    )


class RunConfig(_Strict):
    """Everything one training run needs; serialisable to JSON for KFP parameters."""

    name: str = "benefits-review"
    task: Literal["binary_classification", "regression"] = "binary_classification"
    data: DataConfig = DataConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    tuning: TuningConfig = TuningConfig()
    policy: PolicyConfig = PolicyConfig()
    training: TrainingConfig = TrainingConfig()
    storage: StorageConfig = StorageConfig()
    audit: AuditConfig = AuditConfig()
    deploy: DeployConfig = DeployConfig()
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    card: CardConfig = CardConfig()
    steps: StepResources = StepResources()
    transparency: TransparencyConfig = TransparencyConfig()
    review: ReviewConfig = ReviewConfig()

    @model_validator(mode="after")
    def _fits_the_task(self) -> RunConfig:
        return check_against_task(self)

    @model_validator(mode="after")
    def _params_fit_family(self) -> RunConfig:
        allowed = FAMILY_PARAMS[self.model.family]
        for key, names in (("model.params", self.model.params), ("tuning.search_space", self.tuning.search_space)):
            unknown = sorted(set(names) - allowed)
            if unknown:
                raise ValueError(
                    f"{key} has {unknown}, which model.family={self.model.family!r} does not accept; "
                    f"valid names: {', '.join(sorted(allowed))}. When switching families, also set "
                    f"{key} (or leave tuning.search_space empty to use the family's default space)"
                )
        return self

    @model_validator(mode="after")
    def _workers_need_xgboost(self) -> RunConfig:
        if self.training.workers > 1 and self.model.family != "xgboost":
            raise ValueError(
                f"training.workers={self.training.workers} needs model.family 'xgboost' (XGBoost's collective); "
                f"{self.model.family!r} trains in one process: set training.workers: 1"
            )
        return self

    def to_json(self) -> str:
        """Canonical JSON (sorted keys) so the same config always hashes the same."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        """Parse the JSON form produced by `to_json`."""
        return parse_config(json.loads(text), where="<json>")


def _format_errors(err: ValidationError, where: str) -> str:
    lines = [f"invalid config in {where}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against civicml.yaml)"
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        # Cross-section rules name their keys in the message itself.
        lines.append(f"  - {key}: {msg}{shown}" if key else f"  - {msg}")
    return "\n".join(lines)


def parse_config(raw: Any, where: str = "<config>") -> RunConfig:
    """Validate a mapping into a RunConfig.

    Args:
        raw: The parsed YAML/JSON mapping.
        where: Where the mapping came from, for error messages.

    Raises:
        ConfigError: naming each wrong key and what is wrong with it.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid config in {where}: expected a mapping of keys, got {type(raw).__name__}")
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, where)) from None


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None, resolve_paths: bool = True
) -> RunConfig:
    """Load `civicml.yaml` (or defaults when no path) and apply dotted-key overrides.

    Args:
        path: YAML file; None means the built-in defaults.
        overrides: e.g. {"data.demo.month": 3}.
        resolve_paths: Make relative local paths in the file absolute against its folder
            (`resolve_relative_paths`). `civicml compile` turns it off: the compiled YAML is the same
            in every clone and its paths mean nothing on a cluster anyway.

    Raises:
        ConfigError: on a missing file, bad YAML or an invalid key/value.
    """
    raw: dict[str, Any] = {}
    where = "<defaults>"
    if path is not None:
        p = Path(path)
        where = str(p)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist; copy civicml.yaml from the repository root")
        raw = read_yaml_config(p)
    for dotted, value in (overrides or {}).items():
        node = raw
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"cannot override {dotted}: {part} is not a mapping")
        node[parts[-1]] = value
    if path is not None and resolve_paths:
        resolve_relative_paths(raw, Path(path).resolve().parent, set(overrides or {}))
    return parse_config(raw, where)


# A config is a few hundred nodes; an alias bomb ("billion laughs") expands a 1 KB file to billions.
YAML_NODE_BUDGET = 100_000


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML says they are an error; PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"duplicate key {key!r} at line {key_node.start_mark.line + 1} (first at line "
                    f"{seen[key].start_mark.line + 1}): YAML keeps only one of them; remove or merge the other"
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document has once every alias is expanded (counted once per distinct node, so it is cheap)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once instead of looping
    if isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        total = 1
    memo[id(node)] = min(total, YAML_NODE_BUDGET + 1)
    return memo[id(node)]


def read_yaml_config(path: Path) -> dict[str, Any]:
    """Read a config file: UTF-8, one YAML mapping, no duplicate keys, bounded alias expansion.

    Raises:
        ConfigError: naming the file, what is wrong, an example and the fix.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {err.start} is 0x{err.object[err.start]:02x}); "
            "save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    loader = _ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
            raise ConfigError(
                f"config file {path} is empty; an empty file is not the demo. Start from the repository's "
                "civicml.yaml (e.g. `data: {source: claims.csv, target: needs_review}`) or run without --config "
                "for the built-in demo"
            )
        if _expanded_size(node, {}) > YAML_NODE_BUDGET:
            raise ConfigError(
                f"config file {path} expands to more than {YAML_NODE_BUDGET} YAML nodes through its aliases "
                "(&anchor / *alias); a config needs a few hundred. Write the values out instead of nesting aliases"
            )
        raw = loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    finally:
        loader.dispose()
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file {path} must be a mapping of keys (e.g. `name: my-project`), got {type(raw).__name__}"
        )
    return raw


# Config keys holding a local path or a URI; a relative local path is relative to the config file.
PATH_KEYS = ("data.source", "storage.uri", "monitoring.window_source")


def _is_relative_local_path(value: Any) -> bool:
    if not isinstance(value, str) or not value.strip() or value == "serving-log":
        return False
    if "://" in value or value.startswith(("demo:", "~")):
        return False
    return not Path(value).is_absolute()


def resolve_relative_paths(raw: dict[str, Any], base: Path, skip: set[str]) -> None:
    """Make relative local paths in the file absolute, against the config file's folder (in place).

    Paths given as overrides (`--set`, flags) are left alone: they are relative to where the command
    runs, like any other command-line path. `storage.uri` left unset defaults to `.civicml` beside
    the config file.
    """
    for dotted in PATH_KEYS:
        if dotted in skip:
            continue
        section, key = dotted.split(".")
        node = raw.get(section)
        if dotted == "storage.uri" and not (isinstance(node, dict) and "uri" in node):
            if node is None or isinstance(node, dict):
                raw.setdefault("storage", {})["uri"] = str(base / ".civicml")
            continue
        if isinstance(node, dict) and _is_relative_local_path(node.get(key)):
            node[key] = str(base / node[key])

"""`model:`, `tuning:` and `training:`: the family and its parameters, the search and where the fit runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from civicml.catalog import ALGORITHMS, Family
from civicml.config.base import Strict as _Strict
from civicml.config.checks import PARAM_NAME, check_katib_arg_values, check_param_spec, check_space_for_algorithm


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

    family: Family = "xgboost"
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
        check_param_spec(self)
        return self

    def bounds(self) -> tuple[float, float]:
        """`(min, max)` of a numeric parameter; validation has made sure both are set."""
        if self.min is None or self.max is None:
            raise ValueError(f"a {self.type} parameter has no min/max bounds")
        return self.min, self.max

    def grid_size(self) -> int | None:
        """How many points this parameter contributes to a grid (None: not griddable, i.e. double without step)."""
        if self.type == "categorical":
            return len(self.values or [])
        lo, hi = self.bounds()
        if self.type == "int":
            return int((int(hi) - int(lo)) // int(self.step or 1)) + 1
        if self.step is None:
            return None
        return int((hi - lo) / self.step + 1e-9) + 1


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
            if not PARAM_NAME.fullmatch(name):
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

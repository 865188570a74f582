"""`policy:`: the gate's rules (metric floors and ceilings, fairness limits, the no-skill margin, approvals)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from civicml.catalog import SKILL_DEFAULTS, FairnessMetric
from civicml.config.base import Strict as _Strict
from civicml.config.checks import check_known_metric, check_policy_metric_names


class FairnessRule(_Strict):
    """A fairness limit applied to every sensitive attribute (or to `attributes` only).

    Example (the four-fifths rule): `{metric: demographic_parity_ratio, min: 0.8}`.
    """

    metric: FairnessMetric
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
        return check_known_metric(value, "policy.skill.metric")


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
        check_policy_metric_names(self.min_metrics, self.max_metrics)
        return self

"""RunConfig, the one object every step receives, and how a mapping is validated into it."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError, model_validator

from civicml.catalog import Task
from civicml.config.base import ConfigError
from civicml.config.base import Strict as _Strict
from civicml.config.checks import check_against_task, check_family
from civicml.config.data import DataConfig, SplitConfig
from civicml.config.model import ModelConfig, TrainingConfig, TuningConfig
from civicml.config.operations import (
    AuditConfig,
    DeployConfig,
    MonitoringConfig,
    ServingConfig,
    StepResources,
    StorageConfig,
)
from civicml.config.people import CardConfig, ReviewConfig, TransparencyConfig
from civicml.config.policy import FairnessRule, PolicyConfig


class RunConfig(_Strict):
    """Everything one training run needs; serialisable to JSON for KFP parameters."""

    name: str = "benefits-review"
    task: Task = "binary_classification"
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
        if "fairness" not in self.policy.model_fields_set and self.task == "regression":
            # The built-in rule is the four-fifths rule on selection rates; for regression the same 0.8 on the
            # ratio of the groups' mean absolute errors (optional, like the classification default).
            self.policy.fairness = [FairnessRule(metric="mae_ratio", min=0.8, optional=True)]
        return check_against_task(self)

    @model_validator(mode="after")
    def _fits_the_family(self) -> RunConfig:
        return check_family(self)

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

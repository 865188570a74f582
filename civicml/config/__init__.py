"""Run configuration: one validated object (`RunConfig`) that every step receives, and its loading.

The config travels through the pipeline as a JSON string parameter, so it must never hold secrets:
credentials come from environment variables only.

The package, one module a concern (the public names are all importable from `civicml.config`):
    base        ConfigError and the strict section base
    data        data: and split:
    model       model:, tuning: (the search space) and training:
    policy      policy: (the gate's rules)
    operations  storage:, audit:, steps:, deploy:, serving:, monitoring:
    people      card:, transparency:, review: (what only people write, and who decides)
    checks      rules across keys and sections (against the vocabulary in `civicml.catalog`)
    run         RunConfig and parse_config (a mapping -> RunConfig, errors naming each key)
    loading     load_config: the YAML file, --set overrides, paths relative to the file
"""

# Vocabulary that lived here before `civicml.catalog` (issue 15); import it from the catalog in new code.
from civicml.catalog import (  # noqa: E402  (kept last: these are aliases, not config)
    ALGORITHMS,
    FAIRNESS_METRICS_BY_TASK,
    FAMILY_PARAMS,
    HIGHER_IS_BETTER_METRICS,
    LOWER_IS_BETTER_METRICS,
    SKILL_DEFAULTS,
    TASK_DEFAULT_OBJECTIVE,
    TASK_METRICS,
)
from civicml.config.base import ConfigError
from civicml.config.base import Strict as _Strict
from civicml.config.checks import (
    KATIB_SAFE_VALUE,
    check_against_task,
    check_katib_arg_values,
    check_space_for_algorithm,
)
from civicml.config.checks import (
    PARAM_NAME as _PARAM_NAME,
)
from civicml.config.data import ColumnSpec, DataConfig, DemoOptions, SplitConfig
from civicml.config.loading import PATH_KEYS, YAML_NODE_BUDGET, load_config, read_yaml_config, resolve_relative_paths
from civicml.config.model import (
    EarlyStopping,
    KatibOptions,
    ModelConfig,
    ParamSpec,
    ThresholdConfig,
    TrainingConfig,
    TuningConfig,
)
from civicml.config.operations import (
    AuditConfig,
    ClientAuth,
    DeployConfig,
    MonitoringConfig,
    ServingConfig,
    StepResources,
    StorageConfig,
)
from civicml.config.people import CardConfig, ReviewConfig, TransparencyConfig
from civicml.config.policy import FairnessRule, PolicyConfig, SkillRule
from civicml.config.run import RunConfig, parse_config

__all__ = [
    "ALGORITHMS",
    "FAIRNESS_METRICS_BY_TASK",
    "FAMILY_PARAMS",
    "HIGHER_IS_BETTER_METRICS",
    "KATIB_SAFE_VALUE",
    "LOWER_IS_BETTER_METRICS",
    "PATH_KEYS",
    "SKILL_DEFAULTS",
    "TASK_DEFAULT_OBJECTIVE",
    "TASK_METRICS",
    "YAML_NODE_BUDGET",
    "AuditConfig",
    "CardConfig",
    "ClientAuth",
    "ColumnSpec",
    "ConfigError",
    "DataConfig",
    "DemoOptions",
    "DeployConfig",
    "EarlyStopping",
    "FairnessRule",
    "KatibOptions",
    "ModelConfig",
    "MonitoringConfig",
    "ParamSpec",
    "PolicyConfig",
    "ReviewConfig",
    "RunConfig",
    "ServingConfig",
    "SkillRule",
    "SplitConfig",
    "StepResources",
    "StorageConfig",
    "ThresholdConfig",
    "TrainingConfig",
    "TransparencyConfig",
    "TuningConfig",
    "_PARAM_NAME",
    "_Strict",
    "check_against_task",
    "check_katib_arg_values",
    "check_space_for_algorithm",
    "load_config",
    "parse_config",
    "read_yaml_config",
    "resolve_relative_paths",
]

"""Default search spaces per model family, used when the config declares none."""

from __future__ import annotations

from civicml.config import ParamSpec

DEFAULT_SPACES: dict[str, dict[str, ParamSpec]] = {
    "xgboost": {
        "learning_rate": ParamSpec(type="double", min=0.02, max=0.3, log=True),
        "max_depth": ParamSpec(type="int", min=2, max=8),
        "min_child_weight": ParamSpec(type="double", min=0.5, max=10.0, log=True),
        "subsample": ParamSpec(type="double", min=0.6, max=1.0),
    },
    "logistic_regression": {"C": ParamSpec(type="double", min=0.001, max=100.0, log=True)},
    "random_forest": {
        "max_depth": ParamSpec(type="int", min=3, max=16),
        "min_samples_leaf": ParamSpec(type="int", min=1, max=20),
    },
}


def space_for(family: str, declared: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
    """The declared space, or the family's default when none is declared."""
    return dict(declared) if declared else dict(DEFAULT_SPACES[family])

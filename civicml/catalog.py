"""The vocabulary every layer shares: tasks, metrics and their directions, fairness measures, model families.

One place (issue 15): the config checks, the gate, the evaluation, the tuner, the reviewer console and the
reports read these names from here instead of keeping lists of their own that drift apart. This module
imports nothing but the standard library, so a light step (register, gate) that needs a metric's direction
or the fairness rate names does not pay for scikit-learn, fairlearn, scipy or pandas (issue 18 item 2).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

Task = Literal["binary_classification", "regression"]
TASKS: tuple[str, ...] = get_args(Task)

# --- metrics -------------------------------------------------------------------------------------------
# The metrics each task produces (civicml.evaluation.metrics computes exactly these, in this order).
CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
)
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary_classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}
# Direction of every metric: the gate (min_metrics vs max_metrics), the tuner (maximize/minimize), the
# no-skill margin, live-performance drops and the reviewer console all read it from here.
LOWER_IS_BETTER_METRICS = ("log_loss", "brier", "mse", "rmse", "mae")
HIGHER_IS_BETTER_METRICS = tuple(
    m for m in CLASSIFICATION_METRICS + REGRESSION_METRICS if m not in LOWER_IS_BETTER_METRICS
)
LOWER_IS_BETTER = frozenset(LOWER_IS_BETTER_METRICS)
KNOWN_METRICS = frozenset(CLASSIFICATION_METRICS) | frozenset(REGRESSION_METRICS)
# The metric a search optimises when the config names none.
TASK_DEFAULT_OBJECTIVE = {"binary_classification": "roc_auc", "regression": "rmse"}
# The no-skill rule's defaults: (metric, min_margin) per task.
SKILL_DEFAULTS = {"binary_classification": ("balanced_accuracy", 0.05), "regression": ("rmse", 0.0)}


def is_lower_better(metric: str) -> bool:
    """True for a loss (log_loss, brier, mse, rmse, mae); False for a score."""
    return metric in LOWER_IS_BETTER


def direction(metric: str) -> Literal["maximize", "minimize"]:
    """The tuning direction of `metric` (Katib's and Optuna's vocabulary)."""
    return "minimize" if is_lower_better(metric) else "maximize"


# --- fairness --------------------------------------------------------------------------------------------
# Per-group rates shown on the card (civicml.evaluation.fairness computes them with fairlearn).
RATES = ("selection_rate", "tpr", "fpr", "precision")
# Between-group disparities of a classifier, the ones a fairness rule may name.
DISPARITIES = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")
REGRESSION_DISPARITIES = tuple(f"{m}_{k}" for m in ("mae", "mse", "mean_prediction") for k in ("difference", "ratio"))
FairnessMetric = Literal[
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
FAIRNESS_METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary_classification": DISPARITIES,
    "regression": REGRESSION_DISPARITIES,
}

# --- model families ----------------------------------------------------------------------------------------
Family = Literal["xgboost", "logistic_regression", "random_forest"]
FAMILIES: tuple[str, ...] = get_args(Family)
# The tasks each family fits. `logistic_regression` is a classifier only: for regression civicml once fitted
# an unregularised LinearRegression under that name and dropped every parameter without a word (issue 15).
FAMILY_TASKS: dict[str, tuple[str, ...]] = {
    "xgboost": TASKS,
    "logistic_regression": ("binary_classification",),
    "random_forest": TASKS,
}
# Hyperparameters each family accepts (fixed in `model.params` or searched in `tuning.search_space`),
# checked when the config loads so that a family switch with a leftover parameter fails naming the key,
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
# Parameters a family starts from before the config's fixed and the search's tuned values override them.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "xgboost": {
        "n_estimators": 200,
        "max_depth": 5,
        "learning_rate": 0.1,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
        "min_child_weight": 1.0,
        "reg_lambda": 1.0,
    },
    "logistic_regression": {"C": 1.0, "max_iter": 1000},
    "random_forest": {"n_estimators": 200, "max_depth": 12, "min_samples_leaf": 2},
}
# The search space used when `tuning.search_space` is empty, in the config's ParamSpec vocabulary
# (civicml.modeling.search_space turns each entry into a ParamSpec).
DEFAULT_SEARCH_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "xgboost": {
        "learning_rate": {"type": "double", "min": 0.02, "max": 0.3, "log": True},
        "max_depth": {"type": "int", "min": 2, "max": 8},
        "min_child_weight": {"type": "double", "min": 0.5, "max": 10.0, "log": True},
        "subsample": {"type": "double", "min": 0.6, "max": 1.0},
    },
    "logistic_regression": {"C": {"type": "double", "min": 0.001, "max": 100.0, "log": True}},
    "random_forest": {
        "max_depth": {"type": "int", "min": 3, "max": 16},
        "min_samples_leaf": {"type": "int", "min": 1, "max": 20},
    },
}


def family_task_error(family: str, task: str) -> str | None:
    """Why `family` cannot fit `task` (a message naming the keys and the fix), or None when it can."""
    if task in FAMILY_TASKS.get(family, ()):
        return None
    fits = [f for f, tasks in FAMILY_TASKS.items() if task in tasks]
    return (
        f"model.family {family!r} does not fit task {task}: logistic regression is a classifier (civicml will not "
        f"silently swap in a LinearRegression and drop model.params); choose one of {', '.join(fits)}, "
        f"e.g. model: {{family: {fits[0]}}}"
    )


# --- decisions -------------------------------------------------------------------------------------------------
# The classification threshold when none was chosen: `model.threshold.rule: fixed` without a value, and every
# model saved before thresholds were chosen. A chosen one is saved in model.json and the server labels with it.
DEFAULT_THRESHOLD = 0.5

# --- tuning ---------------------------------------------------------------------------------------------------
# Katib's suggestion algorithms civicml maps to Optuna samplers (DESIGN.md "Backends").
ALGORITHMS = ("random", "tpe", "multivariate-tpe", "cmaes", "grid")

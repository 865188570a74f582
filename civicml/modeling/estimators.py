"""Model families: XGBoost (default), logistic regression and random forest (scikit-learn)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from civicml.catalog import DEFAULT_THRESHOLD, FAMILIES, FAMILY_DEFAULTS, family_task_error
from civicml.modeling.preprocessing import FeatureSpec

# The families' starting parameters live in the catalog with the rest of the family knowledge.
XGB_DEFAULTS: dict[str, Any] = FAMILY_DEFAULTS["xgboost"]
SKLEARN_DEFAULTS: dict[str, dict[str, Any]] = {f: FAMILY_DEFAULTS[f] for f in FAMILIES if f != "xgboost"}


@dataclass
class TrainedModel:
    """A fitted model with its feature spec; the object every later step works with."""

    family: str
    spec: FeatureSpec
    params: dict[str, Any]
    estimator: Any
    # Classification decision threshold, chosen on the validation split (`civicml.evaluation.threshold`)
    # and saved in model.json, so evaluation and the server label rows the same way.
    threshold: float = DEFAULT_THRESHOLD

    @property
    def task(self) -> str:
        """`binary_classification` or `regression`."""
        return self.spec.task

    def _x(self, df: pd.DataFrame) -> pd.DataFrame:
        return self.spec.transform(df)

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class (classification only)."""
        if self.task != "binary_classification":
            raise TypeError("predict_proba is for classification models")
        return np.asarray(self.estimator.predict_proba(self._x(df))[:, 1], dtype="float64")

    def predict(self, df: pd.DataFrame, threshold: float | None = None) -> np.ndarray:
        """0/1 labels at `threshold` (default: the model's own) for classification, or values (regression)."""
        if self.task == "binary_classification":
            return (self.predict_proba(df) >= (self.threshold if threshold is None else threshold)).astype("int64")
        return np.asarray(self.estimator.predict(self._x(df)), dtype="float64")

    def score(self, df: pd.DataFrame) -> np.ndarray:
        """The model's continuous output: probability (classification) or value (regression)."""
        return self.predict_proba(df) if self.task == "binary_classification" else self.predict(df)


def _sklearn_pipeline(family: str, spec: FeatureSpec, params: dict[str, Any], seed: int, n_threads: int):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cat_cols = list(spec.categorical)
    transformers = []
    if spec.numeric:
        transformers.append(
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), spec.numeric)
        )
    if cat_cols:
        encoder = OneHotEncoder(
            categories=[spec.categorical[c] for c in cat_cols], handle_unknown="ignore", sparse_output=False
        )
        # Categoricals arrive as pandas `category`; missing becomes its own level via the imputer.
        transformers.append(
            (
                "cat",
                Pipeline(
                    [("impute", SimpleImputer(strategy="constant", fill_value="__missing__")), ("onehot", encoder)]
                ),
                cat_cols,
            )
        )
    pre = ColumnTransformer(transformers)
    classify = spec.task == "binary_classification"
    if family == "logistic_regression":
        est = LogisticRegression(random_state=seed, **params)
    elif family == "random_forest":
        cls = RandomForestClassifier if classify else RandomForestRegressor
        est = cls(random_state=seed, n_jobs=n_threads, **params)
    else:
        raise ValueError(f"unknown sklearn family {family!r}")
    return Pipeline([("pre", pre), ("model", est)])


def build_params(family: str, fixed: dict[str, Any], tuned: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults, overridden by the config's fixed params, overridden by tuned params."""
    base = dict(FAMILY_DEFAULTS.get(family, {}))
    base.update(fixed or {})
    base.update(tuned or {})
    return base


def xgb_estimator(spec: FeatureSpec, params: dict[str, Any], seed: int, n_threads: int, callbacks=None):
    """The unfitted XGBoost estimator: one definition for the in-process and the distributed fit."""
    import xgboost as xgb

    classify = spec.task == "binary_classification"
    cls = xgb.XGBClassifier if classify else xgb.XGBRegressor
    extra: dict[str, Any] = {"eval_metric": "auc" if classify else "rmse"}
    if callbacks:
        extra["callbacks"] = callbacks
    return cls(
        tree_method="hist",
        enable_categorical=True,
        max_cat_to_onehot=1,
        random_state=seed,
        n_jobs=n_threads,
        **extra,
        **params,
    )


def fit_model(
    family: str,
    spec: FeatureSpec,
    params: dict[str, Any],
    train: pd.DataFrame,
    seed: int,
    n_threads: int,
    valid: pd.DataFrame | None = None,
    callbacks: list[Any] | None = None,
) -> TrainedModel:
    """Fit one model deterministically (fixed seed and thread count).

    Args:
        family: `xgboost`, `logistic_regression` or `random_forest`.
        spec: Feature spec fitted on `train`.
        params: Hyperparameters (see `build_params`).
        train: Training rows including the target column.
        seed: Random seed.
        n_threads: Thread count; fixed so XGBoost `hist` gives identical trees.
        valid: Optional validation rows (XGBoost evaluates on them each round).
        callbacks: XGBoost training callbacks (e.g. Optuna pruning).
    """
    wrong_task = family_task_error(family, spec.task)
    if wrong_task:
        raise ValueError(wrong_task)
    X = spec.transform(train)
    y = spec.encode_target(train[spec.target])
    if family == "xgboost":
        est = xgb_estimator(spec, params, seed, n_threads, callbacks)
        fit_kw: dict[str, Any] = {"verbose": False}
        if valid is not None:
            fit_kw["eval_set"] = [(spec.transform(valid), spec.encode_target(valid[spec.target]))]
        est.fit(X, y, **fit_kw)
    else:
        est = _sklearn_pipeline(family, spec, params, seed, n_threads)
        est.fit(X, y)
    return TrainedModel(family=family, spec=spec, params=params, estimator=est)

"""Explanations: which features drive the model overall, and one prediction.

XGBoost models use TreeSHAP through XGBoost itself (`pred_contribs=True`): exact
Shapley values of the tree ensemble, in margin units (log-odds for
classification, target units for regression); per-row contributions plus the
bias term sum to the model's margin.

scikit-learn models:

* global importance uses scikit-learn's `permutation_importance` on the test
  rows (decrease in ROC-AUC, or in negative RMSE, when a feature is shuffled);
* single predictions:
  - logistic/linear regression: exact linear decomposition `coef · z` of the
    log-odds (or value), summed over each feature's encoded columns. Numeric `z`
    is standardised, so a numeric contribution is relative to the *training
    mean*; a categorical contribution is the coefficient of the row's category
    (relative to an all-zero one-hot encoding);
  - random forest: occlusion — each feature in turn is replaced by a baseline
    (training mean for numerics, read from the pipeline's StandardScaler;
    "missing" for categoricals, i.e. no category), and the contribution is the
    change in log-odds (or value) this causes. Pass `background` rows to use
    their mean/mode as the baseline instead.

Contributions of different model families are therefore not on one scale;
compare them within a model only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from civicml.modeling.estimators import TrainedModel


def _booster_contribs(model: TrainedModel, df: pd.DataFrame) -> np.ndarray:
    import xgboost as xgb

    dm = xgb.DMatrix(model.spec.transform(df), enable_categorical=True)
    return np.asarray(model.estimator.get_booster().predict(dm, pred_contribs=True))


def global_importance(
    model: TrainedModel, df: pd.DataFrame, seed: int = 0, max_rows: int = 1000, n_repeats: int = 5
) -> dict[str, Any]:
    """Global feature importance on `df` (test rows with the target column).

    Args:
        model: Trained model.
        df: Rows to explain on; a seeded sample of at most `max_rows` is used.
        seed: Seed of the sample and of the permutations.
        max_rows: Cap on rows. Cost grows linearly with rows, and exact TreeSHAP over XGBoost's
            categorical (partition) splits costs ~1 ms per row; mean |contribution| over 1000
            rows is stable to a few percent.
        n_repeats: Permutations per feature (scikit-learn models).

    Returns:
        `{method, unit, features: [{feature, importance, std?}]}` sorted by importance, largest first.
    """
    if len(df) > max_rows:
        df = df.sample(n=max_rows, random_state=seed)
    spec = model.spec
    if model.family == "xgboost":
        contribs = _booster_contribs(model, df)[:, :-1]  # last column is the bias term
        imp = np.abs(contribs).mean(axis=0)
        feats: list[dict[str, Any]] = [{"feature": f, "importance": float(v)} for f, v in zip(spec.features, imp)]
        method = "TreeSHAP mean |contribution| (xgboost pred_contribs)"
        unit = "log-odds" if model.task == "binary_classification" else "target units"
    else:
        from sklearn.inspection import permutation_importance

        scoring = "roc_auc" if model.task == "binary_classification" else "neg_root_mean_squared_error"
        res = permutation_importance(
            model.estimator,
            spec.transform(df),
            spec.encode_target(df[spec.target]),
            scoring=scoring,
            n_repeats=n_repeats,
            random_state=seed,
        )
        feats = [
            {"feature": f, "importance": float(m), "std": float(s)}
            for f, m, s in zip(spec.features, res.importances_mean, res.importances_std)
        ]
        method = f"permutation importance (scikit-learn, {n_repeats} repeats, scoring {scoring})"
        unit = "decrease in ROC-AUC" if model.task == "binary_classification" else "increase in RMSE"
    feats.sort(key=lambda d: d["importance"], reverse=True)
    return {"method": method, "unit": unit, "n_rows": len(df), "features": feats}


def _value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def _owners(pre) -> list[str]:
    """Original feature name for each output column of the fitted ColumnTransformer."""
    owners: list[str] = []
    for name, trans, cols in pre.transformers_:
        if name == "num":
            owners.extend(cols)
        elif name == "cat":
            enc = trans.named_steps["onehot"]
            for col, cats in zip(cols, enc.categories_):
                owners.extend([col] * len(cats))
    return owners


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def _linear_contribs(model: TrainedModel, X: pd.DataFrame) -> np.ndarray:
    pre = model.estimator.named_steps["pre"]
    est = model.estimator.named_steps["model"]
    z = np.asarray(pre.transform(X), dtype="float64")
    coef = np.ravel(est.coef_)
    per_col = z * coef
    owners = _owners(pre)
    feats = model.spec.features
    out = np.zeros((len(X), len(feats)))
    for j, owner in enumerate(owners):
        out[:, feats.index(owner)] += per_col[:, j]
    return out


def _occlusion_contribs(model: TrainedModel, X: pd.DataFrame, background: pd.DataFrame | None) -> np.ndarray:
    spec = model.spec
    if background is not None:
        bx = spec.transform(background)
        base = {c: bx[c].mean() for c in spec.numeric}
        base.update({c: (bx[c].mode().iloc[0] if bx[c].notna().any() else None) for c in spec.categorical})
    else:
        pre = model.estimator.named_steps["pre"]
        means = {}
        for name, trans, cols in pre.transformers_:
            if name == "num":
                means = dict(zip(cols, trans.named_steps["scale"].mean_))
        base = {**means, **{c: None for c in spec.categorical}}

    def out_fn(frame: pd.DataFrame) -> np.ndarray:
        if model.task == "binary_classification":
            return _logit(model.estimator.predict_proba(frame)[:, 1])
        return np.asarray(model.estimator.predict(frame), dtype="float64")

    full = out_fn(X)
    contribs = np.zeros((len(X), len(spec.features)))
    for j, f in enumerate(spec.features):
        occluded = X.copy()
        if f in spec.categorical:
            occluded[f] = pd.Categorical([base[f]] * len(X), categories=spec.categorical[f])
        else:
            occluded[f] = float(base[f])
        contribs[:, j] = full - out_fn(occluded)
    return contribs


def contributions(model: TrainedModel, rows: pd.DataFrame, background: pd.DataFrame | None = None) -> np.ndarray:
    """Per-feature contribution matrix (rows × `model.spec.features`); see the module docstring for units."""
    if model.family == "xgboost":
        return _booster_contribs(model, rows)[:, :-1]
    X = model.spec.transform(rows)
    if model.family == "logistic_regression":
        return _linear_contribs(model, X)
    return _occlusion_contribs(model, X, background)


def top_contributions(
    model: TrainedModel, row_df: pd.DataFrame, k: int = 5, background: pd.DataFrame | None = None
) -> list[dict[str, Any]]:
    """The `k` features that moved one prediction most, largest |contribution| first.

    Args:
        model: Trained model.
        row_df: Exactly one row with (at least) the model's feature columns.
        k: How many features to return.
        background: Optional reference rows for the random-forest occlusion baseline.

    Returns:
        `[{feature, value, contribution}]` where `value` is the row's raw value and
        `contribution` is in log-odds (classification) or target units (regression).

    Raises:
        ValueError: `row_df` does not hold exactly one row, or lacks feature columns.
    """
    if len(row_df) != 1:
        raise ValueError(f"top_contributions explains one prediction; got {len(row_df)} rows (pass df.iloc[[i]])")
    missing = [f for f in model.spec.features if f not in row_df.columns]
    if missing:
        raise ValueError(f"row is missing feature column(s) {missing}; the model needs {model.spec.features}")
    c = contributions(model, row_df, background)[0]
    order = np.argsort(-np.abs(c), kind="stable")[:k]
    feats = model.spec.features
    return [
        {"feature": feats[j], "value": _value(row_df.iloc[0][feats[j]]), "contribution": float(c[j])} for j in order
    ]

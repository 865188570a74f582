"""Group fairness per sensitive attribute, computed with fairlearn.

Small groups. A group with fewer than `min_group_count` test rows is *suppressed*:
its rates are withheld from reports (they are noise at that size and could
identify people) and it is listed under `suppressed_groups`, never silently
dropped — its count is always shown.

Decision (documented for reviewers): the disparity measures that the gate uses
(`demographic_parity_difference`, `demographic_parity_ratio`,
`equalized_odds_difference`) are computed over the **reportable groups only**
(count >= min_group_count). Including a 5-row group would let one or two
predictions swing the ratio from 1.0 to 0.0 and make the gate fail or pass at
random. Because excluding a group could also hide a real harm, the values over
all groups are reported too (`*_all_groups`), and the gate marks a fairness rule
on an attribute with suppressed groups as borderline (see `governance.policy`),
so a human looks at it when approval is required for borderline cases. When
fewer than two groups are reportable the disparity is `None` (not assessable).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score

RATES = ("selection_rate", "tpr", "fpr", "precision")
DISPARITIES = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")
MISSING_GROUP = "<missing>"


def _precision(y_true, y_pred) -> float:
    return precision_score(y_true, y_pred, zero_division=0)


METRICS = {
    "count": count,
    "selection_rate": selection_rate,
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
    "precision": _precision,
}


def _frame(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, name: str) -> MetricFrame:
    return MetricFrame(metrics=METRICS, y_true=y_true, y_pred=y_pred, sensitive_features=pd.Series(groups, name=name))


def _disparities(mf: MetricFrame) -> dict[str, float | None]:
    """fairlearn's between-groups disparities, read from one MetricFrame.

    Same definitions as `demographic_parity_difference/ratio` and `equalized_odds_difference`
    (agg="worst_case"), which each build their own MetricFrame; reusing ours avoids
    recomputing every group three times (tests check the values are equal).
    """
    if len(mf.by_group) < 2:
        return {k: None for k in DISPARITIES}
    diff = mf.difference(method="between_groups")
    ratio = mf.ratio(method="between_groups")
    return {
        "demographic_parity_difference": float(diff["selection_rate"]),
        "demographic_parity_ratio": float(ratio["selection_rate"]),
        "equalized_odds_difference": float(max(diff["tpr"], diff["fpr"])),
    }


def weighted_disparities(
    y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, W: np.ndarray
) -> dict[str, np.ndarray]:
    """The three disparities for each row of bootstrap weights `W` (resamples × rows).

    With `W = 1` these equal fairlearn's values (tested); a resample in which a group has
    no rows (or no positives/negatives, for the odds) gives NaN.
    """
    labels = np.unique(groups)
    G = (groups[:, None] == labels[None, :]).astype("float64")  # rows × groups one-hot
    y = np.asarray(y_true, dtype="float64")[:, None]
    p = np.asarray(y_pred, dtype="float64")[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sel = (W @ (G * p)) / (W @ G)
        tpr = (W @ (G * y * p)) / (W @ (G * y))
        fpr = (W @ (G * (1 - y) * p)) / (W @ (G * (1 - y)))
        smin, smax = sel.min(axis=1), sel.max(axis=1)
        return {
            "demographic_parity_difference": smax - smin,
            "demographic_parity_ratio": np.where(smax > 0, smin / smax, np.nan),
            "equalized_odds_difference": np.maximum(
                tpr.max(axis=1) - tpr.min(axis=1), fpr.max(axis=1) - fpr.min(axis=1)
            ),
        }


def disparity_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: np.ndarray,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chunk: int = 100,
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap intervals of the disparities (rows resampled, groups kept as labels).

    Shown next to the point values so a reviewer can tell a real disparity from the noise
    of a few hundred rows per group; the gate itself judges the point value (the four-fifths
    rule is defined on it).
    """
    from civicml.evaluation.metrics import MAX_CHUNK_CELLS, resample_weights

    if len(np.unique(groups)) < 2 or n_resamples <= 0:
        return {}
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {}
    chunk = max(1, min(chunk, MAX_CHUNK_CELLS // max(len(groups), 1)))  # same stream, bounded memory
    for start in range(0, n_resamples, chunk):
        W = resample_weights(len(groups), min(chunk, n_resamples - start), rng)
        for k, v in weighted_disparities(y_true, y_pred, groups, W).items():
            parts.setdefault(k, []).append(v)
    alpha = (1 - level) / 2
    out = {}
    for k, chunks in parts.items():
        v = np.concatenate(chunks)
        v = v[np.isfinite(v)]
        if len(v) >= n_resamples / 2:
            lo, hi = np.quantile(v, [alpha, 1 - alpha])
            out[k] = {"low": float(lo), "high": float(hi), "level": level, "n_resamples": len(v)}
    return out


def group_labels(column: pd.Series) -> np.ndarray:
    """Sensitive-attribute values as strings, with missing values as their own group `<missing>`."""
    s = column.astype(object)
    return np.where(s.isna().to_numpy(), MISSING_GROUP, s.astype(str).to_numpy())


def fairness_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    sensitive: pd.DataFrame,
    min_group_count: int = 30,
    n_resamples: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-group rates and disparity measures for each sensitive attribute.

    Args:
        y_true: 0/1 labels.
        y_pred: 0/1 predictions (at the evaluation threshold).
        sensitive: One column per sensitive attribute, aligned with `y_true`.
        min_group_count: Groups with fewer rows are suppressed (see the module docstring).
        n_resamples: Bootstrap resamples for `confidence_intervals` of the disparities (0 = none).
        seed: Bootstrap seed.

    Returns:
        `{attribute: {groups: {group: {count, suppressed, selection_rate, tpr, fpr, precision}},
        suppressed_groups, reportable_groups, min_group_count, <disparities>, <disparities>_all_groups,
        assessable, confidence_intervals}}`; rates of suppressed groups are None; the intervals are over
        the reportable groups, like the headline disparities.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    out: dict[str, Any] = {}
    for attr in sensitive.columns:
        groups = group_labels(sensitive[attr])
        mf = _frame(y_true, y_pred, groups, attr)
        per_group: dict[str, dict[str, Any]] = {}
        for g, row in mf.by_group.iterrows():
            n = int(row["count"])
            suppressed = n < min_group_count
            per_group[str(g)] = {
                "count": n,
                "suppressed": suppressed,
                **{k: (None if suppressed else float(row[k])) for k in RATES},
            }
        suppressed_groups = sorted(g for g, v in per_group.items() if v["suppressed"])
        reportable = sorted(g for g, v in per_group.items() if not v["suppressed"])
        everyone = _disparities(mf)
        keep = np.isin(groups, reportable)
        if suppressed_groups:
            headline = (
                _disparities(_frame(y_true[keep], y_pred[keep], groups[keep], attr))
                if reportable
                else {k: None for k in DISPARITIES}
            )
        else:
            headline = everyone
        cis = disparity_intervals(y_true[keep], y_pred[keep], groups[keep], n_resamples=n_resamples, seed=seed)
        out[attr] = {
            "groups": per_group,
            "suppressed_groups": suppressed_groups,
            "reportable_groups": reportable,
            "min_group_count": min_group_count,
            "assessable": headline["demographic_parity_ratio"] is not None,
            **headline,
            **{f"{k}_all_groups": v for k, v in everyone.items()},
            "confidence_intervals": cis,
        }
    return out


# -- regression: error and mean-prediction parity by group ------------------------------------------------

REGRESSION_RATES = ("mae", "mse", "mean_prediction")
REGRESSION_DISPARITIES = tuple(f"{m}_{kind}" for m in REGRESSION_RATES for kind in ("difference", "ratio"))


def _mean_prediction(y_true, y_pred) -> float:
    return float(np.mean(y_pred))


def regression_fairness_report(
    y_true: np.ndarray, y_pred: np.ndarray, sensitive: pd.DataFrame, min_group_count: int = 30
) -> dict[str, Any]:
    """Per-group MAE, MSE and mean prediction with fairlearn's MetricFrame, and their disparities.

    `<metric>_difference` is the largest minus the smallest group value and `<metric>_ratio` the
    smallest over the largest (1.0 = parity), both between the reportable groups
    (`MetricFrame.difference/ratio(method="between_groups")`). Small groups are suppressed as for
    classification (see the module docstring).

    Returns:
        `{attribute: {groups: {group: {count, suppressed, mae, mse, mean_prediction}}, suppressed_groups,
        reportable_groups, min_group_count, assessable, <metric>_difference, <metric>_ratio}}`.
    """
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    metrics = {
        "count": count,
        "mae": mean_absolute_error,
        "mse": mean_squared_error,
        "mean_prediction": _mean_prediction,
    }
    y_true = np.asarray(y_true, dtype="float64")
    y_pred = np.asarray(y_pred, dtype="float64")
    out: dict[str, Any] = {}
    for attr in sensitive.columns:
        groups = group_labels(sensitive[attr])
        mf = MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=pd.Series(groups, name=attr))
        per_group = {
            str(g): {
                "count": int(row["count"]),
                "suppressed": int(row["count"]) < min_group_count,
                **{k: (None if int(row["count"]) < min_group_count else float(row[k])) for k in REGRESSION_RATES},
            }
            for g, row in mf.by_group.iterrows()
        }
        reportable = sorted(g for g, v in per_group.items() if not v["suppressed"])
        disparities: dict[str, float | None] = {k: None for k in REGRESSION_DISPARITIES}
        if len(reportable) >= 2:
            keep = np.isin(groups, reportable)
            sub = MetricFrame(
                metrics={k: metrics[k] for k in REGRESSION_RATES},
                y_true=y_true[keep],
                y_pred=y_pred[keep],
                sensitive_features=pd.Series(groups[keep], name=attr),
            )
            diff, ratio = sub.difference(method="between_groups"), sub.ratio(method="between_groups")
            for m in REGRESSION_RATES:
                disparities[f"{m}_difference"] = float(diff[m])
                disparities[f"{m}_ratio"] = float(ratio[m]) if np.isfinite(ratio[m]) else None
        out[attr] = {
            "groups": per_group,
            "suppressed_groups": sorted(set(per_group) - set(reportable)),
            "reportable_groups": reportable,
            "min_group_count": min_group_count,
            "assessable": len(reportable) >= 2,
            **disparities,
        }
    return out

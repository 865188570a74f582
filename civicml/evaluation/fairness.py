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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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

from civicml.catalog import DISPARITIES, RATES, REGRESSION_DISPARITIES
from civicml.evaluation.bootstrap import Bootstrap, Resampling, on_bootstrap

if TYPE_CHECKING:
    from typing_extensions import Unpack

MISSING_GROUP = "<missing>"


def _precision(y_true, y_pred, sample_weight=None) -> float:
    return precision_score(y_true, y_pred, zero_division=0, sample_weight=sample_weight)


def _count(y_true, y_pred, sample_weight) -> float:
    """Rows of the group: the sum of the weights of its (label, prediction) cells."""
    return float(np.sum(sample_weight))


METRICS = {
    "count": _count,
    "selection_rate": selection_rate,
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
    "precision": _precision,
}


def _frame(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, name: str) -> MetricFrame:
    """fairlearn's MetricFrame over the distinct (group, label, prediction) cells, weighted by their rows.

    Every rate is a ratio of counts, so one weighted row per cell gives exactly the values of one row
    per person (tested), while fairlearn handles a few dozen rows instead of every test row (it copies
    each row into a Python object per metric: 10 s a frame at 200k rows).
    """
    codes, labels = pd.factorize(groups)
    cell = codes.astype("int64") * 4 + np.asarray(y_true).astype("int64") * 2 + np.asarray(y_pred).astype("int64")
    cells, weight = np.unique(cell, return_counts=True)
    return MetricFrame(
        metrics=METRICS,
        y_true=(cells // 2) % 2,
        y_pred=cells % 2,
        sensitive_features=pd.Series(np.asarray(labels, dtype=object)[cells // 4], name=name),
        sample_params={k: {"sample_weight": weight.astype("float64")} for k in METRICS},
    )


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


def disparity_statistic(
    y_true: np.ndarray, y_pred: np.ndarray, codes: np.ndarray
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The three disparities as a bootstrap statistic `W -> {disparity: value per resample}`.

    `codes` are the rows' group codes (0..k-1, factorized once per attribute). The rows are sorted
    once by (group, label, prediction) cell; per chunk of weights the resampled count of every cell
    is one gather and one sum per cell, and the group rates follow from those counts. The counts of
    integer weights are exact, so the rates equal those of the one-hot products this replaces.
    """
    k = int(codes.max()) + 1 if len(codes) else 0
    cell = codes.astype("int64") * 4 + np.asarray(y_true).astype("int64") * 2 + np.asarray(y_pred).astype("int64")
    order = np.argsort(cell, kind="stable")
    sorted_cells = cell[order]
    starts = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
    present = sorted_cells[starts]

    def statistic(W: np.ndarray) -> dict[str, np.ndarray]:
        counts = np.zeros((len(W), 4 * k))
        counts[:, present] = np.add.reduceat(np.take(W, order, axis=1), starts, axis=1)
        c = counts.reshape(len(W), k, 4)  # per group: (y=0, pred=0), (0, 1), (1, 0), (1, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sel = (c[:, :, 1] + c[:, :, 3]) / c.sum(axis=2)
            tpr = c[:, :, 3] / (c[:, :, 2] + c[:, :, 3])
            fpr = c[:, :, 1] / (c[:, :, 0] + c[:, :, 1])
            smin, smax = sel.min(axis=1), sel.max(axis=1)
            return {
                "demographic_parity_difference": smax - smin,
                "demographic_parity_ratio": np.where(smax > 0, smin / smax, np.nan),
                "equalized_odds_difference": np.maximum(
                    tpr.max(axis=1) - tpr.min(axis=1), fpr.max(axis=1) - fpr.min(axis=1)
                ),
            }

    return statistic


def weighted_disparities(
    y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, W: np.ndarray
) -> dict[str, np.ndarray]:
    """The three disparities for each row of bootstrap weights `W` (resamples × rows).

    With `W = 1` these equal fairlearn's values (tested); a resample in which a group has
    no rows (or no positives/negatives, for the odds) gives NaN.
    """
    return disparity_statistic(y_true, y_pred, pd.factorize(groups)[0])(W)


def disparity_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: np.ndarray,
    boot: Bootstrap | None = None,
    **resampling: Unpack[Resampling],
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap intervals of the disparities (rows resampled, groups kept as labels).

    Shown next to the point values so a reviewer can tell a real disparity from the noise
    of a few hundred rows per group; the gate itself judges the point value (the four-fifths
    rule is defined on it). `groups` may be labels or codes. With a shared `boot` (its resamples,
    seed and level apply) the returned dict is filled when it runs; without, `resampling` sets the
    own bootstrap (`Resampling`: 1000 resamples by default).
    """
    codes = pd.factorize(groups)[0]
    if len(codes) == 0 or codes.max() < 1 or (boot is None and resampling.get("n_resamples", 1000) <= 0):
        return {}
    return on_bootstrap(boot, len(codes), disparity_statistic(y_true, y_pred, codes), **resampling)


def group_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Factorize a sensitive attribute once: row codes and the label (text) of each code.

    Labels are the values as text, missing values their own group `<missing>`; values that print
    the same (1 and "1") are one group, as they were when every row was turned into text.
    """
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    text = [str(u) for u in uniques]
    if (codes < 0).any():
        text.append(MISSING_GROUP)
        codes = np.where(codes < 0, len(uniques), codes)
    merged, labels = pd.factorize(np.array(text, dtype=object))
    return merged[codes], np.asarray(labels, dtype=object)


def group_labels(column: pd.Series) -> np.ndarray:
    """Sensitive-attribute values as strings, with missing values as their own group `<missing>`."""
    codes, labels = group_codes(column)
    return labels[codes]


def _per_group(mf: MetricFrame, rates: tuple[str, ...], min_group_count: int) -> dict[str, dict[str, Any]]:
    """Each group's row count and `rates`; a group under `min_group_count` rows is suppressed (rates None)."""
    per_group: dict[str, dict[str, Any]] = {}
    for g, row in mf.by_group.iterrows():
        n = int(row["count"])
        suppressed = n < min_group_count
        per_group[str(g)] = {
            "count": n,
            "suppressed": suppressed,
            **{k: None if suppressed else float(row[k]) for k in rates},
        }
    return per_group


def fairness_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    sensitive: pd.DataFrame,
    min_group_count: int = 30,
    boot: Bootstrap | None = None,
    **resampling: Unpack[Resampling],
) -> dict[str, Any]:
    """Per-group rates and disparity measures for each sensitive attribute.

    Args:
        y_true: 0/1 labels.
        y_pred: 0/1 predictions (at the evaluation threshold).
        sensitive: One column per sensitive attribute, aligned with `y_true`.
        min_group_count: Groups with fewer rows are suppressed (see the module docstring).
        boot: A shared `Bootstrap` for `confidence_intervals` of the disparities (filled when it runs).
        **resampling: Without `boot`, the own bootstrap's settings (`Resampling`); `n_resamples`
            is 0 (no intervals) unless given.

    Returns:
        `{attribute: {groups: {group: {count, suppressed, selection_rate, tpr, fpr, precision}},
        suppressed_groups, reportable_groups, min_group_count, <disparities>, <disparities>_all_groups,
        assessable, confidence_intervals}}`; rates of suppressed groups are None; the intervals are over
        the reportable groups, like the headline disparities.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    resampling = {"n_resamples": 0, **resampling}
    out: dict[str, Any] = {}
    for attr in sensitive.columns:
        codes, labels = group_codes(sensitive[attr])
        groups = labels[codes]
        mf = _frame(y_true, y_pred, groups, attr)
        per_group = _per_group(mf, RATES, min_group_count)
        suppressed_groups = sorted(g for g, v in per_group.items() if v["suppressed"])
        reportable = sorted(g for g, v in per_group.items() if not v["suppressed"])
        everyone = _disparities(mf)
        keep = np.isin(codes, np.flatnonzero(np.isin(labels, reportable)))
        if suppressed_groups:
            headline = (
                _disparities(_frame(y_true[keep], y_pred[keep], groups[keep], attr))
                if reportable
                else {k: None for k in DISPARITIES}
            )
        else:
            headline = everyone
        cis = disparity_intervals(y_true[keep], y_pred[keep], codes[keep], boot, **resampling)
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
        per_group = _per_group(mf, REGRESSION_RATES, min_group_count)
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

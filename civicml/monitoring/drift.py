"""Per-feature drift of a recent window against a version's reference profile.

The reference is the `data/profile.json` stored with every model version
(`civicml.data.profile.build_profile`): quantile bins, their fractions and a seeded
sample for numeric features; category frequencies for categorical ones. For each
feature we report

- PSI (population stability index) over the reference bins (numeric: outer bins
  open-ended so values beyond the training range still land somewhere; categorical:
  the reference categories plus one `unseen` bucket), with a missing-value bucket,
  read in the usual bands: < 0.1 none, 0.1-0.25 moderate, >= 0.25 major;
- a two-sample test: Kolmogorov-Smirnov (`scipy.stats.ks_2samp`) against the stored
  sample for numeric features, chi-square on the 2 x k contingency table of reference
  and window counts (`scipy.stats.chi2_contingency`) for categorical ones.

A feature counts as drifted when the test rejects at `p_value` and its PSI reaches
`feature_psi`; requiring both keeps large windows from flagging trivial shifts.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from civicml.config import MonitoringConfig
from civicml.serving.logread import read_records
from civicml.storage.store import Store

PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
UNSEEN = "<unseen>"
MISSING = "<missing>"
# Floor for empty buckets so PSI stays finite (a bucket that is empty on one side still counts).
EPS = 1e-4


class DriftInputError(ValueError):
    """The reference profile or the window cannot be compared; the message says why and how to fix it."""


def psi_band(psi: float) -> str:
    """The conventional reading of a PSI value: `none` (< 0.1), `moderate` (< 0.25) or `major`."""
    if psi < PSI_MODERATE:
        return "none"
    return "moderate" if psi < PSI_MAJOR else "major"


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index between two distributions over the same buckets.

    Args:
        expected: Reference fractions per bucket (sum 1).
        actual: Window fractions per bucket (sum 1).

    Returns:
        sum((a - e) * ln(a / e)), with empty buckets floored at 1e-4.
    """
    e = np.clip(np.asarray(expected, dtype="float64"), EPS, None)
    a = np.clip(np.asarray(actual, dtype="float64"), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric_buckets(ref: dict[str, Any], values: pd.Series) -> dict[str, Any]:
    """Reference and window fractions over the reference bins plus a missing bucket."""
    edges = np.asarray(ref.get("bin_edges") or [], dtype="float64")
    ref_null = float(ref.get("null_rate") or 0.0)
    x = pd.to_numeric(values, errors="coerce").astype("float64")
    n = len(x)
    present = x.dropna().to_numpy()
    if len(edges) >= 2:
        fractions = np.asarray(ref["bin_fractions"], dtype="float64")
        # np.histogram semantics ([e_i, e_i+1), last bin closed) with open outer bins.
        idx = np.clip(np.searchsorted(edges, present, side="right") - 1, 0, len(edges) - 2)
        counts = np.bincount(idx, minlength=len(edges) - 1).astype("float64")
        labels = [f"{edges[i]:.4g} to {edges[i + 1]:.4g}" for i in range(len(edges) - 1)]
        labels[0] = f"below {edges[1]:.4g}"
        labels[-1] = f"{edges[-2]:.4g} and above"
        if len(labels) == 1:
            labels = ["all values"]
    else:
        # A constant (or empty) reference column: one bucket for its value, one for anything else.
        value = edges[0] if len(edges) else np.nan
        fractions = np.array([1.0, 0.0])
        same = np.isclose(present, value) if len(edges) else np.zeros(len(present), dtype=bool)
        counts = np.array([same.sum(), (~same).sum()], dtype="float64")
        labels = [f"= {value:.4g}", "other values"]
    ref_frac = np.append(fractions * (1 - ref_null), ref_null)
    cur_frac = np.append(counts / max(n, 1), (n - len(present)) / max(n, 1))
    return {
        "labels": [*labels, MISSING],
        "reference": ref_frac.tolist(),
        "current": cur_frac.tolist(),
        "present": present,
    }


def _categorical_buckets(ref: dict[str, Any], values: pd.Series) -> dict[str, Any]:
    freq: dict[str, float] = dict(ref.get("frequencies") or {})
    cur = values.astype("string").fillna(MISSING).value_counts()
    known = list(freq)
    unseen = {str(k): int(v) for k, v in cur.items() if str(k) not in freq}
    n = max(int(cur.sum()), 1)
    ref_frac = [freq[c] for c in known] + [0.0]
    cur_frac = [float(cur.get(c, 0)) / n for c in known] + [sum(unseen.values()) / n]
    return {
        "labels": [*known, UNSEEN],
        "reference": ref_frac,
        "current": cur_frac,
        "unseen": unseen,
        "counts": [int(cur.get(c, 0)) for c in known] + [sum(unseen.values())],
    }


def feature_drift(
    name: str, ref: dict[str, Any], values: pd.Series, ref_rows: int, policy: MonitoringConfig
) -> dict[str, Any]:
    """Drift of one feature: PSI, its band, the two-sample test and whether it counts as drifted.

    Args:
        name: Feature name (for messages).
        ref: The feature's entry in the reference profile.
        values: The window's values of the feature.
        ref_rows: Rows the reference profile was built from (scales frequencies to counts).
        policy: Thresholds (`p_value`, `feature_psi`).
    """
    kind = ref.get("kind")
    out: dict[str, Any] = {"feature": name, "kind": kind, "rows": len(values), "status": "ok"}
    if kind == "numeric":
        b = _numeric_buckets(ref, values)
        present = b.pop("present")
        sample = np.asarray(ref.get("sample") or [], dtype="float64")
        if len(present) and len(sample):
            res = stats.ks_2samp(sample, present)
            out.update(test="ks", statistic=float(res.statistic), p_value=float(res.pvalue))
        else:
            out.update(test="ks", statistic=None, p_value=None)
        ref_null, n = float(ref.get("null_rate") or 0.0), len(values)
        cur_nulls = n - len(present)
        if (ref_null > 0 or cur_nulls > 0) and n:
            # KS sees only present values; a change in how often the value is missing is drift too.
            # Chi-square on (missing, present) x (reference, window); Bonferroni over the two tests.
            table = np.array(
                [[ref_null * max(ref_rows, 1), (1 - ref_null) * max(ref_rows, 1)], [cur_nulls, len(present)]],
                dtype="float64",
            )
            table = table[:, table.sum(axis=0) > 0]
            p_null = float(stats.chi2_contingency(table)[1]) if table.shape[1] == 2 else 1.0
            p_ks = out["p_value"] if out["p_value"] is not None else 1.0
            out.update(test="ks+missing", p_value_missing=p_null, p_value=min(1.0, 2 * min(p_ks, p_null)))
        out["null_rate"] = {"reference": ref_null, "current": (cur_nulls / n) if n else None}
        out["mean"] = {"reference": ref.get("mean"), "current": float(np.mean(present)) if len(present) else None}
    elif kind == "categorical":
        b = _categorical_buckets(ref, values)
        ref_counts = np.asarray(b["reference"], dtype="float64") * max(ref_rows, 1)
        table = np.vstack([ref_counts, np.asarray(b.pop("counts"), dtype="float64")])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] >= 2 and table[1].sum() > 0:
            chi2, p, dof, _ = stats.chi2_contingency(table)
            out.update(test="chi2", statistic=float(chi2), p_value=float(p), dof=int(dof))
        else:
            out.update(test="chi2", statistic=None, p_value=None)
        out["unseen_categories"] = b.pop("unseen")
    else:
        raise DriftInputError(
            f"reference profile entry for {name!r} has kind {kind!r}; expected numeric or "
            "categorical (is data/profile.json from civicml.data.profile?)"
        )
    out["buckets"] = b
    out["psi"] = psi(b["reference"], b["current"])
    out["psi_band"] = psi_band(out["psi"])
    p = out.get("p_value")
    out["drifted"] = bool(p is not None and p < policy.p_value and out["psi"] >= policy.feature_psi)
    return out


def _not_compared(name: str, ref: dict[str, Any], status: str) -> dict[str, Any]:
    """The entry of a feature that could not be compared (`missing` from the window, or an `empty` window)."""
    return {
        "feature": name,
        "kind": ref.get("kind"),
        "status": status,
        "drifted": False,
        "psi": None,
        "psi_band": None,
        "test": None,
        "p_value": None,
        "statistic": None,
    }


def _summary(compared: list[dict[str, Any]], missing: list[str]) -> dict[str, Any]:
    """The report's `summary`: how many of the compared features drifted, and the largest PSI."""
    drifted = [f["feature"] for f in compared if f["drifted"]]
    top = max(compared, key=lambda f: f["psi"], default=None)
    return {
        "n_features": len(compared),
        "n_drifted": len(drifted),
        "drift_share": (len(drifted) / len(compared)) if compared else 0.0,
        "drifted": drifted,
        "max_psi": top["psi"] if top else None,
        "max_psi_feature": top["feature"] if top else None,
        "missing_features": missing,
    }


def _window_messages(missing: list[str], status: str, source: str) -> list[str]:
    """What the reader should check about the window itself: absent columns, no rows."""
    messages = []
    if missing:
        messages.append(
            f"window lacks {len(missing)} profiled feature column(s) {missing}; they are reported as "
            "missing and left out of the drift share. Check the upstream data or the serving request "
            "schema"
        )
    if status == "empty":
        messages.append(
            f"window from {source or 'the given source'} has 0 rows; nothing to compare. Check the "
            "source or widen monitoring.window_days"
        )
    return messages


def _unseen_messages(compared: list[dict[str, Any]]) -> list[str]:
    """A note naming the categories the window has and training never saw (none: no note)."""
    unseen = {f["feature"]: f["unseen_categories"] for f in compared if f.get("unseen_categories")}
    if not unseen:
        return []
    return ["categories never seen in training: " + "; ".join(f"{k}: {sorted(v)[:5]}" for k, v in unseen.items())]


def compute_drift(
    profile: dict[str, Any], window: pd.DataFrame, policy: MonitoringConfig, source: str = ""
) -> dict[str, Any]:
    """Compare every profiled feature of `window` with the reference `profile`.

    Never raises for an empty window or missing columns: the report says so (`status`
    `empty` / features with status `missing`) so a scheduled monitor keeps running.

    Args:
        profile: A version's `data/profile.json`.
        window: Recent rows (a new data batch, or features from the serving log).
        policy: The monitoring config (thresholds).
        source: Where the window came from, for the report.

    Returns:
        `{"status", "source", "window_rows", "reference_rows", "features": {...}, "summary": {...},
        "messages": [...]}`. `summary` has `n_features` (compared), `n_drifted`, `drift_share`,
        `drifted` (names), `max_psi`, `max_psi_feature`, `missing_features`.

    Raises:
        DriftInputError: the profile is not a civicml profile.
    """
    if not isinstance(profile, dict) or not isinstance(profile.get("features"), dict) or not profile["features"]:
        raise DriftInputError(
            "reference profile has no 'features'; expected the data/profile.json stored with a "
            "model version by civicml (civicml.data.profile.build_profile)"
        )
    ref_rows = int(profile.get("rows") or 0)
    # An empty window has no columns to speak of: report it as empty, not as every column missing.
    missing = [name for name in profile["features"] if name not in window.columns] if len(window) else []
    status = "ok" if len(window) else "empty"
    features: dict[str, Any] = {}
    for name, ref in profile["features"].items():
        if name in missing or status == "empty":
            features[name] = _not_compared(name, ref, "missing" if name in missing else "empty")
        else:
            features[name] = feature_drift(name, ref, window[name], ref_rows, policy)
    compared = [f for f in features.values() if f["status"] == "ok"]
    messages = _window_messages(missing, status, source) + _unseen_messages(compared)
    return {
        "status": status,
        "source": source,
        "window_rows": len(window),
        "reference_rows": ref_rows,
        "features": features,
        "summary": _summary(compared, missing),
        "messages": messages,
        "thresholds": {
            "p_value": policy.p_value,
            "feature_psi": policy.feature_psi,
            "psi_moderate": PSI_MODERATE,
            "psi_major": PSI_MAJOR,
        },
    }


# -- the serving log ------------------------------------------------------------------------------------


def read_log_records(
    store: Store, kind: str, window_days: float = 0.0, now: datetime | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """(records, problems) of one serving log: `serving.logread.read_records`, the one reader and its rule."""
    got = read_records(store, kind, window_days, now)
    return got.records, got.problems


def window_from_predictions(records: list[dict[str, Any]], version: str | None = None) -> pd.DataFrame:
    """The feature rows of prediction-log records (one row per record's `features`).

    Args:
        records: Prediction-log records.
        version: Keep only the rows this model version served (the version under watch): traffic
            served by an earlier champion says nothing about the new one. None keeps every row.
    """
    rows = [
        r["features"]
        for r in records
        if isinstance(r.get("features"), dict) and (version is None or r.get("version") == version)
    ]
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame()


def served_by(records: list[dict[str, Any]]) -> dict[str, int]:
    """How many logged predictions each version served, most first."""
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r.get("version"))] = counts.get(str(r.get("version")), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def finite_or_none(x: Any) -> Any:
    """JSON-safe number: NaN/inf become None."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x

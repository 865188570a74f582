"""A/B analysis of champion vs challenger from the server's prediction and feedback logs.

Predictions and feedback are joined on (request_id, row). Per arm we report the
number of predictions, the positive-prediction rate, the number of labelled
predictions and their accuracy. Two tests compare the challenger's accuracy with
the champion's:

- a two-proportion z-test (pooled), valid only if you look once at a sample size
  fixed in advance;
- an always-valid mixture sequential probability ratio test (mSPRT; Johari,
  Pekelis & Walsh, "Always Valid Inference", 2017) for the difference of
  proportions, using the normal approximation and a N(0, tau^2) mixing
  distribution. Its p-value is the running minimum of 1/Lambda_n over the
  feedback sequence, so checking the report every day does not inflate the false
  positive rate. The recommendation is driven by this test.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from civicml.serving.logread import feedback_frame, join_feedback, read_records
from civicml.serving.predlog import FEEDBACK, PREDICTIONS
from civicml.serving.routing import CHALLENGER, CHAMPION
from civicml.storage.registry import Registry

PROMOTE, KEEP, ROLL_BACK = "promote", "keep", "roll back"


def two_proportion_ztest(x1: int, n1: int, x2: int, n2: int) -> dict[str, float | None]:
    """Pooled two-sided z-test of p2 - p1.

    Returns:
        `diff`, `z` and `p_value` (z = 0 and p = 1 when the pooled variance is 0; None when an arm is empty).
    """
    if n1 == 0 or n2 == 0:
        return {"diff": None, "z": None, "p_value": None}
    p1, p2 = x1 / n1, x2 / n2
    pool = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
    if se == 0:
        return {"diff": p2 - p1, "z": 0.0, "p_value": 1.0}
    z = (p2 - p1) / se
    return {"diff": p2 - p1, "z": z, "p_value": float(2 * stats.norm.sf(abs(z)))}


def msprt_log_lambda(
    x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray, tau: float, burn_in: int = 30
) -> np.ndarray:
    """log of the mixture likelihood ratio Lambda for p2 - p1 (vectorised over prefixes).

    Uses theta_hat = p2 - p1 with variance V = p1(1-p1)/n1 + p2(1-p2)/n2 and a N(0, tau^2)
    mixture: log Lambda = 0.5 log(V / (V + tau^2)) + tau^2 theta_hat^2 / (2 V (V + tau^2)).
    Worked in logs: an overwhelming difference has Lambda beyond float range, which must read as
    "overwhelming", not be dropped as non-finite.

    When V is 0 (each arm all-correct or all-wrong, e.g. 0% vs 100%) the plug-in variance says
    nothing; it is replaced by the variance at add-half-a-success-and-a-failure estimates
    p~ = (x + 0.5) / (n + 1), the smallest variance the counts are consistent with. Prefixes where an
    arm has fewer than `burn_in` observations get log Lambda = 0 (no evidence): the normal
    approximation is unreliable for tiny samples.
    """
    x1, n1, x2, n2 = (np.asarray(a, dtype="float64") for a in (x1, n1, x2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = x1 / n1, x2 / n2
        v = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
        q1, q2 = (x1 + 0.5) / (n1 + 1), (x2 + 0.5) / (n2 + 1)
        v = np.where(v > 0, v, q1 * (1 - q1) / n1 + q2 * (1 - q2) / n2)
        t2 = tau * tau
        log_lam = 0.5 * np.log(v / (v + t2)) + t2 * (p2 - p1) ** 2 / (2 * v * (v + t2))
    ok = (n1 >= max(burn_in, 1)) & (n2 >= max(burn_in, 1)) & np.isfinite(log_lam)
    return np.where(ok, log_lam, 0.0)


def msprt_lambda(
    x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray, tau: float, burn_in: int = 30
) -> np.ndarray:
    """Lambda itself (`exp` of `msprt_log_lambda`; inf where it exceeds float range)."""
    with np.errstate(over="ignore"):
        return np.exp(msprt_log_lambda(x1, n1, x2, n2, tau, burn_in))


def msprt(sequence: pd.DataFrame, tau: float = 0.1, burn_in: int = 30) -> dict[str, float]:
    """Always-valid test over a sequence of labelled outcomes in arrival order.

    Args:
        sequence: Rows with `arm` (`champion`/`challenger`) and `correct` (0/1), in arrival order.
        tau: Standard deviation of the mixing distribution (the effect sizes you expect).
        burn_in: Observations each arm needs before a prefix counts as evidence.

    Returns:
        `lambda` at the end (capped at 1e300 to stay JSON), `log_lambda`, `p_value` (always valid:
        running min of 1/Lambda, capped at 1) and `n`.
    """
    a = (sequence["arm"] == CHAMPION).to_numpy()
    b = (sequence["arm"] == CHALLENGER).to_numpy()
    c = sequence["correct"].to_numpy(dtype="float64")
    log_lam = msprt_log_lambda(np.cumsum(c * a), np.cumsum(a), np.cumsum(c * b), np.cumsum(b), tau, burn_in)
    if len(log_lam) == 0:
        return {"lambda": 1.0, "log_lambda": 0.0, "p_value": 1.0, "n": 0}
    p = float(min(1.0, math.exp(-float(np.max(log_lam)))))
    last = float(log_lam[-1])
    return {"lambda": math.exp(min(last, math.log(1e300))), "log_lambda": last, "p_value": p, "n": len(log_lam)}


def join_logs(predictions: list[dict[str, Any]], feedback: list[dict[str, Any]]) -> pd.DataFrame:
    """Predictions with their first feedback outcome, if any (`serving.logread.join_feedback`'s rule).

    `label_provenance` counts the predictions labelled more than once with different outcomes.
    """
    return join_feedback(predictions, feedback)


def label_provenance(feedback: list[dict[str, Any]], joined: pd.DataFrame) -> dict[str, Any]:
    """Where labels came from: counts by source (all received, and those counted), relabels and conflicts."""
    fb = feedback_frame(feedback)
    counted = joined[joined["outcome"].notna()] if len(joined) else joined
    per_key = fb.groupby(["request_id", "row"])["outcome"].agg(["count", "nunique"]) if len(fb) else None
    return {
        "received_by_source": {str(k): int(v) for k, v in fb["source"].value_counts().sort_index().items()},
        "counted_by_source": (
            {str(k): int(v) for k, v in counted["source"].value_counts().sort_index().items()} if len(counted) else {}
        ),
        "relabelled": int((per_key["count"] > 1).sum()) if per_key is not None else 0,
        "conflicting": int((per_key["nunique"] > 1).sum()) if per_key is not None else 0,
        "unmatched": int(len(fb) - fb.merge(joined[["request_id", "row"]], on=["request_id", "row"]).shape[0])
        if len(fb)
        else 0,
    }


def _arm_figures(joined: pd.DataFrame, arm: str, version: str | None) -> tuple[dict[str, Any], pd.DataFrame]:
    """One arm's figures and its labelled rows (with `correct`)."""
    rows = joined[(joined["arm"] == arm) & (joined["version"] == version)] if version else joined.iloc[0:0]
    labelled = rows[rows["outcome"].notna()].copy()
    labelled["correct"] = (labelled["prediction"].astype("float64") == labelled["outcome"].astype("float64")).astype(
        "int64"
    )
    figures = {
        "version": version,
        "count": len(rows),
        "positive_rate": float(rows["prediction"].astype("float64").mean()) if len(rows) else None,
        "labelled": len(labelled),
        "correct": int(labelled["correct"].sum()),
        "accuracy": float(labelled["correct"].mean()) if len(labelled) else None,
        "labels_by_source": {str(k): int(v) for k, v in labelled["source"].value_counts().sort_index().items()},
    }
    return figures, labelled


def _recommend(
    arms: dict[str, dict[str, Any]], sequential: dict[str, float], alpha: float, min_samples: int
) -> tuple[str, str]:
    """(recommendation, reason) from the per-arm figures and the always-valid test."""
    a, b = arms[CHAMPION], arms[CHALLENGER]
    if not b["version"]:
        return KEEP, "no challenger is deployed"
    if min(a["labelled"], b["labelled"]) < min_samples:
        return KEEP, (
            f"not enough feedback yet: {a['labelled']} champion and {b['labelled']} challenger "
            f"labelled predictions, need {min_samples} each"
        )
    if sequential["p_value"] < alpha:
        reason = (
            f"challenger accuracy {b['accuracy']:.3f} vs champion {a['accuracy']:.3f}; always-valid "
            f"p = {sequential['p_value']:.4f} < {alpha}"
        )
        return (PROMOTE if b["accuracy"] > a["accuracy"] else ROLL_BACK), reason
    return KEEP, (
        f"no significant difference yet (always-valid p = {sequential['p_value']:.4f} >= {alpha}); "
        "keep collecting feedback"
    )


def ab_report(
    registry: Registry,
    champion: str | None = None,
    challenger: str | None = None,
    alpha: float = 0.05,
    tau: float = 0.1,
    min_samples: int = 100,
) -> dict[str, Any]:
    """Per-arm figures, both tests and a recommendation for the current (or given) experiment.

    Args:
        registry: Registry whose store holds `logs/predictions` and `logs/feedback`.
        champion: Champion version to analyse; the `champion` alias when None.
        challenger: Challenger version; the `challenger` alias when None.
        alpha: Significance level of the sequential test.
        tau: mSPRT mixing standard deviation.
        min_samples: Labelled predictions each arm needs before any recommendation other than keep.

    Returns:
        `arms` (per-arm count, positive_rate, labelled, accuracy, labels_by_source), `z_test`, `msprt`,
        `recommendation` with a `reason`, `labels` (where labels came from, relabels, conflicts) and
        `log_problems` (log lines that could not be read and were skipped: `serving.logread`).
    """
    from civicml.serving.routing import current_routing

    routing = current_routing(registry)
    versions = {CHAMPION: champion or routing.champion, CHALLENGER: challenger or routing.challenger}
    predictions, feedback = read_records(registry.store, PREDICTIONS), read_records(registry.store, FEEDBACK)
    joined = join_logs(predictions.records, feedback.records)
    arms: dict[str, dict[str, Any]] = {}
    parts = []
    for arm, version in versions.items():
        arms[arm], labelled = _arm_figures(joined, arm, version)
        parts.append(labelled)
    a, b = arms[CHAMPION], arms[CHALLENGER]
    seq = pd.concat(parts, ignore_index=True)
    seq = seq.sort_values("feedback_ts", kind="stable") if len(seq) else seq
    sequential = msprt(seq, tau) if len(seq) else {"lambda": 1.0, "log_lambda": 0.0, "p_value": 1.0, "n": 0}
    rec, reason = _recommend(arms, sequential, alpha, min_samples)
    return {
        "arms": arms,
        "z_test": two_proportion_ztest(a["correct"], a["labelled"], b["correct"], b["labelled"]),
        "msprt": {**sequential, "tau": tau, "alpha": alpha},
        "recommendation": rec,
        "reason": reason,
        "min_samples": min_samples,
        "labels": label_provenance(feedback.records, joined),
        "log_problems": predictions.problems + feedback.problems,
    }


# `civicml ab report --check` exit codes: only a recommendation to promote is success, so
# `civicml ab report --check && civicml ab promote` promotes only what the test supports.
CHECK_EXIT_CODES = {PROMOTE: 0, KEEP: 3, ROLL_BACK: 4}


class PromotionRefused(RuntimeError):
    """`ab promote` without a significant result and without `--force --reason`."""


def check_promotion(report: dict[str, Any], force: bool = False, reason: str | None = None) -> dict[str, Any]:
    """Whether the challenger may become the champion on this A/B report.

    Args:
        report: An `ab_report` result.
        force: Promote although the report does not recommend it (a person takes responsibility).
        reason: Why; required with `force` (it goes into the audit log).

    Returns:
        The audit payload: challenger, champion, recommendation, its reason, p-values, per-arm
        figures, `forced` and the person's `reason`.

    Raises:
        PromotionRefused: no challenger; the report does not recommend promotion and `force` is not
            set; or `force` without a reason.
    """
    arms = report["arms"]
    challenger = arms[CHALLENGER]["version"]
    if not challenger:
        raise PromotionRefused(
            "there is no challenger to promote; deploy one with `civicml deploy VERSION --as challenger`"
        )
    recommended = report["recommendation"] == PROMOTE
    if not recommended and not force:
        raise PromotionRefused(
            f"refusing to promote {challenger}: the A/B report recommends {report['recommendation']!r} "
            f"({report['reason']}). Wait for a significant result (`civicml ab report --check` exits 0 when it "
            "recommends promotion), or take responsibility with `civicml ab promote --force --reason 'why'`"
        )
    if force and not recommended and not (reason or "").strip():
        raise PromotionRefused(
            "--force needs --reason: say why the challenger is promoted without a significant A/B result "
            "(e.g. --reason 'champion withdrawn: data supplier changed') — it is kept in the audit log"
        )
    return {
        "champion": arms[CHAMPION]["version"],
        "challenger": challenger,
        "recommendation": report["recommendation"],
        "report_reason": report["reason"],
        "msprt_p_value": report["msprt"]["p_value"],
        "z_test_p_value": report["z_test"]["p_value"],
        "arms": arms,
        "forced": not recommended,
        "reason": (reason or "").strip() or f"A/B test: {report['reason']}",
    }

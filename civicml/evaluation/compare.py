"""Champion vs challenger on the same test rows: paired bootstrap and McNemar's test.

Definitions (the gate in `governance.policy` relies on them):

* `metric` is the headline metric: `roc_auc` (classification) or `rmse` (regression).
* `difference` is the challenger's **improvement** over the champion, oriented so
  that positive is always better: `challenger − champion` for roc_auc,
  `champion − challenger` for rmse.
* `ci_low`/`ci_high` is the percentile interval of `difference` over paired
  bootstrap resamples (both models scored on the *same* resampled rows, so the
  correlation between them cancels and the interval is much tighter than two
  separate intervals).
* `significantly_worse` is `ci_high < -margin`: even the optimistic end of the
  interval says the challenger is worse than the champion by more than the
  non-inferiority margin. The gate rejects such a challenger.
* `non_inferior` is `ci_low >= -margin`: the pessimistic end is within the
  margin, so non-inferiority is shown. A challenger that is neither
  (the interval straddles `-margin`) is *inconclusive*; the gate treats it as
  borderline.
* `mcnemar_p` (classification only) is the exact two-sided McNemar test on
  accuracy at the evaluation threshold: a binomial test of the discordant pairs
  (`scipy.stats.binomtest`), informational — the gate uses the bootstrap.
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from civicml.evaluation.bootstrap import Bootstrap, percentile_intervals
from civicml.evaluation.metrics import metric_statistic
from civicml.modeling.estimators import TrainedModel

HEADLINE = {"binary_classification": "roc_auc", "regression": "rmse"}


def mcnemar(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test of two classifiers' accuracy on the same rows.

    Returns:
        `{a_only_correct, b_only_correct, p_value}` (p = 1 when no pair is discordant).
    """
    a_ok = pred_a == y
    b_ok = pred_b == y
    a_only = int(np.sum(a_ok & ~b_ok))
    b_only = int(np.sum(b_ok & ~a_ok))
    n = a_only + b_only
    p = 1.0 if n == 0 else float(binomtest(a_only, n, 0.5, alternative="two-sided").pvalue)
    return {"a_only_correct": a_only, "b_only_correct": b_only, "p_value": p}


def paired_comparison(
    task: str,
    y: np.ndarray,
    challenger_score: np.ndarray,
    champion_score: np.ndarray,
    margin: float,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    threshold: float = 0.5,
    boot: Bootstrap | None = None,
) -> dict[str, Any]:
    """Compare two models' scores on the same rows (see the module docstring for every field).

    With a shared `boot` (its resamples, seed and level apply) the interval fields are filled when it runs.
    """
    y = np.asarray(y)
    chal = np.asarray(challenger_score, dtype="float64")
    champ = np.asarray(champion_score, dtype="float64")
    sign = 1.0 if task == "binary_classification" else -1.0  # rmse: lower is better
    name = HEADLINE[task]
    chal_stat = metric_statistic(task, y, chal, which=(name,))
    champ_stat = metric_statistic(task, y, champ, which=(name,))
    ones = np.ones((1, len(y)))
    chal_v = float(chal_stat(ones)[name][0])
    champ_v = float(champ_stat(ones)[name][0])
    out: dict[str, Any] = {
        "metric": name,
        "challenger": chal_v,
        "champion": champ_v,
        "difference": sign * (chal_v - champ_v),
        "difference_orientation": "positive = challenger better",
        "ci_low": None,
        "ci_high": None,
        "level": level,
        "n_resamples": 0,
        "margin": margin,
        "significantly_worse": False,
        "non_inferior": False,
        "mcnemar_p": None,
    }

    def difference(W: np.ndarray) -> dict[str, np.ndarray]:
        return {"difference": sign * (chal_stat(W)[name] - champ_stat(W)[name])}

    own = boot or Bootstrap(n_resamples, seed, level)
    own.add(len(y), difference, then=lambda draws: out.update(_interval_fields(draws["difference"], own, margin)))
    if boot is None:
        own.run()
    if task == "binary_classification":
        m = mcnemar(y, (chal >= threshold).astype(int), (champ >= threshold).astype(int))
        out.update(
            mcnemar_p=m["p_value"],
            challenger_only_correct=m["a_only_correct"],
            champion_only_correct=m["b_only_correct"],
        )
    return out


def _interval_fields(d: np.ndarray, boot: Bootstrap, margin: float) -> dict[str, Any]:
    """The interval of the difference's draws `d` and the verdicts the gate reads from it."""
    # An interval only when the metric is defined in at least half the resamples (not for one class only).
    found = percentile_intervals({"difference": d}, boot.n_resamples, boot.level).get("difference")
    lo, hi = (found["low"], found["high"]) if found else (None, None)
    return {
        "ci_low": lo,
        "ci_high": hi,
        "level": boot.level,
        "n_resamples": int(np.isfinite(d).sum()),
        "significantly_worse": hi is not None and hi < -margin,
        "non_inferior": lo is not None and lo >= -margin,
    }


def incompatibility(challenger: TrainedModel, champion: TrainedModel, test: pd.DataFrame) -> str | None:
    """Why the champion cannot be scored on the challenger's test rows, or None when it can."""
    if champion.task != challenger.task:
        return f"champion task {champion.task!r} differs from the challenger's {challenger.task!r}"
    if champion.spec.target != challenger.spec.target:
        return f"champion predicts {champion.spec.target!r}, the challenger {challenger.spec.target!r}"
    if champion.task == "binary_classification" and champion.spec.classes != challenger.spec.classes:
        return f"champion classes {champion.spec.classes} differ from the challenger's {challenger.spec.classes}"
    missing = [f for f in champion.spec.features if f not in test.columns]
    if missing:
        return f"champion needs feature column(s) {missing} that the test data does not have"
    return None


def _champion_score(
    challenger: TrainedModel, test: pd.DataFrame, registry, version: str
) -> tuple[np.ndarray | None, str | None]:
    """The champion `version`'s scores on the test rows, or (None, why it cannot give them)."""
    from civicml.modeling.persistence import ModelLoadError, load_model
    from civicml.storage.registry import RegistryError

    try:
        with tempfile.TemporaryDirectory(prefix="civicml-champion-") as tmp:
            registry.fetch_prefix(version, "model", tmp)
            champion = load_model(tmp)
    except (RegistryError, ModelLoadError, OSError, ValueError, KeyError) as err:
        return None, f"champion could not be loaded: {err}"
    why = incompatibility(challenger, champion, test)
    if why:
        return None, why
    try:
        return champion.score(test), None
    except (ValueError, TypeError, KeyError) as err:
        return None, f"champion could not score the test rows: {err}"


def compare_with_champion(
    challenger: TrainedModel,
    test: pd.DataFrame,
    registry,
    margin: float,
    n_resamples: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
    boot: Bootstrap | None = None,
) -> dict[str, Any] | None:
    """Score the registry's `champion` on the same test rows and compare.

    Args:
        challenger: The newly trained model.
        test: Test rows (features + target).
        registry: `civicml.storage.registry.Registry`.
        margin: Non-inferiority margin (`policy.non_inferiority_margin`).
        n_resamples: Paired bootstrap resamples.
        seed: Bootstrap seed.
        threshold: Classification threshold (McNemar).
        boot: A shared `Bootstrap` for the paired interval (filled when it runs).

    Returns:
        None when there is no champion; `{champion_version, skipped: reason}` when the champion
        cannot be loaded or is not compatible with the test data (never raises for that);
        otherwise `{champion_version, **paired_comparison(...)}`.
    """
    version = registry.get_alias("champion")
    if version is None:
        return None
    champ_score, why = _champion_score(challenger, test, registry, version)
    if champ_score is None:
        return {"champion_version": version, "skipped": why}
    y = challenger.spec.encode_target(test[challenger.spec.target])
    result = paired_comparison(
        challenger.task,
        y,
        challenger.score(test),
        champ_score,
        margin,
        n_resamples=n_resamples,
        seed=seed,
        threshold=threshold,
        boot=boot,
    )
    # The same dict, so that a shared bootstrap's interval lands in the returned document too.
    result["champion_version"] = version
    return result

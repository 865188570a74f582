"""ROC-AUC and average precision of bootstrap resamples from one sort of the scores.

The rows are sorted once by (score, label). For a matrix of resample weights the weight of the
negatives and of the positives at each distinct score are differences of one cumulative sum of the
weights in that order, read at the end of each score's negatives and at the end of the score. ROC-AUC
is then the weighted rank statistic (each positive beats the negative weight below its score, a tie
counts one half) and average precision the precision at each threshold weighted by its recall step,
as scikit-learn defines both. Counts of integer weights are exact in float64, so these equal the
per-resample sums they replace; the one float sum (average precision's) keeps the order the earlier
code summed in (see `_average_precision`).
"""

from __future__ import annotations

import numpy as np


class RankedScores:
    """Scores sorted once, with the positions the per-resample sums are read at.

    Args:
        y: 0/1 labels.
        p: Scores (probabilities).
    """

    def __init__(self, y: np.ndarray, p: np.ndarray):
        y = np.asarray(y).astype("int64")
        p = np.asarray(p, dtype="float64")
        order = np.lexsort((y, p))  # by score, negatives first within a score
        ps, ys = p[order], y[order]
        starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
        ends = np.r_[starts[1:], len(ps)] - 1
        negatives = np.add.reduceat(1 - ys, starts) if len(ps) else np.zeros(0, "int64")
        self.order = order
        self.tied = len(starts) < len(ps)  # ties: one step per distinct score, as scikit-learn does
        # Per score: the last position of its negatives (its start - 1 when it has none) and its last position.
        self.bounds = np.stack([starts + negatives - 1, ends], axis=1).ravel()

    def weights_per_score(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positives, negatives): resampled weight at each distinct score, scores ascending."""
        cum = np.take(W, self.order, axis=1)
        np.cumsum(cum, axis=1, out=cum)
        at = np.take(cum, np.maximum(self.bounds, 0), axis=1)
        del cum
        at[:, self.bounds < 0] = 0.0  # a first score without negatives: nothing before it
        at = at.reshape(len(W), -1, 2)
        neg_end, end = at[:, :, 0], at[:, :, 1]
        before = np.zeros_like(end)
        before[:, 1:] = end[:, :-1]
        return np.ascontiguousarray(end - neg_end), np.ascontiguousarray(neg_end - before)

    def metrics(self, W: np.ndarray, which: tuple[str, ...]) -> dict[str, np.ndarray]:
        """`roc_auc` and/or `pr_auc` per resample (NaN when a resample holds one class only)."""
        pos, neg = self.weights_per_score(W)
        out: dict[str, np.ndarray] = {}
        n_pos = pos.sum(axis=1)
        n_neg = neg.sum(axis=1)
        defined = (n_pos > 0) & (n_neg > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            if "roc_auc" in which:
                auc = (pos * (np.cumsum(neg, axis=1) - 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
                out["roc_auc"] = np.where(defined, auc, np.nan)
            if "pr_auc" in which:
                out["pr_auc"] = np.where(defined, self._average_precision(pos, neg) / n_pos, np.nan)
        return out

    def _average_precision(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        """Sum over thresholds (descending) of the positives' weight there times the precision there.

        The order of this float sum decides the last bit of the intervals, which must not change
        (tests/unit/test_bootstrap_golden.py): with ties the earlier code summed a row-major matrix
        (pairwise), without ties the column-major one fancy indexing had returned (one column after
        another), so the sum runs on the same layout.
        """
        pos_r = pos[:, ::-1]
        tp_c = np.cumsum(pos_r, axis=1)
        all_c = tp_c + np.cumsum(neg[:, ::-1], axis=1)
        terms = pos_r * np.where(all_c > 0, tp_c / all_c, 0.0)
        return (terms if self.tied else np.asfortranarray(terms)).sum(axis=1)

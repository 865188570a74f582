"""One bootstrap for every interval an evaluation reports.

A bootstrap resample of the `n` test rows is a vector of multinomial counts `w` (how often each row
is drawn); a statistic evaluated on a matrix of such vectors `W` (resamples × rows) gives one value
per resample. The headline metrics, the fairness disparities, the no-skill margins and the champion
comparison are all statistics of this kind, and they all register on one `Bootstrap`, which draws the
weights once per chunk of resamples and hands the same matrix to every statistic.

Identity with the separate loops this replaces: each of them drew `rng = default_rng(seed)` and
then `rng.integers(0, n, size=(chunk, n))` chunk after chunk. The weights of a given `n` and seed do
not depend on how the resamples are cut into chunks (the generator's stream is consumed in the same
order), so statistics over the same rows share one stream, and a statistic over fewer rows (fairness
without the rows of suppressed groups) gets its own stream from the same seed, exactly as before.
`tests/unit/test_bootstrap_golden.py` holds the intervals of the old loops and checks equality.

Memory: a chunk holds `chunk × n` weights plus the statistics' temporaries (the ranking pass makes a
few matrices of the same shape), about `BYTES_PER_CELL` bytes a cell; the chunk is sized so that
this stays within `memory_budget` (at most `MAX_CHUNK` resamples). The chunk geometry is part of the
result in the last bit: BLAS sums a matrix-vector product's rows in blocks, and rows past the last
full block another way, so the Brier, log-loss and regression draws of one resample can differ by
1e-12 between chunk sizes. The default budget therefore keeps the chunks the code has always used
(2M cells, at most 100 resamples); a different budget gives intervals equal to ~1e-12, not bit-equal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

import numpy as np

if TYPE_CHECKING:
    from typing_extensions import Unpack

Statistic = Callable[[np.ndarray], dict[str, np.ndarray]]
Draws = dict[str, np.ndarray]

# Peak bytes per weight cell: the weights (8), their generation (16, freed before the statistics run)
# and the ranking pass (sorted weights, positives, negatives and the cumulative sums: ~48).
BYTES_PER_CELL = 64
MEMORY_BUDGET = 2_000_000 * BYTES_PER_CELL  # 128 MB: 10 resamples a chunk at 200k test rows
MAX_CHUNK = 100


def resample_weights(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial bootstrap counts: row b says how often each of the `n` rows is drawn in resample b.

    Drawing indices and counting them (rather than `rng.multinomial`) keeps the weights
    identical to materialising `y[idx]` with `idx = rng.integers(0, n, n)`.
    """
    idx = rng.integers(0, n, size=(n_resamples, n))
    idx += (np.arange(n_resamples) * n)[:, None]  # one bincount for all resamples: offset each row
    counts = np.bincount(idx.ravel(), minlength=n_resamples * n)
    del idx
    return counts.reshape(n_resamples, n).astype("float64")


def chunk_size(n: int, n_resamples: int, memory_budget: int = MEMORY_BUDGET) -> int:
    """Resamples per chunk so that a chunk over `n` rows stays within `memory_budget` bytes."""
    return max(1, min(n_resamples, MAX_CHUNK, memory_budget // (BYTES_PER_CELL * max(n, 1))))


def percentile_intervals(draws: Draws, n_resamples: int, level: float) -> dict[str, dict[str, float]]:
    """Percentile intervals of each statistic's draws.

    Non-finite draws (a resample in which the statistic is undefined, e.g. one class only) are
    dropped; a statistic defined in fewer than half of the resamples gets no interval.

    Returns:
        `{name: {"low", "high", "level", "n_resamples"}}`, `n_resamples` counting the finite draws.
    """
    alpha = (1 - level) / 2
    out: dict[str, dict[str, float]] = {}
    for name, values in draws.items():
        v = values[np.isfinite(values)]
        if len(v) < n_resamples / 2:
            continue
        lo, hi = np.quantile(v, [alpha, 1 - alpha])
        out[name] = {"low": float(lo), "high": float(hi), "level": level, "n_resamples": len(v)}
    return out


@dataclass
class _Request:
    n: int
    statistic: Statistic
    then: Callable[[Draws], None] | None
    intervals: dict[str, dict[str, float]]
    parts: dict[str, list[np.ndarray]] = field(default_factory=dict)


class Bootstrap:
    """Statistics evaluated on shared resample weights.

    Usage: `cis = boot.add(n, statistic)` for each statistic, then `boot.run()`, after which `cis`
    holds the percentile intervals (or `then(draws)` has been called with every draw).

    Args:
        n_resamples: Resamples (1000 by default, the evaluation's).
        seed: Seed of the resampling; the same seed gives the same intervals.
        level: Coverage of the intervals, e.g. 0.95.
        memory_budget: Bytes a chunk of weights and its temporaries may take.
    """

    def __init__(self, n_resamples: int = 1000, seed: int = 0, level: float = 0.95, memory_budget: int = MEMORY_BUDGET):
        self.n_resamples = n_resamples
        self.seed = seed
        self.level = level
        self.memory_budget = memory_budget
        self._requests: list[_Request] = []

    def add(
        self, n: int, statistic: Statistic, then: Callable[[Draws], None] | None = None
    ) -> dict[str, dict[str, float]]:
        """Register `statistic` over `n` rows.

        Args:
            n: Rows the statistic's weight matrices have.
            statistic: `W -> {name: value per resample}`.
            then: Called by `run` with `{name: all draws}`, for callers that summarise the draws their way.

        Returns:
            A dict that `run` fills with `percentile_intervals` of the draws.
        """
        request = _Request(n, statistic, then, {})
        self._requests.append(request)
        return request.intervals

    def run(self) -> None:
        """Draw the weights chunk by chunk, evaluate every statistic on them, then summarise."""
        if not self._requests or self.n_resamples <= 0:
            return
        for n in sorted({r.n for r in self._requests}):
            rng = np.random.default_rng(self.seed)  # one stream per row count: see the module docstring
            chunk = chunk_size(n, self.n_resamples, self.memory_budget)
            sharing = [r for r in self._requests if r.n == n]
            for start in range(0, self.n_resamples, chunk):
                W = resample_weights(n, min(chunk, self.n_resamples - start), rng)
                for request in sharing:
                    for name, values in request.statistic(W).items():
                        request.parts.setdefault(name, []).append(values)
                del W
        for request in self._requests:
            draws = {name: np.concatenate(parts) for name, parts in request.parts.items()}
            request.intervals.update(percentile_intervals(draws, self.n_resamples, self.level))
            if request.then is not None:
                request.then(draws)
        self._requests = []


class Resampling(TypedDict, total=False):
    """An own bootstrap's settings (`Bootstrap`'s arguments and defaults), for a caller that shares none.

    Keys:
        n_resamples: Resamples (1000 by default).
        seed: Seed of the resampling; the same seed gives the same intervals.
        level: Coverage of the intervals, e.g. 0.95.
        memory_budget: Bytes a chunk of weights may take (the intervals do not depend on it).
    """

    n_resamples: int
    seed: int
    level: float
    memory_budget: int


def on_bootstrap(
    boot: Bootstrap | None, n: int, statistic: Statistic, **resampling: Unpack[Resampling]
) -> dict[str, dict[str, float]]:
    """Register `statistic` on the shared `boot` (filled when it runs), or run it now on `Bootstrap(**resampling)`."""
    own = boot or Bootstrap(**resampling)
    intervals = own.add(n, statistic)
    if boot is None:
        own.run()
    return intervals


def run_one(
    n: int, statistic: Statistic, n_resamples: int, seed: int, level: float, memory_budget: int = MEMORY_BUDGET
) -> tuple[dict[str, dict[str, float]], Draws]:
    """One statistic on its own bootstrap: its intervals and its draws."""
    boot = Bootstrap(n_resamples, seed, level, memory_budget)
    draws: Draws = {}
    intervals = boot.add(n, statistic, then=draws.update)
    boot.run()
    return intervals, draws

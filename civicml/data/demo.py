"""Synthetic benefit-claims table (`demo:benefits`) for demos, tests and benchmarks.

The generator is seeded and vectorised: the same (rows, month, bias, seed) always
gives the same bytes. `month` drifts the features in `DRIFTED_FEATURES` only, so
drift detection can be checked against a known answer; `bias` makes the label
depend on region through a proxy feature (`postcode_area`), so a model trained
without the sensitive column still learns the bias and fairness checks catch it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TARGET = "needs_review"
SENSITIVE = ["sex", "age_band", "region"]
PII = ["claimant_name"]
NUMERIC = [
    "monthly_income",
    "claim_amount",
    "household_size",
    "prior_claims",
    "months_employed",
    "documents_missing",
    "days_since_last_claim",
    "inconsistency_score",
]
CATEGORICAL = ["benefit_type", "employment_status", "application_channel", "postcode_area"]
DRIFTED_FEATURES = ["monthly_income", "claim_amount", "application_channel"]
BIASED_GROUP = ("region", "East")

REGIONS = ["North", "South", "East", "West", "Central"]
AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
BENEFIT_TYPES = ["housing", "disability", "unemployment", "childcare", "food"]
EMPLOYMENT = ["employed", "unemployed", "self_employed", "retired", "student"]
CHANNELS = ["online", "phone", "in_person", "mail"]
_FIRST = np.array(["Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn"])
_LAST = np.array(["Smith", "Jones", "Brown", "Garcia", "Nguyen", "Khan", "Murphy", "Cohen", "Okafor", "Silva"])


#: Rows per generated block. Fixed (not a memory knob) so that the table's bytes depend only on
#: (rows, month, bias, seed): block 0 is seeded [seed, month] as the table always was, block k > 0
#: is seeded [seed, month, k]; tables up to CHUNK_ROWS rows are one block.
CHUNK_ROWS = 1_000_000


def _check(rows: int, month: int, bias: float) -> None:
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    if month < 1:
        raise ValueError(f"month must be >= 1, got {month}")
    if not 0.0 <= bias <= 1.0:
        raise ValueError(f"bias must be within [0, 1], got {bias}")


def iter_benefits(
    rows: int = 5000, month: int = 1, bias: float = 0.0, seed: int = 7, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """The benefit-claims table as consecutive blocks of at most `chunk_rows` rows.

    Every block is an independent sample of the same distribution, so memory stays at one
    block whatever `rows` is. `chunk_rows` is for tests; the default gives the canonical table.
    """
    _check(rows, month, bias)
    for k, start in enumerate(range(0, rows, chunk_rows)):
        # The month enters the seed so drifted months are fresh samples, not shifted copies.
        rng = np.random.default_rng([seed, month] if k == 0 else [seed, month, k])
        yield _block(rng, min(chunk_rows, rows - start), month, bias)


def generate_benefits(rows: int = 5000, month: int = 1, bias: float = 0.0, seed: int = 7) -> pd.DataFrame:
    """Generate the benefit-claims table in memory (the same rows `write_benefits` streams to a file).

    Args:
        rows: Number of rows (1k to 10M is the supported range).
        month: 1 is the reference month; each later month shifts income and claim
            amounts up and moves applications online.
        bias: 0 for none; up to 1 adds a label bias against `region == "East"`.
        seed: Random seed; with the other knobs it fully determines the output.

    Returns:
        A DataFrame with numeric and categorical features, sensitive attributes,
        one PII column and the binary target `needs_review`.
    """
    blocks = list(iter_benefits(rows, month, bias, seed))
    return blocks[0] if len(blocks) == 1 else pd.concat(blocks, ignore_index=True)


def write_benefits(
    path: str | Path, rows: int, month: int = 1, bias: float = 0.0, seed: int = 7, chunk_rows: int = CHUNK_ROWS
) -> int:
    """Stream the table to `.parquet` (one row group per block) or `.csv`, in bounded memory.

    Written to a temporary file beside `path` and renamed, so a failed write leaves nothing.

    Returns:
        The number of rows written.
    """
    import os
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(path)
    parquet = out.suffix.lower() == ".parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    written = 0
    try:
        writer = None
        with open(tmp, "wb") as fh:
            for block in iter_benefits(rows, month, bias, seed, chunk_rows):
                if parquet:
                    table = pa.Table.from_pandas(block, preserve_index=False)
                    writer = writer or pq.ParquetWriter(fh, table.schema)
                    writer.write_table(table)
                else:
                    block.to_csv(fh, index=False, header=written == 0)
                written += len(block)
            if writer is not None:
                writer.close()
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return written


def _text(categories: list[str], codes: np.ndarray) -> pd.Series:
    """A text column (pandas `str`) built from category codes without a Python string per row.

    Arrow's `take` writes the strings straight into the column's buffer, which pandas wraps
    without a copy.
    """
    import pyarrow as pa

    return pd.Series(pa.array(categories).take(pa.array(codes)), dtype="str")


def _features(rng: np.random.Generator, rows: int, month: int) -> dict[str, np.ndarray]:
    """Category codes and numbers of every feature, drawn in the canonical order of the random stream.

    `rng.choice(array, p=...)` draws exactly the indices `rng.choice(len(array), p=...)` does, so
    drawing codes keeps the table's values while never holding one Python string per row (codes
    are kept as int8: a million rows of one column is a megabyte).
    """
    shift = month - 1
    online = min(0.35 + 0.08 * shift, 0.85)
    rest = (1 - online) / 3
    f: dict[str, np.ndarray] = {}
    f["sex"] = rng.choice(2, size=rows, p=[0.52, 0.48]).astype(np.int8)
    f["age_band"] = rng.choice(len(AGE_BANDS), size=rows, p=[0.12, 0.22, 0.2, 0.18, 0.16, 0.12]).astype(np.int8)
    f["region"] = rng.choice(len(REGIONS), size=rows, p=[0.2, 0.25, 0.2, 0.2, 0.15]).astype(np.int8)
    # Four postcode areas per region: a proxy for region that the model can learn.
    f["postcode_area"] = (f["region"] * 4 + rng.integers(0, 4, rows)).astype(np.int8)
    f["benefit_type"] = rng.choice(len(BENEFIT_TYPES), size=rows, p=[0.3, 0.2, 0.25, 0.15, 0.1]).astype(np.int8)
    f["employment_status"] = rng.choice(len(EMPLOYMENT), size=rows, p=[0.4, 0.25, 0.15, 0.12, 0.08]).astype(np.int8)
    f["application_channel"] = rng.choice(len(CHANNELS), size=rows, p=[online, rest, rest, rest]).astype(np.int8)
    f["monthly_income"] = rng.lognormal(mean=7.4 + 0.06 * shift, sigma=0.5, size=rows).round(2)
    f["claim_amount"] = rng.gamma(shape=2.0, scale=400.0 * (1 + 0.12 * shift), size=rows).round(2)
    f["household_size"] = (rng.poisson(2.2, rows) + 1).astype("int64")
    f["prior_claims"] = rng.poisson(1.1, rows).astype("int64")
    f["months_employed"] = np.clip(rng.normal(48, 30, rows), 0, None).round(1)
    f["documents_missing"] = rng.binomial(5, 0.12, rows).astype("int64")
    f["days_since_last_claim"] = rng.exponential(200, rows).round(0)
    f["inconsistency_score"] = rng.beta(2, 8, rows).round(4)
    return f


def _label(rng: np.random.Generator, f: dict[str, np.ndarray], bias: float) -> np.ndarray:
    """The binary target drawn from the logistic model the demo's directional effects come from."""
    logit = (
        -2.2
        + 0.9 * f["documents_missing"]
        + 4.0 * f["inconsistency_score"]
        + 0.35 * f["prior_claims"]
        + 0.0009 * (f["claim_amount"] - 800)
        - 0.00025 * (f["monthly_income"] - 1800)
        - 0.004 * (f["days_since_last_claim"] - 200) / 10
        + np.where(f["benefit_type"] == BENEFIT_TYPES.index("disability"), 0.5, 0.0)
        + np.where(f["employment_status"] == EMPLOYMENT.index("self_employed"), 0.4, 0.0)
        + np.where(f["application_channel"] == CHANNELS.index("mail"), 0.3, 0.0)
    )
    logit = logit + 2.5 * bias * (f["region"] == REGIONS.index(BIASED_GROUP[1]))
    prob = 1.0 / (1.0 + np.exp(-logit))
    return (rng.random(len(prob)) < prob).astype("int64")


_TEXT = {
    "sex": ["F", "M"],
    "age_band": AGE_BANDS,
    "region": REGIONS,
    "postcode_area": [f"{r[0]}{i}" for r in REGIONS for i in range(1, 5)],
    "benefit_type": BENEFIT_TYPES,
    "employment_status": EMPLOYMENT,
    "application_channel": CHANNELS,
}
_COLUMNS = [
    "claimant_name", "sex", "age_band", "region", "postcode_area", "benefit_type", "employment_status",
    "application_channel", *NUMERIC, TARGET,
]  # fmt: skip
_NAMES = [f"{first} {last}" for first in _FIRST for last in _LAST]


def _block(rng: np.random.Generator, rows: int, month: int, bias: float) -> pd.DataFrame:
    f = _features(rng, rows, month)
    target = _label(rng, f, bias)
    name_codes = rng.integers(0, 10, rows) * 10 + rng.integers(0, 10, rows)
    cols: dict[str, Any] = {"claimant_name": _text(_NAMES, name_codes)}
    cols.update((c, _text(_TEXT[c], f[c]) if c in _TEXT else f[c]) for c in _COLUMNS[1:-1])
    cols[TARGET] = target
    return pd.DataFrame(cols, columns=_COLUMNS, copy=False)

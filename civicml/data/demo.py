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


def _block(rng: np.random.Generator, rows: int, month: int, bias: float) -> pd.DataFrame:
    shift = month - 1

    sex = rng.choice(np.array(["F", "M"]), size=rows, p=[0.52, 0.48])
    age_band = rng.choice(np.array(AGE_BANDS), size=rows, p=[0.12, 0.22, 0.2, 0.18, 0.16, 0.12])
    region_idx = rng.choice(len(REGIONS), size=rows, p=[0.2, 0.25, 0.2, 0.2, 0.15])
    region = np.array(REGIONS)[region_idx]
    # Four postcode areas per region: a proxy for region that the model can learn.
    postcode = np.array([f"{r[0]}{i}" for r in REGIONS for i in range(1, 5)])[region_idx * 4 + rng.integers(0, 4, rows)]

    benefit = rng.choice(np.array(BENEFIT_TYPES), size=rows, p=[0.3, 0.2, 0.25, 0.15, 0.1])
    employment = rng.choice(np.array(EMPLOYMENT), size=rows, p=[0.4, 0.25, 0.15, 0.12, 0.08])
    online = min(0.35 + 0.08 * shift, 0.85)
    rest = (1 - online) / 3
    channel = rng.choice(np.array(CHANNELS), size=rows, p=[online, rest, rest, rest])

    income = rng.lognormal(mean=7.4 + 0.06 * shift, sigma=0.5, size=rows).round(2)
    claim_amount = rng.gamma(shape=2.0, scale=400.0 * (1 + 0.12 * shift), size=rows).round(2)
    household = rng.poisson(2.2, rows) + 1
    prior = rng.poisson(1.1, rows)
    months_employed = np.clip(rng.normal(48, 30, rows), 0, None).round(1)
    docs_missing = rng.binomial(5, 0.12, rows)
    days_since = rng.exponential(200, rows).round(0)
    inconsistency = rng.beta(2, 8, rows).round(4)

    logit = (
        -2.2
        + 0.9 * docs_missing
        + 4.0 * inconsistency
        + 0.35 * prior
        + 0.0009 * (claim_amount - 800)
        - 0.00025 * (income - 1800)
        - 0.004 * (days_since - 200) / 10
        + np.where(benefit == "disability", 0.5, 0.0)
        + np.where(employment == "self_employed", 0.4, 0.0)
        + np.where(channel == "mail", 0.3, 0.0)
    )
    logit = logit + 2.5 * bias * (region == BIASED_GROUP[1])
    prob = 1.0 / (1.0 + np.exp(-logit))
    target = (rng.random(rows) < prob).astype("int64")

    names = np.char.add(np.char.add(_FIRST[rng.integers(0, 10, rows)], " "), _LAST[rng.integers(0, 10, rows)])
    return pd.DataFrame(
        {
            "claimant_name": names,
            "sex": sex,
            "age_band": age_band,
            "region": region,
            "postcode_area": postcode,
            "benefit_type": benefit,
            "employment_status": employment,
            "application_channel": channel,
            "monthly_income": income,
            "claim_amount": claim_amount,
            "household_size": household.astype("int64"),
            "prior_claims": prior.astype("int64"),
            "months_employed": months_employed,
            "documents_missing": docs_missing.astype("int64"),
            "days_since_last_claim": days_since,
            "inconsistency_score": inconsistency,
            TARGET: target,
        }
    )

"""Synthetic benefit-claims table (`demo:benefits`) for demos, tests and benchmarks.

The generator is seeded and vectorised: the same (rows, month, bias, seed) always
gives the same bytes. `month` drifts the features in `DRIFTED_FEATURES` only, so
drift detection can be checked against a known answer; `bias` makes the label
depend on region through a proxy feature (`postcode_area`), so a model trained
without the sensitive column still learns the bias and fairness checks catch it.
"""

from __future__ import annotations

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


def generate_benefits(rows: int = 5000, month: int = 1, bias: float = 0.0, seed: int = 7) -> pd.DataFrame:
    """Generate the benefit-claims table.

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
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    if month < 1:
        raise ValueError(f"month must be >= 1, got {month}")
    if not 0.0 <= bias <= 1.0:
        raise ValueError(f"bias must be within [0, 1], got {bias}")
    # The month enters the seed so drifted months are fresh samples, not shifted copies.
    rng = np.random.default_rng([seed, month])
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

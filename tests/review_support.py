"""A small but real registry for the review console's tests: versions made by the pipeline's own steps.

`build_review_store(root)` runs validate -> train -> evaluate -> gate -> register (no tuning) three
times on demo data, as three different people, and deploys the first:

* CHAMPION: gate `deploy`, deployed as champion (by the pipeline);
* PENDING: started by TRAINER, `require_approval: borderline` with a wide margin, so the gate marks
  it borderline and sends it to `pending_approval`; compared with the champion;
* GATE_REJECTED: a roc_auc floor it cannot reach, so the gate rejects it.

A drift decision is recorded the way the monitor records it. Building takes some seconds, so
tests build once per session and copy the directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from civicml import steps
from civicml.config import load_config

CHAMPION = "v20261201-090000-c0ffee"
PENDING = "v20261201-100000-bead01"
GATE_REJECTED = "v20261201-110000-dead02"
TRAINER = "Tom Trainer"
TRANSPARENCY = {
    "organisation_name": "Department for Example Services",
    "team": "Benefits Data Science Unit",
    "contact_email": "benefits-models@example.gov.uk",
    "phase": "Beta/Pilot",
    "description": "The tool suggests which benefit claims a caseworker should review first. It never decides a "
    "claim: a caseworker reviews every case it flags.",
    "alternatives_considered": "Reviewing claims in the order they arrive; a fixed set of rules written by staff.",
}


def _config(store: Path, **overrides):
    base = {
        "storage.uri": str(store),
        "data.demo.rows": 2500,
        "data.sensitive_attributes": ["sex", "age_band", "region"],
        "data.pii_columns": ["claimant_name"],
        "policy.min_group_count": 60,
        "model.params": {"n_estimators": 30},
        "policy.min_metrics": {"roc_auc": 0.6},
        "policy.fairness": [{"metric": "demographic_parity_ratio", "min": 0.5}],
        "transparency": TRANSPARENCY,
    }
    base.update(overrides)
    return load_config(None, base)


def _one_run(cfg, work: Path, version: str, by: str) -> dict:
    old = os.environ.get("CIVICML_ACTOR")
    os.environ["CIVICML_ACTOR"] = by
    try:
        d = str(work / version / "data")
        steps.validate_data(cfg, d, version)
        steps.train(cfg, d, None, str(work / version / "model"))
        steps.evaluate(cfg, d, str(work / version / "model"), str(work / version / "evaluation.json"))
        steps.gate(cfg, str(work / version / "evaluation.json"), str(work / version / "gate.json"))
        return steps.register(
            cfg,
            d,
            None,
            str(work / version / "model"),
            str(work / version / "evaluation.json"),
            str(work / version / "gate.json"),
        )
    finally:
        if old is None:
            os.environ.pop("CIVICML_ACTOR", None)
        else:
            os.environ["CIVICML_ACTOR"] = old


def build_review_store(root: Path) -> Path:
    """Build the store under `root/store` (working files under `root/work`) and return its path."""
    from civicml.monitoring.trigger import record_decision
    from civicml.storage.store import LocalStore

    store, work = root / "store", root / "work"
    first = _config(store)
    assert _one_run(first, work, CHAMPION, "pipeline")["status"] == "approved"
    steps.deploy(first, CHAMPION)
    pending = _config(
        store,
        **{
            "data.demo.month": 2,
            "policy.require_approval": "borderline",
            "policy.borderline_margin": 0.5,
            "policy.borderline_approvals": 1,
        },
    )
    assert _one_run(pending, work, PENDING, TRAINER)["status"] == "pending_approval"
    rejected = _config(store, **{"data.demo.month": 3, "policy.min_metrics": {"roc_auc": 0.999}})
    assert _one_run(rejected, work, GATE_REJECTED, TRAINER)["status"] == "rejected"
    record_decision(
        LocalStore(store),
        {
            "decision": "no_retrain",
            "reason": "no trigger fired: drift and live performance are within the policy",
            "rules": [],
        },
        {"version": CHAMPION},
        actor="monitor",
    )
    shutil.rmtree(work)
    return store


def copy_store(src: Path, dest: Path) -> Path:
    """A private copy of a built store (tests that decide must not share one)."""
    shutil.copytree(src, dest)
    return dest


_BUILT: list[Path] = []


def built_store(tmp_path_factory) -> Path:
    """The store built once per test session (shared read-only; copy it with `copy_store` to decide)."""
    if not _BUILT:
        _BUILT.append(build_review_store(tmp_path_factory.mktemp("review-store")))
    return _BUILT[0]


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (lock files excluded): proves a request changed nothing."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }

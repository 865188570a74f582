"""The whole pipeline on public data with real sensitive attributes, checked against fairlearn.

Data: the Toronto arrests data (police treatment of people arrested for simple possession of
marijuana; 5,226 rows; `colour` and `sex` recorded) as shipped inside the scikit-lego package
(`sklego/data/arrests.zip`, MIT-licensed package; the data were copied from the R package carData,
GPL-2 or later, originally from Michael Friendly, York University). scikit-lego is a test-only
dependency (pyproject `dev` extra); nothing is downloaded at test time.

The test runs the compiled pipeline through kfp.local, then recomputes every group's selection
rate, TPR and FPR and the demographic parity ratio with fairlearn on the exact test rows the
pipeline used, and checks the gate's decision follows from those numbers (issue 13, "Must show").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from civicml.config import load_config
from civicml.orchestration.local import failure_detail, run_pipeline
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("kfp_local_isolated")]


def _arrests_csv(tmp_path: Path) -> Path:
    from sklego.datasets import load_arrests

    df = load_arrests(as_frame=True)
    df["released"] = (df["released"] == "Yes").astype("int64")  # released with a summons
    path = tmp_path / "arrests.csv"
    df.to_csv(path, index=False)
    return path


def test_arrests_pipeline_gate_and_fairness_match_fairlearn(tmp_path):
    import json

    import pandas as pd
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_ratio,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    from civicml.modeling.persistence import load_model

    source = _arrests_csv(tmp_path)
    cfg = load_config(
        None,
        {
            "name": "toronto-arrests",
            "data.source": str(source),
            "data.target": "released",
            "data.sensitive_attributes": ["colour", "sex"],
            "data.pii_columns": [],
            "model.family": "logistic_regression",
            "model.params": {},
            "tuning.max_trials": 2,
            "tuning.parallel_trials": 1,
            "tuning.max_failed_trials": 1,
            "tuning.objective_metric": "roc_auc",
            "tuning.search_space": {},
            "tuning.early_stopping": None,
            "policy.min_metrics": {"roc_auc": 0.6},
            "policy.fairness": [{"metric": "demographic_parity_ratio", "min": 0.8}],
            "storage.uri": str(tmp_path / "store"),
            "card.intended_use": "Test of civicml on public data; not for any decision about people.",
            "card.limitations": "Historic Toronto arrests 1997-2002; a test fixture only.",
        },
    )
    # keep_outputs: the test split is read back below to recompute fairness with fairlearn.
    run = run_pipeline(cfg, workdir=tmp_path / "runs", keep_outputs=True)
    assert run.ok, failure_detail(run)
    reg = Registry(LocalStore(cfg.storage.uri))
    man = reg.manifest(run.version)
    evaluation = json.loads(reg.read_artifact(run.version, "evaluation.json"))
    gate = json.loads(reg.read_artifact(run.version, "gate.json"))
    test_files = sorted((tmp_path / "runs").rglob("test.parquet"))
    assert len(test_files) == 1, test_files
    test = pd.read_parquet(test_files[0])
    assert len(test) == evaluation["n_test"]
    model = load_model(reg.fetch_prefix(run.version, "model", tmp_path / "model"))
    y = model.spec.encode_target(test["released"])
    y_pred = (model.score(test) >= model.threshold).astype(int)
    assert evaluation["threshold"] == model.threshold
    for attr in ("colour", "sex"):
        mf = MetricFrame(
            metrics={"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
            y_true=y,
            y_pred=y_pred,
            sensitive_features=test[attr].astype(str),
        )
        ours = evaluation["fairness"][attr]
        assert ours["suppressed_groups"] == []  # every group has >= 30 test rows
        for group, row in mf.by_group.iterrows():
            got = ours["groups"][group]
            assert got["selection_rate"] == pytest.approx(row["selection_rate"], abs=1e-12)
            assert got["tpr"] == pytest.approx(row["tpr"], abs=1e-12)
            assert got["fpr"] == pytest.approx(row["fpr"], abs=1e-12)
        dpr = demographic_parity_ratio(y, y_pred, sensitive_features=test[attr].astype(str))
        assert ours["demographic_parity_ratio"] == pytest.approx(dpr, abs=1e-12)
        rule = next(r for r in gate["rules"] if r["rule"] == f"demographic_parity_ratio[{attr}] >= 0.8")
        assert rule["value"] == pytest.approx(dpr, abs=1e-12)
        assert rule["verdict"] == ("pass" if dpr >= 0.8 else "fail")
    # The decision follows from the rules, and the no-skill rule is there with the majority-class baseline.
    skill = next(r for r in gate["rules"] if r["kind"] == "skill")
    base = evaluation["baseline"]
    majority = int(
        np.mean(model.spec.encode_target(pd.read_parquet(test_files[0].parent / "train.parquet")["released"])) >= 0.5
    )
    assert f"majority class {majority}" in base["strategy"]
    assert skill["value"] == pytest.approx(base["margins"]["balanced_accuracy"]["low"])
    failed = [r["rule"] for r in gate["rules"] if not r["passed"]]
    assert gate["decision"] == ("reject" if failed else "deploy"), gate["reason"]
    assert man["gate"]["decision"] == gate["decision"]
    print(
        "arrests:",
        gate["decision"],
        gate["reason"],
        {a: evaluation["fairness"][a]["demographic_parity_ratio"] for a in ("colour", "sex")},
    )

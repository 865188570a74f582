"""The model server labels rows at the threshold chosen in training and stored with the model, not 0.5.

One definition (issue 15): `model.json` carries the threshold `civicml.evaluation.threshold` chose on the
validation split; evaluation, the card and the server all read it from the loaded model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving_support import commit_served, demo_config, prepared_data

from civicml import steps
from civicml.config import RunConfig
from civicml.data.demo import CATEGORICAL, NUMERIC, generate_benefits
from civicml.modeling.estimators import build_params, fit_model
from civicml.modeling.persistence import load_model, save_model
from civicml.serving.app import create_app, load_state
from civicml.serving.routing import ROUTING_FILE_ENV
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore


def test_served_labels_use_the_stored_threshold(tmp_path, monkeypatch):
    monkeypatch.delenv("CIVICML_STORE_URI", raising=False)
    monkeypatch.delenv(ROUTING_FILE_ENV, raising=False)
    store = tmp_path / "store"
    cfg = RunConfig.model_validate(demo_config(store, 2000))
    data_dir = tmp_path / "data"
    train, spec = prepared_data(cfg, data_dir)
    model = fit_model("xgboost", spec, build_params("xgboost", {"n_estimators": 20}, {}), train, 42, 1)
    rows = generate_benefits(200, seed=5)
    scores = model.score(rows)
    # A threshold well below 0.5, where many rows are labelled differently than at 0.5.
    model.threshold = float(np.quantile(scores, 0.3))
    assert ((scores >= model.threshold) != (scores >= 0.5)).sum() > 20
    save_model(model, tmp_path / "model")
    assert load_model(tmp_path / "model").threshold == pytest.approx(model.threshold)
    reg = Registry(LocalStore(store))
    version = commit_served(reg, cfg, tmp_path / "model", (data_dir / "contract.json").read_bytes())
    steps.deploy(cfg, version)
    records = json.loads(rows[NUMERIC + CATEGORICAL + ["sex", "age_band", "region"]].to_json(orient="records"))
    with TestClient(create_app(load_state(cfg, reg))) as client:
        r = client.post("/predict", json={"records": records})
    assert r.status_code == 200, r.text
    served = r.json()["predictions"]
    assert [p["score"] for p in served] == pytest.approx(scores.tolist())
    assert [p["prediction"] for p in served] == (scores >= model.threshold).astype(int).tolist()

"""Drift measures on demo data with a known answer, the bad paths, live performance and the report."""

import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from civicml.config import MonitoringConfig
from civicml.data.demo import CATEGORICAL, DRIFTED_FEATURES, NUMERIC, generate_benefits
from civicml.data.profile import build_profile
from civicml.monitoring.drift import (
    DriftInputError,
    compute_drift,
    psi,
    psi_band,
    read_log_records,
    window_from_predictions,
)
from civicml.monitoring.performance import join_feedback, live_performance
from civicml.reporting.drift import render_drift_html
from civicml.storage.store import LocalStore

POLICY = MonitoringConfig()


@pytest.fixture(scope="module")
def profile():
    return build_profile(generate_benefits(3000, month=1, seed=1), NUMERIC, CATEGORICAL, seed=0)


def test_psi_values_and_bands():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    # (0.7-0.5)ln(0.7/0.5) + (0.3-0.5)ln(0.3/0.5)
    assert psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(0.2 * np.log(1.4) - 0.2 * np.log(0.6))
    assert np.isfinite(psi([1.0, 0.0], [0.0, 1.0]))  # empty buckets are floored, not infinite
    assert [psi_band(v) for v in (0.0, 0.099, 0.1, 0.2499, 0.25, 3.0)] == [
        "none",
        "none",
        "moderate",
        "moderate",
        "major",
        "major",
    ]


def test_same_month_fresh_sample_shows_no_drift(profile):
    window = generate_benefits(2500, month=1, seed=2)  # same month, different seed: a fresh sample
    rep = compute_drift(profile, window, POLICY, source="month 1, seed 2")
    assert rep["status"] == "ok"
    assert rep["summary"]["drifted"] == []
    assert rep["summary"]["n_features"] == len(NUMERIC) + len(CATEGORICAL)
    assert rep["summary"]["max_psi"] < 0.1
    assert all(f["psi_band"] == "none" for f in rep["features"].values())


def test_drifted_month_flags_exactly_the_shifted_features(profile):
    rep = compute_drift(profile, generate_benefits(2500, month=6, seed=1), POLICY)
    assert sorted(rep["summary"]["drifted"]) == sorted(DRIFTED_FEATURES)
    for name in DRIFTED_FEATURES:
        f = rep["features"][name]
        assert f["psi_band"] == "major" and f["p_value"] < 1e-6, (name, f["psi"], f["p_value"])
    for name in set(NUMERIC + CATEGORICAL) - set(DRIFTED_FEATURES):
        assert rep["features"][name]["psi"] < 0.1, (name, rep["features"][name]["psi"])
    assert rep["features"]["monthly_income"]["test"] == "ks"
    assert rep["features"]["application_channel"]["test"] == "chi2"
    assert rep["summary"]["drift_share"] == pytest.approx(3 / 12)


def test_unseen_categories_missing_columns_and_nulls_do_not_crash(profile):
    window = generate_benefits(1000, month=1, seed=3)
    window.loc[:299, "application_channel"] = "carrier_pigeon"
    window.loc[:399, "monthly_income"] = np.nan
    window = window.drop(columns=["claim_amount", "benefit_type"])
    rep = compute_drift(profile, window, POLICY)
    ch = rep["features"]["application_channel"]
    assert ch["unseen_categories"] == {"carrier_pigeon": 300}
    assert ch["buckets"]["labels"][-1] == "<unseen>" and ch["buckets"]["current"][-1] == pytest.approx(0.3)
    assert ch["drifted"] and ch["psi_band"] == "major"
    inc = rep["features"]["monthly_income"]
    assert inc["buckets"]["current"][-1] == pytest.approx(0.4)  # the missing-value bucket
    assert inc["drifted"]
    assert rep["summary"]["missing_features"] == ["claim_amount", "benefit_type"]
    assert rep["features"]["claim_amount"]["status"] == "missing"
    assert rep["summary"]["n_features"] == 10
    assert any("carrier_pigeon" in m for m in rep["messages"])
    assert any("claim_amount" in m and "missing" in m for m in rep["messages"])


def test_empty_window_is_reported_not_raised(profile):
    rep = compute_drift(profile, pd.DataFrame(), POLICY, source="serving-log")
    assert rep["status"] == "empty" and rep["window_rows"] == 0
    assert rep["summary"]["n_features"] == 0 and rep["summary"]["drift_share"] == 0.0
    assert rep["summary"]["missing_features"] == []
    assert any("0 rows" in m for m in rep["messages"])
    empty_cols = compute_drift(profile, generate_benefits(10, seed=4).iloc[:0], POLICY)
    assert empty_cols["status"] == "empty"


def test_not_a_profile_is_refused_clearly():
    with pytest.raises(DriftInputError, match="data/profile.json"):
        compute_drift({"rows": 3}, pd.DataFrame({"a": [1]}), POLICY)
    with pytest.raises(DriftInputError, match="kind 'text'"):
        compute_drift({"rows": 3, "features": {"a": {"kind": "text"}}}, pd.DataFrame({"a": [1]}), POLICY)


def test_constant_reference_column(profile):
    prof = build_profile(pd.DataFrame({"x": [5.0] * 100}), ["x"], [], seed=0)
    same = compute_drift(prof, pd.DataFrame({"x": [5.0] * 50}), POLICY)["features"]["x"]
    other = compute_drift(prof, pd.DataFrame({"x": [5.0] * 25 + [9.0] * 25}), POLICY)["features"]["x"]
    assert same["psi"] == pytest.approx(0.0, abs=1e-9) and other["psi_band"] == "major"


def _log(store, kind, day, name, records, extra_lines=()):
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    store.put_bytes(f"logs/{kind}/{day}/{name}.jsonl", ("\n".join(lines) + "\n").encode())


def test_serving_log_reading_is_tolerant(tmp_path):
    store = LocalStore(tmp_path)
    assert read_log_records(store, "predictions") == ([], [])
    recs = [
        {"request_id": f"r{i}", "row": 0, "ts": "2026-11-28T10:00:00+00:00", "features": {"a": i}} for i in range(3)
    ]
    _log(store, "predictions", "2026-11-28", "srv-1", recs, extra_lines=['{"request_id": "trunc'])
    _log(
        store,
        "predictions",
        "2026-01-01",
        "srv-1",
        [{"request_id": "old", "ts": "2026-01-01T00:00:00+00:00", "features": {"a": 99}}],
    )
    got, warnings = read_log_records(store, "predictions")
    assert len(got) == 4 and len(warnings) == 1 and "srv-1.jsonl line 4" in warnings[0]
    from datetime import datetime, timezone

    recent, _ = read_log_records(store, "predictions", window_days=7, now=datetime(2026, 11, 29, tzinfo=timezone.utc))
    assert [r["request_id"] for r in recent] == ["r0", "r1", "r2"]
    assert window_from_predictions(recent)["a"].tolist() == [0, 1, 2]


def test_live_performance_from_joined_feedback():
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 2, n)
    score = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    preds = [
        {
            "request_id": f"r{i // 2}",
            "row": i % 2,
            "version": "v1" if i < 500 else "v2",
            "arm": "champion",
            "ts": "t",
            "score": float(score[i]),
            "prediction": int(score[i] >= 0.5),
            "features": {},
        }
        for i in range(n)
    ]
    feedback = [{"request_id": f"r{i // 2}", "row": i % 2, "outcome": int(y[i])} for i in range(n) if i % 10]
    feedback.append({"request_id": "r0", "row": 1, "outcome": int(1 - y[1])})  # a relabel: the first label counts
    feedback.append({"request_id": "unknown", "row": 0, "outcome": 1})
    joined = join_feedback(preds, feedback, version="v1")
    assert len(joined) == 450 and set(joined["version"]) == {"v1"}
    assert joined.loc[(joined.request_id == "r0") & (joined.row == 1), "outcome"].item() == y[1]
    perf = live_performance(joined, "binary_classification", {"roc_auc": 0.99, "brier": 0.01}, POLICY, n_resamples=200)
    assert perf["status"] == "ok" and perf["metric"] == "roc_auc"
    assert perf["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(joined["outcome"], joined["score"]))
    ci = perf["confidence_intervals"]["roc_auc"]
    assert ci["low"] < perf["metrics"]["roc_auc"] < ci["high"]
    assert perf["watched_drop"] == pytest.approx(0.99 - perf["metrics"]["roc_auc"])
    assert perf["drop"]["brier"] == pytest.approx(perf["metrics"]["brier"] - 0.01)  # lower is better
    few = live_performance(joined.head(10), "binary_classification", {}, POLICY)
    assert few["status"] == "insufficient_feedback" and "min_feedback_rows" in few["message"]
    assert join_feedback(preds, []).empty


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.alts, self.tables, self.row_headers = [], 0, 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.alts.append(a.get("alt", ""))
        if tag == "table":
            self.tables += 1
        if tag == "th" and a.get("scope") == "row":
            self.row_headers += 1


def test_report_has_a_chart_with_numeric_alt_text_and_a_table_per_feature(profile):
    rep = compute_drift(profile, generate_benefits(1500, month=6, seed=1).drop(columns=["household_size"]), POLICY)
    html_text = render_drift_html(rep, title="Drift", version="v1")
    parser = _Imgs()
    parser.feed(html_text)
    assert len(parser.alts) == 11  # one chart per compared feature; the missing one has none
    inc = next(a for a in parser.alts if a.startswith("Bar chart of monthly_income"))
    assert f"PSI {rep['features']['monthly_income']['psi']:.3f} (major band)" in inc
    assert "%" in inc and "drifted" in inc
    assert parser.tables >= 2 + 11 and parser.row_headers > 0
    assert 'lang="en"' in html_text and "data:image/png;base64," in html_text
    assert "household_size" in html_text and "missing" in html_text


def test_report_fits_a_1280px_window(profile):
    """Issue 13 item 12: the drift report overflowed 1280 px; wide tables now scroll inside the page."""
    rep = compute_drift(profile, generate_benefits(1500, month=6, seed=1), POLICY)
    html_text = render_drift_html(rep, title="Drift", version="v1")
    assert "max-width:62em" in html_text  # the body is narrower than 1280 px at the default font size
    assert "table{display:block;max-width:100%;overflow-x:auto}" in html_text
    assert "overflow-wrap:anywhere" in html_text
    assert 'width="560"' in html_text and "img{max-width:100%" in html_text


def test_serving_log_drift_counts_only_the_watched_versions_traffic(tmp_path, profile):
    """Issue 13 item 7: right after a new champion, 2,002 rows served by older versions were measured."""
    from civicml import steps
    from civicml.config import load_config
    from civicml.monitoring.trigger import decide_retrain
    from civicml.storage.registry import Registry

    cfg = load_config(None, {"storage.uri": str(tmp_path / "store"), "monitoring.window_days": 0})
    reg = Registry(LocalStore(cfg.storage.uri))
    arts = {"data/profile.json": reg.upload("v1", "data/profile.json", json.dumps(profile).encode())}
    reg.commit("v1", arts, {"status": "approved", "metrics": {}})
    old = generate_benefits(2002, month=6, seed=3)  # drifted traffic, served by the previous champion
    new = generate_benefits(40, month=1, seed=4)
    recs = [
        {"request_id": f"{v}-{i}", "row": 0, "version": v, "ts": "2026-11-28T10:00:00+00:00", "features": row}
        for v, frame in (("v0", old), ("v1", new))
        for i, row in enumerate(frame[NUMERIC + CATEGORICAL].to_dict(orient="records"))
    ]
    _log(reg.store, "predictions", "2026-11-28", "srv-1", recs)
    drift = steps.monitor_drift(cfg, "v1", str(tmp_path / "drift.json"), source=steps.SERVING_LOG)
    assert drift["window_rows"] == 40
    assert any("2002 in the window were served by other versions" in m for m in drift["messages"])
    assert any("too little traffic to judge drift: 40 predictions served by v1" in m for m in drift["messages"])
    decision = decide_retrain(cfg.monitoring, drift, None)
    assert decision["decision"] != "retrain" and "min_new_rows" in decision["blocked_by"][0]


def test_report_parses_strictly_with_a_table_beside_every_chart(profile):
    """Issue 15: the drift report is well-formed (html5lib strict) and every chart has its table."""
    from html_checks import check_structure

    rep = compute_drift(profile, generate_benefits(1500, month=6, seed=1).drop(columns=["household_size"]), POLICY)
    page = check_structure(render_drift_html(rep, title="Drift", version="v1"))
    assert [h for h in page["headings"] if h[0] < 3] == [(1, "Drift"), (2, "Warnings"), (2, "Feature distributions")]
    assert len(page["images"]) == 11
    income = page["tables"][next(c for c in page["tables"] if c.startswith("monthly_income: share of rows"))]
    assert [th.text for th in income.find("thead/tr")] == ["bucket", "reference share", "window share", "change"]
    # The one number formatter: a p-value too small for 4 decimals keeps its significant figures.
    assert "0.0000" not in page["text"]

"""A/B analysis: join, per-arm figures, z-test and mSPRT against hand computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from civicml.governance.trust import commit_version
from civicml.monitoring.ab import (
    KEEP,
    PROMOTE,
    ROLL_BACK,
    ab_report,
    join_logs,
    label_provenance,
    msprt,
    two_proportion_ztest,
)
from civicml.serving.routing import CHALLENGER, CHAMPION, ROUTING_FILE_ENV
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore


def _write(store, kind, name, records):
    store.put_bytes(f"logs/{kind}/2026-01-01/{name}.jsonl", ("\n".join(json.dumps(r) for r in records) + "\n").encode())


def _experiment(tmp_path, champ_correct, champ_n, chall_correct, chall_n, unlabelled=10, seed=0):
    """Logs with known counts: each arm's first `correct` labelled rows are right, the rest wrong."""
    reg = Registry(LocalStore(tmp_path / "store"))
    for v in ("v1", "v2", "v0"):
        commit_version(reg, v, {}, {"status": "approved"})
    reg.set_alias(CHAMPION, "v1", by="t", reason="t")
    reg.set_alias(CHALLENGER, "v2", by="t", reason="t")
    rng = np.random.default_rng(seed)
    preds, labelled = [], []
    for arm, version, correct, n in (
        (CHAMPION, "v1", champ_correct, champ_n),
        (CHALLENGER, "v2", chall_correct, chall_n),
    ):
        right = rng.permutation(np.arange(n) < correct)
        for i in range(n + unlabelled):
            rid = f"{arm}-{i}"
            p = int(rng.integers(0, 2))
            preds.append(
                {
                    "request_id": rid,
                    "row": 0,
                    "arm": arm,
                    "version": version,
                    "ts": "x",
                    "prediction": p,
                    "score": 0.5,
                    "key": None,
                    "features": {},
                }
            )
            if i < n:
                labelled.append((rid, p if right[i] else 1 - p))
    # Feedback arrives interleaved across arms, in a random order.
    fb = [
        {
            "request_id": rid,
            "row": 0,
            "outcome": outcome,
            "ts": f"2026-01-01T{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}",
        }
        for t, (rid, outcome) in enumerate(labelled[i] for i in rng.permutation(len(labelled)))
    ]
    # Noise the report must ignore: another version's traffic and feedback for unknown requests.
    preds.append(
        {"request_id": "old", "row": 0, "arm": CHAMPION, "version": "v0", "ts": "x", "prediction": 1, "score": 0.9}
    )
    fb.insert(0, {"request_id": "old", "row": 0, "outcome": 0, "ts": "2026-01-01T00:00:00"})
    fb.append({"request_id": "nobody", "row": 0, "outcome": 1, "ts": "2026-01-01T00:00:00"})
    _write(reg.store, "predictions", "a-00000001", preds[: len(preds) // 2])
    _write(reg.store, "predictions", "a-00000002", preds[len(preds) // 2 :])
    _write(reg.store, "feedback", "a-00000001", fb)
    return reg, preds


def test_report_matches_hand_computation(tmp_path, monkeypatch):
    monkeypatch.delenv(ROUTING_FILE_ENV, raising=False)
    reg, preds = _experiment(tmp_path, 60, 100, 75, 100)
    rep = ab_report(reg, min_samples=50)
    a, b = rep["arms"][CHAMPION], rep["arms"][CHALLENGER]
    assert (a["count"], a["labelled"], a["correct"]) == (110, 100, 60)
    assert (b["count"], b["labelled"], b["correct"]) == (110, 100, 75)
    assert a["accuracy"] == pytest.approx(0.60) and b["accuracy"] == pytest.approx(0.75)
    champ_pos = np.mean([p["prediction"] for p in preds if p["version"] == "v1"])
    assert a["positive_rate"] == pytest.approx(champ_pos)
    # Pooled z by hand: p = 135/200, se = sqrt(p(1-p)(1/100+1/100)).
    pool = 135 / 200
    z = 0.15 / math.sqrt(pool * (1 - pool) * 0.02)
    assert rep["z_test"]["z"] == pytest.approx(z)
    assert rep["z_test"]["p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    # mSPRT at the final sample by hand.
    v = 0.6 * 0.4 / 100 + 0.75 * 0.25 / 100
    tau2 = 0.01
    lam = math.sqrt(v / (v + tau2)) * math.exp(tau2 * 0.15**2 / (2 * v * (v + tau2)))
    assert rep["msprt"]["lambda"] == pytest.approx(lam)
    assert rep["msprt"]["p_value"] <= min(1.0, 1 / lam) + 1e-12


def test_recommendations(tmp_path, monkeypatch):
    monkeypatch.delenv(ROUTING_FILE_ENV, raising=False)
    better, _ = _experiment(tmp_path / "a", 300, 500, 400, 500)
    assert ab_report(better, min_samples=100)["recommendation"] == PROMOTE
    worse, _ = _experiment(tmp_path / "b", 400, 500, 300, 500)
    assert ab_report(worse, min_samples=100)["recommendation"] == ROLL_BACK
    same, _ = _experiment(tmp_path / "c", 300, 500, 302, 500)
    rep = ab_report(same, min_samples=100)
    assert rep["recommendation"] == KEEP and "no significant difference" in rep["reason"]
    few, _ = _experiment(tmp_path / "d", 10, 20, 19, 20)
    rep = ab_report(few, min_samples=100)
    assert rep["recommendation"] == KEEP and "not enough feedback" in rep["reason"]


def test_always_valid_p_is_running_minimum():
    seq = pd.DataFrame({"arm": [CHAMPION, CHALLENGER] * 200, "correct": [1, 1] * 50 + [0, 1] * 50 + [1, 0] * 100})
    res = msprt(seq, tau=0.1)
    # Independent prefix loop.
    best = 1.0
    xa = na = xb = nb = 0
    for arm, c in zip(seq["arm"], seq["correct"]):
        if arm == CHAMPION:
            xa, na = xa + c, na + 1
        else:
            xb, nb = xb + c, nb + 1
        if na >= 30 and nb >= 30:
            pa, pb = xa / na, xb / nb
            v = pa * (1 - pa) / na + pb * (1 - pb) / nb
            if v > 0:
                lam = math.sqrt(v / (v + 0.01)) * math.exp(0.01 * (pb - pa) ** 2 / (2 * v * (v + 0.01)))
                best = min(best, 1 / lam)
    assert res["p_value"] == pytest.approx(best)
    # The evidence for the challenger in the middle is remembered even though it later reversed.
    assert res["p_value"] < 1.0


def test_ztest_edge_cases():
    assert two_proportion_ztest(0, 0, 5, 10)["z"] is None
    assert two_proportion_ztest(10, 10, 10, 10) == {"diff": 0.0, "z": 0.0, "p_value": 1.0}


def test_join_uses_first_feedback_and_rows():
    """The first label counts (a later one is a conflict, kept in the log, never an overwrite)."""
    preds = [
        {"request_id": "r", "row": 0, "arm": CHAMPION, "version": "v1", "prediction": 1, "ts": "t"},
        {"request_id": "r", "row": 1, "arm": CHAMPION, "version": "v1", "prediction": 0, "ts": "t"},
    ]
    fb = [
        {"request_id": "r", "row": 1, "outcome": 1, "ts": "2026-01-01T00:00:01"},
        {"request_id": "r", "row": 1, "outcome": 0, "ts": "2026-01-01T00:00:02"},
    ]
    joined = join_logs(preds, fb).set_index("row")
    assert pd.isna(joined.loc[0, "outcome"]) and joined.loc[1, "outcome"] == 1
    prov = label_provenance(fb, join_logs(preds, fb))
    assert prov["relabelled"] == 1 and prov["conflicting"] == 1
    assert prov["received_by_source"] == {"unrecorded": 2} and prov["counted_by_source"] == {"unrecorded": 1}


def test_corrupt_log_line_is_skipped_and_named(tmp_path, monkeypatch):
    """serving.logread's rule: a bad line is skipped, named in the report, and the rest is read."""
    monkeypatch.delenv(ROUTING_FILE_ENV, raising=False)
    reg, _ = _experiment(tmp_path, 5, 10, 5, 10)
    clean = ab_report(reg)
    reg.store.put_bytes("logs/feedback/2026-01-01/zz-00000009.jsonl", b'{"request_id": "x"\n[1, 2]\n')
    rep = ab_report(reg)
    assert clean["log_problems"] == [] and len(rep["log_problems"]) == 2
    assert "zz-00000009.jsonl line 1: not valid JSON" in rep["log_problems"][0]
    assert "zz-00000009.jsonl line 2: not a JSON object" in rep["log_problems"][1]
    assert rep["arms"] == clean["arms"]


def test_ab_and_live_performance_pick_the_same_label():
    """One join: the first label counts for the A/B report and for live performance alike."""
    from civicml.monitoring.performance import join_feedback

    preds = [{"request_id": "r", "row": 0, "arm": CHAMPION, "version": "v1", "prediction": 1, "score": 0.9, "ts": "t"}]
    fb = [
        {"request_id": "r", "row": 0, "outcome": 0, "ts": "2026-01-01T00:00:02"},
        {"request_id": "r", "row": 0, "outcome": 1, "ts": "2026-01-01T00:00:01"},  # logged later, given earlier
        {"request_id": "r", "row": 0, "outcome": 0, "ts": "2026-01-01T00:00:01"},  # same time, later in the log
    ]
    assert join_logs(preds, fb)["outcome"].tolist() == [1]
    assert join_feedback(preds, fb)["outcome"].tolist() == [1]


def test_msprt_perfectly_separated_arms_are_an_overwhelming_difference():
    """0% vs 100% accuracy over 300 each: the plug-in variance is 0; the test must not say "no difference"."""
    n = 300
    seq = pd.DataFrame({"arm": [CHAMPION, CHALLENGER] * n, "correct": [0, 1] * n})
    res = msprt(seq, tau=0.1, burn_in=30)
    # Hand computation at the last prefix (x1=0, n1=300, x2=300, n2=300), variance at p~ = (x + 0.5) / (n + 1).
    q1, q2 = 0.5 / 301, 300.5 / 301
    v = q1 * (1 - q1) / 300 + q2 * (1 - q2) / 300
    t2 = 0.01
    hand = 0.5 * math.log(v / (v + t2)) + t2 * 1.0**2 / (2 * v * (v + t2))
    assert res["log_lambda"] == pytest.approx(hand, rel=1e-12)
    assert hand > 1000  # Lambda itself is beyond float range
    assert res["p_value"] == 0.0 and res["lambda"] == pytest.approx(1e300)
    # Identical degenerate arms (both always right) stay "no evidence".
    same = pd.DataFrame({"arm": [CHAMPION, CHALLENGER] * n, "correct": [1, 1] * n})
    assert msprt(same)["p_value"] == 1.0


def test_ab_report_check_and_promote_refuse_without_a_significant_result(tmp_path, monkeypatch):
    """Issue 13 item 4: `ab report && ab promote` promoted on "keep"; now the exit code and promote both refuse."""
    from typer.testing import CliRunner

    from civicml.cli import app
    from civicml.governance.audit import AuditLog
    from civicml.monitoring.ab import CHECK_EXIT_CODES

    monkeypatch.delenv(ROUTING_FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    same, _ = _experiment(tmp_path / "same", 300, 500, 302, 500)
    cfg = tmp_path / "same.yaml"
    cfg.write_text(f"name: p\nstorage: {{uri: {tmp_path / 'same' / 'store'}}}\n")
    runner = CliRunner()
    rep = runner.invoke(app, ["ab", "report", "--check", "-c", str(cfg)])
    assert rep.exit_code == CHECK_EXIT_CODES[KEEP] == 3 and "no significant difference" in rep.output
    assert runner.invoke(app, ["ab", "report", "-c", str(cfg)]).exit_code == 0  # reading a report is not a failure
    refused = runner.invoke(app, ["ab", "promote", "-c", str(cfg)])
    assert refused.exit_code == 1 and "refusing to promote v2" in refused.output and "'keep'" in refused.output
    assert same.get_alias(CHAMPION) == "v1" and same.get_alias(CHALLENGER) == "v2"
    no_reason = runner.invoke(app, ["ab", "promote", "--force", "-c", str(cfg)])
    assert no_reason.exit_code == 1 and "--force needs --reason" in no_reason.output
    assert same.get_alias(CHAMPION) == "v1"
    forced = runner.invoke(app, ["ab", "promote", "--force", "--reason", "champion withdrawn", "-c", str(cfg)])
    assert forced.exit_code == 0, forced.output
    assert same.get_alias(CHAMPION) == "v2" and same.get_alias(CHALLENGER) is None
    records = AuditLog(same.store).records()
    assert [r["event"] for r in records].count("ab_promotion_refused") == 2
    last = next(r for r in reversed(records) if r["event"] == "ab_promoted")
    assert last["payload"]["forced"] is True and last["payload"]["reason"] == "champion withdrawn"
    assert last["payload"]["recommendation"] == KEEP and last["payload"]["msprt_p_value"] >= 0.05
    # A significant win: --check succeeds and promote needs no --force.
    better, _ = _experiment(tmp_path / "better", 300, 500, 400, 500)
    cfg2 = tmp_path / "better.yaml"
    cfg2.write_text(f"name: p\nstorage: {{uri: {tmp_path / 'better' / 'store'}}}\n")
    assert runner.invoke(app, ["ab", "report", "--check", "-c", str(cfg2)]).exit_code == 0
    ok = runner.invoke(app, ["ab", "promote", "-c", str(cfg2)])
    assert ok.exit_code == 0, ok.output
    assert better.get_alias(CHAMPION) == "v2"
    worse, _ = _experiment(tmp_path / "worse", 400, 500, 300, 500)
    cfg3 = tmp_path / "worse.yaml"
    cfg3.write_text(f"name: p\nstorage: {{uri: {tmp_path / 'worse' / 'store'}}}\n")
    assert runner.invoke(app, ["ab", "report", "--check", "-c", str(cfg3)]).exit_code == 4

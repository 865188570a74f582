"""Champion/challenger routing: shares, stickiness, determinism, stored weights (audited)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from civicml.governance.audit import AuditLog
from civicml.governance.trust import commit_version
from civicml.serving.routing import (
    CHALLENGER,
    CHAMPION,
    ROUTING_FILE_ENV,
    check_share,
    choose_arm,
    current_routing,
    key_fraction,
    set_weights,
)
from civicml.storage.registry import Registry, RegistryError
from civicml.storage.store import LocalStore


@pytest.mark.parametrize("share", [0.1, 0.3, 0.5, 0.9])
def test_share_within_three_points_over_10k_keys(share):
    hits = sum(choose_arm(f"user-{i}", share) == CHALLENGER for i in range(10_000))
    assert abs(hits / 10_000 - share) <= 0.03


def test_zero_and_full_share():
    assert {choose_arm(f"k{i}", 0.0) for i in range(500)} == {CHAMPION}
    assert {choose_arm(f"k{i}", 1.0) for i in range(500)} == {CHALLENGER}


def test_sticky_and_monotonic():
    keys = [f"case-{i}" for i in range(2000)]
    first = [choose_arm(k, 0.2) for k in keys]
    assert first == [choose_arm(k, 0.2) for k in keys]
    # Raising the share moves keys champion -> challenger only, never back.
    wider = [choose_arm(k, 0.4) for k in keys]
    assert all(w == CHALLENGER for f, w in zip(first, wider) if f == CHALLENGER)
    assert sum(w == CHALLENGER for w in wider) > sum(f == CHALLENGER for f in first)


def test_salt_changes_the_split():
    keys = [f"u{i}" for i in range(1000)]
    a = [choose_arm(k, 0.5, salt="v1") for k in keys]
    b = [choose_arm(k, 0.5, salt="v2") for k in keys]
    assert a != b


def test_deterministic_across_processes():
    code = "from civicml.serving.routing import key_fraction; print(repr(key_fraction('abc', 'v9')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert float(out) == key_fraction("abc", "v9")
    assert 0.0 <= key_fraction("abc", "v9") < 1.0


@pytest.mark.parametrize("bad", [-0.1, 1.5, "lots", float("nan"), None])
def test_bad_share_is_refused(bad):
    with pytest.raises(ValueError, match="between 0 and 1"):
        check_share(bad)


def _registry_with_versions(tmp_path, *versions):
    reg = Registry(LocalStore(tmp_path / "store"))
    for v in versions:
        commit_version(reg, v, {}, {"status": "approved"})
    return reg


def test_set_weights_stores_and_audits(tmp_path, monkeypatch):
    monkeypatch.delenv(ROUTING_FILE_ENV, raising=False)
    reg = _registry_with_versions(tmp_path, "v1", "v2")
    reg.set_alias(CHAMPION, "v1", by="t", reason="t")
    with pytest.raises(RegistryError, match="no challenger is set"):
        set_weights(reg, 0.2, by="alice", reason="try")
    reg.set_alias(CHALLENGER, "v2", by="t", reason="t")
    set_weights(reg, 0.25, by="alice", reason="start test")
    r = current_routing(reg)
    assert (r.champion, r.challenger, r.challenger_share, r.by) == ("v1", "v2", 0.25, "alice")
    last = AuditLog(reg.store).records()[-1]
    assert last["event"] == "routing_changed" and last["actor"] == "alice"
    assert last["payload"]["to_share"] == 0.25 and last["payload"]["from_share"] == 0.0
    assert AuditLog(reg.store).verify()[0]


def test_routing_file_pins_versions(tmp_path, monkeypatch):
    reg = _registry_with_versions(tmp_path, "v1")
    reg.set_alias(CHAMPION, "v1", by="t", reason="t")
    f = tmp_path / "routing.json"
    f.write_text(json.dumps({"champion": "v7", "challenger": "v8", "challenger_share": 0.5}))
    monkeypatch.setenv(ROUTING_FILE_ENV, str(f))
    r = current_routing(reg)
    assert (r.champion, r.challenger, r.effective_share) == ("v7", "v8", 0.5)
    f.write_text("{not json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        current_routing(reg)
    monkeypatch.setenv(ROUTING_FILE_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(RegistryError, match="does not exist"):
        current_routing(reg)


def test_cli_challenger_lifecycle(tmp_path, monkeypatch):
    """deploy --as challenger -> ab set-weights -> ab report -> ab promote -> rollback, all audited."""
    from typer.testing import CliRunner

    from civicml.cli import app

    monkeypatch.delenv(ROUTING_FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CIVICML_STORE_URI", str(tmp_path / "store"))
    monkeypatch.setenv("CIVICML_ACTOR", "carol")
    reg = _registry_with_versions(tmp_path, "v1", "v2")
    commit_version(reg, "v0", {}, {"status": "rejected", "gate": {"reason": "auc too low"}})
    run = CliRunner().invoke
    assert run(app, ["deploy", "v1"]).exit_code == 0
    assert reg.get_alias(CHAMPION) == "v1"
    res = run(app, ["deploy", "v0"])
    assert res.exit_code == 1 and "rejected" in res.output
    assert run(app, ["deploy", "v2", "--as", "challenger"]).exit_code == 0
    assert (reg.get_alias(CHAMPION), reg.get_alias(CHALLENGER)) == ("v1", "v2")
    assert current_routing(reg).challenger_share == 0.1  # deploy.challenger_traffic default
    res = run(app, ["ab", "set-weights", "--challenger-share", "1.5"])
    assert res.exit_code == 1 and "between 0 and 1" in res.output
    assert run(app, ["ab", "set-weights", "--challenger-share", "0.4"]).exit_code == 0
    assert current_routing(reg).challenger_share == 0.4
    res = run(app, ["ab", "report", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["recommendation"] == "keep"
    # "keep" is not a reason to promote (issue 13 item 4): refused unless forced with a reason.
    res = run(app, ["ab", "promote"])
    assert res.exit_code == 1 and "refusing to promote v2" in res.output
    assert run(app, ["ab", "promote", "--force", "--reason", "lifecycle test"]).exit_code == 0
    r = current_routing(reg)
    assert (r.champion, r.challenger, r.challenger_share) == ("v2", None, 0.0)
    assert run(app, ["rollback"]).exit_code == 0
    assert reg.get_alias(CHAMPION) == "v1"
    records = AuditLog(reg.store).records()
    assert {"alias_moved", "routing_changed"} <= {r["event"] for r in records}
    assert records[-1]["actor"] == "carol"
    assert AuditLog(reg.store).verify()[0]

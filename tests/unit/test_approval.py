"""Human approval: bound to the model and evaluation hashes, once per version, audited, then deployed."""

from __future__ import annotations

import json

import pytest
from support import gated_version, tiny_model_dir
from typer.testing import CliRunner

from civicml.cli import app
from civicml.governance.approval import (
    ApprovalError,
    effective_status,
    get_decision,
    record_decision,
    stored_model_hash,
)
from civicml.governance.audit import AuditLog
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("model"), rows=600, seed=2, n_estimators=5)


def _version(registry: Registry, version: str, model_dir, status="pending_approval", eval_model_sha=None):
    gate = {"decision": "pending_approval", "reason": "borderline: roc_auc >= 0.78", "rules": []}
    return gated_version(registry, version, model_dir, gate, status, eval_model_sha=eval_model_sha)


@pytest.fixture
def registry(tmp_path):
    return Registry(LocalStore(tmp_path / "store"))


def test_approval_is_bound_to_hashes_stored_once_and_audited(registry, model_dir):
    sha = _version(registry, "v1", model_dir)
    assert stored_model_hash(registry, "v1") == sha
    rec = record_decision(registry, "v1", "approved", "A. Jones", "service owner", "fairness reviewed")
    assert rec["model_sha256"] == sha and rec["evaluation_sha256"] == registry.manifest("v1")["evaluation_sha256"]
    assert get_decision(registry, "v1")["by"] == "A. Jones"
    assert effective_status(registry, "v1") == "approved"
    last = AuditLog(registry.store).records()[-1]
    assert last["event"] == "approval_recorded" and last["actor"] == "A. Jones" and last["payload"]["version"] == "v1"
    with pytest.raises(ApprovalError, match="already approved by A. Jones"):
        record_decision(registry, "v1", "rejected", "B. Smith", "auditor", "second thoughts")
    assert AuditLog(registry.store).verify()[0]


def test_tampered_model_is_refused_and_the_refusal_audited(registry, model_dir):
    _version(registry, "v1", model_dir)
    key = registry.manifest("v1")["artifacts"]["model/model.ubj"]["key"]
    registry.store.put_bytes(key, registry.store.get_bytes(key) + b"x")
    with pytest.raises(ApprovalError, match="integrity"):
        record_decision(registry, "v1", "approved", "A. Jones", "owner", "ok")
    assert get_decision(registry, "v1") is None
    assert AuditLog(registry.store).records()[-1]["event"] == "approval_refused"


def test_wrong_reviewed_hash_and_mismatched_evaluation_are_refused(registry, model_dir):
    _version(registry, "v1", model_dir)
    with pytest.raises(ApprovalError, match="you reviewed model 000000000000"):
        record_decision(registry, "v1", "approved", "A", "owner", "ok", expected_model_sha256="0" * 64)
    _version(registry, "v2", model_dir, eval_model_sha="f" * 64)
    with pytest.raises(ApprovalError, match="evaluation report of v2 describes model ffff"):
        record_decision(registry, "v2", "approved", "A", "owner", "ok")


def test_only_pending_versions_with_named_people_can_be_decided(registry, model_dir):
    _version(registry, "v1", model_dir, status="approved")
    with pytest.raises(ApprovalError, match="not awaiting approval"):
        record_decision(registry, "v1", "approved", "A", "owner", "ok")
    _version(registry, "v2", model_dir)
    with pytest.raises(ApprovalError, match="--reason must not be empty"):
        record_decision(registry, "v2", "approved", "A", "owner", "  ")


def test_cli_approve_deploys_locally_and_reject_does_not(tmp_path, monkeypatch, model_dir):
    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "store")
    registry = Registry(LocalStore(store))
    sha = _version(registry, "v1", model_dir)
    _version(registry, "v2", model_dir)
    runner = CliRunner()
    owner = ["--by", "A. Jones", "--role", "owner", "--store", store]
    wrong = runner.invoke(app, ["approve", "v1", *owner, "--reason", "ok", "--model-sha256", "abcdefabcdef"])
    assert wrong.exit_code == 1 and "refusing" in wrong.output
    ok = runner.invoke(app, ["approve", "v1", *owner, "--reason", "reviewed", "--model-sha256", sha[:16]])
    assert ok.exit_code == 0, ok.output
    assert registry.get_alias("champion") == "v1"
    assert registry.alias_history("champion")[-1]["by"] == "A. Jones"
    again = runner.invoke(app, ["approve", "v1", "--by", "B", "--role", "owner", "--reason", "x", "--store", store])
    assert again.exit_code == 1 and "already approved" in again.output
    rej = runner.invoke(
        app, ["reject", "v2", "--by", "C. Lee", "--role", "auditor", "--reason", "bias", "--store", store]
    )
    assert rej.exit_code == 0 and effective_status(registry, "v2") == "rejected"
    assert registry.get_alias("champion") == "v1"
    missing = runner.invoke(app, ["approve", "v9", "--by", "A", "--role", "r", "--reason", "x", "--store", store])
    assert missing.exit_code == 1 and "no model version 'v9'" in missing.output
    events = [r["event"] for r in AuditLog(registry.store).records()]
    assert events.count("approval_recorded") == 2 and "alias_moved" in events and events.count("approval_refused") == 3
    # `models list` shows the status after the human decisions, not the manifest's original one.
    listed = runner.invoke(app, ["models", "list", "--json", "--store", store])
    assert listed.exit_code == 0, listed.output
    status = {m["version"]: m["status"] for m in json.loads(listed.output)}
    assert status == {"v1": "approved", "v2": "rejected"}


def _gate_version(registry: Registry, version: str, model_dir, gate_decision: str) -> None:
    gate = {"decision": gate_decision, "reason": f"gate said {gate_decision}", "rules": []}
    status = {"deploy": "approved", "pending_approval": "pending_approval", "reject": "rejected"}[gate_decision]
    gated_version(registry, version, model_dir, gate, status, extra_meta={"gate": gate})


def test_deploy_without_version_keeps_the_human_approved_champion(tmp_path, monkeypatch, model_dir):
    """Issue 13 item 1: `civicml deploy` (no VERSION) used the manifest's frozen status and demoted V."""
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    (tmp_path / "civicml.yaml").write_text(f"name: p\nstorage: {{uri: {store}}}\n")
    registry = Registry(LocalStore(store))
    _gate_version(registry, "v1", model_dir, "deploy")
    _gate_version(registry, "v2", model_dir, "pending_approval")
    runner = CliRunner()
    ok = runner.invoke(
        app, ["approve", "v2", "--by", "A. Jones", "--role", "owner", "--reason", "reviewed", "--store", str(store)]
    )
    assert ok.exit_code == 0, ok.output
    assert registry.get_alias("champion") == "v2"
    again = runner.invoke(app, ["deploy"])
    assert again.exit_code == 0, again.output
    assert registry.get_alias("champion") == "v2"
    # A rejected version is never the default and is refused by name, with who and why.
    _gate_version(registry, "v3", model_dir, "pending_approval")
    record_decision(registry, "v3", "rejected", "C. Lee", "auditor", "bias in region")
    refused = runner.invoke(app, ["deploy", "v3"])
    assert refused.exit_code == 1 and "rejected by C. Lee (auditor)" in refused.output
    assert registry.get_alias("champion") == "v2"


def test_version_status_is_one_answer_for_gate_and_human_decisions(registry, model_dir):
    from civicml.governance.approval import newest_approved, version_status

    _gate_version(registry, "v1", model_dir, "deploy")
    _gate_version(registry, "v2", model_dir, "reject")
    _gate_version(registry, "v3", model_dir, "pending_approval")
    assert [effective_status(registry, v) for v in ("v1", "v2", "v3")] == ["approved", "rejected", "pending_approval"]
    assert version_status(registry, "v1").decided_by == "gate"
    assert newest_approved(registry) == "v1"
    record_decision(registry, "v3", "approved", "A. Jones", "owner", "reviewed")
    st = version_status(registry, "v3")
    assert (st.status, st.decided_by, st.human.by, st.human.role) == ("approved", "person", "A. Jones", "owner")
    assert st.human.model_sha256 == registry.manifest("v3")["model_sha256"]
    assert newest_approved(registry) == "v3"
    # A decision record bound to other hashes (copied from another version, or edited) does not count.
    rec = json.loads(registry.store.get_bytes("approvals/v3.json"))
    registry.store.put_bytes("approvals/v3.json", json.dumps({**rec, "model_sha256": "0" * 64}).encode())
    st = version_status(registry, "v3")
    assert st.status == "pending_approval" and "other hashes" in st.problem
    assert newest_approved(registry) == "v1"


def test_human_decision_is_shown_in_models_show_and_the_card(tmp_path, model_dir):
    """Issue 13 item 6: the decision, person, role, time, reason and bound hashes wherever status is shown."""
    store = str(tmp_path / "store")
    registry = Registry(LocalStore(store))
    _gate_version(registry, "v1", model_dir, "pending_approval")
    _gate_version(registry, "v2", model_dir, "pending_approval")
    record_decision(registry, "v1", "rejected", "C. Lee", "auditor", "too few rows for region north")
    record_decision(registry, "v2", "approved", "A. Jones", "service owner", "fairness reviewed")
    runner = CliRunner()
    shown = runner.invoke(app, ["models", "show", "v1", "--store", store])
    assert shown.exit_code == 0, shown.output
    assert "rejected by C. Lee (auditor)" in shown.output and "too few rows for region north" in shown.output
    as_json = json.loads(runner.invoke(app, ["models", "show", "v1", "--json", "--store", store]).output)
    decision = as_json["decision"]["human"]
    assert decision["by"] == "C. Lee" and decision["model_sha256"] == registry.manifest("v1")["model_sha256"]
    listed = json.loads(runner.invoke(app, ["models", "list", "--json", "--store", store]).output)
    assert {m["version"]: m["decision"]["human"]["by"] for m in listed} == {"v1": "C. Lee", "v2": "A. Jones"}
    card = runner.invoke(app, ["models", "card", "v2", "--store", store])
    assert card.exit_code == 0, card.output
    assert "Human decision: APPROVED by A. Jones (service owner)" in card.output
    assert "fairness reviewed" in card.output and registry.manifest("v2")["model_sha256"] in card.output
    assert "PENDING HUMAN APPROVAL" in card.output  # the gate's own decision stays visible beside it
    out = tmp_path / "card.html"
    assert runner.invoke(app, ["models", "card", "v1", "--out", str(out), "--store", store]).exit_code == 0
    page = out.read_text()
    assert "Human decision: REJECTED by C. Lee (auditor)" in page and "decision-rejected" in page

"""Separation of duties in the approval library (the CLI and the review console share it)."""

from __future__ import annotations

import pytest
from support import gated_version, tiny_model_dir
from typer.testing import CliRunner

from civicml.cli import app
from civicml.governance.approval import (
    ApprovalError,
    effective_status,
    get_decision,
    record_decision,
    signoffs,
    started_by,
)
from civicml.governance.audit import AuditLog
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture
def registry(tmp_path):
    return Registry(LocalStore(tmp_path / "store"))


def _version(registry, version, model_dir, starter="T. Rainer", borderline=True, approvals=2, lineage=True):
    gate = {
        "decision": "pending_approval",
        "reason": "borderline, a person must judge: roc_auc >= 0.7",
        "rules": [],
        "borderline": ["roc_auc >= 0.7"] if borderline else [],
        "policy": {"borderline_approvals": approvals, "require_approval": "borderline"},
    }
    extra = {"lineage": {"started_by": starter}} if lineage else {}
    return gated_version(
        registry, version, model_dir, gate, "pending_approval", roc_auc=0.71, extra_meta=extra, commit=Registry.commit
    )


def test_the_person_who_started_the_run_cannot_approve_it_but_may_reject(registry, model_dir):
    _version(registry, "v1", model_dir, borderline=False)
    assert started_by(registry, "v1") == "T. Rainer"
    with pytest.raises(ApprovalError, match="v1 was started by T. Rainer"):
        record_decision(registry, "v1", "approved", "  t. rainer ", "engineer", "looks fine")
    assert get_decision(registry, "v1") is None
    refused = AuditLog(registry.store).records()[-1]
    assert refused["event"] == "approval_refused" and "separation of duties" in refused["payload"]["error"]
    rec = record_decision(registry, "v1", "rejected", "T. Rainer", "engineer", "found a leak")
    assert rec["decision"] == "rejected" and effective_status(registry, "v1") == "rejected"


def test_started_by_falls_back_to_the_commit_audit_record(registry, model_dir):
    _version(registry, "v1", model_dir, lineage=False)
    assert started_by(registry, "v1") is None
    AuditLog(registry.store).append("version_committed", {"version": "v1"}, actor="old.runner")
    assert started_by(registry, "v1") == "old.runner"
    with pytest.raises(ApprovalError, match="separation of duties"):
        record_decision(registry, "v1", "approved", "old.runner", "engineer", "ok")


def test_borderline_version_needs_two_different_approvers(registry, model_dir):
    sha = _version(registry, "v1", model_dir)
    first = record_decision(registry, "v1", "approved", "A. Jones", "service owner", "fairness reviewed")
    assert first["decision"] == "signoff" and first["n"] == 1 and first["needed"] == 2
    assert effective_status(registry, "v1") == "pending_approval" and get_decision(registry, "v1") is None
    with pytest.raises(ApprovalError, match="A. Jones already approved v1"):
        record_decision(registry, "v1", "approved", "a. jones", "service owner", "again")
    final = record_decision(registry, "v1", "approved", "B. Smith", "accountable officer", "agree", sha[:12])
    assert final["decision"] == "approved" and [a["by"] for a in final["approvers"]] == ["A. Jones", "B. Smith"]
    assert effective_status(registry, "v1") == "approved" and len(signoffs(registry, "v1")) == 1
    events = [r["event"] for r in AuditLog(registry.store).records()]
    # Each stored record is preceded by its intent (issue 12 item 5: no state without its evidence).
    assert [e for e in events if "approval" in e] == [
        "approval_intent",
        "approval_signoff",
        "approval_refused",
        "approval_intent",
        "approval_recorded",
    ]
    assert AuditLog(registry.store).verify()[0]


def test_one_rejection_is_final_and_non_borderline_needs_one(registry, model_dir):
    _version(registry, "v1", model_dir)
    record_decision(registry, "v1", "approved", "A. Jones", "owner", "ok")
    rec = record_decision(registry, "v1", "rejected", "B. Smith", "auditor", "bias in region")
    assert rec["decision"] == "rejected" and effective_status(registry, "v1") == "rejected"
    _version(registry, "v2", model_dir, borderline=False)
    assert record_decision(registry, "v2", "approved", "A. Jones", "owner", "ok")["decision"] == "approved"


def test_cli_obeys_the_same_rules(tmp_path, model_dir):
    store = str(tmp_path / "store")
    _version(Registry(LocalStore(store)), "v1", model_dir)
    runner = CliRunner()
    base = ["approve", "v1", "--role", "owner", "--reason", "ok", "--store", store, "--no-deploy"]
    own = runner.invoke(app, [*base, "--by", "T. Rainer"])
    assert own.exit_code == 1 and "separation of duties" in own.output
    first = runner.invoke(app, [*base, "--by", "A. Jones"])
    assert first.exit_code == 0 and "1 of 2 approvals" in first.output, first.output
    twice = runner.invoke(app, [*base, "--by", "A. Jones"])
    assert twice.exit_code == 1 and "different people" in twice.output
    second = runner.invoke(app, [*base, "--by", "B. Smith"])
    assert second.exit_code == 0 and effective_status(Registry(LocalStore(store)), "v1") == "approved"

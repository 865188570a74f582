"""Stored documents are read through their typed models: a malformed one stops with a message naming it."""

from __future__ import annotations

import json

import pytest
from support import demo_config, gated_version, tiny_model_dir

from civicml.documents import DocumentError
from civicml.governance.approval import ApprovalError, check_bindings
from civicml.governance.audit import AuditLog
from civicml.steps.deployment import compared_champion
from civicml.steps.retrain import monitor_retrain
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore


class _OneArtifact:
    """A registry stand-in that holds one evaluation.json (all `compared_champion` reads)."""

    def __init__(self, doc: dict) -> None:
        self.doc = json.dumps(doc).encode()

    def read_artifact(self, version: str, name: str) -> bytes:
        assert name == "evaluation.json"
        return self.doc


def test_the_deploy_step_reads_the_champion_comparison_through_the_evaluation_model():
    doc = {"metrics": {"roc_auc": 0.8}, "champion_comparison": {"champion_version": "v0"}}
    assert compared_champion(_OneArtifact(doc), "v1") == "v0"
    assert compared_champion(_OneArtifact({"metrics": {}}), "v1") is None


def test_a_malformed_evaluation_stops_the_deploy_step_naming_the_version():
    with pytest.raises(DocumentError, match=r"evaluation.json of v1 is not a valid evaluation document: metrics"):
        compared_champion(_OneArtifact({"metrics": "high"}), "v1")


def test_retraining_refuses_a_document_that_is_not_a_drift_report(tmp_path):
    cfg = demo_config(tmp_path / "store", rows=200, trials=1)
    drift = tmp_path / "drift.json"
    drift.write_text(json.dumps({"schema": "civicml.gate/v1", "decision": "deploy"}))
    with pytest.raises(DocumentError, match=r"expected a civicml.drift/v1 document .*got schema 'civicml.gate/v1'"):
        monitor_retrain(cfg, str(drift))
    # Nothing started: no audit record of a retraining.
    assert not [r for r in AuditLog(LocalStore(tmp_path / "store")).records() if r["event"].startswith("retrain")]


def test_an_approval_refuses_a_version_whose_gate_decision_is_malformed(tmp_path):
    registry = Registry(LocalStore(tmp_path / "store"))
    model_dir = tiny_model_dir(tmp_path / "model", rows=400, seed=2, n_estimators=3)
    gated_version(registry, "v1", model_dir, {"decision": "maybe", "rules": []}, "pending_approval")
    with pytest.raises(
        ApprovalError, match=r"refusing: the gate decision of v1 is not a valid gate document: decision"
    ):
        check_bindings(registry, "v1")

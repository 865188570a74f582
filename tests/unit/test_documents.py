"""civicml.documents: the typed cross-layer documents load old stored JSON and refuse the wrong kind."""

import json

import pytest

from civicml.documents import DocumentError, DriftReport, Evaluation, GateDecision, Manifest, TuningResult

# As stored by main before the documents were typed (trimmed): no `schema` key, extra fields present.
OLD_EVALUATION = {
    "version": "v1",
    "model_sha256": "ab" * 32,
    "task": "binary_classification",
    "n_test": 600,
    "metrics": {"roc_auc": 0.75, "recall": 0.58},
    "roc": {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "thresholds": [1.0, 0.0]},
}
OLD_GATE = {"decision": "deploy", "reason": "all rules passed", "rules": [], "policy": {}, "borderline": []}


def test_old_documents_load_as_version_1_and_round_trip_unchanged(tmp_path):
    for cls, data in ((Evaluation, OLD_EVALUATION), (GateDecision, OLD_GATE)):
        path = tmp_path / f"{cls.KIND}.json"
        path.write_text(json.dumps(data))
        doc = cls.read(path)
        out = doc.as_dict()
        assert out.pop("schema") == f"civicml.{cls.KIND}/v1"
        assert out == data  # nothing dropped, no default added
    assert Evaluation.read(tmp_path / "evaluation.json").metrics["roc_auc"] == 0.75


def test_stamp_adds_the_schema_and_keeps_the_object():
    stamped = TuningResult.stamp({"best_params": {"max_depth": 3}, "best_value": 0.7, "seed": 42})
    assert stamped == {"best_params": {"max_depth": 3}, "best_value": 0.7, "seed": 42, "schema": "civicml.tuning/v1"}
    assert TuningResult.parse(stamped).best_params == {"max_depth": 3}


def test_wrong_kind_newer_version_and_missing_fields_are_clear_errors(tmp_path):
    with pytest.raises(DocumentError, match="expected a civicml.gate/v1 document.*civicml.evaluation/v1"):
        GateDecision.parse({**OLD_GATE, "schema": "civicml.evaluation/v1"})
    with pytest.raises(DocumentError, match="newer civicml"):
        Evaluation.parse({**OLD_EVALUATION, "schema": "civicml.evaluation/v2"})
    with pytest.raises(DocumentError, match=r"the gate decision is not a valid gate document: decision"):
        GateDecision.parse({**OLD_GATE, "decision": "maybe"}, where="the gate decision")
    with pytest.raises(DocumentError, match="metrics.roc_auc: Input should be a valid number"):
        Evaluation.parse({**OLD_EVALUATION, "metrics": {"roc_auc": "high"}})
    # A step must write the whole document; a reader takes what an older version stored.
    with pytest.raises(DocumentError, match=r"lacks \['n_test'\]"):
        Evaluation.stamp({k: v for k, v in OLD_EVALUATION.items() if k != "n_test"})
    assert Evaluation.parse({"metrics": {}}).as_dict() == {"metrics": {}, "schema": "civicml.evaluation/v1"}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DocumentError, match="bad.json is not JSON"):
        DriftReport.read(tmp_path / "bad.json")


def test_a_manifest_keeps_its_existing_schema_id():
    man = {"schema": "civicml.manifest/v1", "version": "v1", "status": "approved", "artifacts": {}}
    assert Manifest.parse(man).as_dict() == man

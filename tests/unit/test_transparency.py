"""The ATRS v3.0 transparency record: the standard's fields, people's text, evidence, nothing invented."""

from __future__ import annotations

import json

import pytest
from review_support import CHAMPION, PENDING, TRAINER, TRANSPARENCY, built_store, copy_store
from typer.testing import CliRunner

from civicml.cli import app
from civicml.config import load_config
from civicml.governance.approval import record_decision
from civicml.reporting.transparency import ATRS_FIELDS, build_record, render_record
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

# Tier 1 and the five tier 2 sections of ATRS v3.0, as named in the standard's template table.
# upstream: co-cddo/algorithmic-transparency-recording-standard template_table.md @ 0bf872f
ATRS_SECTIONS = {
    "Tier 1 Information",
    "Owner and Responsibility",
    "Description and Rationale",
    "Decision-making Process",
    "Tool Specification",
    "Model Specification",
    "Data Specification",
    "Risks, mitigations and impact assessments",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return copy_store(built_store(tmp_path_factory), tmp_path_factory.mktemp("t") / "store")


def _field(rec, attribute, section=None):
    return next(f for f in rec.fields if f.attribute == attribute and (section is None or f.section == section))


def test_fields_are_the_standards(store):
    rec = build_record(Registry(LocalStore(store)), PENDING)
    assert {f.section for f in rec.fields} >= ATRS_SECTIONS
    refs = [f.ref for f in rec.fields]
    assert len(refs) == len(set(refs)) == len(ATRS_FIELDS)
    for ref in ("1.2", "1.4", "2.1.3", "2.2.5", "2.3.4", "2.4.2.7", "2.4.3.5", "2.5.2"):
        assert ref in refs


def test_people_fill_what_only_they_know_and_the_rest_is_marked_not_filled(store):
    registry = Registry(LocalStore(store))
    rec = build_record(registry, PENDING)  # the transparency section recorded with the version
    assert _field(rec, "description").text == TRANSPARENCY["description"]
    assert _field(rec, "contact_email").filled_by == "people"
    assert _field(rec, "alternatives_considered").text == TRANSPARENCY["alternatives_considered"]
    sro = _field(rec, "senior_responsible_owner")
    assert sro.filled_by == "not_filled" and sro.text is None and sro.evidence == []
    assert sro.config_key == "transparency.senior_responsible_owner"
    # The current config wins field by field; what it leaves empty keeps the recorded text; a field
    # nobody wrote anywhere stays not filled - never made up.
    current = build_record(registry, PENDING, load_config(None, {"transparency": {"phase": "Production"}}))
    assert _field(current, "phase", "Title Information").text == "Production"
    assert _field(current, "description").text == TRANSPARENCY["description"]
    people_only = [f for f in current.fields if f.config_key and f.config_key.startswith("transparency.")]
    written = {k for k in TRANSPARENCY} | {"phase"}
    for f in people_only:
        if f.config_key.removeprefix("transparency.") not in written:
            assert f.text is None and f.filled_by in ("not_filled", "evidence"), f
    md = render_record(current, "md")
    assert md.count("**Not filled in**") == len(current.not_filled())
    assert "set `transparency.senior_responsible_owner` in the config" in md


def test_evidence_comes_from_the_lineage_evaluation_gate_and_approvals(store):
    registry = Registry(LocalStore(store))
    man = registry.manifest(PENDING)
    rec = build_record(registry, PENDING)
    assert man["lineage"]["data_fingerprint"] in " ".join(_field(rec, "datasets").evidence)
    perf = " ".join(_field(rec, "model_performance").evidence)
    assert "roc_auc" in perf and "95% CI" in perf and "demographic parity ratio" in perf
    assert "too small to report" in perf  # the suppressed small groups are named
    assert "claimant_name" in " ".join(_field(rec, "data_cleaning").evidence)
    human = " ".join(_field(rec, "human_decisions_and_review").evidence)
    assert "pending_approval" in human and f"started by {TRAINER}" in human
    assert _field(rec, "model_version").evidence[0].startswith(PENDING)
    record_decision(registry, PENDING, "approved", "Rita Reviewer", "approver", "reviewed", man["model_sha256"])
    after = build_record(registry, PENDING)
    assert "approved by Rita Reviewer (approver)" in " ".join(_field(after, "human_decisions_and_review").evidence)
    assert after.status == "approved"


def test_cli_prints_every_format_and_fails_clearly(store, tmp_path):
    runner = CliRunner()
    base = ["transparency", CHAMPION, "--store", str(store)]
    md = runner.invoke(app, base)
    assert md.exit_code == 0 and "# Algorithmic transparency record" in md.output
    js = runner.invoke(app, [*base, "--format", "json"])
    doc = json.loads(js.output)
    assert doc["standard_version"] == "3.0" and doc["version"] == CHAMPION
    out = tmp_path / "record.html"
    html = runner.invoke(app, [*base, "--format", "html", "--output", str(out)])
    assert html.exit_code == 0 and out.read_text().startswith("<!DOCTYPE html>")
    assert 'lang="en-GB"' in out.read_text() and "Not filled in" in out.read_text()
    bad = runner.invoke(app, [*base, "--format", "pdf"])
    assert bad.exit_code != 0 and "use md, html or json" in bad.output
    missing = runner.invoke(app, ["transparency", "v-nope", "--store", str(store)])
    assert missing.exit_code == 1 and "no model version 'v-nope'" in missing.output
    assert "Traceback" not in missing.output

"""UK Algorithmic Transparency Recording Standard (ATRS v3.0) record of one model version.

The field list is the standard's own (reference numbers, attribute names, tiers and sections), from
the v3.0 template table published by CDDO:
upstream: co-cddo/algorithmic-transparency-recording-standard template_table.md @ 0bf872f ("V3.0 (March 2024)").

Two kinds of source fill it, and the record says which filled each field:

* people, through the config's `transparency:` section (owner, purpose, contact, phase,
  alternatives considered, ...): only they know these;
* the evidence civicml holds for the version: the manifest's lineage (data source and fingerprint,
  rows, model family and parameters), the evaluation (metrics with intervals, fairness by group), the
  gate decision with each rule, and the human approvals.

A field neither source fills is `not_filled` and is rendered as such, naming the config key that
would fill it. Nothing is invented.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from civicml.config import RunConfig, TransparencyConfig
from civicml.governance.approval import get_decision, signoffs, started_by
from civicml.reporting.numbers import ci_suffix, number
from civicml.storage.registry import Registry, RegistryError

STANDARD_VERSION = "3.0"
NOT_FILLED = "Not filled in"

# The standard's sections, in its order.
_META = "Metadata"
_TITLE = "Title Information"
_TIER1 = "Tier 1 Information"
_OWNER = "Owner and Responsibility"
_RATIONALE = "Description and Rationale"
_DECISION = "Decision-making Process"
_TOOL = "Tool Specification"
_MODEL = "Model Specification"
_DATA = "Data Specification"
_RISKS = "Risks, mitigations and impact assessments"
# (reference, attribute, name, tier, section, required) exactly as in the v3.0 template table.
ATRS_FIELDS: tuple[tuple[str, str, str, str, str, bool], ...] = (
    ("0.2", "standard_version", "Standard version", "N/A", _META, True),
    ("0.3", "organisation_type", "Organisation type", "N/A", _META, True),
    ("0.4", "function", "Function", "N/A", _META, True),
    ("0.6", "task", "Task", "N/A", _META, True),
    ("0.11", "title", "Title", "N/A", _TITLE, True),
    ("0.12", "organisation_name", "Organisation name", "N/A", _TITLE, True),
    ("0.13", "phase", "Phase", "N/A", _TITLE, True),
    ("0.14", "region", "Region", "N/A", _TITLE, True),
    ("0.15", "one_sentence_description", "One sentence description", "N/A", _TITLE, True),
    ("1.1", "name", "Name", "1", _TIER1, True),
    ("1.2", "description", "Description", "1", _TIER1, True),
    ("1.3", "website_url", "Website URL", "1", _TIER1, True),
    ("1.4", "contact_email", "Contact email", "1", _TIER1, True),
    ("2.1.1", "organisation_or_department", "Organisation or department", "2", _OWNER, True),
    ("2.1.2", "team", "Team", "2", _OWNER, True),
    ("2.1.3", "senior_responsible_owner", "Senior responsible owner", "2", _OWNER, True),
    ("2.1.4", "external_supplier_involvement", "External supplier involvement", "2", _OWNER, True),
    ("2.1.4.1", "external_supplier", "External supplier", "2", _OWNER, False),
    ("2.1.4.2", "companies_house_number", "Companies House Number", "2", _OWNER, False),
    ("2.1.4.3", "external_supplier_role", "External supplier role", "2", _OWNER, False),
    ("2.1.4.4", "procurement_procedure_type", "Procurement procedure type", "2", _OWNER, False),
    ("2.1.4.5", "data_access_terms", "Data access terms", "2", _OWNER, False),
    ("2.2.1", "detailed_description", "Detailed description", "2", _RATIONALE, False),
    ("2.2.2", "scope", "Scope", "2", _RATIONALE, True),
    ("2.2.3", "benefit", "Benefit", "2", _RATIONALE, True),
    ("2.2.4", "previous_process", "Previous process", "2", _RATIONALE, False),
    ("2.2.5", "alternatives_considered", "Alternatives considered", "2", _RATIONALE, False),
    ("2.3.1", "process_integration", "Process integration", "2", _DECISION, True),
    ("2.3.2", "provided_information", "Provided information", "2", _DECISION, True),
    ("2.3.3", "frequency_and_scale_of_usage", "Frequency and scale of usage", "2", _DECISION, True),
    ("2.3.4", "human_decisions_and_review", "Human decisions and review", "2", _DECISION, True),
    ("2.3.5", "required_training", "Required training", "2", _DECISION, True),
    ("2.3.6", "appeals_and_review", "Appeals and review", "2", _DECISION, False),
    ("2.4.1.1", "system_architecture", "System architecture", "2", _TOOL, True),
    ("2.4.1.2", "phase", "Phase", "2", _TOOL, True),
    ("2.4.1.3", "maintenance", "Maintenance", "2", _TOOL, True),
    ("2.4.1.4", "models", "Models", "2", _TOOL, True),
    ("2.4.2.1", "model_name", "Model name", "2", _MODEL, True),
    ("2.4.2.2", "model_version", "Model version", "2", _MODEL, True),
    ("2.4.2.3", "model_task", "Model task", "2", _MODEL, True),
    ("2.4.2.4", "model_input", "Model input", "2", _MODEL, True),
    ("2.4.2.5", "model_output", "Model output", "2", _MODEL, True),
    ("2.4.2.6", "model_architecture", "Model architecture", "2", _MODEL, True),
    ("2.4.2.7", "model_performance", "Model performance", "2", _MODEL, True),
    ("2.4.2.8", "datasets", "Datasets", "2", _MODEL, True),
    ("2.4.2.9", "dataset_purposes", "Dataset purposes", "2", _MODEL, True),
    ("2.4.3.1", "source_data_name", "Source data name", "2", _DATA, True),
    ("2.4.3.2", "data_modality", "Data modality", "2", _DATA, True),
    ("2.4.3.3", "data_description", "Data description", "2", _DATA, True),
    ("2.4.3.4", "data_quantities", "Data quantities", "2", _DATA, True),
    ("2.4.3.5", "sensitive_attributes", "Sensitive attributes", "2", _DATA, True),
    (
        "2.4.3.6",
        "data_completeness_and_representativeness",
        "Data completeness and representativeness",
        "2",
        _DATA,
        True,
    ),
    ("2.4.3.7", "source_data_url", "Source data URL", "2", _DATA, True),
    ("2.4.3.8", "data_collection", "Data collection", "2", _DATA, True),
    ("2.4.3.9", "data_cleaning", "Data cleaning", "2", _DATA, False),
    ("2.4.3.10", "data_sharing_agreements", "Data sharing agreements", "2", _DATA, True),
    ("2.4.3.11", "data_access_and_storage", "Data access and storage", "2", _DATA, True),
    ("2.5.1", "impact_assessment", "Impact assessment", "2", _RISKS, True),
    ("2.5.2", "risks_and_mitigations", "Risks and mitigations", "2", _RISKS, True),
)
# ATRS attributes whose people-written value lives under another `transparency:` key.
CONFIG_KEY = {"organisation_or_department": "organisation_name"}


class RecordField(BaseModel):
    """One ATRS field: what people wrote, what the evidence says, and who filled it."""

    ref: str
    attribute: str
    name: str
    tier: str
    section: str
    required: bool
    text: str | None = None
    evidence: list[str] = []
    filled_by: Literal["people", "evidence", "people and evidence", "not_filled"] = "not_filled"
    config_key: str | None = None


class TransparencyRecord(BaseModel):
    """An ATRS v3.0 record of one model version."""

    standard_version: str = STANDARD_VERSION
    version: str
    model_sha256: str | None
    status: str
    generated_from: str
    fields: list[RecordField]

    def sections(self) -> list[tuple[str, list[RecordField]]]:
        """Fields grouped by ATRS section, in the standard's order."""
        out: dict[str, list[RecordField]] = {}
        for f in self.fields:
            out.setdefault(f.section, []).append(f)
        return list(out.items())

    def not_filled(self) -> list[RecordField]:
        """Fields neither people nor evidence filled."""
        return [f for f in self.fields if f.filled_by == "not_filled"]


def _ci(cis: dict[str, Any], name: str) -> str:
    return ci_suffix(cis.get(name))


def _num(v: Any, digits: int = 3) -> str:
    return number(v, digits)


def _fairness_lines(ev: dict[str, Any]) -> list[str]:
    lines = []
    for attr, rep in (ev.get("fairness") or {}).items():
        ratio = rep.get("demographic_parity_ratio")
        cis = rep.get("confidence_intervals") or {}
        text = (
            f"{attr}: demographic parity ratio {_num(ratio)}{_ci(cis, 'demographic_parity_ratio')}, "
            f"equalised odds difference {_num(rep.get('equalized_odds_difference'))}"
            f"{_ci(cis, 'equalized_odds_difference')} over groups {', '.join(rep.get('reportable_groups', []))}"
        )
        if rep.get("suppressed_groups"):
            text += (
                f"; groups with fewer than {rep.get('min_group_count')} test rows were too small to report: "
                + ", ".join(rep["suppressed_groups"])
            )
        lines.append(text)
    return lines


def _approval_lines(registry: Registry, version: str) -> list[str]:
    lines = []
    for s in signoffs(registry, version):
        lines.append(f"approved by {s['by']} ({s['role']}) on {s['at']}: {s['reason']} (1 of {s.get('needed')})")
    decision = get_decision(registry, version)
    if decision:
        lines.append(
            f"{decision['decision']} by {decision['by']} ({decision['role']}) on {decision['at']}: "
            f"{decision['reason']} — bound to model {decision['model_sha256'][:16]}…"
        )
    return lines


def _evidence(registry: Registry, man: dict[str, Any], ev: dict[str, Any], gate: dict[str, Any]) -> dict[str, list]:
    """What the version's evidence says, by ATRS attribute."""
    cfg = man.get("lineage", {}).get("config", {})
    monitoring = cfg.get("monitoring") or {}
    return {
        "standard_version": [STANDARD_VERSION],
        "task": [man.get("task")] if man.get("task") else [],
        "models": [f"{man.get('name', 'model')} {man['version']} ({man.get('family')})"],
        **_model_evidence(man, ev),
        **_data_evidence(man, ev),
        "human_decisions_and_review": _human_review(registry, man, gate),
        "risks_and_mitigations": [
            "Risk of unequal treatment of groups: fairness is measured on the test rows for every sensitive "
            "attribute and the gate's fairness rules must pass before the model is used.",
            *_fairness_lines(ev),
        ]
        if ev.get("fairness")
        else [],
        "maintenance": [
            f"drift monitoring: retraining is considered when any feature PSI reaches "
            f"{monitoring.get('psi_threshold')} or the live metric falls more than "
            f"{monitoring.get('max_metric_drop')} below the test value"
        ]
        if cfg.get("monitoring")
        else [],
        "phase": [],
    }


def _human_review(registry: Registry, man: dict[str, Any], gate: dict[str, Any]) -> list[str]:
    """The gate's decision and rules, the approval rule, the sign-offs and who started the run."""
    rules = [
        f"{r.get('rule')}: threshold {_num(r.get('threshold'))}, measured {_num(r.get('value'))}, {r.get('verdict')}"
        for r in gate.get("rules", [])
    ]
    human = [
        f"The automated gate decided '{gate.get('decision', man.get('gate', {}).get('decision'))}': "
        f"{gate.get('reason', man.get('gate', {}).get('reason'))}",
        *[f"gate rule {r}" for r in rules],
        "A version the gate sends to pending_approval serves nobody until a named person approves it in the "
        "review console or with `civicml approve`; the person who started the training run cannot approve it.",
        *_approval_lines(registry, man["version"]),
    ]
    who = started_by(registry, man["version"])
    if who:
        human.append(f"The training run was started by {who}.")
    return human


def _model_evidence(man: dict[str, Any], ev: dict[str, Any]) -> dict[str, list]:
    """The Model Specification fields: name, version, task, input, output, architecture, performance."""
    lineage = man.get("lineage", {})
    cfg = lineage.get("config", {})
    target = cfg.get("data", {}).get("target")
    rows = lineage.get("rows") or {}
    metrics = ev.get("metrics") or man.get("metrics") or {}
    cis = ev.get("confidence_intervals") or {}
    features = ev.get("features") or []
    params = (cfg.get("model") or {}).get("params") or {}
    return {
        "model_name": [man.get("name")] if man.get("name") else [],
        "model_version": [f"{man['version']} (model sha256 {man.get('model_sha256')})"],
        "model_task": [man.get("task")] if man.get("task") else [],
        "model_input": [f"{len(features)} features: {', '.join(features)}"] if features else [],
        "model_output": (
            [f"a score between 0 and 1 for '{target}'; a score of {ev.get('threshold')} or more flags the case"]
            if man.get("task") == "binary_classification"
            else ([f"a predicted value of '{target}'"] if target else [])
        ),
        "model_architecture": [
            f"{man.get('family')} with parameters {json.dumps(params, sort_keys=True)}; code revision "
            f"{lineage.get('code_revision')}, image {lineage.get('image')}"
        ],
        "model_performance": [
            f"{k} {_num(v)}{_ci(cis, k)} on {ev.get('n_test', rows.get('test', '?'))} held-out test rows"
            for k, v in metrics.items()
        ]
        + _fairness_lines(ev),
    }


def _data_evidence(man: dict[str, Any], ev: dict[str, Any]) -> dict[str, list]:
    """The Data Specification fields: data sets, their purposes and sizes, sensitive attributes, cleaning."""
    lineage = man.get("lineage", {})
    data = lineage.get("config", {}).get("data", {})
    rows = lineage.get("rows") or {}
    features = ev.get("features") or []
    pii = data.get("pii_columns") or []
    sensitive = data.get("sensitive_attributes") or []
    return {
        "datasets": [f"{lineage.get('data_source')} (fingerprint {lineage.get('data_fingerprint')})"]
        if lineage.get("data_source")
        else [],
        "dataset_purposes": [f"{split}: {n} rows" for split, n in rows.items()],
        "source_data_name": [str(lineage["data_source"])] if lineage.get("data_source") else [],
        "data_quantities": [f"{sum(rows.values())} rows in total ({json.dumps(rows)}); {len(features)} features"]
        if rows
        else [],
        "sensitive_attributes": [
            f"{', '.join(sensitive)}: used to measure fairness"
            + ("" if data.get("allow_sensitive_as_features") else ", not as model features")
        ]
        if sensitive
        else [],
        "data_cleaning": [f"personal data columns dropped before anything else: {', '.join(pii)}"] if pii else [],
    }


def _load(registry: Registry, version: str, name: str) -> dict[str, Any]:
    man = registry.manifest(version)
    if name not in man["artifacts"]:
        return {}
    return json.loads(registry.read_artifact(version, name))


def _people(man: dict[str, Any], cfg: RunConfig | None) -> tuple[TransparencyConfig, str]:
    """What people wrote for the version (the `transparency:` section) and where it was read from."""
    recorded = (man.get("lineage", {}).get("config") or {}).get("transparency") or {}
    try:
        people = TransparencyConfig.model_validate(recorded)
    except ValueError as err:
        raise RegistryError(f"the transparency section recorded with {man['version']} is not valid: {err}") from None
    if cfg is None:
        return people, "the transparency section recorded with the version and its evidence"
    # What people write can change after training (phase, contact): the current config wins
    # field by field; a field it leaves empty keeps what was recorded with the version.
    current = cfg.transparency.model_dump(exclude_none=True)
    return (
        people.model_copy(update=current),
        "the current config's transparency section (else the one recorded with the version) and its evidence",
    )


def build_record(registry: Registry, version: str, cfg: RunConfig | None = None) -> TransparencyRecord:
    """Build the ATRS v3.0 record of `version`.

    Args:
        registry: The registry.
        version: Version id (or alias).
        cfg: Config whose `transparency:` section holds what people wrote; when None, the section
            recorded in the version's lineage is used.

    Raises:
        RegistryError: unknown version or an artifact that fails its integrity check.
    """
    from civicml.governance.approval import effective_status

    man = registry.manifest(version)
    version = man["version"]
    ev, gate = _load(registry, version, "evaluation.json"), _load(registry, version, "gate.json")
    people, source = _people(man, cfg)
    card = (man.get("lineage", {}).get("config") or {}).get("card") or {}
    evidence = _evidence(registry, man, ev, gate)
    fields = []
    for ref, attr, name, tier, section, required in ATRS_FIELDS:
        key = CONFIG_KEY.get(attr, attr)
        if attr in ("title", "name"):
            text, config_key = card.get("title"), "card.title"  # the model card's title is people-written
        elif key in TransparencyConfig.model_fields:
            text, config_key = getattr(people, key), f"transparency.{key}"
        else:
            text, config_key = None, None
        text = text.strip() if isinstance(text, str) and text.strip() else None
        found = [str(e) for e in evidence.get(attr, []) if e not in (None, "")]
        filled = {(True, True): "people and evidence", (True, False): "people", (False, True): "evidence"}.get(
            (bool(text), bool(found)), "not_filled"
        )
        fields.append(
            RecordField(
                ref=ref,
                attribute=attr,
                name=name,
                tier=tier,
                section=section,
                required=required,
                text=text,
                evidence=found,
                filled_by=filled,
                config_key=config_key,
            )
        )
    return TransparencyRecord(
        version=version,
        model_sha256=man.get("model_sha256"),
        status=effective_status(registry, version),
        generated_from=source,
        fields=fields,
    )


def render_record(record: TransparencyRecord, fmt: Literal["md", "html", "json"] = "md") -> str:
    """The record as Markdown, a self-contained accessible HTML page, or JSON."""
    from civicml.reporting.render import STATIC_DIR, render

    if fmt == "json":
        return record.model_dump_json(indent=2)
    if fmt == "html":
        return render("transparency.html.j2", rec=record, css=(STATIC_DIR / "review.css").read_text())
    if fmt == "md":
        return render("transparency.md.j2", rec=record)
    raise ValueError(f"unknown format {fmt!r}; use md, html or json")

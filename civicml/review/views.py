"""What each console page shows, read from the registry and the audit log (no HTML here)."""

from __future__ import annotations

import json
from typing import Any

from civicml.governance.approval import (
    effective_status,
    get_decision,
    required_approvals,
    same_person,
    signoffs,
    started_by,
    version_status,
)
from civicml.governance.audit import AuditLog
from civicml.governance.audit_views import events_by_version, project_records
from civicml.review.identity import Identity
from civicml.serving.routing import current_routing
from civicml.storage.registry import IntegrityError, Registry, RegistryError

STATUS_LABELS = {
    "pending_approval": "Pending approval",
    "approved": "Approved",
    "rejected": "Rejected",
    "gate_rejected": "Rejected by the gate",
    "unknown": "Unknown",
}


def display_status(registry: Registry, man: dict[str, Any]) -> str:
    """The effective status (`version_status`), with a gate rejection told apart from a person's."""
    status = version_status(registry, man)
    if status.status == "rejected" and status.decided_by == "gate":
        return "gate_rejected"
    return status.status


def waiting_for(registry: Registry, man: dict[str, Any], who: Identity) -> str | None:
    """Why this version waits for `who` (None when it does not)."""
    version = man["version"]
    if effective_status(registry, version) != "pending_approval" or not who.may("reject"):
        return None
    if any(same_person(s.get("by"), who.user) for s in signoffs(registry, version)):
        return None
    if same_person(started_by(registry, version), who.user):
        return None
    return "your decision" if who.may("approve") else "your review (you may reject)"


def dashboard(registry: Registry, who: Identity) -> dict[str, Any]:
    """This project's versions with status, champion/challenger, the A/B split, the last drift decision, what waits."""
    records = project_records(AuditLog(registry.store).records(), registry)
    try:
        routing = current_routing(registry)
        ab = {
            "champion": routing.champion,
            "challenger": routing.challenger,
            "share": routing.challenger_share,
            "since": routing.updated_at,
        }
    except RegistryError as err:
        ab = {"error": str(err)}
    rows = []
    for man in reversed(registry.versions()):
        rows.append(
            {
                "version": man["version"],
                "created_at": man.get("created_at"),
                "family": man.get("family"),
                "status": display_status(registry, man),
                "gate_reason": man.get("gate", {}).get("reason"),
                "headline": _headline(man),
                "alias": [a for a in ("champion", "challenger") if registry.get_alias(a) == man["version"]],
                "waiting": waiting_for(registry, man, who),
            }
        )
    drift = next((r for r in reversed(records) if r.get("event") == "retrain_decision"), None)
    return {
        "versions": rows,
        "waiting": [r for r in rows if r["waiting"]],
        "ab": ab,
        "drift": drift,
        "counts": {s: sum(1 for r in rows if r["status"] == s) for s in STATUS_LABELS},
    }


def _headline(man: dict[str, Any]) -> tuple[str, float] | None:
    metrics = man.get("metrics") or {}
    for name in ("roc_auc", "r2"):
        if isinstance(metrics.get(name), (int, float)):
            return name, metrics[name]
    return None


def _artifact_json(registry: Registry, man: dict[str, Any], name: str, problems: list[str]) -> dict[str, Any]:
    if name not in man["artifacts"]:
        return {}
    try:
        return json.loads(registry.read_artifact(man["version"], name))
    except IntegrityError as err:
        problems.append(str(err))
        return {}


def version_page(registry: Registry, version: str, who: Identity) -> dict[str, Any]:
    """Everything the version page shows: card text, gate rules, fairness, comparison, lineage, events."""
    man = registry.manifest(version)
    version = man["version"]
    problems = registry.verify(version)
    ev = _artifact_json(registry, man, "evaluation.json", problems)
    gate = _artifact_json(registry, man, "gate.json", problems)
    lineage = man.get("lineage", {})
    cfg = lineage.get("config") or {}
    status = display_status(registry, man)
    starter = started_by(registry, version)
    signed = signoffs(registry, version)
    may_decide = status == "pending_approval" and who.may("reject")
    refusal = None
    if status == "pending_approval" and not who.may("reject"):
        refusal = f"Your role ({who.role or 'none'}) may read this version but not decide on it."
    elif may_decide and any(same_person(s.get("by"), who.user) for s in signed):
        refusal = "You have already approved this version; it needs another person's approval."
    cis = ev.get("confidence_intervals") or {}
    metrics = [
        {"name": k, "value": v, "low": (cis.get(k) or {}).get("low"), "high": (cis.get(k) or {}).get("high")}
        for k, v in (ev.get("metrics") or man.get("metrics") or {}).items()
    ]
    events = events_by_version(AuditLog(registry.store).records()).get(version, [])
    return {
        "man": man,
        "version": version,
        "status": status,
        "problems": problems,
        "card": cfg.get("card") or {},
        "metrics": metrics,
        "n_test": ev.get("n_test"),
        "gate": gate or man.get("gate", {}),
        "fairness": ev.get("fairness") or {},
        "comparison": ev.get("champion_comparison"),
        "importance": ev.get("feature_importance"),
        "lineage": lineage,
        "started_by": starter,
        "events": events,
        "decision": get_decision(registry, version),
        "signoffs": signed,
        "needed": required_approvals(gate) if gate else 1,
        "may_decide": may_decide and refusal is None,
        "may_approve": who.may("approve") and not same_person(starter, who.user),
        "is_starter": same_person(starter, who.user),
        "refusal": refusal,
        "has_card": "model_card.html" in man["artifacts"],
    }


def audit_page(registry: Registry, version: str | None, event: str | None) -> dict[str, Any]:
    """The `verify` result (of the whole chain) and this project's records, newest first, filtered."""
    log = AuditLog(registry.store)
    check = log.check()
    records = project_records(log.records(), registry)
    events = sorted({e for r in records if (e := r.get("event"))})
    shown = records
    if version:
        shown = events_by_version(records).get(version.strip(), [])
    if event:
        shown = [r for r in shown if r.get("event") == event]
    return {
        "check": check,
        "records": list(reversed(shown)),
        "total": len(records),
        "events": events,
        "versions": [m["version"] for m in reversed(registry.versions())],
        "filter_version": version or "",
        "filter_event": event or "",
    }

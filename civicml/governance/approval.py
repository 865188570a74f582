"""Human approval of a version the gate sent to `pending_approval`.

A decision (approve or reject) is bound to exactly what the approver reviewed:
the model's hash and the evaluation report's hash. Before recording it, every
stored artifact of the version is re-verified against its manifest
(`Registry.verify`), the model hash is recomputed from the stored model files,
and the evaluation report's hash is recomputed and must match the manifest and
point at the same model. Any mismatch refuses the decision.

Manifests are immutable, so the decision is stored as its own object,
`approvals/<version>.json`; a version can be decided once. Every decision and
every refusal is appended to the audit log. Deploying an approved version is
the caller's job (the CLI), because deploy backends sit beside this layer.

Separation of duties, enforced here so that the CLI and the review console obey
the same rules:

* the person who started the run that produced a version (`lineage.started_by`,
  or for older versions the actor of its `version_committed` audit record) cannot
  approve it (they may reject it);
* when the gate marked the version borderline and the policy in force at gate
  time asked for `policy.borderline_approvals` > 1, the first approvals are
  stored as sign-offs (`approvals/signoffs/<version>/<n>.json`) and the decision
  is final only when that many *different* people have approved. One rejection
  is final at once. The requirement is read from the version's own `gate.json`,
  so changing the config later cannot lower the bar for a version already made.

Race: the decision object is *created* (`Store.create`), so of two people deciding
the same version at the same instant exactly one wins; the other is refused with
the winner named, and both attempts are in the audit log. The intent is audited
before the object is written (`approval_intent`), so no decision exists without
its record; `approval_recorded` follows once it is stored.
"""

from __future__ import annotations

import json
from typing import Any

from civicml.documents import DocumentError, Evaluation, GateDecision
from civicml.governance.audit import AuditLog

# The status half of approvals, re-exported: callers import it from here.
from civicml.governance.status import (  # noqa: F401
    APPROVALS_PREFIX,
    Decision,
    HumanDecision,
    VersionStatus,
    approval_key,
    effective_status,
    get_decision,
    newest_approved,
    version_status,
)
from civicml.storage.base import StoreConflict
from civicml.storage.registry import IntegrityError, Registry, RegistryError, sha256_bytes, utcnow

SIGNOFFS_PREFIX = "approvals/signoffs/"


class ApprovalError(RegistryError):
    """An approval or rejection was refused; the message says why and what to do."""


def stored_model_hash(registry: Registry, version: str) -> str:
    """Recompute the model hash from the stored `model/*` artifacts (same recipe as `steps.model_hash`)."""
    from civicml.modeling.persistence import model_hash_from_files

    man = registry.manifest(version)
    names = sorted(n for n in man["artifacts"] if n.startswith("model/"))
    if not names:
        raise ApprovalError(f"version {version} has no stored model files; it cannot be approved")
    return model_hash_from_files({name[len("model/") :]: registry.read_artifact(version, name) for name in names})


def _check_reviewed(
    version: str, model_sha: str, eval_sha: str, expected_model: str | None, expected_evaluation: str | None
) -> None:
    """Refuse when the hashes the person reviewed are not the version's (see `check_bindings`)."""
    if expected_model is not None:
        exp = expected_model.strip().lower()
        if len(exp) < 12 or not model_sha.startswith(exp):
            raise ApprovalError(
                f"refusing: you reviewed model {exp[:16]}…, but version {version} is model {model_sha[:16]}… — "
                "re-read the model card of this version (use at least 12 hex digits of model_sha256)"
            )
    if expected_evaluation is not None and expected_evaluation.strip().lower() != eval_sha:
        raise ApprovalError(
            f"refusing: you were shown evaluation {expected_evaluation.strip()[:16]}…, but version {version} "
            f"now records {eval_sha[:16]}… — reload the page and review again"
        )


def check_bindings(
    registry: Registry,
    version: str,
    expected_model_sha256: str | None = None,
    expected_evaluation_sha256: str | None = None,
) -> dict[str, Any]:
    """Re-verify the version's artifacts and the hashes an approval is bound to.

    Args:
        registry: The registry.
        version: Version id.
        expected_model_sha256: Optional hash (or a prefix of at least 12 hex digits) the approver
            reviewed, e.g. copied from the model card.
        expected_evaluation_sha256: Optional full evaluation hash the approver was shown (the review
            console sends the one on the page it rendered).

    Returns:
        `{model_sha256, evaluation_sha256, gate}` when everything matches.

    Raises:
        ApprovalError: an artifact fails verification or a hash does not match.
    """
    man = registry.manifest(version)
    problems = registry.verify(version)
    if problems:
        raise ApprovalError(f"refusing: version {version} failed its integrity check: " + "; ".join(problems))
    model_sha = stored_model_hash(registry, version)
    if model_sha != man.get("model_sha256"):
        raise ApprovalError(
            f"refusing: the stored model of {version} hashes to {model_sha[:16]}…, but the "
            f"manifest records {str(man.get('model_sha256'))[:16]}…"
        )
    try:
        eval_bytes = registry.read_artifact(version, "evaluation.json")
    except IntegrityError as err:
        raise ApprovalError(f"refusing: {err}") from None
    eval_sha = sha256_bytes(eval_bytes)
    if eval_sha != man.get("evaluation_sha256"):
        raise ApprovalError(
            f"refusing: evaluation report of {version} hashes to {eval_sha[:16]}…, the manifest "
            f"records {str(man.get('evaluation_sha256'))[:16]}…"
        )
    try:
        evaluation = Evaluation.parse(json.loads(eval_bytes), where=f"the evaluation report of {version}")
        gate = json.loads(registry.read_artifact(version, "gate.json")) if "gate.json" in man["artifacts"] else {}
        if gate:
            GateDecision.parse(gate, where=f"the gate decision of {version}")
    except (DocumentError, json.JSONDecodeError) as err:
        raise ApprovalError(f"refusing: {err}") from None
    if evaluation.model_sha256 != model_sha:
        raise ApprovalError(
            f"refusing: the evaluation report of {version} describes model "
            f"{str(evaluation.model_sha256)[:16]}…, not the stored model {model_sha[:16]}…"
        )
    _check_reviewed(version, model_sha, eval_sha, expected_model_sha256, expected_evaluation_sha256)
    return {"model_sha256": model_sha, "evaluation_sha256": eval_sha, "gate": gate}


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two recorded identities name the same person (trimmed, case-insensitive)."""
    return bool(a and b and a.strip().casefold() == b.strip().casefold())


def started_by(registry: Registry, version: str) -> str | None:
    """Who started the run that produced `version`, or None when nothing recorded it.

    The manifest's `lineage.started_by` (recorded since the review console) wins; older
    versions fall back to the actor of their `version_committed` audit record.
    """
    recorded = registry.manifest(version).get("lineage", {}).get("started_by")
    if recorded:
        return str(recorded)
    for rec in AuditLog(registry.store).records():
        if rec.get("event") == "version_committed" and (rec.get("payload") or {}).get("version") == version:
            return rec.get("actor")
    return None


def signoffs(registry: Registry, version: str) -> list[dict[str, Any]]:
    """Approvals recorded so far for a version that needs more than one, oldest first."""
    out = []
    for key in sorted(registry.store.list_keys(f"{SIGNOFFS_PREFIX}{version}/")):
        try:
            out.append(json.loads(registry.store.get_bytes(key)))
        except (FileNotFoundError, json.JSONDecodeError):
            continue
    return sorted(out, key=lambda r: r.get("n", 0))


def required_approvals(gate: dict[str, Any]) -> int:
    """How many different people must approve, from the version's stored gate decision.

    `policy.borderline_approvals` applies only when the gate marked a rule borderline.
    """
    policy = gate.get("policy") or {}
    wanted = int(policy.get("borderline_approvals") or 1)
    return wanted if gate.get("borderline") else 1


def _create_once(registry: Registry, audit: AuditLog, key: str, record: dict[str, Any], what: str) -> str:
    """Create `record` at `key`, its intent audited first; of racing writers exactly one wins.

    Returns:
        The sha256 of the stored bytes (the audit records name it, so a forged file is caught).

    Raises:
        ApprovalError: someone else's record was created first (the refusal is audited).
    """
    data = json.dumps(record, indent=2, sort_keys=True).encode()
    sha = sha256_bytes(data)
    audit.append("approval_intent", {**record, "record_sha256": sha}, actor=record["by"])
    try:
        registry.store.create(key, data)
    except StoreConflict:
        winner = get_decision(registry, record["version"]) if key == approval_key(record["version"]) else None
        who = f" ({winner.get('decision')} by {winner.get('by')})" if winner else ""
        err = ApprovalError(
            f"refusing: {what} was recorded by someone else a moment ago{who}; their record was stored first — "
            "reload and check (a decision is final)"
        )
        audit.append(
            "approval_refused",
            {"version": record["version"], "decision": record["decision"], "by": record["by"], "error": str(err)},
            actor=record["by"],
        )
        raise err from None
    return sha


def _check_duties(registry: Registry, version: str, decision: str, by: str, earlier: list[dict[str, Any]]) -> None:
    starter = started_by(registry, version)
    if decision == "approved" and same_person(starter, by):
        raise ApprovalError(
            f"refusing: the run that produced {version} was started by {starter}, and separation of duties "
            f"means someone other than {by.strip()} must approve it (you may still reject it)"
        )
    for signed in earlier:
        if same_person(signed.get("by"), by):
            raise ApprovalError(
                f"refusing: {signed.get('by')} already approved {version} at {signed.get('at')}; this version needs "
                "approvals from different people"
            )


def _admissible(
    registry: Registry, version: str, decision: str, by: str, role: str, reason: str
) -> tuple[str, list[dict[str, Any]]]:
    """(the version id, its sign-offs so far) when this person may decide it now; else why not.

    Raises:
        ApprovalError: a bad decision or empty field, a version not pending or already decided, or
            separation of duties. RegistryError: no such version (in this project).
    """
    if decision not in ("approved", "rejected"):
        raise ApprovalError(f"decision must be 'approved' or 'rejected', got {decision!r}")
    fields = {"--by": by, "--role": role, "--reason": reason}
    empty = [k for k, v in fields.items() if not (v or "").strip()]
    if empty:
        raise ApprovalError(
            f"{', '.join(empty)} must not be empty: an approval names who decided, in what role "
            "and why (e.g. --by 'A. Jones' --role 'service owner' --reason 'fairness reviewed')"
        )
    man = registry.manifest(version)
    version = man["version"]
    status = man.get("status")
    if status != "pending_approval":
        raise ApprovalError(
            f"refusing: version {version} is not awaiting approval (its status is {status!r}; "
            "only versions the gate sent to pending_approval can be approved or rejected)"
        )
    earlier = get_decision(registry, version)
    if earlier is not None:
        raise ApprovalError(
            f"refusing: version {version} was already {earlier['decision']} by {earlier['by']} "
            f"({earlier['role']}) at {earlier['at']}; a decision is final — retrain for a new "
            "version"
        )
    signed = signoffs(registry, version)
    _check_duties(registry, version, decision, by, signed)
    return version, signed


def _store_decision(
    registry: Registry,
    audit: AuditLog,
    version: str,
    decision: str,
    by: str,
    role: str,
    reason: str,
    signed: list[dict[str, Any]],
    bound: dict[str, Any],
) -> dict[str, Any]:
    """Create the sign-off or the final decision (intent audited first) and audit it; return the record."""
    record = {
        "version": version,
        "decision": decision,
        "by": by.strip(),
        "role": role.strip(),
        "reason": reason.strip(),
        "at": utcnow(),
        "model_sha256": bound["model_sha256"],
        "evaluation_sha256": bound["evaluation_sha256"],
        "gate_decision": bound["gate"].get("decision"),
        "gate_reason": bound["gate"].get("reason"),
        "started_by": started_by(registry, version),
    }
    needed = required_approvals(bound["gate"])
    if decision == "approved" and len(signed) + 1 < needed:
        record.update(decision="signoff", n=len(signed) + 1, needed=needed)
        sha = _create_once(
            registry, audit, f"{SIGNOFFS_PREFIX}{version}/{record['n']:03d}.json", record, "this sign-off"
        )
        entry = audit.append("approval_signoff", {**record, "record_sha256": sha}, actor=record["by"])
        record["audit_hash"] = entry["hash"]
        return record
    if decision == "approved" and needed > 1:
        record["approvers"] = [*({k: s[k] for k in ("by", "role", "reason", "at")} for s in signed)]
        record["approvers"].append({k: record[k] for k in ("by", "role", "reason", "at")})
    sha = _create_once(registry, audit, approval_key(version), record, "a decision on this version")
    entry = audit.append("approval_recorded", {**record, "record_sha256": sha}, actor=record["by"])
    record["audit_hash"] = entry["hash"]
    return record


def record_decision(
    registry: Registry,
    version: str,
    decision: Decision,
    by: str,
    role: str,
    reason: str,
    expected_model_sha256: str | None = None,
    expected_evaluation_sha256: str | None = None,
) -> dict[str, Any]:
    """Record a human approval or rejection of a pending version, bound to its hashes; audited.

    Args:
        registry: The registry.
        version: Version id awaiting approval.
        decision: `approved` or `rejected`.
        by: Name of the person deciding.
        role: Their role (e.g. "service owner").
        reason: Why — shown in the model's history and the audit log.
        expected_model_sha256: Optional hash prefix the person reviewed (see `check_bindings`).
        expected_evaluation_sha256: Optional evaluation hash the person was shown (see `check_bindings`).

    Returns:
        The stored record: the final decision, or a sign-off (`decision: "signoff"`, with
        `needed` and `have`) when the version needs approvals from more people.

    Raises:
        ApprovalError: the version is not pending, was already decided, fails verification,
            a field is empty, or separation of duties forbids this person. The refusal is audited.
        RegistryError: the version does not exist (also audited).
    """
    audit = AuditLog(registry.store)
    try:
        version, signed = _admissible(registry, version, decision, by, role, reason)
        bound = check_bindings(registry, version, expected_model_sha256, expected_evaluation_sha256)
    except RegistryError as err:  # includes ApprovalError and unknown versions
        audit.append(
            "approval_refused",
            {"version": version, "decision": decision, "by": by, "role": role, "error": str(err)},
            actor=by or None,
        )
        raise
    return _store_decision(registry, audit, version, decision, by, role, reason, signed, bound)

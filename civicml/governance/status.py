"""The effective status of a version: the gate's decision, then any human decision bound to its hashes.

One function (`version_status`) answers "may this version serve anyone?" for `deploy`, `models
list/show`, the model card, the review console and the server. The human decision is read from
`approvals/<version>.json`, which `civicml.governance.approval` writes.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from civicml.storage.registry import Registry

APPROVALS_PREFIX = "approvals/"
Decision = Literal["approved", "rejected"]


def approval_key(version: str) -> str:
    """Object key of a version's approval record."""
    return f"{APPROVALS_PREFIX}{version}.json"


def get_decision(registry: Registry, version: str) -> dict[str, Any] | None:
    """The recorded human decision for `version`, or None."""
    try:
        return json.loads(registry.store.get_bytes(approval_key(version)))
    except FileNotFoundError:
        return None


class HumanDecision(BaseModel):
    """A recorded approval or rejection, as shown wherever a version's status is shown."""

    decision: Decision
    by: str
    role: str
    reason: str
    at: str
    model_sha256: str | None = None
    evaluation_sha256: str | None = None


class VersionStatus(BaseModel):
    """The effective status of a version: the one answer to "may this version serve anyone?".

    `status` is `approved`, `rejected` or `pending_approval` (`unknown` for a manifest without a
    gate). It combines the gate decision frozen in the manifest with the human decision recorded
    afterwards. A human decision counts only when it is bound to the hashes the manifest records;
    otherwise it is ignored and `problem` says why.
    """

    version: str
    status: str
    recorded_status: str | None = None
    gate_decision: str | None = None
    gate_reason: str | None = None
    decided_by: Literal["gate", "person"] | None = None
    human: HumanDecision | None = None
    problem: str | None = None

    def describe(self) -> str:
        """One line for people: the status and who decided it, when and why."""
        if self.human is not None and self.problem is None:
            h = self.human
            return (
                f"{self.status} by {h.by} ({h.role}) at {h.at}: {h.reason} "
                f"[model {str(h.model_sha256)[:16]}…, evaluation {str(h.evaluation_sha256)[:16]}…]"
            )
        if self.decided_by == "gate":
            return f"{self.status} by the gate: {self.gate_reason or ''}".rstrip(": ")
        text = f"{self.status}: {self.gate_reason or ''}".rstrip(": ")
        return f"{text} ({self.problem})" if self.problem else text


_GATE_STATUS = {"deploy": "approved", "reject": "rejected", "pending_approval": "pending_approval"}


def version_status(registry: Registry, version: str | dict[str, Any]) -> VersionStatus:
    """The effective status of a version (gate decision, then any bound human decision).

    Args:
        registry: The registry.
        version: Version id, alias, or an already-read manifest (saves a read when listing).

    Returns:
        The `VersionStatus`. `deploy`, `models list/show`, the model card, the review console and
        the server all decide from this one function.
    """
    man = version if isinstance(version, dict) else registry.manifest(version)
    gate = man.get("gate") or {}
    recorded = man.get("status")
    gate_status = _GATE_STATUS.get(gate.get("decision", ""), recorded or "unknown")
    out = VersionStatus(
        version=man["version"],
        status=gate_status,
        recorded_status=recorded,
        gate_decision=gate.get("decision"),
        gate_reason=gate.get("reason"),
        decided_by="gate" if gate_status in ("approved", "rejected") else None,
    )
    raw = get_decision(registry, man["version"])
    if raw is None:
        return out
    human = HumanDecision.model_validate({k: raw.get(k) for k in HumanDecision.model_fields})
    if gate_status != "pending_approval":
        return out.model_copy(
            update={"human": human, "problem": f"a {human.decision} record exists but the gate decided {gate_status}"}
        )
    if human.model_sha256 != man.get("model_sha256") or human.evaluation_sha256 != man.get("evaluation_sha256"):
        return out.model_copy(
            update={
                "human": human,
                "problem": "the recorded decision is bound to other hashes than this version's; it does not count",
            }
        )
    return out.model_copy(update={"status": human.decision, "decided_by": "person", "human": human})


def effective_status(registry: Registry, version: str) -> str:
    """The version's status after any human decision: `approved`, `rejected` or `pending_approval`."""
    return version_status(registry, version).status


def newest_approved(registry: Registry) -> str | None:
    """The newest version whose effective status is `approved` (the default for `civicml deploy`)."""
    approved = [m["version"] for m in registry.versions() if version_status(registry, m).status == "approved"]
    return approved[-1] if approved else None

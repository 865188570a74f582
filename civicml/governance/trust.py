"""Check a version's decisive facts against the audit chain before anything loads or deploys it.

A manifest is a file in the store; anyone who can write the store can edit it. The
facts that decide whether a model serves (its status, model hash, metrics, and a human
decision) are therefore checked against what the audit log recorded when they were
made: the commit record holds the sha256 of the exact manifest bytes (which covers
status and metrics) and its model hash; the decision record holds the sha256 of the
stored approval. With a signing key the chain and the manifest's own signature cannot
be rewritten to match (see docs/audit.md).
"""

from __future__ import annotations

import json
from typing import Any

from civicml.governance.audit import AuditLog
from civicml.governance.signing import trusted_key
from civicml.storage.registry import Registry, RegistryError, manifest_signing_bytes, sha256_bytes

COMMIT_EVENTS = ("version_commit_intent", "version_committed")
DECISION_EVENTS = ("approval_intent", "approval_recorded")


class TrustError(RegistryError):
    """A version's manifest or decision disagrees with the audit chain; it must not be loaded or deployed."""


def commit_version(
    registry: Registry, version: str, artifacts: dict[str, Any], meta: dict[str, Any], audit: AuditLog | None = None
) -> dict[str, Any]:
    """Commit a version with its evidence: the intent (with the manifest's sha256) is audited first.

    The one way a version is made (the pipeline's register step calls it): a kill between the
    intent and the manifest leaves a record and no version, never a version without a record.

    Raises:
        RegistryError: the version exists already (of two racing commits exactly one wins).
    """
    audit = audit or AuditLog(registry.store)
    facts = {"version": version, "model_sha256": meta.get("model_sha256"), "status": meta.get("status")}
    if "gate" in meta:
        facts["gate"] = meta["gate"]

    def record_intent(_: dict[str, Any], manifest_sha256: str) -> None:
        facts["manifest_sha256"] = manifest_sha256
        audit.append("version_commit_intent", facts)

    manifest = registry.commit(version, artifacts, meta, signer=audit.signer, before=record_intent)
    audit.append("version_committed", facts)
    return manifest


def _for_version(records: list[dict[str, Any]], events: tuple[str, ...], version: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") in events and (r.get("payload") or {}).get("version") == version]


def check_version(registry: Registry, version: str, audit: AuditLog | None = None, chain: bool = False) -> dict:
    """The version's manifest, after checking it (and any human decision) against the audit log.

    Args:
        registry: The registry.
        version: Version id.
        audit: The audit log (default: the store's, read-only).
        chain: Also verify the whole chain first (deploys do; loading a model only looks records up).

    Raises:
        TrustError: no commit record, the manifest bytes or its model hash/status differ from the
            record, its signature does not verify, or a stored decision has no matching record.
    """
    audit = audit or AuditLog(registry.store, signer=None)
    man = registry.manifest(version)
    version = man["version"]
    records = None
    if chain:
        result = audit.check()
        if not result["ok"]:
            raise TrustError(f"refusing {version}: the audit log does not verify: {result['message']}")
        records = audit.last_checked_records
    records = records if records is not None else audit.records()
    commits = _for_version(records, COMMIT_EVENTS, version)
    if not commits:
        raise TrustError(
            f"refusing {version}: the audit log has no commit record for it — its manifest was not written by a "
            "civicml run (or the log was cut); retrain to get a version with evidence"
        )
    raw = registry.store.get_bytes(f"versions/{version}/manifest.json")
    recorded = next((c["payload"]["manifest_sha256"] for c in commits if c["payload"].get("manifest_sha256")), None)
    if recorded is not None and recorded != sha256_bytes(raw):
        raise TrustError(
            f"refusing {version}: its manifest was changed after commit (the audit log records manifest sha256 "
            f"{recorded[:16]}…, the store holds {sha256_bytes(raw)[:16]}…); status, metrics or hashes may have been "
            "edited — restore the manifest or retrain"
        )
    facts = commits[-1]["payload"]
    for field in ("model_sha256", "status"):
        if facts.get(field) is not None and man.get(field) != facts[field]:
            raise TrustError(
                f"refusing {version}: manifest {field} is {man.get(field)!r} but the audit log recorded "
                f"{facts[field]!r} at commit — the manifest was edited"
            )
    _check_signature(audit, man)
    _check_decision(registry, records, version)
    return man


def _check_signature(audit: AuditLog, man: dict[str, Any]) -> None:
    sig = man.get("signature")
    if sig is None:
        return  # anchored by the commit record's manifest hash (and that record's signature)
    keys, _ = audit.trusted_keys()
    key = trusted_key(keys, sig)
    if key is None or not isinstance(sig, dict) or not key.verify(manifest_signing_bytes(man), sig.get("value", "")):
        raise TrustError(f"refusing {man['version']}: its manifest signature does not verify — it was forged or edited")


def _check_decision(registry: Registry, records: list[dict[str, Any]], version: str) -> None:
    from civicml.governance.approval import approval_key

    try:
        raw = registry.store.get_bytes(approval_key(version))
    except FileNotFoundError:
        return
    stored = json.loads(raw)
    for rec in _for_version(records, DECISION_EVENTS, version):
        p = rec["payload"]
        if p.get("record_sha256") == sha256_bytes(raw) or (
            "record_sha256" not in p
            and p.get("decision") == stored.get("decision")
            and p.get("model_sha256") == stored.get("model_sha256")
        ):
            return
    raise TrustError(
        f"refusing {version}: its stored decision ({stored.get('decision')!r} by {stored.get('by')!r}) has no matching "
        "record in the audit log — the approval was forged or edited"
    )


def audit_mismatches(registry: Registry, manifests: list[dict[str, Any]]) -> dict[str, str]:
    """Versions whose manifest model hash differs from the one the audit log recorded at commit."""
    committed = {
        r["payload"].get("version"): r["payload"].get("model_sha256")
        for r in AuditLog(registry.store).records()
        if r.get("event") == "version_committed"
    }
    out = {}
    for man in manifests:
        recorded = committed.get(man["version"])
        if recorded and recorded != man.get("model_sha256"):
            out[man["version"]] = (
                f"manifest of version {man['version']}: model_sha256 {str(man.get('model_sha256'))[:16]}… differs "
                f"from the audit log's commit record {recorded[:16]}…; the manifest was edited after commit"
            )
    return out

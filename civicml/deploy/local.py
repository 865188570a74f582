"""Local deploy backend: promote a version to a registry alias; `civicml serve` serves it."""

from __future__ import annotations

from typing import Any

from civicml.governance.audit import AuditLog
from civicml.storage.registry import Registry, RegistryError


def promote(
    registry: Registry, version: str, alias: str = "champion", by: str = "pipeline", reason: str = ""
) -> dict[str, Any]:
    """Point `alias` at `version` after verifying every artifact; audited.

    Raises:
        RegistryError: the version does not exist or an artifact fails its integrity check.
    """
    problems = registry.verify(version)
    if problems:
        raise RegistryError(f"refusing to promote {version}: " + "; ".join(problems))
    move = registry.set_alias(alias, version, by=by, reason=reason)
    AuditLog(registry.store).append("alias_moved", {"alias": alias, **move}, actor=by)
    return {"target": "local", "alias": alias, "version": version, "previous": move["from"]}

"""Views of the store's one audit chain by version and by project.

The chain is one per store (one hash chain, verified whole). A record names the versions it is
about (`version`, an alias move's `from`/`to`, an A/B test's `champion`/`challenger`, `versions`)
and, since projects were separated, its `project`; a project's view is the records about its own
versions plus the store's own records (those about no version, e.g. `audit_migrated`). Records
about another project's versions are not shown.
"""

from __future__ import annotations

from typing import Any

from civicml.storage.registry import Registry

VERSION_KEYS = ("version", "to", "from", "champion", "challenger")


def versions_named(record: dict[str, Any]) -> list[str]:
    """The version ids a record is about, in payload order."""
    payload = record.get("payload") or {}
    found = [payload.get(k) for k in VERSION_KEYS]
    listed = payload.get("versions")
    if isinstance(listed, list):
        found += listed
    return list(dict.fromkeys(v for v in found if isinstance(v, str) and v))


def events_by_version(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """`{version: [records about it]}`, each list oldest first."""
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        for v in versions_named(rec):
            out.setdefault(v, []).append(rec)
    return out


def version_projects(registry: Registry) -> dict[str, str | None]:
    """`{version: project}` for every committed version in the store (whatever the view's project)."""
    return {m["version"]: m.get("name") for m in registry.for_project(None).versions()}


def record_projects(record: dict[str, Any], projects: dict[str, str | None]) -> set[str]:
    """The projects a record is about: its `project`, and the projects of the versions it names."""
    payload = record.get("payload") or {}
    named = {payload["project"]} if isinstance(payload.get("project"), str) else set()
    return named | {p for v in versions_named(record) if isinstance(p := projects.get(v), str)}


def project_records(
    records: list[dict[str, Any]], registry: Registry, project: str | None = None
) -> list[dict[str, Any]]:
    """The records `project` (default: the registry's) may see: its own and the store's; all when None."""
    project = registry.project if project is None else project
    if project is None:
        return list(records)
    projects = version_projects(registry)
    return [r for r in records if (owners := record_projects(r, projects)) == set() or project in owners]

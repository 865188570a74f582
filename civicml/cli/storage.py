"""`civicml models ...`: the model registry (list, show, card, diff, verify, gc)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table

from civicml.cli.common import (
    ConfigOpt,
    JsonOpt,
    StoreOpt,
    console,
    err_console,
    friendly_errors,
    load_cfg,
    open_registry,
    print_table,
    registry_command,
)

models_app = typer.Typer(
    name="models",
    help="Model registry: list, show, diff, verify and clean up model versions.",
    no_args_is_help=True,
)

VersionArg = typer.Argument(..., help="Version id, or the alias champion/challenger.")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `6h`, `2d`, `1w` or plain seconds -> seconds.

    Raises:
        ValueError: naming the bad value and the accepted forms.
    """
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"--older-than {text!r} is not a duration; use e.g. 30m, 6h, 2d or 0 for everything")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _print_json(obj: Any) -> None:
    # Plain stdout (not rich) so the output is machine-readable as is.
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _aliases_by_version(registry) -> dict[str, list[str]]:
    """`{version: [alias, ...]}` of the view's project, or of every project in a store-wide view."""
    from civicml.storage.registry import ALIASES

    views = [registry] if registry.project else [registry.for_project(p) for p in registry.projects()]
    out: dict[str, list[str]] = {}
    for view in views or [registry]:
        for alias in ALIASES:
            target = view.get_alias(alias)
            if target:
                out.setdefault(target, []).append(alias)
    return out


def _fmt(value: Any) -> str:
    from civicml.reporting.numbers import number

    return number(value)


@models_app.command("list")
@friendly_errors
@registry_command
def list_cmd(registry, as_json: bool = False) -> None:
    """List committed model versions, oldest first, with status, key metrics and aliases."""
    from civicml.governance.approval import version_status

    good, damaged = registry.scan_versions()
    # The manifest is immutable; a human approval or rejection recorded later changes the status.
    statuses = {m["version"]: version_status(registry, m) for m in good}
    versions = [{**m, "status": statuses[m["version"]].status} for m in good]
    if damaged:
        # One damaged manifest hides nothing else: it is listed as damaged, in version order.
        bad_rows = [{"version": d["version"], "status": "damaged", "problem": d["problem"]} for d in damaged]
        versions = sorted(versions + bad_rows, key=lambda m: m["version"])
        for d in damaged:
            err_console.print(f"[bold red]damaged[/] {d['version']}: {d['problem']}", highlight=False, soft_wrap=True)
    aliases = _aliases_by_version(registry)
    if as_json:
        _print_json([_list_entry(m, statuses, aliases) for m in versions])
    elif not versions:
        console.print(f"no model versions in {registry.describe()} yet; run `civicml run` to train one")
    else:
        _print_versions(registry, versions, aliases)


def _list_entry(m: dict[str, Any], statuses: dict[str, Any], aliases: dict[str, list[str]]) -> dict[str, Any]:
    """One version of `models list --json` (a damaged one has `problem` and no decision)."""
    return {
        "version": m["version"],
        "created_at": m.get("created_at"),
        "name": m.get("name"),
        "family": m.get("family"),
        "status": m.get("status"),
        "decision": (statuses[m["version"]].model_dump(exclude={"version"}) if m["version"] in statuses else None),
        "problem": m.get("problem"),
        "aliases": aliases.get(m["version"], []),
        "model_sha256": m.get("model_sha256"),
        "metrics": m.get("metrics", {}),
    }


def _print_versions(registry, versions: list[dict[str, Any]], aliases: dict[str, list[str]]) -> None:
    """The `models list` table: version, project (store-wide view), created, status, metrics, aliases."""
    metric_names = [k for k in ("roc_auc", "rmse") if any(k in m.get("metrics", {}) for m in versions)]
    table = Table(title=f"model versions of {registry.describe()}", box=box.SIMPLE_HEAD)
    # Version ids are what users copy into other commands: never truncate them.
    table.add_column("version", no_wrap=True, min_width=max(len(m["version"]) for m in versions))
    # A store-wide view mixes projects: say whose each version (and each alias) is.
    by_project = registry.project is None
    if by_project:
        table.add_column("project", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    for col in ("status", *metric_names, "aliases"):
        table.add_column(col, no_wrap=True)
    for m in versions:
        table.add_row(
            m["version"],
            *([str(m.get("name") or "-")] if by_project else []),
            m.get("created_at", "")[:16].replace("T", " "),
            m.get("status", ""),
            *[_fmt(m.get("metrics", {}).get(k)) for k in metric_names],
            ", ".join(aliases.get(m["version"], [])),
        )
    print_table(table)


@models_app.command("show")
@friendly_errors
@registry_command
def show_cmd(registry, version: str = VersionArg, as_json: bool = False) -> None:
    """Show one version: lineage, metrics, gate decision, artifacts and alias moves."""
    from civicml.governance.approval import version_status

    man = registry.manifest(version)
    # The manifest is immutable; a human approval or rejection recorded later changes the status.
    status = version_status(registry, man)
    man = {
        **man,
        "recorded_status": man.get("status"),
        "status": status.status,
        "decision": status.model_dump(exclude={"version"}),
    }
    if as_json:
        _print_json(man)
        return
    v = man["version"]
    aliases = _aliases_by_version(registry).get(v, [])
    console.print(
        f"[bold]{v}[/]  {man.get('name', '')}  {man.get('family', '')}  status={man.get('status')}"
        + (f"  aliases={','.join(aliases)}" if aliases else ""),
        highlight=False,
    )
    console.print(f"created {man.get('created_at')}  model sha256 {man.get('model_sha256')}", highlight=False)
    gate = man.get("gate", {})
    console.print(f"gate: {gate.get('decision')} — {gate.get('reason', '')}", highlight=False)
    console.print(f"decision: {status.describe()}", highlight=False, soft_wrap=True)
    _print_version_tables(man)
    _print_alias_moves(registry, v)


def _print_version_tables(man: dict[str, Any]) -> None:
    """`models show`'s metrics, lineage and artifacts tables."""
    lin = man.get("lineage", {})
    metrics = Table(title="metrics (test split)")
    metrics.add_column("metric")
    metrics.add_column("value")
    for k, val in sorted(man.get("metrics", {}).items()):
        if not isinstance(val, (dict, list)):
            metrics.add_row(k, _fmt(val))
    console.print(metrics)
    lineage = Table(title="lineage")
    lineage.add_column("input")
    lineage.add_column("recorded")
    for key in ("data_source", "data_fingerprint", "rows", "seeds", "n_threads", "code_revision", "image"):
        lineage.add_row(key, json.dumps(lin.get(key)) if isinstance(lin.get(key), dict) else _fmt(lin.get(key)))
    libs = lin.get("libraries", {})
    lineage.add_row("libraries", ", ".join(f"{k} {val}" for k, val in sorted(libs.items())))
    console.print(lineage)
    arts = Table(title="artifacts")
    for col in ("name", "bytes", "sha256"):
        arts.add_column(col)
    for name, entry in sorted(man["artifacts"].items()):
        arts.add_row(name, str(entry.get("size", "")), entry["sha256"][:16])
    console.print(arts)


def _print_alias_moves(registry, v: str) -> None:
    """Every move of an alias to or from version `v`, alias by alias, oldest first."""
    from civicml.storage.registry import ALIASES

    for alias in ALIASES:
        moves = [mv for mv in registry.alias_history(alias) if v in (mv.get("from"), mv.get("to"))]
        for mv in moves:
            console.print(
                f"{alias}: {mv['from'] or '-'} -> {mv['to'] or '-'} by {mv['by']} at {mv['at']}"
                f" ({mv.get('reason', '')})",
                highlight=False,
            )


@models_app.command("card")
@friendly_errors
@registry_command
def card_cmd(
    registry,
    version: str = VersionArg,
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the HTML card here (default: print Markdown)."),
) -> None:
    """The model card with the current decision (a human approval or rejection recorded after commit)."""
    from civicml import steps

    page, md = steps.current_card(registry, version)
    if out is None:
        sys.stdout.write(md)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    console.print(f"model card written to {out}", highlight=False, soft_wrap=True)


@models_app.command("diff")
@friendly_errors
@registry_command
def diff_cmd(
    registry,
    a: str = typer.Argument(..., help="First version (or alias)."),
    b: str = typer.Argument(..., help="Second version (or alias)."),
    as_json: bool = False,
) -> None:
    """What differs between two versions: metrics, data, config, code, libraries, artifacts."""
    from civicml.storage.registry import diff_manifests

    diff = diff_manifests(registry.manifest(a), registry.manifest(b))
    if as_json:
        _print_json(diff)
        return
    console.print(f"[bold]{diff['a']}[/] vs [bold]{diff['b']}[/]", highlight=False)
    empty = True
    for section in ("summary", "metrics", "lineage", "config", "artifacts"):
        rows = diff[section]
        if not rows:
            continue
        empty = False
        table = Table(title=section)
        for col in ("key", diff["a"], diff["b"], *(["delta"] if section == "metrics" else [])):
            table.add_column(col)
        for row in rows:
            cells = [row["key"], _fmt(row["a"]), _fmt(row["b"])]
            if section == "metrics":
                cells.append(_fmt(row.get("delta")))
            table.add_row(*cells)
        console.print(table)
    if empty:
        console.print("no differences")


@models_app.command("verify")
@friendly_errors
@registry_command
def verify_cmd(
    registry,
    version: str | None = typer.Argument(None, help="One version (or alias); all versions when omitted."),
    as_json: bool = False,
) -> None:
    """Check every artifact's sha256 against its manifest; exit 1 on any mismatch."""
    from civicml.governance.trust import audit_mismatches

    if version:
        manifests, damaged = [registry.manifest(version)], []
    else:
        manifests, damaged = registry.scan_versions()
    audit = audit_mismatches(registry, manifests)
    results = [{"version": d["version"], "artifacts": 0, "problems": [d["problem"]]} for d in damaged]
    for man in manifests:
        problems = registry.verify(man["version"])
        if man["version"] in audit:
            problems.append(audit[man["version"]])
        results.append({"version": man["version"], "artifacts": len(man["artifacts"]), "problems": problems})
    results.sort(key=lambda r: r["version"])
    bad = [r for r in results if r["problems"]]
    if as_json:
        _print_json({"ok": not bad, "versions": results})
    else:
        for r in results:
            if r["problems"]:
                err_console.print(f"[bold red]FAIL[/] {r['version']}", highlight=False)
                for p in r["problems"]:
                    err_console.print(f"  - {p}", highlight=False, soft_wrap=True)
            else:
                console.print(f"[green]ok[/]   {r['version']} ({r['artifacts']} artifacts)", highlight=False)
        if not results:
            console.print(f"no model versions in {registry.store.describe()}")
        elif bad:
            err_console.print(f"{len(bad)} of {len(results)} version(s) failed verification", highlight=False)
        else:
            console.print(f"all {len(results)} version(s) verified")
    if bad:
        raise typer.Exit(1)


@models_app.command("gc")
@friendly_errors
def gc_cmd(
    older_than: str = typer.Option(
        "1h", "--older-than", help="Only staging data untouched this long (30m, 6h, 2d; 0 = all)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed; remove nothing."),
    config: Path | None = ConfigOpt,
    store: str | None = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Remove staging data of runs that never committed (failed or killed runs)."""
    seconds = parse_duration(older_than)
    registry = open_registry(config, store)
    if dry_run:
        found = registry.abandoned_staging(seconds)
    else:
        found = registry.gc_staging(seconds)
        if found:
            from civicml.governance.audit import AuditLog

            AuditLog(registry.store).append("staging_removed", {"versions": found, "older_than_seconds": seconds})
    runs = _prune_runs(registry, load_cfg(config).storage.runs_keep, dry_run)
    if as_json:
        _print_json({"dry_run": dry_run, "versions": found, "runs": runs})
        return
    verb = "would remove" if dry_run else "removed"
    if runs:
        console.print(f"{verb} {len(runs)} old run folder(s) beyond storage.runs_keep", highlight=False)
    if found:
        console.print(f"{verb} abandoned staging data of {len(found)} run(s): {', '.join(found)}", highlight=False)
    else:
        console.print(f"no abandoned staging data older than {older_than}")


def _prune_runs(registry, keep: int, dry_run: bool) -> list[str]:
    """Run folders under a local store's `runs/` beyond `storage.runs_keep` (removed unless `dry_run`)."""
    from civicml.orchestration.local import prune_runs

    root = registry.store.local_path("runs")
    if root is None or not root.is_dir():
        return []
    if dry_run:
        runs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: (p.stat().st_mtime, p.name))
        return [p.name for p in runs[: max(len(runs) - keep, 0)]]
    return prune_runs(root, keep)


def register(app: typer.Typer) -> None:
    """Add `models ...` to `app`."""
    app.add_typer(models_app, name="models")

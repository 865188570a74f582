"""`civicml approve|reject VERSION` (human decisions) and `civicml audit show|verify`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from civicml.cli.common import ProjectOpt, console, err_console, friendly_errors, load_cfg, open_registry, print_table

if TYPE_CHECKING:
    from civicml.governance.approval import Decision

audit_app = typer.Typer(name="audit", help="The hash-chained audit log: show it, verify it.", no_args_is_help=True)

ConfigOpt = typer.Option(None, "--config", "-c", help="Config file (default: ./civicml.yaml when present).")
StoreOpt = typer.Option(
    None, "--store", help="Store URI (a directory or s3://bucket/prefix); wins over storage.uri and CIVICML_STORE_URI."
)


def _cfg_and_registry(config: Path | None, store: str | None, project: str | None = None):
    """The config and the registry of its project (`open_registry`: --project, else the config's name)."""
    cfg = load_cfg(config)
    return cfg, open_registry(config, store, project, cfg=cfg)


def _decide(
    decision: Decision,
    version: str,
    by: str,
    role: str,
    reason: str,
    model_sha256: str | None,
    config: Path | None,
    store: str | None,
    no_deploy: bool,
    project: str | None = None,
) -> None:
    from civicml.governance.approval import record_decision

    cfg, registry = _cfg_and_registry(config, store, project)
    record = record_decision(registry, version, decision, by, role, reason, expected_model_sha256=model_sha256)
    if record["decision"] == "signoff":
        console.print(
            f"[bold]{record['version']}[/] approval {record['n']} of {record['needed']} approvals recorded "
            f"for {record['by']} ({record['role']}); the gate marked it borderline, so "
            f"{record['needed'] - record['n']} more person(s) must approve before it can be deployed",
            highlight=False,
        )
        return
    console.print(
        f"[bold]{record['version']}[/] {decision} by {record['by']} ({record['role']}); bound to model "
        f"{record['model_sha256'][:16]}… and evaluation {record['evaluation_sha256'][:16]}…",
        highlight=False,
    )
    if decision != "approved" or no_deploy:
        return
    # The configured backend decides (rollout on a cluster, challenger alias + traffic share locally);
    # the champion must still be the one this version was compared with.
    from civicml import steps

    result = steps.deploy(
        cfg,
        record["version"],
        by=record["by"],
        reason=f"approved by {record['by']} ({record['role']}): {record['reason']}",
        registry=registry,
    )
    console.print(f"deployed: {json.dumps(result, default=str)}", highlight=False)


def approve(
    version: str = typer.Argument(..., help="Version id awaiting approval (see `civicml models list`)."),
    by: str = typer.Option(..., "--by", help="Your name."),
    role: str = typer.Option(..., "--role", help="Your role, e.g. 'service owner'."),
    reason: str = typer.Option(..., "--reason", help="Why you approve (recorded in the audit log)."),
    model_sha256: str | None = typer.Option(
        None, "--model-sha256", help="Model hash you reviewed (>= 12 hex digits, from the model card); must match."
    ),
    no_deploy: bool = typer.Option(False, "--no-deploy", help="Record the approval only; deploy later."),
    config: Path | None = ConfigOpt,
    store: str | None = StoreOpt,
    project: str | None = ProjectOpt,
) -> None:
    """Approve a pending version, bound to its model and evaluation hashes, then deploy it."""
    friendly_errors(_decide)("approved", version, by, role, reason, model_sha256, config, store, no_deploy, project)


def reject(
    version: str = typer.Argument(..., help="Version id awaiting approval."),
    by: str = typer.Option(..., "--by", help="Your name."),
    role: str = typer.Option(..., "--role", help="Your role."),
    reason: str = typer.Option(..., "--reason", help="Why you reject (recorded in the audit log)."),
    model_sha256: str | None = typer.Option(None, "--model-sha256", help="Model hash you reviewed; must match."),
    config: Path | None = ConfigOpt,
    store: str | None = StoreOpt,
    project: str | None = ProjectOpt,
) -> None:
    """Reject a pending version (it will never be deployed)."""
    friendly_errors(_decide)("rejected", version, by, role, reason, model_sha256, config, store, True, project)


def _summary(payload: dict[str, Any], width: int = 400) -> str:
    keys = ("version", "decision", "status", "alias", "to", "by", "reason", "error")
    parts = [f"{k}={payload[k]}" for k in keys if k in payload and not isinstance(payload[k], dict)]
    text = ", ".join(parts) or json.dumps(payload, default=str)
    # The table wraps long cells; only a payload without summary keys (a whole JSON document) is shortened.
    return text if len(text) <= width else text[: width - 1] + "…"


@audit_app.command("show")
@friendly_errors
def audit_show(
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON lines."),
    limit: int = typer.Option(20, "--limit", "-n", min=0, help="Show the last N records (0 = all)."),
    config: Path | None = ConfigOpt,
    store: str | None = StoreOpt,
    project: str | None = ProjectOpt,
    all_projects: bool = typer.Option(False, "--all-projects", help="Every project's records (the whole chain)."),
) -> None:
    """Show the latest audit records of the project (who did what, when); `verify` checks the whole chain."""
    from civicml.governance.audit import AuditLog
    from civicml.governance.audit_views import project_records

    _, registry = _cfg_and_registry(config, store, project)
    registry = registry.for_project(None) if all_projects else registry
    records = project_records(AuditLog(registry.store).records(), registry)
    shown = records[-limit:] if limit else records
    if as_json:
        for r in shown:
            sys.stdout.write(json.dumps(r, sort_keys=True, default=str) + "\n")
        return
    table = Table(title=f"audit log of {registry.describe()} ({len(shown)} of {len(records)} records)")
    for col in ("seq", "at", "event", "actor", "details"):
        table.add_column(col)
    for r in shown:
        table.add_row(
            str(r.get("seq")),
            str(r.get("at")),
            str(r.get("event")),
            str(r.get("actor")),
            _summary(r.get("payload") or {}),
        )
    print_table(table)


@audit_app.command("verify")
@friendly_errors
def audit_verify(config: Path | None = ConfigOpt, store: str | None = StoreOpt) -> None:
    """Check the hash chain; exit 1 naming the first bad record when any was edited, deleted, inserted or moved."""
    from civicml.governance.audit import AuditLog

    cfg, registry = _cfg_and_registry(config, store)
    result = AuditLog(registry.store, pinned_keys=cfg.audit.public_keys).check()
    if not result["ok"]:
        err_console.print(f"[bold red]audit log TAMPERED:[/] {result['message']}", highlight=False, soft_wrap=True)
        sys.exit(1)
    console.print(f"[green]OK[/] {result['message']}", highlight=False, soft_wrap=True)
    if result["head_hash"]:
        keep = "head hash (keep a copy elsewhere to detect a full rewrite)"
        console.print(f"{keep}: {result['head_hash']}", highlight=False, soft_wrap=True)


@audit_app.command("migrate")
@friendly_errors
def audit_migrate(config: Path | None = ConfigOpt, store: str | None = StoreOpt) -> None:
    """Move the old single-file audit log into one object per record (once; the migration is audited)."""
    from civicml.governance.audit import AuditLog, migrate_legacy

    _, registry = _cfg_and_registry(config, store)
    record = migrate_legacy(AuditLog(registry.store))
    p = record["payload"]
    console.print(
        f"migrated {p['legacy_records']} records (old head {str(p['legacy_head'])[:16]}…); the old file is kept "
        f"at {p['archived_at']}; recorded as seq {record['seq']}",
        highlight=False,
    )


@audit_app.command("keygen")
@friendly_errors
def audit_keygen(
    out: Path = typer.Option(..., "--out", help="Where to write the private key (PEM); put it in a Kubernetes Secret."),
) -> None:
    """Create an Ed25519 signing key: the private key goes to --out, the public key to pin is printed."""
    import os

    from civicml.governance.signing import generate_ed25519

    if out.exists():
        raise typer.BadParameter(f"{out} exists; refusing to overwrite a signing key", param_hint="--out")
    pem, public = generate_ed25519()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(pem)
    console.print(f"private key written to {out} (mode 0600). Create the Secret with:", highlight=False)
    console.print(
        f"  kubectl create secret generic civicml-audit-signing-key --from-file=signing-key.pem={out}",
        highlight=False,
        soft_wrap=True,
    )
    console.print("and pin the public key in civicml.yaml (keep old keys listed after a rotation):")
    sys.stdout.write(f"audit:\n  public_keys:\n    - {public}\n")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.add_typer(audit_app, name="audit")

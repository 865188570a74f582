"""`civicml review` (the reviewer console) and `civicml transparency VERSION` (the ATRS record)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from civicml.cli.common import ConfigOpt, StoreOpt, console, err_console, friendly_errors, load_cfg

TOKEN_ENV = "CIVICML_REVIEW_TOKEN"
SECRET_ENV = "CIVICML_REVIEW_SECRET"


def _registry(cfg, store: str | None):
    """The config's project in the store: a console (and a record) shows one project, never another's."""
    from civicml.storage.registry import Registry
    from civicml.storage.store import open_store

    return Registry(open_store(store, explicit=True) if store else open_store(cfg.storage.uri), project=cfg.name)


@friendly_errors
def review(
    port: int = typer.Option(8090, "--port", "-p", min=1, max=65535, help="TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 in a container)."),
    config: Path | None = ConfigOpt,
    store: str | None = StoreOpt,
) -> None:
    """Open the reviewer console: versions, evidence, approvals and the audit log in a browser.

    Locally people sign in with their name and the token printed here (or CIVICML_REVIEW_TOKEN).
    Behind the Kubeflow gateway (review.behind_gateway: true) the gateway's user header names them.
    """
    import uvicorn

    from civicml.review.app import ConsoleSettings, create_app

    cfg = load_cfg(config)
    registry = _registry(cfg, store)
    settings = ConsoleSettings()
    if os.environ.get(TOKEN_ENV):
        settings.login_token = os.environ[TOKEN_ENV]
    if os.environ.get(SECRET_ENV):  # shared by replicas so a session survives a restart or another pod
        settings.secret = os.environ[SECRET_ENV]
    app = create_app(cfg, registry, settings)
    url = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port}/"
    console.print(f"civicml review console on {url} over {registry.store.describe()}", highlight=False)
    if cfg.review.behind_gateway:
        console.print(f"identity: the gateway's {cfg.review.user_header!r} header (review.behind_gateway)")
    else:
        # Printed once, to the person who started the console; never logged per request.
        console.print(f"sign in with your name and this token: [bold]{settings.login_token}[/]", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@friendly_errors
def transparency(
    version: str = typer.Argument(..., help="Version id (or champion/challenger)."),
    fmt: str = typer.Option("md", "--format", "-f", help="md, html or json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of standard output."),
    config: Path | None = ConfigOpt,
    store: str | None = StoreOpt,
) -> None:
    """Print the version's Algorithmic Transparency Recording Standard (ATRS v3) record.

    What people know comes from the config's `transparency:` section; facts come from the version's
    lineage, evaluation, gate and approvals. Fields nobody filled are marked "Not filled in".
    """
    from civicml.reporting.transparency import build_record, render_record

    if fmt not in ("md", "html", "json"):
        raise typer.BadParameter(f"{fmt!r} is not a format; use md, html or json", param_hint="--format")
    cfg = load_cfg(config)
    record = build_record(_registry(cfg, store), version, cfg)
    text = render_record(record, fmt)  # type: ignore[arg-type]
    if output:
        output.write_text(text)
        missing = record.not_filled()
        err_console.print(f"wrote {output} ({len(missing)} of {len(record.fields)} fields not filled in)")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("review")(review)
    app.command("transparency")(transparency)

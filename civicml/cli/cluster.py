"""`civicml doctor`: check a cluster namespace before running civicml there."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from civicml.cli.common import console, friendly_errors, load_cfg


@friendly_errors
def doctor(
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", help="Namespace to check (default: deploy.namespace)."
    ),
    s3_endpoint: str | None = typer.Option(
        None, "--s3-endpoint", help="Reach the store here instead of CIVICML_S3_ENDPOINT (e.g. a port-forward)."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="Config file (default: ./civicml.yaml)."),
) -> None:
    """Preflight a namespace: API, CRDs, labels, ServiceAccounts and their can-i, Secrets, ConfigMaps, store."""
    from civicml.deploy.cluster import api_client
    from civicml.orchestration.doctor import Doctor

    cfg = load_cfg(config)
    ns = namespace or cfg.deploy.namespace
    failed = 0
    for check in Doctor(cfg, ns, api_client(), s3_endpoint=s3_endpoint).run():
        failed += not check.ok
        console.print(check.line(), highlight=False, soft_wrap=True, markup=False)
    if failed:
        console.print(f"{failed} check(s) failed in namespace {ns}", highlight=False)
        sys.exit(1)
    console.print(f"namespace {ns} is ready for civicml", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("doctor")(doctor)

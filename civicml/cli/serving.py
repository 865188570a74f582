"""Serving commands: `civicml serve`, `civicml ab ...`, `civicml deploy`, `civicml rollback`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from civicml.cli.common import (
    console,
    fail,
    friendly_errors,
    load_cfg,
    print_table,
    rich_table,
    warn_if_store_is_local,
)

ab_app = typer.Typer(help="Champion/challenger A/B test: weights, report, promotion.", no_args_is_help=True)

_CONFIG = typer.Option(None, "--config", "-c", help="Config file (default: ./civicml.yaml).")


def _registry(cfg):
    from civicml.storage.registry import Registry
    from civicml.storage.store import open_store

    return Registry(open_store(cfg.storage.uri), project=cfg.name)


def _actor() -> str:
    from civicml.governance.audit import default_actor

    return default_actor()


@friendly_errors
def serve(
    port: int = typer.Option(8080, "--port", "-p", help="TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0 in a container)."),
    config: Path | None = _CONFIG,
) -> None:
    """Serve the champion (and challenger, when set) over HTTP until SIGTERM/Ctrl-C."""
    from civicml.serving.app import ServingError, run_server

    cfg = load_cfg(config)
    try:
        run_server(cfg, host=host, port=port)
    except ServingError as err:
        fail(f"{err}")


@friendly_errors
def set_weights_cmd(
    challenger_share: float = typer.Option(
        ..., "--challenger-share", help="Fraction of traffic for the challenger, 0..1."
    ),
    reason: str = typer.Option("manual change", "--reason", help="Why (kept in the audit log)."),
    config: Path | None = _CONFIG,
) -> None:
    """Set the share of traffic the challenger receives (audited)."""
    from civicml.serving.routing import set_weights

    cfg = load_cfg(config)
    routing = set_weights(_registry(cfg), challenger_share, by=_actor(), reason=reason)
    console.print(
        f"challenger {routing.challenger} now receives {routing.challenger_share:.1%} of traffic "
        f"(champion {routing.champion}); running servers pick it up within {cfg.serving.refresh_seconds:g} s "
        "(serving.refresh_seconds)"
    )


@friendly_errors
def report_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    alpha: float = typer.Option(0.05, help="Significance level of the sequential test."),
    min_samples: int = typer.Option(100, "--min-samples", help="Labelled predictions needed per arm."),
    check: bool = typer.Option(
        False, "--check", help="Exit 0 only when the report recommends promotion (3 = keep, 4 = roll back)."
    ),
    config: Path | None = _CONFIG,
) -> None:
    """Compare champion and challenger on predictions joined with feedback.

    With --check the exit code is the recommendation, so `civicml ab report --check && civicml ab
    promote` promotes only on a significant result.
    """
    from civicml.monitoring.ab import CHECK_EXIT_CODES, ab_report

    rep = ab_report(_registry(load_cfg(config)), alpha=alpha, min_samples=min_samples)
    if as_json:
        console.print_json(json.dumps(rep))
    else:
        _print_ab_report(rep)
    if check and CHECK_EXIT_CODES[rep["recommendation"]]:
        sys.exit(CHECK_EXIT_CODES[rep["recommendation"]])


def _print_ab_report(rep: dict) -> None:
    from civicml.reporting.ab import arms_table, labels_table, summary_lines

    print_table(rich_table(arms_table(rep)))
    where = labels_table(rep)
    if where is not None:
        print_table(rich_table(where))
    for line in summary_lines(rep):
        console.print(line, highlight=False, soft_wrap=True)
    # Lines of the serving log that could not be read were skipped (serving.logread): say so, with where.
    problems = rep.get("log_problems", [])
    for problem in problems[:10]:
        console.print(f"serving log: {problem}", style="yellow", highlight=False, soft_wrap=True)
    if len(problems) > 10:
        console.print(f"serving log: and {len(problems) - 10} more unreadable lines", style="yellow")
    console.print(f"recommendation: [bold]{rep['recommendation']}[/] — {rep['reason']}")


@friendly_errors
def promote_cmd(
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the audit log); required with --force."),
    force: bool = typer.Option(False, "--force", help="Promote without a significant A/B result (needs --reason)."),
    alpha: float = typer.Option(0.05, help="Significance level of the sequential test."),
    min_samples: int = typer.Option(100, "--min-samples", help="Labelled predictions needed per arm."),
    config: Path | None = _CONFIG,
) -> None:
    """Make the challenger the champion when the A/B test supports it; clear the challenger (audited).

    Refuses unless `civicml ab report` recommends promotion, or `--force --reason TEXT` is given.
    """
    from civicml import steps
    from civicml.deploy.kubernetes import DeployError
    from civicml.governance.audit import AuditLog
    from civicml.monitoring.ab import PromotionRefused, ab_report, check_promotion
    from civicml.serving.routing import CHAMPION

    cfg = load_cfg(config)
    registry = _registry(cfg)
    who = _actor()
    try:
        decision = check_promotion(ab_report(registry, alpha=alpha, min_samples=min_samples), force, reason)
    except PromotionRefused as err:
        AuditLog(registry.store).append("ab_promotion_refused", {"error": str(err), "force": force}, actor=who)
        fail(str(err))
    challenger = decision["challenger"]
    if cfg.deploy.target == "kubernetes":
        from civicml.deploy.cluster import require_cluster

        require_cluster()
    cfg = cfg.model_copy(update={"deploy": cfg.deploy.model_copy(update={"mode": "replace"})})
    try:
        steps.deploy(
            cfg,
            challenger,
            by=who,
            reason=f"A/B promotion: {decision['reason']}",
            expected_champion=registry.get_alias(CHAMPION),
        )
    except DeployError as err:
        fail(str(err))
    AuditLog(registry.store).append("ab_promoted", decision, actor=who)
    forced = " (forced without a significant result)" if decision["forced"] else ""
    console.print(f"{challenger} is now the champion{forced}; no challenger is set", highlight=False)


def _default_version(registry) -> str:
    from civicml.governance.approval import newest_approved

    version = newest_approved(registry)
    if version is None:
        fail("no approved model version to deploy; pass a VERSION or run the pipeline first")
    return version


@friendly_errors
def deploy_cmd(
    version: str | None = typer.Argument(None, help="Model version (default: the newest approved one)."),
    target: str | None = typer.Option(None, "--target", help="local | kubernetes (default: deploy.target)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the Kubernetes objects as YAML; apply nothing."),
    as_: str | None = typer.Option(None, "--as", help="`challenger` to deploy beside the champion."),
    config: Path | None = _CONFIG,
) -> None:
    """Deploy a model version as champion (or as challenger with --as challenger)."""
    from civicml import steps
    from civicml.deploy.kubernetes import DeployError, deploy_version, to_yaml

    cfg = load_cfg(config)
    if target not in (None, "local", "kubernetes"):
        fail(f"--target must be local or kubernetes, got {target!r}")
    if as_ not in (None, "challenger", "champion"):
        fail(f"--as must be challenger (or champion), got {as_!r}")
    updates = {}
    if target:
        updates["target"] = target
    if as_:
        updates["mode"] = "challenger" if as_ == "challenger" else "replace"
    cfg = cfg.model_copy(update={"deploy": cfg.deploy.model_copy(update=updates)})
    registry = _registry(cfg)
    version = version or _default_version(registry)
    from civicml.governance.approval import version_status

    status = version_status(registry, version)
    if status.status != "approved":
        fail(f"version {status.version} cannot be deployed: {status.describe()}")
    if cfg.deploy.target == "kubernetes" and dry_run:
        warn_if_store_is_local(cfg, "serve this model")
    if dry_run:
        if cfg.deploy.target != "kubernetes":
            fail("--dry-run prints Kubernetes objects; use it with --target kubernetes")
        result = deploy_version(cfg, registry, version, dry_run=True)
        sys.stdout.write(to_yaml(result["objects"]))
        return
    if cfg.deploy.target == "kubernetes":
        from civicml.deploy.cluster import require_cluster

        require_cluster()
    try:
        result = steps.deploy(cfg, version, by=_actor(), expected_champion=registry.get_alias("champion"))
    except DeployError as err:
        fail(str(err))
    result = {k: v for k, v in result.items() if k != "objects"}
    console.print_json(json.dumps(result, default=str))
    if cfg.deploy.target == "kubernetes":
        warn_if_store_is_local(cfg, "serve this model")


@friendly_errors
def rollback_cmd(
    reason: str = typer.Option("manual rollback", "--reason", help="Why (kept in the audit log)."),
    config: Path | None = _CONFIG,
) -> None:
    """Serve the previous champion again (and stop any challenger)."""
    from civicml import steps
    from civicml.deploy.kubernetes import DeployError
    from civicml.serving.routing import CHAMPION

    cfg = load_cfg(config)
    registry = _registry(cfg)
    current = registry.get_alias(CHAMPION)
    previous = next(
        (
            m["from"]
            for m in reversed(registry.alias_history(CHAMPION))
            if m["to"] == current and m["from"] and m["from"] != current
        ),
        None,
    )
    if current is None or previous is None:
        fail(f"nothing to roll back to: the champion alias ({current}) has no earlier version in its history")
    if cfg.deploy.target == "kubernetes":
        from civicml.deploy.cluster import require_cluster

        require_cluster()
    cfg = cfg.model_copy(update={"deploy": cfg.deploy.model_copy(update={"mode": "replace"})})
    try:
        steps.deploy(cfg, previous, by=_actor(), reason=f"rollback from {current}: {reason}", expected_champion=current)
    except DeployError as err:
        fail(str(err))
    console.print(f"rolled back: champion is {previous} again (was {current})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("serve")(serve)
    app.command("deploy")(deploy_cmd)
    app.command("rollback")(rollback_cmd)
    ab_app.command("set-weights")(set_weights_cmd)
    ab_app.command("report")(report_cmd)
    ab_app.command("promote")(promote_cmd)
    app.add_typer(ab_app, name="ab")

"""Monitoring commands: `civicml monitor`, `civicml schedule`, `civicml submit`."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from civicml.cli.common import (
    StartedByOpt,
    apply_started_by,
    console,
    err_console,
    fail,
    friendly_errors,
    load_cfg,
    warn_if_store_is_local,
    with_options,
)
from civicml.reporting.numbers import number, signed

DEFAULT_IMAGE = "ghcr.io/civicml/civicml:0.1.0"


@friendly_errors
def monitor(
    config: Path | None = typer.Option(None, "--config", "-c", help="Config file (default: ./civicml.yaml)."),
    data: str | None = typer.Option(None, "--data", help="New data batch to check: path, s3://..., demo:..."),
    from_serving_log: bool = typer.Option(
        False, "--from-serving-log", help="Check the model server's prediction log (last monitoring.window_days)."
    ),
    version: str = typer.Option("", "--version", help="Model version to compare with (default: the champion)."),
    retrain: bool = typer.Option(
        False,
        "--retrain",
        help="Retrain when the policy says so (locally: the training "
        "pipeline on the new data; with a KFP host: a cluster run).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Measure drift and live performance against a model version; decide (and optionally start) retraining.

    The window is --data, the serving log with --from-serving-log, else monitoring.window_source
    (else data.source). The drift report, measurements and decision are stored under
    `monitoring/<time>/` in the store; the decision is in the audit log as `retrain_decision`.
    """
    from civicml import steps
    from civicml.orchestration.monitor import RetrainFailed, run_monitoring

    if data and from_serving_log:
        raise typer.BadParameter("give either --data SOURCE or --from-serving-log, not both")
    cfg = load_cfg(config)
    source = steps.SERVING_LOG if from_serving_log else (data or "")
    announce = None if as_json else err_console.print
    try:
        summary = run_monitoring(cfg, version, source, retrain=retrain, announce=announce)
    except RetrainFailed as err:
        fail(str(err))
    if as_json:
        console.print_json(json.dumps(summary, default=str))
        return
    _print_monitor(summary)


def _print_monitor(summary: dict[str, Any]) -> None:
    """The drift table, notes, live performance, the decision and where the report is."""
    table = Table(title=f"drift of {summary['source']} against {summary['version']} ({summary['window_rows']} rows)")
    for col in ("feature", "PSI", "band", "p-value", "drifted"):
        table.add_column(col)
    for name, f in summary["drift"].items():
        if f["status"] != "ok":
            table.add_row(name, "—", f["status"], "—", "—")
            continue
        table.add_row(
            name,
            number(f["psi"], 3),
            f["band"],
            number(f["p_value"], 3),
            "[bold red]yes[/]" if f["drifted"] else "no",
        )
    console.print(table)
    for m in summary["messages"]:
        err_console.print(f"[yellow]note:[/] {m}", highlight=False, soft_wrap=True)
    p = summary["performance"]
    if p["status"] == "ok":
        drop = f" (drop vs test: {signed(p['drop'], 4)})" if p["drop"] is not None else ""
        console.print(f"live {p['metric']}: {number(p['live'])} over {p['rows']} labelled predictions{drop}")
    else:
        console.print(f"live performance: {p['rows']} labelled predictions; not judged yet")
    colour = "yellow" if summary["decision"] == "retrain" else "green"
    console.print(f"decision: [bold {colour}]{summary['decision']}[/] — {summary['reason']}", soft_wrap=True)
    if "retrain" in summary:
        console.print(f"retraining: {json.dumps(summary['retrain'], default=str)}", soft_wrap=True, highlight=False)
    elif summary["decision"] == "retrain":
        console.print("run again with --retrain to start the training pipeline on this data")
    console.print(f"report: {summary['report']}", soft_wrap=True, highlight=False)


def _pipeline_file(pipeline: str, pipeline_file: Path | None, cfg, image: str, tmp: Path) -> Path:
    """The compiled pipeline to send: the given file, else pipelines/compiled/, else compiled now."""
    from civicml.orchestration.kfp_client import default_pipeline_yaml

    if pipeline_file is not None:
        return pipeline_file
    default = default_pipeline_yaml(pipeline)
    if default.is_file():
        return default
    err_console.print(f"{default} not found; compiling the {pipeline} pipeline with image {image}")
    return compile_pipeline(pipeline, tmp / default.name, cfg, image)


def compile_pipeline(pipeline: str, output: str | Path, cfg, image: str) -> Path:
    """Compile the training or monitoring pipeline with `cfg` as its default config and the cluster wiring.

    In the CLI (the layer above `pipelines/`): orchestration only runs and submits compiled YAML.
    """
    from civicml.orchestration.kfp_client import SubmitError

    if pipeline == "training":
        from pipelines.training_pipeline import compile_training_pipeline as compile_fn
    elif pipeline == "monitoring":
        from pipelines.monitoring_pipeline import compile_monitoring_pipeline as compile_fn
    else:
        raise SubmitError(f"unknown pipeline {pipeline!r}; choose one of training, monitoring")
    return compile_fn(output, image=image, default_config_json=cfg.to_json(), secret_name=cfg.storage.secret_name)


HostOpt = typer.Option(None, "--host", help="KFP endpoint (default: env KFP_HOST, then monitoring.kfp_host).")
PipelineFileOpt = typer.Option(None, "--pipeline-file", help="Compiled pipeline YAML.")
ImageOpt = typer.Option(DEFAULT_IMAGE, help="Image for compiling when no compiled YAML exists.")
RunConfigOpt = typer.Option(None, "--config", "-c", help="Config sent as the config_json parameter.")
NamespaceOpt = typer.Option(
    None,
    "--namespace",
    "-n",
    help="Namespace of the KFP experiment and its runs (default: deploy.namespace, then the kube context's).",
)


@dataclass(frozen=True)
class ClusterTarget:
    """Where `schedule` and `submit` send a pipeline: their shared options."""

    host: str | None
    pipeline_file: Path | None
    image: str
    config: Path | None
    namespace: str | None


def _cluster_target(started_by: str | None, **where: Any) -> ClusterTarget:
    apply_started_by(started_by)
    return ClusterTarget(**where)


# Options shared by `schedule` and `submit`, after each one's own.
_CLUSTER_OPTIONS = (
    ("host", str | None, HostOpt),
    ("pipeline_file", Path | None, PipelineFileOpt),
    ("image", str, ImageOpt),
    ("config", Path | None, RunConfigOpt),
    ("namespace", str | None, NamespaceOpt),
    ("started_by", str | None, StartedByOpt),
)


def cluster_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn(target, ...)` with the shared cluster options as its `target` (`--started-by` applied first)."""
    return with_options(fn, "target", _CLUSTER_OPTIONS, _cluster_target)


def _cluster_call(fn, *args, **kwargs):
    """Run a KFP client call; turn connection and API errors into one clear message."""
    from civicml.orchestration.kfp_client import CronError, SubmitError

    try:
        return fn(*args, **kwargs)
    except (SubmitError, CronError) as err:
        # Our own checks (bad cron, unknown pipeline): the message already says what to fix.
        fail(str(err))
    except Exception as err:  # noqa: BLE001 - kfp/urllib3 raise many types; all mean "the cluster said no"
        fail(
            f"the KFP API refused or could not be reached: {type(err).__name__}: {str(err)[:300]} — check --host / "
            "KFP_HOST and KFP_TOKEN"
        )


def _print_dry_run(cfg: Any, pipeline: str, path: Path, namespace: str | None, key: str, request: Any) -> None:
    """Print what --dry-run would send: the experiment, and the run or recurring run as `key`."""
    from civicml.orchestration.kfp_client import build_experiment_request, run_namespace, validate_request

    experiment = _cluster_call(
        validate_request, build_experiment_request(cfg, _cluster_call(run_namespace, cfg, namespace))
    )
    console.print_json(
        json.dumps({"pipeline": pipeline, "pipeline_file": str(path), "experiment": experiment, key: request})
    )


PIPELINE_HELP = "Which pipeline: training or monitoring."


@friendly_errors
@cluster_command
def schedule(
    target: ClusterTarget,
    pipeline: str = typer.Option(..., "--pipeline", help=PIPELINE_HELP),
    cron: str = typer.Option(
        ...,
        "--cron",
        help="When: KFP's 6-field cron 'SEC MIN HOUR DOM MON DOW' (e.g. '0 0 2 * * *'); a 5-field cron is converted.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the recurring-run request instead of sending it."),
) -> None:
    """Create a KFP recurring run (one run at a time, no backfill) of the training or monitoring pipeline."""
    from civicml.orchestration.kfp_client import (
        build_recurring_run_request,
        default_pipeline_yaml,
        schedule_run,
        validate_request,
    )

    _cluster_call(default_pipeline_yaml, pipeline)  # rejects an unknown pipeline name before any work
    cfg = load_cfg(target.config)
    with tempfile.TemporaryDirectory(prefix="civicml-schedule-") as tmp:
        path = _pipeline_file(pipeline, target.pipeline_file, cfg, target.image, Path(tmp))
        if dry_run:
            warn_if_store_is_local(cfg, "run this schedule")
            body, parsed = _cluster_call(build_recurring_run_request, cfg, pipeline, path, cron)
            if parsed.note:
                err_console.print(f"note: {parsed.note}", highlight=False, soft_wrap=True)
            _print_dry_run(
                cfg, pipeline, path, target.namespace, "recurring_run", _cluster_call(validate_request, body)
            )
            return
        sub = _cluster_call(schedule_run, cfg, pipeline, cron, path, target.host, target.namespace)
    # After the cluster answered (a failure stays one line); before, with --dry-run.
    warn_if_store_is_local(cfg, "run this schedule")
    console.print(
        f"created recurring run {sub.id} of the {pipeline} pipeline on {sub.host} "
        f"(cron '{sub.request['trigger']['cron_schedule']['cron']}')"
    )


@friendly_errors
@cluster_command
def submit(
    target: ClusterTarget,
    pipeline: str = typer.Option("training", "--pipeline", help=PIPELINE_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the run request instead of sending it."),
) -> None:
    """Submit one run of the training or monitoring pipeline to a KFP cluster."""
    from civicml.orchestration.kfp_client import build_run_request, default_pipeline_yaml, submit_run, validate_request

    _cluster_call(default_pipeline_yaml, pipeline)
    cfg = load_cfg(target.config)
    with tempfile.TemporaryDirectory(prefix="civicml-submit-") as tmp:
        path = _pipeline_file(pipeline, target.pipeline_file, cfg, target.image, Path(tmp))
        if dry_run:
            warn_if_store_is_local(cfg, "run this pipeline")
            request = _cluster_call(validate_request, _cluster_call(build_run_request, cfg, pipeline, path))
            _print_dry_run(cfg, pipeline, path, target.namespace, "run", request)
            return
        sub = _cluster_call(submit_run, cfg, pipeline, path, target.host, namespace=target.namespace)
    console.print(f"submitted run {sub.id} of the {pipeline} pipeline to {sub.host}")
    warn_if_store_is_local(cfg, "run this pipeline")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("monitor")(monitor)
    app.command("schedule")(schedule)
    app.command("submit")(submit)

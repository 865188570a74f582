"""`civicml tune` (search locally with Optuna or on a cluster with Katib) and `civicml trial` (one Katib trial)."""

from __future__ import annotations

import functools
import sys
import tempfile
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from civicml.cli.common import console, err_console, friendly_errors, load_cfg

ConfigOpt = typer.Option(None, "--config", "-c", help="Config file (default: ./civicml.yaml when present).")


class Backend(str, Enum):
    """Where the search runs."""

    optuna = "optuna"
    katib = "katib"


def _tuning_errors(fn: Callable) -> Callable:
    """Tuning failures (trials failed, Katib refused/failed/timed out, bad tuning data) -> message, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from civicml.tuning.objective import TuningError

        try:
            return fn(*args, **kwargs)
        except TuningError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper


def _print_result(result: dict) -> None:
    from rich.table import Table

    console.print(
        f"best {result['objective_metric']} = {result['best_value']:.5f} ({result['backend']} / {result['algorithm']})",
        highlight=False,
    )
    table = Table()
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for name, value in result["best_params"].items():
        table.add_row(name, f"{value:.6g}" if isinstance(value, float) else str(value))
    console.print(table)
    states: dict[str, int] = {}
    for row in result.get("trials", []):
        states[row.get("state", "?")] = states.get(row.get("state", "?"), 0) + 1
    console.print("trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())), highlight=False)
    if result.get("rounds_full"):
        console.print(
            f"boosting rounds run: {result['rounds_run']} of {result['rounds_full']} "
            f"({result['rounds_run'] / result['rounds_full']:.0%}; the rest were pruned)",
            highlight=False,
        )


def tune(
    backend: Backend | None = typer.Option(
        None, "--backend", "-b", help="optuna (local) or katib (cluster); default: tuning.backend from the config."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Katib: write the Experiment YAML, touch no cluster."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Katib --dry-run: the Experiment YAML; otherwise: the result JSON (best_params, trials).",
    ),
    config: Path | None = ConfigOpt,
    version: str | None = typer.Option(None, "--version", help="Version id for the run (default: a new one)."),
    html: Path | None = typer.Option(None, "--html", help="Also write the trials table as HTML."),
    markdown: Path | None = typer.Option(None, "--markdown", help="Also write the trials table as Markdown."),
) -> None:
    """Search hyperparameters: validate the data, run the search, print the best parameters."""
    from civicml.storage.registry import new_version_id

    overrides = {"tuning.backend": backend.value} if backend else None
    cfg = load_cfg(config, overrides)
    version = version or new_version_id()
    if cfg.tuning.backend == "katib" and dry_run:
        _katib_dry_run(cfg, version, output)
        return
    if dry_run:
        raise ValueError("--dry-run applies to --backend katib only (the Optuna search runs locally)")
    if cfg.tuning.backend == "katib":
        from civicml.deploy.cluster import require_cluster

        # Before validating and uploading anything: no kubeconfig or no API server is one line, now.
        require_cluster()
    result = _search(cfg, version, output, html, markdown)
    _print_result(result)
    if output:
        console.print(f"wrote {output}", highlight=False)


def _katib_dry_run(cfg: Any, version: str, output: Path | None) -> None:
    """Write (or print) the Katib Experiment the search would create; warn when pods cannot reach the store."""
    from civicml.storage.store import resolve_store_uri
    from civicml.tuning.katib_backend import experiment_yaml

    text = experiment_yaml(cfg, version)
    uri = resolve_store_uri(cfg.storage.uri)
    if not uri.startswith("s3://"):
        err_console.print(
            f"[yellow]warning:[/] trials would read the store {uri!r}, which pods cannot reach; "
            "set storage.uri or CIVICML_STORE_URI to s3://... before submitting",
            highlight=False,
        )
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        err_console.print(f"wrote Experiment {output}", highlight=False)
    else:
        sys.stdout.write(text)


def _search(cfg: Any, version: str, output: Path | None, html: Path | None, markdown: Path | None) -> dict[str, Any]:
    """Validate the data, then run the search with a progress bar on stderr; the tuning result."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from civicml import steps

    with tempfile.TemporaryDirectory(prefix="civicml-tune-") as tmp:
        data_dir = Path(tmp) / "data"
        info = steps.validate_data(cfg, str(data_dir), version=version)
        rows = ", ".join(f"{n} {k}" for k, n in info["rows"].items())
        console.print(f"data: {rows} rows; fingerprint {info['fingerprint'][:19]}…", highlight=False)
        params_path = output or Path(tmp) / "tuning.json"
        with Progress(
            TextColumn(f"[bold]{cfg.tuning.backend}[/] {cfg.tuning.algorithm}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        ) as progress:
            task = progress.add_task("trials", total=cfg.tuning.max_trials)

            def on_trial(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return steps.tune(
                cfg,
                str(data_dir),
                str(params_path),
                str(html) if html else None,
                on_trial=on_trial,
                trials_md_path=str(markdown) if markdown else None,
            )


def trial(
    params: str | None = typer.Option(None, "--params", help="Parameters as JSON, e.g. '{\"max_depth\": 4}'."),
    param: list[str] | None = typer.Option(
        None, "--param", "-p", help="One parameter as name=value (repeatable); wins over --params."
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="A directory written by validate_data."),
    version: str | None = typer.Option(
        None,
        "--version",
        help="Read the tuning split this version's tune step uploaded to the store (how Katib runs it).",
    ),
    config: Path | None = ConfigOpt,
    round_metrics: bool | None = typer.Option(
        None,
        "--round-metrics/--no-round-metrics",
        help="Print the objective after every boosting round (for Katib medianstop); default: when early "
        "stopping is configured.",
    ),
) -> None:
    """Train one candidate on the train split and print validation metrics as name=value lines (Katib StdOut)."""
    from civicml.tuning.trial import download_tuning_data, load_trial_data, parse_param_args, run_trial

    if (data_dir is None) == (version is None):
        raise ValueError("give exactly one of --data-dir DIR (local) or --version V (tuning data in the store)")
    raw = parse_param_args(params, param)

    def emit(line: str) -> None:
        # Plain, flushed stdout lines: Katib's collector parses them, rich would wrap or colour them.
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    if version is not None:
        from civicml.storage.store import open_store

        store = open_store(load_cfg(config).storage.uri)
        with tempfile.TemporaryDirectory(prefix="civicml-trial-") as tmp:
            cfg, d = download_tuning_data(store, version, tmp)
            train, valid, info = load_trial_data(d)
    elif data_dir is not None:
        cfg = load_cfg(config)
        train, valid, info = load_trial_data(data_dir)
    run_trial(cfg, train, valid, info, raw, emit=emit, report_rounds=round_metrics)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("tune")(friendly_errors(_tuning_errors(tune)))
    app.command("trial")(friendly_errors(_tuning_errors(trial)))

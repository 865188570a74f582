"""Core commands: `civicml run`, `civicml compile`, `civicml data demo`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from civicml.cli.common import StartedByOpt, apply_started_by, console, err_console, friendly_errors, load_cfg
from civicml.reporting.numbers import number

STEPS = ["validate-data", "tune", "train", "evaluate", "gate", "register", "deploy"]
COMPILED_DIR = Path("pipelines/compiled")
DEFAULT_IMAGE = "ghcr.io/civicml/civicml:0.1.0"


def _parse_sets(sets: list[str]) -> dict[str, object]:
    import yaml

    out = {}
    for item in sets:
        if "=" not in item:
            raise typer.BadParameter(f"--set expects KEY=VALUE, e.g. --set data.demo.month=3; got {item!r}")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


@friendly_errors
def run(
    config: Path | None = typer.Option(None, "--config", "-c", help="Config file (default: ./civicml.yaml)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key, e.g. --set data.demo.month=3."),
    month: int | None = typer.Option(None, help="Shortcut for --set data.demo.month=M (demo data)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    started_by: str | None = StartedByOpt,
    keep_run_data: bool = typer.Option(
        False, "--keep-run-data", help="Debugging: keep the steps' outputs (the data splits: personal data)."
    ),
) -> None:
    """Compile the training pipeline and run it locally through kfp.local."""
    from civicml.steps import host

    apply_started_by(started_by)
    overrides = _parse_sets(set_)
    if month is not None:
        overrides["data.demo.month"] = month
    # The warm step host starts first, before the config is read: it has seconds of imports to do.
    with host.offered():
        from civicml.orchestration.local import failure_detail, read_manifest, version_summary

        cfg = load_cfg(config, overrides)
        result, status = _run_with_progress(cfg, as_json, keep_run_data)
    manifest = read_manifest(cfg, result.version)
    summary: dict[str, Any] = {
        "ok": result.ok,
        "version": result.version,
        "seconds": round(result.seconds, 1),
        "log": str(result.log_path),
        "steps": status,
    }
    if result.ok and result.temp_root is not None:
        # A remote store's run folder is temporary; a failed run keeps its log (no data) for reading.
        result.cleanup()
        summary["log"] = None
    if not result.ok:
        summary["error"] = failure_detail(result)
        if as_json:
            console.print_json(json.dumps(summary))
        else:
            err_console.print(f"[bold red]run failed[/] ({summary['seconds']} s): {summary['error']}", soft_wrap=True)
            err_console.print(f"full log: {result.log_path}; no model version was written")
        sys.exit(1)
    if manifest is None:
        # The validate step decided there was nothing new to learn from.
        summary["result"] = "no new data: the data fingerprint equals the champion's; no version written"
        console.print_json(json.dumps(summary)) if as_json else console.print(f"[yellow]{summary['result']}[/]")
        return
    summary.update(version_summary(cfg, manifest))
    if as_json:
        console.print_json(json.dumps(summary))
        return
    _print_run(summary, manifest)


def _run_with_progress(cfg: Any, as_json: bool, keep_run_data: bool) -> tuple[Any, dict[str, str]]:
    """Run the pipeline with a progress bar on stderr (none with --json): (LocalRun, status of each step)."""
    from civicml.orchestration.local import run_pipeline

    status: dict[str, str] = {}
    # Bound to the real stderr now: run_pipeline redirects sys.stdout/stderr into the run log.
    progress_console = Console(file=sys.stderr)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=progress_console,
        transient=False,
        disable=as_json,
    ) as progress:
        bar = progress.add_task("pipeline", total=len(STEPS))

        def on_event(task: str, what: str) -> None:
            status[task] = what
            if what == "start":
                progress.update(bar, description=f"running [bold]{task}[/]")
            else:
                progress.advance(bar)
                mark = "[green]✓[/]" if what == "SUCCESS" else "[red]✗[/]"
                progress.console.print(f"  {mark} {task}")

        result = run_pipeline(cfg, on_event=on_event, keep_outputs=keep_run_data)
        progress.update(bar, completed=len(STEPS), description="done" if result.ok else "[red]failed")
    return result, status


def _print_run(summary: dict[str, Any], manifest: dict[str, Any]) -> None:
    """The run's table (data, metrics, gate decision, champion), data warnings and where to look next."""
    table = Table(title=f"civicml run: version {summary['version']}", show_header=False)
    table.add_row("data", f"{manifest['lineage']['data_source']} ({sum(manifest['lineage']['rows'].values())} rows)")
    table.add_row("fingerprint", manifest["lineage"]["data_fingerprint"][:23] + "…")
    for k, v in manifest["metrics"].items():
        table.add_row(k, number(v))
    colour = {"deploy": "green", "reject": "red"}.get(summary["decision"], "yellow")
    table.add_row("gate decision", f"[bold {colour}]{summary['decision']}[/] — {escape(summary['reason'])}")
    table.add_row("champion", summary["champion"] or "none yet (no version has passed the gate)")
    table.add_row("time", f"{summary['seconds']} s")
    console.print(table)
    for warning in summary["data_warnings"]:
        err_console.print(f"[bold yellow]data warning:[/] {escape(warning)}", soft_wrap=True, highlight=False)
    console.print(f"model card: {summary['model_card']}", soft_wrap=True, highlight=False)
    console.print(f"registry:   {summary['store']}  (civicml models list)", soft_wrap=True, highlight=False)


@friendly_errors
def compile_(
    config: Path | None = typer.Option(None, "--config", "-c", help="Config whose values become the defaults."),
    image: str = typer.Option(DEFAULT_IMAGE, help="civicml image the components run in."),
    output_dir: Path = typer.Option(COMPILED_DIR, "--output-dir", "-o", help="Directory for the pipeline YAML files."),
    local_only: bool = typer.Option(False, help="Omit the Kubernetes Secret/ConfigMap wiring."),
) -> None:
    """Compile the training and monitoring pipelines to YAML for the KFP UI or `civicml submit`."""
    from pipelines.monitoring_pipeline import compile_monitoring_pipeline
    from pipelines.training_pipeline import compile_training_pipeline

    cfg = load_cfg(config, resolve_paths=False)  # the same YAML in every clone
    secret = None if local_only else cfg.storage.secret_name
    for name, build in (("training", compile_training_pipeline), ("monitoring", compile_monitoring_pipeline)):
        path = build(
            output_dir / f"{name}_pipeline.yaml", image=image, default_config_json=cfg.to_json(), secret_name=secret
        )
        console.print(f"wrote {path} (image {image})", highlight=False, soft_wrap=True)


data_app = typer.Typer(help="Work with input data.", no_args_is_help=True)


def _ask_columns(value: str | None, what: str, columns: list[str], required: bool) -> list[str]:
    if value is None and sys.stdin.isatty():
        value = typer.prompt(
            f"{what} (comma-separated; columns: {', '.join(columns)})", default="" if not required else None
        )
    if value is None:
        if required:
            raise typer.BadParameter(f"give {what} with its flag; the data's columns are {columns}")
        return []
    return [c.strip() for c in value.split(",") if c.strip()]


@friendly_errors
def init(
    data: Path = typer.Argument(..., help="The project's data file (.csv or .parquet)."),
    target: str | None = typer.Option(None, "--target", help="Column to predict (asked when omitted)."),
    sensitive: str | None = typer.Option(None, "--sensitive", help="Sensitive attributes, comma-separated."),
    pii: str | None = typer.Option(None, "--pii", help="PII columns to drop, comma-separated."),
    name: str | None = typer.Option(None, "--name", help="Project name (default: from the file name)."),
    out: Path = typer.Option(Path("civicml.yaml"), "--out", "-o", help="Config file to write (never overwritten)."),
) -> None:
    """Write a new project's config from a data file; shows the features and contract it infers."""
    import yaml

    from civicml.data.project import draft_config, project_name
    from civicml.data.sources import load_table

    if out.exists():
        raise typer.BadParameter(f"{out} exists; choose another --out (civicml init never overwrites a config)")
    df = load_table(str(data.resolve()))
    cols = list(df.columns)
    target_cols = _ask_columns(target, "target column", cols, required=True)
    sensitive_cols = _ask_columns(sensitive, "sensitive attributes", cols, required=False)
    pii_cols = _ask_columns(pii, "PII columns", cols, required=False)
    try:
        source = str(data.resolve().relative_to(out.resolve().parent))
    except ValueError:
        source = str(data.resolve())
    raw, contract = draft_config(df, source, target_cols[0], sensitive_cols, pii_cols, name or project_name(data.stem))
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# civicml config drafted by `civicml init`; read it, then fill in card: (the model card says what is\n"
        "# missing). Relative paths are relative to this file.\n"
    )
    out.write_text(header + yaml.safe_dump(raw, sort_keys=False))
    table = Table(title=f"{data.name}: inferred contract ({len(df)} rows)")
    for col in ("column", "kind", "range / categories", "use"):
        table.add_column(col)
    uses = {raw["data"]["target"]: "target", **{c: "sensitive (fairness only)" for c in sensitive_cols}}
    for c in contract:
        detail = (
            f"{c.min:g} to {c.max:g}"
            if c.kind == "numeric" and c.min is not None
            else ", ".join((c.categories or [])[:6])
        )
        table.add_row(c.name, c.kind, detail, uses.get(c.name, "feature"))
    for c in pii_cols:
        table.add_row(c, "-", "-", "PII: dropped before anything else")
    console.print(table)
    console.print(
        f"wrote {out}: name {raw['name']}, task {raw['task']}; next: fill card: and run `civicml run --config {out}`",
        highlight=False,
        soft_wrap=True,
    )


@data_app.command("demo")
@friendly_errors
def data_demo(
    rows: int = typer.Option(5000, min=1, max=10_000_000, help="Number of rows."),
    month: int = typer.Option(1, min=1, help="Month; later months drift income, claim amount and channel."),
    bias: float = typer.Option(0.0, min=0.0, max=1.0, help="Label bias against region East (0 = none)."),
    seed: int = typer.Option(7, help="Random seed (same seed, same bytes)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output file: .csv or .parquet."),
) -> None:
    """Write the synthetic benefit-claims table to a CSV or Parquet file."""
    from civicml.data.demo import TARGET, write_benefits

    if output.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"--output must end in .csv or .parquet, got {output.name!r}")
    # Streamed block by block: 10M rows need no more memory than 1M.
    written = write_benefits(output, rows=rows, month=month, bias=bias, seed=seed)
    console.print(f"wrote {written} rows (target {TARGET}) to {output}")


def register(app: typer.Typer) -> None:
    """Add the core commands to `app`."""
    app.command("run")(run)
    app.command("init")(init)
    app.command("compile")(compile_)
    app.add_typer(data_app, name="data")

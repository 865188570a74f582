"""Shared pieces of the CLI: the app, console, config loading and error handling."""

from __future__ import annotations

import errno
import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

app = typer.Typer(
    name="civicml",
    help="Automated, auditable model training and evaluation on Kubeflow (and on your laptop).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

DEFAULT_CONFIG = "civicml.yaml"


def fail(message: str) -> NoReturn:
    """Print `error: message` in red on stderr and exit 1 (no traceback)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(1)


def warn_if_store_is_local(cfg: Any, what: str) -> None:
    """Warn (stderr) when the store is a local directory: pods on a cluster cannot reach it."""
    from civicml.storage.store import resolve_store_uri

    uri = resolve_store_uri(cfg.storage.uri)
    if "://" not in uri:
        err_console.print(
            f"[bold yellow]warning:[/] storage.uri is the local directory {uri}; the pods that {what} cannot "
            "reach it, so they would read and write a different, empty store. Set storage.uri: "
            "s3://BUCKET/PREFIX (MinIO or any S3 store) or CIVICML_STORE_URI for cluster runs.",
            highlight=False,
            soft_wrap=True,
        )


def print_table(table: Any) -> None:
    """Print a rich table whole: on a pipe or in a file, as wide as its content (rich assumes 80 columns).

    In a terminal rich wraps cells to the window; elsewhere nothing may be cut, because what is
    read later (a log, a ticket, `| grep`) cannot be resized.
    """
    if console.is_terminal:
        console.print(table)
        return
    from rich.measure import Measurement

    need = Measurement.get(console, console.options.update_width(100_000), table).maximum
    if need <= console.width:
        console.print(table)
        return
    # Console.print(width=...) never renders wider than the console: widen it for this table only.
    plain = Console(file=console.file, width=need, color_system=None, soft_wrap=False)
    plain.print(table, crop=False)


def rich_table(table: Any) -> Any:
    """A report table (`civicml.reporting.model.Table`) as a rich table, numbers through the one formatter."""
    from rich.table import Table
    from rich.text import Text

    from civicml.reporting.numbers import number

    out = Table(title=table.caption)
    for i, header in enumerate(table.headers):
        out.add_column(header, justify="right" if i in table.numeric else "left")
    for row in table.rows:
        out.add_row(*[Text(number(getattr(v, "value", v), table.digits)) for v in row])
    return out


def load_cfg(config: Path | None, overrides: dict[str, Any] | None = None, resolve_paths: bool = True):
    """Load the config file (or `civicml.yaml` when present, else defaults)."""
    from civicml.config import load_config

    if config is None and Path(DEFAULT_CONFIG).is_file():
        config = Path(DEFAULT_CONFIG)
    return load_config(config, overrides, resolve_paths=resolve_paths)


ConfigOpt = typer.Option(None, "--config", "-c", help="Config file (default: ./civicml.yaml when present).")
StoreOpt = typer.Option(
    None, "--store", help="Store URI (a directory or s3://bucket/prefix); wins over storage.uri and CIVICML_STORE_URI."
)
ProjectOpt = typer.Option(
    None,
    "--project",
    help="Which project of the store (a config's name:); default: the config's name. With --store and no "
    "config file, every project's versions (a version names its own project).",
)
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")


def open_registry(config: Path | None, store: str | None = None, project: str | None = None, cfg: Any = None):
    """The registry a command works on: one project of the store.

    The store is `--store`, else the config's `storage.uri`. The project is `--project`, else the
    config's `name:` when a config is in use (given, `./civicml.yaml`, or the defaults without
    `--store`); with `--store` and no config file the view is store-wide.
    """
    from civicml.storage.registry import Registry
    from civicml.storage.store import open_store

    in_use = config is not None or Path(DEFAULT_CONFIG).is_file() or not store
    cfg = cfg if cfg is not None else load_cfg(config)
    name = project or (cfg.name if in_use else None)
    return Registry(open_store(store, explicit=True) if store else open_store(cfg.storage.uri), project=name)


def _option(name: str, annotation: Any, option: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=option)


Shared = tuple[tuple[str, Any, Any], ...]
"""Options several commands take: `(parameter name, annotation, typer.Option(...))` each."""


def with_options(
    fn: Callable[..., Any], into: str, options: Shared, prepare: Callable[..., Any], *, last: Shared = ()
) -> Callable[..., Any]:
    """`fn` as a command that also takes `options`, defined once for every command that shares them.

    Typer sees `fn`'s own parameters (but `into`), then `options`, then those of `last` that `fn`
    has, the order `--help` lists them in. The command passes `prepare(**values of options)` to
    `fn` as its `into` argument, with `fn`'s own values.

    Args:
        fn: The command body.
        into: The parameter of `fn` that `prepare`'s result fills (e.g. `registry`).
        options: The shared options, passed to `prepare` by name.
        prepare: Shared option values -> the value of `into` (e.g. the opened registry).
        last: Options `fn` names as parameters (its default is replaced by the shared option), listed last.
    """
    own = inspect.signature(fn, eval_str=True).parameters
    tail = [_option(*spec) for spec in last if spec[0] in own]
    params = [p for name, p in own.items() if name != into and name not in {t.name for t in tail}]
    params += [_option(*spec) for spec in options] + tail

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        shared = {name: kwargs.pop(name) for name, _, _ in options}
        return fn(**{into: prepare(**shared)}, **kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return command


_REGISTRY_OPTIONS: Shared = (
    ("config", Path | None, ConfigOpt),
    ("store", str | None, StoreOpt),
    ("project", str | None, ProjectOpt),
)


def registry_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A command over one project's registry: `fn(registry, ...)` gets `--config/--store/--project` opened.

    Typer sees `fn`'s own arguments and options, then `--config`, `--store` and `--project`, then
    `--json` when `fn` has `as_json`. The registry is `open_registry(config, store, project)`.
    """
    return with_options(fn, "registry", _REGISTRY_OPTIONS, open_registry, last=(("as_json", bool, JsonOpt),))


def os_error_message(err: OSError) -> str:
    """One line for a filesystem refusal: which path, what the system said, and what to check."""
    import os

    path = err.filename or "a file"
    who = f"uid {os.getuid()}" if hasattr(os, "getuid") else "this user"
    what = err.strerror or type(err).__name__
    fix = {
        errno.EROFS: "the file system is mounted read-only; point storage.uri at a writable location",
        errno.ENOSPC: "the disk is full; free space or point storage.uri elsewhere",
        errno.EDQUOT: "the disk quota is exhausted; free space or point storage.uri elsewhere",
    }.get(err.errno or 0, f"{who} needs write permission there: check the owner and mode of the store (storage.uri)")
    return f"cannot use {path}: {what} — {fix}"


def friendly_errors(fn: Callable) -> Callable:
    """Turn the library's expected errors and cluster failures into one red line and exit code 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from civicml.config import ConfigError
        from civicml.data.errors import DataError
        from civicml.deploy.cluster import ClusterError, explain, is_cluster_failure
        from civicml.storage.registry import RegistryError
        from civicml.storage.store import StoreError

        try:
            return fn(*args, **kwargs)
        except (ConfigError, DataError, RegistryError, StoreError, FileNotFoundError, ValueError, ClusterError) as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except (PermissionError, IsADirectoryError, NotADirectoryError) as err:
            err_console.print(f"[bold red]error:[/] {os_error_message(err)}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except OSError as err:
            if err.errno not in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM):
                raise
            err_console.print(f"[bold red]error:[/] {os_error_message(err)}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except Exception as err:
            # No kubeconfig, an unreachable API server, a 403: one line, never a traceback.
            if not is_cluster_failure(err):
                raise
            err_console.print(f"[bold red]error:[/] {explain(err)}", highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper


StartedByOpt = typer.Option(
    None,
    "--started-by",
    help="Who starts this run (recorded in the lineage and audit log; that person cannot approve the "
    "version). Default: CIVICML_ACTOR, else your OS user name.",
)


def apply_started_by(started_by: str | None) -> None:
    """Make `started_by` the acting person for this command (CIVICML_ACTOR).

    Local steps (kfp.local subprocesses) inherit the environment; `submit`/`schedule` send it
    as the pipeline's `started_by` parameter, since a cluster's step pods cannot see it.
    """
    import os

    if started_by is None:
        return
    if not started_by.strip():
        raise typer.BadParameter("must not be empty (e.g. --started-by 'A. Jones')", param_hint="--started-by")
    os.environ["CIVICML_ACTOR"] = started_by.strip()

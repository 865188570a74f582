"""`civicml reproduce VERSION`: retrain a version from its lineage and compare the model hash."""

from __future__ import annotations

import typer
from rich.table import Table

from civicml.cli.common import console, friendly_errors, registry_command
from civicml.cli.storage import VersionArg, _fmt, _print_json


@friendly_errors
@registry_command
def reproduce_cmd(registry, version: str = VersionArg, as_json: bool = False) -> None:
    """Retrain a version from its recorded lineage and check the model hash is identical (exit 1 if not)."""
    from civicml.reproduce import reproduce

    man = registry.manifest(version)
    with console.status(f"retraining {man['version']} from its lineage…"):
        result = reproduce(registry, man["version"])
    if as_json:
        _print_json(result)
    else:
        colour = "green" if result["identical"] else "red"
        console.print(f"[bold {colour}]{result['verdict']}[/]", highlight=False)
        console.print(f"recorded   model sha256 {result['recorded_model_sha256']}", highlight=False)
        console.print(f"reproduced model sha256 {result['reproduced_model_sha256']}", highlight=False)
        if result["differences"]:
            table = Table(title="recorded inputs that differ now")
            for col in ("input", "key", "recorded", "current"):
                table.add_column(col)
            for d in result["differences"]:
                table.add_row(d["input"], d["key"], _fmt(d["recorded"]), _fmt(d["current"]))
            console.print(table)
    if not result["identical"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `reproduce` to `app`."""
    app.command("reproduce")(reproduce_cmd)

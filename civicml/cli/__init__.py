"""`civicml` command line: one Typer app (`civicml.cli.commands`); each concern registers its own commands.

`main` is the console script. `app` is resolved on first use (PEP 562), so that `civicml run` can
start its warm step host (`civicml.steps.host`) before the commands and their libraries are
imported: the host has seconds of imports of its own to do, and the first steps need them.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any


def main() -> None:
    """The `civicml` command."""
    context: AbstractContextManager[Any] = nullcontext()
    if sys.argv[1:2] == ["run"]:
        from civicml.steps import host

        context = host.offered()  # `run` finds it offered and uses it
    with context:
        from civicml.cli.commands import app

        app()


def __getattr__(name: str) -> Any:
    if name == "app":
        from civicml.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

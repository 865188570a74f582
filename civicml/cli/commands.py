"""The `civicml` Typer app with every command registered: each concern registers its own."""

from __future__ import annotations

from civicml.cli import cluster, core, governance, monitoring, reproduce, review, serving, storage, tuning
from civicml.cli.common import app

for _module in (core, storage, reproduce, tuning, governance, serving, monitoring, cluster, review):
    _module.register(app)

__all__ = ["app"]

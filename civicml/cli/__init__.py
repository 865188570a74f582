"""`civicml` command line: one Typer app; each concern registers its commands from its own module."""

from __future__ import annotations

from civicml.cli import cluster, core, governance, monitoring, reproduce, review, serving, storage, tuning
from civicml.cli.common import app

for _module in (core, storage, reproduce, tuning, governance, serving, monitoring, cluster, review):
    _module.register(app)

__all__ = ["app"]

"""Applies `dsl.component` with civicml's fixed settings."""

from __future__ import annotations

from collections.abc import Callable

from kfp import dsl


def make_component(fn: Callable, image: str):
    """Wrap `fn` as a Lightweight Python Component that installs nothing at run time."""
    return dsl.component(fn, base_image=image, install_kfp_package=False)

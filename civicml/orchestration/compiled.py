"""The compiled pipelines that ship with civicml: `pipelines/compiled/*.yaml`, package data of the wheel.

`civicml compile` (`make compile`) writes them and the tests check they are current; the image
installs them with the package. Orchestration runs and submits these files and never imports
`pipelines/` (the layer above it): a pipeline definition is compiled once, by the CLI.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

PIPELINES = ("training", "monitoring")


class CompiledPipelineError(RuntimeError):
    """The compiled pipeline YAML that should ship with civicml is missing."""


def shipped_pipeline(pipeline: str) -> Path:
    """The compiled YAML of `pipeline` (`training` or `monitoring`) installed with the package.

    Raises:
        CompiledPipelineError: unknown pipeline, or the file is not installed.
    """
    if pipeline not in PIPELINES:
        raise CompiledPipelineError(f"unknown pipeline {pipeline!r}; choose one of {', '.join(PIPELINES)}")
    # find_spec locates the package without running it: nothing of pipelines/ is imported.
    spec = importlib.util.find_spec("pipelines")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for root in locations:
        path = Path(root) / "compiled" / f"{pipeline}_pipeline.yaml"
        if path.is_file():
            return path
    raise CompiledPipelineError(
        f"the compiled {pipeline} pipeline is not installed (looked for compiled/{pipeline}_pipeline.yaml in "
        f"{locations or 'no pipelines package'}); run `make compile` and reinstall civicml (or rebuild the image)"
    )


def with_image(docs: list[dict[str, Any]], image: str) -> list[dict[str, Any]]:
    """The documents of a compiled pipeline with every executor's container image set to `image`.

    The shipped YAML names the image it was compiled for; a run started from inside a pipeline
    pod must use the image that pod runs (the same code), whatever tag the YAML was compiled with.
    """
    spec = {**docs[0]}
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    spec["deploymentSpec"] = {
        **spec.get("deploymentSpec", {}),
        "executors": {
            name: {**ex, "container": {**ex["container"], "image": image}} if "container" in ex else ex
            for name, ex in executors.items()
        },
    }
    return [spec, *docs[1:]]

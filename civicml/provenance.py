"""What produced a model: code revision, library versions, image. Recorded in every manifest."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

TRACKED = (
    "civicml",
    "xgboost-cpu",
    "xgboost",
    "scikit-learn",
    "pandas",
    "numpy",
    "pyarrow",
    "optuna",
    "fairlearn",
    "skops",
    "kfp",
)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that can change a model's bytes."""
    out = {"python": platform.python_version()}
    for name in TRACKED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def code_revision() -> str:
    """Git revision of the code: `CIVICML_REVISION` (set in the image) or `git rev-parse` in a checkout."""
    rev = os.environ.get("CIVICML_REVISION")
    if rev:
        return rev
    try:
        root = Path(__file__).resolve().parent.parent
        res = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        sha = res.stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def image() -> str:
    """The container image a step runs in (`CIVICML_IMAGE`), or `local`."""
    return os.environ.get("CIVICML_IMAGE", "local")

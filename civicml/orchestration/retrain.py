"""Start a triggered retraining: a local training run in a child process, or a run submitted to KFP.

The monitor's `monitor-retrain` step (`civicml.steps.retrain`) decides what to train on; this
module only starts the training pipeline and reports what was started. On KFP it submits the
compiled training pipeline that ships with civicml (`civicml.orchestration.compiled`), with the
config as the run's `config_json` parameter; it never compiles or imports `pipelines/`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from civicml.config import RunConfig
from civicml.orchestration.compiled import shipped_pipeline, with_image
from civicml.orchestration.kfp_client import kfp_host, submit_run


def retrain_target(cfg: RunConfig) -> str:
    """`kfp` or `local`: where a triggered retraining runs (see monitoring.retrain_target)."""
    if cfg.monitoring.retrain_target != "auto":
        return cfg.monitoring.retrain_target
    return "kfp" if kfp_host(cfg) else "local"


def run_training_locally(cfg: RunConfig) -> dict[str, Any]:
    """Run the training pipeline through `civicml run` in a child process; return its JSON summary.

    A child process because this step itself may run inside a KFP executor, where
    `_KFP_RUNTIME=true` makes `kfp.dsl` load only its runtime half and kfp.local cannot
    start; the child gets a clean environment (minus that flag) and the same store.
    """
    env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
    with tempfile.TemporaryDirectory(prefix="civicml-retrain-") as tmp:
        # JSON is YAML: the whole config, so the child trains exactly what the monitor decided.
        cfg_path = Path(tmp) / "retrain-config.yaml"
        cfg_path.write_text(cfg.to_json())
        proc = subprocess.run(
            [sys.executable, "-m", "civicml.cli", "run", "--config", str(cfg_path), "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"ok": False, "error": f"civicml run exited with {proc.returncode}: " + " | ".join(tail)}
    summary["ok"] = bool(summary.get("ok")) and proc.returncode == 0
    summary["committed"] = "metrics" in summary
    return {
        k: summary.get(k) for k in ("ok", "version", "committed", "decision", "result", "error", "log") if k in summary
    }


def submit_training(cfg: RunConfig) -> dict[str, Any]:
    """Submit one run of the shipped training pipeline with `cfg` as its config; returns the run id and host.

    Raises:
        CompiledPipelineError: the compiled training pipeline is not installed.
        SubmitError: no KFP endpoint or namespace, or the YAML is not a civicml pipeline.
    """
    import yaml

    # Inside a pipeline pod CIVICML_IMAGE names the running image; from a laptop the one
    # civicml image is the configured deploy.image (the same image serves and trains).
    image = os.environ.get("CIVICML_IMAGE") or cfg.deploy.image
    docs = [d for d in yaml.safe_load_all(shipped_pipeline("training").read_text()) if d is not None]
    with tempfile.TemporaryDirectory() as tmp:
        yaml_path = Path(tmp) / "training_pipeline.yaml"
        yaml_path.write_text(yaml.safe_dump_all(with_image(docs, image), sort_keys=False))
        sub = submit_run(cfg, "training", yaml_path)
    return {"target": "kfp", "run_id": sub.id, "host": sub.host}

"""The committed pipeline YAML is current, parses with the KFP SDK, and carries no secret or pip install."""

import os
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from civicml.config import load_config
from pipelines.monitoring_pipeline import compile_monitoring_pipeline
from pipelines.training_pipeline import compile_training_pipeline

ROOT = Path(__file__).resolve().parents[2]
COMPILED = ROOT / "pipelines" / "compiled" / "training_pipeline.yaml"
DEFAULT_IMAGE = "ghcr.io/civicml/civicml:0.1.0"


def _docs(path):
    return list(yaml.safe_load_all(path.read_text()))


@pytest.mark.parametrize(
    "name, build", [("training", compile_training_pipeline), ("monitoring", compile_monitoring_pipeline)]
)
def test_committed_yaml_is_current(tmp_path, name, build):
    cfg = load_config(ROOT / "civicml.yaml", resolve_paths=False)  # as `civicml compile` loads it
    fresh = build(
        tmp_path / "t.yaml", image=DEFAULT_IMAGE, default_config_json=cfg.to_json(), secret_name=cfg.storage.secret_name
    )
    committed = ROOT / "pipelines" / "compiled" / f"{name}_pipeline.yaml"
    assert fresh.read_text() == committed.read_text(), "run `make compile` and commit pipelines/compiled/"


@pytest.mark.parametrize("name", ["training", "monitoring"])
def test_every_compiled_pipeline_parses_and_installs_nothing(name):
    path = ROOT / "pipelines" / "compiled" / f"{name}_pipeline.yaml"
    spec = json_format.ParseDict(_docs(path)[0], pipeline_spec_pb2.PipelineSpec())
    for ex_name, ex in spec.deployment_spec["executors"].items():
        container = ex["container"]
        assert container["image"] == DEFAULT_IMAGE, ex_name
        text = " ".join(container["command"]) + " ".join(container["args"] if "args" in container else [])
        assert "pip install" not in text, ex_name


def test_yaml_parses_as_pipeline_spec_with_components_on_the_image():
    docs = _docs(COMPILED)
    spec = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
    assert spec.pipeline_info.name == "civicml-training"
    executors = spec.deployment_spec["executors"]
    assert len(executors) == 7
    for name, ex in executors.items():
        container = ex["container"]
        assert container["image"] == DEFAULT_IMAGE, name
        joined = " ".join(container["command"]) + " ".join(container["args"] if "args" in container else [])
        assert "pip install" not in joined and "packages_to_install" not in joined
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for ex in platform.values():
        assert ex["secretAsEnv"][0]["secretName"] == "civicml-object-store"


def test_no_credentials_in_compiled_yaml(tmp_path, monkeypatch):
    sentinel = "S3CR3T-sentinel-value"
    monkeypatch.setenv("MINIO_SECRET_KEY", sentinel)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", sentinel)
    cfg = load_config(ROOT / "civicml.yaml")
    path = compile_training_pipeline(
        tmp_path / "p.yaml", image=DEFAULT_IMAGE, default_config_json=cfg.to_json(), secret_name=cfg.storage.secret_name
    )
    text = path.read_text()
    assert sentinel not in text
    assert sentinel not in COMPILED.read_text()
    assert "MINIO_SECRET_KEY" in text  # referenced by name from the Secret, never by value
    assert os.environ["MINIO_SECRET_KEY"] == sentinel

"""Item 15: every command that needs a cluster says what is wrong in one line, exits 1, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from civicml.cli import app
from civicml.config import RunConfig
from civicml.serving.routing import CHAMPION
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore


def _kubeconfig(path, server: str) -> str:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    store = tmp_path / "store"
    monkeypatch.setenv("CIVICML_STORE_URI", str(store))
    reg = Registry(LocalStore(store))
    for v in ("v1", "v2"):
        reg.commit(v, {}, {"status": "approved"})
    reg.set_alias(CHAMPION, "v1", by="t", reason="t")
    reg.set_alias(CHAMPION, "v2", by="t", reason="t")
    cfg = RunConfig.model_validate({"deploy": {"target": "kubernetes"}, "tuning": {"backend": "katib"}})
    (tmp_path / "civicml.yaml").write_text(yaml.safe_dump(json.loads(cfg.to_json())))
    return tmp_path


COMPILED = Path(__file__).resolve().parents[2] / "pipelines" / "compiled" / "training_pipeline.yaml"

COMMANDS = [
    ["tune", "--backend", "katib"],
    ["deploy", "v1", "--target", "kubernetes"],
    ["rollback"],
]


def _assert_one_line_error(result, *words):
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_no_kubeconfig(project, monkeypatch, command):
    monkeypatch.setenv("KUBECONFIG", str(project / "missing-kubeconfig"))
    result = CliRunner().invoke(app, command, terminal_width=400)
    _assert_one_line_error(result, "no Kubernetes cluster configured", "KUBECONFIG")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_unreachable_api_server(project, monkeypatch, command):
    # Port 1 on loopback: connection refused, immediately.
    monkeypatch.setenv("KUBECONFIG", _kubeconfig(project / "kubeconfig", "https://127.0.0.1:1"))
    result = CliRunner().invoke(app, command, terminal_width=400)
    _assert_one_line_error(result, "unreachable", "kubectl cluster-info")


@pytest.mark.parametrize("command", [["submit"], ["schedule", "--pipeline", "training", "--cron", "0 0 2 * * *"]])
def test_kfp_commands_with_an_unreachable_host(project, monkeypatch, command):
    monkeypatch.setenv("KFP_HOST", "http://127.0.0.1:1")
    result = CliRunner().invoke(app, [*command, "--pipeline-file", str(COMPILED)], terminal_width=400)
    _assert_one_line_error(result, "KFP API refused or could not be reached")

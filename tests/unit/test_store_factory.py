"""Stores are built by URI scheme from one registry; the store Secret is wired into pods in one place."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from civicml.config import load_config
from civicml.storage.base import Store, StoreError
from civicml.storage.factory import STORES, StoreRegistry, open_store
from civicml.storage.local import LocalStore
from civicml.storage.s3_settings import secret_env_mapping, store_secret_env


def test_a_registered_scheme_builds_its_store_and_an_unknown_one_is_refused(tmp_path):
    built: list[str] = []
    reg = StoreRegistry()
    reg.register("mem", lambda uri: built.append(uri) or LocalStore(tmp_path / "mem"))
    assert isinstance(reg.get_store("mem://x"), LocalStore) and built == ["mem://x"]
    with pytest.raises(StoreError, match="unsupported store URI 'ftp://x'"):
        reg.get_store("ftp://x")
    assert {StoreRegistry.scheme_of(u) for u in ("s3://b/p", "file:///d", "rel/dir", "/abs")} == {"s3", "file", ""}
    assert {"", "file", "s3"} <= set(STORES._builders)


def test_a_local_store_never_imports_the_s3_client(tmp_path):
    code = (
        "import json, sys; from civicml.storage.factory import open_store; "
        f"open_store({str(tmp_path)!r}, explicit=True).put_bytes('a', b'1'); print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)
    assert "minio" not in loaded and "civicml.storage.s3" not in loaded


def test_list_keys_is_the_listing_and_list_does_not_shadow_the_builtin(tmp_path):
    store = open_store(str(tmp_path), explicit=True)
    store.put_bytes("p/one", b"1")
    store.put_bytes("q/two", b"2")
    assert store.list_keys("p/") == ["p/one"]
    assert "list_keys" in Store.__abstractmethods__ and not hasattr(Store, "list")


def _env(container_spec: dict) -> list[dict]:
    return container_spec["containers"][0]["env"]


def _env_entries(node) -> list[dict]:
    """Every `env` entry anywhere in an object (a TrainJob nests them in its pod template overrides)."""
    if isinstance(node, dict):
        found = list(node["env"]) if isinstance(node.get("env"), list) else []
        return found + [e for v in node.values() for e in _env_entries(v)]
    if isinstance(node, list):
        return [e for v in node for e in _env_entries(v)]
    return []


def test_every_pod_gets_the_store_credentials_from_the_one_wiring():
    from civicml.deploy.kubernetes import build_objects
    from civicml.deploy.trainjob import build_trainjob, trainjob_body
    from civicml.serving.routing import Routing
    from civicml.tuning.katib_backend import trial_job

    cfg = load_config(None, {"storage.uri": "s3://bucket/p", "training.workers": 2})
    wanted = store_secret_env(cfg.storage.secret_name)
    assert (
        [e["name"] for e in wanted] == list(secret_env_mapping().values()) == ["MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"]
    )
    assert all(e["valueFrom"]["secretKeyRef"] == {"name": cfg.storage.secret_name, "key": e["name"]} for e in wanted)
    deployment = build_objects(cfg, Routing(champion="v1"))[-1]
    assert deployment["kind"] == "Deployment"
    # The model server reads the store with its own, narrower credential; pipeline pods with the runner's.
    server = _env(deployment["spec"]["template"]["spec"])
    assert all(e in server for e in store_secret_env(cfg.storage.server_secret_name))
    assert not any(e in server for e in wanted)
    assert all(e in _env(trial_job(cfg, "v1", {})["spec"]["template"]["spec"]) for e in wanted)
    assert all(e in _env_entries(trainjob_body(build_trainjob(cfg, "v1"))) for e in wanted)

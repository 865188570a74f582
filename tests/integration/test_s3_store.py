"""The S3 store against a real MinIO server over HTTP on loopback with the real `minio` client.

Covers: the pipeline's steps writing a whole version into a versioned bucket, a run that
dies mid-upload leaving nothing visible, tampering caught on load and by `models verify`,
transient-error retries, and clear credential-free errors for a missing bucket, refused
credentials and a stopped server.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import typer
from support import FAST, register_trained, train_through_gate
from typer.testing import CliRunner

from civicml import steps
from civicml.cli import storage as storage_cli
from civicml.config import load_config
from civicml.governance.audit import AuditLog
from civicml.steps import _io as steps_io
from civicml.storage.registry import IntegrityError, Registry, RegistryError
from civicml.storage.s3 import S3Store
from civicml.storage.store import Store, StoreError, open_store


def _cli(*args: str):
    app = typer.Typer()
    storage_cli.register(app)
    return CliRunner().invoke(app, list(args))


def run_steps(cfg, work: Path, report: bool = False) -> dict:
    """validate -> tune -> train -> evaluate -> gate -> register, as the pipeline does; returns the manifest."""
    train_through_gate(cfg, work, report)
    return register_as(cfg, work, None)


register_as = register_trained


def _bucket_objects(env) -> dict[str, bytes]:
    out = {}
    for obj in env.client.list_objects(env.bucket, prefix=env.prefix + "/", recursive=True):
        resp = env.client.get_object(env.bucket, obj.object_name)
        try:
            out[obj.object_name[len(env.prefix) + 1 :]] = resp.read()
        finally:
            resp.close()
            resp.release_conn()
    return out


def test_roundtrip_on_a_versioned_bucket(s3_env):
    store = open_store(".civicml-not-used")  # CIVICML_STORE_URI points at the bucket
    assert isinstance(store, S3Store) and store.uri == s3_env.uri
    assert env_has_versioning(s3_env)
    store.put_bytes("a/one.json", b"1")
    store.put_bytes("a/two.json", b"22")
    store.put_bytes("ab/three", b"333")
    assert store.get_bytes("a/two.json") == b"22"
    assert store.exists("a/one.json") and not store.exists("a/none")
    assert store.list_keys("a/") == ["a/one.json", "a/two.json"]
    assert [(o.key, o.size) for o in store.list_info("a")] == [("a/one.json", 1), ("a/two.json", 2), ("ab/three", 3)]
    store.put_bytes("a/one.json", b"replaced")
    assert store.get_bytes("a/one.json") == b"replaced"
    store.delete("a/one.json")
    assert store.list_keys("a/") == ["a/two.json"]
    with pytest.raises(FileNotFoundError, match="no object 'a/one.json'"):
        store.get_bytes("a/one.json")
    # Keys live under the URI's prefix, and only there.
    names = {o.object_name for o in s3_env.client.list_objects(s3_env.bucket, recursive=True)}
    assert names == {"registry/a/two.json", "registry/ab/three"}
    assert s3_env.server.secret_key not in store.describe() and s3_env.server.access_key not in store.describe()


def env_has_versioning(env) -> bool:
    return env.client.get_bucket_versioning(env.bucket).status == "Enabled"


def test_steps_write_a_complete_verified_version_to_the_bucket(s3_env, tmp_path):
    cfg = load_config(None, FAST)
    man = run_steps(cfg, tmp_path, report=True)
    version = man["version"]
    objects = _bucket_objects(s3_env)
    assert f"versions/{version}/manifest.json" in objects
    assert json.loads(objects[f"versions/{version}/manifest.json"])["model_sha256"] == man["model_sha256"]
    assert {
        "model/model.ubj",
        "model/model.json",
        "tuning.json",
        "evaluation.json",
        "data/contract.json",
        "report.html",
    } <= set(man["artifacts"])
    from civicml.storage.registry import sha256_bytes

    for name, entry in man["artifacts"].items():
        assert sha256_bytes(objects[entry["key"]]) == entry["sha256"], name
    reg = Registry(open_store())
    assert reg.verify(version) == []
    assert steps.deploy(cfg, version)["version"] == version
    assert reg.get_alias("champion") == version
    res = _cli("models", "verify")
    assert res.exit_code == 0, res.output


class FailingStore(Store):
    """Wraps a real store and fails the (n+1)-th put, like a run killed mid-upload."""

    def __init__(self, inner: Store, fail_after: int):
        self.inner, self.fail_after, self.puts = inner, fail_after, 0
        self.uri = inner.uri

    def put_bytes(self, key, data):
        if key.startswith("staging/"):
            self.puts += 1
            if self.puts > self.fail_after:
                raise StoreError("injected failure: connection lost during upload")
        self.inner.put_bytes(key, data)

    def create(self, key, data):
        return self.inner.create(key, data)

    def replace(self, key, data, if_match):
        return self.inner.replace(key, data, if_match)

    def read(self, key):
        return self.inner.read(key)

    def get_bytes(self, key):
        return self.inner.get_bytes(key)

    def exists(self, key):
        return self.inner.exists(key)

    def list_keys(self, prefix=""):
        return self.inner.list_keys(prefix)

    def list_info(self, prefix=""):
        return self.inner.list_info(prefix)

    def delete(self, key):
        self.inner.delete(key)


def test_run_failing_mid_upload_leaves_no_version_and_no_alias_move(s3_env, tmp_path, monkeypatch):
    cfg = load_config(None, FAST)
    first = run_steps(cfg, tmp_path)
    steps.deploy(cfg, first["version"])
    reg = Registry(open_store())
    history = reg.alias_history("champion")
    audit_before = len(AuditLog(reg.store).records())

    failing = FailingStore(open_store(), fail_after=3)
    with monkeypatch.context() as m:
        m.setattr(steps_io, "open_store", lambda uri=None: failing)  # the registry every step opens
        with pytest.raises(StoreError, match="injected failure"):
            register_as(cfg, tmp_path, "v-second")
    assert failing.puts == 4  # three artifacts reached the bucket before the failure
    assert len(reg.store.list_keys("staging/v-second/")) == 3
    assert [m["version"] for m in reg.versions()] == [first["version"]]
    with pytest.raises(RegistryError, match="no model version 'v-second'"):
        reg.manifest("v-second")
    assert reg.get_alias("champion") == first["version"] and reg.alias_history("champion") == history
    assert len(AuditLog(reg.store).records()) == audit_before  # no commit was recorded
    assert reg.abandoned_staging(0) == ["v-second"]
    listed = json.loads(_cli("models", "list", "--json").output)
    assert [m["version"] for m in listed] == [first["version"]]

    # The retried step (same version id) overwrites the partial upload and commits.
    second = register_as(cfg, tmp_path, "v-second")
    # (order-free: both commits can fall in the same second, and "v-second" is not a timestamped id)
    assert sorted(m["version"] for m in reg.versions()) == sorted([first["version"], "v-second"])
    assert reg.verify(second["version"]) == [] and reg.abandoned_staging(0) == []

    # Leftovers of a run that never came back are removed by gc, committed data is not.
    failing = FailingStore(open_store(), fail_after=2)
    with monkeypatch.context() as m:
        m.setattr(steps_io, "open_store", lambda uri=None: failing)  # the registry every step opens
        with pytest.raises(StoreError):
            register_as(cfg, tmp_path, "v-killed")
    res = _cli("models", "gc", "--older-than", "0")
    assert res.exit_code == 0 and "v-killed" in res.output
    assert reg.store.list_keys("staging/v-killed/") == []
    assert _cli("models", "verify").exit_code == 0


def test_tampered_artifact_refused_on_load_and_by_models_verify(s3_env, tmp_path):
    cfg = load_config(None, FAST)
    good = run_steps(cfg, tmp_path)
    bad = register_as(cfg, tmp_path, "v-tampered")
    key = f"{s3_env.prefix}/{bad['artifacts']['model/model.ubj']['key']}"
    s3_env.client.put_object(s3_env.bucket, key, io.BytesIO(b"not the model"), 13)  # a new object version
    reg = Registry(open_store())
    with pytest.raises(IntegrityError, match="'model/model.ubj' of version v-tampered failed its integrity check"):
        reg.fetch_prefix(bad["version"], "model", tmp_path / "load")
    with pytest.raises(IntegrityError):
        reg.read_artifact(bad["version"], "model/model.ubj")
    res = _cli("models", "verify")
    assert res.exit_code == 1
    assert "FAIL v-tampered" in res.output and f"ok   {good['version']}" in res.output
    assert _cli("models", "verify", good["version"]).exit_code == 0
    assert _cli("models", "verify", "v-tampered").exit_code == 1
    from civicml.governance.promotion import promote

    with pytest.raises(RegistryError, match="refusing"):
        promote(reg, bad["version"], by="test", reason="tampered")
    assert reg.get_alias("champion") is None


def test_transient_errors_are_retried(s3_env, monkeypatch):
    from minio.error import ServerError

    store = open_store()
    real = store.client.put_object
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) < 3:
            raise ServerError("server failed with HTTP status code 503", 503)
        return real(*args, **kwargs)

    monkeypatch.setattr(store.client, "put_object", flaky)
    store.backoff = 0.01
    store.put_bytes("k", b"v")
    assert len(calls) == 3 and store.get_bytes("k") == b"v"
    calls.clear()
    store.attempts = 2
    with pytest.raises(StoreError, match="failed to write registry/k: HTTP 503 after 2 attempts"):
        store.put_bytes("k", b"v")


def test_missing_bucket_is_one_clear_error(s3_env, monkeypatch):
    monkeypatch.setenv("CIVICML_STORE_URI", "s3://no-such-bucket-here/p")
    store = open_store()
    with pytest.raises(StoreError, match="bucket 'no-such-bucket-here' does not exist at s3://no-such-bucket-here/p"):
        store.list_keys("versions/")
    res = _cli("models", "list")
    assert res.exit_code == 1 and "does not exist" in res.output and "Traceback" not in res.output


def test_refused_credentials_never_reveal_the_secret(s3_env, monkeypatch):
    # MinIO checks every signature: an unknown access key is refused (InvalidAccessKeyId, HTTP 403).
    secret = "Sup3r-S3cret-Value-Never-Printed"
    monkeypatch.setenv("MINIO_ACCESS_KEY", "AKIAUNKNOWNKEY000001")
    monkeypatch.setenv("MINIO_SECRET_KEY", secret)
    with pytest.raises(StoreError) as exc:
        open_store().get_bytes("versions/x/manifest.json")
    msg = str(exc.value)
    assert "refused the credentials" in msg and "MINIO_ACCESS_KEY" in msg
    assert secret not in msg and "AKIAUNKNOWNKEY000001" not in msg
    assert exc.value.__cause__ is None and exc.value.__suppress_context__
    res = _cli("models", "list")
    assert res.exit_code == 1 and "refused the credentials" in res.output
    assert secret not in res.output and "Traceback" not in res.output


def test_stopped_server_is_a_clear_error_not_a_traceback(private_s3_server, monkeypatch):
    srv = private_s3_server
    srv.make_bucket("civicml-stopped")
    for var, value in srv.env("s3://civicml-stopped/r").items():
        monkeypatch.setenv(var, value)
    open_store().put_bytes("x", b"1")
    srv.stop()
    store = open_store()
    store.backoff = 0.01
    with pytest.raises(
        StoreError,
        match=f"cannot reach the object store at s3://civicml-stopped/r \\(endpoint "
        f"{srv.url}\\) .* after 3 attempts .*Connection refused",
    ):
        store.get_bytes("x")
    res = _cli("models", "list")
    assert res.exit_code == 1 and "cannot reach the object store" in res.output
    assert "Traceback" not in res.output and srv.secret_key not in res.output


@pytest.mark.slow
def test_whole_pipeline_through_kfp_local_on_the_s3_store(s3_env, tmp_path, monkeypatch):
    from kfp.local import config as local_config

    from civicml.orchestration.local import failure_detail, run_pipeline

    local_config.LocalExecutionConfig.instance = None
    monkeypatch.chdir(tmp_path)  # the S3 env from s3_env must stay, so not kfp_local_isolated
    cfg = load_config(None, {**FAST, "policy.fairness": [], "policy.min_metrics": {"roc_auc": 0.5}})
    assert "s3://" not in cfg.to_json()  # the pipeline parameter carries no store location or secret
    try:
        run = run_pipeline(cfg, workdir=tmp_path / "runs")
    finally:
        local_config.LocalExecutionConfig.instance = None
    assert run.ok, failure_detail(run)
    objects = _bucket_objects(s3_env)
    man = json.loads(objects[f"versions/{run.version}/manifest.json"])
    from civicml.storage.registry import sha256_bytes

    assert {"model/model.ubj", "evaluation.json", "gate.json", "data/data_info.json"} <= set(man["artifacts"])
    for name, entry in man["artifacts"].items():
        assert sha256_bytes(objects[entry["key"]]) == entry["sha256"], name
    reg = Registry(open_store())
    assert reg.verify(run.version) == [] and reg.get_alias("champion") == run.version
    log = run.log_path.read_text()
    assert s3_env.server.secret_key not in log
    assert _cli("models", "verify").exit_code == 0


def test_data_source_read_from_the_bucket(s3_env):
    from civicml.data.demo import generate_benefits
    from civicml.data.errors import DataError
    from civicml.data.sources import load_table

    body = generate_benefits(rows=200, month=1, bias=0.0, seed=1).to_csv(index=False).encode()
    s3_env.client.put_object(s3_env.bucket, "incoming/claims.csv", io.BytesIO(body), len(body))
    df = load_table(f"s3://{s3_env.bucket}/incoming/claims.csv")
    assert len(df) == 200 and "needs_review" in df.columns
    with pytest.raises(DataError, match="does not exist in the object store"):
        load_table(f"s3://{s3_env.bucket}/incoming/missing.csv")


def test_conditional_writes_on_the_real_server(s3_env):
    """A second create fails, a stale If-Match fails, racing creators have one winner (issue 16 item 1).

    upstream: minio/minio cmd/erasure-object.go:1261-1275 (precondition checked under the object's
    namespace lock) and cmd/object-handlers-common.go:140-200 (If-None-Match `*` matches any ETag ->
    412 PreconditionFailed) @ 7aac2a2c.
    """
    from concurrent.futures import ThreadPoolExecutor

    from civicml.storage.store import StoreConflict

    store = open_store()
    etag = store.create("cond/one.json", b"first")
    with pytest.raises(StoreConflict, match="already exists"):
        store.create("cond/one.json", b"second")
    data, read_etag = store.read("cond/one.json")
    assert (data, read_etag) == (b"first", etag)
    new_etag = store.replace("cond/one.json", b"third", if_match=etag)
    with pytest.raises(StoreConflict, match="changed since it was read"):
        store.replace("cond/one.json", b"fourth", if_match=etag)
    assert store.read("cond/one.json") == (b"third", new_etag)

    def attempt(n: int) -> bool:
        try:
            open_store().create("cond/race.json", str(n).encode())
            return True
        except StoreConflict:
            return False

    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(attempt, range(16)))
    assert wins.count(True) == 1


def test_minio_put_object_turns_if_none_match_into_metadata(s3_env):
    """Why civicml does not use `put_object(metadata=...)`: minio-py 7.2 sends it as x-amz-meta-*, and overwrites.

    upstream: minio-py minio/helpers.py `normalize_headers` (every key not x-amz-* or a standard content
    header becomes user metadata) @ 7.2.20.
    """
    client = s3_env.client
    name = f"{s3_env.prefix}/cond/meta.json"
    client.put_object(s3_env.bucket, name, io.BytesIO(b"1"), 1)
    client.put_object(s3_env.bucket, name, io.BytesIO(b"2"), 1, metadata={"If-None-Match": "*"})
    resp = client.get_object(s3_env.bucket, name)
    try:
        assert resp.read() == b"2"  # overwritten: the precondition never reached the server as one
    finally:
        resp.close()
        resp.release_conn()
    stat = client.stat_object(s3_env.bucket, name)
    assert any(k.lower() == "x-amz-meta-if-none-match" for k in stat.metadata)

"""The S3 store on a real MinIO through whole `civicml run`s (kfp.local subprocesses, the real CLI):
a run commits a verified version into a versioned bucket, a tampered object is refused while its
previous object version survives, and MinIO going away mid-run gives one clear error and leaves no
visible version (checked after MinIO comes back with the same data)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from civicml.storage.registry import IntegrityError, Registry
from civicml.storage.store import open_store

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("kfp_local_isolated")]
FAST = [
    "--set", "data.demo.rows=1500", "--set", "tuning.max_trials=1", "--set", "model.n_threads=1",
]  # fmt: skip


def civicml_run(*extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "civicml.cli", "run", "--config", str(ROOT / "civicml.yaml"), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CIVICML_ACTOR": "minio-test"},
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def test_a_whole_run_commits_a_verified_version_in_a_versioned_bucket(s3_env):
    code, out = finish(civicml_run(*FAST))
    assert code == 0, out
    reg = Registry(open_store())
    (version,) = [m["version"] for m in reg.versions()]
    assert reg.verify(version) == []
    assert s3_env.client.get_bucket_versioning(s3_env.bucket).status == "Enabled"
    manifest = reg.manifest(version)
    key = f"{s3_env.prefix}/{manifest['artifacts']['model/model.ubj']['key']}"
    # Tamper: a new object version under the same key. The load refuses it; the bucket still holds
    # the original as a non-current version (versioning on), which is how an operator restores it.
    s3_env.client.put_object(s3_env.bucket, key, io.BytesIO(b"not the model"), 13)
    with pytest.raises(IntegrityError, match="failed its integrity check"):
        reg.read_artifact(version, "model/model.ubj")
    versions = list(s3_env.client.list_objects(s3_env.bucket, prefix=key, include_version=True))
    assert len(versions) == 2 and sum(v.is_latest == "true" for v in versions) == 1


def test_minio_stopped_mid_run_is_one_clear_error_and_no_visible_version(private_s3_server, monkeypatch):
    srv = private_s3_server
    client = srv.make_bucket("civicml-outage")
    for var, value in srv.env("s3://civicml-outage/registry").items():
        monkeypatch.setenv(var, value)
    proc = civicml_run(*FAST)
    # Stop MinIO as soon as the run has started writing its version (staging/), long before the commit.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if any(True for _ in client.list_objects("civicml-outage", prefix="registry/staging/", recursive=True)):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it wrote anything to staging/"
    srv.stop(keep_data=True)
    code, out = finish(proc)
    assert code != 0, out
    assert "Traceback" not in out, out
    assert out.count("cannot reach the object store") >= 1, out
    assert srv.secret_key not in out
    srv.restart()
    reg = Registry(open_store())
    assert reg.versions() == []
    assert reg.get_alias("champion") is None

"""Shared pytest fixtures.

S3: `s3_server` runs one real MinIO server for the whole session (built from its Go
module by tools/testcluster/build.sh, started on 127.0.0.1 on a free port with generated
root credentials); `s3_env` gives each test a fresh versioned bucket and points civicml at
it through the environment, exactly as a cluster would (CIVICML_STORE_URI,
CIVICML_S3_ENDPOINT, CIVICML_S3_SECURE, MINIO_ACCESS_KEY/MINIO_SECRET_KEY). Subprocesses
(kfp.local tasks) inherit those variables, so a whole local pipeline run uses the bucket too.
`private_s3_server` is a MinIO process of the test's own, which it may stop mid-test.

Tests share the session server and isolate themselves by bucket name. If the MinIO binary is
missing it is built first (a few minutes, once per machine; see README "Tests and the real
servers"); if that fails the tests error with the reason. Only an explicit
CIVICML_SKIP_CLUSTER=1 (refused when CI is set) skips them, and the run summary says so.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from dataclasses import dataclass

import pytest
from support import start_real_server
from testcluster.minio import MinioServer, start_minio
from testcluster.procs import SKIP_ENV, skip_requested

S3_REGION = "us-east-1"


def pytest_configure(config):
    if skip_requested() and os.environ.get("CI"):
        raise pytest.UsageError(f"{SKIP_ENV} is set but so is CI: CI must run the real-server tests")


REAL_SERVER_FIXTURES = {"s3_server", "private_s3_server", "s3_env", "control_plane"}


def pytest_collection_modifyitems(config, items):
    # Everything that needs a real server is `cluster`: `-m "not cluster"` runs without Go.
    for item in items:
        if REAL_SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


def pytest_terminal_summary(terminalreporter):
    if skip_requested():
        terminalreporter.write_sep(
            "!", f"{SKIP_ENV} is set: tests needing MinIO or the Kubernetes control plane were SKIPPED", red=True
        )


class S3Server(MinioServer):
    """A running S3 endpoint (real MinIO) with what the tests need on top: civicml's env, buckets."""

    def env(self, uri: str) -> dict[str, str]:
        """The environment that makes civicml use store `uri` on this server (as a cluster's Secret/env do)."""
        return {
            "CIVICML_STORE_URI": uri,
            "CIVICML_S3_ENDPOINT": self.url,
            "CIVICML_S3_SECURE": "false",
            "CIVICML_S3_REGION": S3_REGION,
            "MINIO_ACCESS_KEY": self.access_key,
            "MINIO_SECRET_KEY": self.secret_key,
        }

    def make_bucket(self, bucket: str):
        """Create `bucket` with versioning enabled; return a minio client for direct checks."""
        from minio import Minio
        from minio.versioningconfig import ENABLED, VersioningConfig

        client = Minio(
            self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False, region=S3_REGION
        )
        client.make_bucket(bucket)
        client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
        return client


@dataclass
class S3Env:
    """What `s3_env` set up: a versioned bucket, the store URI and a raw minio client for checks."""

    server: S3Server
    bucket: str
    prefix: str
    uri: str
    client: object


def start_s3_server() -> S3Server:
    """Start a real MinIO on 127.0.0.1 with a free port and generated credentials (caller stops it)."""
    srv = start_real_server(start_minio)
    return S3Server(**{f.name: getattr(srv, f.name) for f in dataclasses.fields(srv)})


@pytest.fixture(scope="session")
def s3_server():
    """One S3 server for the test session. Do not stop it: use `private_s3_server` for that."""
    srv = start_s3_server()
    yield srv
    srv.stop()


@pytest.fixture
def private_s3_server():
    """An S3 server of this test's own, which the test may stop (e.g. to test an unreachable store)."""
    srv = start_s3_server()
    yield srv
    srv.stop()


def use_s3_store(monkeypatch, server: S3Server, uri: str) -> None:
    """Point civicml at store `uri` on `server` for this test (AWS_* variables are cleared)."""
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(var, raising=False)
    for var, value in server.env(uri).items():
        monkeypatch.setenv(var, value)


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> S3Env:
    """A fresh versioned bucket on `s3_server` and the environment that makes civicml use it as its store."""
    bucket = f"civicml-test-{uuid.uuid4().hex[:12]}"
    client = s3_server.make_bucket(bucket)
    prefix = "registry"
    uri = f"s3://{bucket}/{prefix}"
    use_s3_store(monkeypatch, s3_server, uri)
    return S3Env(s3_server, bucket, prefix, uri, client)

"""Shared pytest fixtures.

S3: `s3_server` runs one real S3 endpoint for the whole session (moto's
ThreadedMotoServer over HTTP on 127.0.0.1, a free port); `s3_env` gives each test a
fresh versioned bucket and points civicml at it through the environment, exactly as
a cluster would (CIVICML_STORE_URI, CIVICML_S3_ENDPOINT, CIVICML_S3_SECURE,
MINIO_ACCESS_KEY/MINIO_SECRET_KEY). Subprocesses (kfp.local tasks) inherit those
variables, so a whole local pipeline run uses the bucket too.

Moto keeps all buckets in process memory shared by every server it starts, so tests
isolate themselves by bucket name, never by server.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import pytest

TEST_ACCESS_KEY = "civicml-test-access"
TEST_SECRET_KEY = "civicml-test-secret-d0n0tl0g"


@dataclass
class S3Server:
    """A running S3 endpoint: `endpoint` is host:port, `url` is http://host:port."""

    server: object
    host: str
    port: int
    access_key: str = TEST_ACCESS_KEY
    secret_key: str = TEST_SECRET_KEY
    stopped: bool = False

    def stop(self) -> None:
        """Stop serving (idempotent); requests then fail with connection refused."""
        if not self.stopped:
            self.server.stop()
            self.stopped = True

    def env(self, uri: str) -> dict[str, str]:
        """The environment that makes civicml use store `uri` on this server (as a cluster's Secret/env do)."""
        return {
            "CIVICML_STORE_URI": uri,
            "CIVICML_S3_ENDPOINT": self.url,
            "CIVICML_S3_SECURE": "false",
            "CIVICML_S3_REGION": "us-east-1",
            "MINIO_ACCESS_KEY": self.access_key,
            "MINIO_SECRET_KEY": self.secret_key,
        }

    def make_bucket(self, bucket: str):
        """Create `bucket` with versioning enabled; return a minio client for direct checks."""
        from minio import Minio
        from minio.versioningconfig import ENABLED, VersioningConfig

        client = Minio(
            self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False, region="us-east-1"
        )
        client.make_bucket(bucket)
        client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
        return client

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"


@dataclass
class S3Env:
    """What `s3_env` set up: a versioned bucket, the store URI and a raw minio client for checks."""

    server: S3Server
    bucket: str
    prefix: str
    uri: str
    client: object


def start_s3_server() -> S3Server:
    """Start a ThreadedMotoServer on 127.0.0.1 with an OS-chosen free port (caller stops it)."""
    from moto.server import ThreadedMotoServer

    # Werkzeug logs one line per request; keep test output readable.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return S3Server(server, host, port)


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

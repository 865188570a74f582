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
    """One S3 server for the test session."""
    srv = start_s3_server()
    yield srv
    srv.server.stop()


def make_bucket(server: S3Server, bucket: str):
    """Create `bucket` with versioning enabled; return the minio client used."""
    from minio import Minio
    from minio.versioningconfig import ENABLED, VersioningConfig

    client = Minio(server.endpoint, access_key=TEST_ACCESS_KEY, secret_key=TEST_SECRET_KEY, secure=False,
                   region="us-east-1")
    client.make_bucket(bucket)
    client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
    return client


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> S3Env:
    """A fresh versioned bucket and the environment that makes civicml use it as its store."""
    bucket = f"civicml-test-{uuid.uuid4().hex[:12]}"
    client = make_bucket(s3_server, bucket)
    prefix = "registry"
    uri = f"s3://{bucket}/{prefix}"
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CIVICML_STORE_URI", uri)
    monkeypatch.setenv("CIVICML_S3_ENDPOINT", s3_server.url)
    monkeypatch.setenv("CIVICML_S3_SECURE", "false")
    monkeypatch.setenv("CIVICML_S3_REGION", "us-east-1")
    monkeypatch.setenv("MINIO_ACCESS_KEY", TEST_ACCESS_KEY)
    monkeypatch.setenv("MINIO_SECRET_KEY", TEST_SECRET_KEY)
    return S3Env(s3_server, bucket, prefix, uri, client)

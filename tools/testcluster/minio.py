"""A real MinIO server on 127.0.0.1 (single node, single drive), for the S3 store tests."""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .procs import Server, ServerError, ensure_binaries, free_port, http_ok, remove_tree


@dataclass
class MinioServer:
    """A running MinIO: `endpoint` is host:port; credentials are generated per server."""

    host: str
    port: int
    access_key: str
    secret_key: str
    data_dir: Path
    process: Server = field(repr=False)
    stopped: bool = False

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def stop(self, keep_data: bool = False) -> None:
        """Stop the server (idempotent); requests then get connection refused. The data is deleted
        unless `keep_data` (then `restart()` brings the same server back)."""
        if not self.stopped:
            self.process.stop()
            self.stopped = True
        if not keep_data:
            remove_tree(self.data_dir)

    def restart(self, timeout: float = 60.0) -> None:
        """Start the stopped server again on the same port, data and credentials."""
        if not self.stopped:
            raise ServerError("minio is still running")
        old = self.process
        self.process = Server(old.name, old.argv, old.log_path, env=old.env).start()
        self.stopped = False
        self.process.wait_ready(
            lambda: http_ok(f"{self.url}/minio/health/live"), timeout, what="live (/minio/health/live)"
        )

    def client(self):
        """A `minio.Minio` client with the root credentials."""
        from minio import Minio

        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False)


def start_minio(timeout: float = 60.0) -> MinioServer:
    """Start MinIO with fresh credentials in a temp dir and wait for /minio/health/live.

    Raises:
        ServerError: the binary is missing and cannot be built, or the server did not come up
            (the message names the binary and shows the end of its log).
    """
    binary = ensure_binaries("minio") / "minio"
    root = Path(tempfile.mkdtemp(prefix="civicml-minio-"))
    port, console = free_port(), free_port()
    access_key = "civicml-" + secrets.token_hex(6)
    secret_key = secrets.token_urlsafe(24)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MINIO_", "AWS_"))},
        "MINIO_ROOT_USER": access_key,
        "MINIO_ROOT_PASSWORD": secret_key,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
        "MINIO_CI_CD": "1",  # no ANSI banner, no root-disk warnings in the log
        "HOME": str(root),  # MinIO keeps its client config under $HOME/.minio
    }
    argv = [
        str(binary), "server", "--quiet", "--address", f"127.0.0.1:{port}",
        "--console-address", f"127.0.0.1:{console}", str(root / "data"),
    ]  # fmt: skip
    proc = Server("minio", argv, root / "minio.log", env=env).start()
    server = MinioServer("127.0.0.1", port, access_key, secret_key, root, proc)
    try:
        proc.wait_ready(lambda: http_ok(f"{server.url}/minio/health/live"), timeout, what="live (/minio/health/live)")
    except ServerError:
        log = proc.log_tail()
        proc.stop()
        remove_tree(root)
        raise ServerError(f"minio ({binary}) did not come up on {server.endpoint}:\n{log}") from None
    return server

"""Where an S3 store is and who may write it: endpoint, TLS, region and credentials, from the environment only.

Read by `civicml.storage.s3.S3Store`; on a cluster the same variables come from a ConfigMap (endpoint, TLS)
and the store's Kubernetes Secret (credentials). The Secret's keys and the variables they fill are defined
once here (`secret_env_mapping`, `store_secret_env`), for the pipeline's tasks, the model server, the
Katib trials and the TrainJob workers alike.

    CIVICML_S3_ENDPOINT   host:port or URL (http:// means plain HTTP); AWS_ENDPOINT_URL_S3 /
                          AWS_ENDPOINT_URL are read when it is unset
    CIVICML_S3_SECURE     true/false: use TLS (overrides the URL scheme); default true
    CIVICML_S3_REGION     region (AWS_REGION / AWS_DEFAULT_REGION); default us-east-1
    MINIO_ACCESS_KEY / MINIO_SECRET_KEY, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
                          (+ AWS_SESSION_TOKEN)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from civicml.storage.base import StoreError

ENV_ENDPOINT = "CIVICML_S3_ENDPOINT"
ENV_SECURE = "CIVICML_S3_SECURE"
ENV_REGION = "CIVICML_S3_REGION"
ACCESS_KEY_VARS = ("MINIO_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
SECRET_KEY_VARS = ("MINIO_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")


def secret_env_mapping() -> dict[str, str]:
    """Keys of the store's Kubernetes Secret mapped to the environment variables this module reads.

    Used when compiling for a cluster:
    `kfp.kubernetes.use_secret_as_env(task, secret_name=cfg.storage.secret_name,
    secret_key_to_env=secret_env_mapping())`. The Secret's keys are named like the variables
    (the convention of KFP's own `mlpipeline-minio-artifact` Secret uses `accesskey`/`secretkey`;
    create ours with `kubectl create secret generic civicml-object-store
    --from-literal=MINIO_ACCESS_KEY=... --from-literal=MINIO_SECRET_KEY=...`).
    """
    return {"MINIO_ACCESS_KEY": "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY": "MINIO_SECRET_KEY"}


def store_secret_env(secret_name: str) -> list[dict[str, Any]]:
    """Container `env` entries that fill the store's credential variables from the Secret `secret_name`.

    The one place a pod spec (model server Deployment, Katib trial Job, TrainJob worker) wires the store's
    Secret into its environment; the pipeline's tasks get the same mapping through
    `kfp.kubernetes.use_secret_as_env(..., secret_key_to_env=secret_env_mapping())`.
    """
    return [
        {"name": env, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
        for key, env in secret_env_mapping().items()
    ]


def _truthy(value: str, var: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise StoreError(f"{var}={value!r} is not a boolean; use true or false")


def _first_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


@dataclass(frozen=True)
class S3Settings:
    """Connection settings for one S3 endpoint (repr never shows the credentials)."""

    endpoint: str
    secure: bool
    region: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> S3Settings:
        """Read the endpoint, TLS flag, region and credentials from the environment.

        Raises:
            StoreError: no endpoint or no credentials are set (the message names the variables).
        """
        raw = _first_env((ENV_ENDPOINT, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"))
        if not raw:
            raise StoreError(
                f"the store is an s3:// URI but {ENV_ENDPOINT} is not set; set it to the S3 endpoint, "
                "e.g. CIVICML_S3_ENDPOINT=minio-service.kubeflow:9000 (add CIVICML_S3_SECURE=false for plain HTTP)"
            )
        secure = True
        endpoint = raw.strip().rstrip("/")
        if "://" in endpoint:
            scheme, _, endpoint = endpoint.partition("://")
            if scheme not in ("http", "https"):
                raise StoreError(f"{ENV_ENDPOINT}={raw!r}: unsupported scheme {scheme!r}; use http:// or https://")
            secure = scheme == "https"
        if not endpoint or "/" in endpoint:
            raise StoreError(
                f"{ENV_ENDPOINT}={raw!r} is not host[:port]; give e.g. minio-service.kubeflow:9000 "
                "(the bucket belongs in storage.uri, s3://bucket/prefix)"
            )
        if os.environ.get(ENV_SECURE):
            secure = _truthy(os.environ[ENV_SECURE], ENV_SECURE)
        access = _first_env(ACCESS_KEY_VARS)
        secret = _first_env(SECRET_KEY_VARS)
        if not access or not secret:
            raise StoreError(
                f"no credentials for the object store at {endpoint}: set MINIO_ACCESS_KEY and MINIO_SECRET_KEY "
                "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) in the environment; on a cluster they come "
                "from the Kubernetes Secret named by storage.secret_name"
            )
        region = _first_env((ENV_REGION, "AWS_REGION", "AWS_DEFAULT_REGION")) or "us-east-1"
        token = os.environ.get("AWS_SESSION_TOKEN") or None
        return cls(endpoint, secure, region, access, secret, token)

    def redact(self, text: str) -> str:
        """`text` with every credential value replaced by `***` (defence in depth for messages)."""
        for secret in (self.secret_key, self.session_token, self.access_key):
            # Values this short are not real credentials (MinIO needs 8+ character secrets), and
            # replacing them would mangle every message.
            if secret and len(secret) >= 6:
                text = text.replace(secret, "***")
        return text


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split `s3://bucket/some/prefix` into (`bucket`, `some/prefix/`); the prefix may be empty.

    Raises:
        StoreError: the URI has no bucket.
    """
    if not uri.startswith("s3://"):
        raise StoreError(f"not an S3 URI: {uri!r}; expected s3://bucket/prefix")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise StoreError(f"S3 URI {uri!r} has no bucket; expected s3://bucket/prefix")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/") if prefix else ""

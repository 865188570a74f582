"""Who is calling, and which request ids this deployment issued.

Callers are identified per route group (`serving.predict_auth`, `serving.feedback_auth`): a
bearer token read from an environment variable (a Kubernetes Secret), or the client identity
that the service mesh's sidecar puts in `x-forwarded-client-cert` after terminating mTLS.

Request ids are issued by the server and signed (HMAC-SHA256), so feedback can be limited to
predictions this deployment made without a shared lookup between replicas: a client can neither
invent an id nor pick one that collides with somebody else's prediction.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import uuid
from dataclasses import dataclass

from civicml.config import ClientAuth, ServingConfig

log = logging.getLogger("civicml.serving")

ANONYMOUS = "anonymous"
# Client-chosen ids (X-Request-ID, a v2 body `id`) are echoed in headers and logs: printable ASCII only.
_CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


def valid_client_id(value: str) -> bool:
    """Whether a client-given request id is safe to echo in a header and a log line."""
    return bool(_CLIENT_ID.match(value))


@dataclass
class Caller:
    """The outcome of authenticating one request."""

    allowed: bool
    source: str = ANONYMOUS
    status: int = 200
    reason: str = ""


class Authenticator:
    """Checks one route group's callers as its `ClientAuth` says."""

    def __init__(self, cfg: ClientAuth, purpose: str):
        self.cfg = cfg
        self.purpose = purpose
        self.token = os.environ.get(cfg.token_env, "") if cfg.mode == "token" else ""
        if cfg.mode == "token" and not self.token:
            log.warning(
                "%s is refused: serving.%s_auth.mode is token but %s is not set", purpose, purpose, cfg.token_env
            )

    def identify(self, headers: dict[str, str]) -> Caller:
        """Authenticate a request from its (lower-cased) headers."""
        mode = self.cfg.mode
        if mode == "none":
            return Caller(True)
        if mode == "token":
            if not self.token:
                return Caller(
                    False,
                    status=503,
                    reason=f"{self.purpose} is switched off on this server: serving.{self.purpose}_auth.mode is "
                    f"token but {self.cfg.token_env} is not set; set it from a Secret (or choose mode: mesh)",
                )
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not given:
                return Caller(
                    False,
                    status=401,
                    reason=f"{self.purpose} needs 'Authorization: Bearer <token>' ({self.cfg.token_env})",
                )
            if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
                return Caller(False, status=403, reason=f"the bearer token is not valid for {self.purpose}")
            return Caller(True, source=f"token:{self.cfg.token_env}")
        identity = _xfcc_uri(headers.get(self.cfg.mesh_header.lower(), ""))
        if identity is None:
            return Caller(
                False,
                status=401,
                reason=f"{self.purpose} needs an mTLS client identity from the mesh ({self.cfg.mesh_header} header)",
            )
        if identity not in self.cfg.mesh_identities:
            return Caller(False, status=403, reason=f"mesh identity {identity} may not call {self.purpose}")
        return Caller(True, source=f"mesh:{identity}")


def _xfcc_uri(value: str) -> str | None:
    """The caller's URI SAN from Envoy's x-forwarded-client-cert (the last element: the nearest hop).

    upstream: envoyproxy/envoy docs/root/configuration/http/http_conn_man/headers.rst (x-forwarded-client-cert):
    elements separated by ',', key=value pairs by ';', the client's URI SAN under `URI`.
    """
    if not value:
        return None
    last = value.split(",")[-1]
    for pair in last.split(";"):
        key, _, val = pair.partition("=")
        if key.strip() == "URI" and val.strip():
            return val.strip().strip('"')
    return None


class IdIssuer:
    """Issues and checks signed request ids: `<32 hex>.<16 hex signature>`."""

    def __init__(self, cfg: ServingConfig):
        key = os.environ.get(cfg.request_id_key_env) or (
            os.environ.get(cfg.feedback_auth.token_env) if cfg.feedback_auth.mode == "token" else None
        )
        self.shared = bool(key)
        if not key:
            log.info("request ids are signed with a per-process key: feedback must reach the replica that predicted")
        self.key = (key or secrets.token_hex(32)).encode()

    def _sign(self, nonce: str) -> str:
        return hmac.new(self.key, nonce.encode(), hashlib.sha256).hexdigest()[:16]

    def issue(self) -> str:
        """A new request id signed by this deployment."""
        nonce = uuid.uuid4().hex
        return f"{nonce}.{self._sign(nonce)}"

    def issued(self, rid: str) -> bool:
        """Whether `rid` was issued by this deployment (constant-time signature check)."""
        nonce, dot, sig = rid.partition(".")
        if not dot or len(nonce) != 32 or len(sig) != 16:
            return False
        return hmac.compare_digest(sig, self._sign(nonce))

"""Signing keys for audit records and version manifests: Ed25519, or HMAC-SHA256 as a fallback.

Who holds what (see docs/audit.md for the threat model):

* the **private key** comes from the environment only, never from the config or the store:
  `CIVICML_AUDIT_SIGNING_KEY_FILE` (a Kubernetes Secret mounted as a file, the usual way) or
  `CIVICML_AUDIT_SIGNING_KEY` (the key's text). It is mounted only where records are written
  (the pipeline runner and the approval path). An Ed25519 key is a PKCS#8 PEM; an HMAC key
  is `hmac:` followed by at least 32 bytes of base64.
* the **public keys** are pinned in the config (`audit.public_keys`, or
  `CIVICML_AUDIT_PUBLIC_KEYS`, comma-separated) and also stored in the store under
  `audit/keys/` so that a reader without the config can check signatures. Pinned keys
  win: a key that is only in the store is not trusted when any key is pinned.

Every signature names its key (`key_id`, derived from the key itself), so rotating the
key keeps old records verifiable as long as the old public key stays pinned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_KEY = "CIVICML_AUDIT_SIGNING_KEY"
ENV_KEY_FILE = "CIVICML_AUDIT_SIGNING_KEY_FILE"
ENV_PUBLIC_KEYS = "CIVICML_AUDIT_PUBLIC_KEYS"
ED25519 = "ed25519"
HMAC = "hmac-sha256"


class SigningError(ValueError):
    """A signing key cannot be loaded or parsed; the message says which variable and how to fix it."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise SigningError(f"{what} is not valid base64") from None


def ed25519_key_id(public_raw: bytes) -> str:
    """The id of an Ed25519 public key: `ed25519:` + 16 hex digits of its sha256."""
    return f"{ED25519}:{hashlib.sha256(public_raw).hexdigest()[:16]}"


def hmac_key_id(secret: bytes) -> str:
    """The id of an HMAC key (a hash of a hash: it reveals nothing usable about the secret)."""
    digest = hashlib.sha256(b"civicml-hmac-key-id\x00" + secret).hexdigest()
    return f"{HMAC}:{digest[:16]}"


@dataclass(frozen=True)
class Signer:
    """A private key that signs; `public` is the text to pin (None for HMAC: there is no public half)."""

    alg: str
    key_id: str
    _secret: Any = field(repr=False)
    public: str | None = None

    def sign(self, message: bytes) -> dict[str, str]:
        """A signature block `{alg, key_id, value}` over `message`."""
        if self.alg == ED25519:
            value = self._secret.sign(message)
        else:
            value = hmac.new(self._secret, message, hashlib.sha256).digest()
        return {"alg": self.alg, "key_id": self.key_id, "value": _b64(value)}


def parse_signing_key(text: str, where: str) -> Signer:
    """Parse a private key given as PEM (Ed25519) or `hmac:<base64>`.

    Raises:
        SigningError: the text is neither (the message names `where`).
    """
    text = text.strip()
    if text.startswith("hmac:"):
        secret = _unb64(text[len("hmac:") :], f"the HMAC key in {where}")
        if len(secret) < 32:
            raise SigningError(f"the HMAC key in {where} has {len(secret)} bytes; use at least 32 random bytes")
        return Signer(HMAC, hmac_key_id(secret), secret)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise SigningError(
            f"{where} is not an unencrypted PEM private key or 'hmac:<base64>'; create one with "
            "`civicml audit keygen --out signing-key.pem`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{where} holds a {type(key).__name__}; civicml signs with Ed25519 keys only")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Signer(ED25519, ed25519_key_id(raw), key, public=f"{ED25519}:{_b64(raw)}")


def load_signer() -> Signer | None:
    """The signing key from the environment, or None when this process holds none."""
    path = os.environ.get(ENV_KEY_FILE)
    if path:
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise SigningError(f"{ENV_KEY_FILE}={path}: cannot read the signing key ({err.strerror})") from None
        return parse_signing_key(text, f"{ENV_KEY_FILE}={path}")
    inline = os.environ.get(ENV_KEY)
    return parse_signing_key(inline, ENV_KEY) if inline else None


def generate_ed25519() -> tuple[str, str]:
    """A new Ed25519 key pair: (private PEM, public `ed25519:<base64>` to pin)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, parse_signing_key(pem, "new key").public or ""


@dataclass(frozen=True)
class PublicKey:
    """A key that verifies: an Ed25519 public key, or an HMAC secret held by this reader."""

    alg: str
    key_id: str
    _material: Any = field(repr=False)

    def verify(self, message: bytes, value: str) -> bool:
        """Whether `value` (base64) is this key's signature over `message`."""
        try:
            sig = base64.b64decode(value.encode(), validate=True)
        except (ValueError, UnicodeEncodeError, AttributeError):
            return False
        if self.alg == HMAC:
            return hmac.compare_digest(sig, hmac.new(self._material, message, hashlib.sha256).digest())
        from cryptography.exceptions import InvalidSignature

        try:
            self._material.verify(sig, message)
        except InvalidSignature:
            return False
        return True


def trusted_key(keys: dict[str, PublicKey], sig: Any) -> PublicKey | None:
    """The trusted key a stored signature (`{"key_id", "value"}`) names; None for an unknown key or a non-signature."""
    key_id = sig.get("key_id") if isinstance(sig, dict) else None
    return keys.get(key_id) if isinstance(key_id, str) else None


def parse_public_key(text: str, where: str) -> PublicKey:
    """Parse `ed25519:<base64 of the 32 raw bytes>`.

    Raises:
        SigningError: not that shape (the message names `where` and shows an example).
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    alg, _, body = text.strip().partition(":")
    raw = _unb64(body, f"public key {text[:24]!r} in {where}") if alg == ED25519 else b""
    if alg != ED25519 or len(raw) != 32:
        raise SigningError(
            f"public key {text[:24]!r} in {where} is not 'ed25519:<base64 of 32 bytes>' "
            "(as printed by `civicml audit keygen`)"
        )
    return PublicKey(ED25519, ed25519_key_id(raw), Ed25519PublicKey.from_public_bytes(raw))


def public_key_of(signer: Signer) -> PublicKey:
    """The verifying half of a signer (the secret itself for HMAC)."""
    if signer.alg == HMAC:
        return PublicKey(HMAC, signer.key_id, signer._secret)
    return parse_public_key(signer.public or "", "the signing key")


def pinned_public_keys(configured: list[str] | None = None) -> dict[str, PublicKey]:
    """Keys pinned by the config and `CIVICML_AUDIT_PUBLIC_KEYS`, by key id."""
    texts = list(configured or [])
    texts += [t for t in os.environ.get(ENV_PUBLIC_KEYS, "").split(",") if t.strip()]
    keys = {}
    for i, text in enumerate(texts):
        where = "audit.public_keys" if i < len(configured or []) else ENV_PUBLIC_KEYS
        key = parse_public_key(text, where)
        keys[key.key_id] = key
    return keys

"""Champion/challenger routing: sticky, deterministic weighted split, and the stored weights.

The split hashes a request key into [0, 1) and sends it to the challenger when the
value is below the challenger's share. The same key always lands on the same arm
(users see one model consistently), and raising the share only moves keys from the
champion to the challenger, never back.

Weights live in the store at `serving/routing.json` of the project (`Registry.scoped_key`), written
by the deploy step, `civicml ab set-weights` and `civicml ab promote`; every change is audited. On a
cluster the deploy backend pins the same document in the pod template (an annotation projected as a
file by the downward API), which the server reads through `CIVICML_ROUTING_FILE`, so that each
rollout (and `kubectl rollout undo`) pins its versions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from civicml.governance.audit import AuditLog
from civicml.storage.registry import Registry, RegistryError, utcnow

ROUTING_KEY = "serving/routing.json"
ROUTING_FILE_ENV = "CIVICML_ROUTING_FILE"
CHAMPION = "champion"
CHALLENGER = "challenger"
ARMS = (CHAMPION, CHALLENGER)


def key_fraction(key: str, salt: str = "") -> float:
    """Map a key to a uniform number in [0, 1) with sha256 (stable across processes and hosts).

    Args:
        key: The sticky request key (user or case id), or the request id when there is none.
        salt: Mixed into the hash so that separate experiments split users independently.
    """
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    # 53 bits: exactly representable as a float, so the result is always < 1.0.
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def choose_arm(key: str, challenger_share: float, salt: str = "") -> str:
    """The arm (`champion` or `challenger`) that serves `key` at the given share."""
    if challenger_share <= 0.0:
        return CHAMPION
    return CHALLENGER if key_fraction(key, salt) < challenger_share else CHAMPION


@dataclass
class Routing:
    """Which versions serve and how traffic is split between them."""

    champion: str | None
    challenger: str | None = None
    challenger_share: float = 0.0
    updated_at: str | None = None
    by: str | None = None
    reason: str | None = None

    @property
    def effective_share(self) -> float:
        """The share actually sent to the challenger (0 when there is none)."""
        return self.challenger_share if self.challenger else 0.0

    def to_json(self) -> str:
        """Stable JSON form (sorted keys), as stored and as pinned in the pod template."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def check_share(share: Any) -> float:
    """Validate a challenger share.

    Raises:
        ValueError: the share is not a number within [0, 1].
    """
    try:
        value = float(share)
    except (TypeError, ValueError):
        raise ValueError(f"challenger share must be a number between 0 and 1, got {share!r} (e.g. 0.1)") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"challenger share must be between 0 and 1, got {share!r} (e.g. 0.1 for 10% of traffic)")
    return value


def _parse(raw: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as err:
        raise RegistryError(
            f"routing document {where} is not valid JSON ({err}); rewrite it with `civicml ab set-weights`"
        ) from None
    if not isinstance(doc, dict):
        raise RegistryError(f"routing document {where} must be a JSON object, got {type(doc).__name__}")
    return doc


def stored_share(registry: Registry) -> float:
    """The challenger share in `serving/routing.json` (0 when never set)."""
    try:
        doc = _parse(registry.read_scoped(ROUTING_KEY), ROUTING_KEY)
    except FileNotFoundError:
        return 0.0
    return check_share(doc.get("challenger_share", 0.0))


def current_routing(registry: Registry) -> Routing:
    """Routing from the registry: aliases name the versions, `serving/routing.json` the share.

    When `CIVICML_ROUTING_FILE` is set (the pod's pinned routing on a cluster) that file wins:
    it pins the exact versions this rollout serves.
    """
    path = os.environ.get(ROUTING_FILE_ENV)
    if path:
        p = Path(path)
        if not p.is_file():
            raise RegistryError(
                f"{ROUTING_FILE_ENV}={path} does not exist; mount the pod's routing there "
                "or unset the variable to read aliases from the registry"
            )
        doc = _parse(p.read_bytes(), path)
        if not doc.get("champion"):
            raise RegistryError(f"routing file {path} names no champion version")
        return Routing(
            champion=doc["champion"],
            challenger=doc.get("challenger") or None,
            challenger_share=check_share(doc.get("challenger_share", 0.0)),
            updated_at=doc.get("updated_at"),
            by=doc.get("by"),
            reason=doc.get("reason"),
        )
    meta: dict[str, Any] = {}
    try:
        meta = _parse(registry.read_scoped(ROUTING_KEY), ROUTING_KEY)
    except FileNotFoundError:
        pass
    return Routing(
        champion=registry.get_alias(CHAMPION),
        challenger=registry.get_alias(CHALLENGER),
        challenger_share=check_share(meta.get("challenger_share", 0.0)),
        updated_at=meta.get("updated_at"),
        by=meta.get("by"),
        reason=meta.get("reason"),
    )


def set_weights(registry: Registry, challenger_share: float, by: str, reason: str) -> Routing:
    """Store a new challenger share and append the change to the audit log.

    Raises:
        ValueError: the share is outside [0, 1].
        RegistryError: a non-zero share is set while no challenger alias exists.
    """
    share = check_share(challenger_share)
    challenger = registry.get_alias(CHALLENGER)
    if share > 0 and challenger is None:
        raise RegistryError(
            f"cannot send {share:.0%} of traffic to a challenger: no challenger is set; deploy one first with "
            "`civicml deploy VERSION --as challenger`"
        )
    previous = stored_share(registry)
    routing = Routing(
        champion=registry.get_alias(CHAMPION),
        challenger=challenger,
        challenger_share=share,
        updated_at=utcnow(),
        by=by,
        reason=reason,
    )
    # Evidence first: a kill between the two leaves a record of an intended change, never an unrecorded one.
    AuditLog(registry.store).append(
        "routing_changed",
        {
            "from_share": previous,
            "to_share": share,
            "champion": routing.champion,
            "challenger": challenger,
            "reason": reason,
        },
        actor=by,
    )
    registry.write_scoped(ROUTING_KEY, routing.to_json().encode())
    return routing

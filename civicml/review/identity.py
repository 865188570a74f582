"""Who is looking and what they may do in the review console.

Two ways to know the person:

* behind the Kubeflow gateway (`review.behind_gateway: true`) the gateway authenticates people and
  sets a header with the user (`kubeflow-userid` by default) and optionally their groups; the console
  trusts those headers and nothing else. Only configure this when the console cannot be reached except
  through the gateway (the NetworkPolicy in manifests/base admits only the gateway's namespace);
* locally, a person signs in with their name and the token printed when `civicml review` starts.

Roles come from the config (`review.viewers|reviewers|approvers`), by user name or `group:NAME`.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

from civicml.config import ReviewConfig

ROLES = ("viewer", "reviewer", "approver")
# What each role may do; a higher role may do everything a lower one may.
ACTIONS = {"view": "viewer", "reject": "reviewer", "approve": "approver"}


@dataclass(frozen=True)
class Identity:
    """A signed-in person: name, groups and the role the config gives them (None = refused)."""

    user: str
    groups: tuple[str, ...] = field(default_factory=tuple)
    role: str | None = None

    def may(self, action: str) -> bool:
        """Whether this person's role allows `action` (`view`, `reject`, `approve`)."""
        needed = ACTIONS[action]
        return self.role is not None and ROLES.index(self.role) >= ROLES.index(needed)


def _listed(entries: list[str], user: str, groups: tuple[str, ...]) -> bool:
    folded = user.casefold()
    for entry in entries:
        entry = entry.strip()
        if entry == "*":
            return True
        if entry.startswith("group:"):
            if entry[len("group:") :].strip().casefold() in {g.casefold() for g in groups}:
                return True
        elif entry.casefold() == folded:
            return True
    return False


def role_for(cfg: ReviewConfig, user: str, groups: tuple[str, ...] = ()) -> str | None:
    """The highest role the config gives `user` (directly or through a group), or None."""
    for role, entries in (("approver", cfg.approvers), ("reviewer", cfg.reviewers), ("viewer", cfg.viewers)):
        if _listed(entries, user, groups):
            return role
    return None


def identify(cfg: ReviewConfig, user: str, groups: tuple[str, ...] = ()) -> Identity:
    """An Identity for a user name (stripped of the gateway's prefix) and groups."""
    user = user.strip()
    if cfg.user_prefix and user.startswith(cfg.user_prefix):
        user = user[len(cfg.user_prefix) :]
    return Identity(user=user, groups=tuple(groups), role=role_for(cfg, user, tuple(groups)))


def from_headers(cfg: ReviewConfig, headers: dict[str, str]) -> Identity | None:
    """The identity the gateway asserted in the request headers, or None when the header is absent."""
    lower = {k.lower(): v for k, v in headers.items()}
    user = (lower.get(cfg.user_header.lower()) or "").strip()
    if not user:
        return None
    groups: tuple[str, ...] = ()
    if cfg.groups_header:
        raw = lower.get(cfg.groups_header.lower()) or ""
        groups = tuple(g.strip() for g in raw.split(",") if g.strip())
    return identify(cfg, user, groups)


def new_token() -> str:
    """A sign-in token for a local console (printed once at start-up)."""
    return secrets.token_urlsafe(24)


def token_ok(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a sign-in or CSRF token."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())

"""The one promotion function: every change of `champion` or `challenger` goes through `promote`.

The pipeline's deploy step, `civicml deploy`, a Kubernetes rollout, `civicml ab promote`,
`civicml rollback` and an approval all call it, so each of them:

1. refuses a version whose effective status is not `approved` (gate passed or a person
   approved it, and nobody rejected it), or whose manifest or decision disagrees with the
   audit chain (`governance.trust`), or whose artifacts fail their hashes;
2. records the intent (`promotion_started`) before anything changes;
3. hands the new routing to the deployer (a Kubernetes rollout) when there is one, which
   restores the previous state itself when the rollout fails;
4. moves the alias with compare-and-swap: `alias_move_intent` is audited first, the move
   object is created next (so no alias moves without its record), `alias_moved` follows;
5. ends a running A/B test when a new champion arrives (challenger cleared, share 0,
   `ab_ended`), or starts one for a challenger (`ab_started`).

`tests/unit/test_promotion.py` greps the code base: `set_alias(` appears nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from civicml.governance.approval import effective_status
from civicml.governance.audit import AuditLog
from civicml.governance.trust import check_version
from civicml.storage.registry import ANY, Registry, RegistryError

if TYPE_CHECKING:
    from civicml.serving.routing import Routing

CHAMPION = "champion"
CHALLENGER = "challenger"


class PromotionError(RegistryError):
    """A promotion was refused; nothing moved. The message says why and what to do."""


def _move(
    registry: Registry, audit: AuditLog, alias: str, version: str | None, by: str, reason: str, expected: Any = ANY
) -> dict[str, Any]:
    def intent(move: dict[str, Any]) -> dict[str, Any]:
        return {"audit_seq": audit.append("alias_move_intent", move, actor=by)["seq"]}

    move = registry.set_alias(alias, version, by=by, reason=reason, expected=expected, before=intent)
    audit.append("alias_moved", move, actor=by)
    return move


def check_promotable(registry: Registry, version: str, audit: AuditLog) -> None:
    """Refuse unless `version` is approved, agrees with the audit chain and verifies.

    Raises:
        PromotionError: with the reason.
    """
    status = effective_status(registry, version)
    if status != "approved":
        raise PromotionError(
            f"version {version} is {status!r}; only approved versions are deployed "
            f"(gate decision `deploy`, or `civicml approve {version} --by NAME --role ROLE --reason TEXT`)"
        )
    check_version(registry, version, audit=audit, chain=True)
    problems = registry.verify(version)
    if problems:
        raise PromotionError(f"refusing to promote {version}: " + "; ".join(problems))


def _move_aliases(
    registry: Registry,
    audit: AuditLog,
    version: str,
    role: str,
    share: float,
    current: tuple[str | None, str | None],
    by: str,
    reason: str,
    expected_champion: Any,
) -> dict[str, Any]:
    """Move the alias (and end or start the A/B test it implies); return the alias move.

    `current` is (champion, challenger) as read before the promotion started.
    """
    champion, challenger = current
    from civicml.serving.routing import set_weights, stored_share

    if role == CHAMPION:
        move = _move(registry, audit, CHAMPION, version, by, reason, expected=expected_champion)
        if challenger is not None:
            _move(registry, audit, CHALLENGER, None, by, f"{version} replaced the champion")
            audit.append("ab_ended", {"champion": version, "challenger": challenger, "reason": reason}, actor=by)
        if challenger is not None or stored_share(registry) > 0:
            set_weights(registry, 0.0, by=by, reason=f"{version} deployed as champion")
    else:
        move = _move(registry, audit, CHALLENGER, version, by, reason)
        set_weights(registry, share, by=by, reason=f"challenger {version} deployed")
        audit.append("ab_started", {"champion": champion, "challenger": version, "share": share}, actor=by)
    return move


def _check_role(version: str, role: str, champion: str | None, expected_champion: Any) -> None:
    """Refuse a champion promotion decided against another champion, and a challenger with no champion."""
    if role == CHAMPION and expected_champion is not ANY and champion != expected_champion:
        from civicml.storage.registry import AliasConflict

        raise AliasConflict(
            f"refusing to make {version} the champion: it was compared with champion {expected_champion}, but the "
            f"champion is {champion} now — another run was promoted meanwhile; run the pipeline again so that "
            f"{version}'s successor is compared with {champion}"
        )
    if role == CHALLENGER and champion in (None, version):
        raise PromotionError(
            f"{version} cannot be a challenger: there is no other champion ({champion}) to test against"
        )


def _routing(version: str, role: str, champion: str | None, share: float) -> Routing:
    """The traffic split the promotion leads to (what a deployer rolls out)."""
    from civicml.serving.routing import Routing

    if role == CHALLENGER:
        return Routing(champion=champion, challenger=version, challenger_share=share)
    return Routing(champion=version, challenger=None, challenger_share=0.0)


def promote(
    registry: Registry,
    version: str,
    *,
    by: str,
    reason: str,
    role: str = CHAMPION,
    share: float = 0.0,
    expected_champion: Any = ANY,
    deployer: Callable[[Any], str | None] | None = None,
    target: str = "local",
) -> dict[str, Any]:
    """Make `version` the champion (or the challenger at `share` of traffic); audited.

    Args:
        registry: The registry.
        version: An approved, committed version.
        by: Who promotes (audit actor).
        reason: Why (kept with the move).
        role: `champion` or `challenger`.
        share: The challenger's traffic share (role `challenger`).
        expected_champion: The champion this decision was based on (e.g. the one the version was
            compared with); when the champion moved since, nothing changes and `AliasConflict` is raised.
        deployer: Rolls a `Routing` out (Kubernetes) and returns a detail; raises on failure.
        target: `local` or `kubernetes`, for the audit record.

    Returns:
        `{target, alias, version, previous, challenger_share, rollout}`.

    Raises:
        PromotionError: the version is not approved, disagrees with the audit chain or fails verification,
            or a challenger has no other champion to be compared with.
        AliasConflict: the champion moved since `expected_champion` was read.
    """
    if role not in (CHAMPION, CHALLENGER):
        raise PromotionError(f"unknown role {role!r}; use champion or challenger")
    if registry.project is None:
        # A store-wide view promotes within the version's own project, never over another project's champion.
        registry = registry.for_project(registry.project_of(version))
    audit = AuditLog(registry.store)
    check_promotable(registry, version, audit)
    champion, challenger = registry.get_alias(CHAMPION), registry.get_alias(CHALLENGER)
    _check_role(version, role, champion, expected_champion)
    routing = _routing(version, role, champion, share)
    intent = {"version": version, "role": role, "champion": champion, "challenger": challenger, "share": share}
    audit.append("promotion_started", {**intent, "target": target, "reason": reason}, actor=by)
    detail = deployer(routing) if deployer is not None else None
    move = _move_aliases(registry, audit, version, role, share, (champion, challenger), by, reason, expected_champion)
    result = {
        "target": target,
        "alias": role,
        "version": version,
        "previous": move["from"],
        "challenger_share": routing.effective_share,
        "rollout": detail,
    }
    audit.append("deployed", {**result, "role": role}, actor=by)
    return result

"""Step `deploy`: promote an approved version with the configured backend, through the one promotion function."""

from __future__ import annotations

import json
from typing import Any

from civicml.config import RunConfig
from civicml.documents import Evaluation
from civicml.steps._io import cfg_of, registry_of
from civicml.storage.registry import Registry

COMPARED = "compared"  # `deploy(expected_champion=COMPARED)`: the champion the version's evaluation compared with


def compared_champion(registry: Registry, version: str) -> Any:
    """The champion `version` was compared with at evaluation (None: there was none), or ANY when unknown."""
    from civicml.storage.registry import ANY, RegistryError

    try:
        raw = json.loads(registry.read_artifact(version, "evaluation.json"))
    except RegistryError:
        return ANY
    comparison = Evaluation.parse(raw, where=f"evaluation.json of {version}").champion_comparison
    if not isinstance(comparison, dict):
        return None
    return comparison.get("champion_version", ANY)


def deploy(
    config: RunConfig | str,
    version: str,
    by: str = "pipeline",
    expected_champion: Any = COMPARED,
    reason: str | None = None,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Deploy an approved version with the configured backend, through the one promotion function.

    Locally the `champion` alias moves; with `deploy.mode: challenger` and an existing champion the
    version becomes the `challenger` and receives `deploy.challenger_traffic` of the requests instead.
    Replacing the champion ends any running A/B test (challenger cleared, weights back to 0).
    On Kubernetes the rollout happens first (`civicml.deploy.kubernetes.deploy_version`).

    Args:
        config: Run config or its path.
        version: The version to deploy.
        by: Who deploys.
        reason: Why, for the audit log (default: the gate decision).
        registry: The registry (default: the config's store).
        expected_champion: Compare-and-swap guard: by default the champion the version was compared
            with, so a run never replaces a champion it was not compared with; a person deploying by
            hand passes the champion they saw.

    Raises:
        RegistryError: the version is not approved or disagrees with the audit chain (PromotionError),
            or the champion moved meanwhile (AliasConflict); nothing moved.
    """
    from civicml.governance.promotion import CHALLENGER, CHAMPION, promote

    cfg = cfg_of(config)
    registry = registry or registry_of(cfg)
    if expected_champion == COMPARED:
        expected_champion = compared_champion(registry, version)
    if cfg.deploy.target == "kubernetes":
        from civicml.deploy.kubernetes import deploy_version

        return deploy_version(cfg, registry, version, by=by, expected_champion=expected_champion, reason=reason)
    champion = registry.get_alias(CHAMPION)
    if cfg.deploy.mode == "challenger" and champion not in (None, version):
        share = cfg.deploy.challenger_traffic
        return promote(
            registry,
            version,
            role=CHALLENGER,
            share=share,
            by=by,
            reason=reason or "gate decision: deploy as challenger",
        )
    return promote(
        registry, version, by=by, reason=reason or "gate decision: deploy", expected_champion=expected_champion
    )

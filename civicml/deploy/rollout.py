"""Rolling a version out on Kubernetes: apply, watch the rollout with a timeout, roll back on failure.

The registry alias moves only after the rollout has succeeded (through the one promotion function,
`civicml.governance.promotion.promote`); on failure the previous champion's objects are re-applied and
the alias stays where it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from civicml.config import RunConfig
from civicml.deploy.client import KubeClient
from civicml.deploy.objects import DeployError, build_objects
from civicml.governance.audit import AuditLog
from civicml.serving.routing import CHALLENGER, CHAMPION, Routing, current_routing
from civicml.storage.registry import ANY, Registry, RegistryError
from civicml.storage.store import resolve_store_uri


def rollout_state(dep: dict[str, Any]) -> tuple[str, str]:
    """Classify a Deployment like `kubectl rollout status`: ('done'|'progressing'|'failed', detail)."""
    meta, spec, status = dep.get("metadata", {}), dep.get("spec", {}), dep.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return "progressing", "waiting for the controller to observe the new generation"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return "failed", f"progress deadline exceeded: {cond.get('message', '')}"
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    if updated < want:
        return "progressing", f"{updated} of {want} replicas updated"
    if status.get("replicas", 0) > updated:
        return "progressing", f"{status.get('replicas', 0) - updated} old replicas pending termination"
    available = status.get("availableReplicas", 0)
    if available < updated:
        return "progressing", f"{available} of {updated} updated replicas available"
    return "done", f"{available} replicas available"


def wait_rollout(
    client: KubeClient,
    namespace: str,
    name: str,
    timeout: float,
    poll: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll the Deployment until it is rolled out.

    Raises:
        DeployError: the rollout failed or did not finish within `timeout` seconds.
    """
    deadline = clock() + timeout
    while True:
        state, detail = rollout_state(client.read_deployment(namespace, name))
        if state == "done":
            return detail
        if state == "failed":
            raise DeployError(f"rollout of deployment {namespace}/{name} failed: {detail}")
        if clock() >= deadline:
            raise DeployError(f"rollout of deployment {namespace}/{name} did not finish within {timeout:g}s: {detail}")
        sleep(poll)


def _target_routing(cfg: RunConfig, registry: Registry, version: str, mode: str) -> tuple[Routing, str]:
    champion = registry.get_alias(CHAMPION)
    if mode == "challenger" and champion and champion != version:
        return Routing(
            champion=champion, challenger=version, challenger_share=cfg.deploy.challenger_traffic
        ), CHALLENGER
    return Routing(champion=version), CHAMPION


def deploy_version(
    cfg: RunConfig,
    registry: Registry,
    version: str,
    *,
    client: KubeClient | None = None,
    dry_run: bool = False,
    mode: str | None = None,
    by: str = "pipeline",
    expected_champion: Any = ANY,
    reason: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Roll `version` out on Kubernetes, as champion or (mode `challenger`) beside the champion.

    The alias moves, the A/B split and the audit records are the promotion function's
    (`civicml.governance.promotion.promote`); this module hands it the rollout.

    Args:
        cfg: Run config (`deploy`, `storage`).
        registry: The registry holding `version`.
        version: A committed, approved model version.
        client: API edge; a real `KubeClient` is built from the in-cluster or kube config when None.
        dry_run: Only build the objects; nothing is applied and no alias moves.
        mode: `replace` or `challenger`; defaults to `deploy.mode`.
        by: Who deploys, for the audit log.
        expected_champion: Compare-and-swap guard passed to the promotion.
        reason: Why, for the audit log.

    Returns:
        Summary with the applied objects, the alias moved and the rollout detail.

    Raises:
        DeployError: the rollout failed; the previous champion was re-applied (when there is one)
            and no alias moved.
        RegistryError: the version does not exist, is not approved or fails its integrity check.
    """
    from civicml.governance.promotion import check_promotable, promote

    routing, alias, uri, objects = _plan(cfg, registry, version, mode or cfg.deploy.mode)
    if dry_run:
        return {"target": "kubernetes", "dry_run": True, "alias": alias, "version": version, "objects": objects}
    _require_object_store(uri)
    check_promotable(registry, version, AuditLog(registry.store))  # before touching the cluster
    rollout = _rollout(cfg, registry, client or KubeClient(), objects, version, alias, by, sleep, clock)
    result = promote(
        registry,
        version,
        by=by,
        reason=f"{reason or 'deploy'}; kubernetes rollout of {cfg.deploy.namespace}/{cfg.deploy.name}",
        role=alias,
        share=routing.challenger_share,
        expected_champion=expected_champion,
        deployer=rollout,
        target="kubernetes",
    )
    _audit_deployed(cfg, registry, version, alias, routing, result["rollout"], by)
    return {**result, "objects": objects}


def _audit_deployed(
    cfg: RunConfig, registry: Registry, version: str, alias: str, routing: Routing, rollout: Any, by: str
) -> None:
    """The `k8s_deployed` audit record of a rollout that succeeded."""
    payload: dict[str, Any] = {"namespace": cfg.deploy.namespace, "name": cfg.deploy.name, "version": version}
    payload.update(alias=alias, challenger_share=routing.effective_share, rollout=rollout)
    AuditLog(registry.store).append("k8s_deployed", payload, actor=by)


def _plan(
    cfg: RunConfig, registry: Registry, version: str, mode: str
) -> tuple[Routing, str, str, list[dict[str, Any]]]:
    """Check `version`'s integrity and build the objects of the routing it goes to: (routing, alias, store, objects)."""
    problems = registry.verify(version)
    if problems:
        raise RegistryError(f"refusing to deploy {version}: " + "; ".join(problems))
    routing, alias = _target_routing(cfg, registry, version, mode)
    uri = resolve_store_uri(cfg.storage.uri)
    return routing, alias, uri, build_objects(cfg, routing, uri)


def _require_object_store(uri: str) -> None:
    """The model server pods read the store themselves: a local directory is out of their reach."""
    if not uri.startswith("s3://"):
        raise DeployError(
            f"the model server pods cannot read the store {uri!r}: a Kubernetes deploy needs an object store "
            "(storage.uri or CIVICML_STORE_URI = s3://bucket/prefix)"
        )


def _rollout(
    cfg: RunConfig,
    registry: Registry,
    client: KubeClient,
    objects: list[dict[str, Any]],
    version: str,
    alias: str,
    by: str,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Callable[[Routing], str]:
    """The deployer handed to `promote`: apply `objects`, wait for the rollout, roll back when it fails."""
    ns, name = cfg.deploy.namespace, cfg.deploy.name

    def rollout(_: Routing) -> str:
        applied = 0
        try:
            for obj in objects:
                client.apply(obj)
                applied += 1
            return wait_rollout(
                client, ns, name, cfg.deploy.rollout_timeout_seconds, cfg.deploy.poll_seconds, sleep, clock
            )
        except Exception as err:  # noqa: BLE001 - any failure after the first apply (API error, timeout) must restore
            why = _one_line(err, f"roll out {ns}/{name}")
            if applied == 0:
                # Refused before anything changed (e.g. a 403): re-applying the previous champion would
                # be refused the same way and only bury the first error.
                AuditLog(registry.store).append(
                    "k8s_rollout_failed", {"version": version, "error": why, "rolled_back_to": None}, actor=by
                )
                raise DeployError(f"{why}; nothing was applied; the registry alias {alias!r} was not moved") from None
            rolled_back = _rollback(cfg, registry, client, version, why, by, sleep, clock)
            raise DeployError(f"{why}; {rolled_back}; the registry alias {alias!r} was not moved") from None

    return rollout


def _one_line(err: Exception, action: str) -> str:
    """A cluster error as one line (an ApiException's str carries headers and body); others as they are."""
    from civicml.deploy.cluster import explain, is_cluster_failure

    return explain(err, action) if is_cluster_failure(err) else str(err)


def _rollback(
    cfg: RunConfig,
    registry: Registry,
    client: KubeClient,
    failed: str,
    why: str,
    by: str,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> str:
    previous = current_routing(registry)
    audit = AuditLog(registry.store)
    if not previous.champion:
        audit.append("k8s_rollout_failed", {"version": failed, "error": why, "rolled_back_to": None}, actor=by)
        return "there is no previous champion to roll back to"
    try:
        for obj in build_objects(cfg, previous):
            client.apply(obj)
        detail = wait_rollout(
            client,
            cfg.deploy.namespace,
            cfg.deploy.name,
            cfg.deploy.rollout_timeout_seconds,
            cfg.deploy.poll_seconds,
            sleep,
            clock,
        )
    except Exception as err:  # noqa: BLE001 - report the failed rollback instead of masking the first error
        err_text = _one_line(err, "roll back")
        audit.append(
            "k8s_rollout_failed",
            {"version": failed, "error": why, "rollback_error": err_text, "rolled_back_to": previous.champion},
            actor=by,
        )
        return f"rolling back to {previous.champion} ALSO failed ({err_text}); check the cluster now"
    audit.append(
        "k8s_rollback",
        {
            "version": failed,
            "error": why,
            "rolled_back_to": previous.champion,
            "challenger": previous.challenger,
            "rollout": detail,
        },
        actor=by,
    )
    return f"rolled back to the previous champion {previous.champion}"

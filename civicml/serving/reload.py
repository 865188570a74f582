"""Follow champion/challenger changes while serving: re-read the routing, load, verify, switch.

Every `serving.refresh_seconds` the server re-reads its routing (`routing.current_routing`: the
aliases and `serving/routing.json`, or the pod's pinned `CIVICML_ROUTING_FILE` on a cluster). A
change of share is applied at once. A change of version is loaded in a worker thread, off the event
loop, through the same checks as at start-up (`state.load_set`: approved status, the audit log's
commit record via `trust.check_version`, every artifact's sha256); only a complete, verified set
replaces the served one, in one assignment. A version that fails to load is not served: the server
keeps the versions it has, logs the reason once per routing it cannot serve, counts the failure in
`civicml_model_reloads_total{result="failed"}`, shows it on `/v2/models/{name}` and tries again at
the next refresh (a store that was briefly unreachable recovers by itself).

So a `civicml deploy V --as challenger`, `civicml ab set-weights`, `civicml ab promote` or
`civicml rollback` reaches a running server within `refresh_seconds` plus the new version's load time.
"""

from __future__ import annotations

import asyncio
import logging

from civicml.serving.metrics import ServerMetrics
from civicml.serving.routing import ARMS, Routing, current_routing
from civicml.serving.state import ServedSet, ServingError, ServingState, load_set
from civicml.storage.registry import RegistryError

log = logging.getLogger("civicml.serving")


def _versions(routing: Routing) -> tuple[str | None, str | None]:
    return routing.champion, routing.challenger


def describe(served: ServedSet) -> str:
    """One line naming what is served, for the log."""
    r = served.routing
    text = f"champion {r.champion}"
    if r.challenger:
        text += f", challenger {r.challenger} at {100 * r.effective_share:.1f}%"
    return text


class Reloader:
    """The refresh loop of one server (one per app; started and stopped by the app's lifespan)."""

    def __init__(self, state: ServingState, metrics: ServerMetrics):
        self.state = state
        self.metrics = metrics
        self._failed_for: tuple[str | None, str | None] | None = None
        self.show(state.served)

    def show(self, served: ServedSet) -> None:
        """Set the served-version gauge: 1 for each (arm, version) served now, nothing for the rest."""
        self.metrics.served.clear()
        for arm in ARMS:
            model = served.models.get(arm)
            if model is not None:
                self.metrics.served.labels(arm, model.version).set(1)

    async def run(self) -> None:
        """Refresh forever, every `serving.refresh_seconds` (cancel to stop)."""
        while True:
            await asyncio.sleep(self.state.serving.refresh_seconds)
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - the loop outlives any one refresh; the served set is untouched
                self.metrics.reloads.labels("failed").inc()
                log.exception("routing refresh failed; still serving %s", describe(self.state.served))

    async def refresh(self) -> bool:
        """Re-read the routing once and switch if it changed; True when something was switched."""
        state = self.state
        try:
            fresh = await asyncio.to_thread(current_routing, state.registry)
        except (RegistryError, ValueError, OSError) as err:
            self.metrics.reloads.labels("routing_unreadable").inc()
            log.warning("could not re-read the routing (still serving %s): %s", describe(state.served), err)
            return False
        current = state.served
        if _versions(fresh) == _versions(current.routing):
            if fresh.effective_share != current.routing.effective_share:
                state.served = ServedSet(routing=fresh, models=current.models, loaded_at=current.loaded_at)
                log.info("challenger share changed: now serving %s", describe(state.served))
                return True
            return False
        return await self._switch(fresh, current)

    async def _switch(self, fresh: Routing, current: ServedSet) -> bool:
        state = self.state
        target = _versions(fresh)
        try:
            new = await asyncio.to_thread(load_set, state.registry, fresh, state.workdir, current)
        except ServingError as err:
            self.metrics.reloads.labels("failed").inc()
            state.reload_error = f"not serving champion {fresh.champion}, challenger {fresh.challenger}: {err}"
            if self._failed_for != target:
                # Once per routing it cannot serve: a broken version would otherwise log every refresh.
                log.error("%s; still serving %s", state.reload_error, describe(current))
                self._failed_for = target
            return False
        if state.served is not current:
            return False  # another refresh switched meanwhile (not possible with one loop; kept for safety)
        state.served = new
        state.reload_error = None
        self._failed_for = None
        self.metrics.reloads.labels("switched").inc()
        self.show(new)
        log.info("switched: now serving %s (was %s)", describe(new), describe(current))
        return True

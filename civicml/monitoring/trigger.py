"""Retrain trigger: the monitoring policy applied to drift, live performance and new data.

The decision is `retrain` or `no_retrain` with every rule, its threshold and the
measured value, like the deploy gate, and is appended to the audit log as
`retrain_decision` so "why did (or didn't) we retrain?" has evidence.

Rules (all from `monitoring` in the config):

- guards (any failing one means `no_retrain`): the window has at least `min_new_rows`
  rows; a new data batch's fingerprint differs from the champion's (no wasted runs);
- triggers (any firing one means `retrain`): drifted share >= `max_drift_share`;
  the largest PSI >= `psi_threshold`; the watched live metric dropped by more than
  `max_metric_drop` (judged only with `min_feedback_rows` labelled rows).
"""

from __future__ import annotations

from typing import Any

from civicml.config import MonitoringConfig
from civicml.governance.audit import AuditLog
from civicml.storage.store import Store

RETRAIN = "retrain"
NO_RETRAIN = "no_retrain"


def _rule(rule: str, kind: str, threshold: Any, value: Any, fired: bool, note: str = "") -> dict[str, Any]:
    return {"rule": rule, "kind": kind, "threshold": threshold, "value": value, "fired": bool(fired), "note": note}


def decide_retrain(
    policy: MonitoringConfig,
    drift: dict[str, Any] | None,
    performance: dict[str, Any] | None = None,
    new_fingerprint: str | None = None,
    champion_fingerprint: str | None = None,
) -> dict[str, Any]:
    """Decide whether to retrain.

    Args:
        policy: The monitoring config.
        drift: `compute_drift` output for the window (None: not measured).
        performance: `live_performance` output (None: no feedback source).
        new_fingerprint: Fingerprint of a new data batch (None when the window is the serving log).
        champion_fingerprint: The champion's training-data fingerprint.

    Returns:
        `{"decision", "reason", "rules": [...], "triggers": [...], "blocked_by": [...]}`.
    """
    rules = [
        *_guard_rules(policy, drift, new_fingerprint, champion_fingerprint),
        *_drift_rules(policy, drift),
        *_performance_rules(policy, performance),
    ]
    blocked = [r["rule"] for r in rules if r["kind"] == "guard" and r["fired"]]
    triggers = [r["rule"] for r in rules if r["kind"] == "trigger" and r["fired"]]
    decision = RETRAIN if triggers and not blocked else NO_RETRAIN
    reason = _reason(rules, blocked, triggers)
    return {"decision": decision, "reason": reason, "rules": rules, "triggers": triggers, "blocked_by": blocked}


def _guard_rules(
    policy: MonitoringConfig,
    drift: dict[str, Any] | None,
    new_fingerprint: str | None,
    champion_fingerprint: str | None,
) -> list[dict[str, Any]]:
    """Enough rows in the window; a new batch that is not the champion's own training data."""
    rows = int(drift["window_rows"]) if drift else 0
    rules = [
        _rule(
            "min_new_rows",
            "guard",
            policy.min_new_rows,
            rows,
            rows < policy.min_new_rows,
            "too few rows in the window to act on",
        )
    ]
    if new_fingerprint is not None:
        same = champion_fingerprint is not None and new_fingerprint == champion_fingerprint
        rules.append(
            _rule(
                "new_data_fingerprint",
                "guard",
                "differs from the champion's",
                new_fingerprint,
                same,
                "the batch is exactly the data the champion was trained on" if same else "",
            )
        )
    return rules


def _drift_rules(policy: MonitoringConfig, drift: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The drifted share and the largest PSI against their limits (none when drift was not measured)."""
    if not drift or drift.get("status") != "ok":
        return []
    s = drift["summary"]
    max_psi = s["max_psi"] if s["max_psi"] is not None else 0.0
    return [
        _rule(
            "max_drift_share",
            "trigger",
            policy.max_drift_share,
            round(s["drift_share"], 4),
            s["drift_share"] >= policy.max_drift_share,
            f"drifted: {', '.join(s['drifted']) or 'none'}",
        ),
        _rule(
            "psi_threshold",
            "trigger",
            policy.psi_threshold,
            round(max_psi, 4),
            max_psi >= policy.psi_threshold,
            f"largest PSI on {s['max_psi_feature']}",
        ),
    ]


def _performance_rules(policy: MonitoringConfig, performance: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The watched live metric's drop against its limit; not fired (with why) when it was not judged."""
    if performance is None:
        return []
    if performance.get("status") != "ok" or performance.get("watched_drop") is None:
        note = performance.get("message", "live performance not measured")
        return [_rule("max_metric_drop", "trigger", policy.max_metric_drop, None, False, note)]
    d = performance["watched_drop"]
    metric = performance["metric"]
    return [
        _rule(
            "max_metric_drop",
            "trigger",
            policy.max_metric_drop,
            round(d, 4),
            d > policy.max_metric_drop,
            f"{metric}: live {performance['metrics'][metric]:.4f} vs test {performance['reference'].get(metric)}",
        )
    ]


def _reason(rules: list[dict[str, Any]], blocked: list[str], triggers: list[str]) -> str:
    """One sentence: which guards blocked, else which triggers fired, else that none did."""
    if blocked:
        return "not retraining: " + "; ".join(
            f"{r['rule']}: {r['note']}" + (f" ({r['value']} < {r['threshold']})" if r["rule"] == "min_new_rows" else "")
            for r in rules
            if r["rule"] in blocked
        )
    if triggers:
        return "retraining: " + "; ".join(
            f"{r['rule']}: measured {r['value']} crosses the limit {r['threshold']} ({r['note']})"
            for r in rules
            if r["rule"] in triggers
        )
    return "no trigger fired: drift and live performance are within the policy"


def record_decision(
    store: Store, decision: dict[str, Any], context: dict[str, Any], actor: str | None = None
) -> dict[str, Any]:
    """Append the decision to the audit log as `retrain_decision` and return the record."""
    payload = {**context, "decision": decision["decision"], "reason": decision["reason"], "rules": decision["rules"]}
    return AuditLog(store).append("retrain_decision", payload, actor=actor)

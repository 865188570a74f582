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
    rules: list[dict[str, Any]] = []
    rows = int(drift["window_rows"]) if drift else 0
    rules.append(
        _rule(
            "min_new_rows",
            "guard",
            policy.min_new_rows,
            rows,
            rows < policy.min_new_rows,
            "too few rows in the window to act on",
        )
    )
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
    if drift and drift.get("status") == "ok":
        s = drift["summary"]
        rules.append(
            _rule(
                "max_drift_share",
                "trigger",
                policy.max_drift_share,
                round(s["drift_share"], 4),
                s["drift_share"] >= policy.max_drift_share,
                f"drifted: {', '.join(s['drifted']) or 'none'}",
            )
        )
        max_psi = s["max_psi"] if s["max_psi"] is not None else 0.0
        rules.append(
            _rule(
                "psi_threshold",
                "trigger",
                policy.psi_threshold,
                round(max_psi, 4),
                max_psi >= policy.psi_threshold,
                f"largest PSI on {s['max_psi_feature']}",
            )
        )
    if performance and performance.get("status") == "ok" and performance.get("watched_drop") is not None:
        d = performance["watched_drop"]
        rules.append(
            _rule(
                "max_metric_drop",
                "trigger",
                policy.max_metric_drop,
                round(d, 4),
                d > policy.max_metric_drop,
                f"{performance['metric']}: live {performance['metrics'][performance['metric']]:.4f} vs "
                f"test {performance['reference'].get(performance['metric'])}",
            )
        )
    elif performance is not None:
        rules.append(
            _rule(
                "max_metric_drop",
                "trigger",
                policy.max_metric_drop,
                None,
                False,
                performance.get("message", "live performance not measured"),
            )
        )
    blocked = [r["rule"] for r in rules if r["kind"] == "guard" and r["fired"]]
    triggers = [r["rule"] for r in rules if r["kind"] == "trigger" and r["fired"]]
    decision = RETRAIN if triggers and not blocked else NO_RETRAIN
    if blocked:
        reason = "not retraining: " + "; ".join(
            f"{r['rule']}: {r['note']}" + (f" ({r['value']} < {r['threshold']})" if r["rule"] == "min_new_rows" else "")
            for r in rules
            if r["rule"] in blocked
        )
    elif triggers:
        reason = "retraining: " + "; ".join(
            f"{r['rule']}: measured {r['value']} crosses the limit {r['threshold']} ({r['note']})"
            for r in rules
            if r["rule"] in triggers
        )
    else:
        reason = "no trigger fired: drift and live performance are within the policy"
    return {"decision": decision, "reason": reason, "rules": rules, "triggers": triggers, "blocked_by": blocked}


def record_decision(
    store: Store, decision: dict[str, Any], context: dict[str, Any], actor: str | None = None
) -> dict[str, Any]:
    """Append the decision to the audit log as `retrain_decision` and return the record."""
    payload = {**context, "decision": decision["decision"], "reason": decision["reason"], "rules": decision["rules"]}
    return AuditLog(store).append("retrain_decision", payload, actor=actor)

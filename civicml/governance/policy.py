"""Policy gate: turn an evaluation into `deploy`, `reject` or `pending_approval`, rule by rule."""

from __future__ import annotations

from typing import Any

from civicml.config import PolicyConfig

LOWER_IS_BETTER = {"mse", "rmse", "mae", "log_loss", "brier"}


def _rule(rule: str, threshold: Any, value: Any, passed: bool, margin: float | None = None) -> dict[str, Any]:
    return {"rule": rule, "threshold": threshold, "value": value, "passed": bool(passed), "margin": margin}


def decide(policy: PolicyConfig, evaluation: dict[str, Any]) -> dict[str, Any]:
    """Apply every gate rule and return the decision with each rule's threshold, value and verdict.

    Args:
        policy: `policy:` section of the config.
        evaluation: Output of the evaluate step (metrics, fairness, optional CIs and champion comparison).
    """
    metrics = evaluation["metrics"]
    cis = evaluation.get("confidence_intervals", {})
    rules: list[dict[str, Any]] = []
    for name, minimum in policy.min_metrics.items():
        value = metrics.get(name)
        label = f"{name} >= {minimum}"
        if policy.use_ci_lower_bound and name in cis:
            value = cis[name]["low"]
            label = f"{name} (95% CI lower bound) >= {minimum}"
        if value is None:
            rules.append(_rule(label, minimum, None, False))
        else:
            rules.append(_rule(label, minimum, value, value >= minimum, value - minimum))
    for name, maximum in policy.max_metrics.items():
        value = metrics.get(name)
        label = f"{name} <= {maximum}"
        rules.append(_rule(label, maximum, value, value is not None and value <= maximum,
                           None if value is None else maximum - value))
    for rule in policy.fairness:
        for attr, rep in evaluation.get("fairness", {}).items():
            value = rep.get(rule.metric)
            ok = value is not None
            if rule.min is not None:
                ok = ok and value >= rule.min
                rules.append(_rule(f"{rule.metric}[{attr}] >= {rule.min}", rule.min, value, ok,
                                   None if value is None else value - rule.min))
            if rule.max is not None:
                ok2 = value is not None and value <= rule.max
                rules.append(_rule(f"{rule.metric}[{attr}] <= {rule.max}", rule.max, value, ok2,
                                   None if value is None else rule.max - value))
    comparison = evaluation.get("champion_comparison")
    if comparison:
        rules.append(
            _rule(
                f"no significant regression vs champion {comparison['champion_version']} "
                f"(margin {policy.non_inferiority_margin})",
                -policy.non_inferiority_margin,
                comparison["difference"],
                not comparison["significantly_worse"],
                comparison["difference"] + policy.non_inferiority_margin,
            )
        )
    failed = [r for r in rules if not r["passed"]]
    borderline = [
        r for r in rules if r["passed"] and r["margin"] is not None and r["margin"] < policy.borderline_margin
    ]
    if failed:
        decision = "reject"
        reason = "failed: " + "; ".join(r["rule"] for r in failed)
    elif policy.require_approval == "always":
        decision, reason = "pending_approval", "policy requires human approval for every version"
    elif policy.require_approval == "borderline" and borderline:
        decision = "pending_approval"
        reason = "within the borderline margin: " + "; ".join(r["rule"] for r in borderline)
    else:
        decision, reason = "deploy", "all rules passed"
    return {"decision": decision, "reason": reason, "rules": rules}

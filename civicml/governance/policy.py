"""Policy gate: turn an evaluation into `deploy`, `reject` or `pending_approval`, rule by rule.

Every rule yields a record with its threshold, the measured value and a verdict:

* `pass` / `fail` — measured and compared with the threshold;
* `not_assessable` — the rule applies but could not be measured (a metric the
  task does not produce or whose CI is undefined, a disparity with fewer than two
  reportable groups, a champion that could not be scored). A machine cannot
  judge it, so a human must: the decision is at least `pending_approval`;
* `not_measured` — a fairness rule that cannot be measured: no sensitive
  attribute was configured, or the measure does not exist for the task (a
  selection-rate rule on a regression). Shown so that a reader sees fairness
  was *not* checked. It fails the gate unless the rule is `optional: true`
  (the built-in default rule is optional).

A passing rule is *borderline* when it passes by less than `borderline_margin`
(in the metric's own units), when a fairness attribute has suppressed small
groups, or when a champion comparison is inconclusive (the CI of the difference
straddles `-non_inferiority_margin`).

Decision, in order: any `fail` → `reject`; `require_approval: always` or any
`not_assessable` → `pending_approval`; `require_approval: borderline` and any
borderline rule → `pending_approval`; otherwise `deploy`.
"""

from __future__ import annotations

import math
from typing import Any

from civicml.catalog import FAIRNESS_METRICS_BY_TASK
from civicml.config import PolicyConfig
from civicml.documents import Evaluation

# What an evaluation without a `task` was made for (documents written before the field existed).
DEFAULT_TASK = "binary_classification"
TASK_DEFAULT_MIN_METRICS = {"binary_classification": {"roc_auc": 0.7}, "regression": {"r2": 0.0}}
PASS, FAIL, NOT_ASSESSABLE, NOT_MEASURED = "pass", "fail", "not_assessable", "not_measured"


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _rule(
    rule: str,
    kind: str,
    threshold: Any,
    value: Any,
    verdict: str,
    *,
    margin: float | None = None,
    borderline: bool = False,
    detail: str = "",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "rule": rule,
        "kind": kind,
        "threshold": threshold,
        "value": value,
        "verdict": verdict,
        "passed": verdict in (PASS, NOT_MEASURED),
        "margin": margin,
        "borderline": bool(borderline),
        "detail": detail,
        **extra,
    }


def _compare(
    label: str,
    kind: str,
    value: float | None,
    bound: float,
    lower_bound: bool,
    policy: PolicyConfig,
    missing_detail: str,
    **extra: Any,
) -> dict[str, Any]:
    if value is None:
        return _rule(label, kind, bound, None, NOT_ASSESSABLE, detail=missing_detail, **extra)
    margin = (value - bound) if lower_bound else (bound - value)
    ok = margin >= 0
    return _rule(
        label,
        kind,
        bound,
        value,
        PASS if ok else FAIL,
        margin=margin,
        borderline=ok and margin < policy.borderline_margin,
        **extra,
    )


def _metric_rules(policy: PolicyConfig, evaluation: Evaluation) -> list[dict[str, Any]]:
    task = evaluation.task or DEFAULT_TASK
    metrics = evaluation.metrics
    cis = evaluation.confidence_intervals
    min_metrics = policy.min_metrics if policy.min_metrics is not None else TASK_DEFAULT_MIN_METRICS.get(task, {})
    rules = []
    for name, bound, is_min in [
        *((n, b, True) for n, b in min_metrics.items()),
        *((n, b, False) for n, b in policy.max_metrics.items()),
    ]:
        op = ">=" if is_min else "<="
        label = f"{name} {op} {bound}"
        extra: dict[str, Any] = {"metric": name, "point_estimate": _num(metrics.get(name))}
        if name not in metrics:
            rules.append(
                _rule(
                    label,
                    "metric",
                    bound,
                    None,
                    FAIL,
                    metric=name,
                    detail=f"{name} is not computed for task {task}; computed: {sorted(metrics)}. "
                    f"Change policy.{'min' if is_min else 'max'}_metrics",
                )
            )
            continue
        value = _num(metrics.get(name))
        missing = f"{name} is undefined on the test rows (e.g. only one class present)"
        if policy.use_ci_lower_bound:
            side = "low" if is_min else "high"
            label = f"{name} (95% CI {'lower' if is_min else 'upper'} bound) {op} {bound}"
            value = _num(cis.get(name, {}).get(side))
            missing = f"no bootstrap CI for {name} (undefined in most resamples); cannot judge its {side} bound"
        rules.append(_compare(label, "metric", value, bound, is_min, policy, missing, **extra))
    return rules


# The per-group value a disparity is computed from, shown in the rule's detail.
_GROUP_VALUE = {
    "demographic_parity": "selection_rate",
    "mae": "mae",
    "mse": "mse",
    "mean_prediction": "mean_prediction",
}


def _not_measured(fr: Any, detail: str) -> dict[str, Any]:
    label = f"{fr.metric} ({'optional, ' if fr.optional else ''}not measured)"
    r = _rule(label, "fairness", fr.min if fr.min is not None else fr.max, None, NOT_MEASURED, metric=fr.metric)
    return {**r, "passed": fr.optional, "optional": fr.optional, "detail": detail}


def _attribute_bound_rules(policy: PolicyConfig, fr: Any, attr: str, rep: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules of one fairness requirement on one sensitive attribute (one per bound, min and/or max)."""
    value = _num(rep.get(fr.metric))
    suppressed = rep.get("suppressed_groups") or []
    missing = (
        f"fewer than two groups of {attr} have >= {rep.get('min_group_count')} test rows (suppressed: {suppressed})"
    )
    rules = []
    for bound, is_min in ((fr.min, True), (fr.max, False)):
        if bound is None:
            continue
        r = _compare(
            f"{fr.metric}[{attr}] {'>=' if is_min else '<='} {bound}",
            "fairness",
            value,
            bound,
            is_min,
            policy,
            missing,
            metric=fr.metric,
            attribute=attr,
            suppressed_groups=suppressed,
        )
        if r["verdict"] != NOT_ASSESSABLE:
            _explain_fairness(r, fr.metric, rep, suppressed)
        rules.append(r)
    return rules


def _add_detail(r: dict[str, Any], text: str) -> None:
    r["detail"] = f"{r['detail']}; {text}" if r["detail"] else text


def _explain_fairness(r: dict[str, Any], metric: str, rep: dict[str, Any], suppressed: list[Any]) -> None:
    """Context for the reviewer of an assessed fairness rule: the extreme groups, the CI, small groups."""
    per_group = _GROUP_VALUE.get(metric.rsplit("_", 1)[0])
    rates = {
        g: v[per_group] for g, v in (rep.get("groups") or {}).items() if per_group and v.get(per_group) is not None
    }
    if per_group and rates:
        lo, hi = min(rates, key=lambda g: rates[g]), max(rates, key=lambda g: rates[g])
        what = per_group.replace("_", " ")
        r["detail"] = f"{what} lowest in {lo} ({rates[lo]:.3f}), highest in {hi} ({rates[hi]:.3f})"
    ci = (rep.get("confidence_intervals") or {}).get(metric)
    if ci:
        # The verdict stays on the point value (the rule's definition).
        r["ci"] = {"low": ci["low"], "high": ci["high"]}
        _add_detail(r, f"95% CI {ci['low']:.3f} to {ci['high']:.3f}")
    if suppressed and r["verdict"] == PASS:
        r["borderline"] = True
        _add_detail(
            r,
            f"groups {suppressed} have fewer than {rep.get('min_group_count')} test rows and are "
            "excluded from this measure; a person should review them",
        )


def _fairness_rules(policy: PolicyConfig, evaluation: Evaluation) -> list[dict[str, Any]]:
    fairness = evaluation.fairness or {}
    task = evaluation.task or DEFAULT_TASK
    rules = []
    for fr in policy.fairness:
        measurable = FAIRNESS_METRICS_BY_TASK.get(task, ())
        if fr.metric not in measurable:
            rules.append(
                _not_measured(fr, f"{fr.metric} is not measured for task {task}; use one of {', '.join(measurable)}")
            )
            continue
        attrs = [a for a in fairness if fr.attributes is None or a in fr.attributes]
        if not attrs:
            wanted = f" {fr.attributes}" if fr.attributes else ""
            rules.append(
                _not_measured(
                    fr,
                    f"fairness not measured: no sensitive attribute{wanted} in the evaluation; set "
                    "data.sensitive_attributes to check it"
                    + ("" if fr.optional else " (this rule is required; mark it `optional: true` to allow this)"),
                )
            )
            continue
        for attr in attrs:
            rules.extend(_attribute_bound_rules(policy, fr, attr, fairness[attr]))
    return rules


def _skill_rule(policy: PolicyConfig, evaluation: Evaluation) -> list[dict[str, Any]]:
    """The model's margin over the no-skill baseline (majority class / prior; the mean)."""
    rule = policy.skill
    if not rule.enabled:
        return []
    task = evaluation.task or DEFAULT_TASK
    metric, bound = rule.resolved(task)
    base = evaluation.baseline or {}
    m = (base.get("margins") or {}).get(metric)
    on_ci = rule.use_ci_lower_bound
    label = f"{metric} margin over the no-skill baseline{' (95% CI lower bound)' if on_ci else ''} >= {bound}"
    extra: dict[str, Any] = {"metric": metric, "baseline": base.get("strategy")}
    if m is None:
        detail = (
            f"no baseline margin for {metric} in the evaluation (computed: {sorted(base.get('margins') or {})}); "
            "re-evaluate the model"
        )
        return [_rule(label, "skill", bound, None, NOT_ASSESSABLE, detail=detail, **extra)]
    value = _num(m.get("low")) if on_ci else _num(m.get("margin"))
    r = _compare(label, "skill", value, bound, True, policy, f"no bootstrap interval for the {metric} margin", **extra)
    r["detail"] = (
        f"{metric}: model {m['model']:.4f}, baseline {m['baseline']:.4f} ({base.get('strategy')}); margin "
        f"{m['margin']:+.4f}" + (f" (95% CI {m['low']:+.4f} to {m['high']:+.4f})" if "low" in m else "")
    )
    r["point_estimate"] = m["margin"]
    return [r]


def _champion_not_assessable(champ: Any, margin: float, detail: str) -> dict[str, Any]:
    """The champion rule when the comparison was skipped or is undefined: a person must judge it."""
    label = f"no significant regression vs champion {champ}"
    return _rule(label, "champion", -margin, None, NOT_ASSESSABLE, detail=detail, champion_version=champ)


def _champion_rule(policy: PolicyConfig, evaluation: Evaluation) -> list[dict[str, Any]]:
    comp = evaluation.champion_comparison
    if not comp:
        return []
    margin = policy.non_inferiority_margin
    champ = comp.get("champion_version")
    if comp.get("skipped"):
        return [_champion_not_assessable(champ, margin, f"comparison skipped: {comp['skipped']}")]
    label = (
        f"no significant regression vs champion {champ}: {comp['metric']} improvement 95% CI upper bound >= -{margin}"
    )
    hi, lo = _num(comp.get("ci_high")), _num(comp.get("ci_low"))
    # Recomputed from the CI with this policy's margin so the gate never trusts a stale flag.
    worse = hi is not None and hi < -margin
    inconclusive = lo is not None and lo < -margin and not worse
    if hi is None or lo is None:
        return [
            _champion_not_assessable(
                champ, margin, f"the {comp.get('metric')} difference is undefined on the test rows"
            )
        ]
    detail = (
        f"{comp['metric']}: challenger {comp['challenger']:.4f}, champion {comp['champion']:.4f}, "
        f"improvement {comp['difference']:+.4f} (95% CI {lo:+.4f} to {hi:+.4f})"
    )
    if inconclusive:
        detail += f"; non-inferiority not shown (CI lower bound below -{margin})"
    return [
        _rule(
            label,
            "champion",
            -margin,
            hi,
            FAIL if worse else PASS,
            margin=None if hi is None else hi + margin,
            borderline=inconclusive,
            detail=detail,
            metric=comp["metric"],
            champion_version=champ,
            difference=comp["difference"],
            ci_low=lo,
            mcnemar_p=comp.get("mcnemar_p"),
        )
    ]


def decide(policy: PolicyConfig, evaluation: Evaluation | dict[str, Any]) -> dict[str, Any]:
    """Apply every gate rule and return the decision with each rule's threshold, value and verdict.

    Args:
        policy: `policy:` section of the config.
        evaluation: Output of the evaluate step (metrics, CIs, fairness, optional champion comparison),
            as the typed document or its JSON object (validated here).

    Returns:
        `{decision, reason, rules, failed, borderline, not_assessable, policy}`; see the module docstring.

    Raises:
        DocumentError: `evaluation` is not a valid evaluation document.
    """
    if not isinstance(evaluation, Evaluation):
        evaluation = Evaluation.parse(evaluation, where="the evaluation")
    rules = [
        *_metric_rules(policy, evaluation),
        *_skill_rule(policy, evaluation),
        *_fairness_rules(policy, evaluation),
        *_champion_rule(policy, evaluation),
    ]
    # A required rule that could not be measured fails: the policy asked for a check that did not happen.
    failed = [r["rule"] for r in rules if r["verdict"] == FAIL or (r["verdict"] == NOT_MEASURED and not r["passed"])]
    unknown = [r["rule"] for r in rules if r["verdict"] == NOT_ASSESSABLE]
    borderline = [r["rule"] for r in rules if r["verdict"] == PASS and r["borderline"]]
    if failed:
        decision, reason = "reject", "failed: " + "; ".join(failed)
    elif policy.require_approval == "always":
        decision, reason = "pending_approval", "policy requires human approval for every version"
    elif unknown:
        decision, reason = "pending_approval", "could not be assessed, a person must judge: " + "; ".join(unknown)
    elif policy.require_approval == "borderline" and borderline:
        decision, reason = "pending_approval", "borderline, a person must judge: " + "; ".join(borderline)
    else:
        decision, reason = "deploy", "all rules passed"
    return {
        "decision": decision,
        "reason": reason,
        "rules": rules,
        "failed": failed,
        "borderline": borderline,
        "not_assessable": unknown,
        "policy": policy.model_dump(mode="json"),
    }

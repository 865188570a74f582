"""Gate decisions on crafted evaluations: each rule alone, borderline, champion regression, bad config."""

from __future__ import annotations

import copy
import json

import pytest

from civicml.config import ConfigError, PolicyConfig, parse_config
from civicml.governance.policy import decide


def _fair(dpr: float, eod: float = 0.05, suppressed=None) -> dict:
    return {
        "demographic_parity_ratio": dpr,
        "demographic_parity_difference": 1 - dpr,
        "equalized_odds_difference": eod,
        "suppressed_groups": suppressed or [],
        "min_group_count": 30,
    }


GOOD = {
    "task": "binary_classification",
    "metrics": {"roc_auc": 0.85, "recall": 0.7, "log_loss": 0.4, "brier": 0.15},
    "confidence_intervals": {
        "roc_auc": {"low": 0.83, "high": 0.87, "level": 0.95},
        "brier": {"low": 0.14, "high": 0.16, "level": 0.95},
    },
    "fairness": {"region": _fair(0.9), "sex": _fair(0.97)},
    "baseline": {
        "strategy": "majority class 0, scored with the prior 0.3000",
        "margins": {
            "balanced_accuracy": {"model": 0.74, "baseline": 0.5, "margin": 0.24, "low": 0.21, "high": 0.27},
        },
    },
}
REG_BASELINE = {
    "strategy": "training mean 10",
    "margins": {"rmse": {"model": 1.0, "baseline": 2.0, "margin": 1.0, "low": 0.8, "high": 1.2}},
}


def _ev(**changes) -> dict:
    ev = copy.deepcopy(GOOD)
    for k, v in changes.items():
        ev[k] = v
    return ev


def _policy(**kw) -> PolicyConfig:
    base = {"min_metrics": {"roc_auc": 0.7}, "borderline_margin": 0.02}
    base.update(kw)
    return PolicyConfig(**base)


def _failed(result) -> list[str]:
    return [r["rule"] for r in result["rules"] if r["verdict"] == "fail"]


def test_all_rules_pass_deploys_and_every_rule_is_recorded():
    r = decide(_policy(max_metrics={"brier": 0.25}), GOOD)
    assert r["decision"] == "deploy"
    assert len(r["rules"]) == 5  # roc_auc, brier, margin over the no-skill baseline, two fairness attributes
    for rule in r["rules"]:
        assert {"rule", "threshold", "value", "verdict", "passed"} <= set(rule)
    json.dumps(r)  # the decision is evidence: it must serialise


def test_min_metric_alone_fails():
    r = decide(_policy(min_metrics={"roc_auc": 0.9}), GOOD)
    assert r["decision"] == "reject" and _failed(r) == ["roc_auc >= 0.9"]


def test_max_metric_alone_fails():
    r = decide(_policy(max_metrics={"brier": 0.1}), GOOD)
    assert r["decision"] == "reject" and _failed(r) == ["brier <= 0.1"]


def test_ci_lower_bound_is_used_when_asked():
    assert decide(_policy(min_metrics={"roc_auc": 0.84}), GOOD)["decision"] == "deploy"
    r = decide(_policy(min_metrics={"roc_auc": 0.84}, use_ci_lower_bound=True), GOOD)
    assert r["decision"] == "reject"
    rule = r["rules"][0]
    assert "CI lower bound" in rule["rule"] and rule["value"] == 0.83 and rule["point_estimate"] == 0.85
    r = decide(_policy(max_metrics={"brier": 0.155}, use_ci_lower_bound=True), GOOD)
    assert _failed(r) == ["brier (95% CI upper bound) <= 0.155"]


def test_fairness_rule_alone_fails_naming_the_attribute():
    r = decide(_policy(), _ev(fairness={"region": _fair(0.6), "sex": _fair(0.97)}))
    assert r["decision"] == "reject" and _failed(r) == ["demographic_parity_ratio[region] >= 0.8"]
    rule = next(x for x in r["rules"] if x["verdict"] == "fail")
    assert rule["value"] == 0.6 and rule["threshold"] == 0.8 and rule["attribute"] == "region"


def test_fairness_max_rule_and_attribute_filter():
    policy = _policy(fairness=[{"metric": "equalized_odds_difference", "max": 0.1, "attributes": ["sex"]}])
    ev = _ev(fairness={"region": _fair(0.9, eod=0.5), "sex": _fair(0.97, eod=0.2)})
    r = decide(policy, ev)
    assert _failed(r) == ["equalized_odds_difference[sex] <= 0.1"]


def test_borderline_goes_to_pending_approval_only_when_policy_says_so():
    ev = _ev(metrics={**GOOD["metrics"], "roc_auc": 0.71})
    assert decide(_policy(require_approval="never"), ev)["decision"] == "deploy"
    r = decide(_policy(require_approval="borderline"), ev)
    assert r["decision"] == "pending_approval" and r["borderline"] == ["roc_auc >= 0.7"]
    assert decide(_policy(require_approval="borderline"), GOOD)["decision"] == "deploy"
    assert decide(_policy(require_approval="always"), GOOD)["decision"] == "pending_approval"


def test_suppressed_groups_make_a_passing_fairness_rule_borderline():
    ev = _ev(fairness={"region": _fair(0.95, suppressed=["Islands"])})
    r = decide(_policy(require_approval="borderline"), ev)
    assert r["decision"] == "pending_approval"
    assert "Islands" in r["rules"][-1]["detail"]


def test_unassessable_fairness_needs_a_person_and_unmeasured_is_visible():
    ev = _ev(fairness={"region": {**_fair(0.9), "demographic_parity_ratio": None}})
    r = decide(_policy(), ev)
    assert r["decision"] == "pending_approval" and r["not_assessable"] == ["demographic_parity_ratio[region] >= 0.8"]
    r = decide(_policy(), _ev(fairness={}))
    assert r["decision"] == "deploy"
    assert any(x["verdict"] == "not_measured" for x in r["rules"])


def _champion(lo: float, hi: float, diff: float) -> dict:
    return {
        "champion_version": "v0",
        "metric": "roc_auc",
        "challenger": 0.85 + diff,
        "champion": 0.85,
        "difference": diff,
        "ci_low": lo,
        "ci_high": hi,
        "significantly_worse": hi < -0.01,
        "non_inferior": lo >= -0.01,
        "mcnemar_p": 0.01,
    }


def test_significant_regression_against_champion_is_rejected():
    r = decide(_policy(), _ev(champion_comparison=_champion(-0.06, -0.03, -0.045)))
    assert r["decision"] == "reject"
    assert len(_failed(r)) == 1 and "champion v0" in _failed(r)[0]


def test_inconclusive_champion_comparison_is_borderline():
    ev = _ev(champion_comparison=_champion(-0.02, 0.01, -0.005))
    assert decide(_policy(), ev)["decision"] == "deploy"
    assert decide(_policy(require_approval="borderline"), ev)["decision"] == "pending_approval"
    assert decide(_policy(), _ev(champion_comparison=_champion(0.0, 0.02, 0.01)))["decision"] == "deploy"


def test_skipped_champion_comparison_needs_a_person():
    ev = _ev(champion_comparison={"champion_version": "v0", "skipped": "champion needs column x"})
    r = decide(_policy(), ev)
    assert r["decision"] == "pending_approval" and "column x" in r["rules"][-1]["detail"]


def test_metric_not_produced_by_the_task_fails_with_a_fix():
    ev = {"task": "regression", "metrics": {"rmse": 1.0, "mae": 0.8, "r2": 0.6, "mse": 1.0}, "baseline": REG_BASELINE}
    r = decide(_policy(min_metrics={"roc_auc": 0.7}), ev)
    assert r["decision"] == "reject" and "not computed for task regression" in r["rules"][0]["detail"]
    # The task default for regression is r2 >= 0.
    r = decide(PolicyConfig(), ev)
    assert r["decision"] == "deploy" and r["rules"][0]["rule"] == "r2 >= 0.0"


@pytest.mark.parametrize(
    "policy, message",
    [
        ({"min_metrics": {"rmse": 1.0}}, "lower-is-better"),
        ({"max_metrics": {"roc_auc": 0.9}}, "higher-is-better"),
        ({"min_metrics": {"auc": 0.9}}, "unknown metric 'auc'"),
        ({"fairness": [{"metric": "demographic_parity_ratio"}]}, "needs 'min' or 'max'"),
        ({"require_approval": "sometimes"}, "policy.require_approval"),
    ],
)
def test_bad_policy_config_is_refused_clearly(policy, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"policy": policy})


@pytest.mark.slow
def test_demo_data_with_injected_bias_fails_the_region_fairness_rule(tmp_path):
    from civicml import steps
    from civicml.config import load_config

    cfg = load_config(
        None,
        {
            "data.demo": {"rows": 20000, "bias": 1.0, "seed": 7},
            "data.sensitive_attributes": ["sex", "age_band", "region"],
            "data.pii_columns": ["claimant_name"],
            "model.params": {"n_estimators": 60},
            "storage.uri": str(tmp_path / "store"),
        },
    )
    steps.validate_data(cfg, str(tmp_path / "data"))
    steps.train(cfg, str(tmp_path / "data"), None, str(tmp_path / "model"))
    steps.evaluate(cfg, str(tmp_path / "data"), str(tmp_path / "model"), str(tmp_path / "ev.json"))
    result = steps.gate(cfg, str(tmp_path / "ev.json"), str(tmp_path / "gate.json"))
    assert result["decision"] == "reject"
    assert result["failed"] == ["demographic_parity_ratio[region] >= 0.8"]
    region_rule = next(r for r in result["rules"] if r["rule"].startswith("demographic_parity_ratio[region]"))
    assert "highest in East" in region_rule["detail"]
    events = [json.loads(p.read_text())["event"] for p in sorted((tmp_path / "store/audit/records").glob("*.json"))]
    assert events[-2:] == ["evaluation_done", "gate_decided"]


def test_required_fairness_rule_that_cannot_be_measured_fails_unless_optional():
    """Issue 13 item 2: a regression with policy.fairness deployed with no fairness rule in gate.json."""
    required = _policy(fairness=[{"metric": "mae_ratio", "min": 0.8}])
    reg = {
        "task": "regression",
        "metrics": {"r2": 0.5, "rmse": 1.0},
        "confidence_intervals": {},
        "baseline": REG_BASELINE,
    }
    r = decide(_policy(min_metrics={"r2": 0.0}, fairness=[{"metric": "mae_ratio", "min": 0.8}]), reg)
    assert r["decision"] == "reject" and r["failed"] == ["mae_ratio (not measured)"]
    assert "no sensitive attribute" in r["rules"][-1]["detail"] and "optional: true" in r["rules"][-1]["detail"]
    optional = _policy(min_metrics={"r2": 0.0}, fairness=[{"metric": "mae_ratio", "min": 0.8, "optional": True}])
    r = decide(optional, reg)
    assert r["decision"] == "deploy" and r["rules"][-1]["verdict"] == "not_measured"
    # A classification measure on a regression cannot be measured either: named, not silently skipped.
    r = decide(_policy(min_metrics={"r2": 0.0}, fairness=[{"metric": "demographic_parity_ratio", "min": 0.8}]), reg)
    assert r["decision"] == "reject" and "not measured for task regression" in r["rules"][-1]["detail"]
    # Measured: the regression disparity is judged like any other rule, naming the groups.
    groups = {"F": {"mae": 1.0, "count": 50}, "M": {"mae": 1.6, "count": 50}}
    fair = {"sex": {"mae_ratio": 0.625, "groups": groups, "suppressed_groups": [], "min_group_count": 30}}
    r = decide(
        _policy(min_metrics={"r2": 0.0}, fairness=[{"metric": "mae_ratio", "min": 0.8}]), {**reg, "fairness": fair}
    )
    assert r["decision"] == "reject" and r["failed"] == ["mae_ratio[sex] >= 0.8"]
    assert "mae lowest in F (1.000), highest in M (1.600)" in r["rules"][-1]["detail"]
    # The built-in default rule is optional: a project without sensitive attributes still deploys.
    assert decide(PolicyConfig(), {**GOOD, "fairness": {}})["decision"] == "deploy"
    assert required.fairness[0].optional is False


def test_near_constant_classifier_fails_the_no_skill_rule():
    """Issue 13 item 3: accuracy 0.72 vs 0.70 for always predicting the majority class passed the gate."""
    base = {
        "strategy": "majority class 1, scored with the prior 0.7000",
        "margins": {"balanced_accuracy": {"model": 0.53, "baseline": 0.5, "margin": 0.03, "low": 0.01, "high": 0.05}},
    }
    r = decide(_policy(), _ev(baseline=base))
    rule = next(x for x in r["rules"] if x["kind"] == "skill")
    assert r["decision"] == "reject" and rule["verdict"] == "fail" and rule["value"] == 0.01
    assert "baseline 0.5000" in rule["detail"] and "95% CI +0.0100 to +0.0500" in rule["detail"]
    # On the point estimate instead of the interval, with a smaller margin, it passes.
    r = decide(_policy(skill={"use_ci_lower_bound": False, "min_margin": 0.02}), _ev(baseline=base))
    assert r["decision"] == "deploy"
    # Switched off, no skill rule is recorded; missing from an evaluation, a person must judge.
    assert not [
        x for x in decide(_policy(skill={"enabled": False}), _ev(baseline=base))["rules"] if x["kind"] == "skill"
    ]
    r = decide(_policy(), _ev(baseline={}))
    assert r["decision"] == "pending_approval" and "no-skill baseline" in r["not_assessable"][0]
    with pytest.raises(Exception, match="unknown metric 'auc'"):
        PolicyConfig(skill={"metric": "auc"})

"""RunConfig loading: defaults, the example file, and clear errors naming the key."""

from pathlib import Path

import pytest

from civicml.config import ConfigError, RunConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_loads_and_round_trips():
    cfg = load_config(ROOT / "civicml.yaml")
    assert cfg.data.source == "demo:benefits"
    assert "claimant_name" in cfg.data.pii_columns
    assert RunConfig.from_json(cfg.to_json()) == cfg


def test_dotted_overrides_apply():
    cfg = load_config(
        ROOT / "civicml.yaml", {"data.demo.month": 4, "model.family": "random_forest", "tuning.search_space": {}}
    )
    assert cfg.data.demo.month == 4 and cfg.model.family == "random_forest"


@pytest.mark.parametrize(
    "text, key, problem",
    [
        ("model: {family: svm}", "model.family", "xgboost"),
        ("data: {sorce: x.csv}", "data.sorce", "unknown key"),
        ("split: {test_fraction: 0.9}", "split.test_fraction", "less than 0.5"),
        ("tuning: {algorithm: bayes}", "tuning", "unknown algorithm 'bayes'"),
        (
            "tuning: {search_space: {lr: {type: double, min: 1, max: 0.1}}}",
            "tuning.search_space.lr",
            "min (1.0) must be < max",
        ),
        ("data: {target: y, numeric_features: [y]}", "data", "also listed"),
    ],
)
def test_bad_config_names_key_and_problem(tmp_path, text, key, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert key in msg and problem in msg and str(path) in msg


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize(
    "over, key, bad",
    [
        ({"model.family": "random_forest"}, "tuning.search_space", "learning_rate"),
        ({"model.family": "logistic_regression", "tuning.search_space": {}}, "model.params", "n_estimators"),
    ],
)
def test_parameters_must_fit_the_model_family(over, key, bad):
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "civicml.yaml", over)
    assert key in str(err.value) and bad in str(err.value) and "valid names" in str(err.value)


def test_switching_family_with_its_default_space_loads():
    cfg = load_config(ROOT / "civicml.yaml", {"model.family": "random_forest", "tuning.search_space": {}})
    assert cfg.model.family == "random_forest" and cfg.tuning.search_space == {}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"task": "regression", "tuning.objective_metric": "roc_auc"}, "tuning.objective_metric 'roc_auc' is not"),
        ({"task": "regression", "policy.min_metrics": {"roc_auc": 0.7}}, "policy.min_metrics has ['roc_auc']"),
        ({"task": "regression", "policy.max_metrics": {"brier": 0.2}}, "policy.max_metrics has ['brier']"),
        (
            {"task": "regression", "policy.fairness": [{"metric": "demographic_parity_ratio", "min": 0.8}]},
            "policy.fairness[0].metric 'demographic_parity_ratio' is not measured for task regression",
        ),
        ({"policy.skill": {"metric": "rmse"}}, "policy.skill.metric 'rmse' is not computed"),
        ({"tuning.objective_metric": "log_loss", "tuning.direction": "maximize"}, "set direction: minimize"),
        ({"model.family": "logistic_regression", "model.params": {"max_depth": 3}}, "When switching families"),
    ],
)
def test_config_is_checked_against_task_and_family_before_any_step(overrides, message):
    """Issue 13 item 10: mismatches used to fail after tuning trials or count as model failures."""
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert message in str(err.value)


def test_unset_tuning_keys_take_the_task_defaults():
    cfg = load_config(None, {"task": "regression"})
    assert (cfg.tuning.objective_metric, cfg.tuning.direction) == ("rmse", "minimize")
    assert [r.metric for r in cfg.policy.fairness] == ["mae_ratio"] and cfg.policy.fairness[0].optional
    assert type(cfg).from_json(cfg.to_json()) == cfg

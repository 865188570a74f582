"""The tuning section of the config: valid spaces parse, each kind of invalid space fails clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from civicml.config import ConfigError, load_config, parse_config
from civicml.modeling.search_space import coerce_params, grid_values, space_for

REPO = Path(__file__).resolve().parents[2]


def tuning(**section) -> dict:
    return {"tuning": section}


def test_demo_config_tuning_section_parses():
    cfg = load_config(REPO / "civicml.yaml")
    t = cfg.tuning
    assert t.algorithm == "tpe" and t.early_stopping is None  # off: the example runs under restricted
    assert t.search_space["learning_rate"].log is True
    assert t.search_space["max_depth"].type == "int"


def test_every_algorithm_and_type_accepted():
    space = {
        "learning_rate": {"type": "double", "min": 0.01, "max": 0.3, "log": True},
        "max_depth": {"type": "int", "min": 2, "max": 6},
        "grow_policy": {"type": "categorical", "values": ["depthwise", "lossguide"]},
    }
    for algorithm in ("random", "tpe", "multivariate-tpe", "cmaes"):
        cfg = parse_config(tuning(algorithm=algorithm, search_space=space))
        assert cfg.tuning.algorithm == algorithm
    grid = {
        "learning_rate": {"type": "double", "min": 0.1, "max": 0.3, "step": 0.1},
        "max_depth": {"type": "int", "min": 2, "max": 4},
    }
    cfg = parse_config(tuning(algorithm="grid", max_trials=9, search_space=grid))
    assert grid_values(cfg.tuning.search_space) == {"learning_rate": [0.1, 0.2, 0.3], "max_depth": [2, 3, 4]}


@pytest.mark.parametrize(
    ("section", "key", "words"),
    [
        (
            tuning(search_space={"lr": {"type": "double", "min": 0.3, "max": 0.3}}),
            "tuning.search_space.lr",
            "must be < max",
        ),
        (
            tuning(search_space={"lr": {"type": "double", "min": 0.5, "max": 0.1}}),
            "tuning.search_space.lr",
            "must be < max",
        ),
        (tuning(search_space={"b": {"type": "categorical", "values": []}}), "tuning.search_space.b", "non-empty"),
        (tuning(search_space={"b": {"type": "categorical"}}), "tuning.search_space.b", "non-empty"),
        (
            tuning(search_space={"b": {"type": "categorical", "values": ["a", "a"]}}),
            "tuning.search_space.b",
            "distinct",
        ),
        (tuning(algorithm="bayesianoptimization"), "tuning.algorithm", "choose one of random, tpe"),
        (
            tuning(
                algorithm="cmaes",
                search_space={
                    "lr": {"type": "double", "min": 0.01, "max": 0.3},
                    "b": {"type": "categorical", "values": ["x", "y"]},
                },
            ),
            "tuning",
            "cmaes needs at least two continuous",
        ),
        (
            tuning(search_space={"lr": {"type": "double", "min": 0.0, "max": 0.3, "log": True}}),
            "tuning.search_space.lr",
            "log scale needs min > 0",
        ),
        (
            tuning(search_space={"lr": {"type": "double", "min": 0.01, "max": 0.3, "log": True, "step": 0.01}}),
            "tuning.search_space.lr",
            "cannot have a step",
        ),
        (tuning(search_space={"d": {"type": "int", "min": 1.5, "max": 4}}), "tuning.search_space.d", "whole-number"),
        (tuning(search_space={"d": {"type": "int", "min": 1, "max": 4, "step": 9}}), "tuning.search_space.d", "step"),
        (tuning(search_space={"d": {"type": "double"}}), "tuning.search_space.d", "needs 'min' and 'max'"),
        (tuning(search_space={"d": {"type": "float", "min": 0, "max": 1}}), "tuning.search_space.d.type", "double"),
        (
            tuning(search_space={"learning-rate": {"type": "double", "min": 0.1, "max": 0.2}}),
            "tuning.search_space",
            "letters, digits and '_'",
        ),
        (
            tuning(algorithm="grid", search_space={"lr": {"type": "double", "min": 0.1, "max": 0.3}}),
            "tuning",
            "grid needs 'step'",
        ),
        (
            tuning(algorithm="grid", max_trials=10, search_space={"d": {"type": "int", "min": 1, "max": 3}}),
            "tuning",
            "exceeds the 3 grid points",
        ),
        (tuning(early_stopping={"algorithm": "hyperband"}), "tuning.early_stopping.algorithm", "medianstop"),
        (tuning(early_stopping={"start_step": 0}), "tuning.early_stopping.start_step", "greater than or equal"),
        (tuning(max_trials=0), "tuning.max_trials", "greater than or equal"),
        (tuning(parallel_trials=0), "tuning.parallel_trials", "greater than or equal"),
        (tuning(max_failed_trials=-1), "tuning.max_failed_trials", "greater than or equal"),
        (tuning(direction="up"), "tuning.direction", "maximize"),
        (tuning(katib={"timeout_seconds": 5}), "tuning.katib.timeout_seconds", "greater than or equal"),
    ],
)
def test_invalid_space_names_the_key(section, key, words):
    with pytest.raises(ConfigError) as info:
        parse_config(section, where="civicml.yaml")
    message = str(info.value)
    assert "civicml.yaml" in message
    assert f"  - {key}:" in message, message
    assert words in message, message


def test_default_space_is_checked_against_the_algorithm_when_resolved():
    # An empty search_space means the family default: logistic regression has one continuous parameter.
    cfg = parse_config({"model": {"family": "logistic_regression"}, "tuning": {"algorithm": "cmaes"}})
    with pytest.raises(ConfigError, match=r"tuning.search_space \(empty: the logistic_regression default\).*cmaes"):
        space_for(cfg.model.family, cfg.tuning.search_space, cfg.tuning.algorithm, cfg.tuning.max_trials)
    cfg = parse_config({"tuning": {"algorithm": "grid"}})
    with pytest.raises(ConfigError, match="grid needs 'step'"):
        space_for(cfg.model.family, cfg.tuning.search_space, cfg.tuning.algorithm, cfg.tuning.max_trials)
    # xgboost's default has four continuous parameters: fine for cmaes.
    assert len(space_for("xgboost", {}, "cmaes", 8)) == 4


def test_coerce_params_types_and_ranges():
    cfg = parse_config(
        {
            "model": {"family": "random_forest"},
            **tuning(
                search_space={
                    "min_impurity_decrease": {"type": "double", "min": 0.01, "max": 0.3},
                    "max_depth": {"type": "int", "min": 2, "max": 6},
                    "bootstrap": {"type": "categorical", "values": [True, False]},
                    "n_estimators": {"type": "categorical", "values": [100, 200]},
                }
            ),
        }
    )
    space = cfg.tuning.search_space
    # Katib substitutes every value as text.
    assert coerce_params(
        space, {"min_impurity_decrease": "0.05", "max_depth": "4", "bootstrap": "False", "n_estimators": "200"}
    ) == {
        "min_impurity_decrease": 0.05,
        "max_depth": 4,
        "bootstrap": False,
        "n_estimators": 200,
    }
    for bad, words in [
        ({"min_impurity_decrease": "0.5", "max_depth": 4, "bootstrap": True, "n_estimators": 100}, "outside 0.01..0.3"),
        ({"min_impurity_decrease": "x", "max_depth": 4, "bootstrap": True, "n_estimators": 100}, "not a number"),
        (
            {"min_impurity_decrease": 0.1, "max_depth": "4.5", "bootstrap": True, "n_estimators": 100},
            "not a whole number",
        ),
        ({"min_impurity_decrease": 0.1, "max_depth": 4, "bootstrap": "maybe", "n_estimators": 100}, "not one of"),
        ({"min_impurity_decrease": 0.1, "max_depth": 4, "bootstrap": True}, "missing parameter(s) ['n_estimators']"),
        (
            {"min_impurity_decrease": 0.1, "max_depth": 4, "bootstrap": True, "n_estimators": 100, "eta": 1},
            "unknown parameter(s) ['eta']",
        ),
    ]:
        with pytest.raises(ValueError) as info:
            coerce_params(space, bad)
        assert words in str(info.value)

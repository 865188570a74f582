"""The catalog is the one definition of metrics, directions and families, and it is cheap to import."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from civicml import catalog
from civicml.config import ConfigError, parse_config
from civicml.evaluation.metrics import classification_metrics, regression_metrics
from civicml.modeling.estimators import build_params, fit_model
from civicml.modeling.preprocessing import FeatureSpec


def test_each_task_lists_exactly_the_metrics_the_evaluation_computes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    assert tuple(classification_metrics(y, rng.random(200))) == catalog.TASK_METRICS["binary_classification"]
    assert tuple(regression_metrics(rng.random(50), rng.random(50))) == catalog.TASK_METRICS["regression"]


def test_directions_agree_with_what_the_metrics_measure():
    # A better model must score better by every metric's declared direction: a wrong direction fails here.
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    good = np.clip(np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.1, y.size), 0.01, 0.99)
    poor = np.clip(np.where(y == 1, 0.55, 0.45) + rng.normal(0, 0.3, y.size), 0.01, 0.99)
    t = rng.normal(0, 1, 2000)
    measured = {
        **{k: (v, classification_metrics(y, poor)[k]) for k, v in classification_metrics(y, good).items()},
        **{
            k: (v, regression_metrics(t, t + rng.normal(0, 1.0, t.size))[k])
            for k, v in regression_metrics(t, t + rng.normal(0, 0.1, t.size)).items()
        },
    }
    assert set(measured) == set(catalog.KNOWN_METRICS)
    for name, (better, worse) in measured.items():
        if catalog.is_lower_better(name):
            assert better < worse, name
            assert catalog.direction(name) == "minimize"
        else:
            assert better > worse, name
            assert catalog.direction(name) == "maximize"
    assert set(catalog.HIGHER_IS_BETTER_METRICS) | catalog.LOWER_IS_BETTER == catalog.KNOWN_METRICS
    assert not set(catalog.HIGHER_IS_BETTER_METRICS) & catalog.LOWER_IS_BETTER


def test_every_family_has_defaults_a_space_and_parameters_it_accepts():
    assert set(catalog.FAMILY_PARAMS) == set(catalog.FAMILY_DEFAULTS) == set(catalog.DEFAULT_SEARCH_SPACES)
    assert set(catalog.FAMILY_PARAMS) == set(catalog.FAMILIES) == set(catalog.FAMILY_TASKS)
    for family in catalog.FAMILIES:
        assert set(catalog.FAMILY_DEFAULTS[family]) <= catalog.FAMILY_PARAMS[family], family
        assert set(catalog.DEFAULT_SEARCH_SPACES[family]) <= catalog.FAMILY_PARAMS[family], family


@pytest.mark.parametrize("module", ["civicml.catalog", "civicml.config"])
def test_vocabulary_and_config_import_no_heavy_library(module):
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout))
    heavy = {"sklearn", "pandas", "fairlearn", "scipy", "numpy", "xgboost", "matplotlib"}
    assert not heavy & {m.split(".")[0] for m in loaded}


def test_logistic_regression_for_regression_is_refused_at_load_naming_the_fix():
    with pytest.raises(ConfigError) as err:
        parse_config({"task": "regression", "data": {"target": "y"}, "model": {"family": "logistic_regression"}})
    msg = str(err.value)
    assert "logistic_regression" in msg and "regression" in msg and "xgboost" in msg and "random_forest" in msg


def test_logistic_regression_for_regression_is_refused_by_the_library_too():
    df = pd.DataFrame({"x": np.arange(40, dtype=float), "y": np.arange(40, dtype=float) * 2.0})
    spec = FeatureSpec.fit(df, target="y", task="regression", numeric=["x"], categorical=[])
    # Before issue 15 this fitted a LinearRegression and dropped C without a word.
    with pytest.raises(ValueError, match="logistic_regression.*does not fit task regression"):
        fit_model("logistic_regression", spec, build_params("logistic_regression", {"C": 0.1}, {}), df, 0, 1)

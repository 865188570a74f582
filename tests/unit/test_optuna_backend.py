"""Local Optuna search: Katib names map to samplers, seeded runs repeat, median pruning prunes."""

from __future__ import annotations

import optuna
import pytest
from html_checks import check_structure

from civicml.config import parse_config
from civicml.data.contract import feature_lists, infer_contract
from civicml.data.demo import generate_benefits
from civicml.data.split import split_frame
from civicml.modeling.preprocessing import FeatureSpec
from civicml.modeling.search_space import space_for
from civicml.reporting.trials import trials_html, trials_markdown
from civicml.tuning.objective import TuningError
from civicml.tuning.optuna_backend import make_pruner, make_sampler, run_optuna

BASE = {
    "data": {"pii_columns": ["claimant_name"], "sensitive_attributes": ["sex", "age_band", "region"]},
    "model": {"params": {"n_estimators": 40}, "n_threads": 1},
}


def make_cfg(**tuning):
    return parse_config({**BASE, "tuning": {"max_trials": 5, "seed": 3, **tuning}})


@pytest.fixture(scope="module")
def data():
    cfg = make_cfg()
    df = generate_benefits(rows=2000, seed=11).drop(columns=["claimant_name"])
    numeric, categorical = feature_lists(infer_contract(df, cfg.data), cfg.data)
    splits = split_frame(df, cfg.data.target, cfg.split, stratify=True)
    spec = FeatureSpec.fit(splits["train"], cfg.data.target, cfg.task, numeric, categorical)
    return spec, splits["train"], splits["valid"]


def grid_cfg():
    """A 2 x 2 grid: max_depth 2..3, subsample 0.8..1.0 in steps of 0.2."""
    return make_cfg(
        algorithm="grid",
        max_trials=4,
        search_space={
            "max_depth": {"type": "int", "min": 2, "max": 3},
            "subsample": {"type": "double", "min": 0.8, "max": 1.0, "step": 0.2},
        },
    )


def test_katib_algorithm_names_map_to_optuna_samplers():
    space = space_for("xgboost", {})
    assert type(make_sampler("random", 1, space)) is optuna.samplers.RandomSampler
    tpe = make_sampler("tpe", 1, space)
    assert type(tpe) is optuna.samplers.TPESampler and not tpe._multivariate
    mtpe = make_sampler("multivariate-tpe", 1, space)
    assert type(mtpe) is optuna.samplers.TPESampler and mtpe._multivariate
    assert type(make_sampler("cmaes", 1, space)) is optuna.samplers.CmaEsSampler
    assert type(make_sampler("grid", 1, grid_cfg().tuning.search_space)) is optuna.samplers.GridSampler
    with pytest.raises(ValueError, match="unknown algorithm"):
        make_sampler("hyperband", 1, space)


def test_medianstop_maps_to_median_pruner_with_katib_settings():
    pruner = make_pruner(make_cfg(early_stopping={"min_trials_required": 4, "start_step": 7}))
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert pruner._n_startup_trials == 4 and pruner._n_warmup_steps == 6
    assert isinstance(make_pruner(make_cfg()), optuna.pruners.NopPruner)


def test_same_seed_same_trials_and_best_params(data):
    spec, train, valid = data
    cfg = make_cfg(algorithm="tpe", max_trials=4)
    first = run_optuna(cfg, spec, train, valid)
    second = run_optuna(cfg, spec, train, valid)
    assert first["trials"] == second["trials"]
    assert first["best_params"] == second["best_params"] and first["best_value"] == second["best_value"]
    assert len(first["trials"]) == 4 and all(t["state"] == "COMPLETE" for t in first["trials"])
    assert len({t["learning_rate"] for t in first["trials"]}) == 4


def test_median_pruning_really_prunes(data):
    spec, train, valid = data
    cfg = make_cfg(algorithm="random", max_trials=7, early_stopping={"min_trials_required": 2, "start_step": 3})
    result = run_optuna(cfg, spec, train, valid)
    pruned = [t for t in result["trials"] if t["state"] == "PRUNED"]
    assert pruned, result["trials"]
    assert all(t["rounds"] < 40 for t in pruned)
    assert all(t["rounds"] == 40 for t in result["trials"] if t["state"] == "COMPLETE")
    assert result["rounds_run"] < result["rounds_full"] == 7 * 40
    assert result["pruned"] == len(pruned)
    # The best trial is a completed one, and train gets its params.
    best = next(t for t in result["trials"] if t["number"] == result["best_trial"])
    assert best["state"] == "COMPLETE"
    assert result["best_params"] == {k: best[k] for k in result["best_params"]}


def test_grid_search_visits_the_grid(data):
    spec, train, valid = data
    result = run_optuna(grid_cfg(), spec, train, valid)
    seen = {(t["max_depth"], t["subsample"]) for t in result["trials"]}
    assert seen == {(2, 0.8), (2, 1.0), (3, 0.8), (3, 1.0)}


def test_failed_trials_beyond_the_budget_stop_the_search(data):
    spec, train, valid = data
    # An objective metric the task does not produce makes every trial fail. The config check refuses
    # such a config before any step (issue 13 item 10), so the search is handed one that skipped it.
    cfg = make_cfg(max_failed_trials=0)
    cfg.tuning.objective_metric = "r2"
    with pytest.raises(TuningError, match=r"1 tuning trials failed \(tuning.max_failed_trials = 0\).*'r2'"):
        run_optuna(cfg, spec, train, valid)


def test_trials_tables_render_every_trial(data):
    spec, train, valid = data
    result = run_optuna(make_cfg(max_trials=3), spec, train, valid)
    md = trials_markdown(result)
    assert md.count("| COMPLETE |") == 3 and "Best roc_auc" in md
    page = check_structure(trials_html(result))  # strict parse (issue 15)
    table = page["tables"]["All trials"]
    assert len(table.findall("tbody/tr")) == 3 and "learning_rate" in page["text"]

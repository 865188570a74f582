"""The bare baseline: the pipeline's machine-learning work as one plain script, in one process.

It does what `civicml run` does to the data, with the same third-party libraries
(pandas, scikit-learn, Optuna, XGBoost, fairlearn) called directly: the same demo
rows, the same stratified split and seeds, the same category encoding, the same
Optuna sampler/pruner/seed/trials over the same space with the same per-round
median stopping, the same final XGBoost fit, and the same evaluation (sklearn
metrics, 1000-resample bootstrap CIs, curves, fairlearn group metrics and
bootstrap CIs of the disparities per sensitive attribute, TreeSHAP importance on a 5000-row sample), then writes the
model and the evaluation to a directory.

What it leaves out is what the pipeline adds: KFP compilation and the kfp.local
executor, one subprocess per step, Parquet hand-offs between steps, the data
contract, profile and fingerprint, registry, model card and audit log.

The knobs are read from the same `civicml.yaml` (plain YAML, not civicml's config
code) so both sides are configured identically. `--json` prints per-stage
seconds and the results that `pipeline_overhead.py` compares with the pipeline's
(best trial, best parameters, test ROC-AUC) to prove both did the same work.

Usage:
    python benchmarks/bare_baseline.py --config civicml.yaml --rows 100000 --trials 8 --json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from civicml.catalog import FAMILY_DEFAULTS

# The XGBoost parameters civicml's estimator starts from, before model.params and then the tuned values
# override them (build_params' order). They are knobs like the YAML's, so they come from the one place
# civicml keeps them (`civicml.catalog`, standard library only) rather than a copy that could drift.
XGB_DEFAULTS = FAMILY_DEFAULTS["xgboost"]
N_RESAMPLES = 1000
SHAP_ROWS = 5000
THRESHOLD = 0.5


def _weighted_metrics(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> dict[str, np.ndarray]:
    """The 8 headline classification metrics for each bootstrap weight row of W."""
    pred = (p >= THRESHOLD).astype("float64")
    n = W.sum(axis=1)
    tp, fp, fn = W @ (y * pred), W @ ((1 - y) * pred), W @ (y * (1 - pred))
    tn = n - tp - fp - fn
    eps = np.finfo("float64").eps
    pc = np.clip(p, eps, 1 - eps)
    order = np.argsort(p, kind="mergesort")
    ps, ys, Ws = p[order], y[order], W[:, order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    pos, neg = np.add.reduceat(Ws * ys, starts, axis=1), np.add.reduceat(Ws * (1 - ys), starts, axis=1)
    npos, nneg = pos.sum(axis=1), neg.sum(axis=1)
    tpc, fpc = np.cumsum(pos[:, ::-1], axis=1), np.cumsum(neg[:, ::-1], axis=1)
    rec = tpc / npos[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "accuracy": (tp + tn) / n,
            "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
            "recall": np.where(tp + fn > 0, tp / (tp + fn), 0.0),
            "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
            "brier": (W @ (p - y) ** 2) / n,
            "log_loss": (W @ -(y * np.log(pc) + (1 - y) * np.log(1 - pc))) / n,
            "roc_auc": (pos * (np.cumsum(neg, axis=1) - neg + 0.5 * neg)).sum(axis=1) / (npos * nneg),
            "pr_auc": (
                np.diff(np.concatenate([np.zeros((len(W), 1)), rec], axis=1), axis=1)
                * np.where(tpc + fpc > 0, tpc / (tpc + fpc), 0.0)
            ).sum(axis=1),
        }


def bootstrap(y: np.ndarray, p: np.ndarray, seed: int, n_resamples: int = N_RESAMPLES, chunk: int = 100):
    """Percentile 95 % bootstrap intervals from multinomial resample weights."""
    rng = np.random.default_rng(seed)
    n = len(y)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_resamples, chunk):
        W = _weights(rng, n, min(chunk, n_resamples - start))
        for name, v in _weighted_metrics(y.astype("float64"), p, W).items():
            parts.setdefault(name, []).append(v)
    return {
        name: dict(zip(("low", "high"), np.quantile(np.concatenate(v), [0.025, 0.975]).tolist()))
        for name, v in parts.items()
    }


def _weights(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    idx = rng.integers(0, n, size=(k, n)) + (np.arange(k) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=k * n).reshape(k, n).astype("float64")


def disparity_cis(
    y: np.ndarray, yp: np.ndarray, groups: np.ndarray, seed: int, n_resamples: int = N_RESAMPLES, chunk: int = 100
) -> dict[str, dict[str, float]]:
    """95 % bootstrap intervals of the demographic-parity and equalized-odds disparities."""
    rng = np.random.default_rng(seed)
    G = (groups[:, None] == np.unique(groups)[None, :]).astype("float64")
    yc, pc = y.astype("float64")[:, None], yp.astype("float64")[:, None]
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_resamples, chunk):
        W = _weights(rng, len(y), min(chunk, n_resamples - start))
        with np.errstate(divide="ignore", invalid="ignore"):
            sel = (W @ (G * pc)) / (W @ G)
            tpr = (W @ (G * yc * pc)) / (W @ (G * yc))
            fpr = (W @ (G * (1 - yc) * pc)) / (W @ (G * (1 - yc)))
            lo, hi = sel.min(axis=1), sel.max(axis=1)
            vals = {
                "demographic_parity_difference": hi - lo,
                "demographic_parity_ratio": lo / hi,
                "equalized_odds_difference": np.maximum(np.ptp(tpr, axis=1), np.ptp(fpr, axis=1)),
            }
        for k, v in vals.items():
            parts.setdefault(k, []).append(v)
    return {
        k: dict(zip(("low", "high"), np.nanquantile(np.concatenate(v), [0.025, 0.975]).tolist()))
        for k, v in parts.items()
    }


def run(
    config_path: str | Path, rows: int | None = None, trials: int | None = None, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Do the pipeline's ML work once; return per-stage seconds and the results.

    Args:
        config_path: A civicml.yaml (only plain YAML is read).
        rows: Demo rows (default: data.demo.rows).
        trials: Tuning trials (default: tuning.max_trials).
        out_dir: Where the model and evaluation are written (default: a temp dir).
    """
    t_start = time.perf_counter()
    stages: dict[str, float] = {}

    def lap(name: str, t0: float) -> float:
        now = time.perf_counter()
        stages[name] = now - t0
        return now

    import optuna
    import xgboost as xgb
    from fairlearn import metrics as flm
    from sklearn import metrics as skm
    from sklearn.calibration import calibration_curve
    from sklearn.model_selection import train_test_split

    from civicml.data.demo import generate_benefits  # the data source both sides read

    cfg = yaml.safe_load(Path(config_path).read_text())
    d, sp, m, tu = cfg["data"], cfg["split"], cfg["model"], cfg["tuning"]
    demo = dict(d.get("demo") or {})
    rows = rows or demo.get("rows", 5000)
    n_trials = trials or tu["max_trials"]
    target, sensitive, pii = d["target"], list(d.get("sensitive_attributes", [])), list(d.get("pii_columns", []))
    t = lap("imports", t_start)

    # --- data: generate, drop PII, pick features, split -------------------------------------------------
    df = generate_benefits(rows=rows, month=demo.get("month", 1), bias=demo.get("bias", 0.0), seed=demo.get("seed", 7))
    df = df.drop(columns=[c for c in pii if c in df.columns])
    feats = [c for c in df.columns if c not in (target, *sensitive)]
    numeric = [c for c in feats if pd.api.types.is_numeric_dtype(df[c])]
    categorical = [c for c in feats if c not in numeric]
    df = df[[*numeric, *categorical, *sensitive, target]]
    rest, test = train_test_split(df, test_size=sp["test_fraction"], random_state=sp["seed"], stratify=df[target])
    train, valid = train_test_split(
        rest,
        test_size=sp["valid_fraction"] / (1 - sp["test_fraction"]),
        random_state=sp["seed"] + 1,
        stratify=rest[target],
    )
    train, valid, test = (x.reset_index(drop=True) for x in (train, valid, test))
    cats = {c: sorted(str(v) for v in train[c].dropna().unique()) for c in categorical}
    positive = sorted(train[target].unique().tolist())[1]

    def X(frame: pd.DataFrame) -> pd.DataFrame:
        out = {c: frame[c].astype("float64") for c in numeric}
        out.update({c: pd.Categorical(frame[c], categories=cats[c]) for c in categorical})
        return pd.DataFrame(out)

    Xtr, Xva, Xte = X(train), X(valid), X(test)
    ytr, yva, yte = ((f[target] == positive).astype("int64").to_numpy() for f in (train, valid, test))
    t = lap("data", t)

    # --- tune: Optuna TPE/random + median stopping on XGBoost's per-round validation AUC -------------------
    fixed = {**XGB_DEFAULTS, **(m.get("params") or {})}

    def model(params: dict[str, Any], callbacks=None):
        return xgb.XGBClassifier(
            tree_method="hist",
            enable_categorical=True,
            max_cat_to_onehot=1,
            random_state=m["seed"],
            n_jobs=m["n_threads"],
            eval_metric="auc",
            **({"callbacks": callbacks} if callbacks else {}),
            **{**fixed, **params},
        )

    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=tu["seed"]),
        "random": lambda: optuna.samplers.RandomSampler(seed=tu["seed"]),
    }
    es = tu.get("early_stopping")
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=es["min_trials_required"], n_warmup_steps=es["start_step"] - 1)
        if es
        else optuna.pruners.NopPruner()
    )
    space = tu["search_space"]

    def objective(trial) -> float:
        params = {}
        for name, s in space.items():
            if s["type"] == "int":
                params[name] = trial.suggest_int(name, int(s["min"]), int(s["max"]), log=s.get("log", False), step=1)
            else:
                params[name] = trial.suggest_float(
                    name, s["min"], s["max"], log=s.get("log", False), step=None if s.get("log") else s.get("step")
                )

        class Report(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):
                v = float(next(iter(evals_log.values()))["auc"][-1])
                if math.isfinite(v):
                    trial.report(v, epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                return False

        est = model(params, callbacks=[Report()] if es else None)
        est.fit(Xtr, ytr, eval_set=[(Xva, yva)], verbose=False)
        return float(skm.roc_auc_score(yva, est.predict_proba(Xva)[:, 1]))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=tu["direction"], sampler=samplers[tu["algorithm"]](), pruner=pruner)
    study.optimize(objective, n_trials=n_trials, n_jobs=1)
    t = lap("tune", t)

    # --- train the final model on train, save it ----------------------------------------------------------
    final = model(study.best_params)
    final.fit(Xtr, ytr, verbose=False)
    out = Path(out_dir or tempfile.mkdtemp(prefix="civicml-bare-"))
    out.mkdir(parents=True, exist_ok=True)
    final.get_booster().save_model(str(out / "model.json"))
    t = lap("train", t)

    # --- evaluate: metrics, CIs, curves, fairness, TreeSHAP ---------------------------------------------
    p = final.predict_proba(Xte)[:, 1].astype("float64")
    yp = (p >= THRESHOLD).astype(int)
    metrics = {
        "accuracy": skm.accuracy_score(yte, yp),
        "precision": skm.precision_score(yte, yp, zero_division=0),
        "recall": skm.recall_score(yte, yp, zero_division=0),
        "f1": skm.f1_score(yte, yp, zero_division=0),
        "roc_auc": skm.roc_auc_score(yte, p),
        "pr_auc": skm.average_precision_score(yte, p),
        "log_loss": skm.log_loss(yte, p, labels=[0, 1]),
        "brier": skm.brier_score_loss(yte, p),
    }
    evaluation: dict[str, Any] = {
        "metrics": {k: float(v) for k, v in metrics.items()},
        "confusion_matrix": skm.confusion_matrix(yte, yp, labels=[0, 1]).tolist(),
    }
    evaluation["roc"] = [a.tolist()[:: max(1, len(a) // 100)] for a in skm.roc_curve(yte, p)]
    evaluation["pr"] = [a.tolist()[:: max(1, len(a) // 100)] for a in skm.precision_recall_curve(yte, p)]
    evaluation["calibration"] = [a.tolist() for a in calibration_curve(yte, p, n_bins=10)]
    fairness = {}
    group_values = {attr: test[attr].astype(str).to_numpy() for attr in sensitive}
    for attr, groups in group_values.items():
        mf = flm.MetricFrame(
            metrics={
                "selection_rate": flm.selection_rate,
                "tpr": flm.true_positive_rate,
                "fpr": flm.false_positive_rate,
                "count": flm.count,
            },
            y_true=yte,
            y_pred=yp,
            sensitive_features=groups,
        )
        fairness[attr] = {
            "groups": json.loads(mf.by_group.to_json(orient="index")),
            **{
                name: float(getattr(flm, name)(yte, yp, sensitive_features=groups))
                for name in ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")
            },
        }
    evaluation["fairness"] = fairness
    # Up to here: the evaluation of the outside check's bare script (issue 18), with no intervals and no SHAP.
    stages["evaluate_no_intervals"] = time.perf_counter() - t
    evaluation["confidence_intervals"] = bootstrap(yte, p, seed=sp["seed"])
    for attr, groups in group_values.items():
        fairness[attr]["confidence_intervals"] = disparity_cis(yte, yp, groups, seed=sp["seed"])
    sample = Xte.sample(n=min(SHAP_ROWS, len(Xte)), random_state=sp["seed"])
    contribs = final.get_booster().predict(xgb.DMatrix(sample, enable_categorical=True), pred_contribs=True)
    evaluation["feature_importance"] = dict(zip(sample.columns, np.abs(contribs[:, :-1]).mean(axis=0).tolist()))
    (out / "evaluation.json").write_text(json.dumps(evaluation, indent=2, default=float))
    t = lap("evaluate", t)

    # --- gate: the same minimum-metric and fairness thresholds ---------------------------------------------
    pol = cfg.get("policy", {})
    ok = all(metrics[k] >= v for k, v in (pol.get("min_metrics") or {}).items())
    for rule in pol.get("fairness") or []:
        ok = ok and all(f[rule["metric"]] >= rule.get("min", -np.inf) for f in fairness.values())
    lap("gate", t)
    return {
        "rows": rows,
        "trials": n_trials,
        "seconds": time.perf_counter() - t_start,
        "stages": stages,
        "best_trial": study.best_trial.number,
        "best_params": study.best_params,
        "best_value": study.best_value,
        "test_roc_auc": float(metrics["roc_auc"]),
        "decision": "deploy" if ok else "reject",
        "trial_states": [tr.state.name for tr in study.trials],
        "n_features": Xtr.shape[1],
        "out_dir": str(out),
    }


def main() -> None:
    """Command line: run once and print the result."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="civicml.yaml", help="civicml.yaml to read the knobs from")
    ap.add_argument("--rows", type=int, default=None, help="demo rows (default: data.demo.rows)")
    ap.add_argument("--trials", type=int, default=None, help="tuning trials (default: tuning.max_trials)")
    ap.add_argument("--out", default=None, help="output directory (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON line")
    a = ap.parse_args()
    res = run(a.config, a.rows, a.trials, a.out)
    print(json.dumps(res) if a.json else json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

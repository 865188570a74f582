"""One plain function per pipeline step: the only API the KFP components call.

Each step reads its inputs from paths, writes its outputs to paths and returns a
small JSON-able summary. The same functions back the `civicml` CLI, so every stage
runs outside KFP too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicml.config import ColumnSpec, RunConfig
from civicml.governance.audit import AuditLog, default_actor
from civicml.provenance import code_revision, image, library_versions
from civicml.storage.registry import Registry, new_version_id
from civicml.storage.store import open_store

if TYPE_CHECKING:
    import pandas as pd

# Heavy libraries (pandas, scikit-learn, XGBoost) are imported inside the steps that use
# them: every pipeline step is a fresh process, and gate/register/deploy need none of them.

SPLITS = ("train", "valid", "test")


def _cfg(config: RunConfig | str) -> RunConfig:
    return config if isinstance(config, RunConfig) else RunConfig.from_json(config)


def _registry(cfg: RunConfig) -> Registry:
    return Registry(open_store(cfg.storage.uri))


def _write_json(path: str | Path, obj: Any) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def load_splits(data_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Read the train/valid/test Parquet files written by `validate_data`."""
    import pandas as pd

    d = Path(data_dir)
    return {name: pd.read_parquet(d / f"{name}.parquet") for name in SPLITS}


def data_info(data_dir: str | Path) -> dict[str, Any]:
    """The `data_info.json` written by `validate_data` (features, fingerprint, version)."""
    return _read_json(Path(data_dir) / "data_info.json")


def check_project_name(cfg: RunConfig, registry: Registry, contract: list[ColumnSpec], df: pd.DataFrame) -> None:
    """Refuse data that belongs to another project stored under the same `name:`.

    Versions, aliases and contracts are kept per `name`: a copied config with new data but the old
    name would be checked against (and compared with, and promoted over) the other project. When
    the target or most of the contract's columns differ, the cause is the shared name, and the
    message says so instead of listing missing columns.

    Raises:
        DataError: naming the project, both targets/column sets and the fix.
    """
    from civicml.data.errors import DataError

    expected = {c.name for c in contract}
    present = set(df.columns)
    targets = {
        m.get("lineage", {}).get("config", {}).get("data", {}).get("target")
        for m in registry.versions()
        if m.get("name") == cfg.name
    } - {None}
    other_target = targets and cfg.data.target not in targets
    missing = expected - present
    if not other_target and len(missing) * 2 <= len(expected):
        return
    was = f"target {sorted(targets)[0]!r}" if targets else f"columns {sorted(expected)[:8]}"
    raise DataError(
        f"project name {cfg.name!r} is already used in {registry.store.describe()} by a project with {was}; "
        f"this config has target {cfg.data.target!r} and data with columns {sorted(present)[:8]}. If this is a "
        f"different project, give it its own name (set name: {cfg.name}-{cfg.data.target.replace('_', '-')} in the "
        "config, or write a new config with `civicml init`); if it is the same project, its data changed shape: "
        f"declare data.contract or restore the columns {sorted(missing)[:8]}"
    )


def prepare_table(cfg: RunConfig, registry: Registry, df: pd.DataFrame):
    """Drop PII, resolve and enforce the data contract, keep the model's columns.

    Shared by `validate_data` and the monitor's "is this the champion's data?" check, so both
    fingerprint exactly the same rows.

    Returns:
        (frame, contract, contract origin, numeric features, categorical features, contract report).

    Raises:
        DataError: a sensitive attribute is missing or the data breaks the contract.
    """
    from civicml.data.checks import check_columns, check_values
    from civicml.data.contract import enforce_contract, feature_lists, infer_contract
    from civicml.data.errors import DataError

    df = df.drop(columns=[c for c in cfg.data.pii_columns if c in df.columns])
    check_columns(df, cfg.data.target, set(cfg.data.numeric_features or []) | set(cfg.data.categorical_features or []))
    missing_sensitive = [c for c in cfg.data.sensitive_attributes if c not in df.columns]
    if missing_sensitive:
        raise DataError(
            f"sensitive attribute column(s) {missing_sensitive} (data.sensitive_attributes) are missing from "
            "the data; fairness cannot be measured without them"
        )
    if cfg.data.contract is not None:
        contract, origin = cfg.data.contract, "config"
    else:
        stored = registry.load_contract(cfg.name)
        if stored is not None:
            contract, origin = [ColumnSpec.model_validate(c) for c in stored], "stored"
            check_project_name(cfg, registry, contract, df)
        else:
            contract, origin = infer_contract(df, cfg.data), "inferred"
    # A range or category set the user declared is a rule; an inferred one follows data.out_of_contract.
    mode = "error" if origin == "config" else cfg.data.out_of_contract
    df, report = enforce_contract(df, contract, out_of_contract=mode)
    numeric, categorical = feature_lists(contract, cfg.data)
    check_values(df, numeric, categorical)
    keep = [*numeric, *categorical, *[c for c in cfg.data.sensitive_attributes if c not in numeric + categorical]]
    return df[[*dict.fromkeys([*keep, cfg.data.target])]], contract, origin, numeric, categorical, report


def validate_data(config: RunConfig | str, data_dir: str, version: str = "") -> dict[str, Any]:
    """Load, check against the contract, drop PII, split, fingerprint and profile the data.

    Args:
        config: Run config (object or JSON).
        data_dir: Output directory for train/valid/test Parquet, contract, profile and info.
        version: Model version id for this run; generated when empty.

    Returns:
        Summary with `version`, `status` (`ok` or `no_new_data`), `fingerprint`, row counts
        and contract warnings.

    Raises:
        DataError: the data breaks the contract; nothing is written to the registry.
    """
    from civicml.data.contract import check_target
    from civicml.data.errors import DataError
    from civicml.data.fingerprint import fingerprint
    from civicml.data.profile import build_profile
    from civicml.data.sources import load_table
    from civicml.data.split import split_frame

    cfg = _cfg(config)
    version = version or new_version_id()
    registry = _registry(cfg)
    audit = AuditLog(registry.store)
    try:
        df = load_table(cfg.data.source, cfg.data.demo)
        check_target(df, cfg.data, cfg.task)
        missing_pii = [c for c in cfg.data.pii_columns if c not in df.columns]
        df, contract, contract_origin, numeric, categorical, report = prepare_table(cfg, registry, df)
        splits = split_frame(df, cfg.data.target, cfg.split, stratify=cfg.task == "binary_classification")
    except DataError as err:
        audit.append("validation_failed", {"version": version, "source": cfg.data.source, "error": str(err)})
        raise
    fp = fingerprint(df)
    # An inferred contract is stored by `register`, with the first committed version: a first run
    # that fails in any later step leaves no contract behind to hold the next batch to.
    out = Path(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in splits.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    training = _write_training_inputs(cfg, out, splits["train"], numeric, categorical)
    _write_json(out / "contract.json", [c.model_dump(mode="json") for c in contract])
    _write_json(out / "profile.json", build_profile(splits["train"], numeric, categorical, seed=cfg.split.seed))
    champion = registry.get_alias("champion")
    champion_fp = registry.manifest(champion).get("lineage", {}).get("data_fingerprint") if champion else None
    status = "no_new_data" if champion_fp == fp else "ok"
    info = {
        "version": version,
        "status": status,
        "source": cfg.data.source,
        "fingerprint": fp,
        "rows": {k: int(len(v)) for k, v in splits.items()},
        "numeric_features": numeric,
        "categorical_features": categorical,
        "sensitive_attributes": cfg.data.sensitive_attributes,
        "dropped_pii": [c for c in cfg.data.pii_columns if c not in missing_pii],
        "contract_origin": contract_origin,
        "warnings": report.warnings,
        "training": training,
    }
    for warning in report.warnings:
        # stdout of the validate-data step: shown in the KFP UI's log of the step.
        print(f"data warning: {warning}", flush=True)
    _write_json(out / "data_info.json", info)
    audit.append("data_validated", {k: info[k] for k in ("version", "status", "source", "fingerprint", "rows")})
    return info


FEATURE_SPEC = "feature_spec.json"


def _write_training_inputs(cfg: RunConfig, out: Path, train: pd.DataFrame, numeric, categorical) -> dict[str, Any]:
    """Fit the feature spec once on the whole training split; with N workers, cut N shards of it.

    Returns:
        `{"workers": N, "shards": [{key, sha256, rows, fingerprint}, ...]}` for data_info and the lineage.
    """
    from civicml.modeling.preprocessing import FeatureSpec

    spec = FeatureSpec.fit(train, cfg.data.target, cfg.task, numeric, categorical)
    # No sort_keys: the order of the categorical columns is the model's feature order.
    (out / FEATURE_SPEC).write_text(json.dumps(spec.to_dict(), indent=2, default=str))
    workers = cfg.training.workers
    if workers == 1:
        return {"workers": 1, "shards": []}
    from civicml.modeling.distributed import SHARD_DIR, write_shards

    refs = write_shards(train, out / SHARD_DIR, workers)
    return {"workers": workers, "shards": [r.model_dump() for r in refs]}


def _spec(cfg: RunConfig, data_dir: str | Path, train: pd.DataFrame | None = None):
    """The feature spec `validate_data` fitted on the whole training split (fitted here for older data dirs)."""
    from civicml.modeling.preprocessing import FeatureSpec

    path = Path(data_dir) / FEATURE_SPEC
    if path.is_file():
        return FeatureSpec.from_dict(_read_json(path))
    info = data_info(data_dir)
    return FeatureSpec.fit(train, cfg.data.target, cfg.task, info["numeric_features"], info["categorical_features"])


def tune(
    config: RunConfig | str,
    data_dir: str,
    params_path: str,
    trials_html_path: str | None = None,
    on_trial=None,
    trials_md_path: str | None = None,
) -> dict[str, Any]:
    """Search hyperparameters on train/valid with the configured backend; write the best params.

    With `tuning.backend: katib` the train/valid split (and the config) is first uploaded
    to `staging/<version>/tuning-data/` in the store, where every trial Job reads it.

    Args:
        config: Run config (object or JSON).
        data_dir: Directory written by `validate_data`.
        params_path: Where the result JSON goes (`best_params` is what `train` uses).
        trials_html_path: Optional HTML trials table (KFP UI artifact).
        on_trial: Progress callback `(done, total)` (Optuna only).
        trials_md_path: Optional Markdown trials table.

    Returns:
        The tuning result: `best_params`, `best_value`, the trials table.
    """
    cfg = _cfg(config)
    splits = load_splits(data_dir)
    spec = _spec(cfg, data_dir, splits["train"])
    if cfg.tuning.backend == "katib":
        from civicml.tuning.katib_backend import require_shared_store, run_katib
        from civicml.tuning.trial import upload_tuning_data

        version = data_info(data_dir)["version"]
        store = open_store(cfg.storage.uri)
        require_shared_store(store.uri)
        upload_tuning_data(cfg, data_dir, version, store)
        result = run_katib(cfg, version)
    else:
        from civicml.tuning.optuna_backend import run_optuna

        result = run_optuna(cfg, spec, splits["train"], splits["valid"], on_trial=on_trial)
    _write_json(params_path, result)
    AuditLog(open_store(cfg.storage.uri)).append(
        "tuning_done",
        {
            "version": data_info(data_dir)["version"],
            "backend": result.get("backend"),
            "algorithm": result.get("algorithm"),
            "trials": len(result.get("trials", [])),
            "objective_metric": result.get("objective_metric"),
            "best_value": result.get("best_value"),
            "best_params": result.get("best_params"),
        },
    )
    from civicml.tuning.report import trials_html, trials_markdown

    for path, text in ((trials_html_path, trials_html), (trials_md_path, trials_markdown)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text(result))
    return result


def train(config: RunConfig | str, data_dir: str, params_path: str | None, model_dir: str) -> dict[str, Any]:
    """Fit the final model on train (validation rows are used only for XGBoost's eval log).

    Returns:
        `model_sha256` (over the saved files, in order) and the parameters used.
    """
    from civicml.modeling.estimators import build_params, fit_model
    from civicml.modeling.persistence import save_model

    cfg = _cfg(config)
    tuned = _read_json(params_path)["best_params"] if params_path else {}
    params = build_params(cfg.model.family, cfg.model.params, tuned)
    audit = AuditLog(open_store(cfg.storage.uri))
    version = data_info(data_dir)["version"]
    if cfg.training.workers > 1:
        workers = _train_distributed(cfg, data_dir, params, model_dir, audit)
        from civicml.modeling.persistence import load_model

        # The threshold is chosen on the validation split after the fit, whoever fitted.
        model = load_model(model_dir)
        choice = _choose_threshold(cfg, load_splits(data_dir)["valid"], model)
        if choice is not None:
            save_model(model, model_dir)
        result = {"model_sha256": model_hash(model_dir), "params": params, "threshold": choice}
        result["files"] = sorted(p.name for p in Path(model_dir).iterdir())
        result["training"] = {"workers": cfg.training.workers, "backend": cfg.training.backend, "reports": workers}
    else:
        splits = load_splits(data_dir)
        spec = _spec(cfg, data_dir, splits["train"])
        model = fit_model(cfg.model.family, spec, params, splits["train"], cfg.model.seed, cfg.model.n_threads)
        choice = _choose_threshold(cfg, splits["valid"], model)
        files = save_model(model, model_dir)
        result = {
            "model_sha256": model_hash(model_dir),
            "params": params,
            "files": [f.name for f in files],
            "threshold": choice,
        }
    audit.append("model_trained", {"version": version, "family": cfg.model.family, **result})
    return result


def _choose_threshold(cfg: RunConfig, valid: pd.DataFrame, model) -> dict[str, Any] | None:
    """Choose the decision threshold on the validation rows (`model.threshold`) and set it on the model."""
    if cfg.task != "binary_classification":
        return None
    from civicml.evaluation.threshold import choose_threshold

    rule = cfg.model.threshold
    choice = choose_threshold(
        model.spec.encode_target(valid[model.spec.target]), model.score(valid), rule.rule, rule.value
    )
    model.threshold = choice["threshold"]
    return choice


def _train_distributed(cfg: RunConfig, data_dir: str, params: dict[str, Any], model_dir: str, audit: AuditLog):
    """The final fit on `training.workers` XGBoost workers, each reading only its shard.

    Returns:
        One report per worker (rows, peak RSS, seconds).

    Raises:
        DistributedTrainingError: a worker died, the TrainJob failed, or the data was sharded for another N.
    """
    from civicml.modeling.distributed import SHARD_DIR, DistributedTrainingError, ShardRef, WorkerJob

    info = data_info(data_dir)
    sharded = (info.get("training") or {}).get("workers", 1)
    if sharded != cfg.training.workers:
        raise DistributedTrainingError(
            f"training.workers is {cfg.training.workers} but validate-data cut the training split into {sharded} "
            "shard(s); run validate-data with the same config"
        )
    job = WorkerJob(
        spec=_spec(cfg, data_dir).to_dict(),
        params=params,
        seed=cfg.model.seed,
        n_threads=cfg.model.n_threads,
        shards=[ShardRef.model_validate(s) for s in info["training"]["shards"]],
        timeout_seconds=cfg.training.timeout_seconds,
        shard_root=str(Path(data_dir) / SHARD_DIR),
        output=str(model_dir),
    )
    try:
        if cfg.training.backend == "trainjob":
            from civicml.deploy.trainjob import run_trainjob

            return run_trainjob(cfg, info["version"], job, model_dir)
        from civicml.modeling.distributed import train_distributed

        return train_distributed(job, model_dir)
    except DistributedTrainingError as err:
        audit.append(
            "training_failed",
            {
                "version": info["version"],
                "workers": cfg.training.workers,
                "backend": cfg.training.backend,
                "error": str(err).splitlines()[0],
            },
        )
        raise


def model_hash(model_dir: str | Path) -> str:
    """sha256 over every file of a saved model (see `civicml.modeling.persistence.model_hash`)."""
    from civicml.modeling.persistence import model_hash as _model_hash

    return _model_hash(model_dir)


def evaluate(
    config: RunConfig | str, data_dir: str, model_dir: str, evaluation_path: str, report_path: str | None = None
) -> dict[str, Any]:
    """Score the test split and audit it (`evaluation_done`).

    The document holds metrics with 95% bootstrap CIs, curves (ROC, PR, calibration,
    confusion matrix) or residuals, fairness per sensitive attribute, feature importance
    and the champion comparison; see `civicml.evaluation.evaluate.evaluate_model`.

    Returns:
        The evaluation document (also written to `evaluation_path`).
    """
    from civicml.evaluation.evaluate import evaluate_model
    from civicml.modeling.persistence import load_model

    cfg = _cfg(config)
    splits = load_splits(data_dir)
    model = load_model(model_dir)
    registry = _registry(cfg)
    evaluation = evaluate_model(cfg, model, splits["test"], registry=registry, train=splits["train"])
    evaluation["version"] = data_info(data_dir)["version"]
    evaluation["model_sha256"] = model_hash(model_dir)
    _write_json(evaluation_path, evaluation)
    comparison = evaluation.get("champion_comparison") or {}
    AuditLog(registry.store).append(
        "evaluation_done",
        {
            "version": evaluation["version"],
            "model_sha256": evaluation["model_sha256"],
            "n_test": evaluation["n_test"],
            "metrics": evaluation["metrics"],
            "confidence_intervals": evaluation.get("confidence_intervals", {}),
            "fairness": {
                a: {k: r.get(k) for k in ("demographic_parity_ratio", "equalized_odds_difference", "suppressed_groups")}
                for a, r in (evaluation.get("fairness") or {}).items()
            },
            "champion": {
                k: comparison.get(k)
                for k in ("champion_version", "difference", "ci_low", "ci_high", "skipped")
                if k in comparison
            },
        },
    )
    if report_path:
        from civicml.evaluation.report import render_evaluation_html

        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        title = f"{cfg.card.title or cfg.name}: evaluation"
        Path(report_path).write_text(render_evaluation_html(title, evaluation, cfg=cfg))
    return evaluation


def gate(config: RunConfig | str, evaluation_path: str, gate_path: str) -> dict[str, Any]:
    """Apply the policy to the evaluation; write and return the decision with every rule."""
    from civicml.governance.policy import decide

    cfg = _cfg(config)
    evaluation = _read_json(evaluation_path)
    result = decide(cfg.policy, evaluation)
    _write_json(gate_path, result)
    AuditLog(_registry(cfg).store).append(
        "gate_decided",
        {
            "version": evaluation.get("version"),
            "model_sha256": evaluation.get("model_sha256"),
            "decision": result["decision"],
            "reason": result["reason"],
            "rules": [{k: r[k] for k in ("rule", "threshold", "value", "verdict")} for r in result["rules"]],
        },
    )
    return result


def register(
    config: RunConfig | str,
    data_dir: str,
    params_path: str | None,
    model_dir: str,
    evaluation_path: str,
    gate_path: str,
    report_path: str | None = None,
    extra_files: dict[str, str] | None = None,
    card_html_path: str | None = None,
    card_md_path: str | None = None,
) -> dict[str, Any]:
    """Stage every artifact of the run, then commit the version by writing its manifest last.

    The model card (HTML and Markdown) is rendered here, where the evaluation, the gate
    decision and the lineage are all known; it is written to `card_*_path` for the KFP UI
    and stored with the version.

    Returns:
        The committed manifest.
    """
    cfg = _cfg(config)
    registry = _registry(cfg)
    info = data_info(data_dir)
    version = info["version"]
    evaluation = _read_json(evaluation_path)
    decision = _read_json(gate_path)
    artifacts: dict[str, dict[str, Any]] = {}
    artifacts.update(registry.upload_dir(version, "model", model_dir))
    for name in ("contract.json", "profile.json", "data_info.json"):
        artifacts[f"data/{name}"] = registry.upload(version, f"data/{name}", (Path(data_dir) / name).read_bytes())
    artifacts["evaluation.json"] = registry.upload(version, "evaluation.json", Path(evaluation_path).read_bytes())
    artifacts["gate.json"] = registry.upload(version, "gate.json", Path(gate_path).read_bytes())
    if params_path:
        artifacts["tuning.json"] = registry.upload(version, "tuning.json", Path(params_path).read_bytes())
    if report_path and Path(report_path).is_file():
        artifacts["report.html"] = registry.upload(version, "report.html", Path(report_path).read_bytes())
    for name, path in (extra_files or {}).items():
        if path and Path(path).is_file():
            artifacts[name] = registry.upload(version, name, Path(path).read_bytes())
    status = {"deploy": "approved", "reject": "rejected", "pending_approval": "pending_approval"}[decision["decision"]]
    meta = {
        "name": cfg.name,
        "task": cfg.task,
        "family": cfg.model.family,
        "status": status,
        "model_sha256": evaluation["model_sha256"],
        "evaluation_sha256": artifacts["evaluation.json"]["sha256"],
        "data_warnings": info.get("warnings", []),
        "metrics": evaluation["metrics"],
        "gate": {"decision": decision["decision"], "reason": decision["reason"]},
        "lineage": {
            "data_source": info["source"],
            "data_fingerprint": info["fingerprint"],
            "rows": info["rows"],
            "config": json.loads(cfg.to_json()),
            "seeds": {"split": cfg.split.seed, "model": cfg.model.seed, "tuning": cfg.tuning.seed},
            "n_threads": cfg.model.n_threads,
            "training": info.get("training") or {"workers": 1, "shards": []},
            "code_revision": code_revision(),
            "libraries": library_versions(),
            "image": image(),
            "started_by": default_actor(),
        },
    }
    from civicml.evaluation.card import render_model_card

    card_html, card_md = render_model_card({"version": version, **meta}, evaluation, decision, cfg)
    artifacts["model_card.html"] = registry.upload(version, "model_card.html", card_html.encode())
    artifacts["model_card.md"] = registry.upload(version, "model_card.md", card_md.encode())
    for path, text in ((card_html_path, card_html), (card_md_path, card_md)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
    from civicml.governance.trust import commit_version

    manifest = commit_version(registry, version, artifacts, meta)
    if info.get("contract_origin") == "inferred" and registry.load_contract(cfg.name) is None:
        registry.save_contract(cfg.name, _read_json(str(Path(data_dir) / "contract.json")))
    return manifest


def current_card(registry: Registry, version: str) -> tuple[str, str]:
    """Re-render a committed version's model card with its current effective status.

    The card stored at commit time cannot know a later human decision (manifests are immutable);
    this renders the same card from the stored evaluation, gate decision and config, plus the
    decision, person, role, time, reason and bound hashes.

    Returns:
        (html, markdown).
    """
    from civicml.evaluation.card import render_model_card
    from civicml.governance.approval import version_status

    man = registry.manifest(version)
    evaluation = json.loads(registry.read_artifact(man["version"], "evaluation.json"))
    gate = json.loads(registry.read_artifact(man["version"], "gate.json")) if "gate.json" in man["artifacts"] else None
    cfg = RunConfig.model_validate(man.get("lineage", {}).get("config") or {})
    return render_model_card(man, evaluation, gate, cfg, status=version_status(registry, man))


COMPARED = "compared"  # `deploy(expected_champion=COMPARED)`: the champion the version's evaluation compared with


def compared_champion(registry: Registry, version: str) -> Any:
    """The champion `version` was compared with at evaluation (None: there was none), or ANY when unknown."""
    from civicml.storage.registry import ANY, RegistryError

    try:
        evaluation = json.loads(registry.read_artifact(version, "evaluation.json"))
    except RegistryError:
        return ANY
    comparison = evaluation.get("champion_comparison")
    if not isinstance(comparison, dict):
        return None
    return comparison.get("champion_version", ANY)


def deploy(
    config: RunConfig | str,
    version: str,
    by: str = "pipeline",
    expected_champion: Any = COMPARED,
    reason: str | None = None,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Deploy an approved version with the configured backend, through the one promotion function.

    Locally the `champion` alias moves; with `deploy.mode: challenger` and an existing champion the
    version becomes the `challenger` and receives `deploy.challenger_traffic` of the requests instead.
    Replacing the champion ends any running A/B test (challenger cleared, weights back to 0).
    On Kubernetes the rollout happens first (`civicml.deploy.kubernetes.deploy_version`).

    Args:
        config: Run config or its path.
        version: The version to deploy.
        by: Who deploys.
        reason: Why, for the audit log (default: the gate decision).
        registry: The registry (default: the config's store).
        expected_champion: Compare-and-swap guard: by default the champion the version was compared
            with, so a run never replaces a champion it was not compared with; a person deploying by
            hand passes the champion they saw.

    Raises:
        RegistryError: the version is not approved or disagrees with the audit chain (PromotionError),
            or the champion moved meanwhile (AliasConflict); nothing moved.
    """
    from civicml.governance.promotion import CHALLENGER, CHAMPION, promote

    cfg = _cfg(config)
    registry = registry or _registry(cfg)
    if expected_champion == COMPARED:
        expected_champion = compared_champion(registry, version)
    if cfg.deploy.target == "kubernetes":
        from civicml.deploy.kubernetes import deploy_version

        return deploy_version(cfg, registry, version, by=by, expected_champion=expected_champion, reason=reason)
    champion = registry.get_alias(CHAMPION)
    if cfg.deploy.mode == "challenger" and champion not in (None, version):
        share = cfg.deploy.challenger_traffic
        return promote(
            registry,
            version,
            role=CHALLENGER,
            share=share,
            by=by,
            reason=reason or "gate decision: deploy as challenger",
        )
    return promote(
        registry, version, by=by, reason=reason or "gate decision: deploy", expected_champion=expected_champion
    )


def log_kfp_metrics(evaluation: dict[str, Any], metrics: Any, classification: Any = None) -> None:
    """Publish the evaluation to KFP UI artifacts (`Metrics`, `ClassificationMetrics`)."""
    for name, value in evaluation["metrics"].items():
        metrics.log_metric(name, float(value))
    if classification is not None and "roc" in evaluation:
        roc = evaluation["roc"]
        classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
        classification.log_confusion_matrix(["0", "1"], evaluation["confusion_matrix"])


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    """Call `fn` and return (result, seconds)."""
    t0 = time.perf_counter()
    res = fn(*args, **kwargs)
    return res, time.perf_counter() - t0


# -- monitoring (drift, live performance, retrain trigger) ---------------------------------------------------

SERVING_LOG = "serving-log"


def _monitored_version(registry: Registry, version: str) -> str:
    from civicml.storage.registry import RegistryError

    if version:
        return version
    champion = registry.get_alias("champion")
    if not champion:
        raise RegistryError(
            "no version given and no champion yet: train and deploy a model first (civicml run), or pass --version"
        )
    return champion


def batch_fingerprint(cfg: RunConfig, registry: Registry, df: pd.DataFrame) -> str | None:
    """The fingerprint `validate_data` would record for this batch, or None when it breaks the contract.

    Mirrors validate_data's preparation (PII dropped, contract enforced, model columns kept) so
    the monitor can tell "same data as the champion" without starting a run; the training
    pipeline's own check remains the authority.
    """
    from civicml.data.errors import DataError
    from civicml.data.fingerprint import fingerprint

    try:
        df = prepare_table(cfg, registry, df)[0]
    except (DataError, KeyError):
        return None
    # validate_data fingerprints the rows after a stratified split reorders nothing: same frame, same hash.
    return fingerprint(df)


def monitor_drift(
    config: RunConfig | str,
    version: str,
    drift_path: str,
    performance_path: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Measure drift of a window against a version's reference profile, and its live performance.

    Args:
        config: Run config.
        version: The model version to compare with; "" means the champion.
        drift_path: Where to write the drift document (JSON).
        performance_path: Where to write the live-performance document (JSON).
        source: The window: `serving-log` for the model server's prediction log (last
            `monitoring.window_days`), a data source (path, s3://, demo:...) for a new batch;
            None/"" means `monitoring.window_source`, else `data.source`.

    Returns:
        The drift document, with `version`, `source`, `window_kind`, `fingerprint` and
        `champion_fingerprint` added.

    Raises:
        RegistryError: no such version (or no champion when `version` is empty).
    """
    from civicml.data.sources import load_table
    from civicml.monitoring.drift import compute_drift, read_log_records, served_by, window_from_predictions
    from civicml.monitoring.performance import join_feedback, live_performance

    cfg = _cfg(config)
    registry = _registry(cfg)
    version = _monitored_version(registry, version)
    manifest = registry.manifest(version)
    profile = json.loads(registry.read_artifact(version, "data/profile.json"))
    source = source or cfg.monitoring.window_source or cfg.data.source
    messages: list[str] = []
    new_fp = None
    if source == SERVING_LOG:
        predictions, warn = read_log_records(registry.store, "predictions", cfg.monitoring.window_days)
        messages += warn
        if not predictions:
            messages.append(
                "the serving log has no predictions in the window yet (logs/predictions/ in "
                f"{registry.store.describe()}); is the model server running and logging?"
            )
        window = window_from_predictions(predictions, version=version)
        others = {v: n for v, n in served_by(predictions).items() if v != version}
        if others:
            messages.append(
                f"measured only the {len(window)} logged predictions served by {version}; "
                f"{sum(others.values())} in the window were served by other versions ({others}) and are left out"
            )
        if len(window) < cfg.monitoring.min_new_rows:
            messages.append(
                f"too little traffic to judge drift: {len(window)} predictions served by {version} in the window, "
                f"monitoring.min_new_rows is {cfg.monitoring.min_new_rows}; drift will not trigger retraining"
            )
        kind = "serving_log"
    else:
        predictions = None
        window = load_table(source, cfg.data.demo)
        new_fp = batch_fingerprint(cfg, registry, window)
        if new_fp is None:
            messages.append(
                f"the batch {source} breaks the data contract; a training run on it would stop at validate-data"
            )
        kind = "data_batch"
    drift = compute_drift(profile, window, cfg.monitoring, source=source)
    drift["messages"] = messages + drift["messages"]
    champion = registry.get_alias("champion")
    champion_fp = registry.manifest(champion).get("lineage", {}).get("data_fingerprint") if champion else None
    drift.update(version=version, window_kind=kind, fingerprint=new_fp, champion_fingerprint=champion_fp)
    _write_json(drift_path, drift)
    if performance_path:
        if predictions is None:
            predictions, warn = read_log_records(registry.store, "predictions", cfg.monitoring.window_days)
        feedback, warn_fb = read_log_records(registry.store, "feedback", cfg.monitoring.window_days)
        joined = join_feedback(predictions, feedback, version=version)
        perf = live_performance(joined, cfg.task, manifest.get("metrics", {}), cfg.monitoring, seed=cfg.split.seed)
        perf["version"] = version
        perf["log_warnings"] = warn_fb
        _write_json(performance_path, perf)
    return drift


def monitor_trigger(
    config: RunConfig | str, drift_path: str, performance_path: str | None, decision_path: str
) -> dict[str, Any]:
    """Apply the retrain policy to the measurements; write the decision and audit it (`retrain_decision`)."""
    from civicml.monitoring.trigger import decide_retrain, record_decision

    cfg = _cfg(config)
    drift = _read_json(drift_path)
    perf = _read_json(performance_path) if performance_path and Path(performance_path).is_file() else None
    decision = decide_retrain(
        cfg.monitoring,
        drift,
        perf,
        new_fingerprint=drift.get("fingerprint") if drift.get("window_kind") == "data_batch" else None,
        champion_fingerprint=drift.get("champion_fingerprint"),
    )
    decision.update(version=drift.get("version"), source=drift.get("source"))
    record_decision(
        _registry(cfg).store,
        decision,
        {
            "version": drift.get("version"),
            "source": drift.get("source"),
            "window_rows": drift.get("window_rows"),
            "drift_share": drift["summary"]["drift_share"],
            "max_psi": drift["summary"]["max_psi"],
        },
    )
    _write_json(decision_path, decision)
    return decision


def monitor_report(
    config: RunConfig | str, drift_path: str, performance_path: str | None, decision_path: str | None, report_path: str
) -> str:
    """Render the HTML drift report (per-feature charts with alt text and tables); returns its path."""
    from civicml.monitoring.report import render_drift_html

    cfg = _cfg(config)
    drift = _read_json(drift_path)
    perf = _read_json(performance_path) if performance_path and Path(performance_path).is_file() else None
    decision = _read_json(decision_path) if decision_path and Path(decision_path).is_file() else None
    html_text = render_drift_html(
        drift, perf, decision, title=f"{cfg.card.title or cfg.name}: drift report", version=drift.get("version")
    )
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    Path(report_path).write_text(html_text)
    return report_path


def retrain_target(cfg: RunConfig) -> str:
    """`kfp` or `local`: where a triggered retraining runs (see monitoring.retrain_target)."""
    from civicml.orchestration.kfp_client import kfp_host

    if cfg.monitoring.retrain_target != "auto":
        return cfg.monitoring.retrain_target
    return "kfp" if kfp_host(cfg) else "local"


def _run_training_locally(cfg: RunConfig) -> dict[str, Any]:
    """Run the training pipeline through `civicml run` in a child process; return its JSON summary.

    A child process because this step itself may run inside a KFP executor, where
    `_KFP_RUNTIME=true` makes `kfp.dsl` load only its runtime half and kfp.local cannot
    start; the child gets a clean environment (minus that flag) and the same store.
    """
    import os
    import subprocess
    import sys
    import tempfile

    env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
    with tempfile.TemporaryDirectory(prefix="civicml-retrain-") as tmp:
        # JSON is YAML: the whole config, so the child trains exactly what the monitor decided.
        cfg_path = Path(tmp) / "retrain-config.yaml"
        cfg_path.write_text(cfg.to_json())
        proc = subprocess.run(
            [sys.executable, "-m", "civicml.cli", "run", "--config", str(cfg_path), "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"ok": False, "error": f"civicml run exited with {proc.returncode}: " + " | ".join(tail)}
    summary["ok"] = bool(summary.get("ok")) and proc.returncode == 0
    summary["committed"] = "metrics" in summary
    return {
        k: summary.get(k) for k in ("ok", "version", "committed", "decision", "result", "error", "log") if k in summary
    }


def monitor_retrain(config: RunConfig | str, drift_path: str) -> dict[str, Any]:
    """Retrain on the new data: run the training pipeline locally, or submit it to KFP.

    A data-batch window trains on that batch; a serving-log window (no labels) trains on
    `data.source`. The training pipeline itself stops with `no_new_data` when the data
    is what the champion was trained on.

    Raises:
        RuntimeError: the local training run failed (the message has the failing step's error).
    """
    cfg = _cfg(config)
    drift = _read_json(drift_path)
    source = drift["source"] if drift.get("window_kind") == "data_batch" else cfg.data.source
    train_cfg = RunConfig.model_validate(
        {**cfg.model_dump(mode="json"), "data": {**cfg.data.model_dump(mode="json"), "source": source}}
    )
    target = retrain_target(cfg)
    audit = AuditLog(_registry(cfg).store)
    if target == "kfp":
        import os
        import tempfile

        from civicml.orchestration.kfp_client import compile_pipeline, submit_run

        # Inside a pipeline pod CIVICML_IMAGE names the running image; from a laptop the one
        # civicml image is the configured deploy.image (the same image serves and trains).
        image = os.environ.get("CIVICML_IMAGE") or cfg.deploy.image
        with tempfile.TemporaryDirectory() as tmp:
            yaml_path = compile_pipeline("training", Path(tmp) / "training_pipeline.yaml", train_cfg, image)
            sub = submit_run(train_cfg, "training", yaml_path)
        result = {"target": "kfp", "run_id": sub.id, "host": sub.host, "source": source}
    else:
        result = {"target": "local", "source": source, **_run_training_locally(train_cfg)}
        if not result["ok"]:
            audit.append("retrain_failed", result)
            raise RuntimeError(f"retraining on {source} failed: {result.get('error')} (log: {result.get('log')})")
    audit.append("retrain_started" if target == "kfp" else "retrain_finished", result)
    return result

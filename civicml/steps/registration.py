"""Step `register`: stage every artifact of the run, render the model card, commit the manifest last."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from civicml.config import RunConfig
from civicml.documents import Evaluation, GateDecision, Manifest
from civicml.governance.audit import default_actor
from civicml.provenance import code_revision, image, library_versions
from civicml.steps._io import cfg_of, data_info, read_json, registry_of, write_text
from civicml.storage.registry import Registry

_STATUS = {"deploy": "approved", "reject": "rejected", "pending_approval": "pending_approval"}


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
    figures_dir: str | None = None,
    started_by: str = "",
) -> dict[str, Any]:
    """Stage every artifact of the run, then commit the version by writing its manifest last.

    The model card (HTML and Markdown) is rendered here, where the evaluation, the gate
    decision and the lineage are all known; it is written to `card_*_path` for the KFP UI
    and stored with the version. Its figures are the ones evaluate drew (`figures_dir`, stored
    as `figures/...`); they are drawn here only when no directory is given (a direct call).
    `started_by` is who started the run (a cluster run's submitter, passed as a pipeline
    parameter because the step pod's own user is the pipeline's ServiceAccount); empty means
    the acting user here (`CIVICML_ACTOR`, else the OS user).

    Returns:
        The committed manifest.
    """
    from civicml.evaluation.report import render_model_card
    from civicml.governance.trust import commit_version

    cfg = cfg_of(config)
    registry = registry_of(cfg)
    info = data_info(data_dir)
    version = info["version"]
    evaluation = Evaluation.read(evaluation_path).as_dict()
    decision = GateDecision.read(gate_path).as_dict()
    files = {"evaluation.json": evaluation_path, "gate.json": gate_path, "tuning.json": params_path}
    artifacts = _stage(registry, version, model_dir, data_dir, files, report_path, extra_files)
    figures = None
    if figures_dir:
        from civicml.reporting.model import load_figures

        figures = load_figures(figures_dir)
        artifacts.update(registry.upload_dir(version, "figures", figures_dir))
    meta = _manifest_meta(cfg, info, evaluation, decision, artifacts["evaluation.json"]["sha256"])
    meta["lineage"]["started_by"] = started_by.strip() or meta["lineage"]["started_by"]
    card_html, card_md = render_model_card({"version": version, **meta}, evaluation, decision, cfg, figures=figures)
    artifacts["model_card.html"] = registry.upload(version, "model_card.html", card_html.encode())
    artifacts["model_card.md"] = registry.upload(version, "model_card.md", card_md.encode())
    write_text(card_html_path, card_html)
    write_text(card_md_path, card_md)
    manifest = Manifest.parse(commit_version(registry, version, artifacts, meta), where=f"manifest of {version}")
    if info.get("contract_origin") == "inferred" and registry.load_contract(cfg.name) is None:
        registry.save_contract(cfg.name, read_json(str(Path(data_dir) / "contract.json")))
    return manifest.as_dict()


def _stage(
    registry: Registry,
    version: str,
    model_dir: str,
    data_dir: str,
    files: dict[str, str | None],
    report_path: str | None,
    extra_files: dict[str, str] | None,
) -> dict[str, dict[str, Any]]:
    """Upload the model, the data documents and the step outputs to the version's staging area."""
    artifacts: dict[str, dict[str, Any]] = {}
    artifacts.update(registry.upload_dir(version, "model", model_dir))
    for name in ("contract.json", "profile.json", "data_info.json"):
        artifacts[f"data/{name}"] = registry.upload(version, f"data/{name}", (Path(data_dir) / name).read_bytes())
    for name, path in files.items():
        if path:
            artifacts[name] = registry.upload(version, name, Path(path).read_bytes())
    optional = {"report.html": report_path, **(extra_files or {})}
    for name, path in optional.items():
        if path and Path(path).is_file():
            artifacts[name] = registry.upload(version, name, Path(path).read_bytes())
    return artifacts


def _manifest_meta(
    cfg: RunConfig, info: dict[str, Any], evaluation: dict[str, Any], decision: dict[str, Any], evaluation_sha: str
) -> dict[str, Any]:
    """The manifest's fields besides the version and artifacts: status, metrics, gate and lineage."""
    return {
        "name": cfg.name,
        "task": cfg.task,
        "family": cfg.model.family,
        "status": _STATUS[decision["decision"]],
        "model_sha256": evaluation["model_sha256"],
        "evaluation_sha256": evaluation_sha,
        "data_warnings": info.get("warnings", []),
        "metrics": evaluation["metrics"],
        "gate": {"decision": decision["decision"], "reason": decision["reason"]},
        "lineage": {
            "data_source": info["source"],
            "data_fingerprint": info["fingerprint"],
            "data_fingerprint_version": info.get("fingerprint_version", 1),
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


def current_card(registry: Registry, version: str) -> tuple[str, str]:
    """Re-render a committed version's model card with its current effective status.

    The card stored at commit time cannot know a later human decision (manifests are immutable);
    this renders the same card from the stored evaluation, gate decision and config, plus the
    decision, person, role, time, reason and bound hashes.

    Returns:
        (html, markdown).
    """
    from civicml.evaluation.report import render_model_card
    from civicml.governance.approval import version_status
    from civicml.reporting.model import FIGURES_INDEX, load_figures

    man = registry.manifest(version)
    evaluation = Evaluation.parse(json.loads(registry.read_artifact(man["version"], "evaluation.json"))).as_dict()
    gate = None
    if "gate.json" in man["artifacts"]:
        gate = GateDecision.parse(json.loads(registry.read_artifact(man["version"], "gate.json"))).as_dict()
    cfg = RunConfig.model_validate(man.get("lineage", {}).get("config") or {})
    figures = None
    if f"figures/{FIGURES_INDEX}" in man["artifacts"]:  # versions registered before figures were stored redraw
        figures = load_figures(lambda name: registry.read_artifact(man["version"], f"figures/{name}"))
    return render_model_card(man, evaluation, gate, cfg, status=version_status(registry, man), figures=figures)

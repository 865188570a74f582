"""Step `evaluate`: score the test split, write the evaluation document and its HTML report, audit it."""

from __future__ import annotations

from typing import Any

from civicml.config import RunConfig
from civicml.documents import Evaluation
from civicml.governance.audit import AuditLog
from civicml.steps._io import cfg_of, data_info, load_splits, model_hash, registry_of, write_json, write_text


def evaluate(
    config: RunConfig | str,
    data_dir: str,
    model_dir: str,
    evaluation_path: str,
    report_path: str | None = None,
    figures_dir: str | None = None,
) -> dict[str, Any]:
    """Score the test split and audit it (`evaluation_done`).

    The document holds metrics with 95% bootstrap CIs, curves (ROC, PR, calibration,
    confusion matrix) or residuals, fairness per sensitive attribute, feature importance
    and the champion comparison; see `civicml.evaluation.evaluate.evaluate_model`.
    The model card's figures are drawn here, once, for the report and into `figures_dir`;
    register stores them with the version and the card reuses them (issue 18 item 2).

    Returns:
        The evaluation document (also written to `evaluation_path`).
    """
    from civicml.evaluation.evaluate import evaluate_model
    from civicml.modeling.persistence import load_model

    cfg = cfg_of(config)
    test = load_splits(data_dir, ("test",))["test"]
    # The no-skill baseline needs only the training labels: reading the other columns would double the peak.
    train_labels = load_splits(data_dir, ("train",), columns=[cfg.data.target])["train"]
    model = load_model(model_dir)
    registry = registry_of(cfg)
    evaluation = evaluate_model(cfg, model, test, registry=registry, train=train_labels)
    evaluation["version"] = data_info(data_dir)["version"]
    evaluation["model_sha256"] = model_hash(model_dir)
    evaluation = Evaluation.stamp(evaluation, where="the evaluation")
    write_json(evaluation_path, evaluation)
    AuditLog(registry.store).append("evaluation_done", _audit_payload(evaluation))
    if report_path or figures_dir:
        _figures_and_report(cfg, evaluation, report_path, figures_dir)
    return evaluation


def _figures_and_report(cfg: RunConfig, evaluation: dict[str, Any], report_path: str | None, figures_dir: str | None):
    """Draw the card's figures once; write them to `figures_dir` and the evaluation report with them."""
    from civicml.evaluation.report import render_evaluation_html
    from civicml.reporting.model import save_figures
    from civicml.reporting.plots import card_figures

    figures = card_figures(evaluation)
    if figures_dir:
        save_figures(figures, figures_dir)
    if report_path:
        title = f"{cfg.card.title or cfg.name}: evaluation"
        write_text(report_path, render_evaluation_html(title, evaluation, cfg=cfg, figures=figures))


def _audit_payload(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The `evaluation_done` audit record: headline metrics, CIs, fairness summary, champion comparison."""
    comparison = evaluation.get("champion_comparison") or {}
    return {
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
    }

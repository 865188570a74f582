"""The model card's data: every fact, table and note the card shows, as a typed `CardData`.

This module decides *what* the card says (from the manifest, the evaluation, the gate decision,
the config's `card:` text and the version's status); `civicml.reporting.card` renders it with
Jinja2 templates into HTML and Markdown, and the figures come from `civicml.reporting.plots`
(drawn once, in the evaluate step). Nothing here builds markup or imports a plotting library.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from civicml.catalog import RATES
from civicml.config import RunConfig
from civicml.reporting.model import Cell, Table
from civicml.reporting.numbers import ci_suffix, interval

VERDICT_WORDS = {
    "pass": "✓ PASS",
    "fail": "✗ FAIL",
    "not_assessable": "? NOT ASSESSABLE",
    "not_measured": "– NOT MEASURED",
}
DECISION_WORDS = {"deploy": "DEPLOY", "reject": "REJECT", "pending_approval": "PENDING HUMAN APPROVAL"}
HUMAN_WORDS = {"approved": "APPROVED", "rejected": "REJECTED"}
METRIC_LABELS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC (average precision)",
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1 score",
    "log_loss": "Log loss",
    "brier": "Brier score",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
    "mse": "MSE",
}
# The per-group rates fairness.py reports for classification (read here without importing fairlearn).
GROUP_RATES = RATES  # one definition of the rate names: civicml.catalog
GROUP_STATUS = {True: "suppressed (small group)", False: "reported"}
DISPARITIES = (
    ("demographic_parity_ratio", "demographic parity ratio (min/max selection rate)"),
    ("demographic_parity_difference", "demographic parity difference (max−min selection rate)"),
    ("equalized_odds_difference", "equalized odds difference (max of TPR and FPR gaps)"),
)


class Decision(BaseModel):
    """A decision shown as a bordered statement: `css` names its kind (deploy, rejected, ...)."""

    css: str
    text: str
    reason: str | None = None


class AttributeFairness(BaseModel):
    """Fairness tables of one sensitive attribute, and the key of its figure (classification only)."""

    name: str
    tables: list[Table]
    figure: str | None = None


class CardData(BaseModel):
    """Everything the model card shows, section by section; None means the section says it is absent."""

    title: str
    version: str
    task: str | None
    family: str | None
    gate: Decision | None = None
    gate_rules: Table | None = None
    policy: dict[str, Any] | None = None
    human: Decision | None = None
    human_hashes: Table | None = None
    human_problem: str | None = None
    pending: str | None = None  # "now" / "when this card was written": no person has decided yet
    headline: str | None = None
    data_warnings: Table | None = None
    details: Table
    missing: list[str] = []
    intended_use: str | None = None
    out_of_scope: str | None = None
    limitations: str | None = None
    ethical_considerations: str | None = None
    n_test: Any = None
    n_resamples: Any = "no"
    metrics: Table
    threshold: float | None = None
    threshold_how: str | None = None
    baseline: dict[str, Any] | None = None
    baseline_margins: Table | None = None
    regression: bool = False
    residual_summary: Table | None = None
    curves: list[str] = []  # figure keys of the performance section, in order
    fairness_threshold: Any = None
    min_group_count: Any = None
    fairness: list[AttributeFairness] = []
    importance: dict[str, Any] | None = None
    champion: dict[str, Any] | None = None
    champion_table: Table | None = None
    lineage: list[Table] = []
    config_json: str | None = None


def _metrics_table(ev: dict[str, Any]) -> Table:
    cis, metrics = ev.get("confidence_intervals", {}), ev.get("metrics", {})
    # Headline order (JSON files store keys sorted), then anything else.
    order = [m for m in METRIC_LABELS if m in metrics] + [m for m in metrics if m not in METRIC_LABELS]
    rows = [[METRIC_LABELS.get(m, m), metrics[m], cis.get(m, {}).get("low"), cis.get(m, {}).get("high")] for m in order]
    return Table(
        caption="Test metrics with 95% confidence intervals",
        headers=["metric", "value", "95% CI low", "95% CI high"],
        rows=rows,
        numeric={1, 2, 3},
    )


def _gate(data: dict[str, Any], gate: dict[str, Any]) -> None:
    word = DECISION_WORDS.get(gate["decision"], gate["decision"].upper())
    data["gate"] = Decision(css=gate["decision"], text=word, reason=gate.get("reason", ""))
    rows = [
        [
            r["rule"],
            r.get("threshold"),
            r.get("value"),
            Cell(value=VERDICT_WORDS.get(v, v.upper()), css=f"verdict-{v}"),
            "yes" if r.get("borderline") else "no",
            r.get("detail") or "",
        ]
        for r in gate.get("rules", [])
        for v in [r.get("verdict", "pass" if r.get("passed") else "fail")]
    ]
    data["gate_rules"] = Table(
        caption="Every gate rule: threshold, measured value and verdict",
        headers=["rule", "threshold", "measured", "verdict", "borderline", "detail"],
        rows=rows,
        numeric={1, 2},
        css="rules",
    )
    data["policy"] = gate.get("policy") or None


def _human(data: dict[str, Any], gate: dict[str, Any], status: Any) -> None:
    """The human decision (or its absence) under the gate decision."""
    human = getattr(status, "human", None)
    if human is not None and getattr(status, "decided_by", None) == "person":
        word = HUMAN_WORDS.get(human.decision, human.decision.upper())
        text = f"Human decision: {word} by {human.by} ({human.role}) at {human.at}. Reason: {human.reason}"
        data["human"] = Decision(css=human.decision, text=text)
        data["human_hashes"] = Table(
            caption="Hashes the human decision is bound to",
            headers=["item", "sha256"],
            rows=[["model", human.model_sha256], ["evaluation report", human.evaluation_sha256]],
        )
        return
    if status is not None and getattr(status, "problem", None):
        data["human_problem"] = status.problem
    if gate["decision"] == "pending_approval":
        data["pending"] = "now" if status is not None else "when this card was written"


def _baseline(data: dict[str, Any], ev: dict[str, Any], cfg) -> None:
    """The no-skill baseline, the model's margins over it and how the threshold was chosen."""
    if ev.get("threshold") is not None:
        rule = cfg.model.threshold
        how = "fixed" if rule.rule == "fixed" else f"chosen on the validation split by rule {rule.rule}"
        data["threshold"] = ev["threshold"]
        data["threshold_how"] = how + (f" (target {rule.value})" if rule.rule.startswith("target_") else "")
    base = ev.get("baseline")
    if not base:
        return
    data["baseline"] = {"strategy": base["strategy"], "fitted_on": base.get("fitted_on", "training")}
    data["baseline_margins"] = Table(
        caption="Margin over the no-skill baseline",
        headers=["metric", "model", "baseline", "margin", "95% CI low", "95% CI high"],
        rows=[
            [METRIC_LABELS.get(k, k), m["model"], m["baseline"], m["margin"], m.get("low"), m.get("high")]
            for k, m in base.get("margins", {}).items()
        ],
        numeric={1, 2, 3, 4, 5},
    )


def _classification_fairness(attr: str, rep: dict[str, Any]) -> AttributeFairness:
    cis = rep.get("confidence_intervals") or {}
    outcomes = Table(
        caption=f"Outcomes by {attr} (suppressed groups' rates withheld)",
        headers=["group", "rows", "selection rate", "true positive rate", "false positive rate", "precision", "status"],
        rows=[
            [g, v["count"], *[v[k] for k in GROUP_RATES], GROUP_STATUS[bool(v["suppressed"])]]
            for g, v in rep["groups"].items()
        ],
        numeric={1, 2, 3, 4, 5},
    )
    disparities = Table(
        caption=f"Disparity measures for {attr}",
        headers=["measure", "reportable groups (used by the gate)", "95% CI (bootstrap)", "all groups"],
        rows=[
            [label, rep.get(key), interval(ci.get("low"), ci.get("high")), rep.get(f"{key}_all_groups")]
            for key, label in DISPARITIES
            for ci in [cis.get(key) or {}]
        ],
        numeric={1, 2, 3},
    )
    return AttributeFairness(name=attr, tables=[outcomes, disparities], figure=f"fairness-{attr}")


def _regression_fairness(attr: str, rep: dict[str, Any]) -> AttributeFairness:
    errors = Table(
        caption=f"Errors by {attr} (suppressed groups' values withheld)",
        headers=["group", "rows", "mean absolute error", "mean squared error", "mean prediction", "status"],
        rows=[
            [g, v["count"], v["mae"], v["mse"], v["mean_prediction"], GROUP_STATUS[bool(v["suppressed"])]]
            for g, v in rep["groups"].items()
        ],
        numeric={1, 2, 3, 4},
    )
    keys = [f"{m}_{k}" for m in ("mae", "mse", "mean_prediction") for k in ("ratio", "difference")]
    disparities = Table(
        caption=f"Disparity measures for {attr}",
        headers=["measure", "reportable groups (used by the gate)"],
        rows=[[k.replace("_", " "), rep.get(k)] for k in keys],
        numeric={1},
    )
    return AttributeFairness(name=attr, tables=[errors, disparities])


def _fairness(data: dict[str, Any], ev: dict[str, Any]) -> None:
    fairness = ev.get("fairness") or {}
    if not fairness:
        return
    data["min_group_count"] = next(iter(fairness.values())).get("min_group_count")
    data["fairness_threshold"] = ev.get("threshold", 0.5)
    build = _regression_fairness if ev.get("task") == "regression" else _classification_fairness
    data["fairness"] = [build(attr, rep) for attr, rep in fairness.items()]


def _champion(data: dict[str, Any], ev: dict[str, Any]) -> None:
    comp = ev.get("champion_comparison")
    data["champion"] = comp or None
    if not comp or comp.get("skipped"):
        return
    data["champion_table"] = Table(
        caption="Challenger against the champion on the same test rows",
        headers=["quantity", "value"],
        rows=[
            ["champion version", comp["champion_version"]],
            [f"challenger {comp['metric']}", comp["challenger"]],
            [f"champion {comp['metric']}", comp["champion"]],
            ["improvement (positive = challenger better)", comp["difference"]],
            ["95% CI of the improvement (paired bootstrap)", interval(comp["ci_low"], comp["ci_high"])],
            ["non-inferiority margin", comp.get("margin")],
            ["significantly worse (CI upper bound < −margin)", bool(comp["significantly_worse"])],
            ["non-inferiority shown (CI lower bound ≥ −margin)", bool(comp.get("non_inferior"))],
            ["McNemar exact p-value (accuracy)", comp.get("mcnemar_p")],
        ],
        numeric={1},
    )


def _lineage(data: dict[str, Any], man: dict[str, Any]) -> None:
    lin = man.get("lineage") or {}
    if not lin:
        return
    rows = lin.get("rows") or {}
    tables = [
        Table(
            caption="Where this model came from",
            headers=["item", "value"],
            rows=[
                ["data source", lin.get("data_source")],
                ["data fingerprint (sha256 of the rows used)", lin.get("data_fingerprint")],
                ["rows (train / valid / test)", " / ".join(str(rows.get(k, "—")) for k in ("train", "valid", "test"))],
                ["seeds", ", ".join(f"{k} {v}" for k, v in (lin.get("seeds") or {}).items())],
                ["code revision", lin.get("code_revision")],
                ["image", lin.get("image")],
            ],
        )
    ]
    libs = lin.get("libraries") or {}
    if libs:
        tables.append(
            Table(caption="Library versions", headers=["library", "version"], rows=sorted(map(list, libs.items())))
        )
    data["lineage"] = tables
    if lin.get("config"):
        data["config_json"] = json.dumps(lin["config"], indent=2, sort_keys=True)


def _details(data: dict[str, Any], man: dict[str, Any], ev: dict[str, Any], cfg) -> None:
    rows = [
        ["name", man.get("name") or cfg.name],
        ["version", data["version"]],
        ["task", data["task"]],
        ["model family", data["family"]],
        ["model sha256 (approvals are bound to it)", man.get("model_sha256") or ev.get("model_sha256")],
        ["owner", cfg.card.owner or "not stated (card.owner)"],
        ["contact", cfg.card.contact],
        ["features", ", ".join(ev.get("features", [])) or None],
    ]
    data["details"] = Table(caption="Model details", headers=["item", "value"], rows=rows)
    if man.get("data_warnings"):
        warnings = [[w] for w in man["data_warnings"]]
        data["data_warnings"] = Table(caption="Data contract warnings", headers=["warning"], rows=warnings)


def _performance(data: dict[str, Any], ev: dict[str, Any], cfg) -> None:
    """Headline sentence, threshold, baseline, residual summary and the curves' figure keys."""
    cis = ev.get("confidence_intervals", {})
    headline = "roc_auc" if data["task"] == "binary_classification" else "rmse"
    value = ev.get("metrics", {}).get(headline)
    if value is not None:
        data["headline"] = (
            f"Headline metric {METRIC_LABELS.get(headline, headline)} {value:.4f}{ci_suffix(cis.get(headline))} "
            f"on {ev.get('n_test')} held-out test rows."
        )
    _baseline(data, ev, cfg)
    res = ev.get("residuals") if data["regression"] else None
    if res:
        quantiles = [[f"{k[1:]}th percentile", v] for k, v in res["quantiles"].items()]
        data["residual_summary"] = Table(
            caption="Residual summary (actual − predicted)",
            headers=["statistic", "value"],
            rows=[
                ["mean", res["mean"]],
                ["standard deviation", res["std"]],
                *quantiles,
                ["largest absolute", res["max_abs"]],
            ],
            numeric={1},
        )
    data["curves"] = ["residuals"] if data["regression"] else ["roc", "pr", "calibration", "confusion"]


def _n_resamples(ev: dict[str, Any]) -> Any:
    """The resamples behind the intervals (those of the first metric), or "no" when there are none."""
    cis: dict[str, dict[str, Any]] = ev.get("confidence_intervals", {})
    first: dict[str, Any] = next(iter(cis.values()), {})
    return first.get("n_resamples", "no")


def card_data(
    manifest_like: dict[str, Any],
    evaluation: dict[str, Any],
    gate: dict[str, Any] | None,
    cfg: RunConfig,
    *,
    title: str | None = None,
    status: Any = None,
) -> CardData:
    """What the model card of one version says.

    Args:
        manifest_like: `version`, `name`, `task`, `family`, `model_sha256`, `data_warnings`, `lineage`
            (data_source, data_fingerprint, rows, config, seeds, code_revision, libraries, image); missing
            keys are shown as "—".
        evaluation: The evaluation document (metrics, CIs, curves, fairness, importance, comparison).
        gate: The gate decision with every rule, or None (evaluation-only report).
        cfg: RunConfig; its `card:` section supplies intended use, limitations and owner.
        title: Page title; default "Model card: <card.title>".
        status: The version's effective status (`civicml.governance.approval.VersionStatus`) when the card is
            rendered after commit: adds the human decision and the hashes it is bound to. None at commit time.

    Returns:
        The `CardData`; render it with `civicml.reporting.card.render_card`.
    """
    card, ev, man = cfg.card, evaluation, manifest_like
    task, family = man.get("task") or ev.get("task"), man.get("family") or ev.get("family")
    data: dict[str, Any] = {
        "title": title or f"Model card: {card.title or man.get('name') or cfg.name}",
        "version": str(man.get("version") or ev.get("version") or "unregistered"),
        "task": task,
        "family": family,
        "missing": card.missing(),
        **{k: getattr(card, k) for k in ("intended_use", "out_of_scope", "limitations", "ethical_considerations")},
        "n_test": ev.get("n_test"),
        "n_resamples": _n_resamples(ev),
        "metrics": _metrics_table(ev),
        "regression": ev.get("task") == "regression" or "residuals" in ev,
        "importance": ev.get("feature_importance") or None,
    }
    if gate:
        _gate(data, gate)
        _human(data, gate, status)
    _details(data, man, ev, cfg)
    _performance(data, ev, cfg)
    _fairness(data, ev)
    _champion(data, ev)
    _lineage(data, man)
    return CardData(**data)

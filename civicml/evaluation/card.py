"""Model card: one self-contained, accessible HTML file plus a Markdown version.

Accessibility (WCAG 2.1 AA) choices:

* `lang="en"`, one `h1`, then `h2`/`h3` in order; a skip link to the main content.
* Every plot is an inline PNG (matplotlib Agg, base64) with alt text that states
  what it shows *and its key numbers*, and a visible caption; the numbers are
  also in real tables (`<caption>`, `<th scope>`), so nothing depends on seeing
  the image.
* Colour is never the only signal: verdicts are words (PASS / FAIL / NOT
  ASSESSABLE) with a symbol, plot series differ by marker/line style/hatch, and
  the palette is Okabe–Ito (colour-blind safe). Text colours meet 4.5:1 contrast
  on their backgrounds.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from typing import Any

from civicml.evaluation.fairness import RATES

# Okabe-Ito palette; dark enough on white for graphics (3:1) where used for lines.
BLUE, ORANGE, GREEN, VERMILION, GREY = "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#555555"
VERDICT_WORDS = {
    "pass": "✓ PASS",
    "fail": "✗ FAIL",
    "not_assessable": "? NOT ASSESSABLE",
    "not_measured": "– NOT MEASURED",
}
DECISION_WORDS = {"deploy": "DEPLOY", "reject": "REJECT", "pending_approval": "PENDING HUMAN APPROVAL"}
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
CSS = """
:root{color-scheme:light}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;background:#fff;
 max-width:62em;margin:0 auto;padding:1em 1.5em;line-height:1.5}
a{color:#0b57d0}
.skip{position:absolute;left:-999px}.skip:focus{left:1em;top:1em;background:#fff;padding:.3em}
table{border-collapse:collapse;margin:.8em 0 1.4em;width:100%}
caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border:1px solid #767676;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td[class^="verdict-"]{white-space:nowrap}
table.rules td:last-child{width:34%}
.verdict-pass{color:#0a6b0a;font-weight:700}.verdict-fail{color:#b00020;font-weight:700}
.verdict-not_assessable,.verdict-not_measured{color:#7a4b00;font-weight:700}
.decision{border:3px solid #1a1a1a;padding:.6em 1em;margin:1em 0;font-size:1.1em}
.decision-deploy{border-color:#0a6b0a}.decision-reject{border-color:#b00020}
.decision-pending_approval{border-color:#7a4b00}
.decision-approved{border-color:#0a6b0a}.decision-rejected{border-color:#b00020}
figure{margin:1em 0 1.6em}figure img{max-width:100%;height:auto;border:1px solid #ccc}
figcaption{font-size:.95em;color:#333}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;word-break:break-all}
pre{background:#f6f6f6;padding:.6em;overflow:auto;white-space:pre-wrap}
.note{color:#333;font-style:italic}
"""


# -- formatting -----------------------------------------------------------------------------------------


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.{digits}f}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, default=str)
    return str(v)


def _e(v: Any) -> str:
    return html.escape(_fmt(v))


def _table(
    caption: str,
    headers: list[str],
    rows: list[list[Any]],
    numeric: set[int] | None = None,
    row_header: bool = True,
    cls: str = "",
) -> str:
    numeric = numeric or set()
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            raw = v if isinstance(v, _Raw) else None
            text = raw.html if raw else _e(v)
            if i == 0 and row_header:
                cells.append(f'<th scope="row">{text}</th>')
            else:
                cls = ' class="num"' if i in numeric else (f' class="{raw.cls}"' if raw and raw.cls else "")
                cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    klass = f' class="{cls}"' if cls else ""
    return (
        f"<table{klass}><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


class _Raw:
    """Pre-escaped HTML for a table cell (with an optional class)."""

    def __init__(self, html_text: str, cls: str = ""):
        self.html = html_text
        self.cls = cls


def _verdict_cell(verdict: str) -> _Raw:
    return _Raw(html.escape(VERDICT_WORDS.get(verdict, verdict.upper())), f"verdict-{verdict}")


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        text = v.html if isinstance(v, _Raw) else _fmt(v)
        return html.unescape(text).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


# -- plots ------------------------------------------------------------------------------------------------


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _fig(w: float = 6.0, h: float = 4.2):
    # The object API (no pyplot): no global backend state, safe in threads and headless containers.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    ax = fig.subplots()
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _ci_text(cis: dict[str, Any], name: str) -> str:
    ci = cis.get(name)
    return f" (95% CI {ci['low']:.3f} to {ci['high']:.3f})" if ci else ""


class _Plot:
    def __init__(self, title: str, png_b64: str, alt: str):
        self.title, self.png, self.alt = title, png_b64, alt


def _roc_plot(ev: dict[str, Any]) -> _Plot | None:
    roc = ev.get("roc")
    if not roc:
        return None
    auc = ev["metrics"].get("roc_auc", float("nan"))
    fig, ax = _fig()
    ax.plot(
        roc["fpr"],
        roc["tpr"],
        color=BLUE,
        linewidth=2,
        marker="o",
        markevery=10,
        markersize=4,
        label=f"model (ROC-AUC {auc:.3f})",
    )
    ax.plot([0, 1], [0, 1], color=GREY, linestyle="--", label="chance (diagonal)")
    ax.set(
        xlabel="False positive rate",
        ylabel="True positive rate (recall)",
        title="ROC curve",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right")
    alt = (
        f"ROC curve: true positive rate against false positive rate on {ev.get('n_test')} test rows. "
        f"ROC-AUC {auc:.3f}{_ci_text(ev.get('confidence_intervals', {}), 'roc_auc')}; "
        "the dashed diagonal is chance level (0.5)."
    )
    return _Plot("ROC curve", _png(fig), alt)


def _pr_plot(ev: dict[str, Any]) -> _Plot | None:
    pr = ev.get("pr")
    if not pr:
        return None
    ap = ev["metrics"].get("pr_auc", float("nan"))
    fig, ax = _fig()
    ax.plot(
        pr["recall"],
        pr["precision"],
        color=ORANGE,
        linewidth=2,
        marker="s",
        markevery=10,
        markersize=4,
        label=f"model (average precision {ap:.3f})",
    )
    ax.axhline(
        pr["positive_rate"], color=GREY, linestyle="--", label=f"chance (positive rate {pr['positive_rate']:.3f})"
    )
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision–recall curve", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left")
    alt = (
        f"Precision-recall curve: precision against recall. Average precision {ap:.3f}"
        f"{_ci_text(ev.get('confidence_intervals', {}), 'pr_auc')}; the dashed line is chance level, the "
        f"positive rate {pr['positive_rate']:.3f}."
    )
    return _Plot("Precision–recall curve", _png(fig), alt)


def _calibration_plot(ev: dict[str, Any]) -> _Plot | None:
    cal = ev.get("calibration")
    if not cal or not cal.get("predicted"):
        return None
    fig, ax = _fig()
    ax.plot([0, 1], [0, 1], color=GREY, linestyle="--", label="perfect calibration")
    ax.plot(
        cal["predicted"],
        cal["observed"],
        color=GREEN,
        linewidth=2,
        marker="D",
        markersize=6,
        label=f"model (ECE {cal['ece']:.3f})",
    )
    ax.set(
        xlabel="Mean predicted probability",
        ylabel="Observed positive rate",
        title="Calibration (reliability)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left")
    gaps = [abs(o - p) for o, p in zip(cal["observed"], cal["predicted"])]
    worst = max(range(len(gaps)), key=gaps.__getitem__)
    alt = (
        f"Calibration plot over {len(gaps)} probability bins: observed positive rate against mean predicted "
        f"probability. Expected calibration error {cal['ece']:.3f}; the largest gap is {gaps[worst]:.3f}, in the "
        f"bin with mean prediction {cal['predicted'][worst]:.2f} (observed {cal['observed'][worst]:.2f}, "
        f"{cal['count'][worst]} rows). Brier score {ev['metrics'].get('brier', float('nan')):.4f}."
    )
    return _Plot("Calibration", _png(fig), alt)


def _confusion_plot(ev: dict[str, Any]) -> _Plot | None:
    cm = ev.get("confusion_matrix")
    if not cm:
        return None
    fig, ax = _fig(4.6, 4.0)
    ax.grid(False)
    ax.imshow(cm, cmap="Blues")
    labels = [["true negatives", "false positives"], ["false negatives", "true positives"]]
    vmax = max(max(r) for r in cm) or 1
    for i in range(2):
        for j in range(2):
            dark = cm[i][j] > vmax / 2
            ax.text(
                j,
                i,
                f"{cm[i][j]}\n{labels[i][j]}",
                ha="center",
                va="center",
                fontsize=11,
                color="white" if dark else "#1a1a1a",
                fontweight="bold",
            )
    ax.set_xticks([0, 1], ["predicted 0", "predicted 1"])
    ax.set_yticks([0, 1], ["actual 0", "actual 1"])
    ax.set_title(f"Confusion matrix (threshold {ev.get('threshold', 0.5)})")
    (tn, fp), (fn, tp) = cm
    alt = (
        f"Confusion matrix at threshold {ev.get('threshold', 0.5)}: {tn} true negatives, {fp} false positives, "
        f"{fn} false negatives, {tp} true positives."
    )
    return _Plot("Confusion matrix", _png(fig), alt)


def _fairness_plot(attr: str, rep: dict[str, Any]) -> _Plot:
    import numpy as np

    groups = list(rep["groups"])
    fig, ax = _fig(6.4, 4.0)
    x = np.arange(len(groups))
    width = 0.38
    for k, (metric, color, hatch) in enumerate((("selection_rate", BLUE, ""), ("tpr", ORANGE, "//"))):
        vals = [rep["groups"][g][metric] for g in groups]
        heights = [v if v is not None else 0 for v in vals]
        bars = ax.bar(
            x + (k - 0.5) * width,
            heights,
            width,
            color=color,
            hatch=hatch,
            edgecolor="#1a1a1a",
            label="selection rate" if metric == "selection_rate" else "true positive rate",
        )
        for b, v in zip(bars, vals):
            ax.text(
                b.get_x() + b.get_width() / 2,
                b.get_height() + 0.01,
                "suppressed" if v is None else f"{v:.2f}",
                ha="center",
                va="bottom",
                fontsize=8,
                rotation=90 if v is None else 0,
            )
    ax.set_xticks(x, [f"{g}\n(n={rep['groups'][g]['count']})" for g in groups])
    ax.set(ylabel="rate", title=f"Fairness by {attr}", ylim=(0, 1.1))
    ax.legend(loc="upper right")

    def _rate(g: str) -> str:
        rate = rep["groups"][g]["selection_rate"]
        return "suppressed" if rate is None else _fmt(rate, 2)

    parts = ", ".join(f"{g} {_rate(g)}" for g in groups)
    alt = (
        f"Bar chart of selection rate and true positive rate by {attr}. Selection rates: {parts}. "
        f"Demographic parity ratio {_fmt(rep.get('demographic_parity_ratio'), 3)}, equalized odds difference "
        f"{_fmt(rep.get('equalized_odds_difference'), 3)}."
    )
    if rep.get("suppressed_groups"):
        alt += (
            f" Groups with fewer than {rep.get('min_group_count')} rows are suppressed: "
            f"{', '.join(map(str, rep['suppressed_groups']))}."
        )
    return _Plot(f"Fairness by {attr}", _png(fig), alt)


def _importance_plot(imp: dict[str, Any], top: int = 15) -> _Plot | None:
    feats = imp.get("features", [])[:top]
    if not feats:
        return None
    fig, ax = _fig(6.4, 0.35 * len(feats) + 1.2)
    names = [f["feature"] for f in feats][::-1]
    vals = [f["importance"] for f in feats][::-1]
    ax.barh(names, vals, color=BLUE, edgecolor="#1a1a1a")
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
    ax.set(xlabel=imp.get("unit", "importance"), title="Feature importance")
    ax.margins(x=0.15)
    listed = ", ".join(f"{f['feature']} {f['importance']:.3f}" for f in feats[:5])
    method = imp.get("method", "importance")
    alt = f"Horizontal bar chart of the top {len(feats)} features by {method}. Top five: {listed}."
    return _Plot("Feature importance", _png(fig), alt)


def _residual_plot(ev: dict[str, Any]) -> _Plot | None:
    import numpy as np

    res = ev.get("residuals")
    if not res:
        return None
    fig, ax = _fig()
    edges, counts = res["histogram"]["edges"], res["histogram"]["counts"]
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=BLUE, edgecolor="#1a1a1a", hatch="..")
    ax.axvline(0, color=GREY, linestyle="--", label="zero error")
    ax.set(xlabel="residual (actual − predicted)", ylabel="rows", title="Residuals")
    ax.legend()
    q = res["quantiles"]
    alt = (
        f"Histogram of residuals (actual minus predicted): mean {res['mean']:.3f}, median {q['p50']:.3f}, "
        f"90% of residuals between {q['p05']:.3f} and {q['p95']:.3f}, largest absolute {res['max_abs']:.3f}."
    )
    return _Plot("Residuals", _png(fig), alt)


def _figure_html(p: _Plot | None) -> str:
    if p is None:
        return ""
    return (
        f'<figure><img src="data:image/png;base64,{p.png}" alt="{html.escape(p.alt, quote=True)}">'
        f"<figcaption>{html.escape(p.alt)}</figcaption></figure>"
    )


# -- sections ---------------------------------------------------------------------------------------------


class _Doc:
    """Builds the HTML and Markdown bodies side by side so they never disagree."""

    def __init__(self):
        self.h: list[str] = []
        self.m: list[str] = []

    def heading(self, level: int, text: str, anchor: str | None = None) -> None:
        ident = f' id="{anchor}"' if anchor else ""
        self.h.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")
        self.m.append(f"\n{'#' * level} {text}\n")

    def para(self, text: str, cls: str = "") -> None:
        c = f' class="{cls}"' if cls else ""
        self.h.append(f"<p{c}>{html.escape(text)}</p>")
        self.m.append(text + "\n")

    def table(
        self, caption: str, headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None, cls: str = ""
    ) -> None:
        self.h.append(_table(caption, headers, rows, numeric, cls=cls))
        self.m.append(f"\n*{caption}*\n\n" + _md_table(headers, rows) + "\n")

    def figure(self, p: _Plot | None) -> None:
        if p is None:
            return
        self.h.append(_figure_html(p))
        self.m.append(f"\n*Figure — {p.title}:* {p.alt}\n")


def _metric_rows(ev: dict[str, Any]) -> list[list[Any]]:
    cis = ev.get("confidence_intervals", {})
    rows = []
    metrics = ev.get("metrics", {})
    # Headline order (JSON files store keys sorted), then anything else.
    order = [m for m in METRIC_LABELS if m in metrics] + [m for m in metrics if m not in METRIC_LABELS]
    for name, value in ((m, metrics[m]) for m in order):
        ci = cis.get(name, {})
        rows.append([METRIC_LABELS.get(name, name), value, ci.get("low"), ci.get("high")])
    return rows


def _baseline_section(doc: _Doc, ev: dict[str, Any], cfg) -> None:
    """The no-skill baseline, the model's margins over it and how the threshold was chosen."""
    if ev.get("threshold") is not None:
        rule = cfg.model.threshold
        how = "fixed" if rule.rule == "fixed" else f"chosen on the validation split by rule {rule.rule}"
        target = f" (target {rule.value})" if rule.rule.startswith("target_") else ""
        doc.para(f"Decision threshold: {ev['threshold']:.4f}, {how}{target}; the server labels rows with it.")
    base = ev.get("baseline")
    if not base:
        doc.para("No no-skill baseline was computed for this evaluation.", "note")
        return
    doc.heading(3, "Compared with no skill")
    doc.para(
        f"Baseline: {base['strategy']} (fitted on the {base.get('fitted_on', 'training')} rows). A positive margin "
        "means better than the baseline; intervals are paired 95% bootstrap intervals."
    )
    doc.table(
        "Margin over the no-skill baseline",
        ["metric", "model", "baseline", "margin", "95% CI low", "95% CI high"],
        [
            [METRIC_LABELS.get(k, k), m["model"], m["baseline"], m["margin"], m.get("low"), m.get("high")]
            for k, m in base.get("margins", {}).items()
        ],
        numeric={1, 2, 3, 4, 5},
    )


def _fairness_section(doc: _Doc, ev: dict[str, Any], gate: dict[str, Any] | None) -> None:
    fairness = ev.get("fairness") or {}
    doc.heading(2, "Fairness", "fairness")
    if not fairness:
        doc.para(
            "Fairness was not measured: no sensitive attributes were configured (data.sensitive_attributes).",
            "note",
        )
        return
    if ev.get("task") == "regression":
        _regression_fairness(doc, fairness)
        return
    any_rep = next(iter(fairness.values()))
    doc.para(
        f"Rates are computed with fairlearn at threshold {ev.get('threshold', 0.5)} on the test rows. Groups "
        f"with fewer than {any_rep.get('min_group_count')} rows are suppressed: their rates are withheld and "
        "they are excluded from the disparity measures used by the gate (values over all groups are shown "
        "alongside)."
    )
    for attr, rep in fairness.items():
        doc.heading(3, f"By {attr}")
        rows = []
        for g, v in rep["groups"].items():
            rows.append(
                [g, v["count"], *[v[k] for k in RATES], "suppressed (small group)" if v["suppressed"] else "reported"]
            )
        doc.table(
            f"Outcomes by {attr} (suppressed groups' rates withheld)",
            ["group", "rows", "selection rate", "true positive rate", "false positive rate", "precision", "status"],
            rows,
            numeric={1, 2, 3, 4, 5},
        )
        cis = rep.get("confidence_intervals") or {}

        def _ci(key: str, cis: dict[str, Any] = cis) -> str:
            c = cis.get(key)
            return f"{c['low']:.4f} to {c['high']:.4f}" if c else "—"

        drows = [
            [label, rep.get(key), _ci(key), rep.get(f"{key}_all_groups")]
            for key, label in (
                ("demographic_parity_ratio", "demographic parity ratio (min/max selection rate)"),
                ("demographic_parity_difference", "demographic parity difference (max−min selection rate)"),
                ("equalized_odds_difference", "equalized odds difference (max of TPR and FPR gaps)"),
            )
        ]
        doc.table(
            f"Disparity measures for {attr}",
            ["measure", "reportable groups (used by the gate)", "95% CI (bootstrap)", "all groups"],
            drows,
            numeric={1, 2, 3},
        )
        doc.figure(_fairness_plot(attr, rep))


def _regression_fairness(doc: _Doc, fairness: dict[str, Any]) -> None:
    any_rep = next(iter(fairness.values()))
    doc.para(
        "Errors and mean predictions by group are computed with fairlearn's MetricFrame on the test rows. Groups "
        f"with fewer than {any_rep.get('min_group_count')} rows are suppressed and excluded from the disparities. "
        "A ratio is the smallest group value over the largest (1.0 = parity)."
    )
    for attr, rep in fairness.items():
        doc.heading(3, f"By {attr}")
        rows = [
            [
                g,
                v["count"],
                v["mae"],
                v["mse"],
                v["mean_prediction"],
                "suppressed (small group)" if v["suppressed"] else "reported",
            ]
            for g, v in rep["groups"].items()
        ]
        doc.table(
            f"Errors by {attr} (suppressed groups' values withheld)",
            ["group", "rows", "mean absolute error", "mean squared error", "mean prediction", "status"],
            rows,
            numeric={1, 2, 3, 4},
        )
        keys = [f"{m}_{k}" for m in ("mae", "mse", "mean_prediction") for k in ("ratio", "difference")]
        doc.table(
            f"Disparity measures for {attr}",
            ["measure", "reportable groups (used by the gate)"],
            [[k.replace("_", " "), rep.get(k)] for k in keys],
            numeric={1},
        )


def _gate_section(doc: _Doc, gate: dict[str, Any] | None) -> None:
    doc.heading(2, "Gate decision", "gate")
    if not gate:
        doc.para("The policy gate has not run for this report.", "note")
        return
    word = DECISION_WORDS.get(gate["decision"], gate["decision"].upper())
    doc.h.append(
        f'<p class="decision decision-{html.escape(gate["decision"])}"><strong>Decision: '
        f"{html.escape(word)}</strong> — {html.escape(gate.get('reason', ''))}</p>"
    )
    doc.m.append(f"**Decision: {word}** — {gate.get('reason', '')}\n")
    rows = [
        [
            r["rule"],
            r.get("threshold"),
            r.get("value"),
            _verdict_cell(r.get("verdict", "pass" if r.get("passed") else "fail")),
            "yes" if r.get("borderline") else "no",
            r.get("detail") or "",
        ]
        for r in gate.get("rules", [])
    ]
    doc.table(
        "Every gate rule: threshold, measured value and verdict",
        ["rule", "threshold", "measured", "verdict", "borderline", "detail"],
        rows,
        numeric={1, 2},
        cls="rules",
    )
    pol = gate.get("policy") or {}
    if pol:
        doc.para(
            f"Human approval policy: {pol.get('require_approval')}; borderline margin "
            f"{pol.get('borderline_margin')}; judged on the 95% CI bound: "
            f"{'yes' if pol.get('use_ci_lower_bound') else 'no'}."
        )


def _champion_section(doc: _Doc, ev: dict[str, Any]) -> None:
    comp = ev.get("champion_comparison")
    doc.heading(2, "Comparison with the current champion", "champion")
    if not comp:
        doc.para("No champion was deployed when this model was evaluated; there is nothing to compare with.", "note")
        return
    if comp.get("skipped"):
        doc.para(f"Champion {comp.get('champion_version')} was not compared: {comp['skipped']}", "note")
        return
    rows = [
        ["champion version", comp["champion_version"]],
        [f"challenger {comp['metric']}", comp["challenger"]],
        [f"champion {comp['metric']}", comp["champion"]],
        ["improvement (positive = challenger better)", comp["difference"]],
        ["95% CI of the improvement (paired bootstrap)", f"{comp['ci_low']:.4f} to {comp['ci_high']:.4f}"],
        ["non-inferiority margin", comp.get("margin")],
        ["significantly worse (CI upper bound < −margin)", bool(comp["significantly_worse"])],
        ["non-inferiority shown (CI lower bound ≥ −margin)", bool(comp.get("non_inferior"))],
        ["McNemar exact p-value (accuracy)", comp.get("mcnemar_p")],
    ]
    doc.table("Challenger against the champion on the same test rows", ["quantity", "value"], rows, numeric={1})


def _lineage_section(doc: _Doc, man: dict[str, Any]) -> None:
    lin = man.get("lineage") or {}
    doc.heading(2, "Lineage and reproducibility", "lineage")
    if not lin:
        doc.para("Lineage is recorded when the version is registered.", "note")
        return
    rows = [
        ["data source", lin.get("data_source")],
        ["data fingerprint (sha256 of the rows used)", lin.get("data_fingerprint")],
        [
            "rows (train / valid / test)",
            " / ".join(str((lin.get("rows") or {}).get(k, "—")) for k in ("train", "valid", "test")),
        ],
        ["seeds", ", ".join(f"{k} {v}" for k, v in (lin.get("seeds") or {}).items())],
        ["code revision", lin.get("code_revision")],
        ["image", lin.get("image")],
    ]
    doc.table("Where this model came from", ["item", "value"], rows)
    libs = lin.get("libraries") or {}
    if libs:
        doc.table("Library versions", ["library", "version"], [[k, v] for k, v in sorted(libs.items())])
    if lin.get("config"):
        text = json.dumps(lin["config"], indent=2, sort_keys=True)
        doc.h.append(
            "<details><summary>Full run configuration (JSON)</summary><pre><code>"
            f"{html.escape(text)}</code></pre></details>"
        )
        doc.m.append(
            f"\n<details><summary>Full run configuration (JSON)</summary>\n\n```json\n{text}\n```\n</details>\n"
        )


def _human_decision(doc: _Doc, gate: dict[str, Any], status: Any, version: str) -> None:
    """The human decision (or its absence) under the gate decision."""
    human = getattr(status, "human", None)
    if human is not None and getattr(status, "decided_by", None) == "person":
        word = {"approved": "APPROVED", "rejected": "REJECTED"}.get(human.decision, human.decision.upper())
        text = f"Human decision: {word} by {human.by} ({human.role}) at {human.at}. Reason: {human.reason}"
        doc.h.append(
            f'<p class="decision decision-{html.escape(human.decision)}"><strong>{html.escape(text)}</strong></p>'
        )
        doc.m.append(f"**{text}**\n")
        doc.table(
            "Hashes the human decision is bound to",
            ["item", "sha256"],
            [["model", human.model_sha256], ["evaluation report", human.evaluation_sha256]],
        )
        return
    if status is not None and getattr(status, "problem", None):
        doc.para(f"A recorded human decision does not count: {status.problem}.", "note")
    if gate["decision"] == "pending_approval":
        when = "now" if status is not None else "when this card was written"
        doc.para(
            f"No person had decided on this version {when}. It serves no one until a named person approves it: "
            f"civicml approve {version} --by NAME --role ROLE --reason TEXT. The current decision is shown by "
            f"`civicml models card {version}` and `civicml models show {version}`."
        )


def render_model_card(
    manifest_like: dict[str, Any],
    evaluation: dict[str, Any],
    gate: dict[str, Any] | None,
    cfg,
    title: str | None = None,
    status: Any = None,
) -> tuple[str, str]:
    """Render the model card as (self-contained HTML, Markdown).

    Args:
        manifest_like: `version`, `name`, `task`, `family`, `model_sha256`, `lineage` (data_source,
            data_fingerprint, rows, config, seeds, code_revision, libraries, image); missing keys are shown
            as "—".
        evaluation: The evaluation document (metrics, CIs, curves, fairness, importance, comparison).
        gate: The gate decision with every rule, or None (evaluation-only report).
        cfg: RunConfig; its `card:` section supplies intended use, limitations and owner.
        title: Page title; default "Model card: <card.title>".
        status: The version's effective status (`civicml.governance.approval.VersionStatus`), when the
            card is rendered after commit: shows the human decision, who, role, when, why and the hashes
            it is bound to. None at commit time (no human has decided yet).

    Returns:
        (html, markdown).
    """
    card = cfg.card
    ev = evaluation
    version = manifest_like.get("version") or ev.get("version") or "unregistered"
    title = title or f"Model card: {card.title or manifest_like.get('name') or cfg.name}"
    doc = _Doc()
    doc.h.append('<a class="skip" href="#main">Skip to content</a><header>')
    doc.heading(1, title)
    doc.para(
        f"Version {version} · {manifest_like.get('task') or ev.get('task')} · "
        f"{manifest_like.get('family') or ev.get('family')}"
    )
    doc.h.append('</header><main id="main">')

    doc.heading(2, "Summary", "summary")
    if gate:
        word = DECISION_WORDS.get(gate["decision"], gate["decision"].upper())
        doc.h.append(
            f'<p class="decision decision-{html.escape(gate["decision"])}"><strong>Gate decision: '
            f"{html.escape(word)}</strong> — {html.escape(gate.get('reason', ''))}</p>"
        )
        doc.m.append(f"**Gate decision: {word}** — {gate.get('reason', '')}\n")
        _human_decision(doc, gate, status, str(version))
    headline = "roc_auc" if (manifest_like.get("task") or ev.get("task")) == "binary_classification" else "rmse"
    hv = ev.get("metrics", {}).get(headline)
    if hv is not None:
        doc.para(
            f"Headline metric {METRIC_LABELS.get(headline, headline)} {hv:.4f}"
            f"{_ci_text(ev.get('confidence_intervals', {}), headline)} on {ev.get('n_test')} held-out test rows."
        )

    data_warnings = manifest_like.get("data_warnings") or []
    if data_warnings:
        doc.heading(3, "Data outside the contract")
        doc.para(
            f"The training data had {len(data_warnings)} contract warning(s) (data.out_of_contract: warn); the "
            "model was trained on these rows:",
            "note",
        )
        doc.table("Data contract warnings", ["warning"], [[w] for w in data_warnings])

    doc.heading(2, "Model details", "details")
    doc.table(
        "Model details",
        ["item", "value"],
        [
            ["name", manifest_like.get("name") or cfg.name],
            ["version", version],
            ["task", manifest_like.get("task") or ev.get("task")],
            ["model family", manifest_like.get("family") or ev.get("family")],
            ["model sha256 (approvals are bound to it)", manifest_like.get("model_sha256") or ev.get("model_sha256")],
            ["owner", card.owner or "not stated (card.owner)"],
            ["contact", card.contact],
            ["features", ", ".join(ev.get("features", [])) or None],
        ],
    )

    missing = card.missing()
    if missing:
        doc.para(
            "Not stated by the project: " + ", ".join(f"card.{k}" for k in missing) + ". A reviewer cannot judge "
            "whether this model fits its use without them: write them under `card:` in the config and retrain "
            "(or re-render the card).",
            "note",
        )
    doc.heading(2, "Intended use", "use")
    doc.para(card.intended_use or "Not stated (card.intended_use is empty).")
    if card.out_of_scope:
        doc.heading(3, "Out of scope")
        doc.para(card.out_of_scope)
    doc.heading(2, "Limitations", "limitations")
    doc.para(card.limitations or "Not stated (card.limitations is empty).")
    if card.ethical_considerations:
        doc.heading(3, "Ethical considerations")
        doc.para(card.ethical_considerations)

    doc.heading(2, "Performance on the test set", "performance")
    doc.para(
        f"{ev.get('n_test')} held-out rows. Intervals are 95% percentile bootstrap intervals "
        f"({next(iter(ev.get('confidence_intervals', {}).values()), {}).get('n_resamples', 'no')} resamples)."
    )
    doc.table(
        "Test metrics with 95% confidence intervals",
        ["metric", "value", "95% CI low", "95% CI high"],
        _metric_rows(ev),
        numeric={1, 2, 3},
    )
    _baseline_section(doc, ev, cfg)
    if ev.get("task") == "regression" or "residuals" in ev:
        res = ev.get("residuals")
        if res:
            doc.table(
                "Residual summary (actual − predicted)",
                ["statistic", "value"],
                [
                    ["mean", res["mean"]],
                    ["standard deviation", res["std"]],
                    *[[f"{k[1:]}th percentile", v] for k, v in res["quantiles"].items()],
                    ["largest absolute", res["max_abs"]],
                ],
                numeric={1},
            )
        doc.figure(_residual_plot(ev))
    else:
        for heading, plot in (
            ("ROC curve", _roc_plot(ev)),
            ("Precision–recall curve", _pr_plot(ev)),
            ("Calibration", _calibration_plot(ev)),
            ("Confusion matrix", _confusion_plot(ev)),
        ):
            if plot is not None:
                doc.heading(3, heading)
                doc.figure(plot)

    _fairness_section(doc, ev, gate)

    doc.heading(2, "What drives the predictions", "explanations")
    imp = ev.get("feature_importance")
    if imp:
        doc.para(f"Method: {imp['method']} on {imp.get('n_rows')} test rows; unit: {imp['unit']}.")
        doc.table(
            "Feature importance, largest first",
            ["feature", "importance"],
            [[f["feature"], f["importance"]] for f in imp["features"]],
            numeric={1},
        )
        doc.figure(_importance_plot(imp))
    else:
        doc.para("No feature importance was computed.", "note")

    _champion_section(doc, ev)
    _gate_section(doc, gate)
    _lineage_section(doc, manifest_like)
    doc.h.append("</main>")

    page = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} ({html.escape(str(version))})</title><style>{CSS}</style></head>"
        f"<body>{''.join(doc.h)}</body></html>\n"
    )
    md = "".join(line if line.endswith("\n") else line + "\n" for line in doc.m).lstrip()
    return page, md

"""Every chart civicml draws: model card, drift report and A/B report (matplotlib, Agg, no pyplot).

The drift report's and the A/B report's charts are in `civicml.reporting.monitor_plots`, on the
same canvas. Each function returns a `Figure`: the PNG, alt text that says what the chart shows with its key
numbers (sentences, never a Python list), and the table of the numbers it was drawn from, which
the report shows beside the image so nothing depends on seeing it. Series differ by marker, line
style or hatch as well as colour, and colours are Okabe-Ito (colour-blind safe).

The model card's figures are drawn once, in the evaluate step, and stored
(`civicml.reporting.model.save_figures`); the register step and later re-renderings load them.
matplotlib is imported only when drawing.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from civicml.reporting.model import Figure, Table
from civicml.reporting.numbers import ci_suffix, number

# Okabe-Ito, by their proper names.
BLUE, ORANGE, GREEN, VERMILION, GREY = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#555555"
CURVE_ROWS = 11  # points of a curve listed in its table (the chart has them all)
# Processes that draw the model card's figures at once (None: the CPUs this process may use, at most 4).
CARD_WORKERS: int | None = None


def _canvas(w: float = 6.0, h: float = 4.2, dpi: int = 100):
    # The object API (no pyplot): no global backend state, safe in threads and headless containers.
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(w, h), dpi=dpi)
    ax = fig.subplots()
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _png(fig, tight: bool = True) -> str:
    buf = io.BytesIO()
    # bbox "tight" draws twice; the drift report's many small charts use fixed margins instead.
    fig.savefig(buf, format="png", **({"bbox_inches": "tight"} if tight else {}))
    return base64.b64encode(buf.getvalue()).decode()


def _sample(n: int, k: int = CURVE_ROWS) -> list[int]:
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if n > k else list(range(n))


def _curve(ax, xs, ys, color: str, marker: str, label: str) -> None:
    ax.plot(xs, ys, color=color, linewidth=2, marker=marker, markevery=10, markersize=4, label=label)


def _curve_table(caption: str, headers: list[str], *columns: list[float]) -> Table:
    idx = _sample(len(columns[0]))
    return Table(
        caption=f"{caption}: {len(idx)} of its {len(columns[0])} points",
        headers=headers,
        rows=[[c[i] for c in columns] for i in idx],
        numeric={1, 2},
        digits=3,
    )


def _grouped_bars(ax, labels: list[str], series: list[tuple[str, str, str, list[Any]]], text) -> None:
    """Side-by-side bars per label, one series each (label, colour, hatch, values); None draws as 0."""
    width = 0.38
    for k, (name, color, hatch, vals) in enumerate(series):
        xs = [i + (k - 0.5) * width for i in range(len(labels))]
        bars = ax.bar(xs, [v or 0 for v in vals], width, color=color, hatch=hatch, edgecolor="#1a1a1a", label=name)
        for b, v in zip(bars, vals):
            ax.text(
                b.get_x() + b.get_width() / 2,
                b.get_height() + 0.01,
                text(v),
                ha="center",
                va="bottom",
                fontsize=8,
                rotation=90 if v is None else 0,
            )
    ax.set_xticks(range(len(labels)), labels)


def roc(ev: dict[str, Any]) -> Figure | None:
    """ROC curve with the chance diagonal."""
    r = ev.get("roc")
    if not r:
        return None
    auc = ev["metrics"].get("roc_auc", float("nan"))
    fig, ax = _canvas()
    _curve(ax, r["fpr"], r["tpr"], BLUE, "o", f"model (ROC-AUC {auc:.3f})")
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
        f"ROC-AUC {auc:.3f}{ci_suffix(ev.get('confidence_intervals', {}).get('roc_auc'))}; "
        "the dashed diagonal is chance level (0.5)."
    )
    headers = ["threshold", "false positive rate", "true positive rate"]
    table = _curve_table("ROC curve", headers, r["thresholds"], r["fpr"], r["tpr"])
    return Figure(key="roc", title="ROC curve", alt=alt, png=_png(fig), table=table)


def pr(ev: dict[str, Any]) -> Figure | None:
    """Precision-recall curve with the positive rate as chance level."""
    p = ev.get("pr")
    if not p:
        return None
    ap, base = ev["metrics"].get("pr_auc", float("nan")), p["positive_rate"]
    fig, ax = _canvas()
    _curve(ax, p["recall"], p["precision"], VERMILION, "s", f"model (average precision {ap:.3f})")
    ax.axhline(base, color=GREY, linestyle="--", label=f"chance (positive rate {base:.3f})")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision–recall curve", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left")
    alt = (
        f"Precision-recall curve: precision against recall. Average precision {ap:.3f}"
        f"{ci_suffix(ev.get('confidence_intervals', {}).get('pr_auc'))}; the dashed line is chance level, the "
        f"positive rate {base:.3f}."
    )
    headers = ["threshold", "recall", "precision"]
    table = _curve_table("Precision–recall curve", headers, p["thresholds"], p["recall"], p["precision"])
    return Figure(key="pr", title="Precision–recall curve", alt=alt, png=_png(fig), table=table)


def calibration(ev: dict[str, Any]) -> Figure | None:
    """Reliability diagram: observed positive rate per bin of predicted probability."""
    cal = ev.get("calibration")
    if not cal or not cal.get("predicted"):
        return None
    fig, ax = _canvas()
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
    labels = {"xlabel": "Mean predicted probability", "ylabel": "Observed positive rate"}
    ax.set(**labels, title="Calibration (reliability)", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    gaps = [abs(o - p) for o, p in zip(cal["observed"], cal["predicted"])]
    w = max(range(len(gaps)), key=gaps.__getitem__)
    alt = (
        f"Calibration plot over {len(gaps)} probability bins: observed positive rate against mean predicted "
        f"probability. Expected calibration error {cal['ece']:.3f}; the largest gap is {gaps[w]:.3f}, in the "
        f"bin with mean prediction {cal['predicted'][w]:.2f} (observed {cal['observed'][w]:.2f}, "
        f"{cal['count'][w]} rows). Brier score {ev['metrics'].get('brier', float('nan')):.4f}."
    )
    table = Table(
        caption="Calibration: observed positive rate per probability bin",
        headers=["bin", "mean predicted probability", "observed positive rate", "rows"],
        rows=[[i + 1, p, o, n] for i, (p, o, n) in enumerate(zip(cal["predicted"], cal["observed"], cal["count"]))],
        numeric={1, 2, 3},
        digits=3,
    )
    return Figure(key="calibration", title="Calibration", alt=alt, png=_png(fig), table=table)


def confusion(ev: dict[str, Any]) -> Figure | None:
    """The 2x2 confusion matrix at the evaluated threshold, each cell labelled in words."""
    cm = ev.get("confusion_matrix")
    if not cm:
        return None
    thr = ev.get("threshold", 0.5)
    fig, ax = _canvas(4.6, 4.0)
    ax.grid(False)
    ax.imshow(cm, cmap="Blues")
    words = [["true negatives", "false positives"], ["false negatives", "true positives"]]
    vmax = max(max(r) for r in cm) or 1
    for i in range(2):
        for j in range(2):
            ax.text(
                j,
                i,
                f"{cm[i][j]}\n{words[i][j]}",
                ha="center",
                va="center",
                fontsize=11,
                fontweight="bold",
                color="white" if cm[i][j] > vmax / 2 else "#1a1a1a",
            )
    ax.set_xticks([0, 1], ["predicted 0", "predicted 1"])
    ax.set_yticks([0, 1], ["actual 0", "actual 1"])
    ax.set_title(f"Confusion matrix (threshold {thr})")
    (tn, fp), (fn, tp) = cm
    alt = (
        f"Confusion matrix at threshold {thr}: {tn} true negatives, {fp} false positives, "
        f"{fn} false negatives, {tp} true positives."
    )
    table = Table(
        caption=f"Confusion matrix at threshold {thr} (rows)",
        headers=["actual class", "predicted 0", "predicted 1"],
        rows=[["actual 0", tn, fp], ["actual 1", fn, tp]],
        numeric={1, 2},
    )
    return Figure(key="confusion", title="Confusion matrix", alt=alt, png=_png(fig), table=table)


def fairness(attr: str, rep: dict[str, Any]) -> Figure:
    """Selection rate and true positive rate per group of one sensitive attribute."""
    groups = list(rep["groups"])
    fig, ax = _canvas(6.4, 4.0)
    series = [
        ("selection rate", BLUE, "", [rep["groups"][g]["selection_rate"] for g in groups]),
        ("true positive rate", VERMILION, "//", [rep["groups"][g]["tpr"] for g in groups]),
    ]
    counts = [f"{g}\n(n={rep['groups'][g]['count']})" for g in groups]
    _grouped_bars(ax, counts, series, lambda v: "suppressed" if v is None else f"{v:.2f}")
    ax.set(ylabel="rate", title=f"Fairness by {attr}", ylim=(0, 1.1))
    ax.legend(loc="upper right")

    def rate(g: str) -> str:
        v = rep["groups"][g]["selection_rate"]
        return "suppressed" if v is None else number(v, 2)

    alt = (
        f"Bar chart of selection rate and true positive rate by {attr}. Selection rates: "
        f"{', '.join(f'{g} {rate(g)}' for g in groups)}. Demographic parity ratio "
        f"{number(rep.get('demographic_parity_ratio'), 3)}, equalized odds difference "
        f"{number(rep.get('equalized_odds_difference'), 3)}."
    )
    if rep.get("suppressed_groups"):
        alt += (
            f" Groups with fewer than {rep.get('min_group_count')} rows are suppressed: "
            f"{', '.join(map(str, rep['suppressed_groups']))}."
        )
    table = Table(
        caption=f"Rates drawn in the chart by {attr}",
        headers=["group", "rows", "selection rate", "true positive rate"],
        rows=[[g, v["count"], v["selection_rate"], v["tpr"]] for g, v in rep["groups"].items()],
        numeric={1, 2, 3},
    )
    return Figure(key=f"fairness-{attr}", title=f"Fairness by {attr}", alt=alt, png=_png(fig), table=table)


def importance(imp: dict[str, Any], top: int = 15) -> Figure | None:
    """The `top` features by importance as horizontal bars; the table lists every feature."""
    feats = imp.get("features", [])
    shown = feats[:top]
    if not shown:
        return None
    fig, ax = _canvas(6.4, 0.35 * len(shown) + 1.2)
    names, vals = [f["feature"] for f in shown][::-1], [f["importance"] for f in shown][::-1]
    ax.barh(names, vals, color=BLUE, edgecolor="#1a1a1a")
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
    ax.set(xlabel=imp.get("unit", "importance"), title="Feature importance")
    ax.margins(x=0.15)
    listed = ", ".join(f"{f['feature']} {f['importance']:.3f}" for f in shown[:5])
    alt = (
        f"Horizontal bar chart of the top {len(shown)} features by {imp.get('method', 'importance')}. "
        f"Top five: {listed}."
    )
    table = Table(
        caption="Feature importance, largest first",
        headers=["feature", "importance"],
        rows=[[f["feature"], f["importance"]] for f in feats],
        numeric={1},
    )
    return Figure(key="importance", title="Feature importance", alt=alt, png=_png(fig), table=table)


def residuals(ev: dict[str, Any]) -> Figure | None:
    """Histogram of regression residuals (actual minus predicted)."""
    res = ev.get("residuals")
    if not res:
        return None
    edges, counts = res["histogram"]["edges"], res["histogram"]["counts"]
    fig, ax = _canvas()
    ax.bar(
        edges[:-1],
        counts,
        width=[b - a for a, b in zip(edges, edges[1:])],
        align="edge",
        color=BLUE,
        edgecolor="#1a1a1a",
        hatch="..",
    )
    ax.axvline(0, color=GREY, linestyle="--", label="zero error")
    ax.set(xlabel="residual (actual − predicted)", ylabel="rows", title="Residuals")
    ax.legend()
    q = res["quantiles"]
    alt = (
        f"Histogram of residuals (actual minus predicted): mean {res['mean']:.3f}, median {q['p50']:.3f}, "
        f"90% of residuals between {q['p05']:.3f} and {q['p95']:.3f}, largest absolute {res['max_abs']:.3f}."
    )
    table = Table(
        caption="Residual histogram: rows per bin",
        headers=["from", "to", "rows"],
        rows=[[a, b, c] for a, b, c in zip(edges, edges[1:], counts)],
        numeric={1, 2},
        digits=3,
    )
    return Figure(key="residuals", title="Residuals", alt=alt, png=_png(fig), table=table)


def card_figures(ev: dict[str, Any], workers: int | None = None) -> list[Figure]:
    """Every figure of the model card for the evaluation document `ev`, in page order.

    Args:
        ev: The evaluation document.
        workers: Processes that draw at once (default `CARD_WORKERS`).
            matplotlib spends its time laying out text in Python, so the charts are drawn in
            forked processes, not threads; 1 draws them here, one after another.
    """
    jobs: list[tuple[Any, tuple[Any, ...]]] = (
        [(residuals, (ev,))]
        if ev.get("task") == "regression" or "residuals" in ev
        else [(roc, (ev,)), (pr, (ev,)), (calibration, (ev,)), (confusion, (ev,))]
    )
    if ev.get("task") != "regression":
        jobs += [(fairness, (attr, rep)) for attr, rep in (ev.get("fairness") or {}).items()]
    jobs.append((importance, (ev.get("feature_importance") or {},)))
    return [f for f in _draw(jobs, workers) if f is not None]


def _draw(jobs: list[tuple[Any, tuple[Any, ...]]], workers: int | None) -> list[Figure | None]:
    import multiprocessing
    import os

    workers = workers if workers is not None else CARD_WORKERS
    n = min(len(jobs), workers if workers is not None else min(len(os.sched_getaffinity(0)), 4))
    if n < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(*args) for fn, args in jobs]
    from concurrent.futures import ProcessPoolExecutor

    # fork: the children have matplotlib and the data already; nothing is imported again.
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_call, jobs))


def _call(job: tuple[Any, tuple[Any, ...]]) -> Figure | None:
    fn, args = job
    return fn(*args)

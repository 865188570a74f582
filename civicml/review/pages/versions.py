"""A version's page (evidence, charts, the decision form) and the decision it posts.

A decision goes through `civicml.governance.approval.record_decision`, the code behind
`civicml approve`, so both obey the same rules (hash binding, separation of duties, two approvers
for borderline versions).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from civicml.catalog import LOWER_IS_BETTER_METRICS
from civicml.governance.approval import record_decision
from civicml.review import charts, views
from civicml.review.identity import Identity
from civicml.review.web import Console, Refused, form_with_csrf, get_console, signed_in
from civicml.storage.registry import RegistryError

# The form's decision -> what the person's role must allow (`Identity.may`).
ACTIONS = {"approved": "approve", "rejected": "reject"}

router = APIRouter()


@router.get("/versions/{version}")
def version(
    request: Request,
    version: str,
    done: str = "",
    console: Console = Depends(get_console),
    who: Identity = Depends(signed_in),
):
    """The evidence for one version and, when this person may decide, the decision form."""
    ctx = version_ctx(console, version, who)
    title = f"Version {version}"
    done_text = done and _done_text(ctx["v"])
    return console.page(request, "version.html.j2", who=who, title=title, error=None, done=done_text, **ctx)


@router.post("/versions/{version}/decision")
async def decide(
    request: Request, version: str, console: Console = Depends(get_console), who: Identity = Depends(signed_in)
):
    """Record an approval or rejection; a refused one is shown on the version page with the reason."""
    form = await form_with_csrf(request)
    decision = _chosen(form)
    error, status = None, 400
    if decision is None:
        error = "Choose Approve or Reject."
    elif not who.may(ACTIONS[decision]):
        raise Refused(
            403,
            "Not allowed",
            f"Your role ({who.role}) may not {ACTIONS[decision]} versions.",
            "Approvers are listed under review.approvers in the config.",
        )
    elif not (form.get("reason") or "").strip():
        error = "Give a reason: it is recorded with your decision in the audit log."
    else:
        try:
            record_decision(
                console.registry,
                version,
                decision,
                who.user,
                who.role or "",
                form["reason"],
                expected_model_sha256=form.get("model_sha256") or "",
                expected_evaluation_sha256=form.get("evaluation_sha256") or "",
            )
        except RegistryError as err:  # ApprovalError included; record_decision audited the refusal
            error, status = str(err), 409
    if error:
        ctx = version_ctx(console, version, who)
        title = f"Version {version}"
        return console.page(request, "version.html.j2", status, who=who, title=title, error=error, done=None, **ctx)
    return RedirectResponse(f"{console.root}/versions/{version}?done=1#done", status_code=303)


def _chosen(form: dict[str, str]) -> Literal["approved", "rejected"] | None:
    """The decision the form names, or None when it names neither."""
    decision = form.get("decision", "")
    if decision == "approved":
        return "approved"
    if decision == "rejected":
        return "rejected"
    return None


def version_ctx(console: Console, version: str, who: Identity) -> dict[str, Any]:
    """What the version template shows: the page's data, fairness and metric charts with their alt text, the config."""
    try:
        v = views.version_page(console.registry, version, who)
    except RegistryError as err:
        raise Refused(404, "No such version", str(err)) from None
    fairness = [_fairness_chart(attr, rep) for attr, rep in v["fairness"].items()]
    for m in v["metrics"]:
        if m["name"] in LOWER_IS_BETTER_METRICS:
            m["name"] = f"{m['name']} (lower is better)"
    perf = charts.intervals(v["metrics"], "Metrics with 95% confidence intervals (0 to 1 scale)")
    perf_alt = (
        "Dot and interval chart: "
        + "; ".join(
            f"{m['name']} {m['value']:.3f}"
            + (f" (95% CI {m['low']:.3f} to {m['high']:.3f})" if m["low"] is not None else "")
            for m in v["metrics"]
            if isinstance(m["value"], (int, float)) and 0 <= m["value"] <= 1
        )
        + ". The same numbers are in the table below."
    )
    config_json = json.dumps(v["lineage"].get("config", {}), indent=2, sort_keys=True)
    return {"v": v, "fairness": fairness, "perf_chart": perf, "perf_alt": perf_alt, "config_json": config_json}


def _fairness_chart(attr: str, rep: dict[str, Any]) -> dict[str, Any]:
    """One sensitive attribute's selection-rate chart, its alt text and the intervals of its two ratios."""
    items = [(g, row.get("selection_rate")) for g, row in rep.get("groups", {}).items()]
    shown = ", ".join(f"{g} {r:.2f}" for g, r in items if r is not None)
    hidden = ", ".join(g for g, r in items if r is None)
    alt = f"Bar chart of the share of cases flagged for each {attr} group: {shown}."
    if hidden:
        alt += f" Not drawn (suppressed small groups): {hidden}."
    cis = rep.get("confidence_intervals") or {}
    return {
        "attr": attr,
        "rep": rep,
        "alt": alt,
        "chart": charts.bars(items, f"Selection rate by {attr} (share of cases flagged)"),
        "ci_dpr": cis.get("demographic_parity_ratio"),
        "ci_eod": cis.get("equalized_odds_difference"),
    }


def _done_text(v: dict[str, Any]) -> str:
    if v["decision"]:
        d = v["decision"]
        return f"Recorded: {d['decision']} by {d['by']}, bound to model {d['model_sha256'][:16]}…. " + (
            "An operator deploys it with `civicml deploy`." if d["decision"] == "approved" else ""
        )
    if v["signoffs"]:
        s = v["signoffs"][-1]
        return f"Recorded: approval {s['n']} of {s['needed']} by {s['by']}. Another person must approve it too."
    return "Recorded."

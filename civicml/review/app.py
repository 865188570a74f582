"""The reviewer console: server-rendered pages over the registry and the audit log.

Pages (GET never changes anything): `/` dashboard, `/versions/{v}` evidence and decision form,
`/versions/{v}/model-card`, `/versions/{v}/transparency[.json|.md]`, `/audit`. State changes are POSTs
carrying the session's CSRF token: `/login`, `/logout`, `/versions/{v}/decision`. A decision goes
through `civicml.governance.approval.record_decision`, the code behind `civicml approve`, so both
obey the same rules (hash binding, separation of duties, two approvers for borderline versions).
The console records decisions only; deploying an approved version stays with the pipeline or
`civicml deploy` (the console's credentials cannot move aliases or touch the cluster).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from civicml.catalog import LOWER_IS_BETTER_METRICS
from civicml.config import RunConfig
from civicml.governance.approval import record_decision
from civicml.reporting.render import STATIC_DIR, render
from civicml.reporting.transparency import build_record, render_record
from civicml.review import charts, views
from civicml.review.identity import Identity, from_headers, identify, new_token, token_ok
from civicml.storage.registry import RegistryError

# Pages are ours: no inline script or style, no framing. The stored model card is sandboxed separately.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
CARD_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"


@dataclass
class ConsoleSettings:
    """What the app needs besides the config: the sign-in token and the session-signing secret."""

    login_token: str = field(default_factory=new_token)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class Refused(Exception):
    """A request the console refuses, rendered as a page with `status`."""

    def __init__(self, status: int, title: str, message: str, hint: str = ""):
        super().__init__(message)
        self.status, self.title, self.message, self.hint = status, title, message, hint


def create_app(cfg: RunConfig, registry, settings: ConsoleSettings | None = None) -> FastAPI:
    """The console app over `registry`, with roles and identity from `cfg.review`."""
    settings = settings or ConsoleSettings()
    review = cfg.review
    root = review.path_prefix  # the gateway strips it; links and redirects must carry it
    app = FastAPI(title="civicml review", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret,
        session_cookie="civicml_review",
        max_age=review.session_minutes * 60,
        same_site="strict",
        https_only=review.behind_gateway,
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def csrf(request: Request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    def page(request: Request, template: str, status: int = 200, who: Identity | None = None, **ctx: Any):
        html = render(
            f"review/{template}",
            who=who,
            csrf=csrf(request),
            behind_gateway=review.behind_gateway,
            root=root,
            labels=views.STATUS_LABELS,
            nav=ctx.pop("nav", None),
            **ctx,
        )
        return HTMLResponse(html, status_code=status)

    def current(request: Request) -> Identity:
        if review.behind_gateway:
            who = from_headers(review, dict(request.headers))
            if who is None:
                raise Refused(
                    401,
                    "Not signed in",
                    f"The console expects the gateway to name you in the {review.user_header!r} header; "
                    "this request did not have it.",
                    "Open the console through the Kubeflow dashboard, not its service address.",
                )
            if request.session.get("user") != who.user:  # a different person: never share a CSRF token
                request.session.clear()
                request.session["user"] = who.user
        else:
            user, issued = request.session.get("user"), request.session.get("issued", 0)
            if not user:
                raise Refused(303, "", "/login")
            if time.time() - issued > review.session_minutes * 60:
                request.session.clear()
                raise Refused(303, "", "/login?expired=1")
            who = identify(review, user)
        if who.role is None:
            raise Refused(
                403,
                "No access",
                f"{who.user} is not listed as a viewer, reviewer or approver of this console.",
                "Ask the platform team to add you under review.viewers, review.reviewers or review.approvers.",
            )
        return who

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused):
        if exc.status == 303:
            return RedirectResponse(root + exc.message, status_code=303)
        return page(
            request,
            "message.html.j2",
            exc.status,
            title=exc.title,
            message=exc.message,
            hint=exc.hint,
            kind="bad",
            back=f"{root}/",
            back_text="Go to the dashboard",
        )

    async def form_with_csrf(request: Request) -> dict[str, str]:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        expected = request.session.get("csrf")
        if not expected or not token_ok(expected, form.get("csrf_token")):
            raise Refused(
                403,
                "Form refused",
                "This form did not carry this session's security token, so nothing was changed.",
                "If you submitted it yourself, your session may have expired: reload the page and try again.",
            )
        return form

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/login")
    def login_form(request: Request, expired: int = 0):
        if review.behind_gateway:
            return RedirectResponse(f"{root}/", status_code=303)
        return page(request, "login.html.j2", title="Sign in", error=None, expired=bool(expired), name="")

    @app.post("/login")
    async def login(request: Request):
        if review.behind_gateway:
            raise Refused(404, "Not here", "Sign-in happens at the gateway.")
        form = await form_with_csrf(request)
        name = (form.get("name") or "").strip()
        if not name or not token_ok(settings.login_token, form.get("token")):
            error = "Enter your name." if not name else "That sign-in token is not the one this console printed."
            return page(request, "login.html.j2", 401, title="Sign in", error=error, expired=False, name=name)
        request.session.clear()  # a fresh session (and CSRF token) for each sign-in
        request.session.update(user=name, issued=time.time(), csrf=secrets.token_urlsafe(32))
        return RedirectResponse(f"{root}/", status_code=303)

    @app.post("/logout")
    async def logout(request: Request):
        await form_with_csrf(request)
        request.session.clear()
        return RedirectResponse(f"{root}/login" if not review.behind_gateway else f"{root}/", status_code=303)

    @app.get("/")
    def dashboard(request: Request):
        who = current(request)
        return page(
            request, "dashboard.html.j2", who=who, title="Dashboard", nav="dashboard", d=views.dashboard(registry, who)
        )

    def version_ctx(version: str, who: Identity) -> dict[str, Any]:
        try:
            v = views.version_page(registry, version, who)
        except RegistryError as err:
            raise Refused(404, "No such version", str(err)) from None
        fairness = []
        for attr, rep in v["fairness"].items():
            items = [(g, row.get("selection_rate")) for g, row in rep.get("groups", {}).items()]
            shown = ", ".join(f"{g} {r:.2f}" for g, r in items if r is not None)
            hidden = ", ".join(g for g, r in items if r is None)
            alt = f"Bar chart of the share of cases flagged for each {attr} group: {shown}."
            if hidden:
                alt += f" Not drawn (suppressed small groups): {hidden}."
            cis = rep.get("confidence_intervals") or {}
            fairness.append(
                {
                    "attr": attr,
                    "rep": rep,
                    "alt": alt,
                    "chart": charts.bars(items, f"Selection rate by {attr} (share of cases flagged)"),
                    "ci_dpr": cis.get("demographic_parity_ratio"),
                    "ci_eod": cis.get("equalized_odds_difference"),
                }
            )
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

    @app.get("/versions/{version}")
    def version(request: Request, version: str, done: str = ""):
        who = current(request)
        ctx = version_ctx(version, who)
        return page(
            request,
            "version.html.j2",
            who=who,
            title=f"Version {version}",
            error=None,
            done=done and _done_text(ctx["v"]),
            **ctx,
        )

    @app.post("/versions/{version}/decision")
    async def decide(request: Request, version: str):
        who = current(request)
        form = await form_with_csrf(request)
        decision = form.get("decision", "")
        action = {"approved": "approve", "rejected": "reject"}.get(decision)
        error, status = None, 400
        if action is None:
            error = "Choose Approve or Reject."
        elif not who.may(action):
            raise Refused(
                403,
                "Not allowed",
                f"Your role ({who.role}) may not {action} versions.",
                "Approvers are listed under review.approvers in the config.",
            )
        elif not (form.get("reason") or "").strip():
            error = "Give a reason: it is recorded with your decision in the audit log."
        else:
            try:
                record_decision(
                    registry,
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
            ctx = version_ctx(version, who)
            return page(
                request,
                "version.html.j2",
                status,
                who=who,
                title=f"Version {version}",
                error=error,
                done=None,
                **ctx,
            )
        return RedirectResponse(f"{root}/versions/{version}?done=1#done", status_code=303)

    @app.get("/versions/{version}/model-card")
    def model_card(request: Request, version: str):
        current(request)
        try:
            body = registry.read_artifact(version, "model_card.html")
        except RegistryError as err:
            raise Refused(404, "No model card", str(err)) from None
        return Response(body, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": CARD_CSP})

    def record(version: str):
        try:
            return build_record(registry, version, cfg)
        except RegistryError as err:
            raise Refused(404, "No such version", str(err)) from None

    @app.get("/versions/{version}/transparency")
    def transparency(request: Request, version: str):
        who = current(request)
        return page(
            request, "transparency.html.j2", who=who, title=f"Transparency record {version}", rec=record(version)
        )

    @app.get("/versions/{version}/transparency.json")
    def transparency_json(request: Request, version: str):
        current(request)
        return Response(render_record(record(version), "json"), media_type="application/json")

    @app.get("/versions/{version}/transparency.md")
    def transparency_md(request: Request, version: str):
        current(request)
        return PlainTextResponse(render_record(record(version), "md"), media_type="text/markdown; charset=utf-8")

    @app.get("/audit")
    def audit(request: Request, version: str = "", event: str = ""):
        who = current(request)
        return page(
            request,
            "audit.html.j2",
            who=who,
            title="Audit log",
            nav="audit",
            a=views.audit_page(registry, version, event),
        )

    return app


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

"""The reviewer console: server-rendered pages over the registry and the audit log.

Pages (GET never changes anything): `/` dashboard, `/versions/{v}` evidence and decision form,
`/versions/{v}/model-card`, `/versions/{v}/transparency[.json|.md]`, `/audit`. State changes are POSTs
carrying the session's CSRF token: `/login`, `/logout`, `/versions/{v}/decision`. A decision goes
through `civicml.governance.approval.record_decision`, the code behind `civicml approve`, so both
obey the same rules (hash binding, separation of duties, two approvers for borderline versions).
The console records decisions only; deploying an approved version stays with the pipeline or
`civicml deploy` (the console's credentials cannot move aliases or touch the cluster).

`create_app` wires the session, the security headers and the refusal page around the routers of
`civicml.review.pages` (one per page family); the routers share `civicml.review.web`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from civicml.config import RunConfig
from civicml.reporting.render import STATIC_DIR
from civicml.review.pages import overview, records, session, versions
from civicml.review.web import Console, ConsoleSettings, Refused
from civicml.storage.registry import Registry

__all__ = ["CSP", "ConsoleSettings", "create_app"]

# Pages are ours: no inline script or style, no framing. The stored model card is sandboxed separately.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def create_app(cfg: RunConfig, registry: Registry, settings: ConsoleSettings | None = None) -> FastAPI:
    """The console app over `registry`, with roles and identity from `cfg.review`."""
    settings = settings or ConsoleSettings()
    review = cfg.review
    app = FastAPI(title="civicml review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = Console(cfg, registry, settings)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret,
        session_cookie="civicml_review",
        max_age=review.session_minutes * 60,
        same_site="strict",
        https_only=review.behind_gateway,
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.middleware("http")(_security_headers)
    app.add_exception_handler(Refused, _refused)  # type: ignore[arg-type]
    for page_family in (session, overview, versions, records):
        app.include_router(page_family.router)
    return app


async def _security_headers(request: Request, call_next):
    response = await call_next(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _refused(request: Request, exc: Refused):
    """The refusal page (or, for 303, the redirect to where the person should go)."""
    console: Console = request.app.state.console
    if exc.status == 303:
        return RedirectResponse(console.root + exc.message, status_code=303)
    return console.page(
        request,
        "message.html.j2",
        exc.status,
        title=exc.title,
        message=exc.message,
        hint=exc.hint,
        kind="bad",
        back=f"{console.root}/",
        back_text="Go to the dashboard",
    )

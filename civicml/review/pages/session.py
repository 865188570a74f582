"""Signing in and out (locally: a name and the printed token; behind the gateway: the gateway's header)."""

from __future__ import annotations

import secrets
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, RedirectResponse

from civicml.review.identity import token_ok
from civicml.review.web import Console, Refused, form_with_csrf, get_console

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
def healthz() -> PlainTextResponse:
    """Liveness for the Deployment's probes."""
    return PlainTextResponse("ok")


@router.get("/login")
def login_form(request: Request, expired: int = 0, console: Console = Depends(get_console)):
    """The sign-in form (behind the gateway: the dashboard, the gateway signed the person in)."""
    if console.review.behind_gateway:
        return RedirectResponse(f"{console.root}/", status_code=303)
    return console.page(request, "login.html.j2", title="Sign in", error=None, expired=bool(expired), name="")


@router.post("/login")
async def login(request: Request, console: Console = Depends(get_console)):
    """Sign in with a name and the console's token; a fresh session (and CSRF token) each time."""
    if console.review.behind_gateway:
        raise Refused(404, "Not here", "Sign-in happens at the gateway.")
    form = await form_with_csrf(request)
    name = (form.get("name") or "").strip()
    if not name or not token_ok(console.settings.login_token, form.get("token")):
        error = "Enter your name." if not name else "That sign-in token is not the one this console printed."
        return console.page(request, "login.html.j2", 401, title="Sign in", error=error, expired=False, name=name)
    request.session.clear()
    request.session.update(user=name, issued=time.time(), csrf=secrets.token_urlsafe(32))
    return RedirectResponse(f"{console.root}/", status_code=303)


@router.post("/logout")
async def logout(request: Request, console: Console = Depends(get_console)):
    """End the session (behind the gateway the gateway's own session stays)."""
    await form_with_csrf(request)
    request.session.clear()
    root = console.root
    return RedirectResponse(f"{root}/login" if not console.review.behind_gateway else f"{root}/", status_code=303)

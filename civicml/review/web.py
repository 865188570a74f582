"""What every console page shares: the console object, the signed-in person, pages, CSRF-checked forms.

The routers in `civicml.review.pages` take these as FastAPI dependencies: `get_console` (the
`Console` the app was built with) and `signed_in` (the person making the request, or a `Refused`
page). GET never changes anything; a form is read through `form_with_csrf`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from civicml.config import ReviewConfig, RunConfig
from civicml.reporting.render import render
from civicml.review import views
from civicml.review.identity import Identity, from_headers, identify, new_token, token_ok
from civicml.storage.registry import Registry


@dataclass
class ConsoleSettings:
    """What the app needs besides the config: the sign-in token and the session-signing secret."""

    login_token: str = field(default_factory=new_token)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class Refused(Exception):
    """A request the console refuses, rendered as a page with `status` (303: a redirect to `message`)."""

    def __init__(self, status: int, title: str, message: str, hint: str = ""):
        super().__init__(message)
        self.status, self.title, self.message, self.hint = status, title, message, hint


@dataclass
class Console:
    """The console's config, registry and secrets; `root` is the gateway's path prefix, carried by links."""

    cfg: RunConfig
    registry: Registry
    settings: ConsoleSettings

    @property
    def review(self) -> ReviewConfig:
        """The `review` section of the config."""
        return self.cfg.review

    @property
    def root(self) -> str:
        """The path prefix the gateway strips: links and redirects must carry it."""
        return self.cfg.review.path_prefix

    def page(self, request: Request, template: str, status: int = 200, who: Identity | None = None, **ctx: Any):
        """A console page rendered from `review/<template>`, with the session's CSRF token."""
        html = render(
            f"review/{template}",
            who=who,
            csrf=csrf(request),
            behind_gateway=self.review.behind_gateway,
            root=self.root,
            labels=views.STATUS_LABELS,
            nav=ctx.pop("nav", None),
            **ctx,
        )
        return HTMLResponse(html, status_code=status)


def get_console(request: Request) -> Console:
    """The `Console` this app was built with (a dependency)."""
    return request.app.state.console


def csrf(request: Request) -> str:
    """This session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def signed_in(request: Request, console: Console = Depends(get_console)) -> Identity:
    """The person making the request (a dependency).

    Raises:
        Refused: not signed in (a redirect to the sign-in page, or 401 behind the gateway), the
            session expired, or the config gives the person no role (403).
    """
    review = console.review
    who = _gateway_user(request, console) if review.behind_gateway else _session_user(request, console)
    if who.role is None:
        raise Refused(
            403,
            "No access",
            f"{who.user} is not listed as a viewer, reviewer or approver of this console.",
            "Ask the platform team to add you under review.viewers, review.reviewers or review.approvers.",
        )
    return who


def _gateway_user(request: Request, console: Console) -> Identity:
    review = console.review
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
    return who


def _session_user(request: Request, console: Console) -> Identity:
    review = console.review
    user, issued = request.session.get("user"), request.session.get("issued", 0)
    if not user:
        raise Refused(303, "", "/login")
    if time.time() - issued > review.session_minutes * 60:
        request.session.clear()
        raise Refused(303, "", "/login?expired=1")
    return identify(review, user)


async def form_with_csrf(request: Request) -> dict[str, str]:
    """The posted form's text fields, if it carries this session's CSRF token.

    Raises:
        Refused: 403 when the token is missing or wrong; nothing is changed.
    """
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

"""The dashboard and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from civicml.review import views
from civicml.review.identity import Identity
from civicml.review.web import Console, get_console, signed_in

router = APIRouter()


@router.get("/")
def dashboard(request: Request, console: Console = Depends(get_console), who: Identity = Depends(signed_in)):
    """Versions, what waits for this person, the A/B split and the last drift decision."""
    d = views.dashboard(console.registry, who)
    return console.page(request, "dashboard.html.j2", who=who, title="Dashboard", nav="dashboard", d=d)


@router.get("/audit")
def audit(
    request: Request,
    version: str = "",
    event: str = "",
    console: Console = Depends(get_console),
    who: Identity = Depends(signed_in),
):
    """The audit chain's check and this project's records, filtered by version and event."""
    a = views.audit_page(console.registry, version, event)
    return console.page(request, "audit.html.j2", who=who, title="Audit log", nav="audit", a=a)

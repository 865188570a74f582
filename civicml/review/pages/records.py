"""A version's published documents: the stored model card and the transparency record (HTML, JSON, Markdown)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response

from civicml.reporting.transparency import TransparencyRecord, build_record, render_record
from civicml.review.identity import Identity
from civicml.review.web import Console, Refused, get_console, signed_in
from civicml.storage.registry import RegistryError

# The stored model card is sandboxed: its inline styles run in no origin of ours.
CARD_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"

router = APIRouter()


@router.get("/versions/{version}/model-card")
def model_card(version: str, console: Console = Depends(get_console), who: Identity = Depends(signed_in)):
    """The model card stored with the version, as it was written."""
    try:
        body = console.registry.read_artifact(version, "model_card.html")
    except RegistryError as err:
        raise Refused(404, "No model card", str(err)) from None
    return Response(body, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": CARD_CSP})


def _record(console: Console, version: str) -> TransparencyRecord:
    try:
        return build_record(console.registry, version, console.cfg)
    except RegistryError as err:
        raise Refused(404, "No such version", str(err)) from None


@router.get("/versions/{version}/transparency")
def transparency(
    request: Request, version: str, console: Console = Depends(get_console), who: Identity = Depends(signed_in)
):
    """The transparency record as a page."""
    rec = _record(console, version)
    return console.page(request, "transparency.html.j2", who=who, title=f"Transparency record {version}", rec=rec)


@router.get("/versions/{version}/transparency.json")
def transparency_json(version: str, console: Console = Depends(get_console), who: Identity = Depends(signed_in)):
    """The transparency record as JSON."""
    return Response(render_record(_record(console, version), "json"), media_type="application/json")


@router.get("/versions/{version}/transparency.md")
def transparency_md(version: str, console: Console = Depends(get_console), who: Identity = Depends(signed_in)):
    """The transparency record as Markdown."""
    return PlainTextResponse(render_record(_record(console, version), "md"), media_type="text/markdown; charset=utf-8")

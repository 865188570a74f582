"""Strict HTML checks shared by the report tests (model card, drift, A/B, trials).

`parse_strict` uses html5lib (the WHATWG parsing algorithm) with `strict=True`: any parse error,
such as `<table class=" class="num"">` (a quote inside an attribute name, no space between
attributes), raises instead of being repaired silently as a lenient parser does.
`check_structure` then checks what a reader relies on: one h1 and no skipped heading level, every
table with a caption and a header row of column headers, every image with alt text that is a
sentence and a data table beside it, and no attribute outside the small set the reports use.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element

import html5lib

# Every attribute the reports write; anything else (e.g. `num""` from a broken class) is stray.
ALLOWED_ATTRIBUTES = {
    "html": {"lang"},
    "meta": {"charset", "name", "content"},
    "a": {"class", "href"},
    "img": {"src", "alt", "width", "height"},
    "th": {"scope", "class"},
    "td": {"class"},
    "table": {"class"},
    "section": {"aria-labelledby", "aria-label"},
    "p": {"class"},
    "figure": {"id"},
    "main": {"id"},
}
GLOBAL_ATTRIBUTES = {"id"}
CLASS_VALUE = re.compile(r"[a-z][a-z0-9_-]*( [a-z][a-z0-9_-]*)*")


class StructureError(AssertionError):
    """The page parses but breaks a structural rule."""


def parse_strict(page: str) -> Element:
    """Parse `page` with html5lib in strict mode; raises html5lib's ParseError on any parse error."""
    parser = html5lib.HTMLParser(tree=html5lib.getTreeBuilder("etree"), strict=True, namespaceHTMLElements=False)
    return parser.parse(page)


def _text(el: Element) -> str:
    return "".join(el.itertext()).strip()


def _check_attributes(root: Element) -> None:
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        allowed = ALLOWED_ATTRIBUTES.get(el.tag, set()) | GLOBAL_ATTRIBUTES
        stray = set(el.attrib) - allowed
        if stray:
            raise StructureError(f"<{el.tag}> has stray attribute(s) {sorted(stray)}: {el.attrib}")
        if "class" in el.attrib and not CLASS_VALUE.fullmatch(el.attrib["class"]):
            raise StructureError(f"<{el.tag}> has a malformed class {el.attrib['class']!r}")


def _check_headings(root: Element) -> list[tuple[int, str]]:
    heads = [
        (int(el.tag[1]), _text(el)) for el in root.iter() if isinstance(el.tag, str) and re.fullmatch(r"h[1-6]", el.tag)
    ]
    levels = [h for h, _ in heads]
    if levels.count(1) != 1 or levels[0] != 1:
        raise StructureError(f"a page needs exactly one h1, first: {heads}")
    for (a, ta), (b, tb) in zip(heads, heads[1:]):
        if b - a > 1:
            raise StructureError(f"heading level skips from h{a} {ta!r} to h{b} {tb!r}")
    return heads


def _check_table(table: Element) -> None:
    caption = table.find("caption")
    if caption is None or not _text(caption):
        raise StructureError("a table without a caption")
    header = table.find("thead/tr")
    if header is None:
        raise StructureError(f"table {_text(caption)!r} has no header row")
    cells = list(header)
    if not cells or any(c.tag != "th" or c.get("scope") != "col" for c in cells):
        raise StructureError(f"table {_text(caption)!r}: the header row must be <th scope=col> cells")
    if any(not _text(c) for c in cells):
        raise StructureError(f"table {_text(caption)!r}: a column header is empty")
    width = len(cells)
    for tr in table.findall("tbody/tr"):
        if len(tr) != width:
            raise StructureError(f"table {_text(caption)!r}: a row has {len(tr)} cells, the header {width}")
        for th in tr.findall("th"):
            if th.get("scope") != "row":
                raise StructureError(f"table {_text(caption)!r}: a row header without scope=row")


def _check_image(img: Element, figure: Element | None) -> None:
    alt = img.get("alt") or ""
    if not img.get("src", "").startswith("data:image/png;base64,"):
        raise StructureError(f"image not inlined as PNG: {img.get('src', '')[:40]}")
    if len(alt) < 40 or not alt.endswith(".") or not alt[0].isupper():
        raise StructureError(f"alt text is not a sentence: {alt!r}")
    if re.search(r"\[|\]|\{|'[^']*',", alt):
        raise StructureError(f"alt text looks like a Python repr: {alt!r}")
    if not re.search(r"\d", alt):
        raise StructureError(f"alt text states no number: {alt!r}")
    if figure is None or figure.find(".//table") is None:
        raise StructureError(f"image without a data table beside it (inside its <figure>): {alt[:60]!r}")


def check_structure(page: str) -> dict:
    """Parse strictly and check structure; returns headings, tables, images and text for further asserts."""
    root = parse_strict(page)
    if root.get("lang") not in ("en", "en-GB"):
        raise StructureError("<html> needs lang")
    _check_attributes(root)
    heads = _check_headings(root)
    tables = list(root.iter("table"))
    for t in tables:
        _check_table(t)
    parent = {c: p for p in root.iter() for c in p}
    images = list(root.iter("img"))
    for img in images:
        fig = img
        while fig is not None and fig.tag != "figure":
            fig = parent.get(fig)
        _check_image(img, fig)
    return {
        "root": root,
        "headings": heads,
        "tables": {_text(t.find("caption")): t for t in tables},
        "images": images,
        "text": " ".join(_text(root).split()),
    }

"""The review console in headless Chromium (Debian's `chromium` package driven by Playwright).

Every scenario is done with the keyboard alone (Tab, Space, Enter, typing): a reviewer signs in,
finds the pending version, reads the evidence, approves with a reason, and the audit page shows the
approval bound to the model hash; a viewer gets no form; the person who ran the training is refused;
a forged POST without the CSRF token is refused. axe-core (WCAG 2.1 A and AA rules, plus axe's best
practices) reports 0 violations on every page.

If Chromium cannot start, these tests FAIL saying why (the Makefile installs it with apt-get).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from review_support import CHAMPION, GATE_REJECTED, PENDING, TRAINER, built_store, copy_store, tree_digest
from support import free_port

from civicml.config import load_config
from civicml.governance.approval import get_decision
from civicml.review.app import ConsoleSettings, create_app
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

CHROMIUM = os.environ.get("CIVICML_CHROMIUM", "/usr/bin/chromium")
TOKEN = "browser-test-token"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
ROLES = {
    "review.approvers": ["Rita Reviewer", TRAINER],
    "review.viewers": ["Vic Viewer"],
}


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:  # pragma: no cover - the dev extra installs it
        pytest.fail(f"playwright is not installed ({err}); run `make .venv/.installed`")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `apt-get install -y chromium` (make test does it)")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except Exception as err:  # noqa: BLE001 - any launch failure must fail the run with its reason
            pytest.fail(f"Chromium at {CHROMIUM} did not start: {err}")
        yield b
        b.close()


@pytest.fixture
def console(tmp_path_factory, tmp_path):
    """A console on a real port over a private copy of the store; yields (base_url, store path)."""
    import uvicorn

    store = copy_store(built_store(tmp_path_factory), tmp_path / "store")
    cfg = load_config(None, ROLES)
    app = create_app(cfg, Registry(LocalStore(store)), ConsoleSettings(login_token=TOKEN))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"the review console did not start on port {port}")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", store
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    yield pg
    context.close()


def axe_violations(pg) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(pg, options={"runOnly": {"type": "tag", "values": AXE_TAGS}})
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]


def assert_accessible(pg) -> None:
    found = axe_violations(pg)
    assert found == [], f"axe-core violations on {pg.url}:\n" + "\n".join(found)


def focused(pg) -> str:
    return pg.evaluate(
        "() => { const e = document.activeElement; if (!e || e === document.body) return 'BODY'; "
        "return (e.tagName + ' ' + (e.id || '') + ' ' + (e.getAttribute('value') || '') + ' ' + "
        "(e.innerText || '')).trim(); }"
    )


def tab_to(pg, text: str, limit: int = 150) -> None:
    """Press Tab until the focused element's tag/id/value/text contains `text`."""
    for _ in range(limit):
        pg.keyboard.press("Tab")
        if text in focused(pg):
            return
    raise AssertionError(f"{text!r} is not reachable with the Tab key on {pg.url}")


def sign_in(pg, base: str, name: str) -> None:
    pg.goto(f"{base}/login")
    assert_accessible(pg)
    tab_to(pg, "INPUT name")
    pg.keyboard.type(name)
    pg.keyboard.press("Tab")
    pg.keyboard.type(TOKEN)
    pg.keyboard.press("Enter")
    pg.wait_for_url(f"{base}/")
    assert f"Signed in as {name}" in pg.inner_text("header")


def test_reviewer_finds_reads_and_approves_with_the_keyboard(page, console):
    base, store = console
    sign_in(page, base, "Rita Reviewer")
    assert_accessible(page)
    # Finds the pending version in "Waiting for you".
    assert PENDING in page.inner_text("section[aria-labelledby=waiting-h]")
    tab_to(page, f"Version {PENDING}")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/versions/{PENDING}")
    assert_accessible(page)
    # Reads the evidence: hashes, the gate's rules with thresholds and values, fairness, champion, lineage.
    model_sha = page.inner_text("#model-sha").strip()
    man = Registry(LocalStore(store)).manifest(PENDING)
    assert model_sha == man["model_sha256"]
    gate_rows = page.locator("section[aria-labelledby=gate] tbody tr")
    assert gate_rows.count() >= 2 and "roc_auc >= 0.6" in gate_rows.first.inner_text()
    assert "Suppressed small groups" in page.inner_text("section[aria-labelledby=fairness]")
    assert CHAMPION in page.inner_text("section[aria-labelledby=champion]")
    assert man["lineage"]["data_fingerprint"] in page.inner_text("section[aria-labelledby=lineage]")
    # Approves with a reason, keyboard only: Tab to the radio, Space, Tab to the reason, type, Enter on the button.
    tab_to(page, "INPUT  approved")
    page.keyboard.press("Space")
    assert page.is_checked("input[value=approved]")
    tab_to(page, "TEXTAREA reason")
    page.keyboard.type("Fairness by region and age reviewed with the policy team; small groups noted.")
    tab_to(page, "Record my decision")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/versions/{PENDING}?done=1#done")
    assert "Recorded: approved by Rita Reviewer" in page.inner_text("#done")
    assert_accessible(page)
    decision = get_decision(Registry(LocalStore(store)), PENDING)
    assert decision["by"] == "Rita Reviewer" and decision["model_sha256"] == model_sha
    # The audit page, filtered with the keyboard, shows the approval bound to the hash.
    tab_to(page, "Audit log")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/audit")
    assert "Intact" in page.inner_text("#verify")
    assert_accessible(page)
    tab_to(page, "SELECT f-version")
    page.keyboard.type(PENDING)  # a native select picks the typed option
    tab_to(page, "SELECT f-event")
    page.keyboard.type("approval_recorded")
    tab_to(page, "Show records")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/audit?version={PENDING}&event=approval_recorded")
    rows = page.locator("#records tbody tr")
    assert rows.count() == 1
    text = rows.first.inner_text()
    assert "approval_recorded" in text and "Rita Reviewer" in text and model_sha in text
    assert "Fairness by region and age reviewed" in text
    assert_accessible(page)
    # Signs out with the keyboard; the pages are closed again.
    tab_to(page, "Sign out")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/login")
    page.goto(f"{base}/versions/{PENDING}")
    assert page.url == f"{base}/login"


def test_viewer_is_refused_the_form(page, console):
    base, _ = console
    sign_in(page, base, "Vic Viewer")
    page.goto(f"{base}/versions/{PENDING}")
    assert page.locator("form.decide").count() == 0
    assert "may read this version but not decide" in page.inner_text("#refusal")
    assert_accessible(page)


def test_the_person_who_ran_the_training_is_refused(page, console):
    base, store = console
    sign_in(page, base, TRAINER)
    page.goto(f"{base}/versions/{PENDING}")
    assert page.locator("input[value=approved]").count() == 0
    assert "someone else must approve it" in page.inner_text("#starter-note")
    # Even a hand-made approval from their own session (with its CSRF token) is refused by the library.
    token = page.get_attribute("form.decide input[name=csrf_token]", "value")
    form = {
        "csrf_token": token,
        "decision": "approved",
        "reason": "my model",
        "model_sha256": page.inner_text("#model-sha").strip(),
        "evaluation_sha256": page.inner_text("#evaluation-sha").strip(),
    }
    r = page.request.post(f"{base}/versions/{PENDING}/decision", form=form)
    assert r.status == 409 and "separation of duties" in r.text()
    assert get_decision(Registry(LocalStore(store)), PENDING) is None


def test_forged_post_without_the_csrf_token_is_refused(page, console):
    base, store = console
    sign_in(page, base, "Rita Reviewer")
    page.goto(f"{base}/versions/{PENDING}")
    before = tree_digest(store)
    form = {"decision": "approved", "reason": "forged", "model_sha256": page.inner_text("#model-sha").strip()}
    r = page.request.post(f"{base}/versions/{PENDING}/decision", form=form)  # the session cookie goes along
    assert r.status == 403 and "security token" in r.text()
    assert tree_digest(store) == before


@pytest.mark.parametrize(
    "path",
    [
        "/",
        f"/versions/{PENDING}",
        f"/versions/{CHAMPION}",
        f"/versions/{GATE_REJECTED}",
        f"/versions/{PENDING}/transparency",
        f"/versions/{PENDING}/model-card",
        "/audit",
        f"/audit?version={PENDING}",
        "/versions/v-does-not-exist",
        "/login",
    ],
)
def test_axe_reports_no_violations(browser, console, path):
    base, _ = console
    # The stored model card is served with CSP `sandbox` (no script at all), so axe can only be
    # injected there with CSP bypassed; every console page is checked under its real CSP.
    context = browser.new_context(bypass_csp="model-card" in path)
    page = context.new_page()
    try:
        sign_in(page, base, "Rita Reviewer")
        page.goto(base + path)
        assert_accessible(page)
    finally:
        context.close()


def test_screenshots_of_the_dashboard_a_version_and_the_transparency_record(page, console, tmp_path):
    """Full-page screenshots; CIVICML_SCREENSHOTS=docs/screenshots writes the ones the docs show."""
    base, _ = console
    out = Path(os.environ.get("CIVICML_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    sign_in(page, base, "Rita Reviewer")
    for name, path in (
        ("dashboard", "/"),
        ("version", f"/versions/{PENDING}"),
        ("transparency", f"/versions/{PENDING}/transparency"),
    ):
        page.goto(base + path)
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        assert (out / f"{name}.png").stat().st_size > 20_000

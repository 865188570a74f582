"""The review console over HTTP (FastAPI's TestClient): identity, roles, CSRF, no change on GET, decisions.

The browser tests (tests/integration/test_review_browser.py) drive the same pages in Chromium.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from fastapi.testclient import TestClient
from review_support import CHAMPION, GATE_REJECTED, PENDING, TRAINER, built_store, copy_store, tree_digest

from civicml.config import load_config
from civicml.governance.approval import effective_status, get_decision
from civicml.governance.audit import AuditLog
from civicml.review.app import ConsoleSettings, create_app
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

TOKEN = "test-token-123"
ROLES = {
    "review.approvers": ["Rita Reviewer", TRAINER, "group:model-approvers"],
    "review.reviewers": ["Rex Reader"],
    "review.viewers": ["Vic Viewer"],
}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return built_store(tmp_path_factory)


@pytest.fixture
def store(source, tmp_path):
    return copy_store(source, tmp_path / "store")


def _client(store, **overrides) -> TestClient:
    cfg = load_config(None, {**ROLES, **overrides})
    app = create_app(cfg, Registry(LocalStore(store)), ConsoleSettings(login_token=TOKEN, secret="s" * 32))
    # Behind the gateway the browser talks https to the gateway, and the session cookie is Secure.
    return TestClient(app, base_url="https://testserver" if cfg.review.behind_gateway else "http://testserver")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _login(client: TestClient, name: str) -> None:
    page = client.get("/login")
    r = client.post("/login", data={"name": name, "token": TOKEN, "csrf_token": _csrf(page.text)})
    assert r.status_code == 200 and f"Signed in as <strong>{name}</strong>" in r.text, r.text[:500]


def _decide(client, version, decision, reason, **extra):
    page = client.get(f"/versions/{version}")
    form = {
        "csrf_token": _csrf(page.text),
        "decision": decision,
        "reason": reason,
        "model_sha256": re.search(r'name="model_sha256" value="([^"]+)"', page.text).group(1),
        "evaluation_sha256": re.search(r'name="evaluation_sha256" value="([^"]+)"', page.text).group(1),
        **extra,
    }
    return client.post(f"/versions/{version}/decision", data=form, follow_redirects=True)


def test_local_sign_in_needs_the_printed_token(store):
    client = _client(store)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    page = client.get("/login")
    bad = client.post("/login", data={"name": "Rita Reviewer", "token": "guess", "csrf_token": _csrf(page.text)})
    assert bad.status_code == 401 and "not the one this console printed" in bad.text
    assert client.get("/", follow_redirects=False).status_code == 303
    _login(client, "Rita Reviewer")
    assert "Waiting for you" in client.get("/").text


def test_session_expires(store, monkeypatch):
    client = _client(store, **{"review.session_minutes": 1})
    _login(client, "Rita Reviewer")
    assert client.get("/").status_code == 200
    real = time.time
    # The console's own clock: the session's sign-in time is checked on every request.
    import civicml.review.web as console

    monkeypatch.setattr(console, "time", type("Clock", (), {"time": staticmethod(lambda: real() + 61)}))
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?expired=1"
    assert "Your session expired" in client.get("/login?expired=1").text
    # The signed cookie expires too (itsdangerous checks its timestamp), whatever the page does.
    monkeypatch.undo()
    _login(client, "Rita Reviewer")
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_no_page_changes_the_store(store):
    client = _client(store)
    _login(client, "Rita Reviewer")
    before = tree_digest(store)
    for path in (
        "/",
        f"/versions/{PENDING}",
        f"/versions/{CHAMPION}",
        f"/versions/{GATE_REJECTED}",
        f"/versions/{PENDING}/model-card",
        f"/versions/{PENDING}/transparency",
        f"/versions/{PENDING}/transparency.json",
        f"/versions/{PENDING}/transparency.md",
        "/audit",
        f"/audit?version={PENDING}&event=gate_decided",
        f"/versions/{PENDING}/decision?decision=approved&reason=x",  # a GET to the form target does nothing
    ):
        r = client.get(path)
        assert r.status_code in (200, 405), (path, r.status_code)
    assert tree_digest(store) == before


def test_forged_post_without_csrf_token_is_refused_and_changes_nothing(store):
    client = _client(store)
    _login(client, "Rita Reviewer")
    before = tree_digest(store)
    page = client.get(f"/versions/{PENDING}").text
    sha = re.search(r'name="model_sha256" value="([^"]+)"', page).group(1)
    for token in (None, "forged-token"):
        data = {"decision": "approved", "reason": "looks fine", "model_sha256": sha}
        if token:
            data["csrf_token"] = token
        r = client.post(f"/versions/{PENDING}/decision", data=data)
        assert r.status_code == 403 and "security token" in r.text
    # Another browser (no session at all) posting the form is refused the same way.
    r = _client(store).post(
        f"/versions/{PENDING}/decision", data={"decision": "approved", "reason": "x"}, follow_redirects=False
    )
    assert r.status_code in (303, 403)
    assert tree_digest(store) == before


def test_viewer_is_refused_the_form_and_the_post(store):
    client = _client(store)
    _login(client, "Vic Viewer")
    page = client.get(f"/versions/{PENDING}").text
    assert 'action="/versions/' not in page and "may read this version but not decide" in page
    csrf = _csrf(page)
    r = client.post(f"/versions/{PENDING}/decision", data={"csrf_token": csrf, "decision": "approved", "reason": "x"})
    assert r.status_code == 403 and "may not approve" in r.text
    assert get_decision(Registry(LocalStore(store)), PENDING) is None


def test_reviewer_may_reject_but_not_approve(store):
    client = _client(store)
    _login(client, "Rex Reader")
    page = client.get(f"/versions/{PENDING}").text
    assert 'value="rejected"' in page and 'value="approved"' not in page
    assert _decide(client, PENDING, "approved", "ok").status_code == 403
    r = _decide(client, PENDING, "rejected", "region groups too small to judge")
    assert r.status_code == 200 and "Recorded: rejected by Rex Reader" in r.text
    assert effective_status(Registry(LocalStore(store)), PENDING) == "rejected"


def test_the_person_who_ran_the_training_is_refused(store):
    client = _client(store)
    _login(client, TRAINER)
    page = client.get(f"/versions/{PENDING}").text
    assert 'value="approved"' not in page and "someone else must approve it" in page
    r = _decide(client, PENDING, "approved", "my own model is fine")
    assert r.status_code == 409 and "separation of duties" in r.text
    registry = Registry(LocalStore(store))
    assert get_decision(registry, PENDING) is None
    last = AuditLog(registry.store).records()[-1]
    assert last["event"] == "approval_refused" and last["actor"] == TRAINER


def test_approval_is_bound_to_the_hashes_on_the_page_and_audited(store):
    client = _client(store)
    _login(client, "Rita Reviewer")
    registry = Registry(LocalStore(store))
    man = registry.manifest(PENDING)
    r = _decide(client, PENDING, "approved", "fairness by region reviewed with the policy team")
    assert r.status_code == 200 and "Recorded: approved by Rita Reviewer" in r.text
    decision = get_decision(registry, PENDING)
    assert decision["model_sha256"] == man["model_sha256"] and decision["role"] == "approver"
    assert decision["evaluation_sha256"] == man["evaluation_sha256"]
    audit = client.get(f"/audit?version={PENDING}&event=approval_recorded").text
    assert "fairness by region reviewed with the policy team" in audit and man["model_sha256"] in audit
    assert "Intact" in audit
    # Already decided: the form is gone, a replayed post is refused.
    assert 'action="/versions/' not in client.get(f"/versions/{PENDING}").text


def test_a_stale_page_is_refused(store):
    client = _client(store)
    _login(client, "Rita Reviewer")
    r = _decide(client, PENDING, "approved", "ok", evaluation_sha256="0" * 64)
    assert r.status_code == 409 and "reload the page and review again" in r.text
    r = _decide(client, PENDING, "approved", "ok", model_sha256="f" * 64)
    assert r.status_code == 409 and "you reviewed model ffff" in r.text
    assert get_decision(Registry(LocalStore(store)), PENDING) is None


def test_reason_is_required_and_escaped(store):
    client = _client(store)
    _login(client, "Rita Reviewer")
    r = _decide(client, PENDING, "approved", "   ")
    assert r.status_code == 400 and "Give a reason" in r.text
    r = _decide(client, PENDING, "rejected", "<script>alert(1)</script>")
    assert r.status_code == 200
    audit = client.get("/audit").text
    assert "<script>alert(1)</script>" not in audit and "&lt;script&gt;alert(1)&lt;/script&gt;" in audit


def test_gateway_header_is_trusted_only_behind_the_gateway(store):
    local = _client(store)
    assert local.get("/", headers={"kubeflow-userid": "Rita Reviewer"}, follow_redirects=False).status_code == 303
    gw = _client(store, **{"review.behind_gateway": True})
    assert gw.get("/").status_code == 401
    page = gw.get("/", headers={"kubeflow-userid": "Rita Reviewer"})
    assert page.status_code == 200 and "Signed in as <strong>Rita Reviewer</strong> (approver)" in page.text
    by_group = gw.get("/", headers={"kubeflow-userid": "ann@example.gov.uk", "kubeflow-groups": "x, model-approvers"})
    assert "(approver)" in by_group.text
    nobody = gw.get("/", headers={"kubeflow-userid": "stranger@example.com"})
    assert nobody.status_code == 403 and "not listed" in nobody.text
    assert gw.get("/login", follow_redirects=False).status_code == 303
    # Behind the gateway a decision is still a CSRF-protected POST and names the header's user.
    headers = {"kubeflow-userid": "Rita Reviewer"}
    page = gw.get(f"/versions/{PENDING}", headers=headers).text
    forged = gw.post(f"/versions/{PENDING}/decision", headers=headers, data={"decision": "rejected", "reason": "x"})
    assert forged.status_code == 403
    form = {
        "csrf_token": _csrf(page),
        "decision": "rejected",
        "reason": "not yet",
        "model_sha256": re.search(r'name="model_sha256" value="([^"]+)"', page).group(1),
        "evaluation_sha256": re.search(r'name="evaluation_sha256" value="([^"]+)"', page).group(1),
    }
    ok = gw.post(f"/versions/{PENDING}/decision", headers=headers, data=form)
    assert ok.status_code == 200 and get_decision(Registry(LocalStore(store)), PENDING)["by"] == "Rita Reviewer"


def test_pages_show_the_evidence(store):
    client = _client(store)
    _login(client, "Rita Reviewer")
    page = client.get(f"/versions/{PENDING}").text
    man = Registry(LocalStore(store)).manifest(PENDING)
    for expected in (
        man["model_sha256"],
        man["lineage"]["data_fingerprint"],
        "The gate's rules",
        "borderline",
        "Suppressed small groups",
        "Comparison with the current champion",
        CHAMPION,
        "version_committed",
        f"run started by {TRAINER}",
    ):
        assert expected in page, expected
    # Every chart is an image with a text alternative, and has a table.
    svgs = re.findall(r"<svg[^>]*>", page)
    assert svgs and all('role="img"' in s and "aria-labelledby" in s for s in svgs)
    assert page.count("<desc id=") == len(svgs) and page.count("<table") >= len(svgs)
    dash = client.get("/").text
    assert "Pending approval" in dash and "Rejected by the gate" in dash and "champion" in dash
    assert "no trigger fired" in dash  # the last drift decision
    assert json.loads(client.get(f"/versions/{PENDING}/transparency.json").text)["version"] == PENDING


def test_links_and_redirects_carry_the_gateway_path_prefix(store):
    client = _client(store, **{"review.path_prefix": "/civicml-review"})
    r = client.get("/", follow_redirects=False)
    assert r.headers["location"] == "/civicml-review/login"
    page = client.get("/login")
    login = client.post(
        "/login", data={"name": "Rita Reviewer", "token": TOKEN, "csrf_token": _csrf(page.text)}, follow_redirects=False
    )
    assert login.headers["location"] == "/civicml-review/"
    html = client.get(f"/versions/{PENDING}").text
    links = re.findall(r'(?:href|action)="([^"#][^"]*)"', html)
    assert links and all(link.startswith("/civicml-review/") for link in links), links

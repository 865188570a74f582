"""Who may label predictions (issue 12 item 3), without a server: config rules, the mesh header, signed
request ids, and the Secret references `civicml deploy` puts in the server's pod."""

from __future__ import annotations

import pytest

from civicml.config import ConfigError, ServingConfig, parse_config
from civicml.deploy.kubernetes import build_objects
from civicml.serving.auth import Authenticator, IdIssuer, _xfcc_uri
from civicml.serving.routing import Routing


def test_mesh_mode_needs_identities():
    with pytest.raises(ConfigError, match="mesh_identities"):
        parse_config({"serving": {"feedback_auth": {"mode": "mesh"}}})


def test_xfcc_takes_the_nearest_hop_uri():
    # upstream: envoyproxy/envoy docs/root/configuration/http/http_conn_man/headers.rst, x-forwarded-client-cert
    value = 'By=spiffe://a;Hash=1;URI=spiffe://far,By=spiffe://b;Hash=2;Subject="";URI=spiffe://near'
    assert _xfcc_uri(value) == "spiffe://near"
    assert _xfcc_uri("By=spiffe://b;Hash=2") is None and _xfcc_uri("") is None


def test_token_comparison_and_missing_token(monkeypatch):
    cfg = ServingConfig()
    monkeypatch.delenv("CIVICML_FEEDBACK_TOKEN", raising=False)
    assert Authenticator(cfg.feedback_auth, "feedback").identify({"authorization": "Bearer x"}).status == 503
    monkeypatch.setenv("CIVICML_FEEDBACK_TOKEN", "s3cret")
    auth = Authenticator(cfg.feedback_auth, "feedback")
    assert auth.identify({}).status == 401
    assert auth.identify({"authorization": "Bearer nope"}).status == 403
    ok = auth.identify({"authorization": "bearer s3cret"})
    assert ok.allowed and ok.source == "token:CIVICML_FEEDBACK_TOKEN"


def test_issued_ids_are_signed_and_shared_by_replicas(monkeypatch):
    monkeypatch.setenv("CIVICML_REQUEST_ID_KEY", "replica-shared-key")
    a, b = IdIssuer(ServingConfig()), IdIssuer(ServingConfig())
    rid = a.issue()
    assert b.issued(rid) and a.shared
    assert not b.issued(rid[:-1] + ("0" if rid[-1] != "0" else "1"))
    assert not a.issued("0" * 32 + "." + "0" * 16) and not a.issued("client-chosen")
    monkeypatch.delenv("CIVICML_REQUEST_ID_KEY")
    monkeypatch.delenv("CIVICML_FEEDBACK_TOKEN", raising=False)
    assert not IdIssuer(ServingConfig()).issued(rid)  # per-process key: another process's ids are not ours


def test_deploy_puts_token_references_not_tokens_in_the_pod(monkeypatch):
    monkeypatch.setenv("CIVICML_FEEDBACK_TOKEN", "never-in-a-manifest")
    cfg = parse_config({"deploy": {"target": "kubernetes"}})
    dep = next(o for o in build_objects(cfg, Routing(champion="v1"), "s3://b/p") if o["kind"] == "Deployment")
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["CIVICML_FEEDBACK_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "civicml-model-server-auth", "key": "CIVICML_FEEDBACK_TOKEN", "optional": True}
    assert "CIVICML_REQUEST_ID_KEY" in env and "CIVICML_PREDICT_TOKEN" not in env  # prediction is open by default
    assert "never-in-a-manifest" not in str(dep)

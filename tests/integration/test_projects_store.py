"""Issue 13 item 8: one store, many projects — on a directory store and on a real MinIO.

Two projects share one store. Each sees only its own versions and champion; approving and promoting
project B's version leaves project A's champion where it was; the gate's champion comparison of a
project uses that project's champion only; the store-wide view never guesses whose champion is meant.
"""

from __future__ import annotations

import json

import pytest

from civicml.data.demo import CATEGORICAL, NUMERIC, TARGET, generate_benefits
from civicml.evaluation.compare import compare_with_champion
from civicml.governance.approval import effective_status, record_decision
from civicml.governance.promotion import promote
from civicml.governance.trust import commit_version
from civicml.modeling.estimators import fit_model
from civicml.modeling.persistence import load_model, save_model
from civicml.modeling.preprocessing import FeatureSpec
from civicml.serving.routing import ROUTING_FILE_ENV, set_weights, stored_share
from civicml.steps import model_hash
from civicml.storage.registry import Registry, RegistryError, sha256_bytes
from civicml.storage.store import LocalStore, open_store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    df = generate_benefits(rows=600, seed=2)
    spec = FeatureSpec.fit(df, TARGET, "binary_classification", NUMERIC, CATEGORICAL)
    model = fit_model("xgboost", spec, {"n_estimators": 5, "max_depth": 2}, df, 1, 1)
    d = tmp_path_factory.mktemp("model")
    save_model(model, d)
    return d, generate_benefits(rows=300, seed=9)


@pytest.fixture(params=["directory", "minio"])
def store(request, tmp_path, monkeypatch):
    monkeypatch.delenv(ROUTING_FILE_ENV, raising=False)
    if request.param == "directory":
        return LocalStore(tmp_path / "store")
    request.getfixturevalue("s3_env")  # a fresh bucket on the session's real MinIO, in the environment
    return open_store()


def _version(registry: Registry, version: str, model_dir, decision: str) -> None:
    sha = model_hash(model_dir)
    arts = registry.upload_dir(version, "model", model_dir)
    ev = json.dumps({"metrics": {"roc_auc": 0.8}, "model_sha256": sha}).encode()
    arts["evaluation.json"] = registry.upload(version, "evaluation.json", ev)
    gate = {"decision": decision, "reason": "test", "rules": []}
    arts["gate.json"] = registry.upload(version, "gate.json", json.dumps(gate).encode())
    status = {"deploy": "approved", "pending_approval": "pending_approval"}[decision]
    meta = {"status": status, "gate": gate, "model_sha256": sha, "evaluation_sha256": sha256_bytes(ev)}
    commit_version(registry, version, arts, {**meta, "lineage": {"started_by": "trainer"}})


def test_two_projects_never_see_or_replace_each_others_champion(store, trained):
    model_dir, test = trained
    alpha, beta = Registry(store, project="alpha"), Registry(store, project="beta")
    _version(alpha, "a1", model_dir, "deploy")
    promote(alpha, "a1", by="pipeline", reason="gate passed")
    _version(beta, "b1", model_dir, "pending_approval")

    assert [m["version"] for m in alpha.versions()] == ["a1"] and [m["version"] for m in beta.versions()] == ["b1"]
    assert alpha.manifest("a1")["name"] == "alpha"
    with pytest.raises(RegistryError, match="belongs to project 'beta', not 'alpha'"):
        alpha.manifest("b1")
    assert beta.get_alias("champion") is None  # alpha's champion is not beta's

    # The gate's comparison: beta has no champion of its own, so there is nothing to compare with.
    model = load_model(model_dir)
    assert compare_with_champion(model, test, beta, margin=0.01, n_resamples=20) is None
    assert compare_with_champion(model, test, alpha, margin=0.01, n_resamples=20)["champion_version"] == "a1"

    # Approving beta's version through alpha's view is refused; through beta's it is recorded.
    with pytest.raises(RegistryError, match="belongs to project 'beta'"):
        record_decision(alpha, "b1", "approved", "A. Jones", "service owner", "reviewed")
    record_decision(beta, "b1", "approved", "A. Jones", "service owner", "reviewed")
    assert effective_status(beta, "b1") == "approved"
    promote(beta, "b1", by="A. Jones", reason="approved")
    assert (alpha.get_alias("champion"), beta.get_alias("champion")) == ("a1", "b1")
    assert [m["to"] for m in alpha.alias_history("champion")] == ["a1"]
    assert compare_with_champion(model, test, beta, margin=0.01, n_resamples=20)["champion_version"] == "b1"

    # A/B weights are per project: beta's challenger share does not touch alpha's.
    _version(beta, "b2", model_dir, "deploy")
    promote(beta, "b2", by="pipeline", reason="challenger", role="challenger", share=0.3)
    assert (stored_share(beta), stored_share(alpha)) == (0.3, 0.0)
    with pytest.raises(RegistryError, match="no challenger is set"):
        set_weights(alpha, 0.5, by="x", reason="alpha has no challenger")

    # The store-wide view lists both projects, refuses to guess a champion, and promotes within a version's
    # own project only.
    everything = Registry(store)
    assert everything.projects() == ["alpha", "beta"]
    assert {m["version"] for m in everything.versions()} == {"a1", "b1", "b2"}
    with pytest.raises(RegistryError, match=r"several projects \(alpha, beta\)"):
        everything.get_alias("champion")
    promote(everything, "b2", by="pipeline", reason="challenger wins")
    assert (alpha.get_alias("champion"), beta.get_alias("champion"), beta.get_alias("challenger")) == (
        "a1",
        "b2",
        None,
    )

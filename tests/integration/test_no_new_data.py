"""Continuous training without wasted work: the same data twice commits one version, not two."""

import pytest
from support import demo_config

from civicml.governance.audit import AuditLog
from civicml.orchestration.local import failure_detail, read_manifest, run_pipeline
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("kfp_local_isolated")]


def test_second_run_on_the_same_data_writes_no_version(tmp_path):
    cfg = demo_config(tmp_path / "store", 2000, 2, {"policy.fairness": [], "policy.min_metrics": {"roc_auc": 0.5}})
    registry = Registry(LocalStore(cfg.storage.uri))

    first = run_pipeline(cfg)
    assert first.ok, failure_detail(first)
    assert read_manifest(cfg, first.version)["gate"]["decision"] == "deploy"
    assert registry.get_alias("champion") == first.version
    assert len(registry.versions()) == 1

    events: list[tuple[str, str]] = []
    second = run_pipeline(cfg, on_event=lambda task, what: events.append((task, what)))
    assert second.ok, failure_detail(second)
    assert read_manifest(cfg, second.version) is None
    assert [v["version"] for v in registry.versions()] == [first.version]
    assert registry.get_alias("champion") == first.version
    # Only the validation step ran; nothing was tuned, trained or staged.
    assert [t for t, w in events if w == "SUCCESS"] == ["validate-data"]
    assert not registry.store.list_keys(f"staging/{second.version}/")
    validated = [r["payload"] for r in AuditLog(registry.store).records() if r["event"] == "data_validated"]
    assert [v["status"] for v in validated] == ["ok", "no_new_data"]
    assert validated[0]["fingerprint"] == validated[1]["fingerprint"]

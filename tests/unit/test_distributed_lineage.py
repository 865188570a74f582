"""The lineage of a distributed fit: N and the shard fingerprints, and reproduce naming a shard that differs."""

from __future__ import annotations

from civicml.config import RunConfig
from civicml.reproduce import _differences


def _info(*fingerprints: str) -> dict:
    shards = [{"key": f"part-{i}", "sha256": "x", "rows": 10, "fingerprint": f} for i, f in enumerate(fingerprints)]
    return {"fingerprint": "sha256:all", "rows": {"train": 20}, "training": {"workers": len(shards), "shards": shards}}


def _lineage(cfg: RunConfig, info: dict) -> dict:
    import json

    from civicml.provenance import code_revision, image, library_versions

    return {
        "data_fingerprint": info["fingerprint"],
        "rows": info["rows"],
        "training": info["training"],
        "config": json.loads(cfg.to_json()),
        "libraries": library_versions(),
        "code_revision": code_revision(),
        "image": image(),
    }


def test_same_shards_no_difference_and_a_changed_shard_is_named():
    cfg = RunConfig.model_validate({"training": {"workers": 2}})
    recorded = _lineage(cfg, _info("sha256:a", "sha256:b"))
    assert _differences(recorded, cfg, _info("sha256:a", "sha256:b")) == []
    (diff,) = _differences(recorded, cfg, _info("sha256:a", "sha256:c"))
    assert diff["input"] == "training shards" and diff["current"] == ["sha256:a", "sha256:c"]
    (diff,) = _differences(recorded, cfg, _info("sha256:a", "sha256:b", "sha256:c"))
    assert diff["key"] == "2 recorded, 3 now"

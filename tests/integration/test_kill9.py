"""kill -9 at seeded random points of `civicml run` and of `civicml approve` (issue 16 must-show, issue 12 item 5).

After every kill: no visible half-version (every manifest's artifacts are present and verify, and
each agrees with its commit record), no alias moved without its audit record, the chain verifies.
The whole process group is killed, as when a node dies (kfp.local runs steps in child processes).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from civicml.governance.audit import AuditLog
from civicml.governance.trust import check_version, commit_version
from civicml.steps import model_hash
from civicml.storage.registry import Registry, sha256_bytes
from civicml.storage.store import LocalStore

ROOT = Path(__file__).resolve().parents[2]
RUN_KILLS = 10
APPROVAL_KILLS = 10
SEED = 16


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "CIVICML_ACTOR": "kill-test"}
    env.pop("CIVICML_STORE_URI", None)
    return subprocess.Popen(
        [sys.executable, "-m", "civicml.cli.__main__", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: kill -9 takes kfp.local's step processes too
    )


def _timed(args: list[str], cwd: Path) -> float:
    start = time.monotonic()
    proc = _start(args, cwd)
    assert proc.wait(timeout=900) == 0, args
    return time.monotonic() - start


def _kill_at(args: list[str], cwd: Path, after: float) -> None:
    proc = _start(args, cwd)
    try:
        proc.wait(timeout=after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def _check_invariants(root: Path, when: str) -> None:
    registry = Registry(LocalStore(root))
    audit = AuditLog(registry.store, signer=None)
    result = audit.check()
    assert result["ok"], f"{when}: {result['message']}"
    for man in registry.versions():
        assert registry.verify(man["version"]) == [], f"{when}: half-written version {man['version']}"
        check_version(registry, man["version"], audit=audit)  # agrees with its commit record
    records = audit.records()
    intents = {(r["payload"]["alias"], r["payload"]["seq"]) for r in records if r["event"] == "alias_move_intent"}
    for alias in ("champion", "challenger"):
        for move in registry.alias_history(alias):
            assert (alias, move["seq"]) in intents, f"{when}: {alias} moved to {move['to']} without its record"


def _pending_version(registry: Registry, version: str, model_dir: Path) -> None:
    sha = model_hash(model_dir)
    arts = registry.upload_dir(version, "model", model_dir)
    comparison = {"champion_version": registry.get_alias("champion")}
    ev = json.dumps({"metrics": {"roc_auc": 0.8}, "model_sha256": sha, "champion_comparison": comparison}).encode()
    arts["evaluation.json"] = registry.upload(version, "evaluation.json", ev)
    gate = {"decision": "pending_approval", "reason": "borderline", "rules": []}
    arts["gate.json"] = registry.upload(version, "gate.json", json.dumps(gate).encode())
    meta = {"status": "pending_approval", "model_sha256": sha, "evaluation_sha256": sha256_bytes(ev), "gate": gate}
    commit_version(registry, version, arts, meta)


def test_kill_9_at_random_points_of_run_and_approval(tmp_path):
    rng = random.Random(SEED)
    raw = yaml.safe_load((ROOT / "civicml.yaml").read_text())
    raw["data"]["demo"]["rows"] = 1500
    raw["tuning"]["max_trials"] = 2
    raw["policy"]["fairness"] = []
    (tmp_path / "civicml.yaml").write_text(yaml.safe_dump(raw))
    root = tmp_path / ".civicml"

    full = _timed(["run"], tmp_path)  # one whole run: a champion, and how long a run takes here
    _check_invariants(root, "after a whole run")
    for k in range(RUN_KILLS):
        after = rng.uniform(0.5, full)
        _kill_at(["run", "--set", f"data.demo.seed={100 + k}"], tmp_path, after)
        _check_invariants(root, f"run killed after {after:.1f}s (kill {k + 1})")

    registry = Registry(LocalStore(root))
    champion = registry.get_alias("champion")
    assert champion, "the whole run should have deployed a champion"
    model_dir = registry.fetch_prefix(champion, "model", tmp_path / "champion-model")
    approve = ["--by", "A. Jones", "--role", "service owner", "--reason", "reviewed"]
    _pending_version(registry, "p-timing", model_dir)
    one = _timed(["approve", "p-timing", *approve], tmp_path)
    for k in range(APPROVAL_KILLS):
        version = f"p{k}"
        _pending_version(Registry(LocalStore(root)), version, model_dir)
        after = rng.uniform(0.2, one)
        _kill_at(["approve", version, *approve], tmp_path, after)
        _check_invariants(root, f"approval of {version} killed after {after:.1f}s")

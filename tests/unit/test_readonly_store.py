"""A store the user cannot write gives one line naming the path and the permission, never a traceback
(issue 12 item 11). As root, permission bits do not apply, so the commands run without
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from civicml.config import RunConfig
from civicml.data.contract import infer_contract
from civicml.data.demo import generate_benefits
from civicml.storage.registry import Registry, tree_hash
from civicml.storage.store import LocalStore

# Root bypasses permission bits through two capabilities; without them the bits apply to root as
# to anyone. Dropping the capabilities (not the uid) keeps the checkout and .venv readable even
# when they live in a 0700 directory such as /root or a mktemp -d clone.
DAC_CAPS = "-dac_override,-dac_read_search"


def _as_user(cmd: list[str]) -> list[str]:
    if os.getuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE for this test")
    return [setpriv, f"--bounding-set={DAC_CAPS}", f"--inh-caps={DAC_CAPS}", "--", *cmd]


@pytest.fixture
def readonly_store():
    # Not under pytest's basetemp, which each pytest session resets.
    tmp_path = Path(tempfile.mkdtemp(prefix="civicml-ro-test-"))
    store = tmp_path / "store"
    reg = Registry(LocalStore(store))
    arts = {"model/model.json": reg.upload("v1", "model/model.json", b"{}")}
    # Enough lineage for `reproduce` to retrain (300 demo rows) and reach its first write.
    cfg = RunConfig.model_validate({"data": {"demo": {"rows": 300}}, "model": {"params": {"n_estimators": 5}}})
    contract = [c.model_dump(mode="json") for c in infer_contract(generate_benefits(300), cfg.data)]
    arts["data/contract.json"] = reg.upload("v1", "data/contract.json", json.dumps(contract).encode())
    lineage = {"config": json.loads(cfg.to_json()), "data_source": "demo:benefits", "data_fingerprint": "x"}
    sha = tree_hash({"model.json": arts["model/model.json"]["sha256"]})
    meta = {"name": cfg.name, "status": "pending_approval", "model_sha256": sha, "lineage": lineage}
    reg.commit("v1", arts, meta)
    (tmp_path / "c.yaml").write_text(f"storage:\n  uri: {store}\ndata:\n  demo: {{rows: 300}}\n")
    for p in [store, *store.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) | stat.S_IROTH | stat.S_IXOTH)
    yield tmp_path
    for p in [store, *store.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize(
    "args",
    [
        ["approve", "v1", "--by", "alice", "--role", "reviewer", "--reason", "checked"],
        ["reproduce", "v1"],
        ["run"],
    ],
)
def test_read_only_store_is_one_line_naming_path_and_permission(readonly_store, args):
    env = {**os.environ, "HOME": str(readonly_store)}
    env.pop("CIVICML_STORE_URI", None)
    cmd = _as_user([sys.executable, "-m", "civicml.cli", *args, "--config", str(readonly_store / "c.yaml")])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=readonly_store, env=env)
    err = out.stderr
    assert out.returncode == 1, (out.stdout, err)
    assert "Traceback" not in err, err
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert line and str(readonly_store / "store") in line[0] and "Permission denied" in line[0], err

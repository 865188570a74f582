"""A running server follows champion/challenger changes (issue 13 item 5), over real HTTP.

`civicml deploy V --as challenger` (the CLI, in its own process) while the server runs: the server
serves V within `serving.refresh_seconds` plus its load time, says so on `/v2/models/{name}` and in
its metrics. A version that cannot be served (an unloadable model; an artifact tampered with after
commit, named by a pinned routing file) leaves the server on the versions it had, with the reason
shown and counted. A pinned routing file that names the old challenger alone promotes it in place.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from serving_support import ServerThread, commit_served, demo_config, prepared_data, serving_env

from civicml import steps
from civicml.config import RunConfig
from civicml.data.demo import CATEGORICAL, NUMERIC, generate_benefits
from civicml.serving.app import create_app, load_state
from civicml.serving.routing import CHALLENGER, CHAMPION, ROUTING_FILE_ENV
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

pytestmark = pytest.mark.slow

REFRESH = 0.5
# Generous: the bound is REFRESH plus the new version's load time, on 2 cores shared with other suites.
WAIT = REFRESH + 60


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    with serving_env():
        yield _build(tmp_path_factory.mktemp("reload"))


def _build(root: Path) -> tuple[Path, RunConfig, Registry, list[str]]:
    """A champion (deployed), a good second version, one whose model file is not a model, one tampered."""
    from civicml.modeling.estimators import build_params, fit_model
    from civicml.modeling.persistence import save_model

    raw = demo_config(root / "store", 1500, deploy={"challenger_traffic": 0.5}, serving={"refresh_seconds": REFRESH})
    (root / "civicml.yaml").write_text(yaml.safe_dump(raw))
    cfg = RunConfig.model_validate(raw)
    train, spec = prepared_data(cfg, root / "data")
    contract = (root / "data" / "contract.json").read_bytes()
    reg = Registry(LocalStore(root / "store"))
    versions = []
    for i, depth in enumerate((4, 2)):
        model = fit_model(
            "xgboost", spec, build_params("xgboost", {"n_estimators": 15, "max_depth": depth}, {}), train, 42, 1
        )
        save_model(model, root / f"m{i}")
        versions.append(commit_served(reg, cfg, root / f"m{i}", contract))
    shutil.copytree(root / "m0", root / "broken")
    (root / "broken" / "model.ubj").write_bytes(b"not a model")  # its sha256 is recorded: it verifies, then fails
    versions.append(commit_served(reg, cfg, root / "broken", contract))
    tampered = commit_served(reg, cfg, root / "m1", contract)
    key = reg.manifest(tampered)["artifacts"]["model/model.ubj"]["key"]
    path = root / "store" / key
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")  # after commit: the integrity check must refuse it
    versions.append(tampered)
    steps.deploy(cfg, versions[0])
    return root, cfg, reg, versions


def _cli(root: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("CIVICML_STORE_URI", ROUTING_FILE_ENV)}
    res = subprocess.run(
        [sys.executable, "-m", "civicml.cli", *args, "-c", str(root / "civicml.yaml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def _wait(c: httpx.Client, name: str, done, what: str) -> dict:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        meta = c.get(f"/v2/models/{name}").json()
        if done(meta):
            return meta
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen within {WAIT} s; last metadata: {meta}")


def _arms(c: httpx.Client, n: int = 40) -> dict[str, set[str]]:
    rec = json.loads(generate_benefits(1, seed=3)[NUMERIC + CATEGORICAL].to_json(orient="records"))
    seen: dict[str, set[str]] = {}
    for i in range(n):
        r = c.post("/predict", json={"records": rec, "key": f"case-{i}"})
        assert r.status_code == 200, r.text
        seen.setdefault(r.json()["arm"], set()).add(r.json()["model_version"])
    return seen


def _metric(c: httpx.Client, prefix: str) -> float:
    lines = [ln for ln in c.get("/metrics").text.splitlines() if ln.startswith(prefix)]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


def test_deploy_as_challenger_is_served_and_broken_versions_keep_the_old(built, monkeypatch, caplog):
    root, cfg, reg, (v1, v2, broken, tampered) = built
    caplog.set_level("INFO", logger="civicml.serving")
    with ServerThread(create_app(load_state(cfg, reg, root / "work"))) as c:
        meta = c.get(f"/v2/models/{cfg.name}").json()
        assert meta["versions"] == [v1] and "challenger" not in meta["parameters"]
        assert _arms(c) == {CHAMPION: {v1}}

        _cli(root, "deploy", v2, "--as", "challenger")
        deployed = time.monotonic()
        meta = _wait(c, cfg.name, lambda m: v2 in m["versions"], "the new challenger")
        took = time.monotonic() - deployed
        params = meta["parameters"]
        assert meta["versions"] == [v1, v2] and params["served_versions"] == f"{v1},{v2}"
        assert params["champion"] == v1 and params["challenger"] == v2 and params["challenger_share"] == 0.5
        # The protocol's $parameter: every value a string, number or boolean.
        assert all(isinstance(v, (str, int, float, bool)) for v in params.values())
        assert _arms(c) == {CHAMPION: {v1}, CHALLENGER: {v2}}
        assert _metric(c, f'civicml_served_version{{arm="challenger",version="{v2}"}}') == 1.0
        assert any("switched: now serving" in r.getMessage() and v2 in r.getMessage() for r in caplog.records)
        print(f"challenger served {took:.2f} s after `civicml deploy` returned (refresh {REFRESH} s)")

        # An approved, verified version whose model does not load: the alias moves, the server keeps v2.
        _cli(root, "deploy", broken, "--as", "challenger")
        meta = _wait(c, cfg.name, lambda m: "reload_error" in m["parameters"], "the refused reload")
        assert broken in meta["parameters"]["reload_error"] and meta["versions"] == [v1, v2]
        assert reg.get_alias(CHALLENGER) == broken
        assert _arms(c) == {CHAMPION: {v1}, CHALLENGER: {v2}}
        assert _metric(c, 'civicml_model_reloads_total{result="failed"}') >= 1
        failures = [r for r in caplog.records if r.levelname == "ERROR" and broken in r.getMessage()]
        assert len(failures) == 1, "a version that cannot be served is logged once, not at every refresh"

        # A pinned routing file (a cluster pod) naming a version tampered with after commit: refused.
        pinned = root / "routing.json"
        pinned.write_text(json.dumps({"champion": tampered}))
        monkeypatch.setenv(ROUTING_FILE_ENV, str(pinned))
        meta = _wait(c, cfg.name, lambda m: tampered in m["parameters"].get("reload_error", ""), "the refusal")
        assert "integrity" in meta["parameters"]["reload_error"] and meta["versions"] == [v1, v2]
        assert _arms(c) == {CHAMPION: {v1}, CHALLENGER: {v2}}

        # The file names v2 alone: the old challenger becomes the champion in place; the error clears.
        pinned.write_text(json.dumps({"champion": v2}))
        meta = _wait(c, cfg.name, lambda m: m["versions"] == [v2], "the promoted challenger")
        assert "reload_error" not in meta["parameters"] and meta["parameters"]["champion"] == v2
        assert _arms(c) == {CHAMPION: {v2}}
        assert _metric(c, f'civicml_served_version{{arm="champion",version="{v2}"}}') == 1.0
        assert _metric(c, f'civicml_served_version{{arm="champion",version="{v1}"}}') == 0.0

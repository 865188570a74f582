"""Hostile artifacts in the store: a model file that would run code, and manifest names that would
write outside the destination. Each attack creates a marker file if it succeeds; the tests assert
the marker does not exist and that the refusal names what was wrong."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from civicml.modeling.estimators import build_params, fit_model
from civicml.modeling.persistence import SKOPS_FILE, SKOPS_TRUSTED_TYPES, ModelLoadError, load_model, save_model
from civicml.modeling.preprocessing import FeatureSpec
from civicml.storage.registry import IntegrityError, Registry, check_artifact_name
from civicml.storage.store import LocalStore


def _frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(1000, 200, n),
            "size": rng.integers(1, 6, n).astype(float),
            "kind": rng.choice(["a", "b", "c"], n),
            "y": rng.integers(0, 2, n),
        }
    )


def _spec(df: pd.DataFrame, task: str = "binary_classification") -> FeatureSpec:
    return FeatureSpec.fit(df, target="y", task=task, numeric=["income", "size"], categorical=["kind"])


def _saved_sklearn(tmp_path: Path, family: str = "logistic_regression", task: str = "binary_classification") -> Path:
    df = _frame()
    if task == "regression":
        df["y"] = df["income"] * 0.1
    fixed = {"n_estimators": 3} if family == "random_forest" else {}
    model = fit_model(family, _spec(df, task), build_params(family, fixed, {}), df, 42, 1)
    d = tmp_path / f"{family}-{task}"
    save_model(model, d)
    return d


def _exec_payload(marker: Path) -> dict:
    """A skops node that calls `builtins.exec(code)` when constructed: loading it would write `marker`.

    upstream: skops-dev/skops skops/io/_general.py ConstructorFromReduceNode._construct @ 0.16.0 calls
    `gettype(module, class)(*content)`, so a file naming `builtins.exec` runs the string it carries.
    """
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    text = {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": json.dumps(code)}
    return {
        "__class__": "exec",
        "__module__": "builtins",
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [{**text, "is_json": True}],
        },
    }


def _poison_skops(path: Path, marker: Path) -> None:
    """Replace the estimator in a real .skops file by a reduce node calling `builtins.exec`."""
    with zipfile.ZipFile(path) as zf:
        schema = json.loads(zf.read("schema.json"))
        others = {n: zf.read(n) for n in zf.namelist() if n != "schema.json"}
    evil = _exec_payload(marker)
    evil["_skops_version"] = schema.get("_skops_version")
    evil["protocol"] = schema.get("protocol", 2)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("schema.json", json.dumps(evil))
        for n, data in others.items():
            zf.writestr(n, data)


def test_skops_file_naming_builtins_exec_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "MARKER-rce"
    d = _saved_sklearn(tmp_path)
    _poison_skops(d / SKOPS_FILE, marker)
    with pytest.raises(ModelLoadError) as err:
        load_model(d)
    assert not marker.exists(), "loading the model ran code from the file"
    assert "builtins.exec" in str(err.value) and "allow-list" in str(err.value)


def test_the_attack_is_real_without_the_allow_list(tmp_path):
    """The poisoned file does run code when its types are trusted: the test above guards something real."""
    import skops.io as sio

    marker = tmp_path / "MARKER-control"
    d = _saved_sklearn(tmp_path)
    _poison_skops(d / SKOPS_FILE, marker)
    path = d / SKOPS_FILE
    sio.load(path, trusted=sio.get_untrusted_types(file=path))
    assert marker.exists()


@pytest.mark.parametrize(
    "family,task",
    [
        ("logistic_regression", "binary_classification"),
        ("random_forest", "binary_classification"),
        ("random_forest", "regression"),
    ],
)
def test_every_model_civicml_saves_loads_with_the_explicit_allow_list(tmp_path, family, task):
    import skops.io as sio

    df = _frame()
    if task == "regression":
        df["y"] = df["income"] * 0.1
    d = _saved_sklearn(tmp_path, family, task)
    untrusted = set(sio.get_untrusted_types(file=d / SKOPS_FILE))
    # The allow-list is exact type names, never prefixes, and covers what civicml itself saves.
    assert untrusted <= SKOPS_TRUSTED_TYPES, sorted(untrusted - SKOPS_TRUSTED_TYPES)
    assert not any(t.endswith(".") or t.endswith("*") for t in SKOPS_TRUSTED_TYPES)
    model = load_model(d)
    assert model.predict(df).shape == (len(df),)


# -- manifest names that would write outside the destination -------------------------------------------


def _committed(tmp_path: Path, names: list[str]) -> tuple[Registry, str]:
    reg = Registry(LocalStore(tmp_path / "store"))
    arts = {"model/model.json": reg.upload("v1", "model/model.json", b"{}")}
    for name in names:
        arts[name] = reg.upload("v1", "model/x", b"pwned")
    reg.commit("v1", arts, {"name": "p", "status": "approved"})
    return reg, "v1"


@pytest.mark.parametrize(
    "evil",
    [
        "model/../../MARKER-escape",
        "model/../MARKER-escape",
        "model//{tmp}/MARKER-escape",
        "model/./../MARKER-escape",
        "model/sub/../../../MARKER-escape",
        "model/a\\..\\..\\MARKER-escape",
        "model/x\x00",
    ],
)
def test_manifest_names_cannot_write_outside_the_destination(tmp_path, evil):
    evil = evil.replace("{tmp}", str(tmp_path).lstrip("/"))
    reg, version = _committed(tmp_path, [evil])
    dest = tmp_path / "cache" / "serve" / "v1" / "model"
    with pytest.raises(IntegrityError, match="not a safe relative path"):
        reg.fetch_prefix(version, "model", dest)
    assert not list(tmp_path.rglob("MARKER-escape")), "an artifact was written outside the destination"
    # Nothing half-written: the refusal comes before any file (the good ones included) is written.
    assert not dest.exists() or not any(dest.rglob("*"))


def test_symlink_in_destination_does_not_lead_outside(tmp_path):
    reg, version = _committed(tmp_path, ["model/link/MARKER-escape"])
    dest = tmp_path / "cache" / "model"
    dest.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "link").symlink_to(outside)
    with pytest.raises(IntegrityError, match="outside"):
        reg.fetch_prefix(version, "model", dest)
    assert not list(outside.iterdir())


def test_ordinary_names_are_fine():
    assert check_artifact_name("model/model.json") is None
    assert check_artifact_name("model/sub/dir/file.bin") is None
    for bad in ("", "/abs", "a//b", "a/", "a/./b", "a/../b", "a\\b", "a\x00b"):
        assert check_artifact_name(bad), bad

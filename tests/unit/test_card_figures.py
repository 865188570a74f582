"""Issue 18 item 2: the model card's figures are drawn once, in evaluate, and reused by register."""

from __future__ import annotations

import base64

import pytest

from civicml import steps
from civicml.config import load_config
from civicml.reporting import plots
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore


@pytest.fixture
def cfg(tmp_path):
    overrides = {
        "storage.uri": str(tmp_path / "store"),
        "data.demo.rows": 2000,
        "data.sensitive_attributes": ["sex", "region"],
        "policy.fairness": [],
    }
    return load_config(None, overrides)


def _no_drawing(*_args, **_kwargs):
    raise AssertionError("a figure was drawn again after evaluate")


def test_figures_are_drawn_once_in_evaluate_and_reused_by_register(cfg, tmp_path, monkeypatch):
    d, m, figs = str(tmp_path / "d"), str(tmp_path / "m"), tmp_path / "figures"
    steps.validate_data(cfg, d, "v1")
    steps.train(cfg, d, None, m)
    drawn = []
    real = plots._canvas
    monkeypatch.setattr(plots, "CARD_WORKERS", 1)  # counted here, not in forked drawers
    monkeypatch.setattr(plots, "_canvas", lambda *a, **k: drawn.append(a) or real(*a, **k))
    steps.evaluate(cfg, d, m, str(tmp_path / "e.json"), str(tmp_path / "report.html"), str(figs))
    # ROC, PR, calibration, confusion, fairness by sex and by region, importance: each drawn once
    # although both the evaluation report and the figures artifact use them.
    assert len(drawn) == 7
    pngs = sorted(p.name for p in figs.glob("*.png"))
    assert len(pngs) == 7 and (figs / "figures.json").is_file()

    monkeypatch.setattr(plots, "_canvas", _no_drawing)
    steps.gate(cfg, str(tmp_path / "e.json"), str(tmp_path / "g.json"))
    manifest = steps.register(
        cfg,
        d,
        None,
        m,
        str(tmp_path / "e.json"),
        str(tmp_path / "g.json"),
        figures_dir=str(figs),
        card_html_path=str(tmp_path / "card.html"),
    )
    # Stored with the version (hashed in the manifest) and shown in the card, byte for byte.
    assert {f"figures/{n}" for n in pngs} | {"figures/figures.json"} <= set(manifest["artifacts"])
    card = (tmp_path / "card.html").read_text()
    for name in pngs:
        assert base64.b64encode((figs / name).read_bytes()).decode() in card
    # Re-rendering the committed card (e.g. after a human decision) reads the stored figures too.
    registry = Registry(LocalStore(cfg.storage.uri))
    html_again, _ = steps.current_card(registry, "v1")
    assert base64.b64encode((figs / pngs[0]).read_bytes()).decode() in html_again


def test_figures_drawn_in_parallel_are_the_figures_drawn_one_by_one(cfg, tmp_path):
    d, m = str(tmp_path / "d"), str(tmp_path / "m")
    steps.validate_data(cfg, d, "v1")
    steps.train(cfg, d, None, m)
    ev = steps.evaluate(cfg, d, m, str(tmp_path / "e.json"))
    one_by_one = plots.card_figures(ev, workers=1)
    in_parallel = plots.card_figures(ev, workers=3)
    assert [f.key for f in in_parallel] == [f.key for f in one_by_one]
    assert [f.model_dump() for f in in_parallel] == [f.model_dump() for f in one_by_one]

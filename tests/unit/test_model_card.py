"""Model card: self-contained, accessible HTML (alt text with numbers, real tables, headings in order) + Markdown."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from html_checks import StructureError, check_structure, parse_strict

from civicml.config import RunConfig
from civicml.data.demo import CATEGORICAL, NUMERIC, TARGET, generate_benefits
from civicml.evaluation.card import card_data
from civicml.evaluation.evaluate import evaluate_model
from civicml.evaluation.report import render_model_card
from civicml.governance.policy import decide
from civicml.modeling.estimators import fit_model
from civicml.modeling.preprocessing import FeatureSpec
from civicml.reporting.card import render_card
from civicml.reporting.plots import card_figures


@pytest.fixture(scope="module")
def card():
    cfg = RunConfig.model_validate(
        {
            "data": {"sensitive_attributes": ["sex", "region"]},
            "policy": {"min_metrics": {"roc_auc": 0.99}, "min_group_count": 30},
            "card": {"contact": "ml@example.org", "out_of_scope": "Automated denial."},
        }
    )
    df = generate_benefits(rows=2500, bias=1.0, seed=9)
    train, test = df.iloc[:1800], df.iloc[1800:]
    spec = FeatureSpec.fit(train, TARGET, "binary_classification", NUMERIC, CATEGORICAL)
    model = fit_model("xgboost", spec, {"n_estimators": 30, "max_depth": 3}, train, 1, 1)
    ev = evaluate_model(cfg, model, test, registry=None, n_resamples=200)
    ev["model_sha256"] = "ab" * 32
    gate = decide(cfg.policy, json.loads(json.dumps(ev)))
    manifest = {
        "version": "v-test",
        "name": "benefits",
        "task": cfg.task,
        "family": "xgboost",
        "model_sha256": "ab" * 32,
        "lineage": {
            "data_source": "demo:benefits",
            "data_fingerprint": "sha256:123",
            "rows": {"train": 1800},
            "config": json.loads(cfg.to_json()),
            "seeds": {"split": 42},
            "code_revision": "abc",
            "libraries": {"xgboost": "3.2"},
            "image": "local",
        },
    }
    html_text, md = render_card(card_data(manifest, ev, gate, cfg), card_figures(ev))
    return ev, gate, html_text, md


def test_evaluation_keeps_the_plot_data(card):
    ev, *_ = card
    for key in (
        "roc",
        "pr",
        "calibration",
        "confusion_matrix",
        "feature_importance",
        "fairness",
        "confidence_intervals",
    ):
        assert ev[key], key
    json.dumps(ev)


def test_html_is_self_contained_and_accessible(card):
    ev, _gate, html_text, _ = card
    assert html_text.startswith("<!doctype html>") and '<html lang="en">' in html_text
    page = check_structure(html_text)  # strict parse: any malformed tag or attribute fails here
    imgs = page["images"]
    assert len(imgs) >= 6  # ROC, PR, calibration, confusion, fairness x2, importance
    for img in imgs:
        assert re.search(r"\d\.\d", img.get("alt")), img.get("alt")
    auc = ev["metrics"]["roc_auc"]
    assert any(f"ROC-AUC {auc:.3f}" in img.get("alt") for img in imgs)
    assert not re.search(r'(src|href)="(https?:)?//', html_text)  # nothing loaded from elsewhere
    assert len(page["tables"]) >= 8
    text = page["text"]
    # Verdicts are words, not only colours.
    assert "FAIL" in text and "PASS" in text and "REJECT" in text
    assert "roc_auc >= 0.99" in text and "ml@example.org" in text and "Automated denial." in text
    assert "sha256:123" in text
    # Issue 13 item 11: no demo text about a use nobody described; what is missing is said.
    assert "Prioritise benefit claims" not in text and "synthetic data" not in text
    assert "Not stated by the project: card.owner, card.intended_use, card.limitations" in text


def test_card_sections_and_tables_are_in_place(card):
    """Issue 15: the card's structure, parsed strictly (html5lib), not only its text."""
    _ev, _gate, html_text, _ = card
    page = check_structure(html_text)
    h2 = [t for level, t in page["headings"] if level == 2]
    assert h2 == [
        "Summary",
        "Model details",
        "Intended use",
        "Limitations",
        "Performance on the test set",
        "Fairness",
        "What drives the predictions",
        "Comparison with the current champion",
        "Gate decision",
        "Lineage and reproducibility",
    ]
    h3 = [t for level, t in page["headings"] if level == 3]
    assert h3[:5] == ["Out of scope", "Compared with no skill", "ROC curve", "Precision–recall curve", "Calibration"]
    assert {"By sex", "By region"} <= set(h3)
    tables = page["tables"]
    # The five tables that rendered as `<table class=" class="num"">` (issue 15): now a plain table,
    # or the one class they should carry, and numeric cells right-aligned.
    rules = tables["Every gate rule: threshold, measured value and verdict"]
    assert rules.get("class") == "rules"
    for caption in (
        "Test metrics with 95% confidence intervals",
        "Margin over the no-skill baseline",
        "Disparity measures for sex",
        "Outcomes by region (suppressed groups' rates withheld)",
    ):
        assert tables[caption].get("class") is None, caption
        assert {td.get("class") for td in tables[caption].iter("td")} == {"num"} or caption.startswith("Outcomes")
    verdicts = [td for td in rules.iter("td") if (td.get("class") or "").startswith("verdict-")]
    assert {td.get("class") for td in verdicts} >= {"verdict-pass", "verdict-fail"}
    # Every figure carries the table it was drawn from.
    for fig in page["root"].iter("figure"):
        assert fig.find("figcaption") is not None and fig.find(".//table/caption") is not None


def test_the_strict_checks_refuse_what_the_lenient_parser_accepted():
    """The checks can fail: today's bug, a stray attribute, an image without alt or table, a skipped level."""
    import html5lib

    good = '<!doctype html><html lang="en"><head><title>t</title></head><body><h1>x</h1></body></html>'
    check_structure(good)
    with pytest.raises(html5lib.html5parser.ParseError):
        parse_strict(good.replace("<h1>x</h1>", '<table class=" class="num""><caption>c</caption></table>'))
    bad = {
        "stray": '<h1>x</h1><p num="">y</p>',
        "no header row": "<h1>x</h1><table><caption>c</caption><tbody><tr><td>1</td></tr></tbody></table>",
        "no alt": '<h1>x</h1><figure><img src="data:image/png;base64,AA"></figure>',
        "list alt": '<h1>x</h1><figure><img src="data:image/png;base64,AA" alt="Groups suppressed: [\'tiny\'], '
        'a long enough sentence 1."></figure>',
        "skip": "<h1>x</h1><h3>y</h3>",
    }
    for name, body in bad.items():
        with pytest.raises(StructureError):
            check_structure(good.replace("<h1>x</h1>", body))
            pytest.fail(name)


def test_markdown_mirrors_the_card(card):
    _ev, _gate, _, md = card
    assert md.startswith("# Model card:")
    assert "## Gate decision" in md and "**Decision: REJECT**" in md
    assert "| roc_auc >= 0.99 |" in md and "✗ FAIL" in md
    assert "*Figure — ROC curve:*" in md and "data:image" not in md
    assert "## Fairness" in md and "### By region" in md


def test_champion_comparison_and_pending_approval_are_shown(card):
    ev, _gate, _, _ = card
    ev = {
        **ev,
        "champion_comparison": {
            "champion_version": "v0",
            "metric": "roc_auc",
            "challenger": 0.80,
            "champion": 0.81,
            "difference": -0.01,
            "ci_low": -0.03,
            "ci_high": 0.01,
            "margin": 0.01,
            "significantly_worse": False,
            "non_inferior": False,
            "mcnemar_p": 0.2,
        },
    }
    gate = decide(RunConfig.model_validate({"policy": {"require_approval": "always", "fairness": []}}).policy, ev)
    html_text, md = render_model_card({"version": "v1"}, ev, gate, RunConfig())
    assert "PENDING HUMAN APPROVAL" in html_text and "civicml approve v1" in md
    assert "-0.0300 to 0.0100" in md and "McNemar exact p-value" in md


def test_regression_card_and_evaluation_only_report():
    from civicml.evaluation.metrics import evaluate_predictions
    from civicml.evaluation.report import render_evaluation_html

    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    ev = {
        "task": "regression",
        "n_test": 300,
        **evaluate_predictions("regression", y, y + rng.normal(0, 0.2, 300), n_resamples=50),
    }
    html_text, md = render_model_card({"version": "r1", "task": "regression"}, ev, None, RunConfig())
    assert "Histogram of residuals" in html_text and "Residual summary" in md
    assert "The policy gate has not run" in md
    page = render_evaluation_html("Evaluation", ev)
    assert "<title>Evaluation" in page


def test_card_shows_the_projects_own_text_and_no_missing_note():
    """Issue 13 item 11: written card text is shown as written; nothing is said to be missing."""
    from civicml.evaluation.report import render_model_card

    cfg = RunConfig.model_validate(
        {
            "name": "school-meals",
            "card": {"owner": "Nutrition team", "intended_use": "Plan meal orders.", "limitations": "2025 only."},
        }
    )
    ev = {"task": "binary_classification", "metrics": {}, "n_test": 0}
    page, md = render_model_card({"version": "v1", "name": "school-meals"}, ev, None, cfg)
    assert "Model card: school-meals" in page and "Plan meal orders." in page and "Nutrition team" in md
    assert "Not stated" not in page and "Benefit claim" not in page


def test_alt_text_lists_suppressed_groups_as_words_not_a_python_list():
    """Issue 13 item 12: alt text showed "['tiny']"."""
    from civicml.reporting.plots import fairness as _fairness_plot

    groups = {
        "a": {"count": 400, "suppressed": False, "selection_rate": 0.4, "tpr": 0.7, "fpr": 0.2, "precision": 0.6},
        "tiny": {"count": 5, "suppressed": True, "selection_rate": None, "tpr": None, "fpr": None, "precision": None},
    }
    rep = {"groups": groups, "suppressed_groups": ["tiny"], "min_group_count": 30, "demographic_parity_ratio": None}
    alt = _fairness_plot("region", rep).alt
    assert "suppressed: tiny." in alt and "[" not in alt and "'" not in alt

"""The shared report pieces (issue 15 item 2): one number formatter, the A/B report, figure storage."""

from __future__ import annotations

import math

import pytest
from html_checks import check_structure

from civicml.reporting.model import Table, load_figures, save_figures
from civicml.reporting.numbers import interval, number, percent, signed


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (0.81234, 4, "0.8123"),
        (0.00012345, 4, "0.0001234"),  # the card printed 0.0001, the drift report 0.0001234
        (2.913e-52, 4, "2.913e-52"),
        (0.0, 4, "0.0000"),
        (-0.03, 4, "-0.0300"),
        (1234.5, 3, "1234.500"),
        (float("nan"), 4, "n/a"),
        (math.inf, 4, "∞"),
        (None, 4, "—"),
        (True, 4, "yes"),
        (7, 4, "7"),
        ("East", 4, "East"),
    ],
)
def test_one_number_formatter(value, digits, text):
    assert number(value, digits) == text


def test_formatter_helpers():
    assert signed(0.0123) == "+0.012" and signed(-0.004) == "-0.004" and signed(None) == "—"
    assert percent(0.125) == "12.5%" and interval(-0.03, 0.01) == "-0.0300 to 0.0100" and interval(None, 1) == "—"


def test_card_and_drift_report_print_a_number_the_same_way():
    """Issue 15: both go through `number`; a tiny p-value reads the same on both pages."""
    from civicml.reporting import render

    env = render.environment(True)
    assert env.filters["num"](0.00012345) == env.filters["cell"](0.00012345) == number(0.00012345)


def test_table_rows_must_match_the_header():
    with pytest.raises(ValueError, match="a row has 1 cells, the header 2"):
        Table(caption="c", headers=["a", "b"], rows=[[1]])


def _ab_report():
    return {
        "arms": {
            "champion": {
                "version": "v1",
                "count": 110,
                "positive_rate": 0.52,
                "labelled": 100,
                "correct": 60,
                "accuracy": 0.6,
                "labels_by_source": {},
            },
            "challenger": {
                "version": "v2",
                "count": 110,
                "positive_rate": 0.48,
                "labelled": 100,
                "correct": 75,
                "accuracy": 0.75,
                "labels_by_source": {},
            },
        },
        "z_test": {"diff": 0.15, "z": 2.26, "p_value": 0.0238},
        "msprt": {"lambda": 12.5, "log_lambda": 2.5, "p_value": 0.00008, "n": 200, "tau": 0.1, "alpha": 0.05},
        "recommendation": "promote",
        "reason": "challenger accuracy 0.750 vs champion 0.600; always-valid p = 0.0001 < 0.05",
        "min_samples": 100,
        "labels": {
            "received_by_source": {"api": 202},
            "counted_by_source": {"api": 200},
            "relabelled": 2,
            "conflicting": 1,
            "unmatched": 1,
        },
    }


def test_ab_report_html_is_well_formed_with_its_chart_and_table():
    from civicml.reporting.ab import render_ab

    page = check_structure(render_ab(_ab_report()))
    assert [h for _, h in page["headings"]] == ["A/B test: champion and challenger", "Per arm", "Labels", "Tests"]
    (img,) = page["images"]
    assert "challenger v2: accuracy 0.750 on 100 labelled predictions" in img.get("alt")
    assert "Recommendation: promote" in page["text"] and "p = 8e-05" in page["text"]
    md = render_ab(_ab_report(), "md")
    assert md.startswith("# A/B test") and "| challenger | v2 | 110 | 0.480 | 100 | 0.750 |" in md


def test_figures_are_stored_and_read_back_unchanged(tmp_path):
    from civicml.reporting.monitor_plots import ab_arms

    fig = ab_arms(_ab_report())
    save_figures([fig], tmp_path / "figs")
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["00-ab-arms.png", "figures.json"]
    assert load_figures(tmp_path / "figs") == [fig]
    assert load_figures(lambda name: (tmp_path / "figs" / name).read_bytes()) == [fig]


def test_every_template_and_stylesheet_ships_in_the_wheel():
    """The image installs the wheel: a template missing from package-data would be missing at run time."""
    import json
    import re
    from pathlib import Path

    import civicml.reporting

    root = Path(civicml.reporting.__file__).parent
    # (tomllib is 3.11+; the package supports 3.10) the one package-data line, a JSON-compatible list
    line = re.search(r'^"civicml.reporting" = (\[.*\])$', (root.parents[1] / "pyproject.toml").read_text(), re.M)
    globs = json.loads(line.group(1))
    files = [
        p.relative_to(root).as_posix() for d in ("templates", "static") for p in (root / d).rglob("*") if p.is_file()
    ]
    # setuptools globs: `*` stays within one directory.
    shipped = [re.compile(re.escape(g).replace(r"\*", "[^/]*")) for g in globs]
    assert files and not [f for f in files if not any(p.fullmatch(f) for p in shipped)]

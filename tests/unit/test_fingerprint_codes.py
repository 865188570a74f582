"""Categoricals as codes (issue 18 item 3): the fingerprint definitions, profiles and the demo table."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from civicml.data.demo import generate_benefits
from civicml.data.fingerprint import FINGERPRINT_VERSION, fingerprint, recorded_version
from civicml.data.profile import category_frequencies


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same rows as v1's validate-data held them (object, None) and as v2's (category)."""
    region = ["North", None, "East", "North", "West", None, "East"]
    old = pd.DataFrame({"x": np.arange(7, dtype="float64"), "region": pd.Series(region, dtype=object)})
    new = old.assign(region=pd.Series(region, dtype="str").astype("category"))
    return old, new


def test_v1_of_a_coded_frame_is_what_v1_computed_on_strings():
    old, new = _frames()
    h = hashlib.sha256(b"x:float64\x1fregion:object")
    h.update(pd.util.hash_pandas_object(old, index=False).to_numpy().tobytes())
    # The v1 definition, written out as civicml a745641 computed it.
    assert fingerprint(new, 1) == "sha256:" + h.hexdigest()
    assert fingerprint(new, 2) != fingerprint(new, 1)
    assert FINGERPRINT_VERSION == 2


def test_v2_depends_on_the_values_not_on_the_declared_categories():
    _, new = _frames()
    reordered = new.assign(region=new["region"].cat.set_categories(["West", "North", "East", "South"]))
    assert fingerprint(reordered) == fingerprint(new)
    changed = new.assign(region=new["region"].cat.rename_categories({"West": "South"}))
    assert fingerprint(changed) != fingerprint(new)


def test_versions_are_recorded_and_unknown_ones_refused():
    assert recorded_version({}) == 1
    assert recorded_version({"data_fingerprint_version": 2}) == 2
    with pytest.raises(ValueError, match="unknown data fingerprint version 3"):
        fingerprint(_frames()[1], 3)


@pytest.mark.parametrize("values", [["a", None, "b", "a"], [1, "1", 2.0, None], ["<missing>", None, "z"], []], ids=str)
def test_category_frequencies_equal_the_string_per_row_count(values):
    s = pd.Series(values, dtype=object)
    old = s.fillna("<missing>").astype(str).value_counts(normalize=True).sort_index()
    expected = {str(k): float(v) for k, v in old.items()}
    assert category_frequencies(s) == expected
    if values:
        assert category_frequencies(s.astype("string").astype("category")) == category_frequencies(s.astype(str))


def test_the_demo_table_is_the_same_as_before_codes():
    # sha256 of the CSV from civicml a745641's generator (one Python string per row).
    df = generate_benefits(rows=3000, month=3, bias=0.5, seed=1)
    digest = hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()
    assert digest == "4014882981a4db35274a4a5795614a4e130da08b7c64aba76e0a178462ded247"
    assert str(df["region"].dtype) == "str"

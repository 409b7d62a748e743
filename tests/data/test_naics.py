"""The 2022 NAICS taxonomy and the per-level vocabulary."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geograph.data import NAICSTaxonomy, NAICSVocabulary
from geograph.data.naics import normalize_code

TAX = NAICSTaxonomy()


def test_hierarchy_and_titles():
    assert TAX.parents("722515") == {2: "72", 3: "722", 4: "7225", 5: "72251", 6: "722515"}
    assert TAX.parents(4451) == {2: "44", 3: "445", 4: "4451"}
    assert TAX.parent("722515", 4) == "7225"
    assert TAX.title("722515") == "Snack and Nonalcoholic Beverage Bars"
    assert TAX.title(72) == "Accommodation and Food Services"
    assert TAX.title("7225") == "Restaurants and Other Eating Places"
    # sectors given as ranges are expanded to each 2-digit prefix
    assert TAX.title("31") == TAX.title("32") == TAX.title("33") == "Manufacturing"
    assert {"44", "45", "48", "49"} <= set(TAX.codes(2))
    assert len(TAX.codes(6)) == 1012  # 2022 edition: 1,012 national industries
    assert len(TAX.codes(2)) == 24  # 20 sectors, three ranges expanded
    with pytest.raises(ValueError, match="level must be one of"):
        TAX.parent("722515", 7)
    with pytest.raises(ValueError, match="level must be one of"):
        TAX.codes(1)
    assert "722515" in TAX and 722515 in TAX and "722599" not in TAX and "abc" not in TAX
    assert repr(TAX).startswith("NAICSTaxonomy(2022")


def test_every_six_digit_code_has_all_its_parents():
    for code in TAX.codes(6):
        for level, prefix in TAX.parents(code).items():
            assert prefix in TAX, (code, level)


def test_validation_and_closest_prefix():
    assert TAX.validate(722515) == "722515"
    assert TAX.validate(" 722515 ") == "722515"
    assert TAX.is_valid("7225", level=4) and not TAX.is_valid("7225")
    assert TAX.closest_valid_prefix("722599") == "7225"
    assert TAX.closest_valid_prefix("447110") == "44"  # 2017 gas stations moved to 457110 in 2022
    assert TAX.closest_valid_prefix("999999") is None
    with pytest.raises(
        ValueError, match="closest valid prefix is 7225 \\(Restaurants and Other Eating Places\\)"
    ):
        TAX.validate("722599")
    with pytest.raises(ValueError, match="not even its 2-digit sector exists"):
        TAX.validate("999999")
    with pytest.raises(ValueError, match="must have 6 digits, got '7225'"):
        TAX.validate("7225")
    with pytest.raises(KeyError, match="unknown NAICS code"):
        TAX.title("722599")


@pytest.mark.parametrize("code", [722515, "722515", " 722515 ", 722515.0])
def test_normalize_code_accepts(code):
    assert normalize_code(code) == "722515"


@pytest.mark.parametrize("code", [True, None, 722515.5, float("nan"), "72-25", ""])
def test_normalize_code_rejects(code):
    with pytest.raises(ValueError):
        normalize_code(code)


def test_common_prefix_depth():
    assert TAX.common_prefix_depth("722515", "722513") == 5
    assert TAX.common_prefix_depth("722515", "445110") == 0
    assert TAX.common_prefix_depth("722515", "712110") == 0  # one shared digit is no shared sector
    assert TAX.common_prefix_depth("722515", "722515") == 6


def test_vocabulary_falls_back_to_parent_level():
    vocab = NAICSVocabulary().fit(["722515", "445110", "722511"])
    assert vocab.sizes() == {2: 3, 3: 3, 4: 3, 5: 3, 6: 4}
    seen, sibling, cousin, alien = vocab.transform(["722515", "722513", "445291", "111110"])
    assert (seen > 0).all()
    # 722513 is unseen, its 5-digit parent 72251 was seen through 722515
    assert (sibling[:4] == seen[:4]).all() and sibling[4] == 0
    # 445291 shares only 445 / 44 with the training codes
    assert cousin[0] > 0 and cousin[1] > 0 and (cousin[2:] == 0).all()
    assert (alien == 0).all()
    assert vocab.transform([]).shape == (0, 5)


def test_vocabulary_is_deterministic_and_serialisable():
    a = NAICSVocabulary().fit(["722515", "445110", "722511"])
    b = NAICSVocabulary().fit([445110, "722511", 722515, "722515"])
    assert a.index == b.index
    c = NAICSVocabulary.from_state_dict(a.state_dict())
    codes = ["722515", "722513", "445110"]
    np.testing.assert_array_equal(a.transform(codes), c.transform(codes))
    assert repr(a) == "NAICSVocabulary(sizes={2: 3, 3: 3, 4: 3, 5: 3, 6: 4})"
    custom = NAICSVocabulary(levels=(2, 6)).fit(["722515"])
    assert custom.transform(["722513"]).tolist() == [[1, 0]]


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(TAX.codes(6)), st.sampled_from(TAX.codes(6)))
def test_vocabulary_indices_are_in_range(train, query):
    vocab = NAICSVocabulary().fit([train])
    out = vocab.transform([query])
    sizes = vocab.sizes()
    assert all(0 <= out[0, j] < sizes[lv] for j, lv in enumerate(vocab.levels))
    depth = TAX.common_prefix_depth(train, query)
    assert [lv for j, lv in enumerate(vocab.levels) if out[0, j] > 0] == [
        lv for lv in vocab.levels if lv <= depth
    ]


def test_vocabulary_short_codes_are_unknown_below_their_level():
    # 3118 (an industry group) stored padded, next to a full code of the same group
    vocab = NAICSVocabulary().fit(["311800", "311811", "722515"])
    assert vocab.sizes() == {2: 3, 3: 3, 4: 3, 5: 3, 6: 3}  # no entries for "31180" / "311800"
    group, bakery, raw = vocab.transform(["311800", "311811", "3118"])
    assert (group[:3] > 0).all() and group[3:].tolist() == [0, 0]
    assert (bakery > 0).all() and (group[:3] == bakery[:3]).all()
    np.testing.assert_array_equal(raw, group)  # the unpadded code reads the same
    sector = NAICSVocabulary().fit(["440000"]).transform(["440000"])[0]
    assert sector.tolist() == [1, 0, 0, 0, 0]
    # a 6-digit code that is neither a 2022 code nor padded keeps every level, as before
    assert (NAICSVocabulary().fit(["123456"]).transform(["123456"]) > 0).all()

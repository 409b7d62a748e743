"""The GBT baseline's NAICS code features: a short code's zero padding is not a finer code."""

from __future__ import annotations

import numpy as np

from geograph.covisit.baselines import encode_categories, naics_at_level


def test_a_short_codes_padding_is_missing_at_finer_levels():
    # 445110 (6 digits), 311800 (industry group 3118, stored padded), 722511, 4451 -> 445100
    naics = np.array([445110, 311800, 722511, 445100])
    assert naics_at_level(naics, 2).tolist() == [44, 31, 72, 44]
    assert naics_at_level(naics, 4).tolist() == [4451, 3118, 7225, 4451]
    six = naics_at_level(naics, 6)
    assert six[0] == 445110 and six[2] == 722511
    assert np.isnan(six[1]) and np.isnan(six[3])  # not the codes 311800 / 445100


def test_unknown_and_missing_codes_are_missing_categories():
    known = {0: np.array([44.0, 72.0])}
    X = np.array([[72.0], [31.0], [np.nan], [44.0]])
    assert np.array_equal(encode_categories(known, X), np.array([[1.0], [np.nan], [np.nan], [0.0]]), equal_nan=True)

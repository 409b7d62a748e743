"""Great-circle accuracy and Recall vs Area on hand-made rankings."""

from __future__ import annotations

import h3
import numpy as np
import pytest

from geograph.metrics.geo import (
    accuracy_within,
    area_to_capture,
    area_to_capture_from_scores,
    geo_metrics,
    great_circle_error_km,
    prefixed,
    recall_at_area,
    rva_auc,
    rva_curve,
    rva_metrics,
)


def test_errors_and_accuracy():
    true = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    pred = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 10.0], [0.0, 180.0]])  # 0, 111, 1112, 20015 km
    e = great_circle_error_km(pred, true)
    np.testing.assert_allclose(e, [0.0, 111.19, 1111.95, 20015.1], rtol=1e-3)
    acc = accuracy_within(e)
    assert acc == {"acc_1km": 0.25, "acc_25km": 0.25, "acc_200km": 0.5, "acc_750km": 0.5, "acc_2500km": 0.75}
    m = geo_metrics(pred, true)
    assert m["median_km"] == pytest.approx((111.19 + 1111.95) / 2, rel=1e-3)
    assert set(prefixed(m, "test")) == {f"test_{k}" for k in m}
    with pytest.raises(ValueError, match="latitude must be in"):
        great_circle_error_km(np.array([[91.0, 0.0]]), np.array([[0.0, 0.0]]))
    with pytest.raises(ValueError, match="prefix"):
        prefixed(m, "dev")


def test_rva_on_a_hand_made_ranking():
    # three queries; regions are res-2 cells; the truth sits in the 1st, 3rd and no region
    pts = np.array([[48.85, 2.35], [35.68, 139.69], [-33.87, 151.21]])
    paris, tokyo, sydney = (h3.latlng_to_cell(a, b, 2) for a, b in pts)
    berlin = h3.latlng_to_cell(52.52, 13.40, 2)
    seoul = h3.latlng_to_cell(37.57, 126.98, 2)
    area = {c: h3.cell_area(c, unit="km^2") for c in (paris, tokyo, berlin, seoul)}
    ranked = [[paris, berlin], [berlin, seoul, tokyo], [paris, tokyo]]
    need = area_to_capture(ranked, pts)
    assert need[0] == pytest.approx(area[paris])
    assert need[1] == pytest.approx(area[berlin] + area[seoul] + area[tokyo])
    assert np.isinf(need[2])
    # mixed resolutions: a coarse parent region contains the truth too
    parent = h3.cell_to_parent(sydney, 0)
    assert area_to_capture([[parent]], pts[2:])[0] == pytest.approx(h3.cell_area(parent, unit="km^2"))
    r = recall_at_area(np.array([50.0, 5e3, 5e4, np.inf]))
    assert r == {
        "rva_1e2km2": 0.25,
        "rva_1e3km2": 0.25,
        "rva_1e4km2": 0.5,
        "rva_1e5km2": 0.75,
        "rva_1e6km2": 0.75,
    }


def test_rva_from_scores_counts_ties_against_the_query():
    scores = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.0, 1.0, 0.0]])
    areas = np.array([10.0, 100.0, 1000.0])
    need = area_to_capture_from_scores(scores, areas, np.array([1, 0, 0]))
    assert need[0] == pytest.approx(110.0)  # region 0 searched first
    assert need[1] == pytest.approx(1110.0)  # tie with region 1: both searched
    assert np.isinf(need[2])  # no mass on the truth
    assert np.isinf(area_to_capture_from_scores(scores[:1], areas, np.array([-1]))[0])


def test_rva_curve_and_auc():
    assert rva_auc(np.full(10, 1.0)) == pytest.approx(1.0)
    assert rva_auc(np.full(10, np.inf)) == 0.0
    assert rva_auc(np.full(10, 1e4)) == pytest.approx(0.5, abs=0.01)  # captured for half of log-area
    x, y = rva_curve(np.array([1e3, 1e5]), num=5, range_km2=(1e2, 1e6))
    np.testing.assert_allclose(x, [1e2, 1e3, 1e4, 1e5, 1e6])
    np.testing.assert_allclose(y, [0, 0.5, 0.5, 1, 1])
    assert set(rva_metrics(np.array([1e3]))) == {
        "rva_1e2km2",
        "rva_1e3km2",
        "rva_1e4km2",
        "rva_1e5km2",
        "rva_1e6km2",
        "rva_auc",
    }

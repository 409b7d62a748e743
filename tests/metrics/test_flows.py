"""Flow metrics and the ranking additions, on hand-made numbers."""

from __future__ import annotations

import numpy as np
import pytest

from geograph.metrics import common_part_of_commuters, covisit_metrics, origin_jsd, ranking_metrics


def test_cpc_and_jsd_by_hand() -> None:
    assert common_part_of_commuters(np.array([2.0, 2.0]), np.array([2.0, 2.0])) == 1.0
    assert common_part_of_commuters(np.array([4.0, 0.0]), np.array([0.0, 4.0])) == 0.0
    assert common_part_of_commuters(np.array([3.0, 1.0]), np.array([1.0, 1.0])) == pytest.approx(2 * 2 / 6)
    origin = np.array([0, 0, 1, 1])
    assert origin_jsd(origin, np.array([1.0, 1, 2, 0]), np.array([5.0, 5, 4, 0])) == pytest.approx(0.0)
    # disjoint supports: divergence 1 (base 2)
    assert origin_jsd(np.array([0, 0]), np.array([1.0, 0]), np.array([0.0, 1])) == pytest.approx(1.0)


def test_hit_and_mrr() -> None:
    group = np.array([0, 0, 0, 1, 1])
    rel = np.array([0.0, 1.0, 0.0, 2.0, 0.0])
    score = np.array([0.9, 0.5, 0.1, 0.2, 0.8])
    m = ranking_metrics(group, rel, score, k=1)
    assert m["hit@1"] == 0.0 and m["mrr"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert ranking_metrics(group, rel, score, k=10)["hit@10"] == 1.0


def test_observed_metrics_ignore_sampled_rows() -> None:
    src = np.array([0, 0, 1, 1])
    vis = np.array([3.0, 5.0, 2.0, 0.0])
    pred = np.log1p(np.array([3.0, 5.0, 2.0, 9.0]))  # exact on observed rows, wrong on the sampled one
    observed = np.array([True, True, True, False])
    m = covisit_metrics(src, vis, pred, observed, np.zeros(0, dtype=int), np.zeros(0), "test")
    assert m["test_observed_r2_log1p"] == pytest.approx(1.0) and m["test_observed_cpc"] == pytest.approx(1.0)
    assert m["test_r2"] < 1.0 and m["test_observed_pairs"] == 3.0

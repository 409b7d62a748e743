import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import mean_absolute_error, ndcg_score, r2_score

from geograph.metrics import ndcg_at_k, r2, ranking_metrics, regression_metrics


def test_regression_metrics_match_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    y = rng.gamma(1.0, 1.0, 200)
    p = y + rng.normal(0, 0.5, 200)
    m = regression_metrics(y, p)
    assert m["r2"] == pytest.approx(r2_score(y, p))
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert m["rmse"] == pytest.approx(np.sqrt(((y - p) ** 2).mean()))
    pc = np.clip(p, 0, None)
    assert m["r2_raw"] == pytest.approx(r2_score(np.expm1(y), np.expm1(pc)))
    assert m["spearman"] == pytest.approx(spearmanr(y, p).statistic)
    assert r2(y, y) == 1.0


def test_regression_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="shape"):
        regression_metrics(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="no pairs"):
        regression_metrics(np.zeros(0), np.zeros(0))


def test_ndcg_matches_sklearn_including_ties():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(2, 30))
        y = rng.integers(0, 4, n).astype(float)
        s = rng.integers(0, 5, n).astype(float)
        if y.sum() == 0:
            continue
        assert ndcg_at_k(y, s, 10) == pytest.approx(ndcg_score([y], [s], k=10))


def test_ranking_metrics_by_hand():
    # source 0: positives ranked 1st and 3rd; source 1: its only positive ranked 2nd; source 2: no positive
    group = np.array([0, 0, 0, 1, 1, 2])
    rel = np.array([2.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    score = np.array([0.9, 0.8, 0.1, 0.7, 0.6, 0.5])
    m = ranking_metrics(group, rel, score, k=2)
    ndcg0 = (2 / np.log2(2)) / (2 / np.log2(2) + 1 / np.log2(3))
    ndcg1 = (1 / np.log2(3)) / 1.0
    assert m["ndcg@2"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert m["recall@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["ranked_sources"] == 2


def test_covisit_metric_names_cover_what_a_run_logs():
    from geograph.metrics.covisit import covisit_metric_names, covisit_metrics

    names = covisit_metric_names()
    logged = covisit_metrics(
        np.array([0, 1, 1]),
        np.array([2.0, 0.0, 5.0]),
        np.array([1.0, 0.2, 1.5]),
        np.array([True, False, True]),
        np.array([0]),
        np.array([0.1]),
        "test",
    )
    assert set(logged) <= set(names)
    for name in (
        "test_observed_r2_log1p",
        "val_observed_r2_log1p",
        "best_val_observed_r2_log1p",
        "train_loss",
        "train_time_s",
        "best_epoch",
        "n_parameters",
        "train_pairs_per_s",
    ):
        assert name in names
    assert not any(n.startswith("val_") for n in covisit_metric_names(("test",)))

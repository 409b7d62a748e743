"""The doubly-constrained gravity baseline (model.family gravity_dc) on a tiny world."""

import numpy as np
import pytest
import torch

from geograph import covisit as C
from geograph.constants import POI
from geograph.covisit.config import CovisitConfig
from geograph.covisit.evaluate import evaluate
from geograph.covisit.gravity_dc import DoublyConstrainedGravity, furness, furness_dense
from geograph.covisit.predict import CovisitPredictor, save_bundle
from geograph.errors import ConfigError
from geograph.testing import tiny_world


@pytest.fixture(scope="module")
def world():
    return tiny_world(seed=3, n_pois=150, n_images=0)


def _cfg(tmp_path, **sections):
    base = {
        "data": {"cache_dir": None},
        "model": {"family": "gravity_dc"},
        "train": {"checkpoint_dir": str(tmp_path / "ckpt")},
    }
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    return CovisitConfig.from_dict(base)


def test_furness_matches_row_and_column_totals():
    rows = np.array([0, 0, 1, 1, 2])
    cols = np.array([0, 1, 0, 1, 1])
    f = np.array([1.0, 0.5, 0.2, 2.0, 1.0])
    o = np.array([3.0, 5.0, 2.0])
    d = np.array([4.0, 6.0])
    t, info = furness(rows, cols, f, o, d)
    assert info.converged and info.iterations > 1
    np.testing.assert_allclose(np.bincount(rows, weights=t), o, rtol=1e-9)
    np.testing.assert_allclose(np.bincount(cols, weights=t), d, rtol=1e-6)


def test_dense_furness_is_furness_on_the_complete_block():
    """The dense sweeps balance a complete block (zero diagonal) to the same flows as the pair
    list of every ordered pair of distinct rows."""
    rng = np.random.default_rng(4)
    m = 30
    f = rng.uniform(0.05, 2.0, (m, m))
    np.fill_diagonal(f, 0.0)
    o = rng.uniform(1, 10, m)
    d = rng.uniform(1, 10, m)
    d *= o.sum() / d.sum()
    rows, cols = np.nonzero(~np.eye(m, dtype=bool))
    t, info = furness(rows, cols, f[rows, cols], o, d)
    a, b, dense = furness_dense(f, o, d)
    assert info.converged and dense.converged and dense.iterations == info.iterations
    np.testing.assert_allclose(a[rows] * b[cols] * f[rows, cols], t, rtol=1e-10)
    np.testing.assert_allclose((a[:, None] * b[None, :] * f).sum(1), o, rtol=1e-9)


def test_gravity_dc_refuses_a_state_too_large_to_balance(world, tmp_path, monkeypatch):
    import geograph.covisit.gravity_dc as gdc

    prep = C.prepare(_cfg(tmp_path), world)
    est = C.fit(prep).model
    pk = prep.split.pairs["test"]
    monkeypatch.setattr(gdc, "MAX_BLOCK_POIS", 10)
    with pytest.raises(ConfigError, match=r"gravity_dc balances each state .* state [A-Z]{2} has \d+ POIs"):
        est.flows(prep.graph, pk.src, pk.dst)


@pytest.mark.parametrize("protocol", ["edges", "states"])
def test_gravity_dc_balances_origins_over_candidates(world, tmp_path, protocol):
    prep = C.prepare(_cfg(tmp_path, split={"protocol": protocol}), world)
    fr = C.fit(prep)
    est = fr.model
    assert isinstance(est, DoublyConstrainedGravity)
    assert est.coef[0] < 0  # co-visits fall with distance
    assert np.isfinite(est.origin_total).all() and (est.origin_total >= 0).all()
    tr = prep.split.pairs["train"]
    seen = torch.unique(tr.src).numpy()
    np.testing.assert_allclose(est.origin_total[seen],
                               np.bincount(tr.src.numpy(), weights=tr.visitors.double().numpy(),
                                           minlength=prep.graph.num_pois)[seen])

    # every state holding a test origin is balanced as one complete block: each origin's flows to
    # all other POIs of its state sum to O_i, each destination's to its rescaled D_j, converged
    pk = prep.split.pairs["test"]
    state = prep.graph.data[POI].state
    rows = np.unique(pk.src.numpy())
    if protocol == "states":  # held-out states: every test origin's total is estimated from its mass
        assert not np.isin(rows, seen).any()
    s0 = state[int(rows[0])]
    members = torch.nonzero(state == s0).flatten()
    bs, bd = torch.cartesian_prod(members, members).T
    keep = bs != bd
    bs, bd = bs[keep], bd[keep]
    flows = est.flows(prep.graph, bs, bd)
    assert est.last_balance.converged, est.last_balance
    o = est.origin_total[members.numpy()]
    np.testing.assert_allclose(np.bincount(bs.numpy(), weights=flows)[members.numpy()], o, rtol=1e-6)
    col = np.bincount(bd.numpy(), weights=flows, minlength=prep.graph.num_pois)[members.numpy()]
    d = est.dest_total[members.numpy()]
    np.testing.assert_allclose(col, d * o.sum() / d.sum(), rtol=1e-5)
    # a pair's prediction does not depend on the other pairs scored with it
    one = est.flows(prep.graph, bs[:1], bd[:1])
    assert one[0] == pytest.approx(flows[0], rel=1e-12)

    m = evaluate(fr, prep)
    for key in ("test_observed_r2_log1p", "test_ndcg10", "test_observed_cpc", "val_observed_r2_log1p"):
        assert np.isfinite(m[key]), key


def test_gravity_dc_bundle_reloads_and_rebalances(world, tmp_path):
    prep = C.prepare(_cfg(tmp_path), world)
    fr = C.fit(prep)
    m = evaluate(fr, prep)
    folder = save_bundle(fr, prep, tmp_path / "model")
    pred = CovisitPredictor.load(folder)
    assert pred.family == "gravity_dc"
    again = pred.evaluate("test")
    for key in ("test_observed_r2_log1p", "test_ndcg10", "test_observed_cpc"):
        assert again[key] == pytest.approx(m[key], rel=1e-9, abs=1e-12)
    ids = prep.graph.index["poi_ids"]
    state = prep.graph.data[POI].state
    a = int(torch.nonzero(state == state[0]).flatten()[1])
    out = pred.predict_ids([ids[0], ids[0]], [ids[a], ids[a]])  # a duplicated pair counts once
    assert out[0] == out[1] and np.isfinite(out).all()


def test_unknown_family_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match="model.family"):
        _cfg(tmp_path, model={"family": "gravity_doubly"})

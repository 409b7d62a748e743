"""Ranking candidates: sampled POIs of the source's state with no co-visit row."""

import pytest
import torch

from geograph.constants import COVISITS, POI
from geograph.covisit.groups import rank_candidates, rank_negatives_for
from geograph.graph.builder import build_graph
from geograph.graph.config import GraphConfig
from geograph.graph.split import PairSet
from geograph.testing import tiny_world


@pytest.fixture(scope="module")
def graph():
    return build_graph(tiny_world(seed=5, n_pois=240, n_images=0), GraphConfig())


def _pairs(graph):
    ei = graph.data[POI, COVISITS, POI].edge_index
    pick = torch.arange(0, ei.size(1), 7)
    return PairSet(ei[0, pick], ei[1, pick], torch.ones(len(pick), dtype=torch.long)), ei


@pytest.mark.parametrize("n", [3, 40, -1])
def test_candidates_are_same_state_unvisited_distinct_and_seeded(graph, n):
    pairs, rows = _pairs(graph)
    cand = rank_candidates(graph, pairs, n, seed=11, exclude=rows)
    state = graph.data[POI].state
    n_poi = graph.num_pois
    keys = cand.src * n_poi + cand.dst
    assert len(cand) > 0 and len(torch.unique(keys)) == len(keys)
    assert bool((state[cand.src] == state[cand.dst]).all()) and bool((cand.src != cand.dst).all())
    linked = set((rows[0] * n_poi + rows[1]).tolist()) | set((rows[1] * n_poi + rows[0]).tolist())
    linked |= set((pairs.src * n_poi + pairs.dst).tolist())
    assert not linked & set(keys.tolist())
    for s in torch.unique(pairs.src).tolist():
        same = int((state == state[s]).sum()) - 1
        blocked = len({k % n_poi for k in linked if k // n_poi == s and state[k % n_poi] == state[s] and k % n_poi != s})
        want = same - blocked if n < 0 else min(n, same - blocked)
        assert int((cand.src == s).sum()) == want
    again = rank_candidates(graph, pairs, n, seed=11, exclude=rows)
    assert torch.equal(again.src, cand.src) and torch.equal(again.dst, cand.dst)
    if n > 0:
        other = rank_candidates(graph, pairs, n, seed=12, exclude=rows)
        assert not torch.equal(other.dst, cand.dst)


def test_every_poi_of_the_state_only_within_rank_max_pairs(graph):
    """``-1`` ranks every POI of the source's state while sources x state POIs fit in
    ``rank_max_pairs``; beyond, ``rank_max_pairs // sources`` random ones per source."""
    pairs, rows = _pairs(graph)
    state = graph.data[POI].state
    sources = torch.unique(pairs.src)
    every = int(torch.bincount(state)[state[sources]].sum())
    assert rank_negatives_for(graph, pairs, -1, every) == -1
    assert rank_negatives_for(graph, pairs, -1, every - 1) == (every - 1) // len(sources)
    assert rank_negatives_for(graph, pairs, -1, 1) == 1  # at least one candidate per source
    assert rank_negatives_for(graph, pairs, 20, 1) == 20  # a count is kept as it is
    n = rank_negatives_for(graph, pairs, -1, 5 * len(sources))
    assert n == 5
    assert len(rank_candidates(graph, pairs, n, seed=11, exclude=rows)) <= 5 * len(sources)


def test_prepare_caps_the_ranking_and_says_so(tmp_path):
    """A world whose states are too large to rank whole: prepare warns, ranks the capped count,
    and the model still evaluates (chunked scoring of the candidates gives the same numbers)."""
    import geograph.covisit.model as cvmodel
    from geograph.covisit.config import CovisitConfig
    from geograph.covisit.data import prepare
    from geograph.covisit.train import fit_gnn

    base = {"data": {"n_pois": 300, "cache_dir": None}, "train": {"epochs": 1, "checkpoint_dir": str(tmp_path)}}
    whole = prepare(CovisitConfig.from_dict(base))
    assert whole.rank_negatives == {"val": -1, "test": -1}
    cap = {**base, "split": {"rank_max_pairs": 200}}
    with pytest.warns(UserWarning, match=r"ranking metrics of val: .* split.rank_max_pairs=200 .* against \d+ random POIs"):
        prep = prepare(CovisitConfig.from_dict(cap))
    for k in ("val", "test"):
        sources = len(torch.unique(prep.split.pairs[k].src[prep.split.pairs[k].visitors > 0]))
        assert prep.rank_negatives[k] == max(1, 200 // sources)
        assert 0 < len(prep.rank[k]) <= max(200, sources)
    assert len(prep.rank["val"]) < len(whole.rank["val"])
    fr = fit_gnn(prep)
    pred, rank_pred = cvmodel.predict_gnn(fr.model, prep, "val", fr.scaler, torch.device("cpu"))
    fr.model.head.score_chunk = 7
    pred7, rank_pred7 = cvmodel.predict_gnn(fr.model, prep, "val", fr.scaler, torch.device("cpu"))
    torch.testing.assert_close(torch.from_numpy(pred7), torch.from_numpy(pred), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.from_numpy(rank_pred7), torch.from_numpy(rank_pred), rtol=1e-5, atol=1e-6)

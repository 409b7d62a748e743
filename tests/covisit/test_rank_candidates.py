"""Ranking candidates: sampled POIs of the source's state with no co-visit row."""

import pytest
import torch

from geograph.constants import COVISITS, POI
from geograph.covisit.groups import rank_candidates
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

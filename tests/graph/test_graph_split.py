"""split_covisits / sample_zero_pairs: no scored pair is visible to the encoder, seeded."""

from __future__ import annotations

import pytest
import torch
from graph_worlds import both_directions, three_state_world

from geograph.constants import COVISITS, POI
from geograph.errors import ConfigError
from geograph.graph import GeoGraph, GraphConfig, build_graph, sample_zero_pairs, split_covisits
from geograph.graph.split import SPLITS
from geograph.testing import tiny_world

CFG = GraphConfig(near_k=2, image_k=0)


def keys(src: torch.Tensor, dst: torch.Tensor, n: int) -> set[int]:
    return set((src * n + dst).tolist())


def unordered(src: torch.Tensor, dst: torch.Tensor, n: int) -> set[int]:
    return keys(torch.minimum(src, dst), torch.maximum(src, dst), n)


@pytest.fixture(scope="module")
def one_way() -> GeoGraph:
    """60 generated POIs in CA / NY / TX; each co-visit pair listed once (random direction)."""
    return build_graph(tiny_world(n_pois=60), CFG)


@pytest.fixture(scope="module")
def two_way() -> GeoGraph:
    """The same world with every pair listed in both directions (directional vendor data)."""
    return build_graph(both_directions(tiny_world(n_pois=60)), CFG)


@pytest.fixture(scope="module")
def graphs(one_way, two_way) -> dict[str, GeoGraph]:
    return {"one_way": one_way, "two_way": two_way}


def assert_no_scored_pair_in_message(split, n: int) -> None:
    """Neither direction of a val / test pair is a message edge of its split (nor of train)."""
    for s in ("val", "test"):
        p = split.pairs[s]
        for m in (split.message[s], split.message["train"]):
            assert not unordered(p.src, p.dst, n) & unordered(m[0], m[1], n), s


@pytest.mark.parametrize("kind", ["one_way", "two_way"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_edges_protocol_no_leak(graphs, kind, seed):
    g = graphs[kind]
    n = g.num_pois
    rows = g.data[POI, COVISITS, POI]
    sp = split_covisits(g, "edges", val_frac=0.2, test_frac=0.2, neg_ratio=1.0, seed=seed)
    assert sp.protocol == "edges" and sp.groups == {}
    assert_no_scored_pair_in_message(sp, n)
    # every row and every sampled zero is scored exactly once (the split samples with seed + 1;
    # the two-way world has fewer free same-state pairs than rows, so fewer zeros come back)
    zeros = sample_zero_pairs(g, rows.edge_index.size(1), seed + 1)
    total = sum(len(sp.pairs[s]) for s in SPLITS)
    assert total == rows.edge_index.size(1) + len(zeros)
    sizes = torch.bincount(g.data[POI].state)
    free = int((sizes * (sizes - 1) // 2).sum()) - len(unordered(rows.edge_index[0], rows.edge_index[1], n))
    assert len(zeros) == min(rows.edge_index.size(1), free)
    all_keys = [keys(sp.pairs[s].src, sp.pairs[s].dst, n) for s in SPLITS]
    assert sum(len(k) for k in all_keys) == total  # no ordered pair twice, no pair in two splits
    # the message graph is exactly the non-zero training pairs
    tr = sp.pairs["train"]
    m = sp.message["train"]
    assert keys(m[0], m[1], n) == keys(tr.src[tr.visitors > 0], tr.dst[tr.visitors > 0], n)
    assert torch.equal(sp.message["val"], m) and torch.equal(sp.message["test"], m)
    # the two directions of one pair never land in different splits
    units = [unordered(sp.pairs[s].src, sp.pairs[s].dst, n) for s in SPLITS]
    assert not (units[0] & units[1] or units[0] & units[2] or units[1] & units[2])
    # scored rows keep their visitors
    vis = dict(
        zip((rows.edge_index[0] * n + rows.edge_index[1]).tolist(), rows.visitors.tolist(), strict=True)
    )
    for s in SPLITS:
        p = sp.pairs[s]
        for k, v in zip((p.src * n + p.dst).tolist(), p.visitors.tolist(), strict=True):
            assert v == vis.get(k, 0)
    assert sp.train_poi_mask.all()


@pytest.mark.parametrize("kind", ["one_way", "two_way"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_states_protocol_holds_out_whole_states(graphs, kind, seed):
    g = graphs[kind]
    n = g.num_pois
    state = g.data[POI].state
    names = g.index["states"]
    sp = split_covisits(
        g, "states", val_frac=0.34, test_frac=0.34, neg_ratio=1.0, observed_frac=0.5, seed=seed
    )
    assert sorted(sum((sp.groups[s] for s in SPLITS), [])) == names  # each state in one split
    assert all(len(sp.groups[s]) == 1 for s in SPLITS)
    for s in SPLITS:
        sidx = torch.tensor([names.index(x) for x in sp.groups[s]])
        assert torch.isin(state[sp.pairs[s].src], sidx).all(), s  # pairs of the split's states only
    train_states = torch.tensor([names.index(x) for x in sp.groups["train"]])
    assert torch.equal(sp.train_poi_mask, torch.isin(state, train_states))
    base = sp.message["train"]
    assert torch.isin(state[base[0]], train_states).all()  # no held-out state's edge in training
    for s in ("val", "test"):
        sidx = torch.tensor([names.index(x) for x in sp.groups[s]])
        m = sp.message[s]
        assert torch.equal(m[:, : base.size(1)], base)
        observed = m[:, base.size(1) :]
        assert observed.size(1) > 0 and torch.isin(state[observed[0]], sidx).all()
    assert_no_scored_pair_in_message(sp, n)


def test_states_protocol_exact_on_three_state_world():
    g = build_graph(three_state_world(), GraphConfig(near_k=0, image_k=0))
    n = g.num_pois  # 9: ca0-2, ny0-2, tx0-2; each state: x0<->x1 (both > 0), x1->x2 = 2, x2->x1 = 0
    sp = split_covisits(g, "states", val_frac=0.34, test_frac=0.34, neg_ratio=0.0, observed_frac=0.5, seed=0)
    assert all(len(sp.groups[s]) == 1 for s in SPLITS)
    for s in ("val", "test"):
        # two non-zero unordered pairs; one (both directions, zero rows included) is observed
        st = sp.groups[s][0].lower()
        ids = g.index["poi_ids"]
        obs = sp.message[s][:, sp.message["train"].size(1) :]
        obs_names = sorted((ids[a], ids[b]) for a, b in obs.t().tolist())
        scored = sorted(
            (ids[a], ids[b]) for a, b in zip(sp.pairs[s].src.tolist(), sp.pairs[s].dst.tolist(), strict=True)
        )
        both = [(f"{st}0", f"{st}1"), (f"{st}1", f"{st}0")]
        if obs_names == sorted(both):
            assert scored == [(f"{st}1", f"{st}2"), (f"{st}2", f"{st}1")]
        else:
            assert obs_names == [(f"{st}1", f"{st}2")]  # the zero direction is no message edge ...
            assert scored == sorted(both)  # ... and is not scored either
    assert len(sp.pairs["train"]) == 4
    assert_no_scored_pair_in_message(sp, n)


def test_h3_protocol_groups_by_parent_cell(one_way):
    sp = split_covisits(one_way, "h3:3", val_frac=0.2, test_frac=0.2, seed=0)
    assert sp.protocol == "h3:3"
    assert all(name.startswith("83") for s in SPLITS for name in sp.groups[s])  # resolution-3 cells
    assert len(sp.pairs["train"]) and len(sp.pairs["val"]) and len(sp.pairs["test"])
    assert_no_scored_pair_in_message(sp, one_way.num_pois)


@pytest.mark.parametrize("kind", ["one_way", "two_way"])
def test_sampled_zero_pairs_are_same_state_unique_and_new(graphs, kind):
    g = graphs[kind]
    n = g.num_pois
    ei = g.data[POI, COVISITS, POI].edge_index
    z = sample_zero_pairs(g, 200, seed=3)
    assert len(z) == 200
    assert (z.visitors == 0).all()
    state = g.data[POI].state
    assert torch.equal(state[z.src], state[z.dst])
    assert (z.src != z.dst).all()
    assert len(unordered(z.src, z.dst, n)) == 200  # unique, also as unordered pairs
    assert not unordered(z.src, z.dst, n) & unordered(ei[0], ei[1], n)  # not a row, in either direction
    again = sample_zero_pairs(g, 200, seed=3)
    assert torch.equal(z.src, again.src) and torch.equal(z.dst, again.dst)


def test_zero_pairs_when_few_are_free():
    g = build_graph(three_state_world(), GraphConfig(near_k=0, image_k=0))
    z = sample_zero_pairs(g, 50, seed=0)  # only x0-x2 of each state has no row
    ids = g.index["poi_ids"]
    got = sorted(tuple(sorted((ids[a], ids[b]))) for a, b in zip(z.src.tolist(), z.dst.tolist(), strict=True))
    assert got == [("ca0", "ca2"), ("ny0", "ny2"), ("tx0", "tx2")]
    assert len(sample_zero_pairs(g, 0, seed=0)) == 0


@pytest.mark.parametrize("protocol", ["edges", "states", "h3:4"])
def test_same_seed_same_split(one_way, protocol):
    a = split_covisits(one_way, protocol, 0.34, 0.34, seed=5)
    b = split_covisits(one_way, protocol, 0.34, 0.34, seed=5)
    c = split_covisits(one_way, protocol, 0.34, 0.34, seed=6)
    for s in SPLITS:
        for k in ("src", "dst", "visitors"):
            assert torch.equal(getattr(a.pairs[s], k), getattr(b.pairs[s], k))
        assert torch.equal(a.message[s], b.message[s])
    assert a.groups == b.groups
    assert any(
        not torch.equal(a.pairs[s].src, c.pairs[s].src) if len(a.pairs[s]) == len(c.pairs[s]) else True
        for s in SPLITS
    )
    assert a.summary()["pairs_train"] == len(a.pairs["train"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"protocol": "random"}, "split protocol"),
        ({"val_frac": 0.6, "test_frac": 0.5}, "val_frac"),
        ({"observed_frac": 1.0}, "observed_frac"),
        ({"protocol": "h3:16"}, "0..15"),
    ],
)
def test_bad_split_arguments(one_way, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        split_covisits(one_way, **kwargs)


def test_states_protocol_needs_three_states():
    from geograph.testing import hand_made_world

    g = build_graph(hand_made_world(), GraphConfig(near_k=0, image_k=0))  # CA and NY only
    with pytest.raises(ConfigError, match="at least 3 groups"):
        split_covisits(g, "states")

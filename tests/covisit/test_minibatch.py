"""Mini-batch co-visitation training: the k-hop sampler, the loader it sits in, and training."""

import pytest
import torch
from torch_geometric.data import HeteroData
from torch_geometric.loader import LinkLoader, NeighborLoader
from torch_geometric.typing import WITH_PYG_LIB, WITH_TORCH_SPARSE
from torch_geometric.utils import k_hop_subgraph

from geograph import covisit as C
from geograph.covisit.config import CovisitConfig
from geograph.covisit.khop_sampler import KHopSampler, cap_per_target
from geograph.covisit.minibatch import hop_fanouts, pair_batches, pair_loader, sampler_backend
from geograph.covisit.model import build_model
from geograph.covisit.train import epoch_steps
from geograph.errors import ConfigError
from geograph.testing import tiny_world

PYG_SAMPLER = WITH_PYG_LIB or WITH_TORCH_SPARSE


def _hand_graph() -> HeteroData:
    """8 POIs and 3 cells: a co-visit chain 0 -> 1 -> ... -> 5, POI 6 and 7 off it, each POI in
    cell ``poi // 3``, cells 0 -> 1 -> 2 adjacent."""
    d = HeteroData()
    d["poi"].x = torch.arange(8, dtype=torch.float).view(-1, 1)
    d["cell"].x = torch.arange(3, dtype=torch.float).view(-1, 1)
    d["poi", "covisits", "poi"].edge_index = torch.tensor([[0, 1, 2, 3, 4, 6], [1, 2, 3, 4, 5, 7]])
    d["poi", "in", "cell"].edge_index = torch.stack([torch.arange(8), torch.arange(8) // 3])
    d["cell", "rev_in", "poi"].edge_index = d["poi", "in", "cell"].edge_index.flip(0)
    d["cell", "adjacent", "cell"].edge_index = torch.tensor([[0, 1], [1, 2]])
    return d


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_khop_sampler_holds_the_k_hop_neighbourhood_of_the_seeds(hops):
    d = _hand_graph()
    seeds = torch.tensor([[4], [5]])
    loader = LinkLoader(d, link_sampler=KHopSampler(d, [-1] * hops),
                        edge_label_index=(("poi", "covisits", "poi"), seeds), batch_size=1)
    (b,) = list(loader)
    # the k-hop neighbourhood (in-edges, as messages flow) on the homogeneous view
    homo = d.to_homogeneous()
    offset = {nt: i for i, nt in enumerate(d.node_types)}
    start = torch.nonzero(homo.node_type == offset["poi"]).flatten()[0]
    subset, *_ = k_hop_subgraph((start + seeds.flatten()).tolist(), hops, homo.edge_index, num_nodes=homo.num_nodes)
    for nt in d.node_types:
        first = torch.nonzero(homo.node_type == offset[nt]).flatten()[0]
        want = {int(i - first) for i in subset if homo.node_type[i] == offset[nt]}
        assert set(b[nt].n_id.tolist()) == want, nt
    # the seeds come first and edge_label_index points at them; edges are the induced ones
    assert b["poi"].n_id[b["poi", "covisits", "poi"].edge_label_index].flatten().tolist() == [4, 5]
    ei = b["poi", "covisits", "poi"].edge_index
    got = {(int(b["poi"].n_id[s]), int(b["poi"].n_id[t])) for s, t in ei.t().tolist()}
    nodes = set(b["poi"].n_id.tolist())
    full = {(s, t) for s, t in d["poi", "covisits", "poi"].edge_index.t().tolist() if s in nodes and t in nodes}
    assert got == full


def test_two_hops_on_the_hand_graph():
    d = _hand_graph()
    out = KHopSampler(d, [-1, -1]).expand({"poi": torch.tensor([5])})
    # hop 1: POI 4 (co-visit) and cell 1 (in); hop 2: POI 3 (co-visit), POIs 3-5 of cell 1, cell 0
    assert out["poi"].tolist() == [5, 4, 3]
    assert out["cell"].tolist() == [1, 0]


def test_fanout_caps_in_edges_per_node_and_follows_the_generator():
    target = torch.tensor([0, 0, 0, 0, 1, 1, 2, 0, 1])
    pos = cap_per_target(target, 2, torch.Generator().manual_seed(1))
    assert torch.bincount(target[pos]).tolist() == [2, 2, 1]
    again = cap_per_target(target, 2, torch.Generator().manual_seed(1))
    assert torch.equal(pos, again)
    draws = {tuple(cap_per_target(target, 1, torch.Generator().manual_seed(s)).tolist()) for s in range(20)}
    assert len(draws) > 1
    with pytest.raises(ValueError, match="num_neighbors"):
        KHopSampler(_hand_graph(), [0])


def test_loader_backend_is_pyg_with_pyg_lib_else_the_khop_fallback():
    d = _hand_graph()
    loader = pair_loader(d, d["poi", "covisits", "poi"].edge_index, torch.tensor([4]), torch.tensor([5]),
                         batch_size=1, num_neighbors=[-1], relations=["in"])
    if PYG_SAMPLER:
        assert sampler_backend() == "pyg"
        assert type(loader.link_sampler).__name__ == "NeighborSampler"
    else:
        assert sampler_backend() == "khop"
        assert isinstance(loader.link_sampler, KHopSampler)
        # the error documented in docs/guides/minibatch.md, raised at the first batch
        with pytest.warns(UserWarning, match="pyg-lib"):
            nl = NeighborLoader(d, num_neighbors=[2], input_nodes="poi", batch_size=2)
        with pytest.raises(ImportError, match="'NeighborSampler' requires either 'pyg-lib' or 'torch-sparse'"):
            next(iter(nl))


@pytest.fixture(scope="module")
def world():
    return tiny_world(seed=3, n_pois=150, n_images=0)


def _cfg(**train):
    return CovisitConfig.from_dict({
        "data": {"cache_dir": None},
        "model": {"hidden": 16, "head_hidden": [16], "dropout": 0.0},
        "train": {"epochs": 4, "lr": 0.01, "patience": 100, "progress": False, "batch_size": 16, **train},
    })


def test_batches_cover_every_training_pair_once_per_epoch(world):
    prep = C.prepare(_cfg(), world)
    n_train = len(prep.split.pairs["train"])
    for epoch in (1, 2):
        steps = list(epoch_steps(prep, epoch))
        ids = torch.cat([s.ids for s in steps])
        assert sorted(ids.tolist()) == list(range(n_train))
        assert max(s.ids.numel() for s in steps) == 16
        (gd,) = prep.groups  # the tiny world's states fit one group
        pk = prep.split.pairs["train"]
        for s in steps:  # each batch's pairs, mapped back through its subgraph, are its targets
            n_id = s.data["poi"].n_id
            assert torch.equal(gd.sub.poi_index[n_id[s.src]], pk.src[s.ids])
            assert torch.equal(gd.sub.poi_index[n_id[s.dst]], pk.dst[s.ids])


def test_full_neighbourhood_batches_embed_as_the_whole_graph(world):
    prep = C.prepare(_cfg(), world)
    gd = prep.groups[0]
    model = build_model(prep).eval()
    msg, w = gd.message["train"]
    loc = gd.local["train"][:, :40]
    whole = model.encode(gd.sub.data, msg, w)
    batches = list(pair_batches(gd.sub.data, msg, w, loc[0], loc[1], batch_size=16,
                                num_neighbors=hop_fanouts([], prep.cfg.model.layers), relations=prep.cfg.model.relations,
                                backend="khop"))
    assert [b.pos.numel() for b in batches] == [16, 16, 8]
    for b in batches:
        assert b.data["poi"].num_nodes < gd.sub.data["poi"].num_nodes
        h = model.encode(b.data, b.message, b.weight)
        torch.testing.assert_close(h[b.src], whole[b.data["poi"].n_id[b.src]])
        torch.testing.assert_close(h[b.dst], whole[b.data["poi"].n_id[b.dst]])


@pytest.mark.parametrize("fanout", [[], pytest.param([4, 4], marks=pytest.mark.slow)])
def test_minibatch_training_learns_and_repeats_with_a_seed(world, fanout):
    runs = [C.fit(C.prepare(_cfg(num_neighbors=fanout, batch_size=32, epochs=3), world)) for _ in range(2)]
    losses = [h["train_loss"] for h in runs[0].history]
    assert losses[-1] < losses[0]
    assert runs[0].history == runs[1].history  # every metric of every epoch


def test_minibatch_config_checks_and_hash():
    with pytest.raises(ConfigError, match="train.batch_size"):
        CovisitConfig.from_dict({"train": {"batch_size": -1}})
    with pytest.raises(ConfigError, match="train.num_neighbors"):
        CovisitConfig.from_dict({"train": {"num_neighbors": [10, 0]}})
    full = CovisitConfig.from_dict({})
    assert CovisitConfig.from_dict({"train": {"num_neighbors": [5]}}).hash() == full.hash()
    assert CovisitConfig.from_dict({"train": {"batch_size": 64}}).hash() != full.hash()

"""Node-parallel message passing (geograph.nn.halo, geograph.covisit.parts): two gloo ranks,
each holding its part of one graph, give the embeddings and the summed gradients of one process
holding all of it."""

import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch_geometric.data import HeteroData

from geograph.nn import CovisitGNN, ModelConfig
from geograph.nn.halo import SpatialBisection


def _graph(n_poi: int = 120, n_cell: int = 20, seed: int = 0) -> tuple[HeteroData, torch.Tensor, torch.Tensor]:
    """A graph with POIs, cells and images along a band, every edge between nearby nodes (so a
    part's halo is a border, not the graph), co-visit messages, and pairs, some across the band."""
    g = torch.Generator().manual_seed(seed)

    def band(n):  # positions sorted west to east; node i near nodes i +- a few
        lon = torch.sort(-110 + 20 * torch.rand(n, generator=g)).values
        return torch.stack([30 + 2 * torch.rand(n, generator=g), lon], 1)

    def local(n, m, reach):  # m random edges between nodes at most `reach` apart in the band
        a = torch.randint(0, n, (m,), generator=g)
        b = (a + torch.randint(-reach, reach + 1, (m,), generator=g)).clamp(0, n - 1)
        return torch.stack([a, b])

    d = HeteroData()
    d["poi"].x = torch.randn(n_poi, 2, generator=g)
    d["poi"].pos = band(n_poi)
    d["poi"].naics = torch.randint(0, 3, (n_poi, 5), generator=g)
    d["cell"].x = torch.randn(n_cell, 3, generator=g)
    d["cell"].pos = torch.stack([torch.full((n_cell,), 31.0), -110 + 20 * (torch.arange(n_cell) + 0.5) / n_cell], 1)
    cell = ((d["poi"].pos[:, 1] + 110) / 20 * n_cell).long().clamp(0, n_cell - 1)
    d["poi"].cell = cell
    d["image"].x = torch.randn(30, 4, generator=g)
    d["image"].pos = band(30)
    in_ei = torch.stack([torch.arange(n_poi), cell])
    d["poi", "in", "cell"].edge_index = in_ei
    d["cell", "rev_in", "poi"].edge_index = in_ei.flip(0)
    img_cell = ((d["image"].pos[:, 1] + 110) / 20 * n_cell).long().clamp(0, n_cell - 1)
    img = torch.stack([torch.arange(30), img_cell])
    d["image", "in", "cell"].edge_index = img
    d["cell", "rev_in", "image"].edge_index = img.flip(0)
    d["cell", "adjacent", "cell"].edge_index = local(n_cell, 40, 1)
    d["poi", "near", "poi"].edge_index = local(n_poi, 300, 3)
    d["image", "similar", "image"].edge_index = local(30, 50, 2)
    far = torch.randint(0, n_poi, (2, 30), generator=g)  # pairs across the band (as zero pairs are drawn)
    return d, local(n_poi, 400, 6), torch.cat([local(n_poi, 150, 6), far], 1)


def _model(first_layer: str = "projected", recompute: bool = False) -> CovisitGNN:
    torch.manual_seed(3)
    cfg = ModelConfig(hidden=8, layers=2, head_hidden=[8], dropout=0.0, first_layer=first_layer, recompute=recompute,
                      relations=["covisits", "near", "in", "adjacent", "similar"])
    return CovisitGNN(cfg, poi_in=2, cell_in=3, image_in=4, naics_sizes=[3, 3, 3, 3, 3]).train()


def _worker(rank: int, world: int, init: str, out: str, first_layer: str, recompute: bool) -> None:
    from geograph.covisit.parts import split_group

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        d, msg, pairs = _graph()
        w = torch.rand(msg.size(1), 2, generator=torch.Generator().manual_seed(1))
        feats = torch.rand(pairs.size(1), 4, generator=torch.Generator().manual_seed(2))
        part = split_group(d, msg, pairs, rank, world)
        model = _model(first_layer, recompute)
        rows = part.messages(msg)
        sel = part.owned(pairs[0])
        loc = part.local(pairs[:, sel])
        h = model.encode(part.data, part.local(msg[:, rows]), w[rows], part.plan)
        pred = model.head(h[loc[0]], h[loc[1]], model.pair_inputs(feats[sel]))
        pred.square().sum().backward()
        own = torch.nonzero(part.own).flatten()
        torch.save({"own": own, "h": h[part.poi_local[own]].detach(), "pred": pred.detach(), "sel": sel,
                    "grads": {n: p.grad for n, p in model.named_parameters() if p.grad is not None},
                    "n_local": part.data["poi"].num_nodes, "n_head": part.plan.head.n_halo["poi"]},
                   os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_spatial_bisection_balances_parts_and_assigns_other_points_by_the_same_cuts():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(30, 40, 1001), rng.uniform(-120, -100, 1001)
    for k in (1, 2, 3, 4):
        parts = SpatialBisection(lat, lon, k).assign(lat, lon)
        counts = np.bincount(parts, minlength=k)
        assert counts.max() - counts.min() <= 1, counts
    cuts = SpatialBisection(lat, lon, 2)
    west = cuts.assign(np.array([35.0]), np.array([-119.9]))[0]
    east = cuts.assign(np.array([35.0]), np.array([-100.1]))[0]
    assert {west, east} == {0, 1}  # the longer side (longitude) is cut
    with pytest.raises(ValueError, match="n_parts"):
        SpatialBisection(lat, lon, 0)


@pytest.mark.parametrize("first_layer,recompute", [("projected", False), ("raw", True)])
def test_two_ranks_give_the_embeddings_and_summed_gradients_of_one_process(tmp_path, first_layer, recompute):
    d, msg, pairs = _graph()
    w = torch.rand(msg.size(1), 2, generator=torch.Generator().manual_seed(1))
    feats = torch.rand(pairs.size(1), 4, generator=torch.Generator().manual_seed(2))
    model = _model(first_layer, recompute)
    h = model.encode(d, msg, w)
    pred = model.head(h[pairs[0]], h[pairs[1]], model.pair_inputs(feats))
    pred.square().sum().backward()
    ref = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    init = f"file://{tmp_path / 'rdzv'}"
    mp.start_processes(_worker, args=(2, init, str(tmp_path), first_layer, recompute), nprocs=2, start_method="spawn")
    r = [torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in range(2)]
    owned = torch.cat([x["own"] for x in r])
    assert torch.equal(torch.sort(owned).values, torch.arange(d["poi"].num_nodes))  # each POI owned once
    assert all(x["n_local"] < d["poi"].num_nodes for x in r)  # a part holds less than the graph
    assert all(x["n_head"] > 0 for x in r)  # far pair destinations come as final embeddings only
    for x in r:
        torch.testing.assert_close(x["h"], h[x["own"]].detach(), rtol=1e-5, atol=1e-6)
    got = torch.zeros(pairs.size(1))
    for x in r:
        got[x["sel"]] = x["pred"]
    torch.testing.assert_close(got, pred.detach(), rtol=1e-5, atol=1e-6)
    assert set(r[0]["grads"]) == set(ref) and len(ref) > 10
    for name, g in ref.items():
        torch.testing.assert_close(r[0]["grads"][name] + r[1]["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)

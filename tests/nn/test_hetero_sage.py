"""HeteroSAGE computes the function of PyG's HeteroConv of (weighted) SAGEConv layers."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import HeteroConv

from geograph.nn.covisit_model import CovisitGNN, ModelConfig
from geograph.nn.hetero_sage import HeteroSAGE, aggregate
from geograph.nn.weighted_sage_conv import Adjacency, WeightedSAGEConv, sparse_adjacency

POI_POI = ("poi", "covisits", "poi")
POI_POI_REV = ("poi", "rev_covisits", "poi")
POI_CELL = ("poi", "in", "cell")
CELL_POI = ("cell", "rev_in", "poi")
EDGE_TYPES = [POI_POI, POI_POI_REV, POI_CELL, CELL_POI]


def _graph(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = {"poi": 30, "cell": 7}
    x = {"poi": torch.randn(n["poi"], 8, generator=g), "cell": torch.randn(n["cell"], 5, generator=g)}
    edges = {}
    for et in EDGE_TYPES:
        e = 60 if et[0] == et[2] else n["poi"]
        edges[et] = torch.stack(
            [torch.randint(0, n[et[0]], (e,), generator=g), torch.randint(0, n[et[2]], (e,), generator=g)]
        )
    weights = {POI_POI: torch.rand(60, generator=g) + 0.5, POI_POI_REV: torch.rand(60, generator=g) + 0.5}
    return x, edges, weights


def _reference(aggr: str) -> HeteroConv:
    torch.manual_seed(1)
    dims = {"poi": 8, "cell": 5}
    return HeteroConv(
        {et: WeightedSAGEConv((dims[et[0]], dims[et[2]]), 12, aggr=aggr) for et in EDGE_TYPES}, aggr="sum"
    )


def _converted(ref: HeteroConv, aggr: str, dst_types=("poi", "cell")) -> HeteroSAGE:
    layer = HeteroSAGE(EDGE_TYPES, {"poi": 8, "cell": 5}, 12, dst_types=list(dst_types), aggr=aggr)
    state = {k: v for k, v in ref.state_dict().items() if k.split(".")[1] in layer.convs}
    layer.load_state_dict(state)  # HeteroConv's own keys
    return layer


@pytest.mark.parametrize("aggr", ["mean", "sum", "max"])
def test_equals_heteroconv_on_edge_indices(aggr):
    x, edges, weights = _graph()
    ref = _reference(aggr)
    layer = _converted(ref, aggr)
    want = ref(x, edges, edge_weight_dict=weights)
    got = layer(x, edges, weights)
    assert set(got) == set(want) == {"poi", "cell"}
    for t in got:
        torch.testing.assert_close(got[t], want[t], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("aggr", ["mean", "sum"])
def test_equals_heteroconv_on_csr_adjacency_with_gradients(aggr):
    x, edges, weights = _graph(3)
    ref = _reference(aggr)
    layer = _converted(ref, aggr)
    n = {"poi": 30, "cell": 7}
    csr = {et: sparse_adjacency(e, weights.get(et), n[et[0]], n[et[2]], aggr) for et, e in edges.items()}
    xa = {t: v.clone().requires_grad_() for t, v in x.items()}
    xb = {t: v.clone().requires_grad_() for t, v in x.items()}
    want = ref(xa, edges, edge_weight_dict=weights)
    got = layer(xb, csr)
    for t in got:
        torch.testing.assert_close(got[t], want[t], rtol=1e-5, atol=1e-5)
    sum(v.square().sum() for v in want.values()).backward()
    sum(v.square().sum() for v in got.values()).backward()
    for t in x:
        torch.testing.assert_close(xb[t].grad, xa[t].grad, rtol=1e-4, atol=1e-5)


def test_dst_types_restricts_the_outputs_and_the_weights():
    x, edges, weights = _graph()
    ref = _reference("mean")
    layer = _converted(ref, "mean", dst_types=["poi"])
    assert [et[2] for et in layer.edge_types] == ["poi", "poi", "poi"]
    assert len(layer.state_dict()) == 3 * 3  # lin_l weight and bias, lin_r weight per relation
    got = layer(x, edges, weights)
    assert list(got) == ["poi"]
    torch.testing.assert_close(
        got["poi"], ref(x, edges, edge_weight_dict=weights)["poi"], rtol=1e-5, atol=1e-5
    )


def test_missing_relation_aggregates_to_zero():
    x, edges, weights = _graph()
    layer = HeteroSAGE(EDGE_TYPES, {"poi": 8, "cell": 5}, 12)
    without = {et: e for et, e in edges.items() if et != POI_POI}
    empty = {**without, POI_POI: torch.zeros(2, 0, dtype=torch.long)}
    a, b = layer(x, without, weights), layer(x, empty, {POI_POI_REV: weights[POI_POI_REV]})
    torch.testing.assert_close(a["poi"], b["poi"])


def test_aggregate_weighted_mean():
    x = torch.tensor([[1.0], [2.0], [4.0]])
    ei = torch.tensor([[0, 1, 2], [0, 0, 1]])
    w = torch.tensor([1.0, 3.0, 0.5])
    want = torch.tensor([[(1 * 1 + 3 * 2) / 2], [0.5 * 4], [0.0]])
    torch.testing.assert_close(aggregate(ei, x, 3, w, "mean"), want)
    torch.testing.assert_close(aggregate(sparse_adjacency(ei, w, 3, 3, "mean"), x, 3), want)


def test_covisit_model_loads_weights_saved_with_cell_outputs_in_the_last_layer():
    """Weights saved when the last layer also computed cells (unread) load strictly."""
    cfg = ModelConfig(layers=2, hidden=16, head_hidden=[8])
    model = CovisitGNN(cfg, 4, 3, 0, [3, 4, 5, 6, 7])
    state = model.state_dict()
    old = dict(state)
    for et in model.edge_types:
        if et[2] == "cell":
            key = "convs.1.convs.<" + "___".join(et) + ">."
            old[key + "lin_l.weight"] = torch.zeros(16, 16)
            old[key + "lin_l.bias"] = torch.zeros(16)
            old[key + "lin_r.weight"] = torch.zeros(16, 16)
    old["norms.1.cell.weight"] = torch.ones(16)
    old["norms.1.cell.bias"] = torch.zeros(16)
    assert len(old) > len(state)
    model.load_state_dict(old)  # strict
    assert model.convs[1].dst_types == ["poi"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize("aggr", ["mean", "sum"])
def test_adjacency_matmul_gradient_uses_its_transpose(aggr):
    g = torch.Generator().manual_seed(5)
    ei = torch.stack([torch.randint(0, 9, (40,), generator=g), torch.randint(0, 6, (40,), generator=g)])
    w = torch.rand(40, generator=g)
    adj = Adjacency(ei, w, 9, 6, aggr)
    dense = adj.csr.to_dense()
    x1 = torch.randn(9, 4, generator=g, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    out = adj.matmul(x1)
    torch.testing.assert_close(out, dense @ x2)
    torch.testing.assert_close(adj.transposed().to_dense(), dense.T)
    out.square().sum().backward()
    (dense @ x2).square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)


def test_trains_as_the_per_relation_layers_do():
    """Same parameters and gradients: after optimizer steps (momentum, weight decay, gradient
    clipping) both layers still compute the same function. (SGD: Adam's normalisation would
    blow the last-bit rounding of near-zero gradients up to whole steps.)"""
    x, edges, weights = _graph(7)
    ref = _reference("mean")
    layer = _converted(ref, "mean")
    opts = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.5, weight_decay=0.1) for m in (ref, layer)]
    target = {"poi": torch.randn(30, 12, generator=torch.Generator().manual_seed(8))}
    for _ in range(5):
        for model, opt, kw in ((ref, opts[0], {"edge_weight_dict": weights}), (layer, opts[1], {})):
            out = model(x, edges, **kw) if kw else model(x, edges, weights)
            loss = (out["poi"] - target["poi"]).square().mean() + out["cell"].square().mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
    want, got = ref(x, edges, edge_weight_dict=weights), layer(x, edges, weights)
    for t in got:
        torch.testing.assert_close(got[t], want[t], rtol=1e-4, atol=1e-4)


def test_csr_mm_equals_torch_mm_with_empty_rows_and_a_strided_input():
    from geograph.nn.weighted_sage_conv import csr_mm, sparse_adjacency

    torch.manual_seed(6)
    ei = torch.tensor([[0, 1, 1, 3], [2, 2, 0, 2]])  # destinations 1 and 3 receive nothing
    adj = sparse_adjacency(ei, torch.rand(4), 4, 4, "mean")
    wide = torch.randn(4, 10)
    x = wide[:, 3:8]  # a column block: strided
    got = csr_mm(adj, x)
    torch.testing.assert_close(got, torch.mm(adj, x.contiguous()))
    assert torch.equal(got[1], torch.zeros(5)) and torch.equal(got[3], torch.zeros(5))
    assert got.is_contiguous() and got.data_ptr() != x.data_ptr()

import math

import pytest
import torch
from torch_geometric.nn import SAGEConv

from geograph.errors import ConfigError
from geograph.nn import CovisitGNN, EdgeHead, ModelConfig, NAICSEncoder, WeightedSAGEConv, location_encoding
from geograph.nn.covisit_model import transform_pair_features


def test_naics_encoder_hierarchical_shapes_repr_and_parent_fallback():
    enc = NAICSEncoder([3, 4, 4, 5, 6], dim=8)
    assert str(enc) == "NAICSEncoder(levels=5, dim=8, mode=hierarchical)"
    idx = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 4, 0]])
    out = enc(idx)
    assert out.shape == (2, 8)
    # an unseen 6-digit code (index 0) is the sum of its ancestors' embeddings
    parents = sum(enc.tables[j](idx[1:, j]) for j in range(4))
    assert torch.allclose(out[1:], parents)
    assert torch.equal(enc.tables[4].weight[0], torch.zeros(8))


def test_naics_encoder_flat_uses_finest_level_only():
    enc = NAICSEncoder([3, 4, 4, 5, 6], dim=4, mode="flat")
    a = enc(torch.tensor([[1, 1, 1, 1, 2]]))
    b = enc(torch.tensor([[2, 3, 3, 4, 2]]))
    assert torch.allclose(a, b)
    assert len(enc.tables) == 1
    with pytest.raises(ValueError, match="mode"):
        NAICSEncoder([3], mode="deep")


def test_weighted_sage_equals_sage_without_weights_and_scales_messages():
    torch.manual_seed(0)
    conv = WeightedSAGEConv(4, 3)
    ref = SAGEConv(4, 3)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(5, 4)
    ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    assert torch.allclose(conv(x, ei), ref(x, ei), atol=1e-6)
    root = conv.lin_r(x)
    neigh1 = conv(x, ei) - root - conv.lin_l.bias
    neigh2 = conv(x, ei, torch.full((4,), 2.0)) - root - conv.lin_l.bias
    assert torch.allclose(neigh2, 2 * neigh1, atol=1e-5)
    assert str(conv) == "WeightedSAGEConv(4, 3, aggr=mean)"


def test_edge_head_shapes_and_repr():
    head = EdgeHead(8, [16], product=True)
    out = head(torch.randn(5, 8), torch.randn(5, 8), torch.randn(5, 4))
    assert out.shape == (5,)
    assert str(head) == "EdgeHead(8, hidden=[16], product=True)"


def test_pair_inputs_with_and_without_neighbour_rank():
    raw = torch.tensor([[2.0, 1.0, 6.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    with_rank = transform_pair_features(raw)
    torch.testing.assert_close(with_rank[0], torch.tensor([math.log1p(2.0), 1.0, 1.0, math.log1p(3.0) / 4]))
    assert transform_pair_features(raw, rank=False).shape == (2, 3)
    model = CovisitGNN(ModelConfig(hidden=8, layers=1, pair_rank=False), 2, 3, 0, [3] * 5)
    assert model.head.pair_dim == 3 and model.pair_inputs(raw).shape == (2, 3)
    with pytest.raises(ValueError, match="neighbour rank"):
        transform_pair_features(torch.tensor([[1.0, 0.0, 2.0, float("nan")]]))


def test_residual_features_average_each_nodes_message_residuals():
    from geograph.nn.covisit_model import residual_means

    ei = torch.tensor([[0, 0, 1], [1, 2, 2]])
    got = residual_means(ei, torch.tensor([1.0, 3.0, -2.0]), 4)
    # as source: node 0 sends 1 and 3, node 1 sends -2; as target: node 1 gets 1, node 2 gets 3 and -2
    torch.testing.assert_close(got, torch.tensor([[2.0, 0.0], [-2.0, 1.0], [0.0, 0.5], [0.0, 0.0]]))
    torch.manual_seed(0)
    model = CovisitGNN(ModelConfig(hidden=8, layers=1, dropout=0.0), 2, 3, 0, [3] * 5).eval()
    d = _tiny_hetero()
    msg = torch.tensor([[0], [5]])
    a = model.encode(d, msg, torch.tensor([[1.0, 0.0]]))
    b = model.encode(d, msg, torch.tensor([[1.0, 2.0]]))  # same weight, another residual
    assert not torch.allclose(a[5], b[5]) and torch.allclose(a[3], b[3])
    with pytest.raises(ValueError, match=r"\(M, 2\)"):
        model.encode(d, msg, torch.tensor([1.0]))
    with pytest.raises(ConfigError, match="weighted_covisits"):
        ModelConfig(weighted_covisits=False, residual_features=True)
    assert ModelConfig(weighted_covisits=False).residual_features is False  # auto: off without weights


def test_brand_embedding_feeds_the_poi_inputs():
    torch.manual_seed(0)
    model = CovisitGNN(ModelConfig(hidden=8, layers=1, dropout=0.0, brand_dim=4), 2, 3, 0, [3] * 5, n_brands=4).eval()
    assert model.brand.weight.shape == (4, 4) and str(model).endswith("brand_dim=4)")
    d = _tiny_hetero()
    d["poi"].brand_idx = torch.tensor([0, 1, 2, 3, 2, 0])
    msg = torch.zeros(2, 0, dtype=torch.long)
    a = model.encode(d, msg, None)
    d["poi"].brand_idx = torch.tensor([0, 1, 2, 3, 2, 3])  # POI 5 now carries brand 3
    b = model.encode(d, msg, None)
    assert not torch.allclose(a[5], b[5])
    with pytest.raises(ConfigError, match="brand_dim"):
        ModelConfig(brand_dim=-1)


def test_location_encoding_shape_and_zero_freqs():
    pos = torch.tensor([[40.0, -74.0], [34.0, -118.0]])
    assert location_encoding(pos, 4).shape == (2, 16)
    assert location_encoding(pos, 0).shape == (2, 0)


def test_model_config_validates():
    with pytest.raises(ConfigError, match="model.naics"):
        ModelConfig(naics="deep")
    with pytest.raises(ConfigError, match="relations"):
        ModelConfig(relations=["teleport"])
    with pytest.raises(ConfigError, match="unknown model config"):
        ModelConfig.from_dict({"hiden": 3})
    with pytest.raises(ConfigError, match="model.first_layer"):
        ModelConfig(first_layer="wide")


def _tiny_hetero():
    from torch_geometric.data import HeteroData

    d = HeteroData()
    d["poi"].x = torch.randn(6, 2)
    d["poi"].pos = torch.tensor([[40.0 + i * 0.01, -74.0] for i in range(6)])
    d["poi"].naics = torch.randint(0, 3, (6, 5))
    d["cell"].x = torch.randn(2, 3)
    d["poi", "in", "cell"].edge_index = torch.tensor([[0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 1, 1]])
    d["cell", "rev_in", "poi"].edge_index = d["poi", "in", "cell"].edge_index.flip(0)
    d["cell", "adjacent", "cell"].edge_index = torch.tensor([[0, 1], [1, 0]])
    d["poi", "near", "poi"].edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
    return d


@pytest.mark.parametrize("layers,jk", [(0, True), (2, True), (2, False)])
def test_covisit_gnn_shapes_and_repr(layers, jk):
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=8, layers=layers, jk=jk, head_hidden=[8])
    model = CovisitGNN(cfg, poi_in=2, cell_in=3, image_in=0, naics_sizes=[3, 3, 3, 3, 3])
    d = _tiny_hetero()
    msg = torch.tensor([[0, 2], [1, 5]])
    h = model.encode(d, msg, torch.ones(2, 2))
    assert h.shape == (6, 16 if (jk and layers) else 8)
    out = model(d, msg, torch.ones(2, 2), torch.tensor([0, 1]), torch.tensor([3, 4]), torch.rand(2, 4))
    assert out.shape == (2,)
    assert str(model).startswith(f"CovisitGNN(naics=hierarchical, hidden=8, layers={layers}")


def test_raw_first_layer_aggregates_the_inputs_and_trains_the_naics_tables():
    """model.first_layer: raw: layer 1 takes the raw node inputs (its weights are input-wide),
    and the NAICS tables get a gradient through the aggregation."""
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=8, layers=2, head_hidden=[8], first_layer="raw", dropout=0.0)
    model = CovisitGNN(cfg, poi_in=2, cell_in=3, image_in=0, naics_sizes=[3, 3, 3, 3, 3])
    n_in = 2 + 4 * cfg.location_freqs + cfg.naics_dim + 4 + 2
    conv = model.convs[0].convs["<poi___near___poi>"]
    assert conv.lin_l.weight.shape == (8, n_in) and conv.lin_r.weight.shape == (8, n_in)
    assert model.convs[0].convs["<cell___rev_in___poi>"].lin_l.weight.shape == (8, 3)
    assert model.convs[1].convs["<poi___near___poi>"].lin_l.weight.shape == (8, 8)
    d = _tiny_hetero()
    msg = torch.tensor([[0, 2], [1, 5]])
    out = model(d, msg, torch.ones(2, 2), torch.tensor([0, 1]), torch.tensor([3, 4]), torch.rand(2, 4))
    out.sum().backward()
    assert model.naics.tables[1].weight.grad.abs().sum() > 0
    assert conv.lin_l.weight.grad.abs().sum() > 0


def test_covisit_gnn_message_edges_change_embeddings():
    torch.manual_seed(0)
    model = CovisitGNN(ModelConfig(hidden=8, layers=1, dropout=0.0), 2, 3, 0, [3, 3, 3, 3, 3]).eval()
    d = _tiny_hetero()
    a = model.encode(d, torch.zeros(2, 0, dtype=torch.long), None)
    b = model.encode(d, torch.tensor([[0], [5]]), torch.ones(1, 2))
    assert not torch.allclose(a[5], b[5])  # node 5 received a co-visit message
    assert torch.allclose(a[3], b[3])  # node 3 did not


@pytest.mark.parametrize("aggr", ["mean", "sum"])
def test_sparse_adjacency_aggregation_equals_gather_scatter(aggr):
    from geograph.nn.weighted_sage_conv import sparse_adjacency

    torch.manual_seed(1)
    conv = WeightedSAGEConv((4, 5), 3, aggr=aggr)
    x_src, x_dst = torch.randn(7, 4), torch.randn(5, 5)
    ei = torch.tensor([[0, 3, 3, 6, 1, 1], [4, 0, 0, 2, 4, 1]])  # a duplicate edge, dst 3 isolated
    w = torch.rand(6)
    ref = conv((x_src, x_dst), ei, w)
    adj = sparse_adjacency(ei, w, 7, 5, aggr)
    assert adj.shape == (5, 7) and adj.layout == torch.sparse_csr
    torch.testing.assert_close(conv((x_src, x_dst), adj), ref)
    with pytest.raises(ValueError, match="sparse aggregation"):
        sparse_adjacency(ei, w, 7, 5, "max")


def test_covisit_gnn_sparse_path_matches_gather_scatter_forward_and_gradients():
    d = _tiny_hetero()
    msg, w = torch.tensor([[0, 2, 2], [1, 5, 1]]), torch.tensor([[1.0, 0.3], [2.0, -1.0], [0.5, 0.0]])
    outs, grads = [], []
    for sparse in (True, False):
        torch.manual_seed(0)
        model = CovisitGNN(ModelConfig(hidden=8, layers=2, dropout=0.0, sparse=sparse), 2, 3, 0, [3] * 5)
        out = model(d, msg, w, torch.tensor([0, 1, 4]), torch.tensor([3, 4, 5]), torch.rand(3, 4))
        out.sum().backward()
        outs.append(out.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_static_adjacency_is_cached_per_edge_tensor_and_rebuilt_when_it_changes():
    import copy

    torch.manual_seed(0)
    model = CovisitGNN(ModelConfig(hidden=8, layers=1, dropout=0.0), 2, 3, 0, [3] * 5).eval()
    d = _tiny_hetero()
    msg = torch.tensor([[0], [5]])
    a = model.encode(d, msg, torch.ones(1, 2))
    n_cached = len(model._adj_cache)
    assert n_cached == 4  # near, in, rev_in, adjacent; co-visit edges are never cached
    model.encode(d, msg, torch.ones(1, 2))
    assert len(model._adj_cache) == n_cached
    d["poi", "near", "poi"].edge_index[1, 0] = 4  # in-place change: the cached CSR is stale
    b = model.encode(d, msg, torch.ones(1, 2))
    ref = CovisitGNN(ModelConfig(hidden=8, layers=1, dropout=0.0, sparse=False), 2, 3, 0, [3] * 5).eval()
    ref.load_state_dict(model.state_dict())
    torch.testing.assert_close(b, ref.encode(d, msg, torch.ones(1, 2)))
    assert not torch.allclose(a, b)
    clone = copy.deepcopy(model)  # the cache is not copied (weak references)
    assert clone._adj_cache == {}
    torch.testing.assert_close(clone.encode(d, msg, torch.ones(1, 2)), b)


@pytest.mark.parametrize("first_layer", ["projected", "raw"])
def test_recompute_gives_the_same_outputs_and_gradients(first_layer):
    """model.recompute keeps only the layers' inputs and replays them (dropout masks included)
    in the backward pass: the same loss and the same gradients."""
    d = _tiny_hetero()
    msg = torch.tensor([[0, 2, 3], [1, 5, 4]])
    w = torch.rand(3, 2)
    grads = []
    for recompute in (False, True):
        torch.manual_seed(0)
        cfg = ModelConfig(hidden=8, layers=2, head_hidden=[8], recompute=recompute, first_layer=first_layer)
        model = CovisitGNN(cfg, poi_in=2, cell_in=3, image_in=0, naics_sizes=[3, 3, 3, 3, 3]).train()
        torch.manual_seed(1)
        out = model(d, msg, w, torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.rand(3, 4))
        out.square().sum().backward()
        grads.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (o1, g1), (o2, g2) = grads
    assert torch.equal(o1, o2)
    assert g1.keys() == g2.keys() and len(g1) > 10
    for name in g1:
        torch.testing.assert_close(g2[name], g1[name], rtol=0, atol=0, msg=name)


def test_edge_head_equals_its_mlp_on_the_concatenated_inputs():
    """The head computes its first layer block by block: the function of ``mlp(cat(...))``."""
    torch.manual_seed(5)
    head = EdgeHead(6, [8, 5], product=True, dropout=0.0)
    hs, hd, pair = torch.randn(11, 6), torch.randn(11, 6), torch.randn(11, 4)
    want = head.mlp(torch.cat([hs, hd, hs * hd, pair], dim=-1)).squeeze(-1)
    torch.testing.assert_close(head(hs, hd, pair), want)
    plain = EdgeHead(6, [], product=False)
    torch.testing.assert_close(plain(hs, hd, pair), plain.mlp(torch.cat([hs, hd, pair], -1)).squeeze(-1))


@pytest.mark.parametrize("product", [True, False])
@pytest.mark.parametrize("n_pairs", [3, 7, 40])
def test_edge_head_score_is_the_head_on_gathered_rows(product, n_pairs):
    """``score(h, src, dst)`` is ``head(h[src], h[dst])`` in value and gradient, whether it gathers
    first (fewer pairs than rows) or multiplies the rows first (more pairs than rows)."""
    torch.manual_seed(6)
    head = EdgeHead(6, [8, 5], product=product, dropout=0.0)
    h = torch.randn(7, 6, requires_grad=True)
    src, dst = torch.randint(0, 7, (n_pairs,)), torch.randint(0, 7, (n_pairs,))
    pair = torch.randn(n_pairs, 4)
    got = head.score(h, src, dst, pair)
    g_got = torch.autograd.grad(got.square().sum(), [h, *head.parameters()])
    want = head(h[src], h[dst], pair)
    g_want = torch.autograd.grad(want.square().sum(), [h, *head.parameters()])
    torch.testing.assert_close(got, want)
    for a, b in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, b)
    # without gradients the pairs go through in chunks (here of 3): the same numbers
    head.score_chunk = 3
    with torch.no_grad():
        torch.testing.assert_close(head.score(h, src, dst, pair), want.detach())
        assert head.score(h, src[:0], dst[:0], pair[:0]).shape == (0,)
    assert head.score(h, src[:0], dst[:0], pair[:0]).shape == (0,)


@pytest.mark.parametrize("first_layer", ["projected", "raw"])
def test_fused_relu_dropout_trains_as_the_separate_modules_do(first_layer, monkeypatch):
    """On the CPU the model folds the dropout scale into the norm, the input projection and the
    head, and takes ReLU and the mask in one pass: with the same seed, the outputs and gradients
    of the plain ReLU -> Dropout path (forced here) up to rounding."""
    import geograph.nn.covisit_model as cm

    d = _tiny_hetero()
    msg, w = torch.tensor([[0, 2, 3], [1, 5, 4]]), torch.rand(3, 2)
    runs = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(cm, "relu_dropout_scale", lambda *a: None)
        torch.manual_seed(0)
        cfg = ModelConfig(hidden=16, layers=2, head_hidden=[16], dropout=0.3, first_layer=first_layer)
        model = CovisitGNN(cfg, poi_in=2, cell_in=3, image_in=0, naics_sizes=[3] * 5).train()
        torch.manual_seed(1)
        out = model(d, msg, w, torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.rand(3, 4))
        out.square().sum().backward()
        runs.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (o1, g1), (o2, g2) = runs
    torch.testing.assert_close(o1, o2)
    assert g1.keys() == g2.keys()
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], msg=name)


def test_a_torch_layer_norm_swapped_in_takes_the_unfused_path(monkeypatch):
    """benchmarks/determinism.py swaps torch's LayerNorm in for geograph's; the fused path, which
    passes the dropout scale to geograph's norm, must then step aside."""
    import geograph.nn.covisit_model as cm

    monkeypatch.setattr(cm, "LayerNorm", torch.nn.LayerNorm)
    torch.manual_seed(0)
    model = CovisitGNN(ModelConfig(hidden=8, layers=2, head_hidden=[8]), 2, 3, 0, [3] * 5).train()
    assert isinstance(model.norms[0]["poi"], torch.nn.LayerNorm)
    out = model(_tiny_hetero(), torch.tensor([[0], [5]]), torch.rand(1, 2), torch.tensor([0]), torch.tensor([3]), torch.rand(1, 4))
    out.sum().backward()
    assert model.norms[0]["poi"].weight.grad is not None

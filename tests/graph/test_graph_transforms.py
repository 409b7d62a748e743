"""FeaturePreprocessor: statistics from training nodes only, NAICS fallback, a PyG transform that
never modifies its input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from graph_worlds import cell_world
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from geograph.constants import CELL, POI
from geograph.graph import FeaturePreprocessor, GeoGraph, GraphConfig, build_graph

CFG = GraphConfig(cell_resolution=7, near_k=1, near_radius_km=0.1, image_k=1)
# train: a, b, c, e (cells c0, c0, c1, c3); held out: d (c2, NAICS 721110) and f (c3, 445110)
TRAIN = torch.tensor([True, True, True, False, True, False])


@pytest.fixture
def graph() -> GeoGraph:
    return build_graph(cell_world(), CFG)


def test_poi_standardisation_uses_train_rows_only(graph):
    pre = FeaturePreprocessor(log_features=False).fit(graph, TRAIN)
    train_visits = np.array([10.0, 20.0, 30.0, 50.0])  # a, b, c, e
    assert pre.poi_mean.tolist() == pytest.approx([train_visits.mean()])  # 27.5
    assert pre.poi_std.tolist() == pytest.approx([train_visits.std()])  # population std, 14.79
    out = pre.transform(graph)
    want = (np.array([10, 20, 30, 40, 50, 60.0]) - 27.5) / train_visits.std()
    assert out.data[POI].x[:, 0].tolist() == pytest.approx(want.tolist(), rel=1e-5)
    assert out.data[POI].x[TRAIN].mean().item() == pytest.approx(0.0, abs=1e-6)


def test_test_rows_change_nothing(graph):
    a = FeaturePreprocessor().fit(graph, TRAIN)
    other = GeoGraph(copy.deepcopy(graph.data), graph.index, graph.config, graph.stats)
    other.data[POI].x[~TRAIN] = torch.tensor([[1e9], [-7.0]])  # wild held-out values
    other.data[POI].naics_code[~TRAIN] = torch.tensor([999999, 111111])
    b = FeaturePreprocessor().fit(other, TRAIN)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        same = torch.equal(sa[k], sb[k]) if isinstance(sa[k], torch.Tensor) else sa[k] == sb[k]
        assert same, k
    # ... while fitting on all rows does see them
    c = FeaturePreprocessor(log_features=False).fit(other)
    assert c.poi_mean.item() > 1e8


def test_cell_statistics_come_from_cells_of_train_pois(graph):
    pre = FeaturePreprocessor(log_features=False).fit(graph, TRAIN)
    cells = torch.unique(graph.data[POI].cell[TRAIN])  # c0, c1, c3: not c2 (only d) nor c4 (image only)
    assert len(cells) == 3
    x = graph.data[CELL].x[cells].double()
    assert pre.cell_mean.tolist() == pytest.approx(x.mean(0).tolist())
    assert pre.cell_std.tolist() == pytest.approx(x.std(0, unbiased=False).tolist())


def test_heavy_tailed_columns_are_logged_with_train_statistics(graph):
    g = GeoGraph(copy.deepcopy(graph.data), graph.index, graph.config, graph.stats)
    g.data[POI].x[:, 0] = torch.tensor([1.0, 1.0, 2.0, 5e6, 1e5, 3.0])  # d (5e6) is held out
    pre = FeaturePreprocessor().fit(g, TRAIN)
    assert pre.poi_log.tolist() == [True]  # train max 1e5 > 100 x train median 1.5
    logged = np.log1p(np.array([1.0, 1.0, 2.0, 1e5]))
    assert pre.poi_mean.item() == pytest.approx(logged.mean(), rel=1e-6)
    assert pre.poi_std.item() == pytest.approx(logged.std(), rel=1e-6)


def test_naics_vocabulary_fitted_on_train_pois_and_unseen_code_falls_back(graph):
    pre = FeaturePreprocessor().fit(graph, TRAIN)
    # train codes: 722515 (a, e), 722513 (b), 722330 (c); held out: 721110 (d), 445110 (f)
    assert pre.vocab.index[2] == {"72": 1}
    assert pre.vocab.index[3] == {"722": 1}
    assert pre.vocab.index[4] == {"7223": 1, "7225": 2}
    assert pre.vocab.index[6] == {"722330": 1, "722513": 2, "722515": 3}
    out = pre.transform(graph).data[POI].naics
    assert out.shape == (6, 5) and out.dtype == torch.long
    assert out.tolist() == [
        [1, 1, 2, 2, 3],  # a 722515
        [1, 1, 2, 2, 2],  # b 722513
        [1, 1, 1, 1, 1],  # c 722330
        [1, 0, 0, 0, 0],  # d 721110: only its sector 72 was seen
        [1, 1, 2, 2, 3],  # e 722515
        [0, 0, 0, 0, 0],  # f 445110: nothing seen
    ]
    # an unseen 6-digit code under a seen 5-digit parent keeps the parent's indices
    assert pre.vocab.transform(["722514"]).tolist() == [[1, 1, 2, 2, 0]]


def _tensors(data) -> dict:
    """Every tensor of every node and edge store, cloned, by (store, key)."""
    out = {}
    for store in (*data.node_stores, *data.edge_stores):
        for k, v in store.items():
            if isinstance(v, torch.Tensor):
                out[store._key, k] = v.clone()
    return out


def test_transform_does_not_modify_input(graph):
    before = _tensors(graph.data)
    keys_before = {nt: set(graph.data[nt].keys()) for nt in graph.data.node_types}
    pre = FeaturePreprocessor().fit(graph, TRAIN)
    out = pre.transform(graph)
    assert {nt: set(graph.data[nt].keys()) for nt in graph.data.node_types} == keys_before
    after = _tensors(graph.data)
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    assert out.data[POI].x.shape == (6, 1) and out.data[CELL].x.shape == (5, 1)
    assert not torch.equal(out.data[POI].x, graph.data[POI].x)  # standardised ...
    assert torch.equal(out.data[POI].x_unscaled, graph.data[POI].x)  # ... the builder's values kept
    assert torch.equal(out.data[CELL].x_unscaled, graph.data[CELL].x)
    out.data[POI].x = out.data[POI].x + 1  # the output's stores are its own
    assert torch.equal(graph.data[POI].x, before["poi", "x"])


def test_is_a_pyg_transform_and_returns_a_copy(graph):
    pre = FeaturePreprocessor().fit(graph, TRAIN)
    assert isinstance(pre, BaseTransform)
    before = _tensors(graph.data)
    out = pre(graph)  # BaseTransform.__call__ -> forward
    assert isinstance(out, GeoGraph) and out is not graph and out.data is not graph.data
    ref = pre.transform(graph)
    for nt in (POI, CELL):
        assert torch.equal(out.data[nt].x, ref.data[nt].x)
    for k, v in before.items():
        assert torch.equal(graph.data[k[0]][k[1]], v), k
    # transforming the output again starts from the kept builder's values: the same result
    again = pre(out)
    assert torch.equal(again.data[POI].x, out.data[POI].x)
    assert torch.equal(again.data[POI].x_unscaled, graph.data[POI].x)


def test_transforms_a_heterodata_given_its_brand_names(graph):
    pre = FeaturePreprocessor().fit(graph, TRAIN)
    data = copy.copy(graph.data)
    with pytest.raises(ValueError, match="brand names"):
        pre(data)
    data.brand_names = graph.index["brands"]
    out = pre(data)
    assert isinstance(out, HeteroData) and "x_unscaled" not in graph.data[POI]
    ref = pre(graph).data
    for key in ("x", "naics", "brand_idx"):
        assert torch.equal(out[POI][key], ref[POI][key]), key
    assert torch.equal(out[CELL].x, ref[CELL].x)
    with pytest.raises(TypeError, match="GeoGraph or a HeteroData"):
        pre({"poi": 1})


def test_state_dict_round_trip_and_unfitted_error(graph):
    with pytest.raises(RuntimeError, match="before fit"):
        FeaturePreprocessor().transform(graph)
    pre = FeaturePreprocessor().fit(graph, TRAIN)
    again = FeaturePreprocessor.from_state_dict(pre.state_dict())
    a, b = pre.transform(graph).data, again.transform(graph).data
    assert torch.equal(a[POI].x, b[POI].x) and torch.equal(a[POI].naics, b[POI].naics)
    loaded = FeaturePreprocessor(log_features=False).load_state_dict(pre.state_dict())
    assert loaded.log_features is True and torch.equal(loaded(graph).data[CELL].x, a[CELL].x)
    assert "fitted=True" in repr(pre)


def test_brand_vocabulary_from_train_pois_only(graph):
    # train a, b, d, e: Bluebird only (c, the one Crust POI, is held out; d and f are unbranded)
    train = torch.tensor([True, True, False, True, True, False])
    pre = FeaturePreprocessor().fit(graph, train)
    assert pre.brands == ["Bluebird"]
    idx = pre.transform(graph).data[POI].brand_idx
    # a, b, e Bluebird -> 2; c Crust, unseen in training -> 1; d, f unbranded -> 0
    assert idx.tolist() == [2, 2, 1, 0, 2, 0]
    assert pre.brand_index(["Bluebird", None, "Nowhere Coffee"]).tolist() == [2, 0, 1]
    again = FeaturePreprocessor.from_state_dict(pre.state_dict())
    assert torch.equal(again.transform(graph).data[POI].brand_idx, idx)
    # a preprocessor saved before brands existed knows none: every brand counts as unseen
    old = {k: v for k, v in pre.state_dict().items() if k != "brands"}
    assert FeaturePreprocessor.from_state_dict(old).transform(graph).data[POI].brand_idx.tolist() == [1, 1, 1, 0, 1, 0]

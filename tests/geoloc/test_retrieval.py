"""Exact chunked search, galleries, KDE mode, kNN baseline, propagation, RANGE."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from geograph.errors import DataValidationError
from geograph.geo import latlon_to_xyz, xyz_to_latlon
from geograph.nn.propagation import (
    APPNPPropagation,
    RANGEAugmentation,
    augment,
    h3_adjacency_graph,
    knn_graph_latlon,
)
from geograph.retrieval import (
    Gallery,
    KNNGeolocator,
    chunked_topk,
    kde_mode,
    loop_topk,
    weighted_mode,
)


def test_chunked_topk_equals_full_sort():
    g = torch.Generator().manual_seed(0)
    q, keys = torch.randn(7, 16, generator=g), torch.randn(1000, 16, generator=g)
    ref_s, ref_i = torch.topk(q @ keys.T, 5, dim=1)
    for chunk in (1, 3, 64, 999, 5000):
        s, i = chunked_topk(q, keys, 5, chunk_size=chunk)
        assert torch.equal(i, ref_i) and torch.allclose(s, ref_s)
    s, i = loop_topk(q, keys, 5)
    assert torch.equal(i, ref_i)
    assert chunked_topk(q, keys[:3], 10)[1].shape == (7, 3)  # k clipped to the gallery
    with pytest.raises(ValueError, match="k must be >= 1"):
        chunked_topk(q, keys, 0)


def test_gallery_sources(tmp_path):
    h3g = Gallery.from_h3(0)
    assert len(h3g) == 122 and h3g.name == "h3:0"
    csv = tmp_path / "g.csv"
    csv.write_text("latitude,longitude\n10,20\n-5.5,170\n")
    g = Gallery.from_spec(str(csv))
    assert g.latlon.tolist() == [[10.0, 20.0], [-5.5, 170.0]]
    bad = tmp_path / "bad.csv"
    bad.write_text("lat,lon\n10,20\n95,0\n")
    with pytest.raises(DataValidationError, match="row 1"):
        Gallery.from_csv(bad)
    with pytest.raises(DataValidationError, match="latitude/longitude"):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        Gallery.from_csv(tmp_path / "x.csv")
    tr = Gallery.from_spec("train", train_latlon=np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]]))
    assert len(tr) == 2  # duplicates dropped
    with pytest.raises(ValueError, match="unknown gallery"):
        Gallery.from_spec("moon")
    with pytest.raises(RuntimeError, match="not embedded"):
        tr.search(torch.zeros(1, 4))


@pytest.mark.skipif(
    importlib.util.find_spec("geoclip") is None, reason="the geoclip package is not installed"
)
def test_geoclip_gallery_is_read_from_the_wheel():
    g = Gallery.from_geoclip()
    assert len(g) == 100_000 and repr(g) == "Gallery(name='geoclip', size=100000, dim=None)"


def test_gallery_embed_and_search_finds_itself():
    from geograph.nn.location import SinusoidalLocationEncoder

    g = Gallery(np.array([[0.0, 0.0], [45.0, 90.0], [-30.0, -60.0]]))
    g.embed(SinusoidalLocationEncoder(hidden=0))
    s, i = g.search(g.embeddings, k=1)
    assert i[:, 0].tolist() == [0, 1, 2] and torch.allclose(s[:, 0], torch.ones(3))


def test_xyz_roundtrip():
    ll = torch.tensor([[10.0, 20.0], [-45.0, 179.0], [89.0, -100.0]], dtype=torch.float64)
    assert torch.allclose(xyz_to_latlon(latlon_to_xyz(ll)), ll)


def test_kde_mode_finds_the_dense_cluster():
    # five candidates around Paris (within ~30 km), two far away with the single highest weight
    cand = torch.tensor(
        [
            [
                [48.85, 2.35],
                [48.90, 2.25],
                [48.80, 2.45],
                [48.95, 2.40],
                [48.75, 2.30],
                [40.71, -74.00],
                [35.68, 139.69],
            ]
        ],
        dtype=torch.float64,
    )
    w = torch.tensor([[0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.2]], dtype=torch.float64)
    mode, conf = kde_mode(cand, w, bandwidth_km=50.0)
    assert mode.shape == (1, 2)
    assert abs(float(mode[0, 0]) - 48.85) < 0.2 and abs(float(mode[0, 1]) - 2.35) < 0.2
    assert 0.3 < float(conf[0]) <= 0.5  # about the five Paris weights' share
    # a tiny bandwidth turns KDE into "highest weight wins" (1-NN)
    mode1, _ = kde_mode(cand, w, bandwidth_km=0.01)
    assert torch.allclose(mode1[0], cand[0, 5])
    refined, _ = kde_mode(cand, w, bandwidth_km=50.0, refine_steps=5)
    assert abs(float(refined[0, 0]) - 48.85) < 0.1  # mean shift stays inside the cluster
    with pytest.raises(ValueError, match="bandwidth_km must be > 0"):
        kde_mode(cand, w, 0.0)


def test_weighted_mode_and_knn_baseline():
    ll = torch.tensor([[10.0, 10.0], [10.1, 10.1], [10.2, 10.0], [-40.0, 100.0]], dtype=torch.float64)
    assert weighted_mode(ll, torch.tensor([1.0, 1.0, 1.0, 2.5]), 100.0)[0] == pytest.approx(10.0, abs=0.3)
    assert weighted_mode(ll, torch.tensor([1.0, 1.0, 1.0, 5.0]), 100.0).tolist() == [-40.0, 100.0]
    emb = np.eye(4, dtype=np.float32)
    knn = KNNGeolocator(k=1).fit(emb, ll.numpy())
    pred, conf = knn.predict(emb[[3, 0]] + 0.01)
    np.testing.assert_allclose(pred, ll.numpy()[[3, 0]])
    assert repr(knn) == "KNNGeolocator(k=1, bandwidth_km=100, power=10, database=4)"


def test_appnp_propagation_and_graphs():
    ll = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [50.0, 50.0]])
    ei = knn_graph_latlon(ll, k=1)
    pairs = set(map(tuple, ei.T.tolist()))
    assert (0, 1) in pairs and (1, 0) in pairs and all(a != b for a, b in pairs)
    x = torch.randn(4, 8)
    prop = APPNPPropagation(K=5, alpha=1.0, normalize_output=False)
    assert str(prop) == "APPNPPropagation(K=5, alpha=1)"
    assert torch.allclose(prop(x, ei), x)  # alpha = 1: always restart
    y = APPNPPropagation(K=10, alpha=0.1)(x, ei)
    assert y.shape == (4, 8) and torch.allclose(y.norm(dim=1), torch.ones(4))
    g = Gallery.from_h3(0)
    e = h3_adjacency_graph(g.cells(0))
    assert e.shape[0] == 2 and e.shape[1] > 0 and set(e.flatten().tolist()) <= set(range(len(g)))


def test_range_soft_retrieval():
    keys = torch.eye(3)
    values = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    r = RANGEAugmentation(temperature=100.0)
    out = r(torch.tensor([[1.0, 0.01, 0.0]]), keys, values)
    assert torch.allclose(out, values[:1], atol=1e-3)  # near one-hot on the most similar key
    flat = RANGEAugmentation(temperature=0.0)(torch.tensor([[1.0, 0.0, 0.0]]), keys, values)
    assert torch.allclose(flat, values.mean(0, keepdim=True))  # T = 0: the database mean
    top1 = RANGEAugmentation(temperature=1.0, top_k=1)(torch.tensor([[0.2, 0.9, 0.1]]), keys, values)
    assert torch.allclose(top1, values[1:2])
    ll = torch.tensor([[0.0, 0.0], [0.0, 90.0], [0.0, 1.0]])
    geo = RANGEAugmentation(temperature=0.0, geo_weight=1.0, geo_temperature=4000.0)
    out = geo(keys, keys, values, ll, ll)
    assert torch.allclose(out[1], values[1], atol=1e-4)  # alone on its side of the earth
    loo = RANGEAugmentation(temperature=0.0, geo_weight=1.0, geo_temperature=4000.0, exclude_self=True)
    assert torch.allclose(loo(keys, keys, values, ll, ll)[0], values[2], atol=1e-4)  # nearest other point
    assert str(geo) == "RANGEAugmentation(temperature=0, top_k=None, geo_temperature=4000, geo_weight=1)"
    with pytest.raises(ValueError, match="needs query_latlon"):
        geo(keys, keys, values)
    a = augment(torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 2.0]]), 1.0)
    assert torch.allclose(a, torch.tensor([[1.0, 1.0]]) / 2**0.5)

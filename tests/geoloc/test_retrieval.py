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
from geograph.retrieval.search import _block_size


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


def _check_topk(q, keys, k, chunk, exact=True):
    """``chunked_topk`` against one brute-force ``torch.topk``: the same scores, valid indices."""
    full = q @ keys.T
    kk = min(k, keys.shape[0])
    ref_s, ref_i = torch.topk(full, kk, dim=1)
    s, i = chunked_topk(q, keys, k, chunk_size=chunk)
    assert s.shape == i.shape == (q.shape[0], kk) and s.dtype == full.dtype and i.dtype == torch.long
    assert ((i >= 0) & (i < keys.shape[0])).all()
    assert all(len(set(row)) == kk for row in i.tolist())  # no row index twice
    if exact:  # integer-valued data: every product is exact, ties are everywhere
        assert torch.equal(s, ref_s)
        assert torch.equal(full.gather(1, i), s)  # each index carries its score
    else:
        tol = {"atol": 1e-5, "rtol": 1e-5} if full.dtype == torch.float32 else {"atol": 0.02, "rtol": 0.01}
        assert torch.allclose(s.float(), ref_s.float(), **tol)
        assert torch.allclose(full.gather(1, i).float(), s.float(), **tol)
    return s, i, ref_i


def test_chunked_topk_block_prefilter_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    q, keys = torch.randn(9, 24, generator=g), torch.randn(3000, 24, generator=g)
    assert _block_size(3000, 5) and _block_size(1000, 5) and not _block_size(30, 5)  # both paths run
    for k in (1, 5, 17):
        # chunk boundaries: whole gallery, divisible and ragged chunks, a one-row last chunk
        for chunk in (3000, 1000, 999, 1500, 2999, 7, 65536):
            _, i, ref_i = _check_topk(q, keys, k, chunk, exact=False)
            assert torch.equal(i, ref_i)  # random float32: no ties, the same neighbours
    _check_topk(q, keys, 40, 16, exact=False)  # k larger than a chunk
    _check_topk(q[:1], keys, 5, 1000, exact=False)  # one query
    s, i = chunked_topk(q[:0], keys, 5, chunk_size=1000)
    assert s.shape == i.shape == (0, 5)


@pytest.mark.parametrize("cache_bytes", [1, 3000, 20_000])
def test_chunked_topk_partial_products(monkeypatch, cache_bytes):
    """The product of a chunk computed in parts (one block, a few blocks, a ragged last part),
    each reduced to block maxima as it comes: the same top k as one brute-force ``topk``."""
    from geograph.retrieval import search

    monkeypatch.setattr(search, "_CACHE_BYTES", cache_bytes)
    g = torch.Generator().manual_seed(5)
    q, keys = torch.randn(9, 24, generator=g), torch.randn(3000, 24, generator=g)
    assert search._part_rows(9, 4, 16) < 1000  # several parts per chunk
    for k in (1, 5, 17):
        for chunk in (3000, 1000, 999, 7):
            _, i, ref_i = _check_topk(q, keys, k, chunk, exact=False)
            assert torch.equal(i, ref_i)
    qi = torch.randint(-2, 3, (11, 6), generator=g).float()  # ties everywhere
    ki = torch.randint(-2, 3, (2500, 6), generator=g).float()
    for k in (3, 10):
        _check_topk(qi, ki, k, 1024)
        _check_topk(qi.bfloat16(), ki.bfloat16(), k, 2500)


def test_chunked_topk_ties():
    g = torch.Generator().manual_seed(2)
    q = torch.randint(-2, 3, (11, 6), generator=g).float()
    keys = torch.randint(-2, 3, (2500, 6), generator=g).float()
    keys[100:400] = keys[7]  # whole blocks of equal rows
    for k in (1, 3, 10, 64):
        for chunk in (2500, 1024, 333, 50):
            _check_topk(q, keys, k, chunk)
    for dtype in (torch.float32, torch.bfloat16):  # all equal: any k of them
        s, i = chunked_topk(
            torch.ones(3, 4, dtype=dtype), torch.ones(777, 4, dtype=dtype), 10, chunk_size=300
        )
        assert (s == 4).all() and all(len(set(row)) == 10 for row in i.tolist())


def test_chunked_topk_k_at_least_gallery_and_tiny_galleries():
    g = torch.Generator().manual_seed(3)
    q = torch.randint(-3, 4, (5, 8), generator=g).float()
    keys = torch.randint(-3, 4, (300, 8), generator=g).float()
    for k in (299, 300, 301, 1000):
        for chunk in (300, 64, 1000):
            _, i, _ = _check_topk(q, keys, k, chunk)
            if k >= 300:
                assert sorted(i[0].tolist()) == list(range(300))  # every row once
    for n in (1, 2, 3, 5):  # tiny galleries, k below, at and above their size
        for k in (1, 2, 4, 10):
            for chunk in (1, 2, 65536):
                _check_topk(q, keys[:n], k, chunk)


def test_chunked_topk_bfloat16():
    g = torch.Generator().manual_seed(4)
    # small integers: exact in bfloat16 and in its float32 accumulation, many ties
    q = torch.randint(-3, 4, (16, 32), generator=g).to(torch.bfloat16)
    keys = torch.randint(-3, 4, (5000, 32), generator=g).to(torch.bfloat16)
    for k in (1, 10, 33):
        for chunk in (5000, 4096, 1000, 777):
            _check_topk(q, keys, k, chunk)
    # unit-norm random embeddings as a model makes them (bfloat16 rounding of each product)
    qf = torch.nn.functional.normalize(torch.randn(8, 64, generator=g), dim=1)
    kf = torch.nn.functional.normalize(torch.randn(4000, 64, generator=g), dim=1)
    s, _, _ = _check_topk(qf.bfloat16(), kf.bfloat16(), 10, 1024, exact=False)
    assert s.dtype == torch.bfloat16


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

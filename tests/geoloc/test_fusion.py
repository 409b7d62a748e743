"""kNN fusion: the product of the head's KDE and the kNN KDE, in the predictor and the task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geograph.errors import ConfigError
from geograph.geo import haversine_km
from geograph.retrieval import (
    Gallery,
    GeoPredictor,
    KNNGeolocator,
    RetrievalHead,
    build_gallery_keys,
    product_kde_mode,
)
from geograph.retrieval.kde import kde_mode

A = [[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]]  # three points around (0, 0)
B = [[10.0, 10.0], [10.1, 10.0], [10.0, 10.1]]  # three around (10, 10)


def _two_clusters():
    cand_a = torch.tensor([A + B], dtype=torch.float64)  # (1, 6, 2)
    w_a = torch.tensor([[0.2, 0.2, 0.2, 0.14, 0.13, 0.13]], dtype=torch.float64)  # A a bit heavier
    cand_b = torch.tensor([B + [[40.0, 40.0]]], dtype=torch.float64)  # kNN: B, and one stray point
    w_b = torch.tensor([[0.3, 0.3, 0.3, 0.1]], dtype=torch.float64)
    return cand_a, w_a, cand_b, w_b


def test_product_mode_follows_the_agreement():
    cand_a, w_a, cand_b, w_b = _two_clusters()
    alone, _ = kde_mode(cand_a, w_a, 50.0)
    assert alone[0, 0].item() < 1  # the head alone: cluster A
    fused, conf = product_kde_mode(cand_a, w_a, cand_b, w_b, 50.0, 0.5)
    assert fused.shape == (1, 2) and conf.shape == (1,)
    assert haversine_km(fused[0, 0].item(), fused[0, 1].item(), 10.0, 10.0) < 20  # both agree on B
    assert 0 < conf.item() <= 1


def test_product_mode_batches_settings_and_checks_arguments():
    cand_a, w_a, cand_b, w_b = _two_clusters()
    stacked = torch.stack([w_a, torch.flip(w_a, [1])])  # (S=2, Q=1, 6)
    modes, conf = product_kde_mode(cand_a, stacked, cand_b, w_b, 50.0, [0.0, 0.5, 0.9], chunk_size=1)
    assert modes.shape == (2, 3, 1, 2) and conf.shape == (2, 3, 1)
    for s in range(2):
        for j, m in enumerate([0.0, 0.5, 0.9]):
            one, _ = product_kde_mode(cand_a, stacked[s], cand_b, w_b, 50.0, m)
            torch.testing.assert_close(modes[s, j], one)
    # m = 0: the first density's mode over the union of the candidates
    assert modes[0, 0, 0, 0].item() < 1
    with pytest.raises(ValueError, match="mix must be in"):
        product_kde_mode(cand_a, w_a, cand_b, w_b, 50.0, 1.5)
    with pytest.raises(ValueError, match="bandwidth_km must be > 0"):
        product_kde_mode(cand_a, w_a, cand_b, w_b, 0.0, 0.5)
    with pytest.raises(ValueError, match="need cand_a"):
        product_kde_mode(cand_a, w_a[:, :3], cand_b, w_b, 50.0, 0.5)


def test_knn_neighbours_are_the_predict_input():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 8)).astype(np.float32)
    ll = rng.uniform(-50, 50, size=(40, 2))
    knn = KNNGeolocator(k=5, bandwidth_km=300.0, power=4.0).fit(emb, ll)
    cand, w = knn.neighbours(emb[:6])
    assert cand.shape == (6, 5, 2) and w.shape == (6, 5)
    torch.testing.assert_close(w.sum(1), torch.ones(6, dtype=torch.float64))
    np.testing.assert_allclose(cand[:, 0].numpy(), ll[:6])  # each item is its own nearest neighbour
    mode, _ = kde_mode(cand, w, 300.0)
    np.testing.assert_allclose(mode.numpy(), knn.predict(emb[:6])[0])


def _predictor(fusion_weight: float, knn=None, bw: float | None = 200.0) -> GeoPredictor:
    from geograph.nn.location import SinusoidalLocationEncoder

    head = RetrievalHead(8, SinusoidalLocationEncoder(), hidden=0, queue_size=0)
    g = Gallery(np.random.default_rng(1).uniform(-60, 60, size=(50, 2)), name="train")
    g.set_embeddings(build_gallery_keys(head, g))
    return GeoPredictor(head, g, top_k=10, kde_bandwidth_km=bw, knn=knn, fusion_weight=fusion_weight)


def test_predictor_fusion_matches_the_product_mode_and_checks_its_inputs():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(30, 8)).astype(np.float32)
    knn = KNNGeolocator(k=7, power=5.0).fit(emb, rng.uniform(-60, 60, size=(30, 2)))
    gp = _predictor(0.8, knn)
    q = rng.normal(size=(5, 8)).astype(np.float32)
    out = gp.predict(q, batch_size=2)
    s, i = gp.search(q)
    prob = torch.softmax(float(gp.head.scale.detach()) * s.double(), 1)
    nc, nw = knn.neighbours(q)
    ref, _ = product_kde_mode(gp.gallery.latlon[i], prob, nc, nw, 200.0, 0.8)
    np.testing.assert_allclose(out.latlon, ref.numpy())
    assert not np.allclose(out.latlon, _predictor(0.0).predict(q).latlon)  # the kNN term moves answers
    with pytest.raises(ValueError, match="needs a fitted knn and a kde_bandwidth_km"):
        _predictor(0.5, knn, bw=None)
    with pytest.raises(ValueError, match="needs a fitted knn"):
        _predictor(0.5, None)
    with pytest.raises(ValueError, match=r"fusion_weight must be in \[0, 1\)"):
        _predictor(1.0, knn)


def test_fusion_config_is_checked():
    from geograph.geolocate.config import GeolocateConfig

    assert GeolocateConfig.from_dict({}).predict.fusion_weight == 0.0
    with pytest.raises(ConfigError, match="fusion_weight must be in"):
        GeolocateConfig.from_dict({"predict": {"fusion_weight": 1.0}})
    with pytest.raises(ConfigError, match="fusion_grid values must be in"):
        GeolocateConfig.from_dict({"predict": {"fusion_weight": 0.5, "fusion_grid": [0.0]}})


def test_task_selects_fusion_on_validation_and_the_bundle_round_trips(tmp_path):
    from geograph.geolocate.config import GeolocateConfig, apply_fast
    from geograph.geolocate.data import prepare
    from geograph.geolocate.evaluate import evaluate
    from geograph.geolocate.predict import load_geolocator, save_geolocator
    from geograph.geolocate.select import select_all
    from geograph.geolocate.train import fit

    cfg = GeolocateConfig.from_dict(
        apply_fast(
            {
                "data": {"source": "world", "n_pois": 300, "n_images": 500},
                "encoder": {"name": "sinusoidal", "pretrained": False},
                "predict": {
                    "fusion_weight": 0.5,
                    "fusion_grid": [0.5, 0.9],
                    "kde_grid": [None, 100.0, 400.0],
                },
                "propagation": {"range_weight": 1.0},
                "train": {"checkpoint": False},
            }
        )
    )
    data = prepare(cfg)
    fr = fit(cfg, data)
    sels = select_all(cfg, data, fr)
    for sel in sels.values():
        assert sel.choice["fusion_weight"] in (0.5, 0.9) and sel.choice["kde_bandwidth_km"] in (100.0, 400.0)
        val, _, _ = evaluate(cfg, data, sel, "val")  # the stacked selection path == the predictor's
        assert val["median_km"] == pytest.approx(sel.val_metrics["median_km"], rel=1e-6)
    sel = sels["median_km"]
    q, _ = data.part("test")
    before = sel.predictor.predict(q).latlon
    loaded = load_geolocator(save_geolocator(cfg, sel, data, tmp_path / "g"))
    assert loaded.predictor.fusion_weight == sel.choice["fusion_weight"]
    np.testing.assert_allclose(loaded.predictor.predict(q).latlon, before)

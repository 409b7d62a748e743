"""Query-side retrieval augmentation, the place graph, and the checks at the retrieval API
boundary (wrong width, NaN, empty gallery)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geograph.errors import ConfigError, DataValidationError
from geograph.geolocate.config import GeolocateConfig
from geograph.nn.location import SinusoidalLocationEncoder
from geograph.nn.place_graph import place_graph, propagate_values
from geograph.nn.query_retrieval import QueryRetrievalAugmentation
from geograph.retrieval import Gallery, GeoPredictor, KNNGeolocator, RetrievalHead
from geograph.retrieval.validate import check_embeddings

LL = np.array([[48.85, 2.35], [48.9, 2.3], [40.7, -74.0], [35.7, 139.7], [-33.9, 151.2]])


def _head(query_dim: int = 4) -> RetrievalHead:
    return RetrievalHead(query_dim, SinusoidalLocationEncoder(hidden=0), hidden=0, queue_size=0, seed=0)


def _predictor(query_dim: int = 4, **kw) -> GeoPredictor:
    head = _head(query_dim)
    g = Gallery(LL, name="t")
    g.set_embeddings(head.encode_locations(g.latlon.float()).detach())
    return GeoPredictor(head, g, top_k=2, **kw)


def test_query_retrieval_mixes_the_neighbours_locations():
    db_q = torch.eye(3)
    values = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), dim=-1)
    aug = QueryRetrievalAugmentation(db_q, values, weight=1.0, temperature=50.0, top_k=2)
    assert str(aug) == "QueryRetrievalAugmentation(database=3, weight=1, temperature=50, top_k=2)"
    r = aug.retrieve(torch.tensor([[1.0, 0.05, 0.0]]))
    assert r.shape == (1, 2) and torch.allclose(r, values[:1], atol=1e-3)  # the nearest dominates
    keys = torch.tensor([[0.0, 1.0]])
    out = aug(torch.tensor([[1.0, 0.05, 0.0]]), keys)
    assert torch.allclose(out, F.normalize(torch.tensor([[1.0, 1.0]]), dim=-1), atol=1e-3)
    assert torch.equal(QueryRetrievalAugmentation(db_q, values, weight=0.0)(db_q[:1], keys), keys)
    with pytest.raises(ValueError, match="empty"):
        QueryRetrievalAugmentation(torch.zeros(0, 3), torch.zeros(0, 2))
    with pytest.raises(ValueError, match="3 rows but database_values 2"):
        QueryRetrievalAugmentation(db_q, values[:2])


def test_predictor_with_query_retrieval_pulls_towards_neighbours():
    # the head's own key points anywhere; the neighbours' locations (Sydney) win with a large weight
    head = _head(4)
    g = Gallery(LL, name="t")
    e = head.encode_locations(g.latlon.float()).detach()
    g.set_embeddings(e)
    db_q = torch.eye(4)
    aug = QueryRetrievalAugmentation(db_q, e[[4, 4, 4, 4]], weight=100.0, top_k=2)
    p = GeoPredictor(head, g, top_k=1, query_aug=aug).predict(np.eye(4, dtype=np.float32))
    np.testing.assert_allclose(p.latlon, np.repeat(LL[[4]], 4, 0))


def test_place_graph_edge_kinds_and_propagation():
    emb = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99], [-1.0, 0.0]])
    ei = place_graph(LL, kinds=["knn"], embeddings=emb, knn=1)
    pairs = set(map(tuple, ei.T.tolist()))
    assert (0, 1) in pairs and (1, 0) in pairs and (2, 3) in pairs and all(a != b for a, b in pairs)
    ei = place_graph(LL, kinds=["h3"], h3_resolution=4)
    assert set(map(tuple, ei.T.tolist())) == {(0, 1), (1, 0)}  # only the two Paris points touch
    ei = place_graph(LL, kinds=["group"], groups=["FR", "FR", "US", "JP", "US"], group_degree=3)
    assert set(map(tuple, ei.T.tolist())) == {(0, 1), (1, 0), (2, 4), (4, 2)}
    with pytest.raises(ValueError, match="edge kinds"):
        place_graph(LL, kinds=["roads"])
    with pytest.raises(ValueError, match="group label"):
        place_graph(LL, kinds=["group"])
    x = F.normalize(torch.randn(5, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    y = propagate_values(x, place_graph(LL, kinds=["h3"]), K=2, alpha=0.5)
    assert torch.allclose(y[2:], x[2:], atol=1e-6)  # isolated rows keep their value
    assert torch.allclose(y.norm(dim=1), torch.ones(5)) and not torch.allclose(y[0], x[0])


def test_propagation_config_checks():
    with pytest.raises(ConfigError, match="graph_edges must be among"):
        GeolocateConfig.from_dict({"propagation.query_weight": 1.0, "propagation.graph_edges": ["x"]})
    with pytest.raises(ConfigError, match="query_weight > 0"):
        GeolocateConfig.from_dict({"propagation.graph_edges": ["knn"]})
    cfg = GeolocateConfig.from_dict(
        {"propagation.query_weight": 1.0, "propagation.graph_edges": ["knn", "group"]}
    )
    assert cfg.propagation.query_on


def test_bad_queries_are_refused_before_any_search(monkeypatch):
    p = _predictor(4)

    def boom(*a, **k):  # noqa: ANN002, ANN003
        raise AssertionError("searched before checking the input")

    monkeypatch.setattr(p.gallery, "search", boom)
    with pytest.raises(
        DataValidationError, match="field 'queries': queries has 3 values per row but the head"
    ):
        p.predict(np.zeros((2, 3), np.float32))
    bad = np.zeros((3, 4), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(DataValidationError, match="row 1, field 'queries': queries holds NaN"):
        p.predict(bad)
    with pytest.raises(DataValidationError, match="row 1, field 'queries'"):
        p.search(torch.as_tensor(bad))
    with pytest.raises(DataValidationError, match="queries is empty"):
        p.predict(np.zeros((0, 4), np.float32))
    with pytest.raises(DataValidationError, match="queries has 5 values"):
        p.area_needed(np.zeros((1, 5), np.float32), LL[:1])


def test_bad_gallery_and_database_are_refused():
    with pytest.raises(DataValidationError, match="field 'gallery.latlon': gallery g is empty"):
        Gallery(np.zeros((0, 2)), name="g")
    g = Gallery(LL)
    with pytest.raises(DataValidationError, match="field 'gallery.embeddings'"):
        g.set_embeddings(torch.zeros(4, 8))
    e = torch.ones(5, 8)
    e[3, 0] = float("inf")
    with pytest.raises(DataValidationError, match="row 3, field 'gallery.embeddings'"):
        g.set_embeddings(e)
    with pytest.raises(DataValidationError, match="field 'database_queries': database_queries is empty"):
        KNNGeolocator(k=1).fit(np.zeros((0, 4)), np.zeros((0, 2)))
    knn = KNNGeolocator(k=1).fit(np.eye(4, dtype=np.float32), LL[:4])
    with pytest.raises(
        DataValidationError, match="queries has 2 values per row but the kNN database expects 4"
    ):
        knn.predict(np.zeros((1, 2)))
    with pytest.raises(DataValidationError, match="must be a 2-D"):
        check_embeddings(np.zeros(4), "queries")


def test_knn_area_needed():
    knn = KNNGeolocator(k=2, power=1.0).fit(np.eye(5, dtype=np.float32), LL)
    q = np.eye(5, dtype=np.float32)[[0, 2]]
    area = knn.area_needed(q, np.array([[48.86, 2.34], [-80.0, 0.0]]), resolution=2)
    assert np.isfinite(area[0]) and 0 < area[0] < 2e5  # one or two res-2 cells (~86,000 km² each)
    assert np.isinf(area[1])  # the truth is in no neighbour's cell


@pytest.mark.slow
def test_head_run_with_query_retrieval_and_graph_round_trips(tmp_path):
    """A tracked run with the query retrieval over a propagated place graph: its logged model
    predicts the logged test predictions, and refuses queries of another width."""
    import mlflow
    import polars as pl

    from geograph.geolocate.config import apply_fast
    from geograph.geolocate.data import prepare
    from geograph.geolocate.pyfunc import query_frame
    from geograph.geolocate.run import run_from_config

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = {
        "name": "geo_query_test",
        "data": {"source": "world", "n_pois": 300, "n_images": 500},
        "encoder": {"name": "sinusoidal", "pretrained": False},
        "propagation": {"query_weight": 1.0, "graph_edges": ["knn", "h3"], "graph_h3_resolution": 2},
        "train": {"checkpoint": False},
        "tracking": {"experiment": "geoloc_tests"},
    }
    out = run_from_config(cfg, tracking_uri=store, fast=True)
    assert out["metrics"]["test_area50_km2"] > 0
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(f"runs:/{out['run_id']}/model")
    geo = model.unwrap_python_model().geolocator
    assert geo.predictor.query_aug is not None and geo.predictor.query_aug.weight == 1.0
    q, _ = prepare(GeolocateConfig.from_dict(apply_fast(cfg))).part("test")
    pred = model.predict(query_frame(q))
    ref = pl.read_csv(
        mlflow.artifacts.download_artifacts(run_id=out["run_id"], artifact_path="test_predictions.csv")
    )
    np.testing.assert_allclose(pred["lat"].to_numpy(), ref["pred_lat"].to_numpy(), atol=1e-9)
    with pytest.raises(DataValidationError, match="field 'queries'"):
        geo.predictor.predict(q[:, :5])

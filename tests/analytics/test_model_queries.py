"""Queries that use a trained model (one GNN trained per session on the hand-made world)."""

from __future__ import annotations

import h3
import numpy as np
import polars as pl
import pytest
import torch

from geograph.analytics import ModelContext, Venue, WorldSource, covisited, hotspots, similar, whatif
from geograph.analytics.whatif import _WhatIfGraph
from geograph.errors import ConfigError, DataValidationError, TrackingError

NEAR_P00 = (37.7780, -122.4180)  # 0.18 km from p00 (Bluebird Coffee #1), in San Francisco


def test_model_loads_by_run_and_registry(model: ModelContext, trained: dict) -> None:
    assert model.family == "gnn" and len(model.ids) == 12
    assert model.uri == f"runs:/{trained['run_id']}/model"
    from geograph.tracking.registry import register_model

    version = register_model(trained["run_id"], "analytics-test", tracking_uri=trained["tracking_uri"])
    again = ModelContext.from_mlflow(model_uri=f"models:/analytics-test/{version}", tracking_uri=trained["tracking_uri"])
    assert torch.equal(again.embeddings(), model.embeddings())


def test_missing_run_is_a_clear_error(trained: dict) -> None:
    with pytest.raises(TrackingError, match="not found"):
        ModelContext.from_mlflow(run_id="0" * 32, tracking_uri=trained["tracking_uri"])
    with pytest.raises(ConfigError, match="exactly one"):
        ModelContext.from_mlflow(tracking_uri=trained["tracking_uri"])


def test_predictions_are_symmetric(model: ModelContext) -> None:
    a, b = np.array([0, 3]), np.array([1, 6])
    assert model.predict_log1p(a, b) == pytest.approx(model.predict_log1p(b, a))
    one_way = model.predictor.predict_log1p(torch.tensor(a), torch.tensor(b))
    other = model.predictor.predict_log1p(torch.tensor(b), torch.tensor(a))
    assert model.predict_log1p(a, b) == pytest.approx((one_way + other) / 2)


def test_covisited_with_model(source: WorldSource, model: ModelContext) -> None:
    out = covisited(source, "p00", model=model)
    observed = out.filter(pl.col("visitors").is_not_null())
    assert observed["poi_id"].to_list() == ["p01", "p03", "p02", "p07"]
    # every other CA POI is an unobserved candidate, scored by the model
    assert sorted(out.filter(pl.col("visitors").is_null())["poi_id"].to_list()) == ["p04", "p05", "p06"]
    expect = np.expm1(np.clip(model.predict_log1p(np.zeros(1, dtype=np.int64), np.array([1])), 0, None))
    assert out["predicted_visitors"][0] == pytest.approx(float(expect[0]))
    by_pred = covisited(source, "p00", model=model, rank_by="predicted")
    assert by_pred["predicted_visitors"].to_list() == sorted(by_pred["predicted_visitors"].to_list(), reverse=True)
    brand = covisited(source, brand="Bluebird Coffee", model=model)
    assert brand["predicted_visitors"].null_count() == 0


def test_hotspots_residual(source: WorldSource, model: ModelContext) -> None:
    out = hotspots(source, 8, by="residual", model=model)
    assert out["mean_residual"].abs().to_list() == sorted(out["mean_residual"].abs().to_list(), reverse=True)
    assert out["direction"].to_list() == ["under" if r >= 0 else "over" for r in out["mean_residual"].to_list()]
    top = out.filter(pl.col("pois") == 2).row(0, named=True)  # the p00 / p01 cell: 5 pairs
    pairs = [("p00", "p01", 120), ("p00", "p02", 40), ("p01", "p02", 60), ("p00", "p03", 80), ("p07", "p00", 10)]
    ia = model.known([a for a, _, _ in pairs])
    ib = model.known([b for _, b, _ in pairs])
    res = np.log1p([v for _, _, v in pairs]) - model.predict_log1p(ia, ib)
    assert top["mean_residual"] == pytest.approx(float(res.mean()))


def test_whatif_near_p00(source: WorldSource, model: ModelContext) -> None:
    res = whatif(model, Venue(*NEAR_P00, "722515", brand="Bluebird Coffee", name="Bluebird Coffee #4"), source=source)
    assert res.venue["state"] == "CA" and res.venue["new_cell"] is False
    assert res.candidates == 8  # all CA POIs
    assert res.neighbours.height == 8 and res.neighbours["rank"].to_list() == list(range(1, 9))
    assert res.total_predicted == pytest.approx(res.neighbours["predicted_visitors"].sum())
    assert res.neighbours["predicted_visitors"].to_list() == sorted(res.neighbours["predicted_visitors"].to_list(), reverse=True)
    c = res.comparison
    assert c is not None and c["poi_id"] == "p00" and c["name"] == "Bluebird Coffee #1" and c["match_level"] == 6
    assert c["observed_total"] == 250  # p01 120 + p03 80 + p02 40 + p07 10
    assert res.neighbours.filter(pl.col("poi_id") == "p00")["comparison_predicted_visitors"].item() is None
    assert c["total_predicted"] == pytest.approx(res.neighbours["comparison_predicted_visitors"].sum())
    feats = res.venue["features"]
    assert feats["visits"] == {"value": 1800.0, "source": "median of NAICS 722515 POIs in CA"}  # p00, p02, p07
    assert feats["area_sqft"]["value"] == 1000.0
    assert any("state CA taken from the nearest POI (p00" in n for n in res.notes)
    again = whatif(model, Venue(*NEAR_P00, "722515", brand="Bluebird Coffee", name="Bluebird Coffee #4"), source=source)
    assert again.neighbours.equals(res.neighbours)


def test_whatif_given_features_and_fallbacks(model: ModelContext) -> None:
    res = whatif(model, Venue(*NEAR_P00, "722513", state="CA", brand="Nobody", features={"visits": 5000}), top=3)
    assert res.venue["features"]["visits"] == {"value": 5000.0, "source": "given"}
    assert res.neighbours.height == 3 and res.neighbours["name"].null_count() == 3  # no source: no names
    assert res.comparison is not None and res.comparison["match_level"] == 5  # 722515 shares 72251
    assert any("brand 'Nobody' is unknown" in n for n in res.notes)
    assert any("not seen in training" in n for n in res.notes)


def test_whatif_local_encoding_equals_full_graph(model: ModelContext) -> None:
    """An isolated new node (new cell, no near edges) leaves every other embedding as the
    full-graph pass computes it, so the local neighbourhood encoding must match it exactly."""
    ctx = _WhatIfGraph.of(model)
    cand = np.arange(8)  # the CA POIs
    row = {"latitude": 36.0, "longitude": -118.0, "naics_code": "722515", "state": "CA", "visits": 0.0, "area_sqft": 0.0}
    insertion = ctx.inserter.plan(row)
    assert insertion.new_cell and insertion.cell_id == h3.latlng_to_cell(36.0, -118.0, 7) and len(insertion.near) == 0
    h, local, new = ctx.encode(
        seeds=cand, allowed=ctx.allowed("CA"), insertion=insertion, near=insertion.near,
        naics=torch.zeros(1, 5, dtype=torch.long),
    )
    full = model.embeddings()
    assert torch.allclose(h[local[cand]], full[cand], atol=1e-5)
    assert new == h.size(0) - 1


def test_whatif_far_away_is_noted(model: ModelContext) -> None:
    res = whatif(model, Venue(36.0, -118.0, "722515", state="CA"), radius_km=None)
    assert res.venue["new_cell"] is True and res.venue["near_edges"] == 0
    assert any("extrapolates" in n for n in res.notes)
    with pytest.raises(DataValidationError, match="no POI of CA within 5.0 km"):
        whatif(model, Venue(36.0, -118.0, "722515", state="CA"), radius_km=5.0)


@pytest.mark.parametrize(
    ("venue", "pattern"),
    [
        (Venue(95.0, -122.4, "722515"), r"latitude must be in \[-90, 90\]"),
        (Venue(37.7, -190.0, "722515"), r"longitude must be in \[-180, 180\]"),
        (Venue(37.7, -122.4, "999999"), "invalid NAICS code.*unknown NAICS code '999999'"),
        (Venue(37.7, -122.4, "7225"), "must have 6 digits"),
        (Venue(37.7, -122.4, "72251x"), "digits only"),
        (Venue(37.7, -122.4, "722515", state="ZZ"), "unknown state code"),
        (Venue(37.7, -122.4, "722515", state="TX"), "state 'TX' has no POI in the model"),
        (Venue(37.7, -122.4, "722515", features={"seats": 3}), r"unknown feature\(s\) \['seats'\]"),
    ],
)
def test_whatif_bad_input(model: ModelContext, venue: Venue, pattern: str) -> None:
    with pytest.raises(DataValidationError, match=pattern):
        whatif(model, venue)


def test_similar_is_cosine_of_embeddings(source: WorldSource, model: ModelContext) -> None:
    out = similar(model, "p00", top=5, source=source)
    emb = torch.nn.functional.normalize(model.embeddings(), dim=1)
    cos = (emb @ emb[0]).numpy()
    cos[0] = -np.inf
    expect = np.argsort(-cos, kind="stable")[:5]
    assert out["poi_id"].to_list() == [model.ids[i] for i in expect]
    assert out["similarity"].to_numpy() == pytest.approx(cos[expect], abs=1e-6)
    assert out["name"].null_count() == 0
    ny = similar(model, "p00", state="NY")
    assert set(ny["state"].to_list()) == {"NY"} and ny.height == 4


def test_similar_brands(model: ModelContext) -> None:
    out = similar(model, brand="Bluebird Coffee")
    assert sorted(out["brand"].to_list()) == ["Fresh Market", "Golden Crust Bakery"]
    assert out.filter(pl.col("brand") == "Fresh Market")["pois"].item() == 3
    with pytest.raises(DataValidationError, match="did you mean 'Fresh Market'"):
        similar(model, brand="Fresh Markt")
    with pytest.raises(DataValidationError, match="unknown POI id"):
        similar(model, "p99")

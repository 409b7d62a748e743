"""The hierarchical geolocator (``method: cells``): geocell classification, refinement in the
likeliest cells, Recall-vs-Area over its own cells, determinism, bad input, and the CLI run on
user files."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pytest
import torch

from geograph.errors import ConfigError
from geograph.geolocate.config import GeolocateConfig
from geograph.metrics.geo import great_circle_error_km
from geograph.retrieval import CellGeolocator, KNNGeolocator

CENTRES = np.array([[48.9, 2.3], [40.7, -74.0], [35.7, 139.7], [-33.9, 151.2], [-23.5, -46.6], [30.0, 31.2]])


def clustered(n: int, seed: int, dim: int = 16, noise: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Places scattered ~100 km around six world cities; the embedding names the city (a fixed
    random code per city) plus Gaussian noise, so only the region, not the place, is knowable."""
    rng = np.random.default_rng(seed)
    code = np.random.default_rng(99).normal(size=(len(CENTRES), dim))
    c = rng.integers(0, len(CENTRES), n)
    ll = CENTRES[c] + rng.normal(0.0, 0.8, (n, 2))
    return (code[c] + rng.normal(0.0, noise, (n, dim))).astype(np.float32), ll


@pytest.fixture(scope="module")
def fitted() -> tuple[CellGeolocator, np.ndarray, np.ndarray]:
    q, ll = clustered(1200, seed=0)
    return CellGeolocator(resolution=2, hidden=64, epochs=30, top_cells=3, seed=0).fit(q, ll), q, ll


def test_it_finds_the_region_of_held_out_places(fitted) -> None:
    cg, q_tr, ll_tr = fitted
    q, ll = clustered(300, seed=1)
    err = great_circle_error_km(cg.predict(q)[0], ll)
    assert np.median(err) < 250  # inside the right city's cloud (~100 km spread)
    assert np.mean(err <= 750) > 0.9  # the right one of six cities thousands of km apart
    # as good as the nearest training place at finding the city
    knn = great_circle_error_km(KNNGeolocator(k=1).fit(q_tr, ll_tr).predict(q)[0], ll)
    assert np.mean(err <= 750) >= np.mean(knn <= 750) - 0.02


def test_cell_probabilities_rank_the_true_cell_first_and_area_follows_the_ranking(fitted) -> None:
    from geograph.geo.h3cells import cell_area_km2, cell_centers, latlng_to_cell_ids

    cg, _, _ = fitted
    q, ll = clustered(200, seed=2)
    p = cg.cell_probabilities(q).numpy()
    assert p.shape == (200, len(cg.cells)) and np.allclose(p.sum(1), 1.0, atol=1e-5)
    truth = np.asarray(latlng_to_cell_ids(ll[:, 0], ll[:, 1], cg.resolution), dtype=np.uint64)
    top = cg.cells[p.argmax(1)]
    # several cells share a city's cloud; the top one lies in the right city
    assert np.mean(great_circle_error_km(np.asarray(cell_centers(top)), ll) < 750) > 0.9
    area = cg.area_needed(q, ll)
    one_cell = np.asarray(cell_area_km2(cg.cells)).max()
    hit = top == truth
    assert np.all(area[hit] <= one_cell * 1.0001)  # ranked first: the area of its own cell
    assert np.all(area[~hit & np.isfinite(area)] > 0)
    far = np.array([[-75.0, 0.0]])  # Antarctica holds no training place: never found
    assert math.isinf(cg.area_needed(q[:1], far)[0])


def test_same_seed_same_numbers_other_seed_other_model() -> None:
    q, ll = clustered(400, seed=0)
    a = CellGeolocator(resolution=2, hidden=32, epochs=2, seed=3).fit(q, ll)
    b = CellGeolocator(resolution=2, hidden=32, epochs=2, seed=3).fit(q, ll)
    c = CellGeolocator(resolution=2, hidden=32, epochs=2, seed=4).fit(q, ll)
    pa, pb, pc = (m.cell_probabilities(q[:50]).numpy() for m in (a, b, c))
    assert np.array_equal(pa, pb) and not np.allclose(pa, pc)
    assert np.array_equal(a.predict(q[:50])[0], b.predict(q[:50])[0])


def test_top_cells_zero_answers_a_cell_centre(fitted) -> None:
    import copy

    from geograph.geo.h3cells import cell_centers

    cg = copy.copy(fitted[0])
    cg.top_cells = 0
    pred, conf = cg.predict(fitted[1][:20])
    centres = np.asarray(cell_centers(cg.cells))
    assert all(np.abs(centres - p).sum(1).min() < 1e-9 for p in pred)
    assert np.all((conf > 0) & (conf <= 1))


def test_bad_input_is_refused_by_name_before_any_work() -> None:
    q, ll = clustered(50, seed=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        CellGeolocator().predict(q)
    bad = q.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match="row 7, field 'database_queries'"):
        CellGeolocator(epochs=1).fit(bad, ll)
    with pytest.raises(ValueError, match="empty|no rows"):
        CellGeolocator(epochs=1).fit(q[:0], ll[:0])
    with pytest.raises(ValueError, match="50 embeddings but 49 coordinates"):
        CellGeolocator(epochs=1).fit(q, ll[:-1])
    cg = CellGeolocator(resolution=1, hidden=0, epochs=1).fit(q, ll)
    with pytest.raises(ValueError, match="field 'queries'.*expects 16"):
        cg.predict(q[:, :8])
    with pytest.raises(ValueError, match="resolution"):
        CellGeolocator(resolution=16)
    with pytest.raises(ConfigError, match="cells.smoothing_km"):
        GeolocateConfig.from_dict({"method": "cells", "cells": {"smoothing_km": 0}})


def test_cli_cells_on_user_files_logs_accuracy_and_rva(tmp_path, empty_store_db) -> None:
    """``geograph train geolocate --train F --test F --set method=cells`` on files geograph did not make."""
    import shutil

    from geograph.cli.main import main
    from tests.geoloc.test_user_files import city_embeddings

    shutil.copyfile(empty_store_db, tmp_path / "mlflow.db")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    df = city_embeddings(800, seed=5)
    df[:600].write_parquet(tmp_path / "train.parquet")
    df[600:].write_parquet(tmp_path / "test.parquet")
    rc = main([
        "train", "geolocate", "--train", str(tmp_path / "train.parquet"), "--test", str(tmp_path / "test.parquet"),
        "--fast", "--quiet", "--tracking-uri", store, "--set", "method=cells",
        "--set", "tracking.experiment=cells_files", "--set", "tracking.log_plots=false",
        "--set", f"train.checkpoint_dir={tmp_path / 'ckpt'}",
    ])  # fmt: skip
    assert rc == 0
    mlflow.set_tracking_uri(store)
    run = mlflow.search_runs(experiment_names=["cells_files"], output_format="list")[0]
    m, params = run.data.metrics, run.data.params
    assert run.data.tags["geograph.method"] == "cells" and params["chosen.cells_top"] == "10"
    assert 0.0 < m["test_acc_2500km"] <= 1.0 and m["test_median_km"] < 5000
    assert 0.0 < m["test_rva_auc"] <= 1.0 and m["test_area50_km2"] > 0


def test_neighbour_cells_are_read_without_the_place_itself() -> None:
    """``neighbours > 0``: the classifier reads the cells of the nearest training places; a
    training place never reads its own cell through itself."""
    q, ll = clustered(600, seed=0)
    ll[0] = (-60.0, -120.0)  # the only place in its geocell (South Pacific)
    cg = CellGeolocator(resolution=2, hidden=32, epochs=20, neighbours=8, seed=0).fit(q, ll)
    own = int(cg.place_cell[0])
    assert int((cg.place_cell == own).sum()) == 1
    with_self = cg.neighbour_cells(q[:1])
    without = cg.neighbour_cells(q[:1], exclude=torch.tensor([0]))
    assert with_self[0, own] > 0.5 and without[0, own] == 0.0  # its own row is its nearest
    assert torch.allclose(without.sum(1), torch.ones(1))
    plain = CellGeolocator(resolution=2, hidden=32, epochs=20, seed=0).fit(q, ll)
    assert not torch.allclose(cg.cell_probabilities(q[1:50]), plain.cell_probabilities(q[1:50]))
    q2, ll2 = clustered(200, seed=1)
    assert np.mean(great_circle_error_km(cg.predict(q2)[0], ll2) <= 750) > 0.9
    with pytest.raises(ValueError, match="neighbours > 0"):
        plain.neighbour_cells(q[:1])

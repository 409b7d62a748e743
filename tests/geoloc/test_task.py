"""The geolocation task: config checks, the MLflow run, the pyfunc model, the CLI."""

from __future__ import annotations

import json
import shutil

import mlflow
import numpy as np
import pytest

from geograph.errors import ConfigError
from geograph.geolocate.config import GeolocateConfig, apply_fast
from geograph.geolocate.data import prepare
from geograph.geolocate.predict import load_geolocator
from geograph.geolocate.pyfunc import query_frame
from geograph.geolocate.run import run_from_config
from geograph.tracking import configure

WORLD = {"source": "world", "n_pois": 300, "n_images": 500}
HEAD_CFG = {
    "name": "geo_test",
    "data": WORLD,
    "encoder": {"name": "sinusoidal", "pretrained": False},
    "propagation": {"range_weight": 1.0, "appnp_k": 3},
    "train": {"checkpoint": False},  # checkpoints are tested in test_resume.py (not under ./mlruns)
    "tracking": {"experiment": "geoloc_tests"},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    db = tmp_path_factory.mktemp("geoloc_store") / "mlflow.db"
    uri = f"sqlite:///{db}"
    configure(uri)
    return uri


@pytest.fixture(scope="module")
def head_run(store):
    return run_from_config(HEAD_CFG, tracking_uri=store, fast=True)


def test_config_defaults_unknown_keys_and_dotted_keys():
    cfg = GeolocateConfig.from_dict({})
    assert (
        cfg.method == "head"
        and cfg.head.queue_size == 4096
        and cfg.head.logit_scale_init == pytest.approx(1 / 0.07)
    )
    with pytest.raises(ConfigError, match="'train.epoch'"):
        GeolocateConfig.from_dict({"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match="'trian'"):
        GeolocateConfig.from_dict({"trian": {}})
    with pytest.raises(ConfigError, match="encoder.finetune='heads' needs the geoclip"):
        GeolocateConfig.from_dict({"encoder": {"name": "satclip", "pretrained": False, "finetune": "heads"}})
    with pytest.raises(ConfigError, match="method"):
        GeolocateConfig.from_dict({"method": "oracle"})
    cfg = GeolocateConfig.from_dict({"train.epochs": 3, "train": {"lr": 0.1}, "propagation.appnp_k": 2})
    assert (cfg.train.epochs, cfg.train.lr, cfg.propagation.appnp_k) == (3, 0.1, 2)
    fast = apply_fast({"predict": {"gallery": "geoclip"}, "train": {"epochs": 50}})
    assert fast["train"]["epochs"] == 2 and fast["predict"]["gallery"] == "train"


def test_experiment_configs_parse():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2] / "experiments"
    for name in ("geolocate_text.yaml", "geolocate_world.yaml"):
        GeolocateConfig.from_dict(yaml.safe_load((root / name).read_text()))


def test_head_run_logs_everything(head_run, store):
    m = head_run["metrics"]
    for k in (
        "test_acc_1km",
        "test_acc_25km",
        "test_acc_200km",
        "test_acc_750km",
        "test_acc_2500km",
        "test_median_km",
        "test_rva_1e4km2",
        "test_rva_auc",
        "val_acc_mean",
        "train_time_s",
    ):
        assert k in m, k
    assert all(k.startswith(("train_", "val_", "test_")) for k in m)
    client = mlflow.MlflowClient(store)
    run = client.get_run(head_run["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["encoder.name"] == "sinusoidal" and "chosen.range_weight" in run.data.params
    hist = client.get_metric_history(head_run["run_id"], "train_loss")
    assert [h.step for h in hist] == [1, 2]
    arts = {a.path for a in client.list_artifacts(head_run["run_id"], "plots")}
    assert arts == {"plots/rva.png", "plots/error_map.png"}
    # MLflow 3 stores logged models beside the run's artifacts: resolve it through the runs:/ URI
    info = mlflow.models.get_model_info(f"runs:/{head_run['run_id']}/model")
    assert info.flavors.get("python_function") is not None


def test_pyfunc_round_trip_predicts_the_same_numbers(head_run, store):
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(f"runs:/{head_run['run_id']}/model")
    data = prepare(GeolocateConfig.from_dict(apply_fast(HEAD_CFG)))
    q, _ = data.part("test")
    out = model.predict(query_frame(q))
    assert list(out.columns) == ["lat", "lon", "confidence"] and len(out) == len(q)
    path = mlflow.artifacts.download_artifacts(
        run_id=head_run["run_id"], artifact_path="test_predictions.csv"
    )
    import polars as pl

    ref = pl.read_csv(path)
    np.testing.assert_allclose(out["lat"].to_numpy(), ref["pred_lat"].to_numpy(), atol=1e-9)
    np.testing.assert_allclose(out["lon"].to_numpy(), ref["pred_lon"].to_numpy(), atol=1e-9)
    sig = model.metadata.get_input_schema().input_names()
    assert sig[:2] == ["e0", "e1"] and len(sig) == data.query_dim
    with pytest.raises(Exception, match="e0|missing"):
        model.predict(query_frame(q).drop(columns=["e0"]))


def test_bundle_checksum_detects_corruption(head_run, store, tmp_path):
    mlflow.set_tracking_uri(store)
    local = mlflow.artifacts.download_artifacts(run_id=head_run["run_id"], artifact_path="model")
    folder = next(p.parent for p in __import__("pathlib").Path(local).rglob("geolocator.pt"))
    copy = tmp_path / "g"
    shutil.copytree(folder, copy)
    assert load_geolocator(copy).query_dim == 64
    raw = (copy / "geolocator.pt").read_bytes()
    (copy / "geolocator.pt").write_bytes(raw[: len(raw) // 2])
    from geograph.errors import CheckpointError

    with pytest.raises(CheckpointError, match="SHA-256"):
        load_geolocator(copy)


@pytest.mark.parametrize("method", ["knn", "cells", "prior"])
def test_baseline_methods(store, method):
    out = run_from_config(
        {"method": method, "data": WORLD, "tracking": {"experiment": "geoloc_tests"}},
        tracking_uri=store,
        fast=True,
    )
    assert 0.0 <= out["metrics"]["test_acc_2500km"] <= 1.0
    # kNN ranks the H3 cells of its neighbours and cells its geocells, so both have Recall vs
    # Area; the prior has none
    assert ("test_rva_auc" in out["metrics"]) == (method != "prior")
    assert ("test_area50_km2" in out["metrics"]) == (method != "prior")


def test_cli_geolocate_writes_geojson(head_run, store, tmp_path, capsys):
    from geograph.cli.main import main

    data = prepare(GeolocateConfig.from_dict(apply_fast(HEAD_CFG)))
    q, _ = data.part("test")
    np.save(tmp_path / "q.npy", q[:4])
    out = tmp_path / "pred.geojson"
    rc = main(
        [
            "geolocate",
            "--run-id",
            head_run["run_id"],
            "--query-embeddings",
            str(tmp_path / "q.npy"),
            "--tracking-uri",
            store,
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    fc = json.loads(out.read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 4
    lon, lat = fc["features"][0]["geometry"]["coordinates"]
    assert -180 <= lon <= 180 and -90 <= lat <= 90 and len(fc["features"][0]["properties"]["regions"]) == 3
    assert "geolocation (4 queries" in capsys.readouterr().out
    # an H3 gallery re-embedded with the model's encoder, and a wrong query size
    rc = main(
        [
            "geolocate",
            "--run-id",
            head_run["run_id"],
            "--query-embeddings",
            str(tmp_path / "q.npy"),
            "--tracking-uri",
            store,
            "--output",
            str(out),
            "--gallery",
            "h3:1",
        ]
    )
    assert rc == 0 and len(json.loads(out.read_text())["features"]) == 4
    np.save(tmp_path / "bad.npy", q[:2, :10])
    rc = main(
        [
            "geolocate",
            "--run-id",
            head_run["run_id"],
            "--query-embeddings",
            str(tmp_path / "bad.npy"),
            "--tracking-uri",
            store,
            "--output",
            str(out),
        ]
    )
    assert rc == 2 and "expects queries of size 64" in capsys.readouterr().err


@pytest.mark.slow
def test_text_config_fast_run(store):
    """The real text benchmark config in fast mode (loads the offline MiniLM model)."""
    from pathlib import Path

    import yaml

    cfg = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "experiments" / "geolocate_text.yaml").read_text()
    )
    cfg["train"]["checkpoint"] = False  # not under ./mlruns
    out = run_from_config(cfg, tracking_uri=store, fast=True)
    assert out["metrics"]["test_acc_2500km"] > 0.3
    assert (
        0 < float(mlflow.get_run(out["run_id"]).data.params["chosen.fusion_weight"]) < 1
    )  # the config fuses


def test_fit_keeps_the_best_validation_epoch():
    from geograph.geolocate.train import fit

    cfg = GeolocateConfig.from_dict(apply_fast({**HEAD_CFG, "train": {"epochs": 3, "checkpoint": False}}))
    fr = fit(cfg, prepare(cfg))
    meds = [h["val_median_km"] for h in fr.history]
    assert fr.best_epoch == 1 + int(np.argmin(meds))


def test_seeds_of_one_config_share_a_data_fingerprint():
    """A split drawn by ``train.seed`` is not part of the fingerprint (so `geograph compare`
    aggregates the seeds); other data is."""
    fp = lambda over: prepare(GeolocateConfig.from_dict(apply_fast({"data": WORLD, **over}))).fingerprint  # noqa: E731
    a, b = fp({"train": {"seed": 0}}), fp({"train": {"seed": 1}})
    assert a == b
    assert fp({"data": {**WORLD, "world_seed": 7}}) != a

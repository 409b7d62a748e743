"""Run ids round-trip: any unique prefix works wherever a run id is taken (like git); an
ambiguous prefix lists its runs, an unknown one names the store; both exit 2 on the CLI."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import mlflow
import numpy as np
import pytest
from cli_configs import tiny_covisit_yaml

from geograph.cli.main import main
from geograph.errors import TrackingError
from geograph.tracking.store import TAG_TRAINING_KEY, resolve_model_uri, resolve_run_id, unique_prefixes

N_EMPTY_RUNS = 17  # 17 runs over 16 hex digits: two of them surely share their first digit


def _store(root: Path, empty_db: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_db, root / "mlflow.db")
    return f"sqlite:///{root / 'mlflow.db'}"


def _empty_runs(uri: str, n: int = N_EMPTY_RUNS) -> list[str]:
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("empty", artifact_location=uri.replace("sqlite:///", "file://") + ".art")
    ids = []
    for i in range(n):
        run = client.create_run(exp, run_name=f"empty-{i}")
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return ids


def _shared_prefix(ids: list[str]) -> str:
    return Counter(r[0] for r in ids).most_common(1)[0][0]


def _unknown_prefix(ids: list[str]) -> str:
    return next(p for p in (f"{i:08x}" for i in range(1000)) if not any(r.startswith(p) for r in ids))


def test_the_resolver_round_trips_prefixes(tmp_path: Path, empty_store_db: Path) -> None:
    uri = _store(tmp_path, empty_store_db)
    ids = _empty_runs(uri)
    short = unique_prefixes(ids, uri)
    assert set(short) == set(ids)
    for rid, p in short.items():
        assert len(p) >= 8 and rid.startswith(p)
        assert resolve_run_id(p, uri) == rid and resolve_run_id(p.upper() + " ", uri) == rid
        assert resolve_run_id(rid, uri) == rid
    assert resolve_model_uri(f"runs:/{short[ids[0]]}/model", uri) == f"runs:/{ids[0]}/model"
    assert resolve_model_uri("models:/geo/1", uri) == "models:/geo/1"

    shared = _shared_prefix(ids)
    hits = sorted(r for r in ids if r.startswith(shared))
    with pytest.raises(TrackingError, match=f"prefix '{shared}' is ambiguous in {uri}: {len(hits)} runs") as ei:
        resolve_run_id(shared, uri)
    assert all(r in str(ei.value) for r in hits) and "(empty-" in str(ei.value)
    unknown = _unknown_prefix(ids)
    with pytest.raises(TrackingError, match=f"run '{unknown}' not found in {uri}"):
        resolve_run_id(unknown, uri)
    with pytest.raises(TrackingError, match=f"run '{'0' * 32}' not found in {uri}"):
        resolve_run_id("0" * 32, uri)
    with pytest.raises(TrackingError, match="hexadecimal"):
        resolve_run_id("not-a-run", uri)


def test_latest_names_the_last_finished_training_run(tmp_path: Path, empty_store_db: Path) -> None:
    uri = _store(tmp_path, empty_store_db)
    client = mlflow.MlflowClient(tracking_uri=uri)
    with pytest.raises(TrackingError, match=f"run 'latest' not found in {uri}: the store holds no finished training"):
        resolve_run_id("latest", uri)
    exp = client.create_experiment("latest", artifact_location=uri.replace("sqlite:///", "file://") + ".art")

    def run(training: bool, status: str, start_ms: int) -> str:
        tags = {TAG_TRAINING_KEY: "k"} if training else {}
        rid = client.create_run(exp, start_time=start_ms, tags=tags).info.run_id
        client.set_terminated(rid, status=status)
        return rid

    older = run(True, "FINISHED", 1_000)
    newer = run(True, "FINISHED", 2_000)
    run(True, "FAILED", 3_000)  # failed: passed over
    run(False, "FINISHED", 4_000)  # a summary run (no training tag): passed over
    assert resolve_run_id("latest", uri) == resolve_run_id(" LATEST", uri) == newer != older
    assert resolve_model_uri("runs:/latest/model", uri) == f"runs:/{newer}/model"


def _covisit_yaml(tmp_path: Path) -> Path:
    return tiny_covisit_yaml(tmp_path, {"experiment": "run_ids"})


@pytest.mark.slow  # a killed training, its resume with a logged model, and the evaluation: ~25 s
def test_resume_and_evaluate_take_an_8_digit_prefix(tmp_path: Path, empty_store_db: Path, capsys) -> None:
    from geograph.config import read_config
    from geograph.covisit.config import CovisitConfig
    from geograph.covisit.run import run_from_config

    uri = _store(tmp_path / "store", empty_store_db)
    path = _covisit_yaml(tmp_path)
    killed = run_from_config(read_config(str(path), [], CovisitConfig), tracking_uri=uri, stop_after_epoch=1)
    rid = killed["run_id"]
    mlflow.MlflowClient(tracking_uri=uri).set_terminated(rid, status="KILLED")  # as a SIGKILLed process leaves it
    capsys.readouterr()

    assert main(["train", "covisit", "--config", str(path), "--tracking-uri", uri, "--resume", rid[:8], "-q"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"run {rid}"  # the same run, continued
    assert main(["evaluate", "covisit", "--run-id", rid[:8], "--tracking-uri", uri, "--split", "val", "-q"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"run {rid}" and "re-computed" in out and err == ""

    ids = [rid, *_empty_runs(uri)]
    shared, unknown = _shared_prefix(ids), _unknown_prefix(ids)
    for argv in (
        ["evaluate", "covisit", "--run-id", shared],
        ["train", "covisit", "--config", str(path), "--resume", shared],
    ):
        assert main([*argv, "--tracking-uri", uri]) == 2
        err = capsys.readouterr().err
        assert f"geograph: error: run id prefix '{shared}' is ambiguous in {uri}" in err
        assert all(r in err for r in ids if r.startswith(shared))
    for argv in (
        ["evaluate", "covisit", "--run-id", unknown],
        ["train", "covisit", "--config", str(path), "--resume", unknown],
    ):
        assert main([*argv, "--tracking-uri", uri]) == 2
        assert f"geograph: error: run '{unknown}' not found in {uri}" in capsys.readouterr().err


def test_geolocate_takes_an_8_digit_prefix(tmp_path: Path, empty_store_db: Path, capsys) -> None:
    from geograph.geolocate.config import GeolocateConfig, apply_fast
    from geograph.geolocate.data import prepare
    from geograph.geolocate.run import run_from_config

    uri = _store(tmp_path / "store", empty_store_db)
    cfg = {
        "name": "geo_tiny",
        "data": {"source": "world", "n_pois": 300, "n_images": 500},
        "encoder": {"name": "sinusoidal", "pretrained": False},
        "train": {"checkpoint": False},
        "tracking": {"experiment": "run_ids", "log_plots": False},
    }
    rid = run_from_config(cfg, tracking_uri=uri, fast=True)["run_id"]
    q, _ = prepare(GeolocateConfig.from_dict(apply_fast(cfg))).part("test")
    np.save(tmp_path / "q.npy", q[:3])
    capsys.readouterr()
    argv = ["geolocate", "--query-embeddings", str(tmp_path / "q.npy"), "--tracking-uri", uri,
            "--output", str(tmp_path / "p.geojson")]
    assert main([*argv, "--run-id", rid[:8]]) == 0
    out, err = capsys.readouterr()
    assert "geolocation (3 queries" in out and f"geograph: loading model of run {rid[:8]}" in err
    assert main([*argv, "--model-uri", f"runs:/{rid[:8]}/model", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    unknown = _unknown_prefix([rid])
    assert main([*argv, "--run-id", unknown]) == 2
    assert f"geograph: error: run '{unknown}' not found in {uri}" in capsys.readouterr().err

"""Checkpoints keyed by MLflow run id: identical configs never share one, ``resume=RUN_ID``
continues exactly that run, and a failed resume leaves the run as it was."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from geograph.covisit.run import run_from_config
from geograph.errors import CheckpointError, TrackingError

from .resume_helpers import tiny_config, train_cli, write_tiny_world


def _config(tmp_path: Path, **train) -> dict:
    return {
        "name": "tracked",
        "data": {"cache_dir": None},
        "model": {"hidden": 16, "head_hidden": [16], "dropout": 0.0, "layers": 1},
        "train": {"epochs": 4, "lr": 0.01, "patience": 100, "device": "cpu",
                  "checkpoint_dir": str(tmp_path / "ckpt"), "progress": False, **train},
        "tracking": {"experiment": "tracked", "log_model": False},
    }


@pytest.mark.slow  # two CLI trainings in subprocesses (~1 min); the in-process test below is fast
def test_two_identical_runs_at_once_keep_their_own_checkpoints(tmp_path: Path) -> None:
    world = write_tiny_world(tmp_path / "world", n_pois=200)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tiny_config(tmp_path / "c.yaml", tmp_path / "ckpt", epochs=2)
    procs = [train_cli(cfg, world, uri, background=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("reliability").experiment_id])
    ids = sorted(r.info.run_id for r in runs)
    assert len(ids) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert sorted(p.parent.name for p in (tmp_path / "ckpt").glob("*/last.pt")) == ids
    # a finished run is not resumed, and refusing it changes nothing
    before = {r.info.run_id: (r.info.status, r.info.end_time) for r in runs}
    again = train_cli(cfg, world, uri, resume=ids[0][:10])
    assert again.returncode != 0 and "already finished" in again.stderr
    after = client.search_runs([runs[0].info.experiment_id])
    assert {r.info.run_id: (r.info.status, r.info.end_time) for r in after} == before


def test_resume_continues_that_run_and_a_failed_resume_leaves_it_as_it_was(tmp_path: Path) -> None:
    from geograph.testing import tiny_world

    world = tiny_world(seed=3, n_pois=150, n_images=0)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    full = run_from_config(_config(tmp_path), tracking_uri=uri, world=world)
    part = run_from_config(_config(tmp_path), tracking_uri=uri, world=world, stop_after_epoch=2)
    assert part["run_id"] != full["run_id"]
    client = mlflow.MlflowClient(tracking_uri=uri)
    client.set_terminated(part["run_id"], status="KILLED")  # as a SIGKILLed process leaves it
    ckpt = tmp_path / "ckpt" / part["run_id"] / "last.pt"
    good = ckpt.read_bytes()

    ckpt.write_bytes(good[:-50])  # a damaged checkpoint: refused before the run is touched
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        run_from_config(_config(tmp_path, resume=part["run_id"]), tracking_uri=uri, world=world)
    assert client.get_run(part["run_id"]).info.status == "KILLED"
    with pytest.raises(TrackingError, match="no MLflow run id starts with"):
        run_from_config(_config(tmp_path, resume="abcdef"), tracking_uri=uri, world=world)

    ckpt.write_bytes(good)
    out = run_from_config(_config(tmp_path, resume=part["run_id"][:8]), tracking_uri=uri, world=world)
    assert out["run_id"] == part["run_id"]
    run = client.get_run(part["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["geograph.resumed_from_epoch"] == "2"
    for k, v in full["metrics"].items():
        if k.startswith("test_"):
            assert out["metrics"][k] == pytest.approx(v, abs=1e-6), k
    steps = [m.step for m in client.get_metric_history(part["run_id"], "val_r2")]
    assert sorted(set(steps)) == [1, 2, 3, 4]
    exp = client.get_experiment_by_name("tracked").experiment_id
    assert len(client.search_runs([exp])) == 2  # no run was added by the resumes

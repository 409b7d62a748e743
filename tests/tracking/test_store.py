"""The tracking store: server round trip, local default store, fail-fast probe, FAILED on crash."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import mlflow
import pytest

from geograph.errors import TrackingError
from geograph.tracking import configure, run_context, start_run
from geograph.tracking.server import free_port
from geograph.tracking.store import PROBE_ENV
from geograph.tracking.tags import TAG_DEVICE, TAG_GIT_COMMIT, TAG_VERSION_PREFIX


def test_server_round_trip(mlflow_server: str, experiment_name: str, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("hello from geograph\n")
    params = {"model": {"name": "sage", "hidden": 32}, "seed": 3}
    with start_run(experiment_name, run_name="rt", params=params, tracking_uri=mlflow_server) as run:
        for step, value in enumerate([1.0, 0.5, 0.25]):
            mlflow.log_metric("train_loss", value, step=step)
        mlflow.log_metric("test_r2", 0.75)
        mlflow.log_artifact(str(note))
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"model.name": "sage", "model.hidden": "32", "seed": "3"}
    assert got.data.metrics == {"train_loss": 0.25, "test_r2": 0.75}
    history = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert sorted(history) == [(0, 1.0), (1, 0.5), (2, 0.25)]
    # artifacts went through the server's proxy
    assert got.info.artifact_uri.startswith("mlflow-artifacts:")
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id,
        artifact_path="note.txt",
        dst_path=str(tmp_path / "dl"),
        tracking_uri=mlflow_server,
    )
    assert Path(local).read_text() == "hello from geograph\n"
    tags = got.data.tags
    assert tags[TAG_DEVICE] == "cpu" or tags[TAG_DEVICE].startswith("cuda")
    assert len(tags[TAG_GIT_COMMIT]) == 40
    for pkg in ("torch", "torch_geometric", "mlflow", "polars", "geograph"):
        assert tags[TAG_VERSION_PREFIX + pkg]
    assert tags[TAG_VERSION_PREFIX + "mlflow"] == mlflow.__version__


def test_unreachable_server_fails_fast_and_clearly() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    before = {k: os.environ.get(k) for k in PROBE_ENV}
    t0 = time.monotonic()
    with pytest.raises(TrackingError) as info:
        configure(uri)
    elapsed = time.monotonic() - t0
    assert elapsed < 15.0
    msg = str(info.value)
    assert uri in msg and "not reachable" in msg and "connection refused" in msg
    assert "Nothing was trained" in msg
    assert {k: os.environ.get(k) for k in PROBE_ENV} == before  # the probe settings are put back


def test_unreachable_server_stops_before_the_run_body() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    entered = []
    with pytest.raises(TrackingError):
        with start_run("never", tracking_uri=uri):
            entered.append(True)
    assert entered == []


def test_local_default_store(local_store: str, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # MLflow warns on the deprecated file store
        with start_run("local", params={"a": 1}) as run:
            mlflow.log_metric("test_r2", 0.5)
            mlflow.log_text("x", "x.txt")
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    assert (tmp_path / "mlruns" / "artifacts").is_dir()
    assert Path(mlflow.get_run(run.info.run_id).info.artifact_uri.removeprefix("file://")).is_relative_to(
        tmp_path / "mlruns" / "artifacts"
    )


@pytest.mark.parametrize("store", ["local", "server"])
def test_crash_marks_run_failed(store: str, request: pytest.FixtureRequest, experiment_name: str) -> None:
    uri = request.getfixturevalue("local_store" if store == "local" else "mlflow_server")
    with pytest.raises(RuntimeError, match="boom"):
        with start_run(experiment_name, tracking_uri=uri) as run:
            mlflow.log_metric("train_loss", 1.0, step=0)
            raise RuntimeError("boom")
    got = mlflow.MlflowClient(tracking_uri=uri).get_run(run.info.run_id)
    assert got.info.status == "FAILED"
    assert got.data.metrics == {"train_loss": 1.0}  # what was logged before the crash is kept
    assert mlflow.active_run() is None


def test_ctrl_c_marks_run_killed(local_store: str) -> None:
    with pytest.raises(KeyboardInterrupt):
        with start_run("interrupted") as run:
            raise KeyboardInterrupt
    assert mlflow.get_run(run.info.run_id).info.status == "KILLED"


def test_run_context_routes_top_level_runs_only(local_store: str) -> None:
    with start_run("suite-home") as parent:
        pass
    with run_context(experiment="suite-home", parent_run_id=parent.info.run_id, tags={"k": "suite"}):
        with start_run("task-choice", tags={"k": "task", "other": "1"}) as child:
            with start_run("task-choice", nested=True) as grandchild:
                pass
    client = mlflow.MlflowClient()
    c = client.get_run(child.info.run_id)
    g = client.get_run(grandchild.info.run_id)
    home = client.get_experiment_by_name("suite-home").experiment_id
    assert c.info.experiment_id == home
    assert c.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert c.data.tags["k"] == "suite" and c.data.tags["other"] == "1"
    assert g.data.tags["mlflow.parentRunId"] == child.info.run_id  # nested under the task's run
    assert "k" not in g.data.tags

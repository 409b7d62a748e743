"""Fixtures: a real MLflow tracking server, the local default store, and a tiny real task.

The server is ``mlflow server`` started as a subprocess on 127.0.0.1 (free port) with a
SQLite backend store and proxied artifacts in a temporary folder, waited for (at most 60 s)
and stopped by its process-group id. It is shared by the whole session (startup ~6 s on an
idle machine).

Creating an MLflow SQLite database runs its schema migrations (1.5 s idle, 8 s on a busy
2-core machine), so one empty, migrated database is made per session through
``geograph.tracking.configure`` and copied wherever a fresh store is needed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error, r2_score

from geograph.tasks.registry import register_task, unregister_task
from geograph.tracking import configure, resolve_tracking_uri, start_run
from geograph.tracking.server import free_port, start_ui

SERVER_READY_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def empty_store_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database at the current schema, made by ``configure``."""
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    configure(f"sqlite:///{db}")
    assert db.is_file()
    return db


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, empty_store_db: Path) -> Iterator[str]:
    """URI of a real MLflow tracking server (SQLite store + artifacts in a temp folder)."""
    root = tmp_path_factory.mktemp("mlflow_server")
    shutil.copyfile(empty_store_db, root / "mlflow.db")
    server = start_ui(
        port=free_port(),
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifacts_destination=root / "artifacts",
        log_path=root / "server.log",
        timeout=SERVER_READY_TIMEOUT_S,
    )
    try:
        yield server.url
    finally:
        server.stop()
        assert server.process.poll() is not None, "mlflow server still running after stop()"


def use_local_store(root: Path, monkeypatch: pytest.MonkeyPatch, empty_db: Path) -> str:
    """Make ``root`` the working directory and give it a fresh local default store."""
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (root / "mlruns").mkdir()
    shutil.copyfile(empty_db, root / "mlruns" / "mlflow.db")
    uri = resolve_tracking_uri()
    assert uri == f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    return uri


@pytest.fixture(scope="session")
def make_local_store(empty_store_db: Path) -> Callable[[Path, pytest.MonkeyPatch], str]:
    """``make_local_store(root, monkeypatch) -> uri``, for module-scoped stores."""
    return lambda root, monkeypatch: use_local_store(root, monkeypatch, empty_store_db)


@pytest.fixture
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store_db: Path) -> str:
    """The local default store (sqlite:///mlruns/mlflow.db) with the working directory in tmp_path."""
    return use_local_store(tmp_path, monkeypatch, empty_store_db)


@pytest.fixture(autouse=True)
def _no_leaked_run() -> Iterator[None]:
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run(status="KILLED")


@pytest.fixture
def experiment_name() -> str:
    """A fresh experiment name (the server is shared by every test of the session)."""
    return f"exp-{uuid.uuid4().hex[:8]}"


# --- a tiny real task --------------------------------------------------------------------------

# Hand-made regression data: y = 1.5 x0 - 2 x1 + 0.5 (+ seeded noise); 8 train rows, 4 test rows.
_X = np.array(
    [[0, 0], [1, 0], [0, 1], [1, 1], [2, 1], [1, 2], [2, 2], [3, 1], [0, 2], [3, 0], [2, 3], [1, 3]],
    dtype=float,
)
_W = np.array([1.5, -2.0])


class RidgeTask:
    """``fn(config, *, tracking_uri, fast) -> {"run_id", "metrics"}`` fitting sklearn Ridge.

    Config keys: ``name``, ``alpha``, ``noise``, ``seed`` (and optional ``data_file``: a CSV whose
    rows are added to the noise, to exercise data fingerprints). ``fail_on`` holds config names
    that crash after the run has logged something; ``calls`` records (name, seed) per call.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail_on: set[str] = set()

    def __call__(
        self, config: dict[str, Any], *, tracking_uri: str | None = None, fast: bool = False
    ) -> dict:
        name, seed = config["name"], int(config["seed"])
        self.calls.append((name, seed))
        rng = np.random.default_rng(seed)
        y = _X @ _W + 0.5 + rng.normal(0.0, float(config.get("noise", 0.3)), len(_X))
        tr, te = slice(0, 8), slice(8, 12)
        with start_run(
            config.get("experiment", "toy"),
            run_name=f"{name}-s{seed}",
            params=config,
            tracking_uri=tracking_uri,
        ) as run:
            for step, scale in enumerate((8.0, 4.0, 2.0, 1.0)):
                m = Ridge(alpha=float(config["alpha"]) * scale).fit(_X[tr], y[tr])
                mlflow.log_metric(
                    "train_loss", float(mean_squared_error(y[tr], m.predict(_X[tr]))), step=step
                )
            if name in self.fail_on:
                raise RuntimeError(f"injected crash in config {name!r}")
            pred = m.predict(_X[te])
            metrics = {
                "test_r2": float(r2_score(y[te], pred)),
                "test_rmse": float(np.sqrt(mean_squared_error(y[te], pred))),
            }
            mlflow.log_metrics(metrics)
        return {"run_id": run.info.run_id, "metrics": metrics}


_task_ids = itertools.count()


@pytest.fixture
def ridge_task() -> Iterator[tuple[str, RidgeTask]]:
    """A freshly registered :class:`RidgeTask`: ``(task_name, task)``."""
    name = f"ridge_{os.getpid()}_{next(_task_ids)}"
    task = RidgeTask()
    register_task(name, task)
    try:
        yield name, task
    finally:
        unregister_task(name)

"""Fixtures for suites: a tiny real task (sklearn Ridge) registered under a fresh name.

The MLflow store and server fixtures come from ``tests/conftest.py``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import mlflow
import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error, r2_score

from geograph.experiments.registry import register_task, unregister_task
from geograph.tracking import start_run

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

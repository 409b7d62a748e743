"""Fixtures of the analytics tests: the 12-POI hand-made world (in memory and as a folder) and a
GNN trained on it once per session into a temporary MLflow store (about 20 s on 2 busy cores)."""

from __future__ import annotations

from pathlib import Path

import pytest
from analytics_world import analytics_world

from geograph.analytics import ModelContext, WorldSource
from geograph.data import World, write_world


@pytest.fixture(scope="session")
def world() -> World:
    return analytics_world()


@pytest.fixture(scope="session")
def source(world: World) -> WorldSource:
    return WorldSource.from_world(world)


@pytest.fixture(scope="session")
def world_dir(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_world(world, tmp_path_factory.mktemp("analytics_world") / "world")


@pytest.fixture(scope="session")
def trained(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``{"run_id", "tracking_uri"}`` of a fast GNN run trained on the hand-made world."""
    from geograph.covisit.run import run_from_config

    root = tmp_path_factory.mktemp("analytics_mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    config = {
        "name": "analytics_test",
        "data": {"cache_dir": None},
        "train": {"device": "cpu", "checkpoint_dir": str(root / "ckpt"), "seed": 0},
        "tracking": {"experiment": "analytics-tests"},
    }
    out = run_from_config(config, tracking_uri=uri, fast=True, world=world)
    return {"run_id": out["run_id"], "tracking_uri": uri}


@pytest.fixture(scope="session")
def model(trained: dict) -> ModelContext:
    return ModelContext.from_mlflow(run_id=trained["run_id"], tracking_uri=trained["tracking_uri"])

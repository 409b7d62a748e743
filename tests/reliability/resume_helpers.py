"""Tiny training configs and `geograph train covisit` subprocesses for the resume / concurrency tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]
EXPERIMENT = "reliability"


def write_tiny_world(folder: Path, n_pois: int = 400) -> Path:
    from geograph.data import write_world
    from geograph.testing import tiny_world

    return write_world(tiny_world(seed=3, n_pois=n_pois, n_images=0), folder, overwrite=True)


def tiny_config(path: Path, checkpoint_dir: Path, epochs: int = 8, seed: int = 0) -> Path:
    """A co-visitation config that trains in seconds on the tiny world (checkpoint every epoch)."""
    cfg = {
        "name": "reliability",
        "data": {"cache_dir": None},
        "model": {"hidden": 16, "head_hidden": [16], "dropout": 0.0, "layers": 1},
        "train": {
            "epochs": epochs,
            "lr": 0.01,
            "patience": 100,
            "device": "cpu",
            "seed": seed,
            "checkpoint_dir": str(checkpoint_dir),
        },
        "tracking": {"experiment": EXPERIMENT, "log_model": False},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def train_cli(config: Path, world: Path, uri: str, *, resume: str | None = None, background: bool = False):
    """Run ``geograph train covisit`` on ``world``; a Popen when ``background``, else the finished process."""
    cmd = [
        sys.executable,
        "-m",
        "geograph",
        "train",
        "covisit",
        "--config",
        str(config),
        "--data",
        str(world),
        "--tracking-uri",
        uri,
        *(["--resume", resume] if resume else []),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    if background:
        return subprocess.Popen(
            cmd, cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
    return subprocess.run(cmd, cwd=config.parent, capture_output=True, text=True, env=env, timeout=1500)


def finished_run(uri: str):
    """The one FINISHED run of the experiment in ``uri``."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'")
    assert len(runs) == 1, [r.info for r in runs]
    return client, runs[0]

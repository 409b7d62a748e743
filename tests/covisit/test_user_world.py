"""Co-visitation end to end on a world folder that geograph did not generate: plain CSV files
written here with their own ids, column names and law, read by the contracts' readers, trained
from the CLI and from Python, and scored on observed pairs."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest

from geograph.cli.main import main
from geograph.covisit.run import run_from_config

CITIES = {"WA": (47.61, -122.33), "IL": (41.88, -87.63), "GA": (33.75, -84.39)}
CODES = ["722515", "445110", "311811", "713940", "456110", "455211"]  # 2022 NAICS


def write_user_world(folder: Path, seed: int = 7, per_state: int = 40) -> Path:
    """POIs around three city centres and a distance-decay co-visit law, as a user would export."""
    rng = np.random.default_rng(seed)
    pois, rows = [], []
    for state, (lat0, lon0) in CITIES.items():
        ids = [f"{state.lower()}-{i:03d}" for i in range(per_state)]
        lat = lat0 + rng.normal(0, 0.05, per_state)
        lon = lon0 + rng.normal(0, 0.05, per_state)
        size = rng.lognormal(7, 0.6, per_state)
        for k, pid in enumerate(ids):
            pois.append((pid, f"Store {pid}", None if k % 3 else f"Chain {k % 4}", CODES[k % len(CODES)],
                         float(lat[k]), float(lon[k]), state, float(round(size[k]))))
        for a in range(per_state):
            for b in rng.choice(per_state, size=6, replace=False):
                if a == b:
                    continue
                km = math.dist((lat[a], lon[a]), (lat[b], lon[b])) * 111.0
                lam = 0.02 * math.sqrt(size[a] * size[b]) * math.exp(-km / 4.0)
                rows.append((ids[a], ids[int(b)], int(rng.poisson(lam))))
    folder.mkdir(parents=True)
    pl.DataFrame(pois, schema=["poi_id", "name", "brand", "naics_code", "latitude", "longitude", "state", "visits"],
                 orient="row").write_csv(folder / "pois.csv")
    covisits = pl.DataFrame(rows, schema=["src_poi_id", "dst_poi_id", "visitors"], orient="row")
    covisits.unique(["src_poi_id", "dst_poi_id"], keep="first", maintain_order=True).write_csv(folder / "covisits.csv")
    return folder


def _config(folder: Path, tmp_path: Path) -> dict:
    return {
        "name": "user_world",
        "data": {"world_dir": str(folder), "cache_dir": None},
        "model": {"hidden": 16, "head_hidden": [16], "layers": 1},
        "train": {"epochs": 3, "device": "cpu", "progress": False, "checkpoint_dir": str(tmp_path / "ckpt")},
        "tracking": {"experiment": "user_world", "log_model": False},
    }


@pytest.mark.parametrize("family", ["gnn", "gbt"])
def test_python_api_on_a_user_world(tmp_path: Path, family: str) -> None:
    folder = write_user_world(tmp_path / "world")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = _config(folder, tmp_path)
    cfg["model"]["family"] = family
    out = run_from_config(cfg, tracking_uri=uri)
    m = out["metrics"]
    assert m["test_observed_pairs"] > 0
    for k in ("test_observed_r2_log1p", "test_observed_mae_log1p", "test_observed_cpc", "test_ndcg10", "test_mrr"):
        assert np.isfinite(m[k]), k
    local = mlflow.artifacts.download_artifacts(run_id=out["run_id"], artifact_path="per_state_metrics.csv",
                                                tracking_uri=uri, dst_path=str(tmp_path / "dl"))
    states = pl.read_csv(local)["state"].to_list()
    assert "all" in states and set(states) - {"all"} <= set(CITIES)


def test_cli_on_a_user_world(tmp_path: Path, capsys) -> None:
    import yaml

    folder = write_user_world(tmp_path / "world")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(_config(folder, tmp_path)))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["train", "covisit", "--config", str(cfg), "--tracking-uri", uri]) == 0
    printed = capsys.readouterr().out
    assert "test_observed_r2_log1p" in printed

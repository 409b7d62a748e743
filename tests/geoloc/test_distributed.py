"""Geolocation under torchrun: 2 CPU ranks (gloo) train one head and search a sharded gallery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from geograph.retrieval.search import chunked_topk, shard_bounds, sharded_topk
from geograph.tracking.server import free_port


def test_shard_bounds_cover_the_rows_once():
    for n, w in [(10, 3), (2, 4), (0, 2), (1001, 2)]:
        parts = [shard_bounds(n, r, w) for r in range(w)]
        assert parts[0][0] == 0 and parts[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
        assert max(h - lo for lo, h in parts) - min(h - lo for lo, h in parts) <= 1
    with pytest.raises(ValueError, match="rank"):
        shard_bounds(10, 2, 2)


def test_sharded_topk_is_chunked_topk_in_one_process():
    import torch

    g = torch.Generator().manual_seed(0)
    k, q = torch.randn(50, 8, generator=g), torch.randn(5, 8, generator=g)
    for a, b in zip(sharded_topk(q, k, 7), chunked_topk(q, k, 7), strict=True):
        assert torch.equal(a, b)


def test_two_rank_ddp_geolocation(tmp_path: Path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
        str(Path(__file__).with_name("ddp_geolocate_worker.py")), str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert (r0["world_size"], r1["world_size"]) == (2, 2)
    # data-parallel training keeps the ranks' heads (weights, scale, GPS queue) identical
    assert r0["param_checksum"] == r1["param_checksum"] is not None
    # the sharded gallery search and embedding equal one process's
    assert r0["shard"] == [0, 501] and r1["shard"] == [501, 1001]
    assert r0["topk_equal"] and r1["topk_equal"] and r0["gather_equal"] and r1["gather_equal"]
    # every rank evaluated the same predictions
    for k in ("test_acc_200km", "test_median_km", "val_acc_mean"):
        assert r0["metrics"][k] == r1["metrics"][k], k
    # one MLflow run, by rank 0, with 3 epochs of history and the checkpoint written once
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["geo_ddp"])
    assert len(runs) == 1 and runs.iloc[0]["run_id"] == r0["run_id"] and r1["run_id"] is None
    assert runs.iloc[0]["tags.geograph.world_size"] == "2"
    assert (tmp_path / "ckpt" / r0["run_id"] / "last.pt").is_file()  # keyed by the run id

"""Two ranks on CPU (gloo, 127.0.0.1) train one model, state-sharded; checked against one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from geograph.distributed import balanced_partition
from geograph.tracking.server import free_port


def test_balanced_partition_is_lpt_and_complete():
    w = {"CA": 10, "TX": 7, "NY": 5, "WY": 1, "VT": 1}
    parts = balanced_partition(w, 2)
    assert sorted(sum(parts, [])) == sorted(w)
    assert parts == [["CA", "VT", "WY"], ["TX", "NY"]]
    with pytest.raises(ValueError):
        balanced_partition(w, 0)


def test_two_rank_ddp_matches_single_process(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
        str(Path(__file__).with_name("ddp_worker.py")), str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    # both ranks hold identical parameters after training
    assert r0["param_checksum"] == r1["param_checksum"] is not None
    # each state was trained by exactly one rank
    states0 = {s for g in r0["groups"] for s in g.split("+")}
    states1 = {s for g in r1["groups"] for s in g.split("+")}
    assert states0 and states1 and not (states0 & states1)
    assert states0 | states1 == {"CA", "NY", "TX"}
    # metrics are reduced across ranks: identical on both
    assert r0["metrics"]["test_r2"] == r1["metrics"]["test_r2"]
    # exactly one MLflow run, written by rank 0
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["ddp"])
    assert len(runs) == 1 and runs.iloc[0]["run_id"] == r0["run_id"] and r1["run_id"] is None
    assert runs.iloc[0]["tags.geograph.world_size"] == "2"
    # single-process evaluation of the same (logged) model gives the same test metrics
    from geograph.cli.evaluate_cmd import load_predictor_from_run

    single = load_predictor_from_run(r0["run_id"], f"sqlite:///{tmp_path}/mlflow.db").evaluate("test")
    for k in ("test_r2", "test_mae", "test_spearman", "test_ndcg10", "test_recall10"):
        assert single[k] == pytest.approx(r0["metrics"][k], abs=1e-6), k

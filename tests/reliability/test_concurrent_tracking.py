"""Processes logging to one SQLite MLflow store at once lose no run and no metric.

Fast: two processes open runs through geograph.tracking.start_run and log a metric history
each, all at the same moment (slow: four processes, ten runs of 100 steps each; and two
``geograph train covisit`` trainings on the same store at once). Afterwards every run is
FINISHED and every metric history is complete. The stores start as a copy of one migrated
empty database (``empty_store_db``), so the processes race on logging, not on creating tables.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .counting import bump, record
from .resume_helpers import ROOT, tiny_config, train_cli, write_tiny_world

WORKER = Path(__file__).with_name("tracking_worker.py")


def run_workers(uri: str, experiment: str, n: int, runs: int, steps: int) -> list[dict]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), uri, experiment, f"w{i}", str(runs), str(steps)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()[-3000:]
        for p in procs:  # go
            p.stdin.write("\n")
            p.stdin.flush()
        out = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=900)
            assert p.returncode == 0, stderr[-3000:]
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def audit(uri: str, experiment: str) -> dict:
    """Runs, statuses and metric-history lengths of ``experiment``."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=10_000)
    out = {"runs": len(runs), "statuses": sorted({r.info.status for r in runs}), "histories": {}}
    for r in runs:
        for key in r.data.metrics:
            out["histories"][f"{r.info.run_name}/{key}"] = len(client.get_metric_history(r.info.run_id, key))
    return out


@pytest.mark.parametrize(
    "size",
    [pytest.param((2, 2, 8), id="fast"), pytest.param((4, 10, 100), id="slow", marks=pytest.mark.slow)],
)
def test_concurrent_loggers_lose_nothing(size: tuple[int, int, int], tmp_path: Path, empty_store_db: Path) -> None:
    n, runs, steps = size
    uri = _fresh_store(tmp_path, empty_store_db)
    results = run_workers(uri, "concurrent", n, runs, steps)
    got = audit(uri, "concurrent")
    expected_runs = n * runs
    summary = {
        "processes": n,
        "runs_logged": sum(len(r["runs"]) for r in results),
        "runs_found": got["runs"],
        "statuses": got["statuses"],
        "metric_points_expected": expected_runs * (2 * steps + 1),
        "metric_points_found": sum(got["histories"].values()),
        "seconds": max(r["seconds"] for r in results),
    }
    record(f"concurrent_logging.{'slow' if steps > 50 else 'fast'}", summary)
    bump("concurrent.runs", got["runs"])
    assert got["runs"] == expected_runs, summary
    assert got["statuses"] == ["FINISHED"], summary
    for key, length in got["histories"].items():
        assert length == (1 if key.endswith("/test_r2") else steps), (key, length)
    assert summary["metric_points_found"] == summary["metric_points_expected"], summary


@pytest.mark.slow
def test_two_trainings_on_one_store(tmp_path: Path) -> None:
    """Two `geograph train covisit` processes, same store and experiment, at the same time."""
    world = write_tiny_world(tmp_path / "world")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    procs = []
    for seed in (0, 1):
        cfg = tiny_config(tmp_path / f"c{seed}.yaml", tmp_path / f"ckpt{seed}", epochs=6, seed=seed)
        procs.append(train_cli(cfg, world, uri, background=True))
    for p in procs:
        _, stderr = p.communicate(timeout=1500)
        assert p.returncode == 0, stderr[-3000:]
    got = audit(uri, "reliability")
    record(
        "concurrent_logging.trainings",
        {
            "processes": 2,
            "runs_found": got["runs"],
            "statuses": got["statuses"],
            "val_r2_history": sorted(v for k, v in got["histories"].items() if k.endswith("/val_r2")),
        },
    )
    assert got["runs"] == 2 and got["statuses"] == ["FINISHED"], got
    assert sorted(v for k, v in got["histories"].items() if k.endswith("/val_r2")) == [6, 6], got
    bump("concurrent.runs", got["runs"])


_OPEN_AND_WAIT = """
import sys, time
from geograph.tracking import start_run
with start_run(sys.argv[2], run_name=sys.argv[3], tracking_uri=sys.argv[1]) as run:
    print(run.info.run_id, flush=True)
    time.sleep(600)  # until the test kills it
"""


def _fresh_store(tmp_path: Path, empty_store_db: Path) -> str:
    shutil.copyfile(empty_store_db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _start_run_process(uri: str, experiment: str, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _OPEN_AND_WAIT, uri, experiment, name],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_id(proc: subprocess.Popen) -> str:
    run_id = proc.stdout.readline().strip()
    assert run_id, proc.stderr.read()[-3000:]
    return run_id


def test_sigkilled_run_is_marked_killed(tmp_path: Path, empty_store_db: Path) -> None:
    """A process SIGKILLed inside its run cannot close it: the next run in that experiment marks
    it KILLED (with the reason in a tag); a run whose process still lives stays RUNNING."""
    import mlflow

    from geograph.tracking import start_run

    uri = _fresh_store(tmp_path, empty_store_db)
    killed_proc = _start_run_process(uri, "stale", "killed")  # both start at once
    live_proc = _start_run_process(uri, "stale", "alive")
    try:
        killed_id, live_id = _run_id(killed_proc), _run_id(live_proc)
        killed_proc.kill()  # SIGKILL: no finally, no atexit, the run stays RUNNING
        killed_proc.wait()
        client = mlflow.MlflowClient(uri)
        assert client.get_run(killed_id).info.status == "RUNNING"
        with start_run("stale", run_name="next", tracking_uri=uri):
            pass
        run = client.get_run(killed_id)
        assert run.info.status == "KILLED" and run.info.end_time is not None
        assert "ended without closing it" in run.data.tags["geograph.end_reason"]
        assert client.get_run(live_id).info.status == "RUNNING"  # its process is alive
    finally:
        for p in (killed_proc, live_proc):
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()
    bump("concurrent.runs", 3)
    record("tracking.sigkilled_run", {"marked_killed": 1, "live_left_running": 1})


def test_owner_alive_tells_a_reused_pid_apart() -> None:
    import os
    import socket

    from geograph.tracking.store import owner_alive, owner_tag

    assert owner_alive(owner_tag()) is True
    host, pid, start = owner_tag().split(":")
    assert owner_alive(f"{host}:{pid}:{int(start) + 1}") is False  # same PID, another process
    assert owner_alive(f"other-{socket.gethostname()}:{os.getpid()}:{start}") is None  # cannot tell
    assert owner_alive("garbage") is None

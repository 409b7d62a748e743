"""Distributed failures end the run within a bound: a rendezvous that never completes, and a
rank that dies (SIGKILL) or is stopped (SIGTERM) mid-training. The MLflow run ends FAILED and
the last checkpoint loads and resumes. Every process runs on 127.0.0.1 free ports."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from geograph.covisit.run import run_from_config
from geograph.data import write_world
from geograph.distributed import DistInfo
from geograph.distributed.env import DistributedError
from geograph.distributed.failures import RUN_FILE_ENV, rank_failures, record_run
from geograph.graph.cache import load_checked
from geograph.testing import tiny_world
from geograph.tracking.server import free_port

RENDEZVOUS_TIMEOUT_S = 5  # train.dist_timeout_s of the rendezvous tests
# train.dist_timeout_s of the training runs: longer than rank 0's MLflow set-up, during which
# rank 1 waits in a collective (5 s was too short on a busy machine); a dead rank is noticed
# at once anyway (its sockets close)
TRAIN_TIMEOUT_S = 60
EXIT_BOUND_S = 60  # from the failure to the launcher's exit (measured 4-6 s on an idle 2-core machine)


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("failures") / "world"
    write_world(tiny_world(seed=3, n_pois=150, n_images=0), folder)
    return folder


def _config(world_dir: Path, out: Path, timeout_s: float = TRAIN_TIMEOUT_S) -> dict:
    return {
        "name": "failures",
        "data": {"world_dir": str(world_dir), "cache_dir": None},
        "model": {"hidden": 16, "head_hidden": [16]},
        # many short epochs (about 0.2 s each): training is still going when a rank is killed
        "train": {
            "epochs": 300,
            "patience": 1000,
            "max_group_pois": 1,
            "threads": 1,
            "checkpoint_dir": str(out / "ckpt"),
            "dist_timeout_s": timeout_s,
        },
        "tracking": {"experiment": "failures", "log_model": False},
    }


def _env(**extra: str) -> dict:
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    }
    return dict(env, OMP_NUM_THREADS="1", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false", **extra)


def _geograph(out: Path) -> list[str]:
    return ["-m", "geograph", "train", "covisit", "--config", str(out / "config.yaml"),
            "--tracking-uri", f"sqlite:///{out}/mlflow.db"]  # fmt: skip


@pytest.mark.parametrize("rank", [0, 1])
def test_rendezvous_that_never_completes_fails_within_the_timeout(tmp_path, world_dir, rank):
    # a world of 2 where only this rank starts (rank 0: nobody joins its store; rank 1: nothing
    # listens at the master port)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_config(world_dir, tmp_path, RENDEZVOUS_TIMEOUT_S)))
    port = free_port()
    env = _env(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, *_geograph(tmp_path)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr[-3000:]
    waited = (
        "waited for the other 1 rank(s) to join its store"
        if rank == 0
        else "could not join the process group through the store of rank 0"
    )
    expected = (
        f"geograph: error: rendezvous did not complete: rank {rank} of 2 {waited} at 127.0.0.1:{port} "
        f"for train.dist_timeout_s={RENDEZVOUS_TIMEOUT_S} s"
    )
    assert expected in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # bounded: the timeout plus start-up (imports take 5-15 s on a busy 2-core machine)
    assert elapsed < RENDEZVOUS_TIMEOUT_S + 45, elapsed
    assert not (tmp_path / "mlflow.db").exists()  # no run was started
    print(f"rank {rank} alone: exit after {elapsed:.1f} s (train.dist_timeout_s={RENDEZVOUS_TIMEOUT_S})")


def test_rank_failures_turns_a_lost_peer_and_sigterm_into_a_distributed_error(tmp_path):
    info = DistInfo(rank=1, world_size=2)
    ckpt = tmp_path / "last.pt"
    gloo = "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:4327"
    with pytest.raises(DistributedError, match=r"^rank 1 of 2 lost contact with another rank: .*=7 s "
                       r"\(Connection closed by peer \[127.0.0.1\]:4327\); no checkpoint was written yet$"):  # fmt: skip
        with rank_failures(info, 7, ckpt):
            raise RuntimeError(gloo)
    ckpt.write_bytes(b"x")
    with pytest.raises(
        DistributedError, match=rf"^rank 1 of 2 was stopped by SIGTERM .*checkpoint {ckpt} is kept"
    ):
        with rank_failures(info, 7, ckpt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    with pytest.raises(ValueError, match="unrelated"):  # other errors pass through unchanged
        with rank_failures(info, 7, ckpt):
            raise ValueError("unrelated")
    with pytest.raises(RuntimeError, match="peer"):  # one process: nothing is converted
        with rank_failures(DistInfo(), 7, ckpt):
            raise RuntimeError("Connection closed by peer")


def test_launcher_marks_a_run_left_running_failed(tmp_path, monkeypatch, capsys):
    from geograph.cli.train_cmd import _report_failed_launch

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("launch"))  # RUNNING, as a SIGKILLed rank 0 leaves it
    run_file = tmp_path / "run.json"
    ckpt = tmp_path / "ckpt" / "last.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"x")
    monkeypatch.setenv(RUN_FILE_ENV, str(run_file))
    record_run(run.info.run_id, uri, ckpt)
    _report_failed_launch(1, 2, run_file)
    after = client.get_run(run.info.run_id)
    assert after.info.status == "FAILED"
    assert (
        after.data.tags["geograph.end_reason"]
        == "torchrun exited with code 1: a rank of 2 failed or was killed"
    )
    err = capsys.readouterr().err
    assert f"MLflow run {run.info.run_id} is marked FAILED; the last checkpoint {ckpt} is kept" in err
    # a run rank 0 closed itself keeps its status and reason
    closed = client.create_run(after.info.experiment_id)
    client.set_tag(closed.info.run_id, "geograph.end_reason", "rank 0 of 2 lost contact with another rank")
    client.set_terminated(closed.info.run_id, status="FAILED")
    record_run(closed.info.run_id, uri, ckpt)
    _report_failed_launch(1, 2, run_file)
    assert client.get_run(closed.info.run_id).data.tags["geograph.end_reason"].startswith("rank 0 of 2 lost")
    # no recorded run: said so
    _report_failed_launch(1, 2, tmp_path / "absent.json")
    assert "no MLflow run was recorded" in capsys.readouterr().err


def _descendants(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
            out += [int(child), *_descendants(int(child))]
    return out


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of the worker of ``rank`` started (via torchrun) by ``launcher``."""
    for pid in _descendants(launcher.pid):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"TORCHELASTIC_RUN_ID=none" in env:
            return pid
    raise AssertionError(f"no worker of rank {rank} under pid {launcher.pid}")


def _wait_for_checkpoint(root: Path, proc: subprocess.Popen, limit_s: float = 300) -> None:
    """Wait for the run's checkpoint ``root/<run id>/last.pt``, then a few more epochs."""
    t0 = time.monotonic()
    while not any(root.glob("*/last.pt")):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() - t0 < limit_s, "no checkpoint written"
        time.sleep(0.1)
    time.sleep(1.0)  # a few more epochs


@pytest.mark.slow
@pytest.mark.parametrize(
    ("launcher", "victim", "sig", "reason"),
    [
        # plain torchrun; rank 1 dies: rank 0 loses its peer (or gets torchrun's SIGTERM) and
        # closes its own run FAILED
        ("torchrun", 1, signal.SIGKILL, "rank 0 of 2 "),
        # plain torchrun; rank 0 is sent SIGTERM (what torchrun or a scheduler sends): its run ends FAILED
        ("torchrun", 0, signal.SIGTERM, "rank 0 of 2 was stopped by SIGTERM"),
        # geograph train --nproc; rank 0 dies and cannot mark anything: the launcher does
        ("nproc", 0, signal.SIGKILL, "torchrun exited with code 1: a rank of 2 failed or was killed"),
    ],
)
def test_a_lost_rank_ends_the_run_failed_and_keeps_a_resumable_checkpoint(
    tmp_path, world_dir, launcher, victim, sig, reason
):
    cfg = _config(world_dir, tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    if launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "--max-restarts", "0",
               *_geograph(tmp_path)]  # fmt: skip
    else:
        cmd = [sys.executable, *_geograph(tmp_path), "--nproc", "2"]
    proc = subprocess.Popen(
        cmd, env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_for_checkpoint(tmp_path / "ckpt", proc)
        os.kill(_rank_pid(proc, victim), sig)
        t_kill = time.monotonic()
        output, _ = proc.communicate(timeout=EXIT_BOUND_S + 60)
        exit_s = time.monotonic() - t_kill
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"{launcher}: rank {victim} {sig.name}: exit {exit_s:.1f} s after the signal")
    assert proc.returncode != 0, output[-3000:]
    assert exit_s < EXIT_BOUND_S, exit_s
    (ckpt,) = (tmp_path / "ckpt").glob("*/last.pt")
    run_id = ckpt.parent.name
    if launcher == "nproc":
        assert "geograph: error: torchrun exited with code 1" in output
        assert f"the last checkpoint {ckpt} is kept: rerun with --resume {run_id}" in output

    # the one MLflow run ended FAILED, with the reason
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["failures"])
    assert len(runs) == 1, runs[["run_id", "status"]]
    assert runs.iloc[0]["status"] == "FAILED"
    assert runs.iloc[0]["tags.geograph.end_reason"].startswith(reason), runs.iloc[0][
        "tags.geograph.end_reason"
    ]

    # the last checkpoint loads, and --resume continues from it (in one process)
    state = load_checked(ckpt)
    done = int(state["epoch"])
    assert 1 <= done < cfg["train"]["epochs"]
    assert [h["epoch"] for h in state["history"]] == list(range(1, done + 1))
    resumed = run_from_config({**cfg, "train": {**cfg["train"], "resume": run_id}}, tracking_uri=uri,
                              stop_after_epoch=done + 1)  # fmt: skip
    assert resumed["run_id"] == run_id  # the failed run continues under its own id
    run = mlflow.get_run(resumed["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["geograph.resumed_from_epoch"] == str(done)
    after = load_checked(ckpt)
    assert after["epoch"] == done + 1
    assert after["history"][:done] == state["history"]

"""Resume after SIGKILL: the same test metrics as an uninterrupted run (same seed).

``geograph train covisit`` runs on a tiny world with a checkpoint every epoch; one run goes
through, another is SIGKILLed once the checkpoint of a random (seeded) epoch exists and is
rerun with ``--resume``. Test metrics, the per-epoch history and the number of epochs must
equal the uninterrupted run's. `geograph train geolocate` is killed and resumed the same way
(its test metrics and per-epoch validation history must match too).
"""

from __future__ import annotations

import math
import os
import random
import signal
import time
from pathlib import Path

import pytest

from .counting import bump, record
from .resume_helpers import finished_run, tiny_config, train_cli, write_tiny_world

EPOCHS = 30  # epochs long enough (~0.3 s) that the kill lands mid-training


def _epoch_of(ckpt: Path) -> int | None:
    from geograph.errors import CheckpointError
    from geograph.graph.cache import load_checked

    try:
        return int(load_checked(ckpt)["epoch"])
    except (CheckpointError, FileNotFoundError):
        return None


def by_step(history) -> list[tuple[int, float]]:
    """One ``(step, value)`` per step: the resumed run logs again, with the same value, an epoch
    the killed process trained after its last checkpoint."""
    seen: dict[int, float] = {}
    for m in history:
        assert seen.setdefault(m.step, m.value) == pytest.approx(m.value, abs=1e-6), (m.step, seen[m.step], m.value)
    return sorted(seen.items())


def kill_after_epoch(proc, root: Path, epoch: int, timeout_s: float = 1200) -> tuple[int, str]:
    """SIGKILL ``proc`` once its run's checkpoint ``root/<run id>/last.pt`` has been rewritten
    ``epoch`` times (once per epoch); returns the epoch the checkpoint then holds and the run id.
    Only ``stat`` is polled, so the kill follows the write closely."""
    t0, writes, last, ckpt = time.monotonic(), 0, None, None
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise AssertionError(f"training ended before epoch {epoch}: {proc.stderr.read()[-3000:]}")
        if ckpt is None:
            found = sorted(root.glob("*/last.pt"))
            if not found:
                time.sleep(0.01)
                continue
            ckpt = found[0]
        try:
            st = ckpt.stat()
            stamp = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp != last:
            last, writes = stamp, writes + 1
            if writes >= epoch:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                proc.stdout.close()
                proc.stderr.close()
                assert proc.returncode == -signal.SIGKILL, (
                    f"training had ended ({proc.returncode}) before the kill"
                )
                seen = _epoch_of(ckpt)
                assert seen is not None and seen < EPOCHS, f"checkpoint after the kill: epoch {seen}"
                return seen, ckpt.parent.name
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    raise AssertionError(f"no checkpoint of epoch {epoch} after {timeout_s} s")


@pytest.mark.slow
def test_covisit_resume_after_sigkill_equals_uninterrupted(tmp_path: Path) -> None:
    _epoch_of(tmp_path / "none.pt")  # import torch now, not while a training races ahead
    world = write_tiny_world(tmp_path / "world")
    uri_a = f"sqlite:///{tmp_path / 'a.db'}"
    done = train_cli(tiny_config(tmp_path / "a.yaml", tmp_path / "ckpt_a", EPOCHS), world, uri_a)
    assert done.returncode == 0, done.stderr[-3000:]
    client_a, run_a = finished_run(uri_a)
    test_a = {k: v for k, v in run_a.data.metrics.items() if k.startswith("test_")}
    hist_a = [
        m.value
        for m in sorted(client_a.get_metric_history(run_a.info.run_id, "val_r2"), key=lambda m: m.step)
    ]
    assert len(hist_a) == EPOCHS and test_a

    rng = random.Random(2024)
    results = []
    for attempt in range(2):
        uri_b = f"sqlite:///{tmp_path / f'b{attempt}.db'}"
        cfg_b = tiny_config(tmp_path / f"b{attempt}.yaml", tmp_path / f"ckpt_b{attempt}", EPOCHS)
        target = rng.randint(2, EPOCHS // 3)
        killed_at, run_id = kill_after_epoch(
            train_cli(cfg_b, world, uri_b, background=True), tmp_path / f"ckpt_b{attempt}", target
        )
        bump("faults.training_sigkill")
        again = train_cli(cfg_b, world, uri_b, resume=run_id[:8])  # a unique prefix is enough
        assert again.returncode == 0, again.stderr[-3000:]
        client_b, run_b = finished_run(uri_b)
        resumed_from = int(run_b.data.tags["geograph.resumed_from_epoch"])
        assert resumed_from >= killed_at
        test_b = {k: v for k, v in run_b.data.metrics.items() if k.startswith("test_")}
        hist_b = [v for _, v in by_step(client_b.get_metric_history(run_b.info.run_id, "val_r2"))]
        diff = max(abs(test_a[k] - test_b[k]) for k in test_a)
        results.append(
            {
                "killed_after_epoch": killed_at,
                "resumed_from": resumed_from,
                "test_r2_uninterrupted": test_a["test_r2"],
                "test_r2_resumed": test_b["test_r2"],
                "max_abs_diff_test_metrics": diff,
                "epochs": len(hist_b),
            }
        )
        assert set(test_b) == set(test_a)
        for k in test_a:
            assert math.isclose(test_a[k], test_b[k], rel_tol=0, abs_tol=1e-6), (k, test_a[k], test_b[k])
        assert hist_b == pytest.approx(hist_a, abs=1e-6)
        # the resumed training continues the killed run: one run, the same id, FINISHED
        runs = client_b.search_runs([run_b.info.experiment_id])
        assert [r.info.run_id for r in runs] == [run_id] and run_b.info.run_id == run_id
    record("resume.covisit", results)


GEO_EPOCHS = 16


def _geolocate_config(path: Path, checkpoint_dir: Path) -> Path:
    """A geolocation config that trains in seconds on a generated world (checkpoint every epoch);
    dropout draws from the global RNG, so the checkpoint's RNG state matters."""
    import yaml

    cfg = {
        "name": "reliability_geo",
        "data": {"source": "world", "n_pois": 300, "n_images": 2000},
        "encoder": {"name": "sinusoidal", "pretrained": False},
        "head": {"hidden": 64, "queue_size": 256, "dropout": 0.1},
        "train": {
            "epochs": GEO_EPOCHS,
            "batch_size": 64,
            "device": "cpu",
            "checkpoint_dir": str(checkpoint_dir),
        },
        "predict": {"top_k": 32, "kde_grid": [None, 200.0], "kde_temperature_grid": [1.0]},
        "tracking": {"experiment": "reliability", "log_model": False, "log_plots": False},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def _geolocate_cli(config: Path, uri: str, *, resume: str | None = None, background: bool = False):
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "geograph",
        "train",
        "geolocate",
        "--config",
        str(config),
        "--tracking-uri",
        uri,
    ]
    cmd += ["--resume", resume] if resume else []
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    if background:
        return subprocess.Popen(
            cmd, cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
    return subprocess.run(cmd, cwd=config.parent, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_geolocate_resume_after_sigkill_equals_uninterrupted(tmp_path: Path) -> None:
    """``geograph train geolocate`` SIGKILLed after a seeded random epoch and rerun with
    ``--resume``: the same test metrics and per-epoch validation history as an uninterrupted run."""
    _epoch_of(tmp_path / "none.pt")  # import torch now, not while a training races ahead
    uri_a = f"sqlite:///{tmp_path / 'a.db'}"
    done = _geolocate_cli(_geolocate_config(tmp_path / "a.yaml", tmp_path / "ckpt_a"), uri_a)
    assert done.returncode == 0, done.stderr[-3000:]
    client_a, run_a = finished_run(uri_a)
    test_a = {k: v for k, v in run_a.data.metrics.items() if k.startswith("test_")}
    hist_a = sorted(client_a.get_metric_history(run_a.info.run_id, "val_acc_mean"), key=lambda m: m.step)
    # per-epoch values at steps 1..E, the selected setting's at step 0
    assert [m.step for m in hist_a] == list(range(GEO_EPOCHS + 1)) and test_a

    target = random.Random(5).randint(2, GEO_EPOCHS // 3)
    uri_b = f"sqlite:///{tmp_path / 'b.db'}"
    cfg_b = _geolocate_config(tmp_path / "b.yaml", tmp_path / "ckpt_b")
    killed_at, run_id = kill_after_epoch(_geolocate_cli(cfg_b, uri_b, background=True), tmp_path / "ckpt_b", target)
    bump("faults.training_sigkill")
    again = _geolocate_cli(cfg_b, uri_b, resume=run_id)
    assert again.returncode == 0, again.stderr[-3000:]
    client_b, run_b = finished_run(uri_b)
    resumed_from = int(run_b.data.tags["geograph.resumed_from_epoch"])
    assert resumed_from >= killed_at
    test_b = {k: v for k, v in run_b.data.metrics.items() if k.startswith("test_")}
    hist_b = by_step(client_b.get_metric_history(run_b.info.run_id, "val_acc_mean"))
    assert set(test_b) == set(test_a)
    for k in test_a:
        if k.endswith("_s_per_1k"):  # wall time of the prediction, not a result
            continue
        assert math.isclose(test_a[k], test_b[k], rel_tol=0, abs_tol=1e-9), (k, test_a[k], test_b[k])
    assert hist_b == [(m.step, m.value) for m in hist_a]
    record(
        "resume.geolocate",
        {
            "killed_after_epoch": killed_at,
            "resumed_from": resumed_from,
            "epochs": len(hist_b),
            "test_acc_200km": test_b["test_acc_200km"],
            "max_abs_diff_test_metrics": max(abs(test_a[k] - test_b[k]) for k in test_a),
        },
    )

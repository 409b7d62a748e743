"""Progress goes to stderr (rate-limited lines off a terminal), the result alone to stdout, and
``--quiet`` silences the progress."""

from __future__ import annotations

import io
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from cli_configs import tiny_covisit_yaml

from geograph.cli.main import main
from geograph.train.progress import EpochProgress

RUN_LINE = re.compile(r"^run [0-9a-f]{32}$")


def _epoch_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(r"\bepoch \d+/\d+", line)]


def test_plain_lines_are_rate_limited_and_the_last_epoch_is_shown() -> None:
    buf = io.StringIO()
    with EpochProgress("m", 10, live=False, min_interval_s=3600, heartbeat_s=0, stream=buf) as bar:
        for e in range(1, 6):  # stopped early after epoch 5 of 10
            bar.update(e, {"train_loss": 1.0 / e, "val_r2": 0.1 * e}, best_epoch=e, epoch_s=0.5)
    lines = buf.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["1/10", "5/10"]
    assert lines[0].startswith("[m] epoch 1/10  loss 1.0000  val_r2 0.1000 (best @ 1)  0.5 s/epoch  elapsed ")
    assert lines[0].endswith("ETA 4.5 s")  # 9 epochs x 0.5 s left
    assert "val_r2 0.5000 (best @ 5)" in lines[1] and lines[1].endswith("ETA 2.5 s")  # 5 epochs x 0.5 s left
    assert repr(bar) == "EpochProgress('m', epochs=10, live=False)"


def test_a_resumed_training_starts_at_its_epoch_and_every_line_shows_with_no_interval() -> None:
    buf = io.StringIO()
    with EpochProgress("m", 4, first_epoch=3, live=False, min_interval_s=0, heartbeat_s=0, stream=buf) as bar:
        for e in (3, 4):
            bar.update(e, {"train_loss": 0.5}, best_epoch=0, epoch_s=1.0)
    assert [line.split()[2] for line in buf.getvalue().splitlines()] == ["3/4", "4/4"]


def test_a_long_epoch_prints_a_heartbeat() -> None:
    buf = io.StringIO()
    with EpochProgress("m", 3, live=False, heartbeat_s=0.05, stream=buf):
        time.sleep(0.3)  # epoch 1 runs and reports nothing itself
    assert "[m] epoch 1/3 running for" in buf.getvalue()


@pytest.fixture
def store(tmp_path: Path, empty_store_db: Path) -> str:
    shutil.copyfile(empty_store_db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _covisit_yaml(tmp_path: Path) -> Path:
    return tiny_covisit_yaml(tmp_path, {"experiment": "progress", "log_model": False})


@pytest.mark.slow  # two trainings: ~12 s (the geolocation test below covers the same in the fast suite)
def test_train_covisit_progress_on_stderr_result_on_stdout(tmp_path: Path, store: str, capsys) -> None:
    argv = ["train", "covisit", "--config", str(_covisit_yaml(tmp_path)), "--fast", "--tracking-uri", store]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert [line.split("epoch ")[1].split()[0] for line in _epoch_lines(err)][:1] == ["1/3"]
    assert _epoch_lines(err)[-1].startswith("[tiny_sage] epoch 3/3  loss ") and "ETA" in err
    assert "geograph: training co-visitation tiny_sage (fast)" in err
    # the phases around the epochs are timed too, so no stretch of the run is silent
    assert re.search(r"^geograph: preparing data \(world, graph, pairs\): [\d.]+ s$", err, re.M), err
    assert re.search(r"^geograph: scoring validation and test pairs: [\d.]+ s$", err, re.M), err
    # stdout: the run id on its own line, then the metrics table; no progress, notes or logs
    lines = out.splitlines()
    assert RUN_LINE.match(lines[0]), lines[0]
    assert "test_observed_r2_log1p" in out and not _epoch_lines(out)
    assert "geograph:" not in out and "INFO" not in out

    assert main([*argv, "--quiet"]) == 0
    out_q, err_q = capsys.readouterr()
    assert err_q == "", err_q  # --quiet: nothing at all on stderr, warnings included
    assert RUN_LINE.match(out_q.splitlines()[0]) and out_q.splitlines()[0] != lines[0]


def test_train_geolocate_shows_its_epochs(tmp_path: Path, store: str, capsys) -> None:
    cfg = {
        "name": "geo_tiny",
        "data": {"source": "world", "n_pois": 300, "n_images": 500},
        "encoder": {"name": "sinusoidal", "pretrained": False},
        "train": {"checkpoint": False},
        "tracking": {"experiment": "progress", "log_model": False, "log_plots": False},
    }
    path = tmp_path / "geo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "geolocate", "--config", str(path), "--fast", "--tracking-uri", store]) == 0
    out, err = capsys.readouterr()
    assert _epoch_lines(err)[0].startswith("[geo_tiny] epoch 1/2  loss ") and _epoch_lines(err)[-1].startswith(
        "[geo_tiny] epoch 2/2"
    )
    assert RUN_LINE.match(out.splitlines()[0]) and not _epoch_lines(out)
    assert "geograph: training geolocation geo_tiny (fast)" in err and "geograph:" not in out
    for what in ("preparing data (places, embeddings, splits)", "choosing inference settings on validation",
                 "scoring the test split"):  # the phases around the epochs are timed too
        assert re.search(rf"^geograph: {re.escape(what)}: [\d.]+ s$", err, re.M), (what, err)

    assert main(["train", "geolocate", "--config", str(path), "--fast", "--tracking-uri", store, "--quiet"]) == 0
    out_q, err_q = capsys.readouterr()
    assert err_q == "", err_q  # --quiet: nothing at all on stderr
    assert RUN_LINE.match(out_q.splitlines()[0]) and "val_" in out_q


@pytest.mark.slow  # torchrun with two ranks: ~55 s
def test_every_rank_names_the_run_it_trained_in(tmp_path: Path, store: str) -> None:
    import os
    import subprocess
    import sys

    cfg = {
        "name": "geo_ddp",
        "data": {"source": "world", "n_pois": 300, "n_images": 500},
        "encoder": {"name": "sinusoidal", "pretrained": False},
        "train": {"checkpoint": False, "device": "cpu", "dist_timeout_s": 60},
        "tracking": {"experiment": "progress", "log_model": False, "log_plots": False},
    }
    path = tmp_path / "geo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    argv = ["-m", "geograph", "train", "geolocate", "--config", str(path), "--fast", "--tracking-uri", store]
    proc = subprocess.run([sys.executable, *argv, "--nproc", "2"], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    runs = [line for line in proc.stdout.splitlines() if line.startswith("run ")]
    assert len(runs) == 1 and RUN_LINE.match(runs[0])  # rank 0 alone prints the result
    rid = runs[0].split()[1]
    assert f"geograph: rank 1 of 2 trained in run {rid} (rank 0 logs its metrics)" in proc.stderr
    assert "None" not in proc.stdout + proc.stderr

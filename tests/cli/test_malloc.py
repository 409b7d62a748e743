"""``geograph train --malloc tcmalloc``: the ranks (or the one process, started again) run with
gperftools' tcmalloc preloaded; a missing library is a clear error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from cli_configs import tiny_covisit_yaml

from geograph.cli import train_cmd
from geograph.cli.main import main
from geograph.utils import memory

LIB = "libtcmalloc_minimal.so.4"


class Exec(Exception):
    """Raised by the stand-in for os.execve."""


@pytest.fixture
def under_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "allocator", lambda: "glibc")
    monkeypatch.setattr(memory, "find_tcmalloc", lambda: LIB)
    monkeypatch.delenv(train_cmd.MALLOC_REEXEC_ENV, raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)


def test_a_missing_tcmalloc_is_a_clear_error(monkeypatch, under_glibc, capsys) -> None:
    monkeypatch.setattr(memory, "find_tcmalloc", lambda: None)
    assert main(["train", "covisit", "--malloc", "tcmalloc"]) == 2
    err = capsys.readouterr().err
    assert "--malloc tcmalloc: the library was not found" in err and "libtcmalloc-minimal4" in err


def test_the_ranks_of_nproc_get_it_preloaded(monkeypatch, under_glibc) -> None:
    seen = {}

    def call(cmd, env):
        seen.update(cmd=cmd, env=env)
        return 0

    monkeypatch.setattr(subprocess, "call", call)
    monkeypatch.setenv("LD_PRELOAD", "libother.so")
    assert main(["train", "covisit", "--nproc", "2", "--malloc", "tcmalloc", "--fast"]) == 0
    assert seen["env"]["LD_PRELOAD"] == f"{LIB} libother.so"  # kept, after tcmalloc
    tail = seen["cmd"][seen["cmd"].index("geograph") + 1 :]
    assert tail == ["train", "covisit", "--malloc", "tcmalloc", "--fast"]  # --nproc dropped


def test_one_process_starts_itself_again_with_it_preloaded(monkeypatch, under_glibc) -> None:
    def execve(path, argv, env):
        raise Exec(path, argv, env)

    monkeypatch.setattr("os.execve", execve)
    with pytest.raises(Exec) as exc:
        main(["train", "covisit", "--malloc", "tcmalloc", "--seed", "3"])
    path, argv, env = exc.value.args
    assert path == sys.executable
    assert argv == [sys.executable, "-m", "geograph", "train", "covisit", "--malloc", "tcmalloc", "--seed", "3"]
    assert env["LD_PRELOAD"] == LIB and env[train_cmd.MALLOC_REEXEC_ENV] == "1"


def test_a_restarted_process_without_it_stops_instead_of_looping(monkeypatch, under_glibc, capsys) -> None:
    monkeypatch.setenv(train_cmd.MALLOC_REEXEC_ENV, "1")
    monkeypatch.setattr("os.execve", lambda *a: pytest.fail("started itself again"))
    assert main(["train", "covisit", "--malloc", "tcmalloc"]) == 2
    assert "but the process runs with glibc" in capsys.readouterr().err


def test_system_malloc_changes_nothing(monkeypatch, under_glibc) -> None:
    monkeypatch.setattr("os.execve", lambda *a: pytest.fail("started itself again"))
    assert train_cmd.malloc_env("system") == {}


@pytest.mark.skipif(not sys.platform.startswith("linux") or memory.find_tcmalloc() is None,
                    reason="needs gperftools' tcmalloc (Debian: libtcmalloc-minimal4)")
def test_a_training_run_under_tcmalloc_is_tagged_with_it(tmp_path: Path, empty_store_db: Path) -> None:
    shutil.copyfile(empty_store_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tiny_covisit_yaml(tmp_path, {"experiment": "malloc", "log_model": False})
    out = subprocess.run(
        [sys.executable, "-m", "geograph", "train", "covisit", "--config", str(config), "--fast",
         "--tracking-uri", uri, "-q", "--malloc", "tcmalloc"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.split()[1]
    assert mlflow.MlflowClient(uri).get_run(run_id).data.tags["geograph.malloc"] == "tcmalloc"

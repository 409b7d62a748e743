"""``benchmarks/train_covisit.py --data`` and ``benchmarks/queries.py --data``: the benchmarks on a
world folder geograph did not generate (a Patterns import), and a clear error on a folder that is
no world."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from geograph.cli.main import main as geograph_main
from geograph.data import load_world

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _bench_dir_on_path(monkeypatch):
    """The scripts import ``hostinfo`` from their own directory, as when they run."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """A world folder written by ``geograph import patterns`` from one real-format monthly file."""
    tmp = tmp_path_factory.mktemp("imported")
    files = _module("import_patterns").write_patterns(tmp / "raw", rows=300, months=1, seed=3)
    out = tmp / "patterns_world"
    assert geograph_main(["import", "patterns", *map(str, files), "--out", str(out), "-q"]) == 0
    return out


def test_train_covisit_benchmark_runs_on_an_imported_folder(imported, tmp_path, capsys):
    bench = _module("train_covisit")
    out = tmp_path / "bench.json"
    args = ["--data", str(imported), "--epochs", "1", "--warmup", "0", "--threads", "1", "--out", str(out)]
    assert bench.main(args) == 0
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    row = saved["rows"][0]
    assert "failed" not in row, row
    world = load_world(imported)
    assert row["data"] == "patterns_world" and row["pois"] == world.pois.height
    assert row["covisit_rows"] > 0 and row["train_pairs"] > 0
    for kind in bench.MODELS:  # every model trained the same pairs
        assert row[kind]["epochs"][0]["pairs"] == row["train_pairs"]
        assert row[kind]["pairs_per_cpu_s"] > 0
    assert "| patterns_world |" in printed


def test_train_covisit_benchmark_refuses_a_folder_that_is_no_world(tmp_path, capsys):
    bench = _module("train_covisit")
    (tmp_path / "notes.txt").write_text("no tables here\n")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--data", str(tmp_path), "--out", str(tmp_path / "b.json")])
    assert exc.value.code == 2
    assert f"--data {tmp_path}: not a world folder" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


def test_queries_benchmark_runs_on_an_imported_folder(imported, tmp_path, monkeypatch, capsys):
    bench = _module("queries")
    monkeypatch.setattr(bench, "OUT", tmp_path)  # the report goes here, not into benchmarks/out
    assert bench.main(["--data", str(imported), "--reps", "3", "--agg-reps", "2", "--no-model", "--markdown"]) == 0
    report = json.loads((tmp_path / "queries.json").read_text())
    assert report["world"] == "patterns_world"
    n = load_world(imported).pois.height
    queries = {r["query"] for r in report["rows"]}
    assert {"covisited --poi", "covisited --brand", "hotspots --resolution 7", "naics-flow --level 2"} <= queries
    assert all(r["data"].startswith(f"{n:,} POIs") for r in report["rows"])
    assert "| covisited --poi |" in capsys.readouterr().out


def test_scale_benchmark_refuses_a_world_not_partitioned_by_state(imported, tmp_path, monkeypatch):
    """``scale.py --data`` needs the per-state layout; a single-file import is named in the error."""
    bench = _module("scale")
    monkeypatch.setattr(sys, "argv", ["scale.py", "--data", str(imported), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match=re.escape(f"--data {imported}: not a world partitioned by state")):
        bench.main()

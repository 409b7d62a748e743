"""``benchmarks/soak.py`` at a tiny size: concurrent clients get the single-threaded answers,
and the comparison it relies on tells apart answers that differ in the last bit."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
SOAK = ROOT / "benchmarks" / "soak.py"


def _soak_module():
    spec = importlib.util.spec_from_file_location("soak_bench", SOAK)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _run(tmp_path: Path, *extra: str) -> tuple[dict, str]:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--pois",
            "2000",
            "--calls",
            "200",
            "--clients",
            "4",
            "--out",
            str(out),
            "--world-root",
            str(tmp_path),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "soak.json").read_text()), proc.stdout


def _check_report(report: dict, stdout: str, calls: int, clients: int) -> None:
    assert report["reference_unexpected_count"] == 0  # valid calls answered, invalid ones raised
    assert sum(report["mix"].values()) == calls
    assert any(k.startswith("error:") for k in report["mix"]) and "covisited --poi" in report["mix"]
    threads = report["phases"]["threads"]
    assert (threads["clients"], threads["calls"], threads["mismatches"]) == (clients, calls, 0)
    assert report["phases"]["reference"]["clients"] == 1
    for phase in report["phases"].values():
        lat = phase["latency"]
        assert set(lat) == set(report["mix"]) | {"all"}
        assert sum(lat[k]["calls"] for k in report["mix"]) == lat["all"]["calls"] == calls
        assert 0 < lat["all"]["p50_ms"] <= lat["all"]["p99_ms"]
        assert phase["throughput_calls_per_s"] > 0 and phase["peak_rss_mb"] > 0
    assert {"cpu", "cores", "python", "torch", "polars"} <= set(report["hardware"])
    assert "threads: 4 client(s), 0 mismatches" in stdout and "| call | calls |" in stdout


def test_soak_tiny_data_queries(tmp_path: Path) -> None:
    report, stdout = _run(tmp_path, "--no-model", "--markdown")
    _check_report(report, stdout, 200, 4)
    assert report["model"]["run_id"] is None and "similar --poi" not in report["mix"]


def test_outcomes_compared_exactly() -> None:
    soak = _soak_module()
    a = pl.DataFrame({"poi_id": ["p1", "p2"], "predicted": [1.0, 2.0]})
    bit = pl.DataFrame({"poi_id": ["p1", "p2"], "predicted": [1.0, 2.0000000000000004]})  # one ulp
    assert soak.same(("ok", a), ("ok", a.clone()))
    assert not soak.same(("ok", a), ("ok", bit))
    assert not soak.same(("ok", a), ("ok", a.with_columns(pl.col("predicted").cast(pl.Float32))))  # dtype
    assert not soak.same(("ok", a), ("ok", a.reverse()))  # row order
    err = ("error", "DataValidationError", "field 'brand': unknown brand 'Bluebird Cofee'")
    assert soak.same(err, tuple(err)) and not soak.same(err, (*err[:2], err[2] + "; did you mean"))
    assert not soak.same(("ok", (a, "{}")), ("ok", (a, '{"notes": []}')))  # whatif: the rest of the answer


@pytest.mark.slow
def test_soak_tiny_with_model(tmp_path: Path) -> None:
    """The model queries too (similar, whatif, covisited / hotspots with a model), on a GNN
    trained in fast mode on a 400-POI embedded world (about a minute on 2 cores)."""
    from geograph.covisit.run import run_from_config

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    config = {
        "name": "soak_test",
        "data": {"n_pois": 400, "world_seed": 0, "cache_dir": None},
        "train": {"device": "cpu", "checkpoint_dir": str(tmp_path / "ckpt"), "seed": 0},
        "tracking": {"experiment": "soak-test"},
    }
    run_id = run_from_config(config, tracking_uri=uri, fast=True)["run_id"]
    report, stdout = _run(tmp_path, "--run-id", run_id, "--tracking-uri", uri, "--calls", "300", "--markdown")
    _check_report(report, stdout, 300, 4)
    assert {"similar --poi", "whatif", "covisited --poi (model)"} <= set(report["mix"])


def test_ordered_sum_does_not_depend_on_row_order() -> None:
    """Model predictions are summed per group with ``ordered_sum``: the same bits whatever order
    the rows reach the group-by in (a plain polars ``sum`` follows that order)."""
    import math

    import numpy as np

    from geograph.analytics.model_context import ordered_sum

    rng = np.random.default_rng(0)
    values = rng.random(50_000) * 10
    values[::7] = np.nan
    df = pl.DataFrame({"cell": rng.integers(0, 300, values.size).astype(str), "v": values}).with_columns(
        pl.col("v").fill_nan(None)
    )
    sums = [
        df.sample(fraction=1.0, shuffle=True, seed=k).group_by("cell").agg(ordered_sum("v")).sort("cell")
        for k in range(4)
    ]
    assert all(s.equals(sums[0]) for s in sums[1:])
    one = sums[0].filter(pl.col("cell") == "7")["v"][0]
    assert one == pytest.approx(math.fsum(df.filter(pl.col("cell") == "7")["v"].drop_nulls()), rel=1e-12)
    empty = pl.DataFrame({"cell": ["a"], "v": [None]}, schema={"cell": pl.String, "v": pl.Float64})
    assert empty.group_by("cell").agg(ordered_sum("v"))["v"].to_list() == [0.0]


def test_mismatch_explains_itself(tmp_path: Path) -> None:
    """A mismatch names the differing columns and rows (reference value beside the other),
    and both frames are kept as Parquet."""
    soak = _soak_module()
    a = pl.DataFrame({"h3_cell": ["c1", "c2", "c3"], "visitors": [9, 7, 7], "share": [0.5, 0.25, 0.25]})
    b = a.with_columns(pl.Series("h3_cell", ["c1", "c3", "c2"]), pl.Series("share", [0.5, 0.25, 0.2500000000000001]))
    d = soak.difference(("ok", a), ("ok", b))
    assert d["columns"] == {
        "h3_cell": {"rows_differing": 2, "first": [[1, "c2", "c3"], [2, "c3", "c2"]]},
        "share": {"rows_differing": 1, "first": [[2, 0.25, 0.2500000000000001]]},
    }
    assert "schema" not in d and "shape" not in d
    assert soak.difference(("ok", a), ("ok", a.head(2)))["shape"] == [[3, 3], [2, 3]]
    err = ("error", "DataValidationError", "unknown brand 'x'")
    assert soak.difference(("ok", a), err) == {
        "reference": "('frame', [3, 3])",
        "got": "('DataValidationError', \"unknown brand 'x'\")",
    }
    assert soak.difference(("ok", (a, "{}")), ("ok", (a, '{"notes": []}')))["rest"] == ["{}", '{"notes": []}']
    call = soak.Call("hotspots", "hotspots", "data", (8,))
    bad = soak.compare([("ok", a), err], [("ok", b), err], [call, call])
    assert [(m["call"], m["kind"], sorted(m["columns"])) for m in bad] == [(0, "hotspots", ["h3_cell", "share"])]
    names = soak.save_mismatches(bad, [("ok", a), err], [("ok", b), err], "threads", tmp_path / "m")
    assert names == ["call0_threads_reference.parquet", "call0_threads_got.parquet"]
    assert pl.read_parquet(tmp_path / "m" / names[1]).equals(b)

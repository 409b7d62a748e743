"""``geograph import patterns``: stdout is the folder, stderr the summary; graph, query, train on it."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import polars as pl
import pytest

from geograph.cli.main import main
from geograph.data import load_world

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_import_patterns", ROOT / "benchmarks" / "import_patterns.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def patterns(tmp_path_factory) -> list[Path]:
    """Two real-format monthly files (300 POIs each) from the benchmark's seeded writer."""
    return _bench().write_patterns(tmp_path_factory.mktemp("patterns"), rows=600, months=2, seed=0)


def test_import_then_graph_and_query(patterns, tmp_path, capsys):
    out = tmp_path / "world"
    assert main(["import", "patterns", *map(str, patterns), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip() == str(out)
    assert "rows read" in printed.err and "2023-01, 2023-02" in printed.err and "[2/2] reading" in printed.err
    summary = json.loads((out / "import_summary.json").read_text())
    assert summary["rows_read"] == 600 and summary["pois"] == 300 and summary["rows_rejected"] == 0
    world = load_world(out)
    assert world.pois.height == 300 and world.covisits.height == summary["covisit_rows"]

    assert main(["graph", "--data", str(out), "--cache-dir", "", "--format", "json", "-q"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert json.dumps(schema).count("covisits") >= 1
    poi = world.pois["poi_id"][0]
    assert main(["query", "covisited", "--data", str(out), "--poi", poi, "--format", "json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["poi_id"] != poi for r in (rows if isinstance(rows, list) else rows["rows"]))


def test_quiet_period_and_on_error_fail(patterns, tmp_path, capsys):
    cut = tmp_path / "cut.csv.gz"
    whole = patterns[1].read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "jan"
    assert (
        main(
            ["import", "patterns", str(patterns[0]), str(cut), "--out", str(out), "--period", "2023-01", "-q"]
        )
        == 0
    )
    printed = capsys.readouterr()
    assert printed.out.strip() == str(out) and printed.err == ""
    summary = json.loads((out / "import_summary.json").read_text())
    assert summary["periods"] == ["2023-01"] and summary["rejected_by_kind"] == {"file_cut_short": 1}
    assert summary["rows_other_periods"] > 0  # the cut February file's complete rows
    fail = tmp_path / "fail"
    assert (
        main(["import", "patterns", str(patterns[0]), str(cut), "--out", str(fail), "--on-error", "fail"])
        == 2
    )
    err = capsys.readouterr().err
    assert f"file {cut}" in err and "cut short" in err and "line " in err
    assert not fail.exists()
    assert len(gzip.decompress(patterns[1].read_bytes())) > 0  # the fixture itself is whole


def test_column_map_and_naics_vintage_flags(patterns, tmp_path, capsys):
    bad = tmp_path / "map.yaml"
    bad.write_text("placekey: poi_key\n")
    args = ["import", "patterns", str(patterns[0]), "--out", str(tmp_path / "o")]
    assert main([*args, "--column-map", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'poi_key', which is not a Patterns column" in err
    assert main([*args, "--naics-vintage", "2022", "-q"]) == 0  # 2017 retail codes are not 2022 codes
    summary = json.loads((tmp_path / "o" / "import_summary.json").read_text())
    assert summary["rejected_by_kind"].get("bad_naics", 0) > 0
    assert main([*args, "--naics-vintage", "1997"]) == 2  # argparse refuses it


def test_partition_by_state_gives_the_per_state_layout(patterns, tmp_path, capsys):
    """``--partition-by state``: pois and covisits as hive folders by state, each co-visit row in
    its source POI's state, the same rows as the single-file import; per-state loading reads it."""
    from geograph.data.state_scan import is_state_partitioned, load_state_world

    flat, parts = tmp_path / "flat", tmp_path / "parts"
    assert main(["import", "patterns", *map(str, patterns), "--out", str(flat), "-q"]) == 0
    assert main(["import", "patterns", *map(str, patterns), "--out", str(parts), "--partition-by", "state", "-q"]) == 0
    capsys.readouterr()
    assert is_state_partitioned(parts) and not is_state_partitioned(flat)
    a, b = load_world(flat), load_world(parts)
    assert sorted(a.pois["poi_id"].to_list()) == sorted(b.pois["poi_id"].to_list())
    key = ["src_poi_id", "dst_poi_id", "period"]
    assert a.covisits.select(*key, "visitors").sort(key).equals(b.covisits.select(*key, "visitors").sort(key))
    src_state = b.covisits.join(b.pois.select(pl.col("poi_id").alias("src_poi_id"), pl.col("state").alias("s")), on="src_poi_id")
    assert (src_state["state"] == src_state["s"]).all()
    for state in b.pois["state"].unique().to_list():
        load = load_state_world(parts, state, 5.0)
        own = load.world.pois[: load.core_pois]
        assert (own["state"] == state).all()
        assert load.world.covisits["src_poi_id"].is_in(own["poi_id"].implode()).all()
    assert (parts / "import_summary.json").is_file() and (parts / "brand_covisits.parquet").is_file()


@pytest.mark.slow
def test_train_covisit_on_an_imported_world(patterns, tmp_path, capsys):
    out = tmp_path / "world"
    assert main(["import", "patterns", *map(str, patterns), "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Patterns POIs have raw_visitor_counts, no 'visits': model.mass_feature "auto" takes it
    assert main(["train", "covisit", "--data", str(out), "--fast", "-q", "--tracking-uri", uri]) == 0

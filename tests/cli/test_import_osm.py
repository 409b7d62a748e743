"""``geograph import osm`` on the real Helsinki extract, then ``geograph world --pois-from``,
``geograph graph`` and a fast co-visit training run on the result; bad input named."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from geograph.cli.main import main
from geograph.constants import POI_ID, STATE
from geograph.data.world_io import load_world, verify_world

pyrosm = pytest.importorskip("pyrosm")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("osm") / "helsinki"
    assert main(["import", "osm", pyrosm.get_data("helsinki_pbf"), "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def over_pois(imported, tmp_path_factory):
    out = tmp_path_factory.mktemp("osm") / "helsinki_world"
    assert main(["world", "--pois-from", str(imported), "--out", str(out), "--seed", "1", "-q"]) == 0
    return out


def test_import_prints_the_report_and_writes_pois_only(tmp_path, capsys):
    out = tmp_path / "hel"
    assert main(["import", "osm", pyrosm.get_data("helsinki_pbf"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "1,751" in captured.out and "1,122" in captured.out and "629" in captured.out
    assert "FI-18 (1,122)" in captured.out and "amenity=bench (162)" in captured.out
    assert "none (OpenStreetMap has no visit data)" in captured.out and "rows/s" in captured.out
    # progress and the co-visit note on stderr
    assert "geograph: reading" in captured.err and f"geograph world --pois-from {out}" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "meta.json", "pois.parquet"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["osm_file"] == "Helsinki.osm.pbf" and meta["import"]["kept"] == 1122
    assert meta["import"]["unmapped"]["amenity=bench"] == 162 and "no visit data" in meta["covisits"]
    # the folder is not a world with co-visits: the error names the missing table
    assert main(["graph", "--data", str(out), "-q"]) == 2
    assert "no covisits table" in capsys.readouterr().err


def test_quiet_import_prints_nothing_on_stderr(tmp_path, capsys):
    assert main(["import", "osm", pyrosm.get_data("test_pbf"), "--out", str(tmp_path / "t"), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "POIs kept" in captured.out


def test_overwrite_replaces_only_geograph_files(imported, tmp_path, capsys):
    out = tmp_path / "o"
    src = pyrosm.get_data("test_pbf")
    assert main(["import", "osm", src, "--out", str(out), "-q"]) == 0
    assert main(["import", "osm", src, "--out", str(out), "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    (out / "notes.txt").write_text("mine")
    (out / "covisits.csv").write_text("src_poi_id,dst_poi_id,visitors\n")
    assert main(["import", "osm", src, "--out", str(out), "-q", "--overwrite"]) == 2
    assert "covisits.csv" in capsys.readouterr().err
    assert main(["import", "osm", src, "--out", str(out), "-q", "--overwrite", "--replace", "covisits.csv"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "meta.json", "notes.txt", "pois.parquet"]
    verify_world(out)


@pytest.mark.parametrize("content", [None, b"<osm version='0.6'></osm>"])
def test_bad_files_are_named(tmp_path, capsys, content):
    path = tmp_path / "city.osm.pbf"
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "out"
    assert main(["import", "osm", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"file {path}" in err
    assert ("not found" if content is None else "not an OpenStreetMap PBF file") in err
    assert not out.exists() or not any(out.iterdir())


def test_world_over_imported_pois_then_graph(imported, over_pois, capsys):
    world = load_world(over_pois)
    pois = pl.read_parquet(imported / "pois.parquet")
    assert world.pois.height == 1122 and set(world.pois[POI_ID]) == set(pois[POI_ID])
    assert set(world.covisits[STATE]) == {"FI-18"} and 5000 < world.covisits.height < 6200
    meta = json.loads((over_pois / "meta.json").read_text())
    assert meta["generator"] == "geograph.data.synthetic.generate_over_pois" and meta["seed"] == 1
    # seeded: the same command gives the same tables
    again = over_pois.parent / "again"
    assert main(["world", "--pois-from", str(imported), "--out", str(again), "--seed", "1", "-q"]) == 0
    assert load_world(again).fingerprint() == world.fingerprint()
    capsys.readouterr()
    assert main(["graph", "--data", str(over_pois), "--cache-dir", "", "--format", "json", "-q"]) == 0
    graph = json.loads(capsys.readouterr().out)
    text = json.dumps(graph)
    assert "covisits" in text and "1122" in text


def test_pois_from_refuses_options_that_do_not_apply(imported, tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["world", "--pois-from", str(imported), "--out", str(out), "--pois", "10"]) == 2
    assert "--pois" in capsys.readouterr().err
    assert main(["world", "--pois-from", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "data folder not found" in capsys.readouterr().err
    assert main(["world", "--pois-from", str(imported), "--out", str(imported), "--overwrite"]) == 2
    assert "--out must differ" in capsys.readouterr().err


@pytest.mark.slow  # about 35 s: a GNN fit, even in fast mode
def test_fast_training_on_the_helsinki_world(over_pois, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = str(REPO / "experiments" / "covisit_naics_sage.yaml")
    args = ["train", "covisit", "--config", config, "--fast", "--data", str(over_pois), "--tracking-uri", uri, "-q"]
    assert main(args) == 0
    assert "test_r2" in capsys.readouterr().out

"""``geograph world``: writes a readable world, refuses to clobber, partitions by state."""

from __future__ import annotations

import json

import polars as pl

from geograph.cli.main import main
from geograph.constants import STATE
from geograph.data.synthetic import generate_world
from geograph.data.world_io import load_world


def test_world_command_writes_a_readable_world(tmp_path, capsys):
    out = tmp_path / "world"
    assert main(["world", "--pois", "300", "--seed", "3", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "POIs per state" in printed and "NAICS sectors" in printed and "nonzero" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "covisits.parquet",
        "images.parquet",
        "manifest.json",
        "meta.json",
        "pois.parquet",
        "regions.parquet",
    ]
    loaded = load_world(out)
    assert loaded.fingerprint() == generate_world(300, seed=3).fingerprint()
    assert pl.read_parquet(out / "pois.parquet").height == 300
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["params"]["n_pois"] == 300
    assert loaded.meta["process_version"] == meta["process_version"]


def test_world_command_refuses_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "world"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["world", "--pois", "50", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert main(["world", "--pois", "50", "--out", str(out), "--overwrite"]) == 0
    assert (out / "notes.txt").exists() and load_world(out).pois.height == 50


def test_world_command_partitions_and_switches_layout(tmp_path):
    out = tmp_path / "world"
    args = ["world", "--pois", "200", "--out", str(out), "--states", "ca,nv", "--images", "0"]
    assert main([*args, "--partition-by", "state"]) == 0
    assert sorted(p.name for p in (out / "pois").iterdir()) == ["state=CA", "state=NV"]
    w = load_world(out)
    assert set(w.pois[STATE].unique()) == {"CA", "NV"} and w.images is None
    # overwrite with the flat layout: no stale hive folders left behind
    assert main([*args, "--overwrite"]) == 0
    assert not (out / "pois").exists() and (out / "pois.parquet").exists()
    assert load_world(out).covisits.height == w.covisits.height


def test_world_command_rejects_bad_values(tmp_path, capsys):
    assert main(["world", "--pois", "0", "--out", str(tmp_path / "w")]) == 2
    assert "n_pois" in capsys.readouterr().err
    assert main(["world", "--states", "ZZ", "--out", str(tmp_path / "w")]) == 2
    assert "unknown state 'ZZ'" in capsys.readouterr().err

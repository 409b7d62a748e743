"""geograph removes or replaces only files it wrote, and its manifest covers every file it lists.

A folder holding a user's own ``pois.csv`` / ``regions.csv`` (the names of a world's tables) is
refused by ``geograph world --overwrite`` and by ``write_world(overwrite=True)``, naming those
files and leaving every byte in place, until each is named with ``--replace``. Files that
geograph wrote (listed in its ``manifest.json``, also while a killed write left it unfinished)
are replaced without asking. ``meta.json`` is in the manifest's checksums: an edited, removed or
added ``meta.json`` is refused by every reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geograph.cli.main import main
from geograph.data import World, load_world, write_world
from geograph.data.world_io import MANIFEST_FILE, META_FILE, foreign_files
from geograph.errors import DataValidationError
from geograph.testing import hand_made_world

from .counting import bump

USER_POIS = "poi_id,name,brand,naics_code,latitude,longitude,state\nmine,My shop,,722515,37.7,-122.4,CA\n"
USER_REGIONS = "h3_cell,population\n8628308280fffff,12\n"


def _user_folder(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    (folder / "pois.csv").write_text(USER_POIS)
    (folder / "regions.csv").write_text(USER_REGIONS)
    (folder / "notes.txt").write_text("mine too")
    return _snapshot(folder)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_world_overwrite_refuses_a_users_files_of_the_same_name(tmp_path: Path, capsys) -> None:
    out = tmp_path / "data"
    before = _user_folder(out)
    args = ["world", "--pois", "40", "--images", "0", "--out", str(out), "--no-progress"]
    assert main([*args, "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "pois.csv" in err and "regions.csv" in err and "--replace pois.csv" in err, err
    assert "notes.txt" not in err  # never touched, so never in the way
    assert _snapshot(out) == before  # not one byte changed
    with pytest.raises(DataValidationError, match="not: pois.csv, regions.csv") as ei:
        write_world(hand_made_world(), out, overwrite=True)
    assert ei.value.file == str(out)
    assert _snapshot(out) == before
    # naming one is not enough
    assert main([*args, "--overwrite", "--replace", "pois.csv"]) == 2
    assert "regions.csv" in capsys.readouterr().err and _snapshot(out) == before
    # named, they go; the unrelated file stays
    assert main([*args, "--overwrite", "--replace", "pois.csv", "--replace", "regions.csv"]) == 0
    capsys.readouterr()
    assert not (out / "pois.csv").exists() and not (out / "regions.csv").exists()
    assert (out / "notes.txt").read_text() == "mine too"
    assert load_world(out).pois.height == 40
    # the world is geograph's now: a second overwrite needs no --replace
    assert foreign_files(out) == []
    assert main([*args, "--seed", "1", "--overwrite"]) == 0
    capsys.readouterr()
    assert (out / "notes.txt").read_text() == "mine too"
    bump("security.overwrite", 5)


def test_user_files_inside_table_folders_and_foreign_manifests(tmp_path: Path) -> None:
    w = hand_made_world()
    w.meta = {}  # no meta.json written
    out = write_world(w, tmp_path / "w", partition_by="state")
    assert foreign_files(out) == []
    (out / "pois" / "README.txt").write_text("mine")  # a user's file inside geograph's table folder
    (out / META_FILE).write_text("{}")  # and a meta.json of theirs
    assert foreign_files(out) == ["meta.json", "pois/README.txt"]
    assert foreign_files(out, replace=["pois", "meta.json"]) == []
    with pytest.raises(DataValidationError, match="meta.json, pois/README.txt"):
        write_world(w, out, overwrite=True)
    assert (out / "pois" / "README.txt").exists()
    # a manifest.json that is not geograph's is a user's file too
    other = tmp_path / "other"
    other.mkdir()
    (other / MANIFEST_FILE).write_text('{"files": ["mine"]}')
    assert foreign_files(other) == [MANIFEST_FILE]
    bump("security.overwrite", 2)


def test_a_killed_write_leaves_its_files_owned(tmp_path: Path, monkeypatch) -> None:
    """A write_world killed after it replaced some tables leaves an unfinished manifest that
    still lists what it owns: writing the world again needs no --replace."""
    from geograph.data import world_io

    w = hand_made_world()
    out = write_world(w, tmp_path / "w")
    w.meta = {"seed": 1}

    def killed(path: Path) -> dict:
        raise KeyboardInterrupt  # as if killed between the tables and the final manifest

    monkeypatch.setattr(world_io, "_file_entry", killed)
    with pytest.raises(KeyboardInterrupt):
        write_world(w, out, partition_by="state", overwrite=True)
    monkeypatch.undo()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["complete"] is False and "pois/" in manifest["owned"]
    with pytest.raises(DataValidationError, match="not completely written"):
        load_world(out)
    assert foreign_files(out) == []
    write_world(w, out, overwrite=True)
    assert load_world(out).meta["seed"] == 1 and not (out / "pois").exists()
    bump("faults.world")


def test_the_manifest_covers_meta_json(tmp_path: Path, capsys) -> None:
    w = hand_made_world()
    w.meta = {"generator": "test", "seed": 3}
    out = write_world(w, tmp_path / "w")
    files = json.loads((out / MANIFEST_FILE).read_text())["files"]
    assert set(files) == {"pois.parquet", "covisits.parquet", "images.parquet", "regions.parquet", META_FILE}
    good = (out / META_FILE).read_text()
    (out / META_FILE).write_text(good.replace('"seed": 3', '"seed": 4'))  # same size, other bytes
    with pytest.raises(DataValidationError, match=r"SHA-256 differs") as ei:
        load_world(out)
    assert ei.value.file == str(out / META_FILE)
    assert main(["query", "naics-flow", "--data", str(out)]) == 2
    assert f"file {out / META_FILE}" in capsys.readouterr().err
    (out / META_FILE).unlink()
    with pytest.raises(DataValidationError, match="is missing in manifest.json") as ei:
        load_world(out)
    assert ei.value.file == str(out / META_FILE)
    # a world written without meta: a meta.json added later is not listed
    bare = write_world(World(pois=w.pois, covisits=w.covisits), tmp_path / "bare")
    (bare / META_FILE).write_text('{"seed": 9}')
    with pytest.raises(DataValidationError, match="is not listed in manifest.json"):
        load_world(bare)
    # a manifest of format 1 (older geograph) did not list meta.json: still read
    old = json.loads((out / MANIFEST_FILE).read_text())
    old["format"] = 1
    del old["files"][META_FILE]
    (out / MANIFEST_FILE).write_text(json.dumps(old))
    (out / META_FILE).write_text(good)
    assert load_world(out).meta["seed"] == 3
    assert foreign_files(out) == []  # format 1 wrote that meta.json itself
    bump("faults.world", 4)

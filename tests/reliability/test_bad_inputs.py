"""Every ``geograph query`` subcommand refuses a world that breaks its contract, manifest or not.

The bad-input catalogue (:data:`CATALOGUE`) holds one broken table each: negative visitors, a
NaN longitude, a latitude out of range, a co-visit naming an unknown POI, a duplicate
``poi_id``, a missing column. Each is written as a world folder without ``manifest.json`` (as a
user or another tool writes one), as CSV and as Parquet. Every query subcommand run on it must
exit with code 2 and one ``geograph: error:`` line naming the file, the row and the field to
blame, and print no answer. The library calls behind the data queries raise the same error, and
a world that ``write_world`` wrote with a broken table (its manifest does not record it as
validated) is refused the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from geograph.cli.main import main
from geograph.cli.query_cmd import QUERIES
from geograph.constants import DST_POI, LAT, LON, NAICS_CODE, POI_ID, VISITORS
from geograph.data import World, write_world
from geograph.data.world_io import MANIFEST_FILE
from geograph.errors import DataValidationError
from geograph.testing import hand_made_world

from .counting import bump


@dataclass(frozen=True)
class BadInput:
    """One broken table of the hand-made world, and what the error must name."""

    name: str
    table: str  # "pois" or "covisits": the file to blame
    row: int | None  # 0-based data row, None when no row is to blame (a missing column)
    field: str
    edit: Callable[[pl.DataFrame], pl.DataFrame]


def _cell(col: str, row: int, value, dtype=None) -> Callable[[pl.DataFrame], pl.DataFrame]:
    def edit(df: pl.DataFrame) -> pl.DataFrame:
        s = df[col].to_list()
        s[row] = value
        return df.with_columns(pl.Series(col, s, dtype=dtype or df[col].dtype))

    return edit


CATALOGUE = [
    BadInput("negative-visitors", "covisits", 2, VISITORS, _cell(VISITORS, 2, -5)),
    BadInput("nan-longitude", "pois", 3, LON, _cell(LON, 3, float("nan"))),
    BadInput("latitude-out-of-range", "pois", 1, LAT, _cell(LAT, 1, 123.0)),
    BadInput("unknown-covisit-poi", "covisits", 4, DST_POI, _cell(DST_POI, 4, "p99")),
    BadInput("duplicate-poi-id", "pois", 6, POI_ID, _cell(POI_ID, 6, "p2")),
    BadInput("missing-column", "pois", None, NAICS_CODE, lambda df: df.drop(NAICS_CODE)),
]

# One command line per query subcommand (whatif / similar need a model: the folder is checked
# before the model is loaded, so none is given).
QUERY_ARGS: dict[str, list[str]] = {
    "covisited": ["--poi", "p0"],
    "naics-flow": ["--level", "2"],
    "hotspots": ["--resolution", "7"],
    "whatif": ["--lat", "37.77", "--lon", "-122.42", "--naics", "722515"],
    "similar": ["--poi", "p0"],
}


def test_the_catalogue_covers_every_query_subcommand() -> None:
    assert set(QUERY_ARGS) == set(QUERIES)


def write_bad_world(folder: Path, bad: BadInput, fmt: str) -> Path:
    """The hand-made world's POI and co-visit tables with ``bad`` applied, as ``fmt``, no manifest."""
    w = hand_made_world()
    tables = {"pois": w.pois, "covisits": w.covisits}
    tables[bad.table] = bad.edit(tables[bad.table])
    folder.mkdir(parents=True)
    for name, df in tables.items():
        if fmt == "csv":
            df.write_csv(folder / f"{name}.csv")
        else:
            df.write_parquet(folder / f"{name}.parquet")
    assert not (folder / MANIFEST_FILE).exists()
    return folder / f"{bad.table}.{fmt}"


def assert_names(text: str, blamed: Path, bad: BadInput) -> None:
    assert f"file {blamed}" in text, text
    if bad.row is not None:
        assert f"row {bad.row}" in text, text
    assert f"field '{bad.field}'" in text, text


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("bad", CATALOGUE, ids=[b.name for b in CATALOGUE])
def test_every_query_refuses_a_bad_world_without_manifest(
    bad: BadInput, fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blamed = write_bad_world(tmp_path / "world", bad, fmt)
    for query, args in QUERY_ARGS.items():
        for cache in ([], ["--cache"]) if query == "covisited" else ([],):
            rc = main(["query", query, *args, "--data", str(tmp_path / "world"), *cache])
            out, err = capsys.readouterr()
            assert rc == 2, (query, bad.name, out, err)
            assert out == "", (query, bad.name, out)  # no answer, not even a partial one
            assert err.startswith("geograph: error: ") and len(err.strip().splitlines()) == 1, err
            assert_names(err, blamed, bad)
            bump("bad_input.query")


@pytest.mark.parametrize("bad", CATALOGUE, ids=[b.name for b in CATALOGUE])
def test_library_queries_refuse_a_bad_world(bad: BadInput, tmp_path: Path) -> None:
    from geograph.analytics import WorldSource, covisited, hotspots, naics_flow

    blamed = write_bad_world(tmp_path / "world", bad, "parquet")
    for cache in (False, True):
        for query in (lambda s: covisited(s, "p0"), lambda s: naics_flow(s, 2), lambda s: hotspots(s, 7)):
            with pytest.raises(DataValidationError) as ei:
                query(WorldSource.from_folder(tmp_path / "world", cache=cache))
            assert ei.value.file == str(blamed) and ei.value.row == bad.row and ei.value.field == bad.field
            bump("bad_input.library")


def test_a_bad_world_written_by_write_world_is_refused(tmp_path: Path, capsys) -> None:
    """write_world writes a broken world (it is the caller's data) but does not record it as
    validated, so the queries read and check it like a folder without a manifest."""
    import json

    w = hand_made_world()
    bad = CATALOGUE[0]
    folder = write_world(World(pois=w.pois, covisits=bad.edit(w.covisits)), tmp_path / "bad")
    assert json.loads((folder / MANIFEST_FILE).read_text())["validated"] == []
    rc = main(["query", "naics-flow", "--data", str(folder)])
    _, err = capsys.readouterr()
    assert rc == 2
    assert_names(err, folder / "covisits.parquet", bad)
    good = write_world(w, tmp_path / "good")
    assert json.loads((good / MANIFEST_FILE).read_text())["validated"] == ["pois", "covisits"]
    assert main(["query", "naics-flow", "--data", str(good)]) == 0
    capsys.readouterr()
    bump("bad_input.query", 2)


def test_a_validated_world_is_not_read_twice(tmp_path: Path, monkeypatch) -> None:
    """A world whose manifest records validated tables is trusted while its SHA-256 match: the
    readers do not run again; once a file changes, the manifest refuses it."""
    from geograph.analytics import WorldSource, naics_flow
    from geograph.data import world_io

    folder = write_world(hand_made_world(), tmp_path / "w")

    def boom(*args, **kwargs):
        raise AssertionError("the readers ran on a world write_world validated")

    monkeypatch.setattr(world_io, "read_pois", boom)
    assert naics_flow(WorldSource.from_folder(folder), 2).height > 0
    monkeypatch.undo()
    df = pl.read_parquet(folder / "covisits.parquet").with_columns(pl.lit(-1, pl.Int64).alias(VISITORS))
    df.write_parquet(folder / "covisits.parquet")
    with pytest.raises(DataValidationError, match="does not match manifest.json") as ei:
        naics_flow(WorldSource.from_folder(folder), 2)
    assert ei.value.file == str(folder / "covisits.parquet")

"""Fuzzed inputs for every table reader: read_pois, read_covisits, read_images, read_regions, load_world.

Each case mutates a valid table of the hand-made world (fuzzlib.frame_mutation), writes it
as CSV or Parquet (sometimes damaging the bytes: fuzzlib.file_mutation) and reads it back.
The reader must load it (with the mutated value kept) or raise DataValidationError naming
the file, and the row and field to blame; never another exception, a hang, or a table that
breaks the contract. Budgets: 25 cases per reader and format by default, 400 under -m slow.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geograph.data import load_world, read_covisits, read_images, read_pois, read_regions, write_world
from geograph.data.world_io import MANIFEST_FILE
from geograph.errors import DataValidationError
from geograph.testing import hand_made_world

from .counting import bump
from .fuzzlib import (
    SPECS,
    contract_check,
    file_mutation,
    frame_mutation,
    judge,
    same_rows_check,
    write_table,
)

READERS = {"pois": read_pois, "covisits": read_covisits, "images": read_images, "regions": read_regions}
BUDGETS = [pytest.param(25, id="fast"), pytest.param(400, id="slow", marks=pytest.mark.slow)]


def fuzz_settings(budget: int):
    return settings(
        max_examples=budget,
        deadline=None,
        database=None,
        derandomize=budget <= 50,  # the default run sees the same cases every time
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


@pytest.fixture(scope="module")
def world():
    return hand_made_world()


def _fresh(base: Path) -> Path:
    d = base / uuid.uuid4().hex[:10]
    d.mkdir()
    return d


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("table", list(READERS))
@pytest.mark.parametrize("budget", BUDGETS)
def test_reader_fuzz(table: str, fmt: str, budget: int, world, tmp_path: Path) -> None:
    base = world.tables()[table]
    spec = SPECS[table]
    reader = READERS[table]
    seen: dict[str, int] = {}

    @fuzz_settings(budget)
    @given(data=st.data())
    def case(data) -> None:
        folder = _fresh(tmp_path)
        try:
            path = folder / f"{table}.{fmt}"
            if data.draw(st.integers(0, 3)) == 0:  # a quarter of the cases damage the file itself
                write_table(base, path)
                raw, m = data.draw(file_mutation(path.read_bytes(), fmt))
                path.write_bytes(raw)
                check = lambda r: contract_check(spec, r)  # noqa: E731
            else:
                df, m = data.draw(frame_mutation(base, spec, fmt))
                write_table(df, path)
                check = same_rows_check(spec, df, m)
            outcome = judge(lambda: reader(path), m, path, check)
            seen[f"{m.kind}.{outcome}"] = seen.get(f"{m.kind}.{outcome}", 0) + 1
            bump(f"fuzz.{table}.{fmt}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    case()
    # every kind of damage was tried at least once per reader over the two formats' runs
    assert sum(seen.values()) >= min(budget, 20)


@pytest.mark.parametrize("budget", BUDGETS)
def test_load_world_fuzz(budget: int, world, tmp_path: Path) -> None:
    """One table of a world folder is damaged; load_world names that table's file.

    Co-visits are checked against the POIs here: a co-visit naming an unknown POI id is an
    error (field src_poi_id / dst_poi_id), which the per-table fuzz cannot see.
    """
    clean = write_world(world, tmp_path / "clean")

    @fuzz_settings(budget)
    @given(data=st.data())
    def case(data) -> None:
        folder = _fresh(tmp_path)
        try:
            for p in clean.iterdir():  # the tables without write_world's manifest (checked elsewhere)
                if p.name != MANIFEST_FILE:
                    shutil.copy(p, folder / p.name)
            table = data.draw(st.sampled_from(list(READERS)))
            fmt = data.draw(st.sampled_from(["csv", "parquet"]))
            (folder / f"{table}.parquet").unlink()
            path = folder / f"{table}.{fmt}"
            base = world.tables()[table]
            blamed: Path | tuple = path
            if data.draw(st.integers(0, 3)) == 0:
                write_table(base, path)
                raw, m = data.draw(file_mutation(path.read_bytes(), fmt))
                path.write_bytes(raw)
                if table == "pois":
                    # a cut at a line end leaves a valid, shorter POI table: the co-visits that
                    # name the dropped POIs are then the rows to blame
                    blamed = (path, folder / "covisits.parquet")
            else:
                df, m = data.draw(frame_mutation(base, SPECS[table], fmt))
                write_table(df, path)
                ids = set(world.pois["poi_id"].to_list())
                if (
                    table == "covisits"
                    and m.kind == "cell"
                    and m.column in ("src_poi_id", "dst_poi_id")
                    and m.expect != "reject"
                ):
                    m.expect = "accept" if m.value in ids else "reject"
                if table == "pois" and m.column == "poi_id" and m.expect != "reject":
                    # changed POI ids orphan co-visit rows: then the co-visits file is to blame
                    m.expect, m.field, m.row = "either", None, None
                    m.detail["any_row"] = True
                    blamed = (path, folder / "covisits.parquet")

            def check(w) -> None:
                for name, df in w.tables().items():
                    contract_check(SPECS[name], df)

            judge(lambda: load_world(folder), m, blamed, check)
            bump("fuzz.load_world")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    case()


def test_partitioned_table_error_names_the_part_file(world, tmp_path: Path) -> None:
    """A bad row in one part of a hive-partitioned table: the error names that part and its row."""
    folder = write_world(world, tmp_path / "w", partition_by="state")
    part = folder / "pois" / "state=NY" / "part-0.parquet"
    df = pl.read_parquet(part)
    df = df.with_columns(pl.Series("latitude", [40.7, 91.0, 40.7][: df.height], dtype=pl.Float64))
    df.write_parquet(part)
    from geograph.errors import DataValidationError

    with pytest.raises(DataValidationError, match="does not match manifest.json") as ei:
        load_world(folder)  # write_world's manifest: the edited part file is named
    assert ei.value.file == str(part)
    (folder / MANIFEST_FILE).unlink()  # as a folder written by another tool
    with pytest.raises(DataValidationError) as ei:
        load_world(folder)
    assert ei.value.file == str(part) and ei.value.row == 1 and ei.value.field == "latitude"
    bump("fuzz.load_world.partitioned")


@pytest.mark.slow
def test_accepted_worlds_build_a_sound_graph(world, tmp_path: Path) -> None:
    """Whatever load_world accepts builds a graph without NaN features or dangling edges."""
    import torch

    from geograph.graph.builder import build_graph
    from geograph.graph.transforms import FeaturePreprocessor

    clean = write_world(world, tmp_path / "clean")

    @fuzz_settings(200)
    @given(data=st.data())
    def case(data) -> None:
        folder = _fresh(tmp_path)
        try:
            for p in clean.iterdir():  # the tables without write_world's manifest (checked elsewhere)
                if p.name != MANIFEST_FILE:
                    shutil.copy(p, folder / p.name)
            table = data.draw(st.sampled_from(list(READERS)))
            df, m = data.draw(frame_mutation(world.tables()[table], SPECS[table], "parquet"))
            write_table(df, folder / f"{table}.parquet")
            try:
                w = load_world(folder)
            except DataValidationError:
                return
            bump("fuzz.graph_of_accepted_world")
            try:
                g = build_graph(w)
            except (
                DataValidationError
            ):  # a whole-graph rule (e.g. regions of one H3 resolution): refused cleanly
                return
            p = g.data["poi"]
            assert g.num_pois == w.pois.height, m
            assert torch.isfinite(p.pos).all(), m
            for et in g.data.edge_types:
                ei = g.data[et].edge_index
                if ei.numel():
                    src_n, dst_n = g.data[et[0]].num_nodes, g.data[et[2]].num_nodes
                    assert int(ei[0].max()) < src_n and int(ei[1].max()) < dst_n, (m, et)
                    assert int(ei.min()) >= 0, (m, et)
            pre = FeaturePreprocessor().fit(g, torch.ones(g.num_pois, dtype=torch.bool))
            x = pre.transform(g).data["poi"].x
            assert torch.isfinite(x).all(), (m, "non-finite POI features reach the model")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    case()

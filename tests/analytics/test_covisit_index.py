"""Brand lookups and hotspots from a source's :class:`CovisitIndex` (integer arrays) give the
answers of the previous code: ``covisited --brand`` by matching the ids as text (a source's
first brand lookup still does), ``hotspots`` by joining every co-visit row with its cells
(``hotspots._by_joins``, the code before the index). Lazy, cached and in-memory sources agree,
on a generated world and on rows the contracts of a folder rule out (ids that are no POI,
repeated pairs, self-pairs, repeated POI ids)."""

from __future__ import annotations

import importlib
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from geograph.analytics import WorldSource, covisited, hotspots
from geograph.analytics.covisit_index import exact_sums, poi_totals
from geograph.constants import BRAND_COL, DST_POI, POI_ID, SRC_POI, STATE, VISITORS
from geograph.data import World, write_world
from geograph.data.synthetic import generate_world

covisited_mod = importlib.import_module("geograph.analytics.covisited")  # the package exports the functions
hotspots_mod = importlib.import_module("geograph.analytics.hotspots")


@pytest.fixture(scope="module")
def gen_world() -> World:
    return generate_world(3000, seed=3, n_images=0, progress=False)


@pytest.fixture(scope="module")
def gen_dir(gen_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_world(gen_world, tmp_path_factory.mktemp("index_world") / "world")


def _picks(world: World) -> tuple[list[str], list[str]]:
    """Brands (the largest and the smallest) and states (the largest two, and one without POIs)."""
    brands = world.pois.group_by(BRAND_COL).len().drop_nulls().sort(["len", BRAND_COL], descending=[True, False])
    names = brands[BRAND_COL].to_list()
    states = world.pois.group_by(STATE).len().sort(["len", STATE], descending=[True, False])[STATE].to_list()
    empty = next(s for s in ("CA-ON", "FI-18", "VT") if s not in states)
    return names[:4] + names[-3:], states[:2] + [empty]


def _scanned(source: WorldSource, brand: str, state: str | None, radius_km: float | None, top: int) -> pl.DataFrame:
    """The brand lookup matching the rows' ids as text (the code before the index)."""
    rows = covisited_mod._brand_rows(source, brand, state, radius_km)
    return covisited_mod._rank_brands(rows, top, None, "observed")


def _sources(folder: Path | None, world: World) -> list[WorldSource]:
    """Lazy, cached and in-memory sources, each with its index built."""
    out = [WorldSource.from_world(world)]
    if folder is not None:
        out += [WorldSource.from_folder(folder), WorldSource.from_folder(folder, cache=True)]
    for src in out:
        src.covisit_index()
    return out


def test_brand_lookups_match_the_text_matching(gen_world: World, gen_dir: Path) -> None:
    brands, states = _picks(gen_world)
    sources = _sources(gen_dir, gen_world)
    found = 0
    for brand in brands:
        for state in [None, *states]:
            for radius in (None, 3.0, 40.0):
                for top in (3, 10_000):
                    first = WorldSource.from_folder(gen_dir)  # a new source: its first lookup scans
                    want = covisited(first, brand=brand, state=state, radius_km=radius, top=top)
                    assert not first.has_covisit_index()
                    assert want.equals(_scanned(first, brand, state, radius, top))
                    for src in sources:
                        got = covisited(src, brand=brand, state=state, radius_km=radius, top=top)
                        assert got.equals(want), (src, brand, state, radius, top)
                    found += want.height > 0
    assert found > 40  # of 168 cases (a state without POIs, small brands and radii find none)


@pytest.mark.parametrize("resolution", [4, 6, 7, 9])
def test_hotspots_match_the_joins(gen_world: World, gen_dir: Path, resolution: int) -> None:
    _, states = _picks(gen_world)
    sources = _sources(gen_dir, gen_world)
    for state in [None, *states]:
        for min_pairs, top in ((1, 20), (3, 10_000)):
            want = hotspots_mod._by_joins(sources[1], resolution, "volume", top, state, None, min_pairs)
            assert want.height > 0 or state == states[-1]
            for src in sources:
                got = hotspots(src, resolution, state=state, min_pairs=min_pairs, top=top)
                assert got.equals(want), (src, resolution, state, min_pairs, top)


def _odd_world(world: World) -> World:
    """``world`` plus rows a folder's contracts rule out: ends that are no POI (one end, both),
    a pair stored twice (both orientations), a POI co-visited with itself, a null id; and a
    pair across two states (stored twice)."""
    pois = world.pois
    a, b = pois[POI_ID][0], pois[POI_ID][1]
    branded = pois.filter(pl.col(BRAND_COL).is_not_null())
    c = branded[POI_ID][0]
    e = branded.filter(pl.col(STATE) != branded[STATE][0])[POI_ID][0]  # branded, in another state
    extra = pl.DataFrame(
        {
            SRC_POI: ["ghost_1", a, "ghost_2", a, b, c, c, None, c, e],
            DST_POI: [a, "ghost_3", "ghost_4", b, a, c, a, c, e, c],
            VISITORS: [5, 7, 9, 11, 13, 17, 19, 23, 29, 31],
        },
        schema={SRC_POI: pl.String, DST_POI: pl.String, VISITORS: pl.Int64},
    )
    cov = pl.concat([world.covisits.select(SRC_POI, DST_POI, VISITORS), extra])
    return World(pois=pois, covisits=cov)


def test_rows_outside_the_contracts(gen_world: World) -> None:
    odd = _odd_world(gen_world)
    src = WorldSource.from_world(odd)
    index = src.covisit_index()
    assert index.unique and not index.known
    branded = odd.pois.filter(pl.col(BRAND_COL).is_not_null())
    brands, states = _picks(gen_world)
    here, there = branded[STATE][0], branded.filter(pl.col(STATE) != branded[STATE][0])[STATE][0]
    for brand in [branded[BRAND_COL][0], *brands[:2]]:
        for state in (None, here, there, states[0]):
            assert covisited(src, brand=brand, state=state, top=10_000).equals(
                _scanned(WorldSource.from_world(odd), brand, state, None, 10_000)
            )
    for resolution in (5, 8):
        for state in (None, here, there, states[0]):
            want = hotspots_mod._by_joins(src, resolution, "volume", 10_000, state, None, 1)
            assert hotspots(src, resolution, state=state, top=10_000).equals(want)


def test_repeated_poi_ids_keep_the_join_answers(gen_world: World) -> None:
    """Repeated POI ids (an unvalidated World): the index is not used, the answers are the joins'."""
    pois = pl.concat([gen_world.pois, gen_world.pois.head(3)])
    world = World(pois=pois, covisits=gen_world.covisits)
    src = WorldSource.from_world(world)
    assert not src.covisit_index().unique
    brand = pois.head(3).filter(pl.col(BRAND_COL).is_not_null())[BRAND_COL][0]
    assert covisited(src, brand=brand).equals(_scanned(src, brand, None, None, 10))
    assert hotspots(src, 7).equals(hotspots_mod._by_joins(src, 7, "volume", 20, None, None, 1))


def test_index_built_at_the_second_query_over_all_rows(gen_dir: Path) -> None:
    src = WorldSource.from_folder(gen_dir)
    brand = src.pois().select(pl.col(BRAND_COL).drop_nulls().first()).collect().item()
    first = covisited(src, brand=brand)
    assert not src.has_covisit_index()
    assert covisited(src, brand=brand).equals(first) and src.has_covisit_index()
    other = WorldSource.from_folder(gen_dir, cache=True)
    spots = hotspots(other, 7)
    assert not other.has_covisit_index()
    covisited(other, brand=brand)  # brand lookups and hotspots count together
    assert other.has_covisit_index() and hotspots(other, 7).equals(spots)


def test_index_built_once_across_threads(gen_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import geograph.analytics.world_source as ws

    built = []
    real = ws.CovisitIndex

    def counted(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ws, "CovisitIndex", counted)
    src = WorldSource.from_folder(gen_dir, cache=True)
    barrier = threading.Barrier(6)
    out: list[pl.DataFrame] = []

    def run() -> None:
        barrier.wait()
        out.append(hotspots(src, 6))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(out) == 6 and all(o.equals(out[0]) for o in out)


def test_model_queries_from_the_index(source: WorldSource, model) -> None:
    """With a model: brand lookups (predictions summed per brand) and residual hotspots agree."""
    src = WorldSource.from_world(source.world)
    src.covisit_index()
    for brand in ("Bluebird Coffee", "Fresh Market"):
        for state in (None, "CA"):
            rows = covisited_mod._brand_rows(src, brand, state, None)
            want = covisited_mod._rank_brands(rows, 10, model, "predicted")
            assert covisited(src, brand=brand, state=state, model=model, rank_by="predicted").equals(want)
    for resolution in (7, 8):
        for state in (None, "NY"):
            want = hotspots_mod._by_joins(src, resolution, "residual", 20, state, model, 1)
            assert hotspots(src, resolution, by="residual", state=state, model=model).equals(want)


def test_exact_sums_and_poi_totals() -> None:
    keys = np.array([0, 2, 2, 1, 2])
    big = np.array([2**62, 1, 2**61, 3, 2**61], dtype=np.int64)  # past float64's exact integers
    assert exact_sums(keys, big, 4).tolist() == [2**62, 3, 1 + 2**62, 0]
    assert exact_sums(keys, np.array([1, 2, 3, 4, 5]), 3).tolist() == [1, 4, 10]
    rows, vis = poi_totals(np.array([0, 1, 2]), np.array([1, 1, 0]), np.array([5, 7, 11]), 3)
    assert rows.tolist() == [2, 3, 1] and vis.tolist() == [16, 19, 11]  # a self-pair counts at both ends

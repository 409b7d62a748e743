"""The fast paths of the analytics queries give the answers of the plain ones: suggestions from a
:class:`Vocabulary` vs the polars pre-score, ``naics_flow`` from per-source NAICS code tables vs
the join of every co-visit row, range-pruned lazy lookups vs in-memory ones."""

from __future__ import annotations

import importlib
import threading

import polars as pl
import pytest

from geograph.analytics import WorldSource, naics_flow
from geograph.analytics._checks import Vocabulary, _shortlist, close_matches
from geograph.constants import DST_POI, NAICS_CODE, POI_ID, SRC_POI, STATE, VISITORS

naics_flow_mod = importlib.import_module("geograph.analytics.naics_flow")  # the package exports the function


# --- suggestions ------------------------------------------------------------------------------
def _ids() -> pl.Series:
    return pl.Series([f"poi_{i:06d}" for i in range(6000)])


def _brands() -> pl.Series:
    heads = ["Pine", "Wolf", "Aspen", "Café", "Ünder", "Blue", "Bluebird", "ÉTOILE", "Sol", "Oak"]
    tails = ["Moon Burger", "Yard Gas", "Crème", "Coffee", "Anchor Apparel", "Market", "Bakery"]
    names = [f"{h} {t}{'' if k == 0 else f' {k}'}" for h in heads for t in tails for k in range(40)]
    return pl.Series([*names, "pine moon burger", None, "Pine Moon Burger"])  # a case twin, a null, a duplicate


QUERIES = {
    "ids": ["poi_00042", "poi_x00042", "POI_001234", "poi_9999999", "p", "xyz", "poi_5000_1", ""],
    "brands": ["Pine Mon Burger", "bluebird", "Wolf Yard", "cafe creme", "CAFÉ CRÈME 3", "étoile coffee", "zz"],
}


@pytest.mark.parametrize("kind", ["ids", "brands"])
def test_vocabulary_shortlist_is_the_polars_one(kind: str) -> None:
    cands = _ids() if kind == "ids" else _brands()
    vocab = Vocabulary(cands)
    assert len(vocab) == cands.drop_nulls().n_unique() and len(vocab) > 2000
    distinct = cands.drop_nulls().unique()
    for q in QUERIES[kind]:
        if q:
            assert vocab.shortlist(q).to_list() == _shortlist(q, distinct).to_list(), q
        assert close_matches(q, vocab) == close_matches(q, distinct), q


def test_vocabulary_known_suggestions() -> None:
    assert close_matches("poi_00042", Vocabulary(_ids())) == ["poi_000042", "poi_000422", "poi_000442"]
    assert close_matches("Pine Mon Burger", Vocabulary(_brands()))[0] == "Pine Moon Burger"
    assert repr(Vocabulary(_ids())) == "Vocabulary(6000 values)"


def test_source_suggestions_unchanged(world_dir) -> None:
    from geograph.analytics import covisited
    from geograph.errors import DataValidationError

    for cache in (False, True):
        src = WorldSource.from_folder(world_dir, cache=cache)
        with pytest.raises(DataValidationError, match=r"unknown POI id 'p011'; did you mean .*'p01'"):
            covisited(src, "p011")
        with pytest.raises(DataValidationError, match="did you mean 'Fresh Market'"):
            covisited(src, brand="fresh market")
        assert src.vocabulary(POI_ID) is src.vocabulary(POI_ID)  # built once per source


# --- naics-flow -------------------------------------------------------------------------------
def _flow_by_join(source: WorldSource, level: int, state: str | None) -> pl.DataFrame:
    """``naics_flow``'s flow (visitors, pairs) computed the direct way: every co-visit row joined."""
    pois = source.pois().select(POI_ID, NAICS_CODE, STATE)
    if state is not None:
        pois = pois.filter(pl.col(STATE) == state)
    cat = pois.select(POI_ID, pl.col(NAICS_CODE).str.slice(0, level).alias("c"))
    rows = (
        source.covisits()
        .join(cat.rename({POI_ID: SRC_POI, "c": "a"}), on=SRC_POI)
        .join(cat.rename({POI_ID: DST_POI, "c": "b"}), on=DST_POI)
        .select("a", "b", VISITORS)
    )
    both = pl.concat([rows, rows.select(pl.col("b").alias("a"), pl.col("a").alias("b"), VISITORS)])
    flow = both.group_by("a", "b").agg(pl.col(VISITORS).sum(), pl.len().cast(pl.Int64).alias("pairs")).collect()
    flow = flow.with_columns(pl.when(pl.col("a") == pl.col("b")).then(pl.col("pairs") // 2).otherwise("pairs"))
    return flow.rename({"a": "src_naics", "b": "dst_naics"}).sort("src_naics", "dst_naics")


@pytest.mark.parametrize("state", [None, "CA", "NY", "TX"])
def test_naics_flow_cached_lazy_memory_and_direct_agree(source: WorldSource, world_dir, state: str | None) -> None:
    lazy, cached = WorldSource.from_folder(world_dir), WorldSource.from_folder(world_dir, cache=True)
    for level in range(2, 7):
        want = naics_flow(source, level, state=state)
        assert naics_flow(lazy, level, state=state).equals(want)
        assert naics_flow(cached, level, state=state).equals(want)
        direct = _flow_by_join(source, level, state)
        got = want.select("src_naics", "dst_naics", VISITORS, "pairs").sort("src_naics", "dst_naics")
        assert got.equals(direct.select(got.columns))
    if state == "TX":  # no POI there: an empty table, not an error
        assert naics_flow(cached, 2, state=state).height == 0


def test_naics_flow_tables_built_once_across_threads(world_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    build = naics_flow_mod._tables

    def counted(src: WorldSource) -> dict:
        calls.append(1)
        return build(src)

    monkeypatch.setattr(naics_flow_mod, "_tables", counted)
    src = WorldSource.from_folder(world_dir, cache=True)
    out: list[pl.DataFrame] = []
    barrier = threading.Barrier(8)

    def run() -> None:
        barrier.wait()
        out.append(naics_flow(src, 2, state="CA"))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(out) == 8
    assert all(o.equals(out[0]) for o in out)


# --- lookups ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ids", [["p00", "p05"], ["p01", "p10", "nope"], ["p08", "p09", "p10", "p11"]])
def test_lazy_range_pruned_lookups_match_memory(source: WorldSource, world_dir, ids: list[str]) -> None:
    lazy = WorldSource.from_folder(world_dir)
    assert lazy.pois_with_ids(ids).sort(POI_ID).equals(source.pois_with_ids(ids).sort(POI_ID))
    key = [SRC_POI, DST_POI]
    assert lazy.rows_touching(ids).sort(key).equals(source.rows_touching(ids).sort(key))

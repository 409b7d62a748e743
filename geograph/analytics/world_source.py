"""Where the analytics queries read their data: a world folder (lazy Parquet scans) or a World."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np
import polars as pl

from geograph.constants import (
    BRAND_COL,
    COVISIT_REQUIRED,
    DST_POI,
    H3_CELL,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    POI_ID,
    POI_REQUIRED,
    SRC_POI,
    STATE,
    VISITORS,
)
from geograph.data.readers import read_covisits, read_pois
from geograph.data.world_io import World, find_table, scan_table, validate_world
from geograph.errors import DataValidationError
from geograph.geo.h3cells import latlng_to_cell_ids

from ._checks import Vocabulary, unknown_value_error
from .covisit_index import CovisitIndex

# What polars raises when a scanned file is damaged: a corrupt Parquet page can make its Rust
# code panic, and PanicException derives from BaseException, not Exception.
_POLARS_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException)
_F = TypeVar("_F", bound=Callable[..., Any])
_INDEX = "covisit_index"
_T = TypeVar("_T")


def reads_world(fn: _F) -> _F:
    """Turn a polars error raised while ``fn`` reads a world folder into a
    :class:`DataValidationError` naming the file (and row / field) to blame.

    ``fn`` takes a :class:`WorldSource` as an argument (``self``, ``source`` or ``source=``).
    The lazy scans read only what a query needs, so a damaged file surfaces inside a query;
    the POI and co-visit tables are then read and validated in full to say which one.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _POLARS_ERRORS as exc:
            src = next((a for a in (*args, *kwargs.values()) if isinstance(a, WorldSource)), None)
            if src is None or src.folder is None:
                raise
            src.raise_read_error(exc)

    return wrapper  # type: ignore[return-value]


class WorldSource:
    """The POI and co-visit tables of a world, as polars LazyFrames.

    A folder is scanned lazily (``scan_table``): each query reads only the columns and
    row groups it needs. Before the first query the folder is validated once, manifest or not
    (:func:`~geograph.data.validate_world`: the POI and co-visit tables pass the readers that
    training uses, or ``write_world`` validated them and their SHA-256 still match), so no
    query answers from a table that breaks its contract; :meth:`check` does it at once. With
    ``cache=True`` the two tables are read into memory on first use, so repeated queries
    in one process skip the Parquet decoding. Either way, the queries that read every co-visit
    row (brand lookups, hotspots) answer from a :class:`CovisitIndex` of integer arrays from
    the source's second such query on (:meth:`reused_covisit_index`). One source may be shared
    by threads: what it keeps in memory is filled under a lock and published whole.

    Co-visit rows are read as *unordered* pairs: a row ``(a, b, v)`` says that ``v``
    visitors went to both ``a`` and ``b``; rows naming the same pair twice are summed.

    Args:
        folder: A world folder (``pois.parquet`` / ``covisits.parquet``, CSV, or hive layout).
        world: An in-memory :class:`~geograph.data.World` (instead of ``folder``).
        cache: Keep collected tables in memory between queries. Default False.

    Example:
        >>> src = WorldSource.from_world(hand_made_world())
        >>> src.pois().select("poi_id").collect().height
        8
    """

    def __init__(
        self, folder: str | Path | None = None, world: World | None = None, cache: bool = False
    ) -> None:
        if (folder is None) == (world is None):
            raise ValueError("WorldSource needs exactly one of folder= or world=")
        self.folder = Path(folder) if folder is not None else None
        self.world = world
        self.cache = cache
        self._frames: dict[str, pl.DataFrame] = {}
        self._cells: dict[int, pl.DataFrame] = {}
        self._memo: dict[Hashable, Any] = {}
        self._all_rows_queries = 0  # queries that read every co-visit row (reused_covisit_index)
        self._checked = False
        # Fills of the in-memory tables and caches; re-entrant (``_sorted`` calls ``pois``).
        self._lock = threading.RLock()

    @classmethod
    def from_folder(cls, folder: str | Path, cache: bool = False) -> WorldSource:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataValidationError("world folder not found (expected a directory)", file=folder)
        return cls(folder=folder, cache=cache)

    @classmethod
    def from_world(cls, world: World) -> WorldSource:
        return cls(world=world)

    def __repr__(self) -> str:
        where = str(self.folder) if self.folder is not None else f"World({self.world.pois.height} POIs)"
        return f"WorldSource({where}, cache={self.cache})"

    def raise_read_error(self, exc: BaseException) -> NoReturn:
        """Raise the error for a polars failure ``exc`` while reading this source's folder.

        The POI and co-visit tables are read and validated in full, so the error names the
        damaged file, row and field; if both pass, it names the folder and polars' message.
        """
        try:
            pois = read_pois(find_table(self.folder, "pois"))
            read_covisits(find_table(self.folder, "covisits"), pois=pois)
        except DataValidationError as err:
            raise err from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataValidationError(
            f"cannot run the query on this world: polars failed with {type(exc).__name__} "
            f"({first[:200]}) although its pois and covisits tables validate",
            file=self.folder,
        ) from exc

    # -- tables ------------------------------------------------------------------------
    def _scan(self, name: str) -> pl.LazyFrame:
        if self.world is not None:
            return getattr(self.world, name).lazy()
        if name in self._frames:
            return self._frames[name].lazy()
        if not self.cache:
            return scan_table(self.folder, name)
        with self._lock:
            if name not in self._frames:
                self._frames[name] = scan_table(self.folder, name).collect()
            return self._frames[name].lazy()

    def _check(self) -> None:
        if self._checked:
            return
        with self._lock:
            if not self._checked:
                self._check_columns()
                self._checked = True

    def check(self) -> None:
        """Validate the source now instead of before the first query (a folder: its manifest,
        then the POI and co-visit contracts; see :func:`~geograph.data.validate_world`).

        Raises:
            DataValidationError: naming the file, row and field of the first problem.
        """
        self._check()

    def _check_columns(self) -> None:
        if self.folder is not None:  # manifest (SHA-256) and contracts, once per source
            validate_world(self.folder)
        for name, required in (("pois", POI_REQUIRED), ("covisits", COVISIT_REQUIRED)):
            schema = self._scan(name).collect_schema()
            missing = [c for c in required if c not in schema]
            if missing:
                hint = (
                    "; the analytics queries need POI-to-POI co-visits (src_poi_id, dst_poi_id, visitors)"
                    if name == "covisits"
                    else ""
                )
                raise DataValidationError(
                    f"{name} table lacks column(s) {missing}{hint}; columns found: {list(schema)}",
                    file=self.folder or "<world>",
                    field=missing[0],
                )

    @reads_world
    def pois(self) -> pl.LazyFrame:
        """POIs with ids, NAICS codes and names as text, coordinates as Float64."""
        self._check()
        return self._scan("pois").with_columns(
            pl.col(POI_ID).cast(pl.String),
            pl.col(NAME).cast(pl.String),
            pl.col(BRAND_COL).cast(pl.String),
            pl.col(NAICS_CODE).cast(pl.String).str.replace(r"\.0+$", ""),
            pl.col(LAT).cast(pl.Float64),
            pl.col(LON).cast(pl.Float64),
        )

    @reads_world
    def covisits(self) -> pl.LazyFrame:
        """Co-visit rows ``src_poi_id, dst_poi_id, visitors`` (ids as text, visitors Int64)."""
        self._check()
        return self._scan("covisits").select(
            pl.col(SRC_POI).cast(pl.String), pl.col(DST_POI).cast(pl.String), pl.col(VISITORS).cast(pl.Int64)
        )

    @reads_world
    def poi_cells(self, resolution: int) -> pl.DataFrame:
        """``poi_id, h3_cell`` of every POI at ``resolution``, the cell as a ``uint64`` H3 index
        (computed once per resolution, in one vectorised call)."""
        cells = self._cells.get(resolution)
        if cells is not None:
            return cells
        with self._lock:
            if resolution not in self._cells:
                pois = self.pois().select(POI_ID, LAT, LON).collect()
                ids = latlng_to_cell_ids(pois[LAT].to_numpy(), pois[LON].to_numpy(), resolution)
                self._cells[resolution] = pois.select(POI_ID).with_columns(pl.Series(H3_CELL, ids, pl.UInt64))
            return self._cells[resolution]

    def memo(self, key: Hashable, build: Callable[[], _T]) -> _T:
        """``build()``, computed once per source and ``key`` and kept: small derived tables
        (a query's aggregate by NAICS code, the vocabularies of ids and brands). Filled under
        the source's lock, so threads sharing the source build it once and see it whole."""
        if key in self._memo:
            return self._memo[key]
        with self._lock:
            if key not in self._memo:
                self._memo[key] = build()
            return self._memo[key]

    def vocabulary(self, column: str) -> Vocabulary:
        """The distinct values of the POI ``column`` (``poi_id`` or ``brand``) as a
        :class:`Vocabulary` for close-match suggestions, read once per source (lazy or not)."""

        def build() -> Vocabulary:
            vocab = Vocabulary(self.pois().select(pl.col(column).drop_nulls().unique()).collect()[column])
            vocab._arrays()  # the pre-score arrays too, while the lock is held
            return vocab

        return self.memo(("vocabulary", column), build)

    @reads_world
    def covisit_index(self) -> CovisitIndex:
        """The POI and co-visit tables as integer arrays (:class:`CovisitIndex`), read once per
        source (lazy or not) and kept: the queries that touch every co-visit row (hotspots,
        brand lookups) answer from it with numpy instead of matching 10M ids as text."""

        def build() -> CovisitIndex:
            pois = self.pois().select(POI_ID, BRAND_COL, STATE, LAT, LON).collect()
            return CovisitIndex(pois, self.covisits().collect())

        return self.memo(_INDEX, build)

    def has_covisit_index(self) -> bool:
        """:meth:`covisit_index` was built (it is not built by this call)."""
        return _INDEX in self._memo

    def reused_covisit_index(self) -> CovisitIndex | None:
        """The co-visit index for a query that reads every co-visit row (a brand lookup,
        hotspots), or None where that query runs without it: at the source's first such query
        (the index costs a few queries to build, so a one-shot call pays no more than before)
        and when POI ids repeat. Built at the second such query (thread-safe)."""
        with self._lock:
            self._all_rows_queries += 1
            uses = self._all_rows_queries
        if uses < 2 and not self.has_covisit_index():
            return None
        index = self.covisit_index()
        return index if index.unique else None

    # -- lookups -------------------------------------------------------------------------
    def _sorted(self) -> dict[str, pl.DataFrame]:
        """In-memory copies sorted by POI id, co-visit source and destination (cache mode), so
        a lookup is a binary search instead of a scan of every row."""
        if "by_dst" in self._frames:  # stored last: the three are there
            return self._frames
        with self._lock:
            if "by_dst" not in self._frames:
                by_id = self.pois().collect().sort(POI_ID)
                cov = self.covisits().collect()
                by_src, by_dst = cov.sort(SRC_POI), cov.sort(DST_POI)
                self._frames["by_id"], self._frames["by_src"] = by_id, by_src
                self._frames["by_dst"] = by_dst
            return self._frames

    @property
    def indexed(self) -> bool:
        """Lookups by id use sorted in-memory tables (``cache=True`` or an in-memory world)."""
        return self.cache or self.world is not None

    @reads_world
    def pois_with_ids(self, ids: list[str] | pl.Series) -> pl.DataFrame:
        """The POI rows of ``ids`` (unknown ids are left out), in no particular order."""
        ids = pl.Series(ids, dtype=pl.String)
        if not self.indexed:
            if ids.len() == 1:
                return self.pois().filter(pl.col(POI_ID) == ids[0]).collect()
            return self.pois().filter(_within(POI_ID, ids) & pl.col(POI_ID).is_in(ids.implode())).collect()
        table = self._sorted()["by_id"]
        return table[_ranges(table[POI_ID], ids.unique())]

    @reads_world
    def rows_touching(self, ids: list[str] | pl.Series) -> pl.DataFrame:
        """Co-visit rows whose source or destination is one of ``ids`` (each row once)."""
        ids = pl.Series(ids, dtype=pl.String).unique()
        if not self.indexed:
            if ids.len() == 1:  # equality prunes Parquet row groups by their statistics; is_in scans more
                one = ids[0]
                return self.covisits().filter((pl.col(SRC_POI) == one) | (pl.col(DST_POI) == one)).collect()
            keys = ids.implode()
            near = _within(SRC_POI, ids) | _within(DST_POI, ids)
            return self.covisits().filter(near & (pl.col(SRC_POI).is_in(keys) | pl.col(DST_POI).is_in(keys))).collect()
        t = self._sorted()
        a = t["by_src"][_ranges(t["by_src"][SRC_POI], ids)]
        b = t["by_dst"][_ranges(t["by_dst"][DST_POI], ids)]
        b = b.filter(~pl.col(SRC_POI).is_in(ids.implode()))  # rows with both ends in ids are in a already
        return pl.concat([a, b])

    @reads_world
    def poi(self, poi_id: str) -> dict:
        """The row of one POI as a dict; an unknown id raises with close matches."""
        row = self.pois_with_ids([str(poi_id)])
        if row.height == 0:
            raise unknown_value_error("POI id", str(poi_id), self.vocabulary(POI_ID), POI_ID)
        return row.row(0, named=True)

    @reads_world
    def names(self, ids: list[str]) -> dict[str, str]:
        """``poi_id -> name`` for the ids found (unknown ids are left out)."""
        if not ids:
            return {}
        df = self.pois_with_ids(ids).select(POI_ID, NAME)
        return dict(zip(df[POI_ID].to_list(), df[NAME].to_list(), strict=True))

    @reads_world
    def check_brand(self, brand: str) -> str:
        """``brand`` when some POI carries it; otherwise an error with close matches."""
        hit = self.pois().filter(pl.col(BRAND_COL) == brand).select(pl.len()).collect().item()
        if not hit:
            raise unknown_value_error("brand", brand, self.vocabulary(BRAND_COL), BRAND_COL)
        return brand


def _within(column: str, ids: pl.Series) -> pl.Expr:
    """``column`` between the smallest and largest of ``ids``: a range that Parquet row-group
    statistics can prune (``is_in`` alone reads every row group), ANDed before the ``is_in``."""
    return pl.col(column).is_between(pl.lit(ids.min(), pl.String), pl.lit(ids.max(), pl.String))


def _ranges(sorted_col: pl.Series, keys: pl.Series) -> np.ndarray:
    """Row positions of every entry of ``sorted_col`` equal to one of ``keys`` (binary search)."""
    if keys.len() == 0 or sorted_col.len() == 0:
        return np.zeros(0, dtype=np.int64)
    lo = sorted_col.search_sorted(keys, side="left").to_numpy().astype(np.int64)
    hi = sorted_col.search_sorted(keys, side="right").to_numpy().astype(np.int64)
    lens = hi - lo
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(lo - (np.cumsum(lens) - lens), lens)
    return starts + np.arange(total, dtype=np.int64)

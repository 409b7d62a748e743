"""The co-visit rows and the POI columns of a source as integer arrays (:class:`CovisitIndex`).

Brand lookups and hotspots need every co-visit row: a brand's POIs lie in every row group of
the co-visit table, and a hotspot map sums all rows by the cells of their two ends. Read as
text, that is 10M ids per query on 5M rows. The index reads the tables once per source and
keeps each POI as its row number in the POI table (``int32``), so a query is a few numpy
gathers and counts over integer arrays. A brand lookup marks the brand's POIs and gathers that
mark at both ends of every row; hotspots gathers the cell of each end (cells as dense codes in
the order of their H3 indexes, computed once per resolution) and counts with ``bincount``.

Memory: 16 bytes per co-visit row (two ``int32`` ends, ``int64`` visitors), about 40 bytes per
POI (id, codes, coordinates), 16 more for the rows and visitors of each POI (hotspots) and about
5 for each H3 resolution used: about 135 MB for 1M POIs and 5M rows.
"""

from __future__ import annotations

import threading

import numpy as np
import polars as pl

from geograph.constants import BRAND_COL, DST_POI, LAT, LON, POI_ID, SRC_POI, STATE, VISITORS
from geograph.geo.h3cells import latlng_to_cell_ids

_EXACT = 2**53  # float64 sums of integers are exact below this


def _positions(keys: pl.Series, table: pl.Series) -> np.ndarray:
    """Row of each of ``keys`` in ``table`` (values unique), ``len(table)`` where absent or null."""
    lut = pl.DataFrame({"k": table, "__i__": pl.int_range(0, table.len(), dtype=pl.Int32, eager=True)})
    hit = keys.rename("k").to_frame().join(lut, on="k", how="left", maintain_order="left")["__i__"]
    return np.array(hit.fill_null(table.len()).to_numpy(), dtype=np.int32)  # writable


def _codes(values: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """``values`` as codes into their distinct values sorted (``-1`` for null), and those values."""
    words = values.drop_nulls().unique().sort()
    codes = _positions(values, words)
    codes[codes == words.len()] = -1
    return codes, words


def exact_sums(keys: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """``int64`` sums of the integer ``weights`` by ``keys`` (``0..n-1``), exact: a float64
    ``bincount`` while no partial sum can reach 2**53, ``np.add.at`` otherwise."""
    if weights.size == 0 or int(np.abs(weights).max()) * weights.size < _EXACT:
        return np.bincount(keys, weights, n).astype(np.int64)
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, keys, weights)
    return out


def poi_totals(src: np.ndarray, dst: np.ndarray, visitors: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and visitors (``int64``) of each POI ``0..n-1`` over co-visit rows with ends ``src``,
    ``dst`` (all < n): a row counts at both ends (twice at a POI co-visited with itself)."""
    rows = np.bincount(src, minlength=n) + np.bincount(dst, minlength=n)
    return rows.astype(np.int64), exact_sums(src, visitors, n) + exact_sums(dst, visitors, n)


class CovisitIndex:
    """The POI and co-visit tables of a source as integer arrays, for the queries over all rows.

    POIs are numbered by their row in the POI table; a co-visit end whose id is not a POI gets
    the number ``n`` (one past the last POI), so a gather from a per-POI array extended by one
    entry (:meth:`extend`) never needs a mask. Built by :meth:`WorldSource.covisit_index`.

    Attributes:
        ids: POI ids (``String``), in the POI table's order.
        unique: The POI ids are unique (the queries fall back to polars joins otherwise).
        brand: Brand code of each POI (``-1``: no brand), into ``brands`` (sorted).
        state: State code of each POI (``-1``: none), into ``states`` (sorted).
        lat, lon: Coordinates of each POI (``float64``).
        src, dst: POI number of each co-visit row's two ends (``int32``; ``n``: not a POI).
        visitors: ``int64`` visitors of each row.
        known: Every co-visit end is a POI.
    """

    def __init__(self, pois: pl.DataFrame, covisits: pl.DataFrame) -> None:
        self.ids = pois[POI_ID].cast(pl.String)
        self.n = self.ids.len()
        # distinct 64-bit hashes prove distinct ids (ten times faster than comparing the text)
        self.unique = self.ids.null_count() == 0 and (
            self.ids.hash().n_unique() == self.n or self.ids.n_unique() == self.n
        )
        self.brand, self.brands = _codes(pois[BRAND_COL].cast(pl.String))
        self.state, self.states = _codes(pois[STATE].cast(pl.String))
        self.lat = pois[LAT].cast(pl.Float64).to_numpy()
        self.lon = pois[LON].cast(pl.Float64).to_numpy()
        ends = _positions(pl.concat([covisits[SRC_POI], covisits[DST_POI]]).cast(pl.String), self.ids)
        rows = covisits.height
        self.src, self.dst = ends[:rows], ends[rows:]
        self.visitors = covisits[VISITORS].cast(pl.Int64).to_numpy()
        self.known = bool((ends < self.n).all())
        self._cells: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._totals: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CovisitIndex({self.n} POIs, {len(self.src)} co-visit rows)"

    def extend(self, per_poi: np.ndarray, fill: object) -> np.ndarray:
        """``per_poi`` with ``fill`` appended: the value of the end numbered ``n`` (not a POI)."""
        return np.append(per_poi, np.asarray([fill], dtype=per_poi.dtype))

    def code(self, words: pl.Series, value: str) -> int:
        """Code of ``value`` in the sorted ``words`` (``brands`` / ``states``), -1 if absent."""
        i = int(words.search_sorted(value, side="left"))
        return i if i < words.len() and words[i] == value else -1

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``src, dst, visitors`` of the co-visit rows whose two ends are POIs (all of them when
        :attr:`known`; otherwise copies)."""
        if self.known:
            return self.src, self.dst, self.visitors
        keep = np.flatnonzero((self.src < self.n) & (self.dst < self.n))
        return self.src[keep], self.dst[keep], self.visitors[keep]

    def poi_totals(self) -> tuple[np.ndarray, np.ndarray]:
        """:func:`poi_totals` of :meth:`rows`, once per index."""
        if self._totals is None:
            with self._lock:
                if self._totals is None:
                    self._totals = poi_totals(*self.rows(), self.n)
        return self._totals

    def cells(self, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        """The H3 cells of the POIs at ``resolution``: the distinct cells (``uint64``, sorted,
        so code order is the hex strings' order) and each POI's cell code (``int32``); once
        per resolution."""
        got = self._cells.get(resolution)
        if got is not None:
            return got
        with self._lock:
            if resolution not in self._cells:
                ids = latlng_to_cell_ids(self.lat, self.lon, resolution)
                uniq, code = np.unique(ids, return_inverse=True)
                self._cells[resolution] = (uniq, code.astype(np.int32).reshape(-1))
            return self._cells[resolution]

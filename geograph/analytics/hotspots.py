"""``hotspots``: H3 cells ranked by co-visitation volume, or by where a model is most wrong.

* ``by="volume"``: a cell's volume is the number of visitors of the co-visit pairs with at
  least one POI in the cell (a pair with both POIs in the cell counts once; ``internal``
  is the part of it whose two POIs are both inside).
* ``by="residual"``: for every co-visit row whose two POIs the model knows, the residual is
  ``log1p(observed) - predicted log1p``; a cell's ``mean_residual`` averages the residuals
  of the pairs touching it. Cells are ranked by ``|mean_residual|``: positive means the
  model under-predicts there, negative that it over-predicts. The rows include the pairs
  the model trained on, so residuals there are optimistic; rank changes, not levels, are
  the signal.

From a source's second query over all co-visit rows on, the rows come from its
:class:`~geograph.analytics.covisit_index.CovisitIndex` (both ends of every row as POI numbers,
each POI's cell as a code in the order of the cells' H3 indexes): volumes are counted with
``numpy.bincount``, residuals summed by polars' group-by on those cell codes. A first query
joins the rows with the cells of their ends in polars, as a one-shot call should.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from geograph.constants import DST_POI, H3_CELL, LAT, LON, POI_ID, SRC_POI, STATE, VISITORS
from geograph.errors import ConfigError
from geograph.geo.h3cells import cell_centers, cells_to_string_series

from ._checks import check_choice, check_positive, check_resolution, check_state
from .covisit_index import exact_sums, poi_totals
from .model_context import ModelContext, ordered_sum, to_visitors
from .world_source import WorldSource, reads_world

BY = ("volume", "residual")


@reads_world
def hotspots(
    source: WorldSource,
    resolution: int = 7,
    *,
    by: str = "volume",
    top: int = 20,
    state: str | None = None,
    model: ModelContext | None = None,
    min_pairs: int = 1,
) -> pl.DataFrame:
    """H3 cells at ``resolution`` ranked by co-visitation volume or model residuals.

    Args:
        source: The data.
        resolution: H3 resolution 0..15. Default 7 (about 5 km²).
        by: ``"volume"`` or ``"residual"`` (needs ``model``). Default volume.
        top: Cells to return. Default 20.
        state: Only pairs whose two POIs are in this state.
        model: The trained model (``by="residual"``).
        min_pairs: Ignore cells touched by fewer pairs. Default 1.

    Returns:
        ``rank, h3_cell, latitude, longitude`` (the cell centre), ``pois`` (POIs in the cell
        with a counted pair), ``pairs``, then ``visitors, internal_visitors, share`` (volume)
        or ``visitors, predicted_visitors, mean_residual, direction`` (residual).
    """
    resolution = check_resolution(resolution)
    check_choice("by", by, BY)
    check_positive("top", top, integer=True)
    state = check_state(state)
    if by == "residual" and model is None:
        raise ConfigError("hotspots by residual needs a model (--run-id or --model-uri)")
    index = source.reused_covisit_index()  # None at a source's first query over all rows
    if index is None:
        return _by_joins(source, resolution, by, top, state, model, min_pairs)
    cells, poi_cell = index.cells(resolution)
    s, d, v = index.rows()  # the rows with both ends among the POIs
    if state is not None:  # ... in the state
        st = index.code(index.states, state)
        ok = index.state == st if st >= 0 else np.zeros(index.n, dtype=bool)
        keep = np.flatnonzero(ok[s] & ok[d])
        s, d, v = s[keep], d[keep], v[keep]
    if by == "volume":
        totals = index.poi_totals() if state is None else poi_totals(s, d, v, index.n)
        per_cell = _volume(s, d, v, totals, poi_cell, len(cells))
    else:
        assert model is not None
        known = model.known(index.ids.to_list())
        ia, ib = known[s], known[d]
        ok = (ia >= 0) & (ib >= 0)
        if not ok.any():
            raise ConfigError(f"the model {model.uri} knows none of the POIs of these co-visit rows (another world?)")
        pred = model.predict_log1p(ia[ok], ib[ok])
        s, d, v = s[ok], d[ok], v[ok]
        rows = pl.DataFrame({"cell_a": poi_cell[s], "cell_b": poi_cell[d], VISITORS: v}).with_columns(
            pl.Series("__predv__", to_visitors(pred)),
            (pl.col(VISITORS).cast(pl.Float64).log1p() - pl.Series(pred)).alias("__res__"),
        )
        per_cell = _residual(rows)
        totals = poi_totals(s, d, v, index.n)
    out = _ranked(per_cell.filter(pl.col("pairs") >= min_pairs), by, top, int(v.sum()))
    # POIs with a counted pair, for the ranked cells only (POI ids are unique: one number each)
    codes = out[H3_CELL].to_numpy()
    pois = np.bincount(poi_cell[totals[0] > 0], minlength=len(cells))[codes]
    out = out.with_columns(pl.Series(H3_CELL, cells[codes], pl.UInt64), pl.Series("pois", pois, pl.Int64))
    return _labelled(out)


def _volume(
    s: np.ndarray, d: np.ndarray, v: np.ndarray, totals: tuple[np.ndarray, np.ndarray], poi_cell: np.ndarray, n_cells: int
) -> pl.DataFrame:
    """``h3_cell`` (code), ``pairs, visitors, internal_visitors`` of every cell the rows ``s, d,
    v`` touch, given the rows and visitors of each POI over them (``totals``).

    A row touches the cell of each end, a row inside one cell touches it once: a cell's pairs
    are the rows of its POIs less its inside rows, which its POIs count twice; likewise its
    visitors. Only the inside test reads every row; the sums run over the POIs.
    """
    rows_of, visitors_of = totals
    ca = poi_cell[s]
    inside = np.flatnonzero(ca == poi_cell[d])
    ci = ca[inside]
    internal = exact_sums(ci, v[inside], n_cells)
    pairs = exact_sums(poi_cell, rows_of, n_cells) - np.bincount(ci, minlength=n_cells)
    vis = exact_sums(poi_cell, visitors_of, n_cells) - internal
    hit = np.flatnonzero(pairs)
    return pl.DataFrame(
        {H3_CELL: hit.astype(np.int32), "pairs": pairs[hit], VISITORS: vis[hit], "internal_visitors": internal[hit]},
        schema={H3_CELL: pl.Int32, "pairs": pl.Int64, VISITORS: pl.Int64, "internal_visitors": pl.Int64},
    )


def _residual(rows: pl.DataFrame) -> pl.DataFrame:
    """``h3_cell, pairs, visitors, predicted_visitors, mean_residual`` of every touched cell, from
    rows ``cell_a, cell_b, visitors, __predv__, __res__``."""
    inside = pl.col("cell_a") == pl.col("cell_b")
    extra = ["__res__", "__predv__"]
    touched = pl.concat(
        [
            rows.lazy().select(pl.col("cell_a").alias(H3_CELL), VISITORS, *extra),
            rows.lazy().filter(~inside).select(pl.col("cell_b").alias(H3_CELL), VISITORS, *extra),
        ]
    )
    return (
        touched.group_by(H3_CELL)
        .agg(
            pl.len().cast(pl.Int64).alias("pairs"),
            pl.col(VISITORS).sum(),
            ordered_sum("__predv__").alias("predicted_visitors"),
            (ordered_sum("__res__") / pl.len()).alias("mean_residual"),
        )
        .collect()
    )


def _ranked(per_cell: pl.DataFrame, by: str, top: int, total: int) -> pl.DataFrame:
    """The ``top`` cells by volume (then cell) or by ``|mean_residual|`` (then cell), with
    ``share`` of ``total`` visitors or the ``direction`` of the residual."""
    # Ranked eagerly, on the collected cells: in a lazy query polars fuses ``sort().head()``
    # into a streaming top-k fed by the parallel group-by, whose rows arrive in a varying
    # order; a full sort by (rank key, cell) is a total order and costs milliseconds here.
    key = pl.col(VISITORS) if by == "volume" else pl.col("mean_residual").abs()
    out = per_cell.sort([key, pl.col(H3_CELL)], descending=[True, False]).head(top)
    if by == "volume":
        return out.with_columns((pl.col(VISITORS) / max(total, 1)).alias("share"))
    return out.with_columns(
        pl.when(pl.col("mean_residual") >= 0).then(pl.lit("under")).otherwise(pl.lit("over")).alias("direction")
    )


def _labelled(out: pl.DataFrame) -> pl.DataFrame:
    """Ranked cells (``uint64``) -> the result: cell as text, its centre, columns in order."""
    centers = cell_centers(out[H3_CELL].to_numpy())
    out = out.with_columns(
        cells_to_string_series(out[H3_CELL], H3_CELL), pl.Series(LAT, centers[:, 0]), pl.Series(LON, centers[:, 1])
    )
    first = [H3_CELL, LAT, LON, "pois", "pairs"]
    out = out.select(first + [c for c in out.columns if c not in first])
    return out.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))


def _by_joins(
    source: WorldSource,
    resolution: int,
    by: str,
    top: int,
    state: str | None,
    model: ModelContext | None,
    min_pairs: int,
) -> pl.DataFrame:
    """:func:`hotspots` by joining every co-visit row with the cells of its two ends (polars):
    a source's first query over all rows, the answer where POI ids repeat (a row then matches
    every copy of an id), and the reference of the tests."""
    # cells as uint64 H3 indexes through the joins and group-bys (their order is the hex
    # strings' order, so the ranking's tie-break is unchanged); strings in the result only
    cells = source.poi_cells(resolution).lazy()
    pois = source.pois().select(POI_ID, STATE)
    if state is not None:
        pois = pois.filter(pl.col(STATE) == state)
    cells = cells.join(pois.select(POI_ID), on=POI_ID)
    rows = (
        source.covisits()
        .join(cells.rename({POI_ID: SRC_POI, H3_CELL: "cell_a"}), on=SRC_POI)
        .join(cells.rename({POI_ID: DST_POI, H3_CELL: "cell_b"}), on=DST_POI)
        .collect()
    )
    if by == "residual":
        assert model is not None
        ia, ib = model.known(rows[SRC_POI].to_list()), model.known(rows[DST_POI].to_list())
        ok = (ia >= 0) & (ib >= 0)
        if not ok.any():
            raise ConfigError(f"the model {model.uri} knows none of the POIs of these co-visit rows (another world?)")
        pred = model.predict_log1p(ia[ok], ib[ok])
        rows = rows.filter(pl.Series(ok)).with_columns(
            pl.Series("__predv__", to_visitors(pred)),
            (pl.col(VISITORS).cast(pl.Float64).log1p() - pl.Series(pred)).alias("__res__"),
        )
        per_cell = _residual(rows)
    else:
        inside = pl.col("cell_a") == pl.col("cell_b")
        touched = pl.concat(
            [
                rows.lazy().select(pl.col("cell_a").alias(H3_CELL), VISITORS, inside.alias("__in__")),
                rows.lazy().filter(~inside).select(pl.col("cell_b").alias(H3_CELL), VISITORS, pl.lit(False).alias("__in__")),
            ]
        )
        per_cell = (
            touched.group_by(H3_CELL)
            .agg(
                pl.len().cast(pl.Int64).alias("pairs"),
                pl.col(VISITORS).sum(),
                pl.col(VISITORS).filter(pl.col("__in__")).sum().alias("internal_visitors"),
            )
            .collect()
        )
    out = _ranked(per_cell.filter(pl.col("pairs") >= min_pairs), by, top, int(rows[VISITORS].sum()) if rows.height else 0)
    # POIs with a counted pair, for the ranked cells only
    ranked = out[H3_CELL].implode()
    per_cell_pois = (
        pl.concat(
            [
                rows.lazy().select(pl.col("cell_a").alias(H3_CELL), pl.col(SRC_POI).alias(POI_ID)),
                rows.lazy().select(pl.col("cell_b").alias(H3_CELL), pl.col(DST_POI).alias(POI_ID)),
            ]
        )
        .filter(pl.col(H3_CELL).is_in(ranked))
        .group_by(H3_CELL)
        .agg(pl.col(POI_ID).n_unique().cast(pl.Int64).alias("pois"))
        .collect()
    )
    return _labelled(out.join(per_cell_pois, on=H3_CELL, how="left", maintain_order="left"))

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
"""

from __future__ import annotations

import polars as pl

from geograph.constants import DST_POI, H3_CELL, LAT, LON, POI_ID, SRC_POI, STATE, VISITORS
from geograph.errors import ConfigError
from geograph.geo.h3cells import cell_centers, cells_to_string_series

from ._checks import check_choice, check_positive, check_resolution, check_state
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
    # cells as uint64 H3 indexes through the joins and group-bys (their order is the hex
    # strings' order, so the ranking's tie-break is unchanged); strings in the result only
    cells = source.poi_cells(resolution).lazy()
    if cells.collect_schema()[H3_CELL] == pl.String:
        cells = cells.with_columns(pl.col(H3_CELL).str.to_integer(base=16, dtype=pl.UInt64))
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
    # a pair touches the cell of each of its POIs; a pair inside one cell touches it once
    inside = pl.col("cell_a") == pl.col("cell_b")
    extra = [c for c in ("__res__", "__predv__") if c in rows.columns]
    touched = pl.concat(
        [
            rows.lazy().select(pl.col("cell_a").alias(H3_CELL), VISITORS, inside.alias("__in__"), *extra),
            rows.lazy().filter(~inside).select(pl.col("cell_b").alias(H3_CELL), VISITORS, pl.lit(False).alias("__in__"), *extra),
        ]
    )
    if by == "volume":
        aggs = [pl.col(VISITORS).filter(pl.col("__in__")).sum().alias("internal_visitors")]
        order, desc = [pl.col(VISITORS), pl.col(H3_CELL)], [True, False]
    else:
        aggs = [
            ordered_sum("__predv__").alias("predicted_visitors"),
            (ordered_sum("__res__") / pl.len()).alias("mean_residual"),
        ]
        order, desc = [pl.col("mean_residual").abs(), pl.col(H3_CELL)], [True, False]
    per_cell = (
        touched.group_by(H3_CELL)
        .agg(pl.len().cast(pl.Int64).alias("pairs"), pl.col(VISITORS).sum(), *aggs)
        .filter(pl.col("pairs") >= min_pairs)
        .collect()
    )
    # Ranked eagerly, on the collected cells: in a lazy query polars fuses ``sort().head()``
    # into a streaming top-k fed by the parallel group-by, whose rows arrive in a varying
    # order; a full sort by (rank key, cell) is a total order and costs milliseconds here.
    out = per_cell.sort(order, descending=desc).head(top)
    if by == "volume":
        total = int(rows[VISITORS].sum()) if rows.height else 0
        out = out.with_columns((pl.col(VISITORS) / max(total, 1)).alias("share"))
    else:
        out = out.with_columns(
            pl.when(pl.col("mean_residual") >= 0).then(pl.lit("under")).otherwise(pl.lit("over")).alias("direction")
        )
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
    out = out.join(per_cell_pois, on=H3_CELL, how="left", maintain_order="left")
    centers = cell_centers(out[H3_CELL].to_numpy())
    out = out.with_columns(
        cells_to_string_series(out[H3_CELL], H3_CELL), pl.Series(LAT, centers[:, 0]), pl.Series(LON, centers[:, 1])
    )
    first = [H3_CELL, LAT, LON, "pois", "pairs"]
    out = out.select(first + [c for c in out.columns if c not in first])
    return out.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))

"""``covisited``: the POIs (or brands) most co-visited with a POI (or a brand), observed and predicted."""

from __future__ import annotations

import numpy as np
import polars as pl

from geograph.constants import (
    BRAND_COL,
    DST_POI,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    POI_ID,
    SRC_POI,
    STATE,
    VISITORS,
)
from geograph.errors import ConfigError
from geograph.geo.sphere import haversine_km

from ._checks import check_choice, check_positive, check_state, poi_or_brand
from .covisit_index import CovisitIndex
from .model_context import ModelContext, ordered_sum, to_visitors
from .world_source import WorldSource, reads_world

PREDICTED = "predicted_visitors"
DISTANCE = "distance_km"
PARTNER = "__partner__"
RANK_BY = ("observed", "predicted")


@reads_world
def covisited(
    source: WorldSource,
    poi: str | None = None,
    brand: str | None = None,
    *,
    top: int = 10,
    state: str | None = None,
    radius_km: float | None = None,
    model: ModelContext | None = None,
    rank_by: str = "observed",
    candidates: int = 50,
) -> pl.DataFrame:
    """Top-``top`` co-visited POIs of a POI, or co-visited brands of a brand.

    Co-visit rows are unordered pairs: for POI ``x`` every row naming ``x`` on either side
    counts, and the partner is the other end (rows naming the same pair twice are summed).
    For a brand, every row with an end of that brand counts once, and the partner brand is
    the brand of the other end (unbranded partners are left out).

    Args:
        source: The data.
        poi: A POI id (exclusive with ``brand``).
        brand: A brand name.
        top: Rows to return. Default 10.
        state: Keep only partners in this state (for a brand, also only its POIs there).
        radius_km: Keep only partners within this distance of the POI (for a brand: pairs
            whose two ends are at most this far apart).
        model: A trained model; adds ``predicted_visitors`` (the mean of both pair
            orientations). For a POI it also scores its ``candidates`` nearest POIs of the
            same state (within ``radius_km``) that have no co-visit row with it; their
            ``visitors`` is null.
        rank_by: ``"observed"`` (visitors, then prediction) or ``"predicted"``.
        candidates: Unobserved POIs scored per query POI when a model is given. Default 50.

    Returns:
        For a POI: ``rank, poi_id, name, brand, naics_code, state, latitude, longitude,
        distance_km, visitors, pairs[, predicted_visitors]``. For a brand: ``rank, brand,
        visitors, pairs, pois[, predicted_visitors]``.

    Raises:
        DataValidationError: unknown POI id or brand (with close matches), unknown state.
        ConfigError: bad ``top``, ``radius_km``, ``rank_by`` or both / neither of poi and brand.
    """
    poi_or_brand(poi, brand)
    check_positive("top", top, integer=True)
    check_positive("radius_km", radius_km)
    check_choice("rank_by", rank_by, RANK_BY)
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 0:
        raise ConfigError(f"candidates must be an integer >= 0, got {candidates!r}")
    if rank_by == "predicted" and model is None:
        raise ConfigError("rank_by='predicted' needs a model (--run-id or --model-uri)")
    state = check_state(state)
    if poi is not None:
        return _for_poi(source, str(poi), top, state, radius_km, model, rank_by, candidates)
    return _for_brand(source, source.check_brand(str(brand)), top, state, radius_km, model, rank_by)


def _partner_rows(rows: pl.DataFrame, poi: str) -> pl.DataFrame:
    return (
        rows.select(
            pl.when(pl.col(SRC_POI) == poi).then(pl.col(DST_POI)).otherwise(pl.col(SRC_POI)).alias(POI_ID),
            pl.col(VISITORS),
        )
        .filter(pl.col(POI_ID) != poi)
        .group_by(POI_ID)
        .agg(pl.col(VISITORS).sum(), pl.len().cast(pl.Int64).alias("pairs"))
    )


def _for_poi(
    source: WorldSource,
    poi: str,
    top: int,
    state: str | None,
    radius_km: float | None,
    model: ModelContext | None,
    rank_by: str,
    candidates: int,
) -> pl.DataFrame:
    me = source.poi(poi)
    cols = [POI_ID, NAME, BRAND_COL, NAICS_CODE, STATE, LAT, LON]
    observed = _partner_rows(source.rows_touching([poi]), poi)
    extra: list[str] = []
    if model is not None:
        model.idx(poi)  # the model must know the query POI
        st = model.state_of(state or me[STATE])
        near, _ = model.nearest(me[LAT], me[LON], candidates + 1, st, radius_km)
        seen = set(observed[POI_ID].to_list()) | {poi}
        extra = [model.ids[i] for i in near.tolist() if model.ids[i] not in seen][:candidates]
    wanted = pl.concat(
        [observed, pl.DataFrame({POI_ID: extra}, schema={POI_ID: pl.String}).with_columns(
            pl.lit(None, pl.Int64).alias(VISITORS), pl.lit(0, pl.Int64).alias("pairs"))],
        how="vertical",
    )
    info = source.pois_with_ids(wanted[POI_ID]).select(cols)
    out = (
        wanted.join(info, on=POI_ID, how="inner")
        .with_columns(haversine_km(me[LAT], me[LON], pl.col(LAT), pl.col(LON)).alias(DISTANCE))
    )
    if state is not None:
        out = out.filter(pl.col(STATE) == state)
    if radius_km is not None:
        out = out.filter(pl.col(DISTANCE) <= radius_km)
    if model is not None:
        idx = model.known(out[POI_ID].to_list())
        pred = np.full(out.height, np.nan)
        ok = idx >= 0
        pred[ok] = to_visitors(model.predict_log1p(np.full(int(ok.sum()), model.idx(poi)), idx[ok]))
        out = out.with_columns(pl.Series(PREDICTED, pred).fill_nan(None))
    order = [VISITORS, PREDICTED] if rank_by == "observed" else [PREDICTED, VISITORS]
    order = [c for c in order if c in out.columns]
    out = out.sort([*order, POI_ID], descending=[True] * len(order) + [False], nulls_last=True).head(top)
    keep = [*cols, DISTANCE, VISITORS, "pairs"] + ([PREDICTED] if model is not None else [])
    return out.select(keep).with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))


def _for_brand(
    source: WorldSource,
    brand: str,
    top: int,
    state: str | None,
    radius_km: float | None,
    model: ModelContext | None,
    rank_by: str,
) -> pl.DataFrame:
    # from the source's CovisitIndex (built at its second query over all rows), else by
    # matching the rows' ids as text
    index = source.reused_covisit_index()
    if index is not None:
        return _rank_brands(_brand_rows_indexed(index, brand, state, radius_km, model), top, model, rank_by)
    return _rank_brands(_brand_rows(source, brand, state, radius_km), top, model, rank_by)


def _brand_rows(source: WorldSource, brand: str, state: str | None, radius_km: float | None) -> pl.DataFrame:
    """``me, other, __partner__, visitors``: the co-visit rows with an end (``me``) of ``brand``
    (in ``state``), the other end's brand, read by matching the ids as text."""
    mine = source.pois().filter(pl.col(BRAND_COL) == brand)
    if state is not None:
        mine = mine.filter(pl.col(STATE) == state)
    mine_ids = mine.select(POI_ID).collect()[POI_ID]
    rows = source.rows_touching(mine_ids)
    src_mine = rows[SRC_POI].is_in(mine_ids.implode())
    rows = pl.DataFrame(
        {
            "me": pl.select(pl.when(src_mine).then(rows[SRC_POI]).otherwise(rows[DST_POI])).to_series(),
            "other": pl.select(pl.when(src_mine).then(rows[DST_POI]).otherwise(rows[SRC_POI])).to_series(),
            VISITORS: rows[VISITORS],
        }
    )
    info = source.pois_with_ids(pl.concat([rows["me"], rows["other"]]).unique()).select(POI_ID, BRAND_COL, STATE, LAT, LON)
    a = info.select(pl.col(POI_ID).alias("me"), pl.col(LAT).alias("lat_a"), pl.col(LON).alias("lon_a"))
    b = info.select(
        pl.col(POI_ID).alias("other"), pl.col(BRAND_COL).alias(PARTNER), pl.col(STATE).alias("__st__"),
        pl.col(LAT).alias("lat_b"), pl.col(LON).alias("lon_b"),
    )
    rows = rows.join(a, on="me").join(b, on="other").filter(pl.col(PARTNER).is_not_null())
    if state is not None:
        rows = rows.filter(pl.col("__st__") == state)
    if radius_km is not None:
        rows = rows.filter(haversine_km(pl.col("lat_a"), pl.col("lon_a"), pl.col("lat_b"), pl.col("lon_b")) <= radius_km)
    return rows.select("me", "other", PARTNER, VISITORS)


def _brand_rows_indexed(
    index: CovisitIndex, brand: str, state: str | None, radius_km: float | None, model: ModelContext | None
) -> pl.DataFrame:
    """:func:`_brand_rows` from the source's :class:`CovisitIndex`: the brand's POIs marked, the
    mark gathered at both ends of every row; ``me`` / ``other`` are POI numbers (ids with a model)."""
    code = index.code(index.brands, brand)
    mine = index.brand == code if code >= 0 else np.zeros(index.n, dtype=bool)
    st = index.code(index.states, state) if state is not None else None
    if st is not None:
        mine &= index.state == st if st >= 0 else False
    mark = index.extend(mine, False)
    src_mine = mark[index.src]
    hit = np.flatnonzero(src_mine | mark[index.dst])
    src, dst, src_mine = index.src[hit], index.dst[hit], src_mine[hit]
    me, other = np.where(src_mine, src, dst), np.where(src_mine, dst, src)
    partner = index.extend(index.brand, -1)[other]  # -1: no brand, or not a POI
    keep = partner >= 0
    if st is not None:
        keep &= index.extend(index.state, -1)[other] == st
    me, other, partner, visitors = me[keep], other[keep], partner[keep], index.visitors[hit][keep]
    if radius_km is not None:
        ends = pl.DataFrame({"lat_a": index.lat[me], "lon_a": index.lon[me], "lat_b": index.lat[other], "lon_b": index.lon[other]})
        near = ends.select(haversine_km(pl.col("lat_a"), pl.col("lon_a"), pl.col("lat_b"), pl.col("lon_b")) <= radius_km)
        near = near.to_series().to_numpy()
        me, other, partner, visitors = me[near], other[near], partner[near], visitors[near]
    ends = {"me": me, "other": other} if model is None else {"me": index.ids.gather(me), "other": index.ids.gather(other)}
    return pl.DataFrame({**ends, PARTNER: index.brands.gather(partner), VISITORS: pl.Series(visitors, dtype=pl.Int64)})


def _rank_brands(rows_df: pl.DataFrame, top: int, model: ModelContext | None, rank_by: str) -> pl.DataFrame:
    """The partner brands of :func:`_brand_rows`' rows, ranked."""
    if model is not None:
        ia, ib = model.known(rows_df["me"].to_list()), model.known(rows_df["other"].to_list())
        pred = np.full(rows_df.height, np.nan)
        ok = (ia >= 0) & (ib >= 0)
        pred[ok] = to_visitors(model.predict_log1p(ia[ok], ib[ok]))
        rows_df = rows_df.with_columns(pl.Series(PREDICTED, pred).fill_nan(None))
    aggs = [pl.col(VISITORS).sum(), pl.len().cast(pl.Int64).alias("pairs"), pl.col("other").n_unique().cast(pl.Int64).alias("pois")]
    if model is not None:
        aggs.append(ordered_sum(PREDICTED).alias(PREDICTED))
    out = rows_df.group_by(PARTNER).agg(aggs).rename({PARTNER: BRAND_COL})
    order = [VISITORS, PREDICTED] if rank_by == "observed" else [PREDICTED, VISITORS]
    order = [c for c in order if c in out.columns]
    out = out.sort([*order, BRAND_COL], descending=[True] * len(order) + [False]).head(top)
    return out.with_row_index("rank", offset=1).with_columns(pl.col("rank").cast(pl.Int64))

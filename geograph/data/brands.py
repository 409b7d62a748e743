"""Brand granularity: one node per brand within a state, as in the NAICS co-visitation paper.

The paper's "4.2 billion potential venue pairs" are the unordered pairs of its 92,486 brands,
so its nodes are brands within a state. ``to_brand_level`` turns a POI-level world into that
form: node id ``"<state>:<brand>"`` (unbranded POIs stay single nodes, id ``"<state>:poi:<poi_id>"``),
NAICS code the most common one of the brand's POIs, position the mean of its POIs, numeric
features summed (counts such as visits) or averaged (everything else, see ``SUM_FEATURES``),
plus ``n_locations``. POI-level co-visits are summed per (src brand node, dst brand node);
brand-level co-visits (``src_brand``, ``dst_brand``, ``state``) are used directly.
"""

from __future__ import annotations

import polars as pl

from geograph.constants import (
    BRAND_COL,
    DST_BRAND,
    DST_POI,
    LAT,
    LON,
    NAICS_CODE,
    POI_ID,
    SRC_BRAND,
    SRC_POI,
    STATE,
    VISITORS,
)
from geograph.data.covisit_tables import expand_brand_covisits
from geograph.data.poi_tables import poi_feature_columns
from geograph.data.world_io import World

# Numeric POI features that add up over a brand's locations; the rest are averaged.
SUM_FEATURES = {"visits", "raw_visitor_counts", "visitors"}
N_LOCATIONS = "n_locations"


def brand_node_ids(pois: pl.DataFrame) -> pl.Expr:
    """Expression of each POI's brand node id: ``"<state>:<brand>"``, or ``"<state>:poi:<poi_id>"``
    for an unbranded POI."""
    return (
        pl.when(pl.col(BRAND_COL).is_not_null())
        .then(pl.col(STATE) + pl.lit(":") + pl.col(BRAND_COL))
        .otherwise(pl.col(STATE) + pl.lit(":poi:") + pl.col(POI_ID).cast(pl.Utf8))
    )


def to_brand_level(world: World) -> World:
    """Aggregate a POI-level world to brand-within-state nodes (see module docstring)."""
    pois = world.pois.with_columns(brand_node_ids(world.pois).alias("_node"))
    feats = poi_feature_columns(world.pois)
    aggs = [
        pl.col(NAICS_CODE).cast(pl.Utf8).mode().sort().first().alias(NAICS_CODE),
        pl.col(LAT).mean().alias(LAT),
        pl.col(LON).mean().alias(LON),
        pl.col(STATE).first().alias(STATE),
        pl.col(BRAND_COL).first().alias(BRAND_COL),
        pl.len().cast(pl.Float64).alias(N_LOCATIONS),
    ]
    aggs += [(pl.col(c).sum() if c in SUM_FEATURES else pl.col(c).mean()).alias(c) for c in feats]
    nodes = (
        pois.group_by("_node", maintain_order=True)
        .agg(aggs)
        .with_columns(pl.col("_node").alias(POI_ID), pl.col("_node").alias("name"))
        .drop("_node")
    )
    node_of = pois.select(pl.col(POI_ID).cast(pl.Utf8), "_node")
    cov = world.covisits
    if SRC_BRAND in cov.columns:
        cov = cov.select(
            (pl.col(STATE) + ":" + pl.col(SRC_BRAND)).alias(SRC_POI),
            (pl.col(STATE) + ":" + pl.col(DST_BRAND)).alias(DST_POI),
            pl.col(VISITORS),
        )
    else:
        if DST_BRAND in cov.columns and DST_POI not in cov.columns:
            cov, _ = expand_brand_covisits(world.pois, cov)
        cov = (
            cov.with_columns(pl.col(SRC_POI).cast(pl.Utf8), pl.col(DST_POI).cast(pl.Utf8))
            .join(node_of.rename({POI_ID: SRC_POI, "_node": "_s"}), on=SRC_POI, how="left")
            .join(node_of.rename({POI_ID: DST_POI, "_node": "_d"}), on=DST_POI, how="left")
            .select(pl.col("_s").alias(SRC_POI), pl.col("_d").alias(DST_POI), pl.col(VISITORS))
        )
    cov = (
        cov.filter(pl.col(SRC_POI) != pl.col(DST_POI))
        .group_by(SRC_POI, DST_POI, maintain_order=True)
        .agg(pl.col(VISITORS).sum())
    )
    meta = dict(world.meta, granularity="brand")
    return World(pois=nodes, covisits=cov, images=world.images, regions=world.regions, meta=meta)

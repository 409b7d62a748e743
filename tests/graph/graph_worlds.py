"""Hand-made worlds with exact answers for the graph tests (4-10 POIs each).

* :func:`line_world`: five CA POIs on one meridian at 0, 1, 2.2, 3.7 and 10 km, so every
  great-circle distance is known by hand and no two neighbours tie.
* :func:`cell_world`: six POIs placed on H3 resolution-7 cell centres (two cells in San
  Francisco that touch, one more that touches only the second, one in New York) plus four
  images, one in a New York cell that holds no POI; co-visits chosen to exercise every pair
  feature (same brand, NAICS prefix depth 0 / 2 / 3 / 5).
"""

from __future__ import annotations

import math

import h3
import numpy as np
import polars as pl

from geograph.constants import (
    BRAND_COL,
    DST_BRAND,
    DST_POI,
    EARTH_RADIUS_KM,
    EMBEDDING,
    IMAGE_ID,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    POI_ID,
    SRC_POI,
    STATE,
    VISITORS,
)
from geograph.data.world_io import World

KM_DEG = math.degrees(1.0 / EARTH_RADIUS_KM)  # degrees of latitude per km along a meridian
RES = 7  # cell resolution of the cell world

POI_SCHEMA = {
    POI_ID: pl.Utf8,
    NAME: pl.Utf8,
    BRAND_COL: pl.Utf8,
    NAICS_CODE: pl.Utf8,
    LAT: pl.Float64,
    LON: pl.Float64,
    STATE: pl.Utf8,
    "visits": pl.Float64,
}


def ref_haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Reference great-circle distance, written out independently of geograph.geo."""
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def poi_frame(rows: list[tuple]) -> pl.DataFrame:
    """Rows ``(poi_id, brand, naics, lat, lon, state, visits)`` -> a POI table."""
    return pl.DataFrame(
        [
            {
                POI_ID: r[0],
                NAME: f"venue {r[0]}",
                BRAND_COL: r[1],
                NAICS_CODE: r[2],
                LAT: r[3],
                LON: r[4],
                STATE: r[5],
                "visits": r[6],
            }
            for r in rows
        ],
        schema=POI_SCHEMA,
    )


def covisit_frame(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {SRC_POI: [r[0] for r in rows], DST_POI: [r[1] for r in rows], VISITORS: [r[2] for r in rows]},
        schema={SRC_POI: pl.Utf8, DST_POI: pl.Utf8, VISITORS: pl.Int64},
    )


def brand_covisit_frame(rows: list[tuple[str, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {SRC_POI: [r[0] for r in rows], DST_BRAND: [r[1] for r in rows], VISITORS: [r[2] for r in rows]},
        schema={SRC_POI: pl.Utf8, DST_BRAND: pl.Utf8, VISITORS: pl.Int64},
    )


def image_frame(rows: list[tuple[str, float, float, list[float]]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            IMAGE_ID: [r[0] for r in rows],
            LAT: [r[1] for r in rows],
            LON: [r[2] for r in rows],
            EMBEDDING: [list(r[3]) for r in rows],
        },
        schema={IMAGE_ID: pl.Utf8, LAT: pl.Float64, LON: pl.Float64, EMBEDDING: pl.List(pl.Float32)},
    )


# --- the line world -----------------------------------------------------------------------
LINE_KM = (0.0, 1.0, 2.2, 3.7, 10.0)
LINE_ORIGIN = (37.0, -120.0)


def line_world() -> World:
    rows = [
        (f"l{i}", None, "722515", LINE_ORIGIN[0] + km * KM_DEG, LINE_ORIGIN[1], "CA", 1.0)
        for i, km in enumerate(LINE_KM)
    ]
    return World(pois=poi_frame(rows), covisits=covisit_frame([("l0", "l1", 1)]))


# --- the cell world -------------------------------------------------------------------------
def cell_world_cells() -> dict[str, str]:
    """c0 (SF), c1 touching c0, c2 touching c1 but two steps from c0, c3 (NYC), c4 touching c3."""
    c0 = h3.latlng_to_cell(37.7749, -122.4194, RES)
    c1 = sorted(h3.grid_ring(c0, 1))[0]
    c2 = sorted(c for c in h3.grid_ring(c0, 2) if h3.grid_distance(c, c1) == 1)[0]
    c3 = h3.latlng_to_cell(40.7128, -74.0060, RES)
    c4 = sorted(h3.grid_ring(c3, 1))[0]
    return {"c0": c0, "c1": c1, "c2": c2, "c3": c3, "c4": c4}


OFFSET_DEG = 0.0005  # ~56 m north: stays inside a resolution-7 cell (edge ~1.2 km)

# poi_id, brand, naics, cell, offset?, state, visits
CELL_POIS = (
    ("a", "Bluebird", "722515", "c0", False, "CA", 10.0),
    ("b", "Bluebird", "722513", "c0", True, "CA", 20.0),
    ("c", "Crust", "722330", "c1", False, "CA", 30.0),
    ("d", None, "721110", "c2", False, "CA", 40.0),
    ("e", "Bluebird", "722515", "c3", False, "NY", 50.0),
    ("f", None, "445110", "c3", True, "NY", 60.0),
)
# src, dst, visitors: b->a is a separate directed row (not a duplicate of a->b)
CELL_COVISITS = (("a", "b", 7), ("a", "c", 3), ("c", "d", 0), ("a", "d", 5), ("e", "f", 4), ("b", "a", 2))
# image_id, cell, embedding
CELL_IMAGES = (
    ("i0", "c0", (1.0, 0.0, 0.0)),
    ("i1", "c1", (0.9, 0.1, 0.0)),
    ("i2", "c3", (0.0, 1.0, 0.0)),
    ("i3", "c4", (0.0, 0.9, 0.1)),
)


def cell_world(regions: pl.DataFrame | None = None, images: bool = True) -> World:
    cells = cell_world_cells()
    rows = []
    for pid, brand, naics, cell, off, state, visits in CELL_POIS:
        lat, lon = h3.cell_to_latlng(cells[cell])
        rows.append((pid, brand, naics, lat + (OFFSET_DEG if off else 0.0), lon, state, visits))
    pois = poi_frame(rows)
    got = [h3.latlng_to_cell(a, b, RES) for a, b in zip(pois[LAT], pois[LON], strict=True)]
    assert got == [cells[r[3]] for r in CELL_POIS], "a cell-world POI left its cell"
    img = None
    if images:
        img = image_frame([(iid, *h3.cell_to_latlng(cells[c]), list(e)) for iid, c, e in CELL_IMAGES])
    return World(pois=pois, covisits=covisit_frame(list(CELL_COVISITS)), images=img, regions=regions)


def poi_pos(world: World) -> np.ndarray:
    return world.pois.select(LAT, LON).to_numpy()


# --- the three-state world ------------------------------------------------------------------
# three POIs per state (CA, NY, TX), each state's co-visits listed in both directions with
# different counts (as directional vendor data is), one direction of one pair zero
STATE_CENTRES = {"CA": (37.77, -122.42), "NY": (40.71, -74.01), "TX": (29.76, -95.37)}


def three_state_world() -> World:
    rows, cov = [], []
    for s, (state, (lat, lon)) in enumerate(STATE_CENTRES.items()):
        ids = [f"{state.lower()}{i}" for i in range(3)]
        for i, pid in enumerate(ids):
            rows.append((pid, None, "722515", lat + i * 0.01, lon, state, 10.0 * (s + 1) + i))
        cov += [(ids[0], ids[1], 5 + s), (ids[1], ids[0], 3 + s), (ids[1], ids[2], 2), (ids[2], ids[1], 0)]
    return World(pois=poi_frame(rows), covisits=covisit_frame(cov))


def both_directions(world: World) -> World:
    """The world with every co-visit row also listed reversed (reverse visitors = forward + 1)."""
    cov = world.covisits.select(SRC_POI, DST_POI, VISITORS)
    rev = cov.select(
        pl.col(DST_POI).alias(SRC_POI), pl.col(SRC_POI).alias(DST_POI), (pl.col(VISITORS) + 1).alias(VISITORS)
    )
    return World(pois=world.pois, covisits=pl.concat([cov, rev]), images=world.images, regions=world.regions)

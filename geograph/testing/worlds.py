"""Tiny worlds for tests and docs: a seeded generated one and a hand-made one with exact numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from geograph.constants import (
    BRAND_COL,
    DST_POI,
    EMBEDDING,
    H3_CELL,
    IMAGE_ID,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    POI_ID,
    SRC_POI,
    STATE,
    TEXT,
    VISITORS,
)
from geograph.data.world_io import World

TINY_STATES = ("CA", "NY", "TX")


def tiny_world(seed: int = 0, n_pois: int = 60, states: Sequence[str] = TINY_STATES, **options: Any) -> World:
    """A small generated world (default 60 POIs in CA, NY and TX, 30 images of 16 floats).

    Args:
        seed: Seed of :func:`~geograph.data.synthetic.generate_world`.
        n_pois: Number of POIs.
        states: States to populate (few states keep every state graph connected).
        **options: Any other ``generate_world`` argument (``n_images``, ``embedding_dim``, ...).
    """
    from geograph.data.synthetic import generate_world

    options.setdefault("embedding_dim", 16)
    return generate_world(n_pois=n_pois, seed=seed, states=list(states), progress=False, **options)


# The hand-made world: 8 POIs in San Francisco (CA) and New York (NY), three NAICS codes
# (722515 coffee, 311811 bakery, 441110 car dealer), two brands (Bluebird Coffee in both
# states, Golden Crust Bakery in CA only), ten co-visit pairs of which three are zero.
_POIS = (
    # poi_id, name, brand, naics, lat, lon, state, visits
    ("p0", "Bluebird Coffee #1", "Bluebird Coffee", "722515", 37.7793, -122.4193, "CA", 2400),
    ("p1", "Golden Crust Bakery #1", "Golden Crust Bakery", "311811", 37.7800, -122.4180, "CA", 900),
    ("p2", "Bluebird Coffee #2", "Bluebird Coffee", "722515", 37.7850, -122.4090, "CA", 1800),
    ("p3", "Car Dealer #1", None, "441110", 37.7600, -122.4000, "CA", 500),
    ("p4", "Golden Crust Bakery #2", "Golden Crust Bakery", "311811", 37.7700, -122.4300, "CA", 700),
    ("p5", "Bluebird Coffee #3", "Bluebird Coffee", "722515", 40.7128, -74.0060, "NY", 3000),
    ("p6", "Bakery #1", None, "311811", 40.7140, -74.0050, "NY", 1100),
    ("p7", "Car Dealer #2", None, "441110", 40.7300, -73.9900, "NY", 400),
)
_COVISITS = (
    ("p0", "p1", 120),
    ("p0", "p2", 45),
    ("p1", "p2", 60),
    ("p0", "p3", 0),
    ("p2", "p3", 2),
    ("p1", "p4", 30),
    ("p3", "p4", 0),
    ("p5", "p6", 80),
    ("p5", "p7", 1),
    ("p6", "p7", 0),
)
_IMAGES = (
    ("i0", 37.7795, -122.4190, (1.0, 0.0, 0.0, 0.5), "street view near San Francisco, CA"),
    ("i1", 37.7610, -122.4010, (0.9, 0.1, 0.0, -0.5), "street view near San Francisco, CA"),
    ("i2", 40.7130, -74.0055, (0.0, 1.0, 0.0, 0.5), "street view near New York City, NY"),
    ("i3", 40.7290, -73.9910, (0.1, 0.9, 0.0, -0.5), "street view near New York City, NY"),
)


def hand_made_world() -> World:
    """The 8-POI hand-written world with exact numbers, for exact-answer tests.

    POIs ``p0``-``p4`` are in CA (San Francisco), ``p5``-``p7`` in NY (Manhattan); codes
    722515 (``p0, p2, p5``), 311811 (``p1, p4, p6``) and 441110 (``p3, p7``); brands
    "Bluebird Coffee" (``p0, p2, p5``: two states) and "Golden Crust Bakery" (``p1, p4``);
    ``p3, p6, p7`` are unbranded. Co-visits (10 rows, 3 zero, total 338 visitors):
    p0-p1 120, p0-p2 45, p1-p2 60, p0-p3 0, p2-p3 2, p1-p4 30, p3-p4 0, p5-p6 80, p5-p7 1,
    p6-p7 0. Four images with 4-float embeddings, and the H3 resolution-6 cells of the POIs
    as regions (population 1000 x (row + 1), median income 50000 + 10000 x row).
    """
    from geograph.geo.h3cells import latlng_to_cells

    cols = (POI_ID, NAME, BRAND_COL, NAICS_CODE, LAT, LON, STATE, "visits")
    pois = pl.DataFrame(
        [dict(zip(cols, row, strict=True)) for row in _POIS],
        schema={
            POI_ID: pl.Utf8,
            NAME: pl.Utf8,
            BRAND_COL: pl.Utf8,
            NAICS_CODE: pl.Utf8,
            LAT: pl.Float64,
            LON: pl.Float64,
            STATE: pl.Utf8,
            "visits": pl.Int64,
        },
    )
    state_of = dict(zip(pois[POI_ID], pois[STATE], strict=True))
    covisits = pl.DataFrame(
        {
            SRC_POI: [a for a, _, _ in _COVISITS],
            DST_POI: [b for _, b, _ in _COVISITS],
            VISITORS: [v for _, _, v in _COVISITS],
            STATE: [state_of[a] for a, _, _ in _COVISITS],
        },
        schema={SRC_POI: pl.Utf8, DST_POI: pl.Utf8, VISITORS: pl.Int64, STATE: pl.Utf8},
    )
    images = pl.DataFrame(
        {
            IMAGE_ID: [r[0] for r in _IMAGES],
            LAT: [r[1] for r in _IMAGES],
            LON: [r[2] for r in _IMAGES],
            EMBEDDING: [list(r[3]) for r in _IMAGES],
            TEXT: [r[4] for r in _IMAGES],
        },
        schema={
            IMAGE_ID: pl.Utf8,
            LAT: pl.Float64,
            LON: pl.Float64,
            EMBEDDING: pl.List(pl.Float32),
            TEXT: pl.Utf8,
        },
    )
    cells = sorted(set(latlng_to_cells(pois[LAT].to_numpy(), pois[LON].to_numpy(), 6)))
    regions = pl.DataFrame(
        {
            H3_CELL: cells,
            "population": [1000 * (i + 1) for i in range(len(cells))],
            "median_income": [50000 + 10000 * i for i in range(len(cells))],
        },
        schema={H3_CELL: pl.Utf8, "population": pl.Int64, "median_income": pl.Int64},
    )
    meta = {"generator": "geograph.testing.hand_made_world"}
    return World(pois=pois, covisits=covisits, images=images, regions=regions, meta=meta)

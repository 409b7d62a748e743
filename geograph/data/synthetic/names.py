"""Brand names of the embedded world: two words and the code's suffix ("Maple Creek Coffee")."""

from __future__ import annotations

import numpy as np
import polars as pl

from geograph.data.synthetic.catalogue import CATALOGUE

_W1 = (
    "Blue", "Red", "Golden", "Silver", "Green", "Maple", "Oak", "Pine", "Cedar", "River", "Lake",
    "Hill", "Summit", "Prairie", "Harbor", "Sunset", "Sunrise", "North", "South", "East", "West",
    "Union", "Liberty", "Eagle", "Falcon", "Bear", "Fox", "Wolf", "Bison", "Elm", "Birch", "Willow",
    "Aspen", "Canyon", "Mesa", "Coastal", "Bay", "Valley", "Ridge", "Stone", "Iron", "Copper", "Star",
    "Bright", "Happy", "Royal", "Main Street", "Park", "Village", "City", "Urban", "Metro", "Heritage",
    "Pioneer", "Frontier", "Atlas", "Beacon", "Crown", "Diamond", "Evergreen", "Magnolia", "Juniper",
    "Cardinal", "Lucky",
)  # fmt: skip
_W2 = (
    "Leaf", "Bell", "Bridge", "Field", "Grove", "Point", "Corner", "Square", "Way", "Road", "Street",
    "Path", "Gate", "Spring", "Brook", "Creek", "Meadow", "Garden", "Tree", "Rock", "Peak", "Sky",
    "Sun", "Moon", "Wave", "Wind", "House", "Barn", "Mill", "Works", "Table", "Lantern", "Anchor",
    "Arrow", "Compass", "Harvest", "Orchard", "Shore", "Trail", "Haven", "Hollow", "Crest", "Cove",
    "Landing", "Station", "Yard", "Junction", "Row",
)  # fmt: skip
N_NAME_COMBOS = len(_W1) * len(_W2)
"""Distinct word pairs; a code's brands take them in a seeded order, then repeat with " 2", " 3", ..."""


def _brand_names(kind_idx: np.ndarray, serial: np.ndarray, perms: np.ndarray) -> pl.Series:
    """Unique brand names: ``serial``-th name of the code ``kind_idx`` (vectorised)."""
    p = perms[kind_idx, serial % N_NAME_COMBOS]
    cycle = serial // N_NAME_COMBOS
    w1 = np.asarray(_W1, dtype=object)[p // len(_W2)]
    w2 = np.asarray(_W2, dtype=object)[p % len(_W2)]
    suf = np.asarray([k.suffix for k in CATALOGUE], dtype=object)[kind_idx]
    df = pl.DataFrame({"a": w1, "b": w2, "c": suf, "n": cycle}, schema_overrides={"n": pl.Int64})
    return df.select(
        pl.concat_str(
            [
                pl.col("a"),
                pl.lit(" "),
                pl.col("b"),
                pl.lit(" "),
                pl.col("c"),
                pl.when(pl.col("n") > 0).then(pl.format(" {}", pl.col("n") + 1)).otherwise(pl.lit("")),
            ]
        ).alias("brand")
    )["brand"]

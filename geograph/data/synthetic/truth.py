"""The hidden quantities of a generated world (:class:`GroundTruth`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

"""Pair features of POI pairs: distance, same brand, shared NAICS digits, intervening opportunities.

The same function gives the ``edge_attr`` of ``near`` and ``covisits`` edges at build time and
the features of any scored pair later (training pairs, what-if candidates), so a pair is
described the same way everywhere.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from geograph.constants import POI
from geograph.data.naics import code_level
from geograph.geo.sphere import chord_to_km, haversine_km_indexed, unit_xyz
from geograph.graph.geograph_data import GeoGraph

PAIR_COLUMNS = 4
"""Columns of :func:`pair_features`."""


def pair_features(graph_or_arrays, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Pair features ``[distance_km, same_brand, naics_prefix_depth, neighbour_rank]`` for POI pairs.

    ``distance_km`` is the great-circle (haversine) distance, ``same_brand`` 1 when both POIs
    carry the same brand (never for unbranded POIs), ``naics_prefix_depth`` the number of
    leading NAICS digits shared (2..6; 0 when the sectors differ; never more than the
    shorter code's level, so a short code's zero padding is not counted). ``neighbour_rank`` counts the
    intervening opportunities (Stouffer; the ``s_ij`` of the radiation model): the number of
    same-state POIs closer to one end than the other end is, the smaller of the two directions,
    capped at ``rank_k`` (the width of ``poi.knn_km``; NaN when the store has no ``knn_km``).

    Args:
        graph_or_arrays: A :class:`GeoGraph`, or any object with the POI store's ``pos``,
            ``brand``, ``naics_code`` (and optionally ``knn_km``) tensors.
        src: First POI of each pair.
        dst: Second POI of each pair.

    Shapes: ``src``, ``dst`` are ``(E,)``; returns ``(E, 4)`` float32.
    """
    store = graph_or_arrays.data[POI] if isinstance(graph_or_arrays, GeoGraph) else graph_or_arrays
    s, d = src.numpy(), dst.numpy()
    # per-node terms first (NAICS prefixes; radians and cos(lat) inside haversine_km_indexed),
    # then gather per pair: at 1M POIs / 20M pairs that is 2-3x faster than gathering first
    pos = store.pos.double().numpy()
    out = np.empty((len(s), PAIR_COLUMNS), dtype=np.float32)
    km = haversine_km_indexed(pos[:, 0], pos[:, 1], s, d)
    out[:, 0] = km
    brand = store.brand.numpy()
    out[:, 1] = (brand[s] == brand[d]) & (brand[s] >= 0)
    naics = store.naics_code.numpy()
    depth = np.zeros(len(s), dtype=np.float32)
    still = np.ones(len(s), dtype=bool)
    for lv in (2, 3, 4, 5, 6):
        prefix = (naics // 10 ** (6 - lv)).astype(np.int32)
        still &= prefix[s] == prefix[d]
        depth[still] = lv
    # a short code is stored zero-padded (3118 -> 311800): its padding digits are not shared digits
    out[:, 2] = np.minimum(depth, np.minimum(*(_code_levels(naics)[i] for i in (s, d))))
    knn = getattr(store, "knn_km", None)
    out[:, 3] = neighbour_rank(knn.numpy(), s, d, km) if knn is not None else np.nan
    return torch.from_numpy(out)


def _code_levels(naics: np.ndarray) -> np.ndarray:
    """Level (2..6) of each stored 6-digit NAICS code: the digits before a short code's padding."""
    uniq, inv = np.unique(naics, return_inverse=True)
    return np.array([code_level(f"{int(c):06d}") for c in uniq], dtype=np.float32)[inv]


def neighbour_rank(knn_km: np.ndarray, s: np.ndarray, d: np.ndarray, km: np.ndarray) -> np.ndarray:
    """``min(#{k: knn_km[s, k] < km}, #{k: knn_km[d, k] < km})`` per pair (10 cm of tolerance keeps
    the other end itself, at exactly ``km``, out), in chunks so that 1M x 32 gathers stay small."""
    out = np.empty(len(s), dtype=np.float32)
    lim = (km - 1e-4)[:, None]
    step = 1 << 18
    for a in range(0, len(s), step):
        b = a + step
        r1 = (knn_km[s[a:b]] < lim[a:b]).sum(1)
        r2 = (knn_km[d[a:b]] < lim[a:b]).sum(1)
        out[a:b] = np.minimum(r1, r2)
    return out


def same_state_knn_km(lat: np.ndarray, lon: np.ndarray, state: np.ndarray, k: int) -> np.ndarray:
    """Great-circle km to each point's ``k`` nearest same-state points, ascending (the
    ``poi.knn_km`` that :func:`neighbour_rank` counts in).

    Shapes: ``lat``, ``lon``, ``state`` ``(N,)``; returns ``(N, k)`` float32, ``inf`` where a
    state has fewer than ``k + 1`` points.
    """
    n = len(lat)
    out = np.full((n, k), np.inf, dtype=np.float32)
    if n < 2 or k == 0:
        return out
    xyz = unit_xyz(lat, lon)
    order = np.argsort(state, kind="stable")
    bounds = np.flatnonzero(np.r_[True, state[order][1:] != state[order][:-1], True])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        idx = order[lo:hi]
        kk = min(k + 1, len(idx))
        if kk < 2:
            continue
        chord, _ = cKDTree(xyz[idx]).query(xyz[idx], k=kk, workers=-1)
        chord = np.asarray(chord).reshape(len(idx), kk)[:, 1:]  # column 0 is the point itself
        out[idx, : kk - 1] = chord_to_km(chord)
    return out

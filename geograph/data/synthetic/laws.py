"""The laws of a world (they depend on the seed only, not on the size): NAICS affinity, chains, effects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geograph.data.synthetic.catalogue import AFFINITY_RULES, _sector, _validated_catalogue
from geograph.data.synthetic.config import WorldConfig
from geograph.data.synthetic.names import N_NAME_COMBOS
from geograph.geo.sphere import unit_xyz


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
    perms = np.stack([rng.permutation(N_NAME_COMBOS) for _ in cat])
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

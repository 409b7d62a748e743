"""Weights of the co-visit message edges, shared by training, the saved predictor and what-if.

Every visible co-visit row ``(a, b, visitors)`` carries ``log1p(visitors) / weight_scale`` (the
message weight; ``weight_scale`` is the mean log1p count of the non-zero training pairs) and,
with a :class:`GravityBaseline`, its residual ``log1p(visitors) - baseline(a, b)``: how many
more co-visitors the pair has than distance and the two venues' sizes predict. The model
averages those residuals per POI (``model.residual_features``), an estimate of the venue's own
pull that the numeric features do not carry. Only message edges contribute, so a scored pair
never sees its own count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geograph.constants import COVISITS, POI
from geograph.errors import ConfigError
from geograph.graph.builder import pair_features
from geograph.graph.geograph_data import GeoGraph
from geograph.graph.transforms import raw_features

MASS_FEATURES = ("visits", "raw_visitor_counts", "visitors")
"""The POI features ``model.mass_feature: auto`` takes as mass, first present first: the
embedded world's and ``geograph world``'s ``visits``, an imported Patterns file's
``raw_visitor_counts``, a POI table's ``visitors``."""


def resolve_mass_feature(mass_feature: str, graph: GeoGraph) -> str:
    """The POI feature ``mass_feature`` names on ``graph``: itself, or for ``"auto"`` the first
    of :data:`MASS_FEATURES` the POIs have (``"none"`` when they have none: no mass, the
    gravity model then has distance alone).

    Raises:
        ConfigError: ``mass_feature`` names a feature the POIs do not have.
    """
    names = graph.index["poi_feature_names"]
    if mass_feature == "auto":
        return next((f for f in MASS_FEATURES if f in names), "none")
    if mass_feature != "none" and mass_feature not in names:
        raise ConfigError(f"model.mass_feature {mass_feature!r} is not a POI feature; have {names}")
    return mass_feature


def log_mass(mass_feature: str, graph: GeoGraph, idx: Tensor) -> np.ndarray:
    """``log1p`` of the POI feature used as mass (raw, clipped at 0) for POIs ``idx``; zeros for
    ``"none"`` (see :func:`resolve_mass_feature` for ``"auto"``)."""
    name = resolve_mass_feature(mass_feature, graph)
    if name == "none":
        return np.zeros(idx.numel(), dtype=np.float64)
    raw = raw_features(graph.data[POI])[:, graph.index["poi_feature_names"].index(name)].double().numpy()
    return np.log1p(np.clip(np.nan_to_num(raw[idx.numpy()]), 0, None))


def gravity_design(mass_feature: str, graph: GeoGraph, src: Tensor, dst: Tensor, pf: Tensor | None = None) -> np.ndarray:
    """``[log1p km, log1p mass_src, log1p mass_dst]`` per pair; ``(E, 3)`` float64."""
    pf = pair_features(graph, src, dst) if pf is None else pf
    dist = np.log1p(pf[:, 0].double().numpy())
    return np.stack([dist, log_mass(mass_feature, graph, src), log_mass(mass_feature, graph, dst)], axis=1)


@dataclass
class GravityBaseline:
    """Least-squares ``log1p(visitors) ~ c0 + c . [log1p km, log1p mass_src, log1p mass_dst]``.

    Fitted on training pairs through the normal equations, so ranks holding different states can
    add up their ``A^T A`` and ``A^T y`` and solve the same system as one process.
    """

    coef: list[float]  # intercept first
    mass_feature: str = "visits"

    @staticmethod
    def normal_equations(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.hstack([np.ones((len(x), 1)), x])
        return a.T @ a, a.T @ y

    @classmethod
    def solve(cls, ata: np.ndarray, aty: np.ndarray, mass_feature: str = "visits") -> GravityBaseline:
        # least squares on the normal equations: a degenerate design (constant masses, a single
        # pair) gets the minimum-norm solution instead of an error
        coef = np.linalg.lstsq(ata, aty, rcond=None)[0]
        return cls([float(c) for c in coef], mass_feature)

    @classmethod
    def fit(cls, graph: GeoGraph, src: Tensor, dst: Tensor, visitors: Tensor, mass_feature: str = "visits",
            pf: Tensor | None = None) -> GravityBaseline:
        mass_feature = resolve_mass_feature(mass_feature, graph)  # a saved baseline names its column
        x = gravity_design(mass_feature, graph, src, dst, pf)
        return cls.solve(*cls.normal_equations(x, np.log1p(visitors.double().numpy())), mass_feature)

    def predict(self, graph: GeoGraph, src: Tensor, dst: Tensor, pf: Tensor | None = None) -> np.ndarray:
        x = gravity_design(self.mass_feature, graph, src, dst, pf)
        return self.coef[0] + x @ np.asarray(self.coef[1:])


class MessageWeights:
    """Weights of co-visit rows of one graph: ``weights(msg)`` is ``(M,)`` message weights, or
    ``(M, 2)`` ``[weight, residual]`` with a ``baseline``. The graph's rows are sorted once here,
    not at every call (a graph is asked once per state group and split)."""

    def __init__(self, graph: GeoGraph, weight_scale: float, baseline: GravityBaseline | None = None) -> None:
        self.graph, self.weight_scale, self.baseline = graph, weight_scale, baseline
        store = graph.data[POI, COVISITS, POI]
        n = graph.num_pois
        keys = (store.edge_index[0] * n + store.edge_index[1]).numpy()
        order = np.argsort(keys)
        self._keys, self._vis = keys[order], store.visitors.numpy()[order]

    def visitors(self, msg: Tensor) -> np.ndarray:
        """Visitors of the co-visit rows ``msg`` (``(2, M)`` indices of rows of the graph)."""
        if len(self._vis) == 0:
            return np.zeros(msg.size(1), dtype=np.int64)
        pos = np.searchsorted(self._keys, (msg[0] * self.graph.num_pois + msg[1]).numpy())
        return self._vis[np.clip(pos, 0, len(self._vis) - 1)]

    def __call__(self, msg: Tensor) -> Tensor:
        vis = self.visitors(msg)
        w = torch.log1p(torch.from_numpy(vis).float()) / self.weight_scale  # float32, as models were trained
        if self.baseline is None:
            return w
        r = np.log1p(vis.astype(np.float64)) - self.baseline.predict(self.graph, msg[0], msg[1]) if msg.size(1) else np.zeros(0)
        return torch.stack([w, torch.from_numpy(r).float()], dim=1)


def message_weights(graph: GeoGraph, msg: Tensor, weight_scale: float, baseline: GravityBaseline | None = None) -> Tensor:
    """One-off :class:`MessageWeights` call: ``(M,)`` weights, or ``(M, 2)`` with a ``baseline``."""
    return MessageWeights(graph, weight_scale, baseline)(msg)

"""Transforms fitted on training data only, applied to any graph.

``FeaturePreprocessor`` standardises numeric POI and cell features (mean / std of the
training nodes; missing values become the training mean, i.e. 0 after scaling) and turns
6-digit NAICS codes into per-level vocabulary indices (2, 3, 4, 5, 6 digits) fitted on the
training POIs. A code unseen in training keeps the indices of its seen ancestors and gets
0 ("unknown") at the unseen levels, so it falls back to its parent level.

Like PyG transforms, it never changes its input: ``transform`` returns a new graph.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from geograph.constants import CELL, POI
from geograph.data.naics import NAICSVocabulary
from geograph.graph.geograph_data import GeoGraph


def _fit_scale(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.numel() == 0:
        return torch.zeros(x.size(1)), torch.ones(x.size(1))
    xd = x.double()
    finite = torch.isfinite(xd)
    cnt = finite.sum(0).clamp(min=1)
    mean = torch.where(finite, xd, 0).sum(0) / cnt
    var = (torch.where(finite, xd - mean, 0) ** 2).sum(0) / cnt
    std = var.sqrt()
    std[std < 1e-12] = 1.0
    return mean.float(), std.float()


def _apply_scale(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, log: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    if log.any():
        x[:, log] = torch.sign(x[:, log]) * torch.log1p(x[:, log].abs())
    x = (x - mean) / std
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


class FeaturePreprocessor:
    """Standardise features and index NAICS codes with statistics of training nodes.

    Args:
        log_features: Apply ``sign(x) * log1p(|x|)`` before scaling to columns whose training
            values are non-negative and heavy-tailed (max > 100 x median). Default True.
    """

    def __init__(self, log_features: bool = True) -> None:
        self.log_features = log_features
        self.poi_mean = self.poi_std = self.cell_mean = self.cell_std = None
        self.poi_log = self.cell_log = None
        self.vocab = NAICSVocabulary()
        self.fitted = False

    def __repr__(self) -> str:
        return f"FeaturePreprocessor(fitted={self.fitted}, naics={self.vocab.sizes() if self.fitted else None})"

    def _heavy(self, x: torch.Tensor) -> torch.Tensor:
        if not self.log_features or x.numel() == 0:
            return torch.zeros(x.size(1), dtype=torch.bool)
        xd = torch.nan_to_num(x.double(), nan=0.0)
        nonneg = (xd >= 0).all(0)
        med = xd.median(0).values.abs().clamp(min=1e-9)
        return nonneg & (xd.max(0).values > 100 * med)

    def fit(self, graph: GeoGraph, train_poi_mask: torch.Tensor | None = None) -> FeaturePreprocessor:
        """Fit on the POIs selected by ``train_poi_mask`` (all POIs when None) and their cells."""
        p = graph.data[POI]
        mask = torch.ones(p.num_nodes, dtype=torch.bool) if train_poi_mask is None else train_poi_mask
        x = p.x_raw[mask]
        self.poi_log = self._heavy(x)
        xl = _apply_scale(x, torch.zeros(x.size(1)), torch.ones(x.size(1)), self.poi_log)
        self.poi_mean, self.poi_std = _fit_scale(xl)
        cells = torch.unique(p.cell[mask])
        cx = graph.data[CELL].x_raw[cells]
        self.cell_log = self._heavy(cx)
        cxl = _apply_scale(cx, torch.zeros(cx.size(1)), torch.ones(cx.size(1)), self.cell_log)
        self.cell_mean, self.cell_std = _fit_scale(cxl)
        codes = p.naics_code[mask].numpy()
        self.vocab = NAICSVocabulary().fit([f"{c:06d}" for c in np.unique(codes)])
        self.fitted = True
        return self

    def transform(self, graph: GeoGraph) -> GeoGraph:
        """A new graph with ``poi.x``, ``poi.naics`` (N, 5) and ``cell.x``; the input is untouched."""
        if not self.fitted:
            raise RuntimeError("FeaturePreprocessor.transform called before fit")
        out = GeoGraph(data=copy.copy(graph.data), index=graph.index, config=graph.config, stats=graph.stats)
        p = out.data[POI]
        p.x = _apply_scale(p.x_raw, self.poi_mean, self.poi_std, self.poi_log)
        p.naics = torch.from_numpy(self.vocab.transform([f"{c:06d}" for c in p.naics_code.tolist()]))
        c = out.data[CELL]
        c.x = _apply_scale(c.x_raw, self.cell_mean, self.cell_std, self.cell_log)
        return out

    def state_dict(self) -> dict:
        return {
            "log_features": self.log_features,
            "poi_mean": self.poi_mean,
            "poi_std": self.poi_std,
            "poi_log": self.poi_log,
            "cell_mean": self.cell_mean,
            "cell_std": self.cell_std,
            "cell_log": self.cell_log,
            "vocab": self.vocab.state_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> FeaturePreprocessor:
        pre = cls(log_features=state["log_features"])
        for k in ("poi_mean", "poi_std", "poi_log", "cell_mean", "cell_std", "cell_log"):
            setattr(pre, k, state[k])
        pre.vocab = NAICSVocabulary.from_state_dict(state["vocab"])
        pre.fitted = True
        return pre

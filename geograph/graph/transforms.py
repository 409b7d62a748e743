"""Transforms fitted on training data only, applied to any graph.

``FeaturePreprocessor`` standardises numeric POI and cell features (mean / std of the
training nodes; missing values become the training mean, i.e. 0 after scaling) and turns
6-digit NAICS codes into per-level vocabulary indices (2, 3, 4, 5, 6 digits) fitted on the
training POIs. A code unseen in training keeps the indices of its seen ancestors and gets
0 ("unknown") at the unseen levels, so it falls back to its parent level. Brands get an index
from the brands of the training POIs: ``brand_idx`` is 0 for an unbranded POI, 1 for a brand
no training POI carries, and ``2 + k`` for the k-th training brand.

Like PyG transforms, it never changes its input: ``transform`` returns a new graph.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from geograph.constants import CELL, POI
from geograph.data.naics import NAICSVocabulary
from geograph.distributed.reduce import Reduction
from geograph.graph.geograph_data import GeoGraph


def _fit_scale(x: torch.Tensor, red: Reduction | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    red = red or Reduction(enabled=False)
    xd = x.double()
    finite = torch.isfinite(xd)
    n = int(red.sum(torch.tensor([x.size(0)]))[0])
    if n == 0:
        return torch.zeros(x.size(1)), torch.ones(x.size(1))
    cnt = red.sum(finite.sum(0)).clamp(min=1)
    mean = red.sum(torch.where(finite, xd, 0).sum(0)) / cnt
    var = red.sum((torch.where(finite, xd - mean, 0) ** 2).sum(0)) / cnt
    std = var.sqrt()
    std[std < 1e-12] = 1.0
    return mean.float(), std.float()


def brand_names(graph: GeoGraph, mask: torch.Tensor | None = None) -> list[str]:
    """Brand names of the POIs selected by ``mask`` (all when None), unbranded ones left out."""
    p = graph.data[POI]
    names = list(graph.index.get("brands", []))
    ids = p.brand if mask is None else p.brand[mask]
    return [names[i] for i in torch.unique(ids[ids >= 0]).tolist()]


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
        self.brands: list[str] = []
        self._brand_pos: dict[str, int] = {}
        self.fitted = False

    def __repr__(self) -> str:
        return f"FeaturePreprocessor(fitted={self.fitted}, naics={self.vocab.sizes() if self.fitted else None})"

    def _heavy(self, x: torch.Tensor, red: Reduction) -> torch.Tensor:
        n = int(red.sum(torch.tensor([x.size(0)]))[0])
        if not self.log_features or n == 0 or x.size(1) == 0:
            return torch.zeros(x.size(1), dtype=torch.bool)
        xd = torch.nan_to_num(x.double(), nan=0.0)
        if len(xd):
            nonneg, top = (xd >= 0).all(0).double(), xd.max(0).values
        else:
            nonneg, top = torch.ones(x.size(1), dtype=torch.float64), torch.full((x.size(1),), -torch.inf, dtype=torch.float64)
        nonneg, top = red.min(nonneg) > 0, red.max(top)
        if red.enabled:  # exact distributed order statistic: torch's lower median is k = (n - 1) // 2
            med = red.kth_smallest(xd, torch.full((x.size(1),), (n - 1) // 2))
        else:
            med = xd.median(0).values
        return nonneg & (top > 100 * med.abs().clamp(min=1e-9))

    def fit(self, graph: GeoGraph, train_poi_mask: torch.Tensor | None = None) -> FeaturePreprocessor:
        """Fit on the POIs selected by ``train_poi_mask`` (all POIs when None) and their cells."""
        p = graph.data[POI]
        mask = torch.ones(p.num_nodes, dtype=torch.bool) if train_poi_mask is None else train_poi_mask
        cells = torch.unique(p.cell[mask])
        return self.fit_arrays(
            p.x_raw[mask], graph.data[CELL].x_raw[cells], p.naics_code[mask], brands=brand_names(graph, mask)
        )

    def fit_arrays(
        self,
        poi_x: torch.Tensor,
        cell_x: torch.Tensor,
        naics_codes: torch.Tensor,
        reduction: Reduction | None = None,
        brands: list[str] | None = None,
    ) -> FeaturePreprocessor:
        """Fit on training rows given directly, possibly spread over ranks.

        With a :class:`~geograph.distributed.Reduction` across ranks, each rank passes the rows
        of its own training states and every rank gets the statistics of all of them (sums,
        extremes and the median are reduced exactly; the NAICS vocabulary is the union), equal
        to one process fitting on the concatenated rows.

        Shapes: ``poi_x`` is ``(N, F_poi)``, ``cell_x`` ``(C, F_cell)``, ``naics_codes`` ``(N,)``
        (6-digit integers); ``brands`` the brand names of the training POIs (None: no brands).
        """
        red = reduction or Reduction(enabled=False)
        self.poi_log = self._heavy(poi_x, red)
        xl = _apply_scale(poi_x, torch.zeros(poi_x.size(1)), torch.ones(poi_x.size(1)), self.poi_log)
        self.poi_mean, self.poi_std = _fit_scale(xl, red)
        self.cell_log = self._heavy(cell_x, red)
        cxl = _apply_scale(cell_x, torch.zeros(cell_x.size(1)), torch.ones(cell_x.size(1)), self.cell_log)
        self.cell_mean, self.cell_std = _fit_scale(cxl, red)
        codes = sorted(set().union(*red.gather(np.unique(naics_codes.numpy()).tolist())))
        self.vocab = NAICSVocabulary().fit([f"{c:06d}" for c in codes])
        self._set_brands(sorted(set().union(*red.gather(sorted(set(brands or []))))))
        self.fitted = True
        return self

    def _set_brands(self, brands: list[str]) -> None:
        self.brands = list(brands)
        self._brand_pos = {b: i + 2 for i, b in enumerate(self.brands)}

    def brand_index(self, names: list[str | None]) -> torch.Tensor:
        """Brand vocabulary indices of brand names: 0 for None (unbranded), 1 for an unseen brand."""
        return torch.tensor(
            [0 if b is None else self._brand_pos.get(b, 1) for b in names], dtype=torch.long
        ).reshape(-1)

    def transform(self, graph: GeoGraph) -> GeoGraph:
        """A new graph with ``poi.x``, ``poi.naics`` (N, 5), ``poi.brand_idx`` (N,) and ``cell.x``;
        the input is untouched."""
        if not self.fitted:
            raise RuntimeError("FeaturePreprocessor.transform called before fit")
        out = GeoGraph(data=copy.copy(graph.data), index=graph.index, config=graph.config, stats=graph.stats)
        p = out.data[POI]
        p.x = _apply_scale(p.x_raw, self.poi_mean, self.poi_std, self.poi_log)
        p.naics = torch.from_numpy(self.vocab.transform([f"{c:06d}" for c in p.naics_code.tolist()]))
        names = list(graph.index.get("brands", []))
        # the graph's brand ids -> this vocabulary's indices (a brand the graph lists but training
        # never saw maps to 1)
        lut = torch.cat([torch.zeros(1, dtype=torch.long), self.brand_index(names)])
        p.brand_idx = lut[p.brand + 1] if hasattr(p, "brand") else torch.zeros(p.num_nodes, dtype=torch.long)
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
            "brands": list(self.brands),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> FeaturePreprocessor:
        pre = cls(log_features=state["log_features"])
        for k in ("poi_mean", "poi_std", "poi_log", "cell_mean", "cell_std", "cell_log"):
            setattr(pre, k, state[k])
        pre.vocab = NAICSVocabulary.from_state_dict(state["vocab"])
        pre._set_brands(state.get("brands", []))  # preprocessors saved before brands had none
        pre.fitted = True
        return pre

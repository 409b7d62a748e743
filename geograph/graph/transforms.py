"""Transforms fitted on training data only, applied to any graph.

``FeaturePreprocessor`` standardises numeric POI and cell features (mean / std of the
training nodes; missing values become the training mean, i.e. 0 after scaling) and turns
6-digit NAICS codes into per-level vocabulary indices (2, 3, 4, 5, 6 digits) fitted on the
training POIs. A code unseen in training keeps the indices of its seen ancestors and gets
0 ("unknown") at the unseen levels, so it falls back to its parent level. Brands get an index
from the brands of the training POIs: ``brand_idx`` is 0 for an unbranded POI, 1 for a brand
no training POI carries, and ``2 + k`` for the k-th training brand.

It is a PyG :class:`~torch_geometric.transforms.BaseTransform`: ``pre(graph)`` (or
``pre.forward(graph)``, ``pre.transform(graph)``) returns a transformed copy, with the model
inputs in ``poi.x`` / ``cell.x`` and the builder's values kept as ``x_unscaled``; the input is
never changed. It takes a :class:`GeoGraph` or a ``HeteroData`` (whose brand names, needed
for ``brand_idx``, are then read from ``data.brand_names``).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch_geometric.data import HeteroData
from torch_geometric.data.storage import NodeStorage
from torch_geometric.transforms import BaseTransform

from geograph.constants import CELL, POI
from geograph.data.naics import NAICSVocabulary
from geograph.distributed.reduce import Reduction
from geograph.graph.geograph_data import UNSCALED_X, GeoGraph

BRAND_NAMES = "brand_names"
"""Graph-level attribute of a ``HeteroData`` that lists the names ``poi.brand`` indexes."""


def raw_features(store: NodeStorage) -> torch.Tensor:
    """The builder's features of a node store: ``x_unscaled`` once a
    :class:`FeaturePreprocessor` has standardised ``x``, else ``x``.

    Works on built and on preprocessed graphs alike (e.g. the gravity baseline's mass feature,
    or what-if medians, read raw values from a model's preprocessed graph).
    """
    return store[UNSCALED_X] if UNSCALED_X in store else store.x


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


class FeaturePreprocessor(BaseTransform):
    """Standardise features and index NAICS codes with statistics of training nodes.

    Args:
        log_features: Apply ``sign(x) * log1p(|x|)`` before scaling to columns whose training
            values are non-negative and heavy-tailed (max > 100 x median). Default True.

    Example:
        >>> pre = FeaturePreprocessor().fit(graph, train_poi_mask)
        >>> model_input = pre(graph)        # a new graph; ``graph`` is unchanged
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
            raw_features(p)[mask],
            raw_features(graph.data[CELL])[cells],
            p.naics_code[mask],
            brands=brand_names(graph, mask),
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

    def scale_poi(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs of raw POI features (log where fitted, standardise, missing -> 0).

        Shapes: ``x`` ``(N, F_poi)``; returns ``(N, F_poi)`` float32.
        """
        return _apply_scale(x, self.poi_mean, self.poi_std, self.poi_log)

    def scale_cell(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs of raw cell features. Shapes: ``x`` ``(C, F_cell)``; returns ``(C, F_cell)``."""
        return _apply_scale(x, self.cell_mean, self.cell_std, self.cell_log)

    def forward(self, data: GeoGraph | HeteroData) -> GeoGraph | HeteroData:
        """A new graph with ``poi.x``, ``poi.naics`` (N, 5), ``poi.brand_idx`` (N,) and ``cell.x``
        standardised or indexed, and the builder's features kept as ``x_unscaled``; the input
        is untouched.

        Args:
            data: A built :class:`GeoGraph` (returns a :class:`GeoGraph`), or a ``HeteroData``
                (returns a ``HeteroData``; with branded POIs it needs ``data.brand_names``).

        Raises:
            RuntimeError: called before :meth:`fit`.
            TypeError: ``data`` is neither a :class:`GeoGraph` nor a ``HeteroData``.
            ValueError: a ``HeteroData`` with branded POIs but no ``brand_names``.
        """
        if not self.fitted:
            raise RuntimeError("FeaturePreprocessor.transform called before fit")
        if isinstance(data, GeoGraph):
            out = self._transform_data(data.data, list(data.index.get("brands", [])))
            return GeoGraph(data=out, index=data.index, config=data.config, stats=data.stats)
        if isinstance(data, HeteroData):
            names = data[BRAND_NAMES] if BRAND_NAMES in data else None
            return self._transform_data(data, None if names is None else list(names))
        raise TypeError(f"FeaturePreprocessor takes a GeoGraph or a HeteroData, got {type(data).__name__}")

    def transform(self, graph: GeoGraph) -> GeoGraph:
        """The same as :meth:`forward` (the name used before it was a PyG transform)."""
        return self.forward(graph)

    def _transform_data(self, data: HeteroData, brands: list[str] | None) -> HeteroData:
        out = copy.copy(data)  # new stores: setting attributes below leaves ``data`` as it was
        p = out[POI]
        raw = raw_features(p)
        p.x = self.scale_poi(raw)
        p[UNSCALED_X] = raw
        p.naics = torch.from_numpy(self.vocab.transform([f"{c:06d}" for c in p.naics_code.tolist()]))
        if "brand" in p:
            if brands is None:
                if bool((p.brand >= 0).any()):
                    raise ValueError(
                        "FeaturePreprocessor needs the brand names of a HeteroData with branded POIs: "
                        f"set data.{BRAND_NAMES} = graph.index['brands'], or transform the GeoGraph"
                    )
                brands = []
            # the graph's brand ids -> this vocabulary's indices (a brand the graph lists but
            # training never saw maps to 1)
            lut = torch.cat([torch.zeros(1, dtype=torch.long), self.brand_index(brands)])
            p.brand_idx = lut[p.brand + 1]
        else:
            p.brand_idx = torch.zeros(p.num_nodes, dtype=torch.long)
        c = out[CELL]
        raw = raw_features(c)
        c.x = self.scale_cell(raw)
        c[UNSCALED_X] = raw
        return out

    def state_dict(self) -> dict:
        """The fitted statistics: tensors, lists and numbers only (saved in model bundles)."""
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

    def load_state_dict(self, state: dict) -> FeaturePreprocessor:
        """Take the fitted statistics of :meth:`state_dict`; returns ``self``."""
        self.log_features = state["log_features"]
        for k in ("poi_mean", "poi_std", "poi_log", "cell_mean", "cell_std", "cell_log"):
            setattr(self, k, state[k])
        self.vocab = NAICSVocabulary.from_state_dict(state["vocab"])
        self._set_brands(state.get("brands", []))  # preprocessors saved before brands had none
        self.fitted = True
        return self

    @classmethod
    def from_state_dict(cls, state: dict) -> FeaturePreprocessor:
        """A fitted preprocessor from :meth:`state_dict`."""
        return cls(log_features=state["log_features"]).load_state_dict(state)

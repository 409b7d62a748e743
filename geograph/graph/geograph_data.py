"""``GeoGraph``: a PyG ``HeteroData`` plus the id tables that map node indices back to the data.

The ``HeteroData`` carries tensors only; the string ids (POI ids, H3 cells, image ids, state
codes, brands, feature names) live in :attr:`GeoGraph.index`. ``to_state`` / ``from_state``
turn a graph into plain tensors, lists and dicts, so caches load with
``torch.load(weights_only=True)`` and nothing is unpickled.

Node features are ``x``. A graph passed through
:class:`~geograph.graph.transforms.FeaturePreprocessor` has the model inputs in ``x`` and keeps
the builder's values as ``x_unscaled`` (:data:`UNSCALED_X`). Graphs saved before that
convention stored the builder's values as ``x_raw``: :meth:`GeoGraph.from_state` renames it on
load, so older caches and model bundles keep working.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch_geometric.data import HeteroData

from geograph.constants import CELL, POI

UNSCALED_X = "x_unscaled"
"""Node attribute holding the builder's features once ``x`` has been standardised."""

LEGACY_RAW_X = "x_raw"
"""Node attribute of the builder's features in graphs saved before they moved to ``x``."""


def edge_key(edge_type: tuple[str, str, str]) -> str:
    return "__".join(edge_type)


def parse_edge_key(key: str) -> tuple[str, str, str]:
    src, rel, dst = key.split("__")
    return src, rel, dst


@dataclass
class GeoGraph:
    """A built graph.

    Attributes:
        data: The heterogeneous graph (node types ``poi``, ``cell``, ``image``).
        index: Id tables: ``poi_ids``, ``cell_ids``, ``image_ids``, ``states``, ``brands``,
            ``poi_feature_names``, ``cell_feature_names``, ``naics_codes`` (6-digit strings per POI).
        config: The :class:`~geograph.graph.config.GraphConfig` as a dict.
        stats: Build counts (dropped self-loops, summed duplicates, ...).
    """

    data: HeteroData
    index: dict[str, list]
    config: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    @property
    def num_pois(self) -> int:
        return int(self.data[POI].num_nodes)

    @property
    def num_cells(self) -> int:
        return int(self.data[CELL].num_nodes)

    def to_state(self) -> dict:
        """Plain-container form: tensors, lists, dicts and numbers only."""
        nodes = {nt: {k: v for k, v in self.data[nt].items()} for nt in self.data.node_types}
        for nt in self.data.node_types:
            nodes[nt]["num_nodes"] = int(self.data[nt].num_nodes)
        edges = {edge_key(et): dict(self.data[et].items()) for et in self.data.edge_types}
        return {
            "nodes": nodes,
            "edges": edges,
            "index": self.index,
            "config": self.config,
            "stats": self.stats,
        }

    @classmethod
    def from_state(cls, state: dict) -> GeoGraph:
        data = HeteroData()
        for nt, attrs in state["nodes"].items():
            for k, v in _upgrade_node_attrs(attrs).items():
                data[nt][k] = v
        for key, attrs in state["edges"].items():
            et = parse_edge_key(key)
            for k, v in attrs.items():
                data[et][k] = v
        return cls(data=data, index=state["index"], config=state["config"], stats=state["stats"])

    def summary(self) -> dict[str, int]:
        out = {f"nodes[{nt}]": int(self.data[nt].num_nodes) for nt in self.data.node_types}
        out.update({f"edges[{edge_key(et)}]": int(self.data[et].edge_index.size(1)) for et in self.data.edge_types})
        return out

    def schema(self) -> dict[str, list[dict]]:
        """Node and edge types with their sizes and feature widths (JSON-ready).

        Returns:
            ``{"nodes": [...], "edges": [...]}``. A node row has ``type``, ``count``, ``x_width``
            (columns of ``x``; None without ``x``) and ``attrs`` (the other tensors, e.g.
            ``"pos[2]"``, ``"state"``: a width in brackets when a tensor has more than one
            column). An edge row has ``src``, ``relation``, ``dst``, ``count``,
            ``edge_attr_width`` (columns of ``edge_attr``; None without it) and ``attrs`` (the
            other tensors besides ``edge_index``, e.g. ``"edge_weight"``, ``"visitors"``).
        """
        nodes = [
            {
                "type": nt,
                "count": int(self.data[nt].num_nodes),
                "x_width": _width(self.data[nt], "x"),
                "attrs": _attrs(self.data[nt], ("x",)),
            }
            for nt in self.data.node_types
        ]
        edges = [
            {
                "src": et[0],
                "relation": et[1],
                "dst": et[2],
                "count": int(self.data[et].edge_index.size(1)),
                "edge_attr_width": _width(self.data[et], "edge_attr"),
                "attrs": _attrs(self.data[et], ("edge_index", "edge_attr")),
            }
            for et in self.data.edge_types
        ]
        return {"nodes": nodes, "edges": edges}

    def __repr__(self) -> str:
        parts = ", ".join(f"{nt}={int(self.data[nt].num_nodes)}" for nt in self.data.node_types)
        return f"GeoGraph({parts}, edge_types={len(self.data.edge_types)})"


def _width(store: object, key: str) -> int | None:
    """Columns of the tensor ``store[key]`` (1 for a vector), None when absent."""
    value = getattr(store, key, None)
    if not isinstance(value, torch.Tensor):
        return None
    return int(value.size(1)) if value.dim() > 1 else 1


def _attrs(store: object, skip: tuple[str, ...]) -> list[str]:
    """The store's tensors other than ``skip``: ``name`` or ``name[width]`` for a matrix."""
    out = []
    for key, value in store.items():  # type: ignore[attr-defined]
        if key in skip or not isinstance(value, torch.Tensor):
            continue
        out.append(f"{key}[{'x'.join(str(d) for d in value.shape[1:])}]" if value.dim() > 1 else key)
    return out


def _upgrade_node_attrs(attrs: dict) -> dict:
    """Node attributes of a graph saved with ``x_raw``, renamed to today's names: ``x`` for a
    built graph, ``x_unscaled`` for a preprocessed one (which also has ``x``)."""
    if LEGACY_RAW_X not in attrs:
        return attrs
    attrs = dict(attrs)
    raw = attrs.pop(LEGACY_RAW_X)
    attrs[UNSCALED_X if "x" in attrs else "x"] = raw
    return attrs


def empty_long(n: int = 0) -> torch.Tensor:
    return torch.zeros((2, n), dtype=torch.long)

"""Heterogeneous graph construction: builder, transforms, leak-free splits, state partitioning.

``geograph.graph`` is the one place that turns tables into PyG ``HeteroData``: nodes
(:mod:`~geograph.graph.nodes`), edges (:mod:`~geograph.graph.edges`), pair features
(:mod:`~geograph.graph.pairs`), the top-level :func:`build_graph`, and :func:`insert_poi` for
adding a hypothetical POI to a built graph with the same settings.
"""

from geograph.graph.builder import build_graph
from geograph.graph.cache import cached_build
from geograph.graph.config import GraphConfig
from geograph.graph.dataset import GeoGraphDataset
from geograph.graph.export import to_networkx
from geograph.graph.geograph_data import GeoGraph
from geograph.graph.insert import PoiInserter, PoiInsertion, insert_poi
from geograph.graph.pairs import PAIR_COLUMNS, pair_features
from geograph.graph.partition import StatePartitioner, StateSubgraph
from geograph.graph.split import CovisitSplit, PairSet, sample_zero_pairs, split_covisits
from geograph.graph.transforms import FeaturePreprocessor, raw_features

__all__ = [
    "GraphConfig",
    "GeoGraph",
    "build_graph",
    "cached_build",
    "pair_features",
    "PAIR_COLUMNS",
    "insert_poi",
    "PoiInserter",
    "PoiInsertion",
    "GeoGraphDataset",
    "to_networkx",
    "StatePartitioner",
    "StateSubgraph",
    "CovisitSplit",
    "PairSet",
    "sample_zero_pairs",
    "split_covisits",
    "FeaturePreprocessor",
    "raw_features",
]

"""Heterogeneous graph construction: builder, transforms, leak-free splits, state partitioning."""

from geograph.graph.builder import build_graph, pair_features
from geograph.graph.cache import cached_build
from geograph.graph.config import GraphConfig
from geograph.graph.dataset import GeoGraphDataset
from geograph.graph.export import to_networkx
from geograph.graph.geograph_data import GeoGraph
from geograph.graph.partition import StatePartitioner, StateSubgraph
from geograph.graph.split import CovisitSplit, PairSet, sample_zero_pairs, split_covisits
from geograph.graph.transforms import FeaturePreprocessor

__all__ = [
    "GraphConfig",
    "GeoGraph",
    "build_graph",
    "cached_build",
    "pair_features",
    "GeoGraphDataset",
    "to_networkx",
    "StatePartitioner",
    "StateSubgraph",
    "CovisitSplit",
    "PairSet",
    "sample_zero_pairs",
    "split_covisits",
    "FeaturePreprocessor",
]

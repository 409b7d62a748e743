"""Neural network modules: NAICS encoder, weighted SAGE convolution, co-visitation GNN."""

from geograph.nn.covisit_model import CovisitGNN, EdgeHead, ModelConfig, location_encoding
from geograph.nn.naics_encoder import NAICSEncoder
from geograph.nn.place_graph import place_graph, propagate_values
from geograph.nn.query_retrieval import QueryRetrievalAugmentation
from geograph.nn.weighted_sage_conv import WeightedSAGEConv

__all__ = [
    "CovisitGNN",
    "EdgeHead",
    "ModelConfig",
    "NAICSEncoder",
    "QueryRetrievalAugmentation",
    "WeightedSAGEConv",
    "location_encoding",
    "place_graph",
    "propagate_values",
]

"""Neural network modules: NAICS encoder, heterogeneous and weighted SAGE layers, co-visitation GNN."""

from geograph.nn.covisit_model import CovisitGNN, EdgeHead, ModelConfig, location_encoding
from geograph.nn.dropout import Dropout
from geograph.nn.hetero_sage import HeteroSAGE
from geograph.nn.naics_encoder import NAICSEncoder
from geograph.nn.place_graph import place_graph, propagate_values
from geograph.nn.place_graph_refiner import PlaceGraphRefiner
from geograph.nn.query_retrieval import QueryRetrievalAugmentation, mix_values, retrieval_neighbours
from geograph.nn.weighted_sage_conv import Adjacency, WeightedSAGEConv

__all__ = [
    "Adjacency",
    "CovisitGNN",
    "Dropout",
    "EdgeHead",
    "HeteroSAGE",
    "ModelConfig",
    "NAICSEncoder",
    "PlaceGraphRefiner",
    "QueryRetrievalAugmentation",
    "WeightedSAGEConv",
    "location_encoding",
    "mix_values",
    "place_graph",
    "propagate_values",
    "retrieval_neighbours",
]

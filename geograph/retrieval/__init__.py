"""Retrieval: galleries of candidate coordinates, exact (and optional approximate) top-k search, KDE,
the contrastive head."""

from geograph.retrieval.ann import IVFIndex, SearchOptions
from geograph.retrieval.cells import CellGeolocator
from geograph.retrieval.gallery import GALLERY_SOURCES, Gallery, geoclip_gallery_path
from geograph.retrieval.head import RetrievalHead
from geograph.retrieval.kde import kde_mode, product_kde_mode, weighted_mode
from geograph.retrieval.knn import KNNGeolocator
from geograph.retrieval.predictor import GeoPredictor, Prediction, build_gallery_keys
from geograph.retrieval.search import chunked_topk, loop_topk

__all__ = [
    "CellGeolocator",
    "GALLERY_SOURCES",
    "Gallery",
    "GeoPredictor",
    "IVFIndex",
    "KNNGeolocator",
    "Prediction",
    "RetrievalHead",
    "SearchOptions",
    "build_gallery_keys",
    "chunked_topk",
    "geoclip_gallery_path",
    "kde_mode",
    "loop_topk",
    "product_kde_mode",
    "weighted_mode",
]

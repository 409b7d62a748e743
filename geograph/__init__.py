"""geograph: geospatial graph learning on PyTorch Geometric.

POIs, H3 cells and geotagged images as one heterogeneous graph; NAICS-aware co-visitation
prediction and image/text-to-GPS geolocation; every run tracked in MLflow.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

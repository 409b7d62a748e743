"""geograph: geospatial graph learning on PyTorch Geometric.

POIs, H3 cells and geotagged images as one heterogeneous graph; NAICS-aware co-visitation
prediction and image/text-to-GPS geolocation; every run tracked in MLflow.
"""

import os as _os

# Intel MKL (torch's CPU BLAS) splits the inner dimension of a matrix product over threads
# when the output is small (weight gradients), so its sums, and every trained number,
# change with the thread count. Strict conditional numerical reproducibility makes its
# results independent of the thread count; MKL reads the setting at its first call, so it
# is set here, before geograph runs any torch code. A value the user set is kept.
# See geograph.utils.determinism and the reliability guide.
_os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
# cuBLAS needs a fixed workspace to be deterministic under torch.use_deterministic_algorithms.
_os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

__version__ = "0.1.0"

__all__ = ["__version__"]

"""Same seed, same numbers, whatever the CPU thread count.

Three things make a CPU training run depend on ``torch.set_num_threads``:

- Intel MKL (torch's CPU BLAS) splits the inner dimension of small-output matrix
  products (weight gradients) over threads. ``MKL_CBWR=AUTO,STRICT`` (strict conditional
  numerical reproducibility) removes that; ``geograph/__init__.py`` sets it before any
  torch code runs, unless the user set another value.
- The fused ``layer_norm`` backward sums its affine gradients per thread:
  :class:`geograph.nn.norm.LayerNorm` avoids it.
- Scatter / index-add kernels that accumulate in a thread-dependent order:
  :func:`deterministic_algorithms` selects torch's deterministic kernels while geograph
  trains.

What is not covered: a GPU (CUDA kernels have their own limits; see the reliability
guide), and MKL when torch ran a matrix product before ``geograph`` was imported with
``MKL_CBWR`` unset (MKL fixes its mode at its first call; every run logs the value in
its ``geograph.mkl_cbwr`` tag).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

#: The MKL mode geograph asks for (see the module docstring).
MKL_CBWR_MODE = "AUTO,STRICT"


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Use torch's deterministic kernels inside the block; the previous setting after it.

    ``warn_only``: an operation without a deterministic kernel warns instead of failing
    (none in geograph's CPU paths).
    """
    before = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)


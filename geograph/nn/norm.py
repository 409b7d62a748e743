"""Normalisation layers whose gradients do not depend on the number of CPU threads.

PyTorch's fused CPU ``layer_norm`` backward sums the weight and bias gradients in one
buffer per thread and then adds the buffers, so the last bits of those gradients (and
everything trained after the first step) change with ``torch.set_num_threads``: with
1 and 2 threads the same seed gives different R² from the fourth decimal on. The layer
below normalises with the fused kernel (no affine part; its input gradient is computed
row by row) and applies the affine part as plain tensor ops, whose gradients autograd
reduces over the batch dimension one output column at a time: the same sums in the same
order for any thread count. It costs one extra element-wise pass per call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LayerNorm(nn.LayerNorm):
    """:class:`torch.nn.LayerNorm` with thread-count-independent gradients.

    Same parameters and state-dict keys as :class:`torch.nn.LayerNorm` (a checkpoint of
    one loads into the other); outputs equal to the fused layer's up to float rounding.

    Shapes:
        input ``(*, normalized_shape)``; output the same shape.
    """

    def forward(self, x: Tensor, scale: float | None = None) -> Tensor:
        """Normalise ``x``; with ``scale``, the output times ``scale`` (folded into the affine
        parameters, so it costs no pass over ``x``)."""
        y = F.layer_norm(x, self.normalized_shape, None, None, self.eps)
        w, b = self.weight, self.bias
        if scale is not None:
            if w is None and b is None:
                return y * scale
            w = w * scale if w is not None else None
            b = b * scale if b is not None else None
        if w is not None and b is not None:
            return torch.addcmul(b, y, w)  # one pass for y * w + b
        if w is not None:
            return y * w
        return y + b if b is not None else y

"""Dropout whose mask costs one random 64-bit draw per four elements on CPU.

``torch.nn.functional.dropout`` on CPU draws one Bernoulli sample per element (``bernoulli_``),
which made it the most expensive elementwise op of a co-visit training step: 15.4 ms for a
20,000 x 64 tensor, ten times a 64 x 64 matmul of the same tensor. Four 16-bit slices of each
random 64-bit integer from torch's generator give the same mask distribution with the drop
probability rounded to a multiple of 1 / 65,536 (0.1 becomes 0.100006), in 4.3 ms. The draws come
from torch's global generator, so ``torch.manual_seed`` fixes them as it fixes ``F.dropout``'s.
On other devices, where ``F.dropout`` is a fused kernel, :class:`Dropout` calls it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_LEVELS = 1 << 16


class _MaskedScale(torch.autograd.Function):
    # the mask is kept as uint8 (1 byte per element, as F.dropout's bool mask): multiplying a float
    # tensor by uint8 takes a fast path that multiplying it by bool does not (2.3 against 0.9 ms
    # for a 20,000 x 64 tensor here)
    @staticmethod
    def forward(ctx, x: Tensor, keep: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        keep = keep.view(torch.uint8)
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.mul(x, keep).mul_(scale)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        return torch.mul(grad, keep).mul_(ctx.scale), None, None


class _ReLUKeep(torch.autograd.Function):
    # relu(z) with the dropped elements zeroed, unscaled; the output is kept for the backward pass
    # (its positive elements are those that pass the gradient), so the pair costs one pass over the
    # tensor each way where ReLU and dropout take three each
    @staticmethod
    def forward(ctx, z: Tensor, keep: Tensor) -> Tensor:  # type: ignore[override]
        # times the uint8 mask out of place (an in-place product converts the mask to float first)
        out = torch.mul(z, keep.view(torch.uint8)).relu_()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, out, 0), None


def relu_dropout_scale(p: float, training: bool, device: torch.device) -> float | None:
    """The scale :func:`relu_keep` leaves to the caller (``1 / (1 - p')``, see :func:`keep_mask`),
    or ``None`` where it does not apply (evaluation, ``p == 0``, devices other than the CPU, where
    ``F.dropout`` runs): the caller then uses ReLU and :class:`Dropout`."""
    if not training or p == 0.0 or device.type != "cpu" or p >= 1.0 - 1.0 / _LEVELS:
        return None
    return _LEVELS / (_LEVELS - round(p * _LEVELS))


def relu_keep(z: Tensor, p: float) -> Tensor:
    """``dropout(relu(z), p) / scale``: ReLU and the CPU dropout mask of :func:`keep_mask` in one
    pass, without the scale, which the caller folds into the weights around it (the affine part
    of a norm before, or the next linear layer after), as :func:`relu_dropout_scale` gives it.
    The mask is drawn as :func:`dropout` draws it, so the same seed drops the same elements."""
    keep, _ = keep_mask(z.shape, p, z.device)
    return _ReLUKeep.apply(z, keep)


def keep_mask(shape: torch.Size, p: float, device: torch.device | None = None) -> tuple[Tensor, float]:
    """A boolean mask of ``shape`` keeping each element with probability ``1 - p'`` and the scale
    ``1 / (1 - p')``, where ``p'`` is ``p`` rounded to a multiple of 1 / 65,536."""
    n = 1
    for s in shape:
        n *= int(s)
    drop = round(p * _LEVELS)
    bits = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    r = bits.view(torch.int16)[:n].view(shape)
    return r >= drop - _LEVELS // 2, _LEVELS / (_LEVELS - drop)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``F.dropout(x, p, training)`` with the CPU mask of :func:`keep_mask`."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0 - 1.0 / _LEVELS:
        return torch.nn.functional.dropout(x, p, training)
    keep, scale = keep_mask(x.shape, p, x.device)
    return _MaskedScale.apply(x, keep, scale)


class Dropout(nn.Module):
    """``nn.Dropout`` with the faster CPU mask of :func:`dropout`."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"

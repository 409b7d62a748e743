"""The interface every location encoder implements: ``(N, 2)`` degrees in, ``(N, D)`` out."""

from __future__ import annotations

import torch
from torch import nn


class LocationEncoderBase(nn.Module):
    """Base class of geograph's location encoders.

    Subclasses set :attr:`out_dim`, implement :meth:`encode` on a validated ``(N, 2)``
    ``(latitude, longitude)`` tensor in degrees, and :meth:`reset_parameters`.

    Attributes:
        out_dim: Size ``D`` of the embedding :meth:`forward` returns.
    """

    out_dim: int

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        """Embed coordinates.

        Args:
            latlon: ``(latitude, longitude)`` in degrees.

        Shapes:
            ``latlon``: ``(N, 2)``; returns ``(N, out_dim)``.
        """
        if latlon.dim() != 2 or latlon.shape[-1] != 2:
            raise ValueError(f"latlon must have shape (N, 2) in degrees, got {tuple(latlon.shape)}")
        if not latlon.is_floating_point():
            latlon = latlon.float()
        return self.encode(latlon)

    def encode(self, latlon: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset_parameters(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def freeze(self) -> LocationEncoderBase:
        """Stop gradients into every parameter (returns ``self``)."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    @property
    def trainable(self) -> bool:
        """True when at least one parameter requires a gradient."""
        return any(p.requires_grad for p in self.parameters())

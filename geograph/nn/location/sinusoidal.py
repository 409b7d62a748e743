"""A plain multi-scale sinusoidal location encoder (baseline).

Transformer-style sin/cos features of latitude and longitude at geometrically spaced
frequencies, as in Mai et al., "Multi-Scale Representation Learning for Spatial Feature
Distributions using Grid Cells" (Space2Vec), https://arxiv.org/abs/2003.00824 , plus the unit
xyz vector, followed by an optional MLP.
"""

from __future__ import annotations

import torch
from torch import nn

from geograph.geo.sphere import latlon_to_xyz
from geograph.nn.location.base import LocationEncoderBase


class SinusoidalLocationEncoder(LocationEncoderBase):
    """``[xyz, sin(f_k lat), cos(f_k lat), sin(f_k lon), cos(f_k lon)]`` -> MLP.

    Frequencies ``f_k`` (on radians) run geometrically from ``min_freq`` to ``max_freq``;
    ``max_freq = 512`` resolves about ``2*pi*6371/512 = 78`` km of longitude at the equator.

    Args:
        num_frequencies: Frequencies per coordinate (default 16).
        min_freq: Lowest frequency (default 1).
        max_freq: Highest frequency (default 512).
        hidden: MLP width (default 512); ``0`` returns the raw features.
        out_dim: Embedding size with an MLP (default 256); ignored when ``hidden == 0``.
        seed: Initialisation seed (default 0).
    """

    def __init__(
        self,
        num_frequencies: int = 16,
        min_freq: float = 1.0,
        max_freq: float = 512.0,
        hidden: int = 512,
        out_dim: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_frequencies < 1 or not 0 < min_freq <= max_freq:
            raise ValueError(
                f"need num_frequencies >= 1 and 0 < min_freq <= max_freq, got "
                f"{num_frequencies}, {min_freq}, {max_freq}"
            )
        self.num_frequencies, self.min_freq, self.max_freq = num_frequencies, min_freq, max_freq
        self.hidden, self.seed = hidden, seed
        ratio = (max_freq / min_freq) ** (1.0 / max(num_frequencies - 1, 1))
        self.register_buffer("freqs", min_freq * ratio ** torch.arange(num_frequencies, dtype=torch.float64))
        self.feat_dim = 3 + 4 * num_frequencies
        if hidden > 0:
            self.mlp: nn.Module = nn.Sequential(
                nn.Linear(self.feat_dim, hidden),
                nn.ReLU(),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
                nn.Linear(hidden, out_dim),
            )
            self.out_dim = out_dim
        else:
            self.mlp = nn.Identity()
            self.out_dim = self.feat_dim
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for m in self.mlp.modules():
                if isinstance(m, nn.Linear):
                    m.reset_parameters()

    def features(self, latlon: torch.Tensor) -> torch.Tensor:
        """The raw sinusoidal features, shape ``(N, 3 + 4 * num_frequencies)``."""
        ll = latlon.to(torch.float64)
        rad = torch.deg2rad(ll)
        lat, lon = rad[:, :1], rad[:, 1:]
        xyz = latlon_to_xyz(ll)
        a, b = lat * self.freqs, lon * self.freqs
        return torch.cat([xyz, torch.sin(a), torch.cos(a), torch.sin(b), torch.cos(b)], 1)

    def encode(self, latlon: torch.Tensor) -> torch.Tensor:
        dtype = latlon.dtype if self.hidden == 0 else next(self.mlp.parameters()).dtype
        return self.mlp(self.features(latlon).to(dtype))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_frequencies={self.num_frequencies}, "
            f"freqs={self.min_freq:g}..{self.max_freq:g}, out_dim={self.out_dim})"
        )

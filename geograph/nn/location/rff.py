"""Random Fourier features of points on the unit sphere, followed by an MLP.

Rahimi & Recht, "Random Features for Large-Scale Kernel Machines" (2007),
https://people.eecs.berkeley.edu/~brecht/papers/07.rah.rec.nips.pdf ; Tancik et al., "Fourier
Features Let Networks Learn High Frequency Functions in Low Dimensional Domains",
https://arxiv.org/abs/2006.10739 . Unlike GeoCLIP's features of projected coordinates, the
input is the 3-D unit vector of the place, so there is no seam at the antimeridian and no
distortion at the poles: ``[cos(2 pi B x), sin(2 pi B x)]`` approximates a Gaussian kernel of
chord length ``1 / (2 pi sigma)`` (chord 1 = 6,371 km).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from geograph.geo.sphere import latlon_to_xyz
from geograph.nn.location.base import LocationEncoderBase


class SphereRFFLocationEncoder(LocationEncoderBase):
    """``xyz -> [cos(2 pi B_s xyz), sin(2 pi B_s xyz)]`` for each scale ``s`` -> MLP.

    ``B_s`` is a fixed ``(num_features, 3)`` Gaussian matrix with standard deviation
    ``sigma_s``, drawn from ``seed`` (a buffer: it is saved with the weights and never trained).
    The features of every scale are concatenated and fed to a ReLU MLP.

    Args:
        sigmas: Standard deviations of the frequencies, one feature block per value
            (default ``(1, 16, 64)``: kernels of about 1,000, 63 and 16 km chord length).
        num_features: Frequencies per scale (default 256; ``2 * num_features`` features each).
        hidden: MLP width (default 512); ``0`` returns the raw features.
        num_layers: Hidden layers of the MLP (default 2).
        out_dim: Embedding size with an MLP (default 256); ignored when ``hidden == 0``.
        seed: Seed of the frequencies and of the MLP initialisation (default 0).
    """

    def __init__(
        self,
        sigmas: Sequence[float] = (1.0, 16.0, 64.0),
        num_features: int = 256,
        hidden: int = 512,
        num_layers: int = 2,
        out_dim: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__()
        sigmas = [float(s) for s in sigmas]
        if not sigmas or any(not math.isfinite(s) or s <= 0 for s in sigmas):
            raise ValueError(f"sigmas must be a non-empty list of positive numbers, got {sigmas}")
        if num_features < 1 or num_layers < 1 or hidden < 0 or out_dim < 1:
            raise ValueError(
                "need num_features >= 1, num_layers >= 1, hidden >= 0 and out_dim >= 1, got "
                f"{num_features}, {num_layers}, {hidden}, {out_dim}"
            )
        self.sigmas, self.num_features, self.hidden = sigmas, num_features, hidden
        self.num_layers, self.seed = num_layers, seed
        self.register_buffer("freqs", torch.zeros(len(sigmas) * num_features, 3, dtype=torch.float64))
        self.feat_dim = 2 * len(sigmas) * num_features
        if hidden > 0:
            layers: list[nn.Module] = []
            width = self.feat_dim
            for _ in range(num_layers):
                layers += [nn.Linear(width, hidden), nn.ReLU()]
                width = hidden
            layers.append(nn.Linear(width, out_dim))
            self.mlp: nn.Module = nn.Sequential(*layers)
            self.out_dim = out_dim
        else:
            self.mlp = nn.Identity()
            self.out_dim = self.feat_dim
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Redraw the frequencies and re-initialise the MLP from ``seed``."""
        gen = torch.Generator().manual_seed(self.seed)
        scale = torch.tensor(self.sigmas, dtype=torch.float64).repeat_interleave(self.num_features)
        with torch.no_grad():
            b = torch.randn(len(scale), 3, generator=gen, dtype=torch.float64) * scale[:, None]
            self.freqs.copy_(b.to(self.freqs.device))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for m in self.mlp.modules():
                if isinstance(m, nn.Linear):
                    m.reset_parameters()

    def features(self, latlon: torch.Tensor) -> torch.Tensor:
        """The raw Fourier features, shape ``(N, 2 * len(sigmas) * num_features)`` (float64)."""
        xyz = latlon_to_xyz(latlon.to(torch.float64))
        proj = 2 * math.pi * xyz @ self.freqs.T
        return torch.cat([torch.cos(proj), torch.sin(proj)], 1)

    def encode(self, latlon: torch.Tensor) -> torch.Tensor:
        dtype = latlon.dtype if self.hidden == 0 else next(self.mlp.parameters()).dtype
        return self.mlp(self.features(latlon).to(dtype))

    def __repr__(self) -> str:
        sig = ", ".join(f"{s:g}" for s in self.sigmas)
        return (
            f"{self.__class__.__name__}(sigmas=[{sig}], num_features={self.num_features}, "
            f"hidden={self.hidden}, out_dim={self.out_dim})"
        )

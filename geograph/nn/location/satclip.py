"""SatCLIP's location encoder: real spherical harmonics up to degree ``L - 1`` and a SIREN.

Klemmer et al., "SatCLIP: Global, General-Purpose Location Embeddings with Satellite Imagery",
https://arxiv.org/abs/2311.17179 ; Rußwurm et al., "Geographic Location Encoding with Spherical
Harmonics and Sinusoidal Representation Networks", https://arxiv.org/abs/2310.06743 ;
Sitzmann et al., "Implicit Neural Representations with Periodic Activation Functions" (SIREN),
https://arxiv.org/abs/2006.09661
"""

from __future__ import annotations

import math

import torch
from torch import nn

from geograph.nn.location.base import LocationEncoderBase


def real_spherical_harmonics(latlon: torch.Tensor, degree: int) -> torch.Tensor:
    """Orthonormal real spherical harmonics of degrees ``0 .. degree - 1``.

    Uses the numerically stable recurrence of the fully normalised associated Legendre
    functions (no factorials, so degree 40 and beyond stay finite), computed in float64.
    Column ``l*l + l + m`` holds ``Y_l^m`` for ``m = -l..l``: ``m > 0`` uses ``cos(m*lon)``,
    ``m < 0`` uses ``sin(|m|*lon)``, without the Condon-Shortley phase. Each function has unit
    L2 norm on the unit sphere.

    Args:
        latlon: Latitude, longitude in degrees.
        degree: Number of degrees ``L`` (>= 1); the output has ``L**2`` columns.

    Shapes: ``latlon`` is ``(N, 2)``; returns ``(N, L**2)`` in ``latlon``'s dtype.
    """
    if degree < 1:
        raise ValueError(f"degree must be >= 1, got {degree}")
    x = latlon.to(torch.float64)
    colat = torch.deg2rad(90.0 - x[:, 0])
    lon = torch.deg2rad(x[:, 1])
    ct, st = torch.cos(colat), torch.sin(colat)
    n = x.shape[0]
    out = torch.empty(n, degree * degree, dtype=torch.float64, device=x.device)
    pmm = torch.full_like(ct, 1.0 / math.sqrt(4 * math.pi))  # normalised P_0^0
    for m in range(degree):
        if m > 0:
            pmm = math.sqrt((2 * m + 1) / (2 * m)) * st * pmm
        cos_m = torch.cos(m * lon) * math.sqrt(2.0) if m > 0 else None
        sin_m = torch.sin(m * lon) * math.sqrt(2.0) if m > 0 else None
        p_prev2, p_prev = None, pmm
        for ell in range(m, degree):
            if ell == m:
                p = pmm
            elif ell == m + 1:
                p = math.sqrt(2 * m + 3) * ct * pmm
            else:
                a = math.sqrt((4 * ell * ell - 1) / (ell * ell - m * m))
                b = math.sqrt(((ell - 1) ** 2 - m * m) / (4 * (ell - 1) ** 2 - 1))
                p = a * (ct * p_prev - b * p_prev2)
            if ell > m:
                p_prev2, p_prev = p_prev, p
            base = ell * ell + ell
            if m == 0:
                out[:, base] = p
            else:
                out[:, base + m] = p * cos_m
                out[:, base - m] = p * sin_m
    return out.to(latlon.dtype)


class SphericalHarmonics(nn.Module):
    """Parameter-free module around :func:`real_spherical_harmonics` (``L**2`` outputs)."""

    def __init__(self, degree: int = 10) -> None:
        super().__init__()
        if degree < 1:
            raise ValueError(f"degree must be >= 1, got {degree}")
        self.degree = degree
        self.out_dim = degree * degree

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        return real_spherical_harmonics(latlon, self.degree)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(degree={self.degree}, out_dim={self.out_dim})"


class SineLayer(nn.Module):
    """``sin(w0 * (W x + b))`` with SIREN's initialisation (Sitzmann et al. 2020).

    Args:
        in_dim: Input size.
        out_dim: Output size.
        w0: Frequency factor (30 for the first layer, 1 later in SatCLIP).
        is_first: First-layer init ``U(-1/in, 1/in)``; otherwise ``U(-sqrt(6/in)/w0, ...)``.
    """

    def __init__(self, in_dim: int, out_dim: int, w0: float = 1.0, is_first: bool = False) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.w0, self.is_first = in_dim, out_dim, w0, is_first
        self.linear = nn.Linear(in_dim, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / self.in_dim if self.is_first else math.sqrt(6.0 / self.in_dim) / self.w0
        nn.init.uniform_(self.linear.weight, -bound, bound)
        nn.init.uniform_(self.linear.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * self.linear(x))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_dim}, {self.out_dim}, w0={self.w0:g})"


class SatCLIPLocationEncoder(LocationEncoderBase):
    """Spherical harmonics (``L**2`` features) followed by a SIREN, as in SatCLIP.

    Klemmer et al. 2023, https://arxiv.org/abs/2311.17179 . ``L = 10`` generalises better to
    unseen regions, ``L = 40`` resolves finer detail (SatCLIP's two released variants).

    Args:
        degree: Number of spherical-harmonic degrees ``L`` (default 10, i.e. 100 features).
        hidden: SIREN width (default 256).
        num_layers: SIREN sine layers (default 2).
        out_dim: Embedding size (default 256).
        w0_first: Frequency of the first sine layer (default 30).
        w0: Frequency of later sine layers (default 1).
        seed: Initialisation seed (default 0).
    """

    def __init__(
        self,
        degree: int = 10,
        hidden: int = 256,
        num_layers: int = 2,
        out_dim: int = 256,
        w0_first: float = 30.0,
        w0: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.degree, self.hidden, self.num_layers, self.out_dim = degree, hidden, num_layers, out_dim
        self.w0_first, self.w0, self.seed = w0_first, w0, seed
        self.sh = SphericalHarmonics(degree)
        dims = [self.sh.out_dim] + [hidden] * num_layers
        self.siren = nn.Sequential(
            *[
                SineLayer(dims[i], dims[i + 1], w0_first if i == 0 else w0, is_first=i == 0)
                for i in range(num_layers)
            ]
        )
        self.last = nn.Linear(hidden, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for layer in self.siren:
                layer.reset_parameters()
            bound = math.sqrt(6.0 / self.hidden) / self.w0
            nn.init.uniform_(self.last.weight, -bound, bound)
            nn.init.zeros_(self.last.bias)

    def encode(self, latlon: torch.Tensor) -> torch.Tensor:
        feats = self.sh(latlon).to(self.last.weight.dtype)
        return self.last(self.siren(feats))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(degree={self.degree}, hidden={self.hidden}, "
            f"num_layers={self.num_layers}, out_dim={self.out_dim})"
        )

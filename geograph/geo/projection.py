"""Equal Earth projection (Šavrič, Patterson & Jenny 2018), as used by GeoCLIP.

https://doi.org/10.1080/13658816.2018.1504949 ; GeoCLIP https://arxiv.org/abs/2309.16020
Output is ``[x, y]`` scaled by ``SF / 180`` exactly as GeoCLIP's ``equal_earth_projection``,
so the range is about [-1.0, 1.0] for x and [-0.49, 0.49] for y.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
SF = 66.50336


def equal_earth_torch(latlon: torch.Tensor) -> torch.Tensor:
    """Project ``(lat, lon)`` degrees to scaled Equal Earth ``(x, y)``.

    Written with GeoCLIP's own operation order (``theta**8``, ``sqrt(3)`` as a tensor of the
    input dtype): GeoCLIP's sigma = 2^8 Fourier branch multiplies the result by ~2*pi*256*3,
    so a last-ulp difference here (9e-8 in float32) reaches 1e-4 relative in the published
    location encoder's output. With this order the parity is exact.

    Shapes: ``latlon`` is ``(N, 2)``; returns ``(N, 2)`` in its dtype.
    """
    import torch  # here, not at the top: ``import geograph.geo`` does not load torch

    lat = torch.deg2rad(latlon[:, 0])
    lon = torch.deg2rad(latlon[:, 1])
    sqrt3 = torch.sqrt(torch.tensor(3.0, dtype=latlon.dtype, device=latlon.device))
    theta = torch.asin((sqrt3 / 2) * torch.sin(lat))
    denom = 3 * (9 * A4 * theta**8 + 7 * A3 * theta**6 + 3 * A2 * theta**2 + A1)
    x = (2 * sqrt3 * lon * torch.cos(theta)) / denom
    y = A4 * theta**9 + A3 * theta**7 + A2 * theta**3 + A1 * theta
    return (torch.stack((x, y), dim=1) * SF) / 180


def equal_earth(lat, lon) -> np.ndarray:
    """NumPy version of :func:`equal_earth_torch` (computed in float64); returns ``(N, 2)``."""
    import torch

    ll = torch.as_tensor(np.stack([np.asarray(lat), np.asarray(lon)], axis=1), dtype=torch.float64)
    return equal_earth_torch(ll).numpy()

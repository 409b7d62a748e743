"""Equal Earth projection (Šavrič, Patterson & Jenny 2018), as used by GeoCLIP.

https://doi.org/10.1080/13658816.2018.1504949 ; GeoCLIP https://arxiv.org/abs/2309.16020
Output is ``[x, y]`` scaled by ``SF / 180`` exactly as GeoCLIP's ``equal_earth_projection``,
so the range is about [-1.0, 1.0] for x and [-0.49, 0.49] for y.
"""

from __future__ import annotations

import math

import numpy as np
import torch

A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
SF = 66.50336
_M = math.sqrt(3.0) / 2.0


def equal_earth_torch(latlon: torch.Tensor) -> torch.Tensor:
    """Project ``(lat, lon)`` degrees to scaled Equal Earth ``(x, y)``.

    Shapes: ``latlon`` is ``(N, 2)``; returns ``(N, 2)``.
    """
    lat = torch.deg2rad(latlon[:, 0])
    lon = torch.deg2rad(latlon[:, 1])
    theta = torch.asin(_M * torch.sin(lat))
    t2 = theta**2
    t6 = t2**3
    x = (2 * math.sqrt(3) * lon * torch.cos(theta)) / (3 * (9 * A4 * t6 * t2 + 7 * A3 * t6 + 3 * A2 * t2 + A1))
    y = A4 * t6 * t2 * theta + A3 * t6 * theta + A2 * t2 * theta + A1 * theta
    return torch.stack((x, y), dim=1) * SF / 180.0


def equal_earth(lat, lon) -> np.ndarray:
    """NumPy version of :func:`equal_earth_torch`; returns ``(N, 2)``."""
    ll = torch.as_tensor(np.stack([np.asarray(lat), np.asarray(lon)], axis=1), dtype=torch.float64)
    return equal_earth_torch(ll).numpy()

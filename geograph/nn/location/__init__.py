"""Location encoders: ``(N, 2)`` latitude/longitude in degrees -> ``(N, D)`` embeddings.

All share :class:`LocationEncoderBase` (``forward``, ``out_dim``, ``reset_parameters``,
``freeze``); :func:`build_location_encoder` makes one from a config name.
"""

from __future__ import annotations

from typing import Any

from geograph.nn.location.base import LocationEncoderBase
from geograph.nn.location.geoclip import (
    GEOCLIP_FINE_SIGMA,
    GEOCLIP_SIGMAS,
    GaussianFourierFeatures,
    GeoCLIPLocationEncoder,
    geoclip_weights_path,
)
from geograph.nn.location.h3_embedding import H3CellEmbedding
from geograph.nn.location.rff import SphereRFFLocationEncoder
from geograph.nn.location.satclip import SatCLIPLocationEncoder, SphericalHarmonics, real_spherical_harmonics
from geograph.nn.location.sinusoidal import SinusoidalLocationEncoder

ENCODERS = ("geoclip", "geoclip_pretrained", "satclip", "sinusoidal", "h3", "rff")


def build_location_encoder(name: str, **kwargs: Any) -> LocationEncoderBase:
    """Make a location encoder by name.

    Args:
        name: ``geoclip`` (random init), ``geoclip_pretrained`` (weights from the installed
            geoclip package), ``satclip``, ``sinusoidal``, ``h3`` or ``rff`` (random Fourier
            features of the unit-sphere vector, :class:`SphereRFFLocationEncoder`).
        **kwargs: Passed to the class (``GeoCLIPLocationEncoder.from_geoclip_package`` takes
            ``sigmas`` and ``seed``).
    """
    if name == "geoclip":
        return GeoCLIPLocationEncoder(**kwargs)
    if name == "geoclip_pretrained":
        return GeoCLIPLocationEncoder.from_geoclip_package(**kwargs)
    if name == "satclip":
        return SatCLIPLocationEncoder(**kwargs)
    if name == "sinusoidal":
        return SinusoidalLocationEncoder(**kwargs)
    if name == "h3":
        return H3CellEmbedding(**kwargs)
    if name == "rff":
        return SphereRFFLocationEncoder(**kwargs)
    raise ValueError(f"unknown location encoder {name!r}; expected one of {ENCODERS}")


__all__ = [
    "ENCODERS",
    "GEOCLIP_FINE_SIGMA",
    "GEOCLIP_SIGMAS",
    "GaussianFourierFeatures",
    "GeoCLIPLocationEncoder",
    "H3CellEmbedding",
    "LocationEncoderBase",
    "SatCLIPLocationEncoder",
    "SinusoidalLocationEncoder",
    "SphereRFFLocationEncoder",
    "SphericalHarmonics",
    "build_location_encoder",
    "geoclip_weights_path",
    "real_spherical_harmonics",
]

"""GeoCLIP's location encoder: Equal Earth projection, random Fourier features, one MLP per scale.

Vivanco et al., "GeoCLIP: Clip-Inspired Alignment between Locations and Images for Effective
Worldwide Geo-localization", NeurIPS 2023, https://arxiv.org/abs/2309.16020

The module names (``LocEnc{i}.capsule.*``, ``LocEnc{i}.head.*``) match the ``geoclip``
package's ``LocationEncoder`` so its published state dict loads as is.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from geograph.errors import CheckpointError
from geograph.geo.projection import equal_earth_torch
from geograph.nn.location.base import LocationEncoderBase

GEOCLIP_SIGMAS = (2.0**0, 2.0**4, 2.0**8)
GEOCLIP_FINE_SIGMA = 2.0**12
_WEIGHTS_RELPATH = ("model", "weights", "location_encoder_weights.pth")

class GaussianFourierFeatures(nn.Module):
    """Random Fourier features ``[cos 2*pi*Bv, sin 2*pi*Bv]`` with a frozen ``B ~ N(0, sigma^2)``.

    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, https://arxiv.org/abs/2006.10739

    Args:
        sigma: Standard deviation of ``B``.
        in_dim: Input size (default 2).
        num_features: Rows of ``B`` (default 256; the output has twice as many).
        seed: Seed of the draw of ``B`` (default 0).
    """

    def __init__(self, sigma: float, in_dim: int = 2, num_features: int = 256, seed: int = 0) -> None:
        super().__init__()
        self.sigma, self.in_dim, self.num_features, self.seed = float(sigma), in_dim, num_features, seed
        self.register_buffer("b", torch.empty(num_features, in_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        g = torch.Generator().manual_seed(self.seed)
        self.b.copy_(torch.randn(self.num_features, self.in_dim, generator=g) * self.sigma)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        vp = 2 * math.pi * v @ self.b.T
        return torch.cat((torch.cos(vp), torch.sin(vp)), dim=-1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(sigma={self.sigma:g}, {self.in_dim}->{2 * self.num_features})"


class _Capsule(nn.Module):
    """One GeoCLIP scale: RFF -> 3 x (Linear, ReLU) -> Linear head."""

    def __init__(self, sigma: float, hidden: int, out_dim: int, num_features: int, seed: int) -> None:
        super().__init__()
        self.capsule = nn.Sequential(
            GaussianFourierFeatures(sigma, 2, num_features, seed),
            nn.Linear(2 * num_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.capsule(x))


def geoclip_weights_path() -> Path:
    """Path of ``location_encoder_weights.pth`` inside the installed ``geoclip`` package.

    Found with :func:`importlib.util.find_spec`, which locates the package without running
    its ``__init__`` (that imports torchvision, which geograph does not install).

    Raises:
        CheckpointError: ``geoclip`` is not installed or its wheel lacks the weights file.
    """
    loaded = sys.modules.get("geoclip")  # may be a stub parent registered without a spec
    try:
        spec = importlib.util.find_spec("geoclip")
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
    except ValueError:  # a module in sys.modules whose __spec__ is None
        locations = list(getattr(loaded, "__path__", []))
    if not locations:
        raise CheckpointError(
            "the 'geoclip' package is not installed; install it with "
            "`pip install --no-deps geoclip==1.3.0` to load the pretrained location encoder"
        )
    path = Path(locations[0]).joinpath(*_WEIGHTS_RELPATH)
    if not path.is_file():
        raise CheckpointError(f"geoclip is installed but {path} is missing; reinstall geoclip")
    return path


class GeoCLIPLocationEncoder(LocationEncoderBase):
    """GeoCLIP location encoder: Equal Earth, RFF capsules at several sigmas, outputs summed.

    Vivanco et al. 2023, https://arxiv.org/abs/2309.16020

    Args:
        sigmas: One capsule per sigma (default ``(2^0, 2^4, 2^8)``; add ``2^12`` for the finer
            branch, see :data:`GEOCLIP_FINE_SIGMA`).
        out_dim: Embedding size (default 512).
        hidden: Width of each capsule MLP (default 1024).
        num_features: Fourier features per capsule before the cos/sin doubling (default 256).
        seed: Seed of the random ``B`` matrices (capsule ``i`` uses ``seed + i``; default 0).

    Example:
        >>> enc = GeoCLIPLocationEncoder.from_geoclip_package()  # doctest: +SKIP
        >>> enc(torch.tensor([[48.85, 2.35]])).shape  # doctest: +SKIP
        torch.Size([1, 512])
    """

    def __init__(
        self,
        sigmas: Sequence[float] = GEOCLIP_SIGMAS,
        out_dim: int = 512,
        hidden: int = 1024,
        num_features: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if len(sigmas) == 0 or any(s <= 0 for s in sigmas):
            raise ValueError(f"sigmas must be a non-empty list of positive numbers, got {list(sigmas)}")
        self.sigmas = tuple(float(s) for s in sigmas)
        self.out_dim, self.hidden, self.num_features, self.seed = out_dim, hidden, num_features, seed
        for i, s in enumerate(self.sigmas):
            self.add_module(f"LocEnc{i}", _Capsule(s, hidden, out_dim, num_features, seed + i))
        self.reset_parameters()

    @property
    def capsules(self) -> list[nn.Module]:
        return [getattr(self, f"LocEnc{i}") for i in range(len(self.sigmas))]

    def reset_parameters(self) -> None:
        # nn.Linear's init draws from the global generator: seed a private fork of it
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for m in self.modules():
                if m is not self and hasattr(m, "reset_parameters"):
                    m.reset_parameters()

    def encode(self, latlon: torch.Tensor) -> torch.Tensor:
        x = equal_earth_torch(latlon)  # GeoCLIP's operation order: exact parity
        out = torch.zeros(x.shape[0], self.out_dim, dtype=x.dtype, device=x.device)
        for cap in self.capsules:
            out += cap(x)
        return out

    # --- partial fine-tuning: frozen capsule trunks, trainable 1024 -> 512 heads -----------
    def trunk(self, latlon: torch.Tensor) -> torch.Tensor:
        """Each capsule's features before its head; ``(N, 2)`` -> ``(N, len(sigmas), hidden)``."""
        x = equal_earth_torch(latlon)  # GeoCLIP's operation order: exact parity
        return torch.stack([cap.capsule(x) for cap in self.capsules], dim=1)

    def from_trunk(self, features: torch.Tensor) -> torch.Tensor:
        """Sum of the capsule heads on :meth:`trunk` features; ``(N, C, hidden)`` -> ``(N, out_dim)``.

        ``from_trunk(trunk(x))`` equals ``forward(x)`` up to float rounding.
        """
        out = torch.zeros(features.shape[0], self.out_dim, dtype=features.dtype, device=features.device)
        for i, cap in enumerate(self.capsules):
            out += cap.head(features[:, i])
        return out

    def freeze_trunk(self) -> GeoCLIPLocationEncoder:
        """Freeze everything but the capsule heads (returns ``self``); see :attr:`trunk_frozen`."""
        for cap in self.capsules:
            for p in cap.capsule.parameters():
                p.requires_grad_(False)
        return self

    @property
    def trunk_frozen(self) -> bool:
        """True when only head parameters can train (trunk features may then be cached)."""
        return not any(p.requires_grad for cap in self.capsules for p in cap.capsule.parameters())

    @classmethod
    def from_geoclip_package(
        cls, sigmas: Sequence[float] = GEOCLIP_SIGMAS, seed: int = 0
    ) -> GeoCLIPLocationEncoder:
        """The published pretrained encoder, read from the installed ``geoclip`` wheel.

        Args:
            sigmas: Must start with the published ``(2^0, 2^4, 2^8)``; extra sigmas (e.g. 2^12)
                get freshly initialised capsules to fine-tune.
            seed: Seed for the extra capsules.

        Raises:
            CheckpointError: the package or its weight file is missing or does not match.
        """
        sigmas = tuple(float(s) for s in sigmas)
        if sigmas[: len(GEOCLIP_SIGMAS)] != GEOCLIP_SIGMAS:
            raise ValueError(f"pretrained sigmas must start with {GEOCLIP_SIGMAS}, got {sigmas}")
        path = geoclip_weights_path()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad checkpoint
            raise CheckpointError(f"cannot read geoclip weights {path}: {exc}") from exc
        # The published file holds ~47,000 subnormal floats (|w| < 1.2e-38). They change no
        # output (parity stays exact) but make CPU matrix products up to 2x slower (measured),
        # so they are flushed to zero here.
        tiny = torch.finfo(torch.float32).tiny
        state = {
            k: torch.where(v.abs() < tiny, torch.zeros_like(v), v) if v.is_floating_point() else v
            for k, v in state.items()
        }
        if len(sigmas) == len(GEOCLIP_SIGMAS):
            # every tensor comes from the file: build on the meta device (no wasted random init)
            with torch.device("meta"):
                model = cls(sigmas=sigmas, seed=seed)
            missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        else:
            model = cls(sigmas=sigmas, seed=seed)
            missing, unexpected = model.load_state_dict(state, strict=False)
        extra = tuple(f"LocEnc{i}." for i in range(len(GEOCLIP_SIGMAS), len(sigmas)))
        bad_missing = [k for k in missing if not k.startswith(extra)]
        if bad_missing or unexpected:
            raise CheckpointError(
                f"{path} does not match GeoCLIPLocationEncoder: missing {bad_missing[:3]}, "
                f"unexpected {list(unexpected)[:3]}"
            )
        return model

    def __repr__(self) -> str:
        sig = ", ".join(f"2^{math.log2(s):g}" for s in self.sigmas)
        return f"{self.__class__.__name__}(sigmas=[{sig}], out_dim={self.out_dim})"

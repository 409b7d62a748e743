"""The sphere random-Fourier-feature location encoder: shapes, repr, seeds, the kernel it
approximates, and its registration."""

from __future__ import annotations

import pytest
import torch

from geograph.errors import ConfigError
from geograph.geolocate.config import GeolocateConfig
from geograph.geolocate.model import build_encoder
from geograph.nn.location import ENCODERS, SphereRFFLocationEncoder, build_location_encoder

LATLON = torch.tensor([[48.8566, 2.3522], [-33.8688, 151.2093], [0.0, 0.0], [89.9, -179.9], [-90.0, 180.0]])


def small(seed: int = 0, **kw) -> SphereRFFLocationEncoder:
    opts = {"sigmas": (1.0, 8.0), "num_features": 16, "hidden": 32, "out_dim": 8, "seed": seed}
    opts.update(kw)
    return SphereRFFLocationEncoder(**opts)


def test_shape_repr_and_seeded_determinism():
    enc = small()
    assert str(enc) == "SphereRFFLocationEncoder(sigmas=[1, 8], num_features=16, hidden=32, out_dim=8)"
    out = enc(LATLON)
    assert out.shape == (5, 8) and enc.out_dim == 8 and torch.isfinite(out).all()
    torch.manual_seed(123)  # the global generator must not matter
    assert torch.equal(small()(LATLON), out)
    assert not torch.allclose(small(seed=1)(LATLON), out)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(1.0)
        enc.freqs.mul_(2.0)
    enc.reset_parameters()
    assert torch.equal(enc(LATLON), out)


def test_frequencies_are_fixed_buffers_and_the_mlp_trains():
    enc = small()
    assert "freqs" in dict(enc.named_buffers()) and "freqs" not in dict(enc.named_parameters())
    assert enc.freqs.shape == (32, 3)
    # the second block's frequencies are about 8 times the first's
    ratio = enc.freqs[16:].std() / enc.freqs[:16].std()
    assert 3.0 < float(ratio) < 20.0
    enc(LATLON).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    enc.freeze()
    assert not enc.trainable


def test_features_are_seamless_and_approximate_a_gaussian_kernel():
    raw = SphereRFFLocationEncoder(sigmas=(0.5,), num_features=4096, hidden=0, seed=0)
    assert raw.out_dim == 8192
    f = raw.features(torch.tensor([[10.0, 180.0], [10.0, -180.0], [10.0, 170.0], [-50.0, 0.0]]))
    assert torch.allclose(f[0], f[1], atol=1e-9)  # the antimeridian is not a seam
    k = f @ f.T / 4096  # E[cos(2 pi b.(x - y))] = exp(-2 pi^2 sigma^2 |x - y|^2)
    from geograph.geo.sphere import latlon_to_xyz

    xyz = latlon_to_xyz(torch.tensor([[10.0, 180.0], [10.0, 170.0], [-50.0, 0.0]], dtype=torch.float64))
    d2 = ((xyz[:, None] - xyz[None]) ** 2).sum(-1)
    expect = torch.exp(-2 * torch.pi**2 * 0.25 * d2)
    assert torch.allclose(k[[0, 2, 3]][:, [0, 2, 3]], expect, atol=0.05)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"sigmas": ()}, "sigmas"),
        ({"sigmas": (1.0, -2.0)}, "sigmas"),
        ({"num_features": 0}, "num_features"),
        ({"num_layers": 0}, "num_layers"),
    ],
)
def test_rejects_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        small(**kw)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        small()(torch.zeros(3))


def test_registered_by_name_and_in_the_config():
    assert "rff" in ENCODERS
    assert isinstance(build_location_encoder("rff", num_features=4, hidden=8), SphereRFFLocationEncoder)
    cfg = GeolocateConfig.from_dict(
        {"encoder": {"name": "rff", "pretrained": False, "options": {"hidden": 16}}}
    )
    enc = build_encoder(cfg.encoder, seed=3)
    assert isinstance(enc, SphereRFFLocationEncoder) and enc.seed == 3 and enc.out_dim == 256
    with pytest.raises(ConfigError, match="only available for geoclip"):
        GeolocateConfig.from_dict({"encoder": {"name": "rff", "pretrained": True}})
    with pytest.raises(ConfigError, match="encoder.options do not fit 'rff'"):
        build_encoder(
            GeolocateConfig.from_dict(
                {"encoder": {"name": "rff", "pretrained": False, "options": {"degree": 3}}}
            ).encoder
        )

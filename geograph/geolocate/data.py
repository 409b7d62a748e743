"""Geolocation data: queries and coordinates from text places or a world's images, split by seed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from geograph.constants import EMBEDDING, LAT, LON, TEXT
from geograph.errors import DataValidationError
from geograph.geolocate.config import GeolocateConfig

# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------


@dataclass
class GeoData:
    """Queries, coordinates, prior weights and the split.

    Attributes:
        queries: ``(N, D)`` float32 query embeddings. latlon: ``(N, 2)`` degrees.
        weights: ``(N,)`` prior weights (population for places, 1 for images).
        labels: Text per item (place text or image id). split: index arrays per split.
        fingerprint: Hash of the data (queries, coordinates, split).
    """

    queries: np.ndarray
    latlon: np.ndarray
    weights: np.ndarray
    labels: list[str]
    split: dict[str, np.ndarray]
    source: str
    fingerprint: str = ""

    @property
    def query_dim(self) -> int:
        return int(self.queries.shape[1])

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        idx = self.split[name]
        return self.queries[idx], self.latlon[idx]


def _random_split(n: int, seed: int, test_frac: float, val_frac: float) -> dict[str, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_frac * n))
    test, rest = perm[:n_test], perm[n_test:]
    n_val = max(1, int(round(val_frac * len(rest))))
    return {"train": np.sort(rest[n_val:]), "val": np.sort(rest[:n_val]), "test": np.sort(test)}


def images_to_arrays(images) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``embedding`` list column + latitude/longitude of an images table -> arrays.

    Raises:
        DataValidationError: a missing column, ragged or non-finite embeddings.
    """
    import polars as pl

    for col in (EMBEDDING, LAT, LON):
        if col not in images.columns:
            raise DataValidationError(f"images table lacks column '{col}'", field=col)
    lens = images.select(pl.col(EMBEDDING).list.len()).to_series().to_numpy()
    if len(lens) == 0:
        raise DataValidationError("images table is empty", field=EMBEDDING)
    if (lens != lens[0]).any():
        row = int(np.flatnonzero(lens != lens[0])[0])
        raise DataValidationError(
            f"embedding length {lens[row]} differs from {lens[0]}", row=row, field=EMBEDDING
        )
    q = np.asarray(images[EMBEDDING].to_list(), dtype=np.float32)
    bad = ~np.isfinite(q).all(1)
    if bad.any():
        raise DataValidationError("non-finite embedding", row=int(np.flatnonzero(bad)[0]), field=EMBEDDING)
    ll = images.select(pl.col(LAT).cast(pl.Float64), pl.col(LON).cast(pl.Float64)).to_numpy()
    ids = (
        images["image_id"].cast(pl.Utf8).to_list()
        if "image_id" in images.columns
        else [str(i) for i in range(len(q))]
    )
    labels = images[TEXT].cast(pl.Utf8).to_list() if TEXT in images.columns else ids
    return q, ll, labels


def prepare(cfg: GeolocateConfig) -> GeoData:
    """Load the data named by ``cfg.data`` and split it by ``cfg.train.seed``."""
    dc = cfg.data
    if dc.source == "text_places":
        from geograph.data.text_places import load_text_places

        places = load_text_places(
            min_population=dc.min_population,
            template=dc.template,
            max_places=dc.max_places,
            seed=0,  # the subset is fixed; the split varies with train.seed
            cache_dir=dc.cache_dir,
        )
        q, ll, w, labels = places.embeddings, places.latlon, places.population, places.texts
    else:
        if dc.world_dir:
            from geograph.data import load_world

            world = load_world(dc.world_dir)
        else:
            from geograph.data.synthetic import generate_world

            world = generate_world(
                n_pois=dc.n_pois, seed=dc.world_seed, n_images=dc.n_images, embedding_dim=dc.embedding_dim
            )
        if world.images is None or world.images.height == 0:
            raise DataValidationError(
                "the world has no images table; geolocation needs images", field=EMBEDDING
            )
        q, ll, labels = images_to_arrays(world.images)
        w = np.ones(len(q))
    split = _random_split(len(q), cfg.train.seed, dc.test_frac, dc.val_frac)
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(q).tobytes())
    h.update(np.ascontiguousarray(ll).tobytes())
    for k in ("train", "val", "test"):
        h.update(split[k].tobytes())
    return GeoData(
        q.astype(np.float32),
        ll.astype(np.float64),
        np.asarray(w, np.float64),
        list(labels),
        split,
        dc.source,
        h.hexdigest()[:16],
    )

"""A gallery of candidate coordinates, embedded once by a location encoder and searched exactly.

Sources: the 100,000 GPS coordinates shipped in the ``geoclip`` wheel (GeoCLIP's gallery,
https://arxiv.org/abs/2309.16020), the centres of every H3 cell at a resolution, a set of
training coordinates, or a CSV file with latitude/longitude columns.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

from geograph.constants import LAT, LON
from geograph.errors import CheckpointError, DataValidationError
from geograph.geo.h3cells import cell_centers, latlng_to_cells
from geograph.geo.sphere import check_lat_lon
from geograph.retrieval.ann import IVFIndex, SearchOptions
from geograph.retrieval.search import _distributed, sharded_topk
from geograph.retrieval.validate import check_embeddings

GEOCLIP_GALLERY_RELPATH = ("model", "gps_gallery", "coordinates_100K.csv")
GALLERY_SOURCES = ("geoclip", "h3", "train")


def geoclip_gallery_path() -> Path:
    """Path of ``coordinates_100K.csv`` inside the installed ``geoclip`` wheel (not imported)."""
    loaded = sys.modules.get("geoclip")
    try:
        spec = importlib.util.find_spec("geoclip")
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
    except ValueError:  # a stub module without __spec__
        locations = list(getattr(loaded, "__path__", []))
    if not locations:
        raise CheckpointError(
            "the 'geoclip' package is not installed; `pip install --no-deps geoclip==1.3.0`"
        )
    path = Path(locations[0]).joinpath(*GEOCLIP_GALLERY_RELPATH)
    if not path.is_file():
        raise CheckpointError(f"geoclip is installed but {path} is missing; reinstall geoclip")
    return path


def _read_latlon_csv(path: str | Path) -> np.ndarray:
    import polars as pl

    path = Path(path)
    if not path.is_file():
        raise DataValidationError("gallery file not found", file=path)
    try:
        df = pl.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure
        raise DataValidationError(f"cannot read CSV: {exc}", file=path) from exc
    lower = {c.lower(): c for c in df.columns}
    for lat_name, lon_name in ((LAT, LON), ("lat", "lon"), ("lat", "lng")):
        if lat_name in lower and lon_name in lower:
            break
    else:
        raise DataValidationError(
            f"need latitude/longitude (or lat/lon, LAT/LON) columns, got {df.columns}", file=path
        )
    try:
        arr = df.select(
            pl.col(lower[lat_name]).cast(pl.Float64), pl.col(lower[lon_name]).cast(pl.Float64)
        ).to_numpy()
    except Exception as exc:  # noqa: BLE001
        raise DataValidationError(
            f"non-numeric coordinates: {exc}", file=path, field=lower[lat_name]
        ) from exc
    bad = ~np.isfinite(arr).all(1) | (np.abs(arr[:, 0]) > 90) | (np.abs(arr[:, 1]) > 180)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataValidationError(
            f"invalid coordinate {arr[row].tolist()}", file=path, row=row, field=lower[lat_name]
        )
    return arr


class Gallery:
    """Candidate coordinates and (after :meth:`embed`) their unit-norm location embeddings.

    Args:
        latlon: Candidate coordinates in degrees.
        name: Where they came from (shown in ``repr`` and logged).

    Shapes: ``latlon`` is ``(G, 2)``.
    """

    def __init__(self, latlon: np.ndarray | torch.Tensor, name: str = "custom") -> None:
        arr = torch.as_tensor(np.asarray(latlon, dtype=np.float64) if not torch.is_tensor(latlon) else latlon)
        arr = arr.to(torch.float64)
        if arr.dim() != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
            what = (
                "is empty (0 candidates)" if arr.dim() == 2 and arr.shape[0] == 0 else "is not a (G, 2) array"
            )
            raise DataValidationError(
                f"gallery {name} {what}: need a non-empty (G, 2) array of lat/lon, got shape {tuple(arr.shape)}",
                field="gallery.latlon",
            )
        check_lat_lon(arr[:, 0].numpy(), arr[:, 1].numpy(), f"gallery {name}")
        self.latlon = arr
        self.name = name
        self.embeddings: torch.Tensor | None = None
        self._cells: dict[int, list[str]] = {}
        self._index: tuple | None = None  # (key, IVFIndex) of the last approximate search

    # --- sources ----------------------------------------------------------------------
    @classmethod
    def from_geoclip(cls) -> Gallery:
        """GeoCLIP's 100K coordinates, read from the installed package."""
        return cls(_read_latlon_csv(geoclip_gallery_path()), name="geoclip")

    @classmethod
    def from_h3(cls, resolution: int = 2, cells: list[str] | None = None) -> Gallery:
        """Centres of every H3 cell at ``resolution`` (0..4; res 2: 5,882, res 3: 41,162) or of ``cells``."""
        from geograph.nn.location.h3_embedding import all_cells

        cells = cells if cells is not None else all_cells(resolution)
        g = cls(cell_centers(cells), name=f"h3:{resolution}")
        g._cells[resolution] = list(cells)
        return g

    @classmethod
    def from_coordinates(cls, latlon: np.ndarray, name: str = "train", dedupe: bool = True) -> Gallery:
        """A gallery of given coordinates (e.g. the training set), duplicates dropped."""
        arr = np.asarray(latlon, dtype=np.float64)
        if dedupe:
            arr = np.unique(np.round(arr, 6), axis=0)
        return cls(arr, name=name)

    @classmethod
    def from_csv(cls, path: str | Path) -> Gallery:
        """Coordinates from a CSV with ``latitude``/``longitude`` (or ``lat``/``lon``, ``LAT``/``LON``)."""
        return cls(_read_latlon_csv(path), name=str(path))

    @classmethod
    def from_spec(cls, spec: str, train_latlon: np.ndarray | None = None) -> Gallery:
        """``geoclip``, ``h3`` / ``h3:RES``, ``train`` (needs ``train_latlon``) or a CSV path."""
        if spec == "geoclip":
            return cls.from_geoclip()
        if spec == "h3" or spec.startswith("h3:"):
            res = int(spec.split(":", 1)[1]) if ":" in spec else 2
            return cls.from_h3(res)
        if spec == "train":
            if train_latlon is None:
                raise ValueError("gallery 'train' needs the training coordinates")
            return cls.from_coordinates(train_latlon)
        if spec.endswith(".csv") or Path(spec).is_file():
            return cls.from_csv(spec)
        raise ValueError(
            f"unknown gallery {spec!r}; expected one of {GALLERY_SOURCES}, 'h3:RES' or a CSV path"
        )

    # --- embedding and search ---------------------------------------------------------
    def __len__(self) -> int:
        return int(self.latlon.shape[0])

    @torch.no_grad()
    def embed(self, encoder: torch.nn.Module, batch_size: int = 8192, normalize: bool = True) -> Gallery:
        """Embed every candidate once with ``encoder`` (in eval mode); returns ``self``."""
        was_training = encoder.training
        encoder.eval()
        try:
            param = next(encoder.parameters(), None)
            device = param.device if param is not None else torch.device("cpu")
            dtype = param.dtype if param is not None else torch.float32
            parts = []
            for start in range(0, len(self), batch_size):
                ll = self.latlon[start : start + batch_size].to(device=device, dtype=dtype)
                parts.append(encoder(ll))
            emb = torch.cat(parts)
            self.embeddings = torch.nn.functional.normalize(emb, dim=1) if normalize else emb
        finally:
            encoder.train(was_training)
        return self

    def set_embeddings(self, embeddings: torch.Tensor) -> Gallery:
        """Replace the embeddings (e.g. after propagation); shape ``(G, D)``."""
        if embeddings.dim() != 2 or embeddings.shape[0] != len(self):
            raise DataValidationError(
                f"need {len(self)} embedding rows (one per candidate), got shape {tuple(embeddings.shape)}",
                field="gallery.embeddings",
            )
        check_embeddings(embeddings, "gallery.embeddings")
        self.embeddings = embeddings
        return self

    def search(
        self, queries: torch.Tensor, k: int = 1, chunk_size: int = 65536, options: SearchOptions | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` candidates by inner product: exact (:func:`~geograph.retrieval.search.sharded_topk`,
        the default) or, with ``options.method == "ivf"``, from a FAISS IVF index
        (:class:`~geograph.retrieval.ann.IVFIndex`, built at the first such search and kept
        until the embeddings change). Under :func:`~geograph.retrieval.search.distributed_search`
        with several ranks the search is the exact sharded one whatever ``options`` say.

        Shapes: ``queries`` ``(Q, D)``; returns scores and indices ``(Q, k)``.
        """
        if self.embeddings is None:
            raise RuntimeError("gallery is not embedded yet; call gallery.embed(encoder) first")
        check_embeddings(
            queries,
            "queries",
            width=self.embeddings.shape[1],
            width_source=f"the gallery keys of {self.name}",
        )
        if options is not None and options.method == "ivf" and _distributed()[1] == 1:
            key = (self.embeddings._version, options)
            if self._index is None or self._index[0] != key or self._index[1].keys is not self.embeddings:
                self._index = (key, IVFIndex(self.embeddings, options))
            return self._index[1].search(queries, k)
        # under torchrun each rank scans its shard of the gallery; the top-k are merged
        return sharded_topk(queries.to(self.embeddings.dtype), self.embeddings, k, chunk_size)

    def cells(self, resolution: int) -> list[str]:
        """H3 cell of every candidate at ``resolution`` (cached)."""
        if resolution not in self._cells:
            ll = self.latlon.numpy()
            self._cells[resolution] = latlng_to_cells(ll[:, 0], ll[:, 1], resolution)
        return self._cells[resolution]

    def __repr__(self) -> str:
        dim = None if self.embeddings is None else self.embeddings.shape[1]
        return f"Gallery(name={self.name!r}, size={len(self)}, dim={dim})"

"""A *world*: the four tables geograph reads (POIs, co-visits, images, regions), and their IO.

A world folder holds ``pois.parquet``, ``covisits.parquet``, ``images.parquet`` and
``regions.parquet`` (CSV files with the same stem are read too), or, when written with
``partition_by="state"``, hive-partitioned folders ``pois/state=CA/part-0.parquet``.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from geograph.constants import STATE
from geograph.errors import DataValidationError
from geograph.utils.atomic import atomic_write

TABLES = ("pois", "covisits", "images", "regions")


@dataclass
class World:
    """The four geograph tables as polars DataFrames (``images`` / ``regions`` may be None).

    Attributes:
        pois: One row per venue (see the POI contract in the README).
        covisits: One row per (src, dst) pair with ``visitors``.
        images: Geotagged images with an ``embedding`` list column (or ``path``).
        regions: Socioeconomic attributes per ``h3_cell``.
        meta: Free-form provenance (generator, seed, sizes).
    """

    pois: pl.DataFrame
    covisits: pl.DataFrame
    images: pl.DataFrame | None = None
    regions: pl.DataFrame | None = None
    meta: dict = field(default_factory=dict)

    def tables(self) -> dict[str, pl.DataFrame]:
        out = {"pois": self.pois, "covisits": self.covisits}
        if self.images is not None:
            out["images"] = self.images
        if self.regions is not None:
            out["regions"] = self.regions
        return out

    def fingerprint(self) -> str:
        """Content hash of all tables (16 hex chars); equal data gives an equal fingerprint."""
        h = hashlib.sha256()
        for name, df in sorted(self.tables().items()):
            h.update(name.encode())
            h.update(str(df.schema).encode())
            h.update(df.hash_rows(seed=0, seed_1=1, seed_2=2, seed_3=3).sort().to_numpy().tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        """Sizes of the world: counts per table, states, NAICS sectors."""
        out = {name: df.height for name, df in self.tables().items()}
        if STATE in self.pois.columns:
            out["states"] = self.pois[STATE].n_unique()
        return out


def write_world(world: World, folder: str | Path, partition_by: str | None = None, overwrite: bool = False) -> Path:
    """Write ``world`` under ``folder`` as Parquet, each file atomically.

    Args:
        world: The tables.
        folder: Destination folder (created).
        partition_by: ``None`` for one file per table, or ``"state"`` for a hive layout
            (``pois/state=CA/part-0.parquet``); tables without a ``state`` column are written whole.
        overwrite: Replace existing table files; without it an existing world is an error.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise DataValidationError(
            "output folder is not empty; pass overwrite=True (CLI: --overwrite) to replace it", file=folder
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in world.tables().items():
        if partition_by is not None and partition_by in df.columns:
            target = folder / name
            tmp = folder / f".{name}.partial"
            if tmp.exists():
                shutil.rmtree(tmp)
            for (key,), part in df.group_by(partition_by, maintain_order=True):
                sub = tmp / f"{partition_by}={key}"
                sub.mkdir(parents=True, exist_ok=True)
                part.drop(partition_by).write_parquet(sub / "part-0.parquet")
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)  # a folder rename is atomic on one filesystem
        else:
            with atomic_write(folder / f"{name}.parquet", suffix=".parquet") as tmp_file:
                df.write_parquet(tmp_file)
    return folder

"""A *world*: the four tables geograph reads (POIs, co-visits, images, regions), and their IO.

A world folder holds ``pois.parquet``, ``covisits.parquet``, ``images.parquet`` and
``regions.parquet`` (CSV files with the same stem are read too), or, when written with
``partition_by="state"``, hive-partitioned folders ``pois/state=CA/part-0.parquet``.
:func:`load_world` reads and validates one; :func:`scan_table` scans one table lazily,
filtered to some states.

:func:`write_world` makes a folder atomic as a whole with ``manifest.json``: it first marks
the folder as being written, then replaces the tables (each file atomically), and last writes
the manifest with every table file's size and SHA-256. A folder whose manifest is unfinished
(a writer was killed) or whose files no longer match it is refused by :func:`load_world`,
:func:`scan_table` and the analytics queries, so a killed rewrite never reads as a world that
mixes old and new tables. Folders without a manifest (written by hand or by other tools) are
read as before.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from geograph.constants import DST_POI, H3_CELL, IMAGE_ID, POI_ID, SRC_POI, STATE
from geograph.data.naics import NAICSTaxonomy
from geograph.data.readers import (
    US_STATES,
    _scan_folder,
    read_covisits,
    read_images,
    read_pois,
    read_regions,
)
from geograph.errors import DataValidationError
from geograph.utils.atomic import atomic_write, atomic_write_text, file_sha256, remove_tree, replace_tree

TABLES = ("pois", "covisits", "images", "regions")
REQUIRED_TABLES = ("pois", "covisits")
META_FILE = "meta.json"  # provenance written beside the tables (e.g. by ``geograph world``)
MANIFEST_FILE = "manifest.json"  # written last by write_world: the world's files and their SHA-256
MANIFEST_FORMAT = 1


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
        """Content hash of all tables (16 hex chars); equal data gives an equal fingerprint.

        Row order is ignored. Stable within one polars version (``hash_rows`` is not
        guaranteed stable across versions), which is what a cache key needs.
        """
        h = hashlib.sha256()
        for name, df in sorted(self.tables().items()):
            h.update(name.encode())
            h.update(str(df.schema).encode())
            # two 64-bit row hashes (polars >= 2 takes one seed); sorted, so row order does not matter
            rows = pl.DataFrame({"a": df.hash_rows(seed=0), "b": df.hash_rows(seed=1)}).sort("a", "b")
            h.update(rows.to_numpy().tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        """Sizes of the world: counts per table, states, NAICS sectors."""
        out = {name: df.height for name, df in self.tables().items()}
        if STATE in self.pois.columns:
            out["states"] = self.pois[STATE].n_unique()
        return out


def write_world(
    world: World, folder: str | Path, partition_by: str | None = None, overwrite: bool = False
) -> Path:
    """Write ``world`` under ``folder`` as Parquet, atomically as a whole.

    The folder is first marked as being written (an unfinished ``manifest.json``), then each
    table file is replaced atomically, tables of an older world that this one lacks are
    removed, ``meta.json`` is written from ``world.meta`` (removed when it is empty), and last
    ``manifest.json`` records each table file's size and SHA-256. A process killed on the way
    leaves a folder that readers refuse (see :func:`verify_world`), never one that mixes two
    worlds. Other files in the folder are left alone.

    Args:
        world: The tables.
        folder: Destination folder (created).
        partition_by: ``None`` for one file per table, or ``"state"`` for a hive layout
            (``pois/state=CA/part-0.parquet``); tables without a ``state`` column are written whole.
        overwrite: Replace an existing world; without it a non-empty folder is an error.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise DataValidationError(
            "output folder is not empty; pass overwrite=True (CLI: --overwrite) to replace it", file=folder
        )
    folder.mkdir(parents=True, exist_ok=True)
    _write_manifest(folder, {"format": MANIFEST_FORMAT, "complete": False})  # readers refuse it from now on
    tables = world.tables()
    written: dict[str, str] = {}
    for name in TABLES:
        df = tables.get(name)
        hive = df is not None and partition_by is not None and partition_by in df.columns
        keep = None if df is None else (folder / name if hive else folder / f"{name}.parquet")
        for path in (folder / f"{name}.parquet", folder / f"{name}.csv", folder / name):
            if path == keep or not (path.exists() or path.is_symlink()):
                continue
            if path.is_dir():  # a table of the old world that this one does not replace
                remove_tree(path)
            else:
                path.unlink()
        if df is None:
            continue
        if hive:
            tmp = folder / f".{name}.partial"
            if tmp.exists():
                shutil.rmtree(tmp)
            for (key,), part in df.group_by(partition_by, maintain_order=True):
                sub = tmp / f"{partition_by}={key}"
                sub.mkdir(parents=True, exist_ok=True)
                part.drop(partition_by).write_parquet(sub / "part-0.parquet")
            # rmtree(target) then rename left a part of the old folder (some states) if killed
            replace_tree(tmp, folder / name)
        else:
            with atomic_write(folder / f"{name}.parquet", suffix=".parquet") as tmp_file:
                df.write_parquet(tmp_file)
        written[name] = str(keep.relative_to(folder))
    meta = {k: v for k, v in world.meta.items() if k != "source"}  # "source" is added by load_world
    if meta:
        atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    else:
        (folder / META_FILE).unlink(missing_ok=True)
    files = {rel: _file_entry(folder / rel) for name in written for rel in _table_files(folder, name)}
    _write_manifest(folder, {"format": MANIFEST_FORMAT, "complete": True, "tables": written, "files": files})
    return folder


def _write_manifest(folder: Path, manifest: dict) -> None:
    atomic_write_text(folder / MANIFEST_FILE, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _file_entry(path: Path) -> dict:
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def _table_files(folder: Path, name: str) -> list[str]:
    """Paths (relative to ``folder``, POSIX) of the files of table ``name`` as stored now."""
    path = find_table(folder, name)
    if path is None:
        return []
    if path.is_dir():
        return sorted(p.relative_to(folder).as_posix() for p in path.rglob("*.parquet") if p.is_file())
    return [path.relative_to(folder).as_posix()]


def verify_world(folder: str | Path, checksums: bool = True) -> None:
    """Check a world folder against the ``manifest.json`` that :func:`write_world` wrote last.

    A folder without a manifest (written by hand or another tool) passes unchecked.

    Args:
        folder: The world folder.
        checksums: Also compare each file's SHA-256 (reads every file); False checks that the
            manifest is complete and that the files and their sizes match (cheap).

    Raises:
        DataValidationError: the manifest is unfinished (a ``write_world`` was interrupted) or
            unreadable, or a table file is missing, extra or differs from it (naming the file).
    """
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        complete, tables, files = manifest["complete"], manifest.get("tables", {}), manifest.get("files", {})
        if not isinstance(tables, dict) or not isinstance(files, dict):
            raise TypeError("'tables' and 'files' must be objects")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise DataValidationError(
            f"manifest.json is not a geograph world manifest ({exc}); write the world again "
            "(or delete manifest.json to read the tables unchecked)",
            file=path,
        ) from exc
    if complete is not True:
        raise DataValidationError(
            "this world was not completely written (write_world or `geograph world` was interrupted); "
            "write it again",
            file=path,
        )
    for name in TABLES:
        if name not in tables and find_table(folder, name) is not None:
            raise DataValidationError(
                f"table {name!r} is not part of the world listed in manifest.json; remove it or write "
                "the world again",
                file=find_table(folder, name),
            )
    listed = set(files)
    present = {rel for name in tables for rel in _table_files(folder, name)}
    for rel in sorted(listed ^ present):
        what = "is missing" if rel in listed else "is not listed"
        raise DataValidationError(
            f"table file {what} in manifest.json: the world was changed after write_world wrote it; "
            "write it again (or delete manifest.json if you edited it on purpose)",
            file=folder / rel,
        )
    for rel in sorted(listed):
        entry = files[rel]
        size_ok = (folder / rel).stat().st_size == entry.get("bytes")
        if not size_ok or (checksums and file_sha256(folder / rel) != entry.get("sha256")):
            raise DataValidationError(
                f"file does not match manifest.json ({'size' if not size_ok else 'SHA-256'} differs): it was "
                "damaged or changed after write_world wrote it; write the world again (or delete "
                "manifest.json if you edited it on purpose)",
                file=folder / rel,
            )


def find_table(folder: str | Path, name: str) -> Path | None:
    """Path of table ``name`` in a world folder: ``name.parquet``, ``name.csv`` or ``name/`` (hive).

    Returns None when the table is absent; two candidates at once is an error.
    """
    if name not in TABLES:
        raise ValueError(f"table must be one of {TABLES}, got {name!r}")
    folder = Path(folder)
    found = [
        p
        for p in (folder / f"{name}.parquet", folder / f"{name}.csv", folder / name)
        if p.exists() and (p.is_dir() or p.name != name)  # a Spark-style pois.parquet/ folder is fine
    ]
    if len(found) > 1:
        raise DataValidationError(
            f"table {name!r} is stored twice ({', '.join(p.name for p in found)}); keep one", file=folder
        )
    return found[0] if found else None


def load_world(folder: str | Path, taxonomy: NAICSTaxonomy | None = None) -> World:
    """Read and validate the world stored in ``folder``.

    Each table is ``<name>.parquet``, ``<name>.csv`` or a hive-partitioned folder
    ``<name>/state=XX/part-*.parquet``. ``pois`` and ``covisits`` are required, ``images``
    and ``regions`` optional; co-visits must name known POIs. ``meta.json``, when present,
    becomes :attr:`World.meta`, plus ``meta["source"]`` (the folder and the files read).

    Args:
        folder: The world folder (as written by :func:`write_world`).
        taxonomy: NAICS taxonomy for the POI check (default: 2022 edition).

    Raises:
        DataValidationError: a table is missing, unreadable or breaks its contract; for a
            partitioned table the error names the part file and its row.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataValidationError("world folder not found (expected a directory)", file=folder)
    verify_world(folder)
    paths = {name: find_table(folder, name) for name in TABLES}
    for name in REQUIRED_TABLES:
        if paths[name] is None:
            present = sorted(p.name for p in folder.iterdir())
            raise DataValidationError(
                f"world has no {name} table: expected {name}.parquet, {name}.csv or {name}/ (hive); found {present}",
                file=folder,
            )
    pois = read_pois(paths["pois"], taxonomy=taxonomy)
    covisits = read_covisits(paths["covisits"], pois=pois)
    images = read_images(paths["images"]) if paths["images"] is not None else None
    regions = read_regions(paths["regions"]) if paths["regions"] is not None else None
    meta: dict = {}
    meta_path = folder / META_FILE
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataValidationError(f"meta.json is not valid JSON ({exc})", file=meta_path) from exc
        if not isinstance(meta, dict):
            raise DataValidationError(
                f"meta.json must hold a JSON object, got {type(meta).__name__}", file=meta_path
            )
    meta["source"] = {"folder": str(folder), "files": {k: str(v) for k, v in paths.items() if v is not None}}
    return World(pois=pois, covisits=covisits, images=images, regions=regions, meta=meta)


def scan_table(folder: str | Path, name: str, states: list[str] | None = None) -> pl.LazyFrame:
    """Lazily scan table ``name`` of a world folder, keeping only rows of ``states``.

    Nothing is validated here: collect the frame and pass it to the matching ``read_*``.
    On a hive-partitioned table the state filter prunes whole partitions. A ``covisits``
    table without a ``state`` column is filtered to rows whose ``src_poi_id`` is a POI of
    those states (a semi-join with the scanned POIs).

    Args:
        folder: The world folder.
        name: One of ``pois``, ``covisits``, ``images``, ``regions``.
        states: 2-letter US codes (any case); None keeps every row.

    Raises:
        DataValidationError: the table is absent, a state code is unknown, or the table
            has no way to be filtered by state.
    """
    verify_world(folder, checksums=False)  # an unfinished or changed world: sizes, not SHA-256
    path = find_table(folder, name)
    if path is None:
        raise DataValidationError(f"world has no {name} table", file=folder)
    if path.is_dir():
        lf = _scan_folder(path)
    elif path.suffix == ".csv":
        text_cols = {c: pl.String for c in (STATE, POI_ID, SRC_POI, DST_POI, IMAGE_ID, H3_CELL)}
        lf = pl.scan_csv(path, schema_overrides=text_cols, infer_schema_length=10_000)
    else:
        lf = pl.scan_parquet(path)
    if states is None:
        return lf
    wanted = sorted({str(s).strip().upper() for s in states})
    unknown = [s for s in wanted if s not in US_STATES]
    if unknown:
        raise DataValidationError(f"unknown state code(s) {unknown}; expected 2-letter US codes", field=STATE)
    schema = lf.collect_schema()
    if STATE in schema:
        return lf.filter(pl.col(STATE).is_in(wanted))
    if name == "covisits" and SRC_POI in schema:
        ids = scan_table(folder, "pois", wanted).select(pl.col(POI_ID).cast(pl.String).alias("__key__"))
        keyed = lf.with_columns(pl.col(SRC_POI).cast(pl.String).alias("__key__"))
        return keyed.join(ids, on="__key__", how="semi").drop("__key__")
    raise DataValidationError(
        f"table {name!r} has no {STATE!r} column; it cannot be filtered by state", file=path
    )

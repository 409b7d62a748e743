"""A *world*: the four tables geograph reads (POIs, co-visits, images, regions), and their IO.

A world folder holds ``pois.parquet``, ``covisits.parquet``, ``images.parquet`` and
``regions.parquet`` (CSV files with the same stem are read too), or, when written with
``partition_by="state"``, hive-partitioned folders ``pois/state=CA/part-0.parquet``.
:func:`load_world` reads and validates one; :func:`validate_world` checks the two tables the
analytics queries read; :func:`scan_table` scans one table lazily, filtered to some states.

:func:`write_world` makes a folder atomic as a whole with ``manifest.json``: it first marks
the folder as being written (listing the paths it is about to write), then replaces the tables
(each file atomically), writes ``meta.json``, and last writes the manifest with the size and
SHA-256 of every file it wrote, ``meta.json`` included. A folder whose manifest is unfinished
(a writer was killed) or whose files no longer match it is refused by :func:`load_world`,
:func:`validate_world`, :func:`scan_table` and the analytics queries, so a killed rewrite
never reads as a world that mixes old and new tables. Folders without a manifest (written by
hand or by other tools) are read and validated by the same readers.

The manifest is also the list of files geograph owns in the folder: ``write_world`` with
``overwrite=True`` removes or replaces only those, and refuses a folder where it would have to
remove or replace any other file unless that file is named in ``replace``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from dataclasses import replace as replace_fields
from pathlib import Path

import polars as pl

from geograph.constants import DST_POI, H3_CELL, IMAGE_ID, POI_ID, SRC_POI, STATE
from geograph.data.naics import NAICSTaxonomy
from geograph.data.readers import (
    _scan_folder,
    read_covisits,
    read_images,
    read_pois,
    read_regions,
)
from geograph.data.regions import expected_region, normalize_regions, region_spellings
from geograph.errors import DataValidationError
from geograph.utils.atomic import atomic_write, atomic_write_text, file_sha256, remove_tree, replace_tree

TABLES = ("pois", "covisits", "images", "regions")
REQUIRED_TABLES = ("pois", "covisits")
META_FILE = "meta.json"  # provenance written beside the tables (e.g. by ``geograph world``)
MANIFEST_FILE = "manifest.json"  # written last by write_world: the world's files and their SHA-256
# 1: table files only; 2: meta.json is listed too, "owned" while writing, "validated" tables.
MANIFEST_FORMAT = 2
# Tables that the analytics queries read; write_world records when they passed the readers.
QUERY_TABLES = REQUIRED_TABLES
FOREIGN_SHOWN = 10  # foreign files named in an overwrite error


@dataclass
class World:
    """The four geograph tables as polars DataFrames (``images`` / ``regions`` may be None).

    Attributes:
        pois: One row per venue (see the POI contract in docs/guides/data.md).
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


def _with_covisit_states(world: World) -> World:
    """``world`` with a ``state`` column on its co-visits, the state of each row's source POI
    (as a generated world has it), when the co-visits have none and the POIs have one."""
    cv, pois = world.covisits, world.pois
    if STATE in cv.columns or STATE not in pois.columns or SRC_POI not in cv.columns or POI_ID not in pois.columns:
        return world
    of_poi = pois.select(pl.col(POI_ID).cast(pl.String).alias(SRC_POI), pl.col(STATE)).unique(SRC_POI, keep="first")
    rows = cv.with_columns(pl.col(SRC_POI).cast(pl.String)).join(of_poi, on=SRC_POI, how="left", maintain_order="left")
    return replace_fields(world, covisits=rows.with_columns(cv[SRC_POI]))


def write_world(
    world: World,
    folder: str | Path,
    partition_by: str | None = None,
    overwrite: bool = False,
    replace: Iterable[str] = (),
) -> Path:
    """Write ``world`` under ``folder`` as Parquet, atomically as a whole.

    The folder is first marked as being written (an unfinished ``manifest.json`` that lists
    the paths this write owns), then each table file is replaced atomically, tables of an older
    world that this one lacks are removed, ``meta.json`` is written from ``world.meta`` (removed
    when it is empty), and last ``manifest.json`` records the size and SHA-256 of each table file
    and of ``meta.json``. A process killed on the way leaves a folder that readers refuse (see
    :func:`verify_world`), never one that mixes two worlds.

    Only files that geograph wrote are removed or replaced: with ``overwrite=True`` a folder
    where a table path (``pois.csv``, ``pois.parquet``, ``pois/``...), ``meta.json`` or
    ``manifest.json`` is not listed in geograph's manifest is refused, naming those files,
    unless each is named in ``replace``. Other files in the folder are left alone.

    The POI and co-visit tables are checked with :func:`~geograph.data.read_pois` and
    :func:`~geograph.data.read_covisits` before writing; when they pass, the manifest says so
    (``"validated"``) and :func:`validate_world` trusts the files that match their SHA-256.
    A world that breaks its contracts is still written, and validated again on every read.

    Args:
        world: The tables.
        folder: Destination folder (created).
        partition_by: ``None`` for one file per table, or ``"state"`` for a hive layout
            (``pois/state=CA/part-0.parquet``); tables without a ``state`` column are written whole,
            but for co-visits without one (an imported world), whose rows go to the state of
            their source POI, as per-state loading reads them.
        overwrite: Replace an existing world; without it a non-empty folder is an error.
        replace: Paths relative to ``folder`` (``"pois.csv"``, or a folder such as ``"pois"``)
            that geograph did not write but may remove or replace. Default none.

    Raises:
        DataValidationError: the folder is not empty and ``overwrite`` is False, or the write
            would remove or replace files geograph did not write (named in the message).
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise DataValidationError(
            "output folder is not empty; pass overwrite=True (CLI: --overwrite) to replace it", file=folder
        )
    foreign = foreign_files(folder, replace)
    if foreign:
        raise DataValidationError(foreign_message(foreign, "replace=[...]"), file=folder)
    folder.mkdir(parents=True, exist_ok=True)
    if partition_by == STATE:
        world = _with_covisit_states(world)
    tables = world.tables()
    meta = {k: v for k, v in world.meta.items() if k != "source"}  # "source" is added by load_world
    layout = {
        name: name if partition_by is not None and partition_by in df.columns else f"{name}.parquet"
        for name, df in tables.items()
    }
    claim = {f"{rel}/" if rel == name else rel for name, rel in layout.items()}
    claim |= {f".{name}.partial/" for name, rel in layout.items() if rel == name}
    if meta:
        claim.add(META_FILE)
    owned = sorted((owned_paths(folder) or set()) | claim)
    validated = _passes_readers(world)
    # readers refuse the folder from now on; a killed write leaves what it owns listed
    _write_manifest(folder, {"format": MANIFEST_FORMAT, "complete": False, "owned": owned})
    written: dict[str, str] = {}
    for name in TABLES:
        df = tables.get(name)
        hive = df is not None and layout[name] == name
        keep = None if df is None else folder / layout[name]
        for path in (folder / f"{name}.parquet", folder / f"{name}.csv", folder / name):
            if path == keep or not (path.exists() or path.is_symlink()):
                continue
            if path.is_dir() and not path.is_symlink():  # a table of the old world that this one does not replace
                remove_tree(path)
            else:
                path.unlink()
        if df is None:
            continue
        if STATE in df.columns and df.schema[STATE] in (pl.String, pl.Categorical):
            # region keys in their canonical form (ON -> CA-ON, US-CA -> CA): one hive folder per
            # region, and queries compare keys as written; an unknown key is kept for the readers
            text = df[STATE].cast(pl.String).str.strip_chars()
            canon = {k: v or k for k, v in normalize_regions(text.drop_nulls().unique().to_list()).items()}
            df = df.with_columns(text.replace_strict(canon, default=None).alias(STATE))
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
        written[name] = layout[name]
    if meta:
        atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    else:
        (folder / META_FILE).unlink(missing_ok=True)
    files = {rel: _file_entry(folder / rel) for name in written for rel in _table_files(folder, name)}
    if meta:
        files[META_FILE] = _file_entry(folder / META_FILE)
    # what an earlier, killed write left (a .pois.partial/ folder) stays geograph's to remove
    left = [
        e
        for e in owned
        if e not in files and e != MANIFEST_FILE and e.rstrip("/") not in written.values()
        and (folder / e.rstrip("/")).exists()
    ]
    _write_manifest(
        folder,
        {
            "format": MANIFEST_FORMAT,
            "complete": True,
            "tables": written,
            "files": files,
            "validated": validated,
            "owned": left,
        },
    )
    return folder


def _passes_readers(world: World) -> list[str]:
    """``["pois", "covisits"]`` when both tables pass the readers (co-visits against the POIs), else []."""
    try:
        pois = read_pois(world.pois)
        read_covisits(world.covisits, pois=pois)
    except DataValidationError:
        return []
    return list(QUERY_TABLES)


def owned_paths(folder: str | Path) -> set[str] | None:
    """Paths (relative, POSIX) that geograph's ``manifest.json`` in ``folder`` lists as its own.

    A path ending in ``/`` stands for a folder and everything under it (listed while a
    :func:`write_world` is under way). Returns None when the folder holds no geograph manifest.
    """
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), int) or "complete" not in manifest:
        return None
    files, owned = manifest.get("files", {}), manifest.get("owned", [])
    if not isinstance(files, dict) or not isinstance(owned, list):
        return None
    wrote_meta = {META_FILE} if manifest["format"] < 2 else set()  # format 1 wrote meta.json unlisted
    return {MANIFEST_FILE} | wrote_meta | {str(p) for p in files} | {str(p) for p in owned}


def foreign_files(folder: str | Path, replace: Iterable[str] = ()) -> list[str]:
    """Files in ``folder`` that :func:`write_world` would remove or replace although geograph
    did not write them (they are not listed in its manifest), less those named in ``replace``.

    The paths a write touches are each table's ``<name>.parquet``, ``<name>.csv`` and
    ``<name>/`` (every file under it), ``meta.json`` and ``manifest.json``.

    Args:
        folder: The output folder (need not exist).
        replace: Paths relative to ``folder`` (a folder name covers everything under it).

    Returns:
        Sorted relative POSIX paths; empty when the write touches only geograph's files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    owned = owned_paths(folder) or set()
    named = {_rel_name(folder, r) for r in replace}
    candidates: list[Path] = []
    for name in TABLES:
        candidates += [folder / f"{name}.parquet", folder / f"{name}.csv", folder / name, folder / f".{name}.partial"]
    candidates += [folder / META_FILE, folder / MANIFEST_FILE]
    foreign: list[str] = []
    for path in candidates:
        if not (path.exists() or path.is_symlink()):
            continue
        inside = [path] if path.is_symlink() or not path.is_dir() else [p for p in path.rglob("*") if not p.is_dir()]
        for p in inside:
            rel = p.relative_to(folder).as_posix()
            if not (_covered(rel, owned) or _covered(rel, named)):
                foreign.append(rel)
    return sorted(foreign)


def _rel_name(folder: Path, name: str | Path) -> str:
    p = Path(name)
    if p.is_absolute():
        try:
            p = p.relative_to(folder)
        except ValueError:
            return p.as_posix()
    return p.as_posix().strip("/")


def _covered(rel: str, entries: set[str]) -> bool:
    """``rel`` is one of ``entries`` or lies under one of them (a folder entry, with or without ``/``)."""
    if rel in entries:
        return True
    parts = rel.split("/")
    return any("/".join(parts[:i]) in entries or "/".join(parts[:i]) + "/" in entries for i in range(1, len(parts)))


def foreign_message(foreign: list[str], how: str) -> str:
    """The error for an overwrite that would remove or replace ``foreign`` files; ``how`` says
    how to name them (``"--replace FILE"`` in the CLI)."""
    shown = ", ".join(foreign[:FOREIGN_SHOWN]) + (f" and {len(foreign) - FOREIGN_SHOWN} more" if len(foreign) > FOREIGN_SHOWN else "")
    return (
        f"overwrite removes or replaces only files that geograph wrote (listed in its {MANIFEST_FILE}); "
        f"{len(foreign)} file(s) here are not: {shown}. Move them away, or name each one that may be "
        f"replaced ({how}), or write the world to another folder"
    )


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


def verify_world(folder: str | Path, checksums: bool = True) -> dict | None:
    """Check a world folder against the ``manifest.json`` that :func:`write_world` wrote last.

    Every file the manifest lists (the table files and ``meta.json``) must be there with its
    size and SHA-256, and no table file or ``meta.json`` may be there unlisted. A folder
    without a manifest (written by hand or another tool) passes unchecked.

    Args:
        folder: The world folder.
        checksums: Also compare each file's SHA-256 (reads every file); False checks that the
            manifest is complete and that the files and their sizes match (cheap).

    Returns:
        The manifest (a dict), or None when the folder has none.

    Raises:
        DataValidationError: the manifest is unfinished (a ``write_world`` was interrupted) or
            unreadable, or a listed file is missing, extra or differs from it (naming the file).
    """
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        complete, tables, files = manifest["complete"], manifest.get("tables", {}), manifest.get("files", {})
        if not isinstance(tables, dict) or not isinstance(files, dict):
            raise TypeError("'tables' and 'files' must be objects")
        version = int(manifest.get("format", 1))
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
    if version >= 2 and (folder / META_FILE).is_file():  # format 1 did not list meta.json
        present.add(META_FILE)
    for rel in sorted(listed ^ present):
        what = "is missing" if rel in listed else "is not listed"
        raise DataValidationError(
            f"file {what} in manifest.json: the world was changed after write_world wrote it; "
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
    return manifest


def validate_world(folder: str | Path, taxonomy: NAICSTaxonomy | None = None) -> None:
    """Check the POI and co-visit tables of a world folder, manifest or not.

    The folder is first checked against its ``manifest.json`` (:func:`verify_world`, SHA-256
    included). The two tables are then read and validated with :func:`~geograph.data.read_pois`
    and :func:`~geograph.data.read_covisits` (co-visits against the POIs), the readers that
    training uses, unless the manifest records that :func:`write_world` validated them with
    those readers: their SHA-256 then proves the files are the ones that passed.

    Args:
        folder: The world folder.
        taxonomy: NAICS taxonomy for the POI check (default: 2022 edition).

    Raises:
        DataValidationError: naming the file, row and field of the first problem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataValidationError("world folder not found (expected a directory)", file=folder)
    manifest = verify_world(folder)
    if manifest is not None and taxonomy is None and set(QUERY_TABLES) <= set(manifest.get("validated") or ()):
        return
    paths = _required_tables(folder)
    pois = read_pois(paths["pois"], taxonomy=taxonomy)
    read_covisits(paths["covisits"], pois=pois)


def _required_tables(folder: Path) -> dict[str, Path]:
    """Paths of the required tables, or the error that names what the folder holds instead."""
    paths = {}
    for name in REQUIRED_TABLES:
        path = find_table(folder, name)
        if path is None:
            present = sorted(p.name for p in folder.iterdir())
            raise DataValidationError(
                f"world has no {name} table: expected {name}.parquet, {name}.csv or {name}/ (hive); found {present}",
                file=folder,
            )
        paths[name] = path
    return paths


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
    _required_tables(folder)
    paths = {name: find_table(folder, name) for name in TABLES}
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
        states: Region keys (``CA``, ``US-CA``, ``ON``, ``FI-18``, any case, see
            :mod:`geograph.data.regions`); None keeps every row.

    Raises:
        DataValidationError: the table is absent, a region key is unknown, or the table
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
    canon = normalize_regions(str(s) for s in states)
    unknown = [s for s, c in canon.items() if c is None]
    if unknown:
        raise DataValidationError(
            f"unknown state code(s) {unknown}; {expected_region(unknown[0])}", field=STATE
        )
    wanted = sorted({c for c in canon.values() if c is not None})
    schema = lf.collect_schema()
    if STATE in schema:
        # every accepted spelling of the keys, so the filter prunes partitions and matches raw text
        spellings = [f for k in wanted for f in region_spellings(k)]
        return lf.filter(pl.col(STATE).is_in(spellings))
    if name == "covisits" and SRC_POI in schema:
        ids = scan_table(folder, "pois", wanted).select(pl.col(POI_ID).cast(pl.String).alias("__key__"))
        keyed = lf.with_columns(pl.col(SRC_POI).cast(pl.String).alias("__key__"))
        return keyed.join(ids, on="__key__", how="semi").drop("__key__")
    raise DataValidationError(
        f"table {name!r} has no {STATE!r} column; it cannot be filtered by state", file=path
    )

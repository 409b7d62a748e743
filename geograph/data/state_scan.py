"""Out-of-core access to a world partitioned by state: sizes from metadata, one state at a time.

A "state" is any region key of :mod:`geograph.data.regions` (``CA``, ``CA-ON``, ``FI-18``).

A world written with ``geograph world --partition-by state`` keeps ``pois`` and ``covisits``
as hive folders (``pois/state=CA/part-0.parquet``). :func:`state_sizes` counts rows per state
from the Parquet footers (no data page is read), which is enough to assign states to ranks
before anything big is loaded; :func:`load_state_world` then reads one state's rows, plus the
*halo* POIs of other states within ``halo_km`` of it and any POI of another state that one of
its co-visit rows points to, and validates them like :func:`~geograph.data.load_world` does.
Every part file is scanned lazily with its filter pushed down, so a process holds one state
(plus halo) at a time, never the country.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from geograph.constants import DST_POI, LAT, LON, POI_ID, SRC_POI, STATE
from geograph.data.naics import NAICSTaxonomy
from geograph.data.readers import (
    _READ_ERRORS,
    _Ctx,
    _exc_line,
    _validate_covisits,
    _validate_pois,
    read_images,
    read_regions,
)
from geograph.data.regions import expected_region, normalize_region, normalize_regions
from geograph.data.world_io import META_FILE, World, find_table, verify_world
from geograph.errors import DataValidationError
from geograph.geo.sphere import bounding_box, km_to_chord, unit_xyz

_FILE = "__geograph_file__"
_ROW = "__geograph_row__"
PARTITIONED_TABLES = ("pois", "covisits")
"""Tables that must be hive-partitioned by state for per-state loading."""


def _state_dirs(table_dir: Path) -> dict[str, Path]:
    """``{region key: folder}`` of a hive table partitioned by ``state``, keyed by canonical key.

    Folder names may spell a key any accepted way (``state=US-CA``, ``state=on``); two folders
    naming the same region (``state=CA`` and ``state=US-CA``) are an error.
    """
    out: dict[str, Path] = {}
    for p in sorted(table_dir.iterdir()):
        if p.is_dir() and p.name.startswith(f"{STATE}="):
            text = p.name.split("=", 1)[1]
            try:
                code = normalize_region(text)
            except ValueError:
                raise DataValidationError(
                    f"partition folder {p.name!r} does not name a region; {expected_region(text)}", file=p
                ) from None
            if code in out:
                raise DataValidationError(
                    f"partition folders {out[code].name!r} and {p.name!r} name the same region {code}",
                    file=table_dir,
                )
            out[code] = p
    return out


def is_state_partitioned(folder: str | Path) -> bool:
    """True when ``folder`` is a world whose ``pois`` and ``covisits`` are hive folders by state."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    for name in PARTITIONED_TABLES:
        try:
            path = find_table(folder, name)
        except DataValidationError:
            return False
        if path is None or not path.is_dir() or not _state_dirs(path):
            return False
    return True


def _table_dir(folder: Path, name: str) -> Path:
    path = find_table(folder, name)
    if path is None or not path.is_dir() or not _state_dirs(path):
        raise DataValidationError(
            f"table {name!r} is not partitioned by state (expected {name}/state=XX/part-0.parquet); "
            "write the world with `geograph world --partition-by state`",
            file=folder,
        )
    return path


def _parts(table_dir: Path, states: list[str] | None = None) -> list[tuple[str, Path]]:
    dirs = _state_dirs(table_dir)
    keep = dirs if states is None else {s: dirs[s] for s in states if s in dirs}
    return [(s, f) for s, d in keep.items() for f in sorted(d.rglob("*.parquet"))]


def state_sizes(folder: str | Path) -> dict[str, dict[str, int]]:
    """Rows per state of the ``pois`` and ``covisits`` tables, from Parquet metadata only.

    Args:
        folder: A world folder written with ``partition_by="state"``.

    Returns:
        ``{state: {"pois": n, "covisits": m}}`` for every state that has a POI partition,
        in state order.

    Raises:
        DataValidationError: a table is not partitioned by state or a part file is unreadable,
            or the folder's ``manifest.json`` says a ``write_world`` was interrupted or the files
            differ from what it wrote (sizes only; the checksums would read the whole country).
    """
    folder = Path(folder)
    verify_world(folder, checksums=False)
    out: dict[str, dict[str, int]] = {}
    for name in PARTITIONED_TABLES:
        for state, f in _parts(_table_dir(folder, name)):
            try:
                n = int(pl.scan_parquet(f).select(pl.len()).collect().item())
            except _READ_ERRORS as exc:
                raise DataValidationError(
                    f"cannot read the Parquet footer ({_exc_line(exc)})", file=f
                ) from exc
            out.setdefault(state, {"pois": 0, "covisits": 0})[name] += n
    return {s: out[s] for s in sorted(out) if out[s]["pois"] > 0}


def _scan_parts(
    parts: list[tuple[str, Path]], table: str, where: pl.Expr | None, columns: list[str] | None = None
):
    """Rows of ``parts`` matching ``where``, with the file and the 0-based row of each.

    Each file is scanned lazily with a row index taken before the filter, so the row named in
    an error is the row of that file.
    """
    frames = []
    for state, f in parts:
        try:
            lf = pl.scan_parquet(f, row_index_name=_ROW).with_columns(pl.lit(state).alias(STATE))
            if where is not None:
                lf = lf.filter(where)
            if columns is not None:
                lf = lf.select(*columns, _ROW)
            df = lf.collect()
        except _READ_ERRORS as exc:
            raise DataValidationError(
                f"cannot read {table} partition ({_exc_line(exc)}); is a part file truncated?", file=f
            ) from exc
        if df.height:
            frames.append(df.with_columns(pl.lit(str(f)).alias(_FILE)))
    if not frames:
        return None
    return pl.concat(frames, how="diagonal_relaxed")


def _validated(df: pl.DataFrame, table: str, file: Path, validate) -> pl.DataFrame:
    ctx = _Ctx(str(file), table, origin=df.select(_FILE, pl.col(_ROW).cast(pl.Int64)))
    return validate(df.drop(_FILE, _ROW), ctx)


@dataclass
class StateLoad:
    """What :func:`load_state_world` read for one state.

    Attributes:
        state: The state.
        world: Its tables (the state's POIs first, then halo and endpoint POIs).
        core_pois: Number of the state's own POIs (the first rows of ``world.pois``).
        halo_pois: POIs of other states within ``halo_km``.
        endpoint_pois: POIs of other states that a co-visit row of the state points to.
        files: Part files read, per table.
    """

    state: str
    world: World
    core_pois: int
    halo_pois: int = 0
    endpoint_pois: int = 0
    files: dict[str, list[str]] = field(default_factory=dict)


def _halo_filter(lat: np.ndarray, lon: np.ndarray, halo_km: float) -> pl.Expr:
    """A bounding box around the points, widened by ``halo_km`` (a superset of the halo)."""
    south, north, west, east = (pl.lit(v, pl.Float64) for v in bounding_box(lat, lon, halo_km))
    return pl.col(LAT).is_between(south, north) & pl.col(LON).is_between(west, east)


def load_state_world(
    folder: str | Path, state: str, halo_km: float = 0.0, taxonomy: NAICSTaxonomy | None = None
) -> StateLoad:
    """Read and validate the part of a state-partitioned world that one state needs.

    Reads the state's POI and co-visit partitions, the POIs of other states within
    ``halo_km`` km of one of its POIs (a bounding-box scan, then an exact great-circle test),
    the POIs of other states that its co-visit rows name as ``dst_poi_id``, and the region and
    image rows of the states involved (tables without a ``state`` column are read whole; they
    are per-area tables, not per-record ones).

    Args:
        folder: World folder written with ``partition_by="state"``.
        state: Region key (``CA``, ``CA-ON``, ``FI-18``, any accepted spelling) of a region
            that has a POI partition.
        halo_km: Border halo in km (0: none).
        taxonomy: NAICS taxonomy for the POI check (default: 2022 edition).

    Raises:
        DataValidationError: naming the part file, its row and the field of the first problem.
    """
    from scipy.spatial import cKDTree


    folder = Path(folder)
    try:
        state = normalize_region(state)
    except ValueError as exc:
        raise DataValidationError(str(exc), file=folder, field=STATE) from None
    pois_dir = _table_dir(folder, "pois")
    cov_dir = _table_dir(folder, "covisits")
    own = _parts(pois_dir, [state])
    if not own:
        raise DataValidationError(f"state {state!r} has no POI partition", file=pois_dir, field=STATE)
    taxonomy = taxonomy or NAICSTaxonomy()

    def validate_pois(df):
        return _validated(df, "pois", pois_dir, lambda d, c: _validate_pois(d, c, taxonomy))

    raw = _scan_parts(own, "pois", None)
    if raw is None:
        raise DataValidationError(f"state {state!r} has an empty POI partition", file=own[0][1], field=STATE)
    core = validate_pois(raw)
    files = {"pois": [str(f) for _, f in own]}
    others = [p for p in _parts(pois_dir) if p[0] != state]
    extra: list[pl.DataFrame] = []
    n_halo = 0
    if halo_km > 0 and others:
        lat, lon = core[LAT].to_numpy(), core[LON].to_numpy()
        cand = _scan_parts(others, "pois", _halo_filter(lat, lon, halo_km))
        if cand is not None:
            cand = validate_pois(cand)
            chord = km_to_chord(halo_km)
            d, _ = cKDTree(unit_xyz(lat, lon)).query(
                unit_xyz(cand[LAT].to_numpy(), cand[LON].to_numpy()), k=1, distance_upper_bound=chord
            )
            halo = cand.filter(pl.Series(np.isfinite(d)))
            n_halo = halo.height
            extra.append(halo)
    cov_parts = _parts(cov_dir, [state])
    files["covisits"] = [str(f) for _, f in cov_parts]
    cov_raw = _scan_parts(cov_parts, "covisits", None)
    n_end = 0
    if cov_raw is not None and DST_POI in cov_raw.columns:
        known = pl.concat([core.select(POI_ID)] + [e.select(POI_ID) for e in extra])[POI_ID]
        missing = cov_raw[DST_POI].cast(pl.String).unique()
        missing = missing.filter(~missing.is_in(known.implode()))
        if missing.len():
            ends = _scan_parts(others, "pois", pl.col(POI_ID).cast(pl.String).is_in(missing.implode()))
            if ends is not None:
                ends = validate_pois(ends)
                n_end = ends.height
                extra.append(ends)
    pois = pl.concat([core, *extra], how="vertical_relaxed") if extra else core
    if pois[POI_ID].is_duplicated().any():
        dup = pois[POI_ID].filter(pois[POI_ID].is_duplicated())[0]
        raise DataValidationError(
            f"POI id {dup!r} appears in the partition of {state} and in another state's partition",
            file=pois_dir,
            field=POI_ID,
        )
    if cov_raw is None:
        raise DataValidationError(f"state {state!r} has no co-visit rows", file=cov_dir, field=STATE)
    covisits = _validated(cov_raw, "covisits", cov_dir, lambda d, c: _validate_covisits(d, c, pois))
    if SRC_POI in covisits.columns:
        core_ids = core[POI_ID].implode()
        bad = ~covisits[SRC_POI].is_in(core_ids)
        if bad.any():
            i = int(bad.arg_max())
            raise DataValidationError(
                f"co-visit row in the {state} partition has src_poi_id {covisits[SRC_POI][i]!r}, "
                f"which is not a POI of {state}",
                file=str(cov_raw[_FILE][i]),
                row=int(cov_raw[_ROW][i]),
                field=SRC_POI,
            )
    involved = sorted(set(pois[STATE].unique().to_list()))
    tables = {}
    for name, reader in (("images", read_images), ("regions", read_regions)):
        path = find_table(folder, name)
        if path is None:
            continue
        tables[name] = _read_side_table(path, name, involved, reader)
        files[name] = [str(path)]
    meta: dict = {}
    if (folder / META_FILE).is_file():
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataValidationError(
                f"meta.json is not valid JSON ({exc})", file=folder / META_FILE
            ) from exc
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta["source"] = {"folder": str(folder), "state": state, "files": files}
    world = World(
        pois=pois, covisits=covisits, images=tables.get("images"), regions=tables.get("regions"), meta=meta
    )
    return StateLoad(state, world, core.height, n_halo, n_end, files)


def _read_side_table(path: Path, name: str, states: list[str], reader) -> pl.DataFrame:
    """Image / region rows of ``states`` (whole table when it has no ``state`` column); an empty
    frame with the table's columns when none of them has a row."""
    if path.is_dir() and _state_dirs(path):
        df = _scan_parts(_parts(path, states), name, None)
        if df is None:
            return pl.scan_parquet(next(path.rglob("*.parquet"))).head(0).collect()
        return reader(df.drop(_FILE, _ROW))
    lf = pl.scan_csv(path) if path.suffix == ".csv" else pl.scan_parquet(path)
    if STATE in lf.collect_schema():
        text = pl.col(STATE).cast(pl.String).str.strip_chars()
        seen = lf.select(text.unique()).collect().to_series().drop_nulls().to_list()
        canon = normalize_regions(seen)  # the spellings of the table whose key is one of ``states``
        keep = [v for v in seen if canon[v] in set(states)]
        df = lf.filter(text.is_in(keep)).collect()
        # no row for these states: an empty table keeps the columns, so every state's graph has
        # the same feature columns (readers refuse empty tables, hence no validation here)
        return reader(df) if df.height else df
    return reader(path)

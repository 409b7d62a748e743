"""OpenStreetMap POIs as a geograph POI table: :func:`read_osm_pois` and :func:`import_osm`.

An OpenStreetMap extract (``.osm.pbf``) is read with ``pyrosm``; every node, way or relation
tagged ``amenity``, ``shop``, ``tourism`` or ``leisure`` is a candidate POI. Its tag is mapped
to a 2022 NAICS code by the table shipped as ``geograph/data/osm_naics.csv`` (``tag_key,
tag_value, naics_code, title``; source and method in docs/guides/data.md); elements whose tags
are not in the table (benches, waste baskets, parks...) are counted by tag and dropped.

* ``poi_id`` is ``osm:<node|way|relation>/<id>``: stable across imports of any extract.
* ``latitude`` / ``longitude``: the node, or the centroid of a way's or relation's geometry.
* ``brand`` from the ``brand`` tag; ``brand_wikidata`` (an extra text column) from
  ``brand:wikidata``. pyrosm keeps tags it has no column for in a JSON ``tags`` column.
* ``state``: the region key of the position
  (:func:`geograph.data.regions.region_from_coordinates`, e.g. ``FI-18`` in Helsinki).
* ``name``: the ``name`` tag, else the brand, else ``"unnamed <tag value>"`` (counted).
* ``osm_tag`` (extra text column): the ``key=value`` tag that gave the NAICS code.

OpenStreetMap has no visit data: :func:`import_osm` writes a folder with POIs and no co-visit
table; ``geograph world --pois-from`` generates synthetic co-visits over these POIs.
"""

from __future__ import annotations

import functools
import json
import time
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from geograph.constants import BRAND_COL, LAT, LON, NAICS_CODE, NAME, POI_ID, POIS_FILE, STATE
from geograph.data.naics import NAICSTaxonomy
from geograph.errors import DataValidationError

OSM_TAG_KEYS = ("amenity", "shop", "tourism", "leisure")
"""OSM keys that make an element a candidate POI, in the order a mapped value is looked for."""
OSM_NAICS_FILE = Path(__file__).with_name("osm_naics.csv")
OSM_TAG = "osm_tag"
BRAND_WIKIDATA = "brand_wikidata"
OSM_NAICS_COLUMNS = ("tag_key", "tag_value", "naics_code", "title")
GENERATOR = "geograph.data.osm.import_osm"
_PBF_MAGIC = b"OSMHeader"  # the type of a PBF file's first blob, just after its 4-byte length


@dataclass
class OsmImportReport:
    """What :func:`read_osm_pois` did with an extract.

    Attributes:
        file: The extract read.
        rows_read: Elements (nodes, ways, relations) tagged amenity / shop / tourism / leisure.
        kept: POIs written (a tag mapped to NAICS and a position).
        unmapped: ``"key=value"`` -> elements dropped because no tag of theirs is in the table,
            most frequent first.
        no_position: Elements dropped because pyrosm gave them no geometry.
        from_ways: Kept POIs placed at the centroid of a way or relation.
        unnamed: Kept POIs without a ``name`` tag (named after their brand or tag).
        branded: Kept POIs with a ``brand`` tag.
        regions: Region key -> kept POIs.
        seconds: Wall time of the read.
    """

    file: str
    rows_read: int = 0
    kept: int = 0
    unmapped: dict[str, int] = field(default_factory=dict)
    no_position: int = 0
    from_ways: int = 0
    unnamed: int = 0
    branded: int = 0
    regions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def unmapped_rows(self) -> int:
        """Elements dropped for an unmapped tag."""
        return sum(self.unmapped.values())

    def to_dict(self) -> dict:
        """The report as JSON-ready data (``meta.json`` keeps it under ``"import"``)."""
        return asdict(self)


@functools.lru_cache(maxsize=4)
def _osm_naics_table(path: str) -> pl.DataFrame:
    file = Path(path)
    try:
        df = pl.read_csv(file, schema_overrides={c: pl.String for c in OSM_NAICS_COLUMNS})
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataValidationError(f"cannot read the OSM tag -> NAICS table ({exc})", file=file) from exc
    missing = [c for c in OSM_NAICS_COLUMNS if c not in df.columns]
    if missing:
        raise DataValidationError(f"missing column(s) {missing}; expected {list(OSM_NAICS_COLUMNS)}", file=file)
    tax = NAICSTaxonomy()
    for row, (key, value, code) in enumerate(df.select("tag_key", "tag_value", "naics_code").iter_rows()):
        if key not in OSM_TAG_KEYS:
            raise DataValidationError(f"tag key {key!r} must be one of {list(OSM_TAG_KEYS)}", file=file, row=row, field="tag_key")
        if not value:
            raise DataValidationError("empty tag value", file=file, row=row, field="tag_value")
        if code is None or not tax.is_valid(code):
            raise DataValidationError(
                f"{code!r} is not a 6-digit NAICS 2022 code", file=file, row=row, field="naics_code"
            )
    dup = df.filter(pl.struct("tag_key", "tag_value").is_duplicated())
    if dup.height:
        key, value = dup.row(0)[:2]
        raise DataValidationError(f"tag {key}={value} is listed twice", file=file, field="tag_value")
    return df


def osm_naics_table(path: str | Path | None = None) -> pl.DataFrame:
    """The OSM tag -> NAICS 2022 table, checked (every code exists in the 2022 taxonomy).

    Args:
        path: A CSV with the columns ``tag_key, tag_value, naics_code, title`` (default: the
            table shipped with geograph, ``geograph/data/osm_naics.csv``).

    Raises:
        DataValidationError: naming the file, row and field of a bad entry.
    """
    return _osm_naics_table(str(path or OSM_NAICS_FILE))


def _check_pbf(path: Path) -> None:
    if not path.exists():
        raise DataValidationError("OpenStreetMap extract not found", file=path)
    if not path.is_file():
        raise DataValidationError("expected an OpenStreetMap .osm.pbf file, got a folder", file=path)
    with path.open("rb") as f:
        head = f.read(32)
    if _PBF_MAGIC not in head:
        raise DataValidationError(
            "not an OpenStreetMap PBF file (it does not start with an OSMHeader block); "
            "download a .osm.pbf extract (e.g. from download.geofabrik.de)",
            file=path,
        )


def _read_elements(path: Path) -> pl.DataFrame | None:
    """The tagged elements of an extract as polars: id, osm_type, name, the four keys, tags, lat, lon."""
    import shapely
    from google.protobuf.message import DecodeError
    from pyrosm import OSM
    from pyrosm.exceptions import PBFException

    try:
        with warnings.catch_warnings():  # "Could not find any POIs": read_osm_pois says it, naming the file
            warnings.simplefilter("ignore", UserWarning)
            gdf = OSM(str(path)).get_pois(custom_filter={k: True for k in OSM_TAG_KEYS})
    except (PBFException, DecodeError, zlib.error, EOFError, ValueError, OSError) as exc:
        # a cut or damaged file: pyrosm or protobuf fails on its first bad block
        raise DataValidationError(
            f"cannot read the OpenStreetMap extract, the file may be cut short or damaged ({type(exc).__name__}: {exc})",
            file=path,
        ) from exc
    if gdf is None or len(gdf) == 0:
        return None
    geoms = np.asarray(gdf.geometry.array, dtype=object)
    has = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    # a way's or relation's centroid in lon/lat degrees: venue-sized shapes, so the planar
    # centroid is within metres of the geodesic one
    cent = shapely.centroid(np.where(has, geoms, None))
    text = [c for c in ("name", "brand", "tags", *OSM_TAG_KEYS) if c in gdf.columns]
    cols = {c: gdf[c].astype(object).where(gdf[c].notna(), None).tolist() for c in text}
    df = pl.DataFrame(
        {
            "id": gdf["id"].astype(np.int64).to_numpy(),
            "osm_type": gdf["osm_type"].astype(str).tolist(),
            **cols,
            LAT: np.where(has, shapely.get_y(cent), np.nan),
            LON: np.where(has, shapely.get_x(cent), np.nan),
        },
        schema_overrides={c: pl.String for c in text},
    )
    for c in ("name", "brand", "tags", *OSM_TAG_KEYS):
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, pl.String).alias(c))
    return df


def _mapped_tag(df: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """``osm_tag`` (``key=value`` of the first mapped tag, keys in :data:`OSM_TAG_KEYS` order,
    each value of a ``;`` list in turn) and its ``naics_code``; null when nothing maps, with
    ``_first_tag`` (the first tag present) to count it by."""
    lookup = table.select(
        (pl.col("tag_key") + "=" + pl.col("tag_value")).alias(OSM_TAG), pl.col("naics_code").alias(NAICS_CODE)
    )
    rows = df.with_row_index("_row")
    cands = pl.concat(
        [
            rows.select(
                "_row",
                pl.lit(i).alias("_key_rank"),
                pl.col(k).str.split(";").alias("_value"),
            )
            .explode("_value")
            .with_columns(pl.int_range(pl.len()).over("_row").alias("_value_rank"))
            .filter(pl.col("_value").is_not_null())
            .select("_row", "_key_rank", "_value_rank", (pl.lit(f"{k}=") + pl.col("_value").str.strip_chars()).alias(OSM_TAG))
            for i, k in enumerate(OSM_TAG_KEYS)
        ]
    )
    best = (
        cands.join(lookup, on=OSM_TAG, how="inner")
        .sort("_row", "_key_rank", "_value_rank")
        .unique("_row", keep="first", maintain_order=True)
        .select("_row", OSM_TAG, NAICS_CODE)
    )
    first = pl.coalesce([pl.concat_str([pl.lit(f"{k}="), pl.col(k)]) for k in OSM_TAG_KEYS]).alias("_first_tag")
    return rows.with_columns(first).join(best, on="_row", how="left").drop("_row")


def read_osm_pois(
    path: str | Path, naics_table: str | Path | None = None
) -> tuple[pl.DataFrame, OsmImportReport]:
    """Read the POIs of an OpenStreetMap extract as a table in geograph's POI contract.

    Args:
        path: An ``.osm.pbf`` extract (e.g. from download.geofabrik.de or BBBike).
        naics_table: The tag -> NAICS table (default: ``geograph/data/osm_naics.csv``).

    Returns:
        ``(pois, report)``: the POIs (``poi_id, name, brand, naics_code, latitude, longitude,
        state``, then ``osm_tag`` and ``brand_wikidata``; sorted by ``poi_id``) and an
        :class:`OsmImportReport` (rows read, kept, unmapped by tag).

    Raises:
        DataValidationError: naming the file when it is missing, not an OSM PBF file, holds
            no amenity / shop / tourism / leisure element, or none of them maps to NAICS.
    """
    from geograph.data.regions import region_from_coordinates

    t0 = time.perf_counter()
    path = Path(path)
    _check_pbf(path)
    table = osm_naics_table(naics_table)
    report = OsmImportReport(file=str(path))
    df = _read_elements(path)
    if df is None:
        raise DataValidationError(
            f"the extract holds no element tagged {', '.join(OSM_TAG_KEYS)}: no POIs to import", file=path
        )
    report.rows_read = df.height
    df = _mapped_tag(df, table)
    unmapped = df.filter(pl.col(NAICS_CODE).is_null())
    counts = unmapped.group_by("_first_tag").len().sort(["len", "_first_tag"], descending=[True, False])
    report.unmapped = {str(k): int(n) for k, n in counts.iter_rows()}
    df = df.filter(pl.col(NAICS_CODE).is_not_null())
    located = df[LAT].is_not_nan() & df[LON].is_not_nan()
    report.no_position = int((~located).sum())
    df = df.filter(located)
    if df.height == 0:
        raise DataValidationError(
            f"none of the {report.rows_read} tagged elements has a tag listed in the OSM -> NAICS table "
            f"(most frequent: {', '.join(list(report.unmapped)[:5])})",
            file=path,
        )
    brand = pl.coalesce(pl.col("brand"), pl.col("tags").str.json_path_match("$.brand")).str.strip_chars()
    wikidata = pl.col("tags").str.json_path_match("$['brand:wikidata']").str.strip_chars()
    df = df.with_columns(
        pl.when(brand.str.len_chars() > 0).then(brand).alias(BRAND_COL),
        pl.when(wikidata.str.len_chars() > 0).then(wikidata).alias(BRAND_WIKIDATA),
        pl.col("name").str.strip_chars().alias("name"),
    )
    value = pl.col(OSM_TAG).str.split("=").list.get(1).str.replace_all("_", " ")
    named = pl.col("name").is_not_null() & (pl.col("name").str.len_chars() > 0)
    lat, lon = df[LAT].to_numpy(), df[LON].to_numpy()
    pois = (
        df.with_columns(
            pl.concat_str([pl.lit("osm:"), pl.col("osm_type"), pl.lit("/"), pl.col("id").cast(pl.String)]).alias(POI_ID),
            pl.when(named).then(pl.col("name")).otherwise(pl.coalesce(pl.col(BRAND_COL), pl.lit("unnamed ") + value)).alias(NAME),
            pl.Series(STATE, list(region_from_coordinates(lat, lon)), dtype=pl.String),
            (~named).alias("_unnamed"),
            (pl.col("osm_type") != "node").alias("_way"),
        )
        .sort(POI_ID)
    )
    report.kept = pois.height
    report.unnamed = int(pois["_unnamed"].sum())
    report.from_ways = int(pois["_way"].sum())
    report.branded = int(pois[BRAND_COL].is_not_null().sum())
    report.regions = {str(k): int(n) for k, n in pois.group_by(STATE).len().sort(["len", STATE], descending=[True, False]).iter_rows()}
    pois = pois.select(POI_ID, NAME, BRAND_COL, NAICS_CODE, LAT, LON, STATE, OSM_TAG, BRAND_WIKIDATA)
    report.seconds = time.perf_counter() - t0
    return pois, report


def write_pois_folder(
    pois: pl.DataFrame,
    folder: str | Path,
    meta: dict,
    *,
    overwrite: bool = False,
    replace: Iterable[str] = (),
) -> Path:
    """Write a data folder that holds POIs and no co-visits: ``pois.parquet``, ``meta.json``
    and ``manifest.json``, with the manifest protocol of
    :func:`~geograph.data.world_io.write_world` (marked unfinished first, each file atomic, the
    manifest with sizes and SHA-256 last; with ``overwrite`` only files geograph wrote, or named
    in ``replace``, are removed or replaced: the tables of an older world in the folder go).

    ``load_world`` refuses such a folder (it has no co-visit table); ``geograph world
    --pois-from`` reads its POIs.

    Raises:
        DataValidationError: the folder is not empty and ``overwrite`` is False, or the write
            would remove or replace files geograph did not write (named in the message).
    """
    from geograph.data.world_io import (
        MANIFEST_FORMAT,
        META_FILE,
        TABLES,
        _file_entry,
        _write_manifest,
        foreign_files,
        foreign_message,
        owned_paths,
    )
    from geograph.utils.atomic import atomic_write, atomic_write_text, remove_tree

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataValidationError("output path exists and is not a folder", file=folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise DataValidationError("output folder is not empty; pass overwrite=True (CLI: --overwrite) to replace its data", file=folder)
    foreign = foreign_files(folder, replace)
    if foreign:
        raise DataValidationError(foreign_message(foreign, "replace=[...], CLI: --replace FILE"), file=folder)
    folder.mkdir(parents=True, exist_ok=True)
    owned = sorted((owned_paths(folder) or set()) | {POIS_FILE, META_FILE})
    _write_manifest(folder, {"format": MANIFEST_FORMAT, "complete": False, "owned": owned})
    for name in TABLES:  # an older world's tables (owned, or named in replace: checked above)
        for path in (folder / f"{name}.parquet", folder / f"{name}.csv", folder / name):
            if path.name == POIS_FILE or not (path.exists() or path.is_symlink()):
                continue
            if path.is_dir() and not path.is_symlink():
                remove_tree(path)
            else:
                path.unlink()
    with atomic_write(folder / POIS_FILE, suffix=".parquet") as tmp:
        pois.write_parquet(tmp)
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    files = {rel: _file_entry(folder / rel) for rel in (POIS_FILE, META_FILE)}
    _write_manifest(
        folder,
        {"format": MANIFEST_FORMAT, "complete": True, "tables": {"pois": POIS_FILE}, "files": files,
         "validated": [], "owned": []},
    )
    return folder


def osm_world_meta(path: str | Path, report: OsmImportReport) -> dict:
    """``meta.json`` of an imported extract: the source file, the import report, no co-visits."""
    return {
        "generator": GENERATOR,
        "osm_file": Path(path).name,
        "naics_edition": 2022,
        "naics_table": "geograph/data/osm_naics.csv",
        "covisits": "none: OpenStreetMap has no visit data; `geograph world --pois-from` generates synthetic ones",
        "import": {k: v for k, v in report.to_dict().items() if k != "file"},
    }


def import_osm(
    path: str | Path,
    out: str | Path,
    *,
    naics_table: str | Path | None = None,
    overwrite: bool = False,
    replace: Iterable[str] = (),
) -> OsmImportReport:
    """Import the POIs of an OpenStreetMap extract as a geograph data folder.

    The folder holds ``pois.parquet`` (see :func:`read_osm_pois`), ``meta.json`` (the source
    file and the report) and ``manifest.json``, written by :func:`write_pois_folder`. It has
    **no co-visit table**: OpenStreetMap has no visit data; ``geograph world --pois-from OUT``
    generates synthetic co-visits over these POIs.

    Args:
        path: The ``.osm.pbf`` extract.
        out: The output folder.
        naics_table: The tag -> NAICS table (default: the shipped one).
        overwrite: Replace a world in ``out``; without it a non-empty folder is an error.
        replace: Files in ``out`` geograph did not write but may replace (see ``write_world``).

    Returns:
        The :class:`OsmImportReport`.
    """
    pois, report = read_osm_pois(path, naics_table)
    write_pois_folder(pois, out, osm_world_meta(path, report), overwrite=overwrite, replace=replace)
    return report

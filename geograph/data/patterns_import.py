"""Import SafeGraph / Advan Monthly and Weekly Patterns files as a geograph world folder.

:func:`import_patterns` reads many Patterns files (CSV or CSV.gz) one at a time: each file is
read with polars, its rows checked, and only the compact outputs (POI rows and brand-level
co-visit rows) are kept, so memory is bounded by the largest file, not by all of them. The
output is a world folder written with :func:`~geograph.data.world_io.write_world`
(``pois.parquet``, ``covisits.parquet``, ``meta.json``, ``manifest.json``), plus
``rejected.csv`` and ``import_summary.json``, ready for ``geograph graph``, ``train`` and
``query``.

Rules (see docs/guides/data.md, "Import vendor patterns"):

* **Period** of a row: from ``date_range_start`` (an ISO date, time and offset ignored). A row
  whose ``date_range_end`` is at most 8 days later is weekly and its period is the ISO week
  (``2023-W05``); any other row is monthly (``2023-01``).
* **Co-visits**: each row's ``related_same_month_brand`` map (``related_same_week_brand`` in
  Weekly Patterns; ``window="same_day"``: ``related_same_day_brand``) becomes
  ``(src_poi_id, dst_brand, state, visitors, pct, period, window)`` rows as in
  :func:`~geograph.data.read_patterns`; ``period`` is the row's month or week. These
  brand-level rows are kept in ``brand_covisits.parquet``; ``covisits.parquet`` holds POI-to-POI
  rows (``src_poi_id, dst_poi_id, visitors, period, window``): each brand row's visitors split
  evenly over the ``brand_targets`` (default 10) POIs of that brand nearest to the source POI
  in its state, so that the analytics queries can read them.
* **A placekey in many periods** is one POI: the attributes of its latest period are kept and
  placekeys whose attributes differ between periods are counted (``placekey_conflicts``). The
  same placekey twice in one period is a rejected row (the later one).
* **Row-level errors** (malformed CSV quoting, text that is not UTF-8, a missing value, a
  latitude out of range, an unknown region or NAICS code, a JSON map that does not parse, a
  gzip file cut short): with ``on_error="skip"`` each goes to ``rejected.csv`` (file, line,
  field, kind, action, reason; ``line`` is the 1-based line of the file, the header is line
  1) and the import goes on; a bad map drops the map only and keeps the POI. With
  ``on_error="fail"`` the first one raises :class:`~geograph.errors.DataValidationError`
  naming file, line and field, and nothing is written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from geograph.constants import (
    BRAND_COL,
    DST_BRAND,
    DST_POI,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    PERIOD,
    POI_ID,
    SRC_POI,
    STATE,
    VISITORS,
)
from geograph.data.naics import NAICSTaxonomy, check_vintage
from geograph.data.readers import _READ_ERRORS, _exc_line, _show, read_pois
from geograph.data.safegraph import (
    DATE_RANGE_END,
    DATE_RANGE_START,
    LOCATION_NAME,
    PATTERNS_REQUIRED,
    PCT,
    PLACEKEY,
    POI_CBG,
    RAW_VISITOR_COUNTS,
    REGION,
    RELATED_SAME_DAY,
    RELATED_SAME_MONTH,
    RELATED_SAME_WEEK,
    WINDOWS,
    read_patterns,
)
from geograph.data.world_io import (
    MANIFEST_FILE,
    World,
    foreign_files,
    foreign_message,
    owned_paths,
    write_world,
)
from geograph.errors import ConfigError, DataValidationError
from geograph.utils.atomic import atomic_write, atomic_write_text, file_sha256

WINDOW = "window"
"""Co-visit column naming the vendor map a row came from (``same_month``, ``same_week``, ``same_day``)."""
REJECTED_FILE = "rejected.csv"
SUMMARY_FILE = "import_summary.json"
BRAND_COVISITS_FILE = "brand_covisits.parquet"
"""The vendor's brand-level rows, before they are split over the brand's POIs."""
EXTRA_FILES = (BRAND_COVISITS_FILE, REJECTED_FILE, SUMMARY_FILE)
REJECTED_COLUMNS = ("file", "line", "field", "kind", "action", "reason")
COLUMN_MAP_TARGETS = (*PATTERNS_REQUIRED, DATE_RANGE_START, DATE_RANGE_END, *WINDOWS)
"""Columns a ``column_map`` may name as targets."""
IMPORT_WINDOWS = ("same_period", "same_day")
WEEKLY_MAX_DAYS = 8  # date_range_end - date_range_start of a weekly row (7 days, a little slack)
MAX_RECORD_LINES = 100  # lines one quoted CSV field may span before its open quote counts as malformed
DROP_ROW, DROP_MAP = "row dropped", "map dropped"
_LINE = "__line__"
_GZIP_MAGIC = b"\x1f\x8b"
# Attributes compared between the periods of one placekey (raw_visitor_counts changes monthly by nature).
_ATTRIBUTES = (NAME, BRAND_COL, NAICS_CODE, LAT, LON, STATE, POI_CBG)
OnError = Literal["skip", "fail", "raise"]


@dataclass
class ImportSummary:
    """What :func:`import_patterns` read, kept and rejected (also ``import_summary.json``).

    Attributes:
        out: The world folder written.
        files: Input files read.
        rows_read: Data rows read (every line after the header that held a record).
        rows_kept: Rows that became a POI row of their period.
        rows_rejected: Rows dropped, each listed in ``rejected.csv``.
        maps_dropped: Rows whose co-visit map was dropped (the POI kept), also listed there.
        rejected_by_kind: ``rejected.csv`` entries per kind (``malformed_csv``, ``out_of_range``...).
        rows_other_periods: Rows of periods not asked for (``periods``), not read further.
        pois: POIs written (one per placekey).
        brand_covisit_rows: Brand-level rows read from the maps (``brand_covisits.parquet``).
        brand_rows_without_target: Of those, rows whose brand has no other POI in the source
            POI's state (or whose shares are all 0 visitors): they give no POI-to-POI row.
        covisit_rows: POI-to-POI co-visit rows written (``covisits.parquet``).
        periods: The periods of the co-visit rows, sorted.
        placekey_conflicts: Placekeys whose attributes differ between periods (latest kept).
        naics_recoded: Kept rows whose NAICS code became a different 2022 code.
        unknown_brands: Brands named in maps but carried by no POI (no POI-to-POI edge).
        seconds: Wall time of the import, writing included.
        rows_per_s: ``rows_read / seconds``.
    """

    out: str
    files: int
    rows_read: int
    rows_kept: int
    rows_rejected: int
    maps_dropped: int
    rejected_by_kind: dict[str, int]
    rows_other_periods: int
    pois: int
    brand_covisit_rows: int
    brand_rows_without_target: int
    covisit_rows: int
    periods: list[str]
    placekey_conflicts: int
    naics_recoded: int
    unknown_brands: int
    seconds: float
    rows_per_s: float
    per_file: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _State:
    """What the files read so far left: compact outputs, rejects and counters."""

    on_error: str
    rejects: list[dict[str, Any]] = field(default_factory=list)
    pois: list[pl.DataFrame] = field(default_factory=list)
    covisits: list[pl.DataFrame] = field(default_factory=list)
    seen: list[pl.DataFrame] = field(default_factory=list)  # (placekey, period, file, line) kept so far
    counts: Counter = field(default_factory=Counter)
    regions: dict[str, str | None] = field(default_factory=dict)  # region value -> reason, None when valid
    periods_seen: set[str] = field(default_factory=set)  # every period of the files, asked for or not

    def reject(self, file: str, line: int, fld: str, kind: str, reason: str, action: str = DROP_ROW) -> None:
        self.rejects.append(
            {"file": file, "line": line, "field": fld, "kind": kind, "action": action, "reason": reason}
        )


# ---------------------------------------------------------------------------------------
# reading one file into string columns and line numbers
# ---------------------------------------------------------------------------------------
def _read_bytes(path: Path) -> tuple[bytes, bool]:
    """The file's bytes, gunzipped when it is gzip (by its magic bytes); True when cut short."""
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw, False
    parts: list[bytes] = []
    data = raw
    while data[:2] == _GZIP_MAGIC:  # a .gz file may hold several members back to back
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            parts.append(d.decompress(data))
        except zlib.error as exc:
            raise DataValidationError(
                f"not a readable gzip file ({exc}); is it damaged? Decompress it with gzip -t to see where",
                file=path,
            ) from exc
        if not d.eof:
            parts.append(d.flush())
            return b"".join(parts), True
        data = d.unused_data
    return b"".join(parts), False


def _split_records(body: bytes, path: Path, state: _State) -> tuple[list[str], list[int]]:
    """Records of a CSV text one line at a time: ``(texts, lines)``, bad lines rejected.

    The slow path, taken only when polars cannot read the file whole or its rows do not match
    its lines: each line is one record unless an open quote carries it over the next lines.
    """
    lines = body.split(b"\n")
    header = lines[0].rstrip(b"\r").decode("utf-8-sig", errors="replace")
    ncols = len(next(csv.reader([header])))
    texts, starts = [header], []
    i = 1
    while i < len(lines):
        raw = lines[i].rstrip(b"\r")
        lineno = i + 1
        if not raw.strip():
            i += 1
            continue
        try:
            rec = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            state.reject(
                str(path),
                lineno,
                "",
                "not_utf8",
                f"line is not UTF-8 text ({exc.reason} at byte {exc.start})",
            )
            i += 1
            continue
        j = i + 1
        while rec.count('"') % 2 and j < len(lines) and j - i < MAX_RECORD_LINES:
            rec += "\n" + lines[j].rstrip(b"\r").decode("utf-8", errors="replace")
            j += 1
        problem = None
        try:
            fields = list(csv.reader(io.StringIO(rec, newline=""), strict=True))
            if len(fields) != 1:
                problem = "malformed CSV quoting (an open quote runs into the next lines)"
            elif len(fields[0]) != ncols:
                problem = (
                    f"has {len(fields[0])} fields, the header has {ncols} (check its quoting and commas)"
                )
        except csv.Error as exc:
            problem = f"malformed CSV quoting ({exc})"
        if rec.count('"') % 2:
            problem = "malformed CSV quoting (a quote is opened and never closed)"
        if problem is None:
            texts.append(rec)
            starts.append(lineno)
            i = j
        else:
            state.reject(
                str(path), lineno, "", "malformed_csv", f"{problem}: {_show(raw.decode('utf-8', 'replace'))}"
            )
            i += 1
    return texts, starts


def _read_csv(path: Path, state: _State, column_map: Mapping[str, str]) -> tuple[pl.DataFrame, list[str]]:
    """The Patterns columns of one file as text, plus ``__line__`` (1-based, header is line 1).

    Other columns (``visits_by_day``, ``visitor_home_cbgs``...) are not kept.
    """
    data, cut = _read_bytes(path)
    if not data.strip():
        raise DataValidationError("file is empty; expected a Patterns CSV with a header line", file=path)
    nl = data.find(b"\n")
    header = next(
        csv.reader([(data if nl < 0 else data[:nl]).rstrip(b"\r").decode("utf-8-sig", errors="replace")])
    )
    keep = [c for c in dict.fromkeys(header) if column_map.get(c, c) in COLUMN_MAP_TARGETS] or header[:1]
    if cut:
        end = data.rfind(b"\n")
        if end < 0:
            raise DataValidationError("gzip file is cut short before the end of its header line", file=path)
        data = data[: end + 1]
        line = data.count(b"\n") + 1
        state.reject(
            str(path),
            line,
            "",
            "file_cut_short",
            f"the gzip stream ends early (file cut short): line {line} is incomplete and anything after it is missing",
        )
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    try:
        df = pl.read_csv(io.BytesIO(data), infer_schema=False, columns=keep)
        if df.height == n_lines - 1:
            return df.with_columns(pl.int_range(2, df.height + 2, dtype=pl.Int64).alias(_LINE)), header
    except _READ_ERRORS:
        pass  # malformed quoting or bytes that are not UTF-8: find the lines one by one
    texts, starts = _split_records(data, path, state)
    try:
        df = pl.read_csv(io.StringIO("\n".join(texts) + "\n"), infer_schema=False, columns=keep)
    except _READ_ERRORS as exc:
        raise DataValidationError(f"cannot read CSV file ({_exc_line(exc)})", file=path) from exc
    if df.height != len(starts):
        raise DataValidationError(
            f"cannot read CSV file: {df.height} records for {len(starts)} well-formed lines", file=path
        )
    return df.with_columns(pl.Series(_LINE, starts, dtype=pl.Int64)), header


# ---------------------------------------------------------------------------------------
# column map and required columns
# ---------------------------------------------------------------------------------------
def read_column_map(path: str | Path) -> dict[str, str]:
    """Read a ``--column-map`` YAML file: ``vendor column: Patterns column`` lines.

    Raises:
        ConfigError: the file is missing or not a mapping of text to text, or a target is not
            a Patterns column (the message names the file and the column).
    """
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"column map {path}: cannot read it ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"column map {path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            f"column map {path}: expected a mapping 'vendor column: patterns column', got {_show(raw)}"
        )
    return check_column_map(raw, source=str(path))


def check_column_map(column_map: Mapping[Any, Any], source: str = "column_map") -> dict[str, str]:
    """Check a vendor -> Patterns column map: text to text, known targets, no target twice."""
    out: dict[str, str] = {}
    for k, v in column_map.items():
        if not isinstance(k, str) or not isinstance(v, str) or not k or not v:
            raise ConfigError(
                f"{source}: every entry must map a column name to a column name, got {k!r}: {v!r}"
            )
        if v not in COLUMN_MAP_TARGETS:
            raise ConfigError(
                f"{source}: {k!r} is mapped to {v!r}, which is not a Patterns column; targets: {list(COLUMN_MAP_TARGETS)}"
            )
        if v in out.values():
            raise ConfigError(f"{source}: several columns are mapped to {v!r}")
        out[k] = v
    return out


def _apply_map(
    df: pl.DataFrame,
    header: list[str],
    path: Path,
    column_map: Mapping[str, str],
    map_name: str | None,
    window: str,
) -> tuple[pl.DataFrame, str]:
    """Rename the vendor columns; check the needed ones; return the frame and its map column."""
    if column_map:
        clash = [v for k, v in column_map.items() if k in header and v in header and v not in column_map]
        if clash:
            raise DataValidationError(
                f"the column map {map_name or ''} renames a column to {clash[0]!r}, which the file already has",
                file=path,
                field=clash[0],
            )
        df = df.rename({k: v for k, v in column_map.items() if k in df.columns})
    if window == "same_day":
        map_col = RELATED_SAME_DAY
    else:
        map_col = (
            RELATED_SAME_WEEK
            if RELATED_SAME_WEEK in df.columns and RELATED_SAME_MONTH not in df.columns
            else RELATED_SAME_MONTH
        )
    needed = (*PATTERNS_REQUIRED, DATE_RANGE_START, map_col)
    for col in needed:
        if col in df.columns:
            continue
        found = header
        if column_map:
            srcs = [k for k, v in column_map.items() if v == col]
            how = (
                f"the column map {map_name} maps {srcs[0]!r} to it but the file has no {srcs[0]!r}"
                if srcs
                else f"the column map {map_name} maps no column of the file to it"
            )
        else:
            how = "name the file's column for it with a column map (--column-map)"
        if col == RELATED_SAME_MONTH:
            col_text = f"{RELATED_SAME_MONTH!r} (Monthly Patterns) or {RELATED_SAME_WEEK!r} (Weekly)"
        else:
            col_text = repr(col)
        raise DataValidationError(
            f"missing Patterns column {col_text}: {how}; columns found: {found}", file=path, field=col
        )
    keep = [*needed, *([DATE_RANGE_END] if DATE_RANGE_END in df.columns else []), _LINE]
    return df.select(keep), map_col


# ---------------------------------------------------------------------------------------
# row checks
# ---------------------------------------------------------------------------------------
def _with_periods(df: pl.DataFrame) -> pl.DataFrame:
    start = pl.col(DATE_RANGE_START).str.strip_chars().str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    if DATE_RANGE_END in df.columns:
        end = pl.col(DATE_RANGE_END).str.strip_chars().str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        weekly = (end - start).dt.total_days() <= WEEKLY_MAX_DAYS
    else:
        weekly = pl.lit(False)
    period = (
        pl.when(weekly.fill_null(False))
        .then(start.dt.strftime("%G-W%V"))
        .otherwise(start.dt.strftime("%Y-%m"))
    )
    return df.with_columns(period.alias(PERIOD))


def _missing(col: str) -> pl.Expr:
    return pl.col(col).is_null() | (pl.col(col).str.strip_chars() == "")


def _number_checks(col: str, lo: float | None, hi: float | None) -> list[tuple[pl.Expr, str, pl.Expr]]:
    f = pl.col(col).str.strip_chars().cast(pl.Float64, strict=False)
    checks = [
        (_missing(col) | f.is_nan(), "missing_value", pl.lit(f"missing {col}; every row needs a number")),
        (f.is_null(), "bad_number", pl.format(f"{col} must be a number, got '{{}}'", pl.col(col))),
    ]
    if lo is not None:
        checks.append(
            (
                (f < lo) | (f > hi) | f.is_infinite(),
                "out_of_range",
                pl.format(f"{col} must be in [{lo:g}, {hi:g}], got {{}}", pl.col(col)),
            )
        )
    else:
        checks.append(
            (
                (f < 0) | (f != f.floor()) | f.is_infinite() | (f >= 2.0**63),
                "bad_count",
                pl.format(f"{col} must be a whole number >= 0, got {{}}", pl.col(col)),
            )
        )
    return checks


def _row_checks() -> list[tuple[str, pl.Expr, str, pl.Expr]]:
    """``(field, bad, kind, reason)`` of each check, in the order a row is judged."""
    out: list[tuple[str, pl.Expr, str, pl.Expr]] = []
    for col in (PLACEKEY, LOCATION_NAME):
        out.append((col, _missing(col), "missing_value", pl.lit(f"missing {col}; every row needs one")))
    for col, lo, hi in ((LAT, -90.0, 90.0), (LON, -180.0, 180.0), (RAW_VISITOR_COUNTS, None, None)):
        out += [(col, bad, kind, reason) for bad, kind, reason in _number_checks(col, lo, hi)]
    out.append((REGION, _missing(REGION), "missing_value", pl.lit(f"missing {REGION}; every row needs one")))
    return out


def _region_errors(values: Iterable[str], state: _State) -> dict[str, str]:
    """Region values the POI contract refuses -> reason, checked once per distinct value with
    :func:`~geograph.data.read_pois` (whatever region keys it accepts)."""
    todo = [v for v in dict.fromkeys(values) if v not in state.regions]
    while todo:
        n = len(todo)
        frame = pl.DataFrame(
            {
                POI_ID: [str(i) for i in range(n)],
                NAME: ["x"] * n,
                BRAND_COL: [None] * n,
                NAICS_CODE: ["722511"] * n,
                LAT: [0.0] * n,
                LON: [0.0] * n,
                STATE: todo,
            },
            schema_overrides={BRAND_COL: pl.String},
        )
        try:
            read_pois(frame)
        except DataValidationError as exc:
            if exc.field != STATE or exc.row is None:
                raise
            state.regions[todo.pop(exc.row)] = (
                f"{exc.reason} (Patterns column {REGION!r} becomes geograph's {STATE!r})"
            )
            continue
        state.regions.update(dict.fromkeys(todo))
        todo = []
    return {v: r for v in values if (r := state.regions.get(v)) is not None}


def _judge_rows(df: pl.DataFrame, path: Path, state: _State) -> pl.DataFrame:
    """Reject rows with a bad field (first failing check per row); return the others."""
    checks = _row_checks()
    date_bad = pl.col(PERIOD).is_null()
    date_reason = pl.format(
        f"{DATE_RANGE_START} must be an ISO date (YYYY-MM-DD...), got '{{}}'", pl.col(DATE_RANGE_START)
    )
    checks.insert(0, (DATE_RANGE_START, date_bad, "bad_date", date_reason))
    fld: pl.Expr = pl.lit(None, dtype=pl.String)
    kind: pl.Expr = pl.lit(None, dtype=pl.String)
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    for name, bad, k, why in reversed(checks):  # the first check that fails wins
        cond = bad.fill_null(False)
        fld = pl.when(cond).then(pl.lit(name)).otherwise(fld)
        kind = pl.when(cond).then(pl.lit(k)).otherwise(kind)
        reason = pl.when(cond).then(why).otherwise(reason)
    judged = df.with_columns(fld.alias("__field__"), kind.alias("__kind__"), reason.alias("__reason__"))
    bad_rows = judged.filter(pl.col("__field__").is_not_null())
    for line, f, k, r in bad_rows.select(_LINE, "__field__", "__kind__", "__reason__").iter_rows():
        state.reject(str(path), line, f, k, r)
    ok = judged.filter(pl.col("__field__").is_null()).drop("__field__", "__kind__", "__reason__")
    regions = _region_errors(ok[REGION].unique().to_list(), state)
    if regions:
        bad_region = ok.filter(pl.col(REGION).is_in(list(regions)))
        for line, value in bad_region.select(_LINE, REGION).iter_rows():
            state.reject(str(path), line, REGION, "bad_region", regions[value])
        ok = ok.filter(~pl.col(REGION).is_in(list(regions)))
    return ok


def _drop_duplicates(df: pl.DataFrame, path: Path, state: _State) -> pl.DataFrame:
    """Reject the second and later rows of a placekey in one period (this file and earlier ones)."""
    first = df.group_by(PLACEKEY, PERIOD).agg(pl.col(_LINE).min().alias("__first__"))
    dup = df.join(first, on=[PLACEKEY, PERIOD]).filter(pl.col(_LINE) != pl.col("__first__"))
    for line, key, period, first_line in dup.select(_LINE, PLACEKEY, PERIOD, "__first__").iter_rows():
        state.reject(
            str(path),
            line,
            PLACEKEY,
            "duplicate_placekey",
            f"placekey {key!r} appears twice in period {period} (first at line {first_line}); the later row is dropped",
        )
    df = df.filter(~pl.col(_LINE).is_in(dup[_LINE].implode()))
    if state.seen:
        seen = pl.concat(state.seen)
        again = df.join(seen, on=[PLACEKEY, PERIOD], how="inner", suffix="_seen")
        for line, key, period, f, first_line in again.select(
            _LINE, PLACEKEY, PERIOD, "__file__", "__first_line__"
        ).iter_rows():
            state.reject(
                str(path),
                line,
                PLACEKEY,
                "duplicate_placekey",
                f"placekey {key!r} appears twice in period {period} (first in {f} line {first_line}); the later row is dropped",
            )
        df = df.filter(~pl.col(_LINE).is_in(again[_LINE].implode()))
    return df


def _read_period(
    part: pl.DataFrame,
    path: Path,
    period: str,
    window: str,
    map_col: str,
    naics_vintage: str,
    taxonomy: NAICSTaxonomy | None,
    state: _State,
) -> None:
    """Turn one period's checked rows of a file into POI and co-visit rows (``read_patterns``)."""
    lines = part[_LINE]
    frame = part.select(*PATTERNS_REQUIRED, map_col)
    while True:  # a row the checks above let through but the POI contract refuses: drop it, retry
        if frame.height == 0:
            return
        try:
            pois, cv, report = read_patterns(
                frame, taxonomy=taxonomy, on_error="skip", periods=[window], naics_vintage=naics_vintage
            )
            break
        except DataValidationError as exc:
            if exc.row is None:
                raise DataValidationError(exc.reason, file=path, field=exc.field) from None
            state.reject(str(path), int(lines[exc.row]), exc.field or "", "invalid_row", exc.reason)
            keep = pl.int_range(frame.height, eager=True) != exc.row
            frame, lines = frame.filter(keep), lines.filter(keep)
    dropped = set()
    for skip in report["skipped"]:
        line = int(lines[skip["row"]])
        if skip["field"] == NAICS_CODE:
            dropped.add(skip["row"])
            state.reject(str(path), line, NAICS_CODE, "bad_naics", skip["error"])
        else:
            state.reject(str(path), line, skip["field"], "bad_json", skip["error"], action=DROP_MAP)
    state.counts["naics_recoded"] += report["naics_recoded"]
    kept_lines = (
        lines.filter(~pl.int_range(len(lines), eager=True).is_in(sorted(dropped))) if dropped else lines
    )
    state.pois.append(pois.with_columns(pl.lit(period).alias(PERIOD)))
    state.seen.append(
        pl.DataFrame(
            {
                PLACEKEY: pois[POI_ID],
                PERIOD: [period] * pois.height,
                "__file__": [str(path)] * pois.height,
                "__first_line__": kept_lines,
            }
        )
    )
    state.covisits.append(
        cv.drop(STATE)
        .rename({PERIOD: WINDOW})
        .with_columns(pl.lit(period).alias(PERIOD))
        .select(SRC_POI, DST_BRAND, VISITORS, PCT, PERIOD, WINDOW)
    )


def _import_file(
    path: Path,
    state: _State,
    *,
    periods: set[str] | None,
    window: str,
    column_map: Mapping[str, str],
    map_name: str | None,
    naics_vintage: str,
    taxonomy: NAICSTaxonomy | None,
) -> dict[str, Any]:
    before_rejects = len(state.rejects)
    df, header = _read_csv(path, state, column_map)
    df, map_col = _apply_map(df, header, path, column_map, map_name, window)
    window_name = WINDOWS[map_col]
    df = _with_periods(df)
    rows = df.height + sum(
        1 for r in state.rejects[before_rejects:] if r["kind"] in ("malformed_csv", "not_utf8")
    )
    other = 0
    state.periods_seen.update(df[PERIOD].drop_nulls().unique().to_list())
    if periods is not None:
        wanted = pl.col(PERIOD).is_in(sorted(periods)) | pl.col(PERIOD).is_null()
        other = df.height - df.filter(wanted).height
        df = df.filter(wanted)
    df = _judge_rows(df, path, state)
    df = _drop_duplicates(df, path, state)
    for (period,), part in df.group_by(PERIOD, maintain_order=True):
        _read_period(part, path, str(period), window_name, map_col, naics_vintage, taxonomy, state)
    mine = state.rejects[before_rejects:]
    if state.on_error != "skip" and mine:
        first = min(mine, key=lambda r: r["line"])
        raise DataValidationError(
            f"line {first['line']}: {first['reason']}. Pass on_error='skip' (CLI: --on-error skip) to drop such "
            "rows and list them in rejected.csv",
            file=path,
            field=first["field"] or None,
        )
    row_rejects = sum(1 for r in mine if r["action"] == DROP_ROW and r["kind"] != "file_cut_short")
    return {
        "file": str(path),
        "rows": rows,
        "rows_other_periods": other,
        "rows_rejected": row_rejects,
        "maps_dropped": sum(1 for r in mine if r["action"] == DROP_MAP),
        "cut_short": any(r["kind"] == "file_cut_short" for r in mine),
    }


# ---------------------------------------------------------------------------------------
# the whole import
# ---------------------------------------------------------------------------------------
def _check_periods(periods: Sequence[str] | None) -> set[str] | None:
    if periods is None:
        return None
    out = set()
    for p in periods:
        p = str(p).strip()
        ok = len(p) == 7 and p[4] == "-" and p[:4].isdigit() and p[5:].isdigit() and 1 <= int(p[5:]) <= 12
        ok = ok or (
            len(p) == 8 and p[4:6] == "-W" and p[:4].isdigit() and p[6:].isdigit() and 1 <= int(p[6:]) <= 53
        )
        if not ok:
            raise ConfigError(
                f"period must be a month YYYY-MM (2023-01) or an ISO week YYYY-Www (2023-W05), got {p!r}"
            )
        out.add(p)
    if not out:
        raise ConfigError("periods is empty; pass None to import every period")
    return out


def import_patterns(
    files: Sequence[str | Path],
    out: str | Path,
    periods: Sequence[str] | None = None,
    on_error: OnError = "skip",
    column_map: Mapping[str, str] | str | Path | None = None,
    naics_vintage: str = "auto",
    window: str = "same_period",
    brand_targets: int = 10,
    overwrite: bool = False,
    replace: Iterable[str] = (),
    taxonomy: NAICSTaxonomy | None = None,
    progress: Any = None,
    partition_by: str | None = None,
) -> ImportSummary:
    """Import Monthly / Weekly Patterns files (CSV or CSV.gz) as a world folder ``out``.

    Files are read one at a time (see the module docstring for the rules); the world is
    written only when every file has been read: a fresh folder is built beside ``out`` and
    renamed into place, an existing one (``overwrite=True``) is replaced with
    :func:`~geograph.data.world_io.write_world`, which removes or replaces only files
    geograph wrote.

    Args:
        files: Patterns files, ``.csv`` or ``.csv.gz`` (gzip is told by its bytes).
        out: The world folder to write.
        periods: Months ``"2023-01"`` and / or ISO weeks ``"2023-W05"`` to import; default
            None imports every period. Each period's co-visit rows carry it in ``period``.
        on_error: ``"skip"`` (default) drops a bad row (or only its bad map) and lists it in
            ``rejected.csv``; ``"fail"`` (or ``"raise"``) raises at the first one.
        column_map: Vendor column -> Patterns column, as a dict or a YAML file path.
        naics_vintage: ``"auto"`` (default), ``"2012"``, ``"2017"`` or ``"2022"``.
        window: ``"same_period"`` (default: the month's / week's map) or ``"same_day"``.
        brand_targets: A brand row's visitors are split over this many POIs of the brand,
            the nearest to the source POI in its state (default 10).
        overwrite: Replace the world in a non-empty ``out`` (only files geograph wrote).
        replace: With ``overwrite``: files geograph did not write that it may replace.
        taxonomy: NAICS taxonomy for the POI check (default: 2022 edition).
        progress: Called as ``progress(i, n, path)`` before each file. Default none.
        partition_by: ``"state"`` writes ``pois`` and ``covisits`` as hive folders by state (a
            co-visit row in its source POI's state), the layout per-state loading reads
            (``data.loading``); default None, one file per table.

    Returns:
        The :class:`ImportSummary`, also saved as ``out/import_summary.json``.

    Raises:
        DataValidationError: a file cannot be read, lacks a Patterns column, has a bad row
            with ``on_error="fail"``, or no row survives; naming the file, line and field.
        ConfigError: a bad option.
    """
    t0 = time.perf_counter()
    if on_error not in ("skip", "fail", "raise"):
        raise ConfigError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if window not in IMPORT_WINDOWS:
        raise ConfigError(f"window must be one of {IMPORT_WINDOWS}, got {window!r}")
    naics_vintage = check_vintage(naics_vintage)
    if isinstance(brand_targets, bool) or not isinstance(brand_targets, int) or brand_targets < 1:
        raise ConfigError(f"brand_targets must be an integer >= 1, got {brand_targets!r}")
    if partition_by not in (None, STATE):
        raise ConfigError(f"partition_by must be None or 'state', got {partition_by!r}")
    wanted = _check_periods(periods)
    map_name = None
    if isinstance(column_map, (str, os.PathLike)):
        map_name = str(column_map)
        column_map = read_column_map(column_map)
    else:
        column_map = check_column_map(column_map or {})
    paths = [Path(f) for f in files]
    if not paths:
        raise ConfigError("no input files given")
    for p in paths:
        if not p.is_file():
            raise DataValidationError("file not found (expected a Patterns .csv or .csv.gz file)", file=p)
    out = Path(out)
    _check_out(out, overwrite, replace)  # before the reading, which may take long
    state = _State(on_error=on_error)
    per_file = []
    for i, path in enumerate(paths):
        if progress is not None:
            progress(i, len(paths), path)
        per_file.append(
            _import_file(
                path,
                state,
                periods=wanted,
                window=window,
                column_map=column_map,
                map_name=map_name,
                naics_vintage=naics_vintage,
                taxonomy=taxonomy,
            )
        )
    rows_read = sum(f["rows"] for f in per_file)
    by_kind = dict(sorted(Counter(r["kind"] for r in state.rejects).items()))
    if not state.pois:
        what = f"every one of the {rows_read} rows was rejected {by_kind}" if rows_read else "no rows"
        if wanted is not None and sum(f["rows_other_periods"] for f in per_file):
            what += f" (periods asked for: {sorted(wanted)})"
        raise DataValidationError(f"nothing to import: {what}; see the reasons above", file=paths[0])
    pois_all = pl.concat(state.pois, how="vertical_relaxed")
    state.pois.clear()
    ordered = pois_all.with_row_index("__order__").sort(PERIOD, "__order__")
    attrs = [c for c in _ATTRIBUTES if c in ordered.columns]
    conflicts = (
        ordered.group_by(POI_ID).agg(pl.struct(attrs).n_unique().alias("n")).filter(pl.col("n") > 1).height
    )
    pois = (
        ordered.unique(subset=[POI_ID], keep="last", maintain_order=True)
        .sort("__order__")
        .drop("__order__", PERIOD)
    )
    covisits = pl.concat(state.covisits, how="vertical_relaxed")
    state.covisits.clear()
    brand_cv = covisits.join(
        pois.select(pl.col(POI_ID).alias(SRC_POI), STATE), on=SRC_POI, how="left"
    ).select(SRC_POI, DST_BRAND, STATE, VISITORS, PCT, PERIOD, WINDOW)
    del covisits
    covisits, without_target = _poi_covisits(pois, brand_cv, brand_targets)
    if covisits.height == 0:
        raise DataValidationError(
            f"nothing to import: {pois.height} POIs and {brand_cv.height} brand-level co-visit rows, but no "
            "row names a brand that another POI of the same state carries, so there is no POI-to-POI "
            "co-visit; a world needs some",
            file=paths[0],
        )
    if wanted is not None:
        found = set(pois_all[PERIOD].unique().to_list())
        missing = sorted(wanted - found)
        if missing:
            raise DataValidationError(
                f"no row of period(s) {missing} in the {len(paths)} file(s) was kept; periods in the "
                f"files: {sorted(state.periods_seen)}",
                file=paths[0],
                field=DATE_RANGE_START,
            )
    brands = pois[BRAND_COL].drop_nulls().unique().implode()
    unknown = brand_cv.filter(~pl.col(DST_BRAND).is_in(brands))[DST_BRAND].n_unique()
    summary = ImportSummary(
        out=str(out),
        files=len(paths),
        rows_read=rows_read,
        rows_kept=pois_all.height,
        rows_rejected=sum(f["rows_rejected"] for f in per_file),
        maps_dropped=sum(f["maps_dropped"] for f in per_file),
        rejected_by_kind=by_kind,
        rows_other_periods=sum(f["rows_other_periods"] for f in per_file),
        pois=pois.height,
        brand_covisit_rows=brand_cv.height,
        brand_rows_without_target=without_target,
        covisit_rows=covisits.height,
        periods=sorted(pois_all[PERIOD].unique().to_list()),
        placekey_conflicts=conflicts,
        naics_recoded=state.counts["naics_recoded"],
        unknown_brands=unknown,
        seconds=0.0,
        rows_per_s=0.0,
        per_file=per_file,
    )
    del pois_all
    rejected = pl.DataFrame(
        state.rejects,
        schema={
            "file": pl.String,
            "line": pl.Int64,
            "field": pl.String,
            "kind": pl.String,
            "action": pl.String,
            "reason": pl.String,
        },
    ).sort("file", "line", maintain_order=True)
    options = {
        "periods": sorted(wanted) if wanted else None,
        "window": window,
        "on_error": on_error,
        "naics_vintage": naics_vintage,
        "brand_targets": brand_targets,
        "column_map": map_name or (dict(column_map) or None),
    }
    world = World(
        pois=pois,
        covisits=covisits,
        meta={"generator": "geograph import patterns", "import_options": options},
    )

    def finish(folder: Path) -> None:
        summary.seconds = round(time.perf_counter() - t0, 3)
        summary.rows_per_s = round(rows_read / summary.seconds, 1) if summary.seconds > 0 else 0.0
        _write(world, folder, brand_cv, rejected, summary, overwrite=True, replace=replace, partition_by=partition_by)

    if out.exists() and any(out.iterdir()):
        finish(out)
    else:  # build beside the folder, then one rename: no half-written folder, ever
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the folder is the user's
        try:
            finish(tmp)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _poi_covisits(pois: pl.DataFrame, brand_cv: pl.DataFrame, k: int) -> tuple[pl.DataFrame, int]:
    """POI-to-POI rows: each brand row split over the ``k`` POIs of the brand nearest to the
    source POI in its state (the source itself excluded), and the rows without any such POI.

    The visitors are split evenly as whole numbers, the remainder going to the nearest POIs
    first; a share of 0 visitors gives no row. Splitting over every POI of the brand in the
    state (the graph builder's rule for brand-level tables) gives a state's brand thousands of
    rows per vendor row: 51M rows and 9.6 GB for one month of 50K POIs in six metros.
    """
    from sklearn.neighbors import BallTree

    indexed = pois.with_row_index("_i")
    targets = indexed.filter(pl.col(BRAND_COL).is_not_null()).select(BRAND_COL, STATE, "_i", LAT, LON)
    by_key = targets.partition_by([BRAND_COL, STATE], as_dict=True)
    src = indexed.select(pl.col(POI_ID).alias(SRC_POI), pl.col("_i").alias("_si"), LAT, LON)
    rows = brand_cv.select(SRC_POI, DST_BRAND, STATE, VISITORS, PERIOD, WINDOW).join(
        src, on=SRC_POI, how="left"
    )
    parts, without = [], 0
    for (brand, state), grp in rows.partition_by(
        [DST_BRAND, STATE], as_dict=True, maintain_order=True
    ).items():
        t = by_key.get((brand, state))
        if t is None:
            without += grp.height
            continue
        ids = t["_i"].to_numpy()
        tree = BallTree(np.radians(t.select(LAT, LON).to_numpy()), metric="haversine")
        _, idx = tree.query(np.radians(grp.select(LAT, LON).to_numpy()), k=min(k + 1, len(ids)))
        dst = ids[idx]
        si = grp["_si"].to_numpy()
        keep = dst != si[:, None]
        keep &= np.cumsum(keep, axis=1) <= k
        n = np.maximum(keep.sum(axis=1), 1)[:, None]
        rank = np.cumsum(keep, axis=1) - 1
        visitors = grp[VISITORS].to_numpy()[:, None]
        share = visitors // n + (rank < visitors % n)
        without += int((~keep.any(axis=1)).sum())
        keep &= share > 0
        r, c = np.nonzero(keep)
        part = grp.select(PERIOD, WINDOW)[r]
        parts.append(
            part.with_columns(
                _si=pl.Series(si[r]),
                _di=pl.Series(dst[r, c]),
                **{VISITORS: pl.Series(share[r, c], dtype=pl.Int64)},
            )
        )
    columns = [SRC_POI, DST_POI, VISITORS, PERIOD, WINDOW]
    if not parts:
        return pl.DataFrame(schema={c: pl.Int64 if c == VISITORS else pl.String for c in columns}), without
    out = pl.concat(parts)
    ids = pois[POI_ID]
    out = out.with_columns(
        ids.gather(out["_si"]).alias(SRC_POI), ids.gather(out["_di"]).alias(DST_POI)
    ).select(columns)
    return out, without


def _check_out(out: Path, overwrite: bool, replace: Iterable[str]) -> None:
    if out.exists() and not out.is_dir():
        raise DataValidationError("output path exists and is not a folder", file=out)
    if not (out.exists() and any(out.iterdir())):
        return
    if not overwrite:
        raise DataValidationError(
            "output folder is not empty; pass overwrite=True (CLI: --overwrite) to replace its world",
            file=out,
        )
    named = {str(r).strip("/") for r in replace}
    owned = owned_paths(out) or set()
    foreign = foreign_files(out, replace)
    foreign += [f for f in EXTRA_FILES if (out / f).exists() and f not in owned and f not in named]
    if foreign:
        how = " ".join(f"--replace {f}" for f in foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise DataValidationError(foreign_message(sorted(foreign), how), file=out)


def _write(
    world: World,
    folder: Path,
    brand_cv: pl.DataFrame,
    rejected: pl.DataFrame,
    summary: ImportSummary,
    *,
    overwrite: bool,
    replace: Iterable[str],
    partition_by: str | None = None,
) -> None:
    """The world (``write_world``), then the brand-level rows, ``rejected.csv`` and the summary;
    last the manifest lists those three as geograph's (``owned``, SHA-256 under ``extra_files``)."""
    write_world(world, folder, partition_by=partition_by, overwrite=overwrite, replace=replace)
    with atomic_write(folder / BRAND_COVISITS_FILE, suffix=".parquet") as tmp:
        brand_cv.write_parquet(tmp)
    with atomic_write(folder / REJECTED_FILE, suffix=".csv") as tmp:
        rejected.write_csv(tmp)
    _rewrite_summary(folder, summary)


def _rewrite_summary(folder: Path, summary: ImportSummary) -> None:
    atomic_write_text(folder / SUMMARY_FILE, json.dumps(summary.to_dict(), indent=1) + "\n")
    path = folder / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["owned"] = sorted(set(manifest.get("owned", [])) | set(EXTRA_FILES))
    manifest["extra_files"] = {
        f: {"bytes": (folder / f).stat().st_size, "sha256": file_sha256(folder / f)} for f in EXTRA_FILES
    }
    atomic_write_text(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")

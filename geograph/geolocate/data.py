"""Geolocation data: queries and coordinates from text places, a world's images or your own
train / test files, split by seed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from geograph.constants import EMBEDDING, LAT, LON, QUERY_ID, QUERY_LAT, QUERY_LON, TEXT
from geograph.errors import DataValidationError
from geograph.geolocate.config import DataConfig, GeolocateConfig

TEXT_DIM = 384  # width of the offline MiniLM text embeddings (embed_texts)

# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------


@dataclass
class GeoData:
    """Queries, coordinates, prior weights and the split.

    Attributes:
        queries: ``(N, D)`` float32 query embeddings. latlon: ``(N, 2)`` degrees.
        weights: ``(N,)`` prior weights (population for places, 1 for images).
        labels: Text per item (place text or image id). split: index arrays per split.
        fingerprint: Hash of the data (queries, coordinates, and the test / validation rows
            when files fix them; not a split drawn by ``train.seed``).
        groups: A group label per item (the country of a text place; None for other
            sources), for the ``group`` edges of the place graph.
    """

    queries: np.ndarray
    latlon: np.ndarray
    weights: np.ndarray
    labels: list[str]
    split: dict[str, np.ndarray]
    source: str
    fingerprint: str = ""
    groups: list[str] | None = None

    @property
    def query_dim(self) -> int:
        return int(self.queries.shape[1])

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        idx = self.split[name]
        return self.queries[idx], self.latlon[idx]


def _random_split(n: int, seed: int, test_frac: float, val_frac: float) -> dict[str, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_frac * n))
    test, rest = perm[:n_test], perm[n_test:]
    n_val = max(1, int(round(val_frac * len(rest))))
    return {"train": np.sort(rest[n_val:]), "val": np.sort(rest[:n_val]), "test": np.sort(test)}


def images_to_arrays(images) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``embedding`` list column + latitude/longitude of an images table -> arrays.

    Raises:
        DataValidationError: a missing column, ragged or non-finite embeddings.
    """
    import polars as pl

    for col in (EMBEDDING, LAT, LON):
        if col not in images.columns:
            raise DataValidationError(f"images table lacks column '{col}'", field=col)
    lens = images.select(pl.col(EMBEDDING).list.len()).to_series().to_numpy()
    if len(lens) == 0:
        raise DataValidationError("images table is empty", field=EMBEDDING)
    if (lens != lens[0]).any():
        row = int(np.flatnonzero(lens != lens[0])[0])
        raise DataValidationError(
            f"embedding length {lens[row]} differs from {lens[0]}", row=row, field=EMBEDDING
        )
    q = np.asarray(images[EMBEDDING].to_list(), dtype=np.float32)
    bad = ~np.isfinite(q).all(1)
    if bad.any():
        raise DataValidationError("non-finite embedding", row=int(np.flatnonzero(bad)[0]), field=EMBEDDING)
    ll = images.select(pl.col(LAT).cast(pl.Float64), pl.col(LON).cast(pl.Float64)).to_numpy()
    ids = (
        images["image_id"].cast(pl.Utf8).to_list()
        if "image_id" in images.columns
        else [str(i) for i in range(len(q))]
    )
    labels = images[TEXT].cast(pl.Utf8).to_list() if TEXT in images.columns else ids
    return q, ll, labels


# ----------------------------------------------------------------------------------------
# your own files
# ----------------------------------------------------------------------------------------


@dataclass
class QueryTable:
    """A validated table of queries: ids, embeddings (or texts still to embed), coordinates.

    Attributes:
        file: Where it was read from (named in errors).
        ids: One id per row.
        queries: ``(N, D)`` float32 embeddings; None for a text table until :func:`embed_tables`.
        texts: The query texts of a text table (None for an embedding table).
        latlon: ``(N, 2)`` degrees, or None when the table has no coordinates.
    """

    file: str
    ids: list[str]
    queries: np.ndarray | None
    texts: list[str] | None
    latlon: np.ndarray | None

    def __len__(self) -> int:
        return len(self.ids)


def read_query_table(
    path,
    *,
    embedding_column: str = EMBEDDING,
    text_column: str = TEXT,
    require_coordinates: bool = True,
    kind: str | None = None,
    width: int | None = None,
    width_source: str = "the model",
) -> QueryTable:
    """Read and check one query table (no embedding model runs here).

    Args:
        path: CSV or Parquet file (columns: see :func:`~geograph.data.readers.read_geotagged`).
        embedding_column: Embedding column name. text_column: Text column name.
        require_coordinates: Refuse a table without ``lat`` / ``lon`` (default true).
        kind: ``embedding`` or ``text``: the column the table must have (None: an embedding
            column if present, else the text column).
        width: The query width the table must have (None: any; see :func:`check_width`).
        width_source: What ``width`` comes from, for the error message.

    Raises:
        DataValidationError: naming the file, row and field (see ``read_geotagged``), a table
            without the ``kind`` column, or embeddings of another width.
    """
    from geograph.data.readers import read_geotagged

    df = read_geotagged(
        path,
        embedding_column=embedding_column,
        text_column=text_column,
        require_coordinates=require_coordinates,
    )
    has = EMBEDDING if embedding_column in df.columns else TEXT
    kind = kind or has
    col = embedding_column if kind == EMBEDDING else text_column
    if col not in df.columns:
        raise DataValidationError(
            f"missing column {col!r}: the queries are {'embeddings' if kind == EMBEDDING else 'texts'} "
            f"({width_source} uses {col!r}); columns found: {df.columns}",
            file=path,
            field=col,
        )
    queries, texts = None, None
    if kind == EMBEDDING:
        s = df[embedding_column]
        queries = (
            s.explode().to_numpy().astype(np.float32).reshape(len(s), -1)
        )  # one width, no nulls: checked
    else:
        texts = df[text_column].to_list()
    latlon = (
        df.select(QUERY_LAT, QUERY_LON).to_numpy().astype(np.float64) if QUERY_LAT in df.columns else None
    )
    table = QueryTable(str(path), df[QUERY_ID].to_list(), queries, texts, latlon)
    if width is not None:
        check_width(table, width, width_source, embedding_column)
    return table


def check_width(table: QueryTable, width: int, width_source: str, embedding_column: str = EMBEDDING) -> None:
    """Refuse a table whose queries are not ``width`` wide (texts: :data:`TEXT_DIM` once embedded).

    Raises:
        DataValidationError: naming the table's file, row 0 and the embedding column.
    """
    if table.queries is not None and table.queries.shape[1] != width:
        raise DataValidationError(
            f"{embedding_column} has {table.queries.shape[1]} values but {width_source} expects {width}",
            file=table.file,
            row=0,
            field=embedding_column,
        )
    if table.queries is None and width != TEXT_DIM:
        raise DataValidationError(
            f"the queries are texts (no {embedding_column!r} column), which embed to {TEXT_DIM} values, "
            f"but {width_source} expects {width}-value embeddings; give an {embedding_column!r} column",
            file=table.file,
            field=embedding_column,
        )


def embed_tables(tables: list[QueryTable], cache_dir: str | None) -> None:
    """Embed the texts of text tables with the offline MiniLM model (in place, one call for all)."""
    todo = [t for t in tables if t.queries is None]
    if not todo:
        return
    from geograph.data.text_places import embed_texts

    emb = embed_texts([x for t in todo for x in t.texts or []], cache_dir=cache_dir)
    start = 0
    for t in todo:
        t.queries, start = emb[start : start + len(t)], start + len(t)


def read_files(dc: DataConfig) -> dict[str, QueryTable]:
    """Read and check ``data.train_file`` / ``val_file`` / ``test_file``, then embed texts.

    Every file is validated before any text is embedded: the queries of all files are of the
    training file's kind (embeddings or texts) and the training file's embedding width.

    Returns:
        ``{"train": ..., "test": ...}`` and ``"val"`` when ``data.val_file`` is set.

    Raises:
        DataValidationError: naming the file, row and field of the first problem.
    """
    cols = {"embedding_column": dc.embedding_column, "text_column": dc.text_column}
    train = read_query_table(dc.train_file, **cols)
    kind = EMBEDDING if train.queries is not None else TEXT
    width = train.queries.shape[1] if train.queries is not None else None
    tables = {"train": train}
    for name, path in (("val", dc.val_file), ("test", dc.test_file)):
        if path:
            tables[name] = read_query_table(
                path, **cols, kind=kind, width=width, width_source=f"the training file {dc.train_file}"
            )
    if dc.val_file is None and len(train) < 2:
        raise DataValidationError(
            f"the training file has {len(train)} row(s); at least 2 are needed to hold out validation rows "
            "(or give data.val_file)",
            file=dc.train_file,
        )
    embed_tables(list(tables.values()), dc.cache_dir)
    return tables


def _prepare_files(dc: DataConfig, seed: int):
    """Arrays and split of :func:`read_files`' tables (validation rows drawn from train by seed)."""
    tables = read_files(dc)
    order = [t for t in (tables["train"], tables.get("val"), tables["test"]) if t is not None]
    q = np.concatenate([t.queries for t in order]).astype(np.float32)  # type: ignore[misc]
    ll = np.concatenate([t.latlon for t in order])  # type: ignore[misc]
    labels = [i for t in order for i in t.ids]
    n_tr, n_va, n_te = len(tables["train"]), len(tables["val"]) if "val" in tables else 0, len(tables["test"])
    if n_va:
        split = {"train": np.arange(n_tr), "val": np.arange(n_tr, n_tr + n_va)}
    else:  # a seeded val_frac share of the training rows
        split = _random_split(n_tr, seed, 0.0, dc.val_frac)
    split["test"] = np.arange(n_tr + n_va, n_tr + n_va + n_te)
    return q, ll, np.ones(len(q)), labels, split


def prepare(cfg: GeolocateConfig) -> GeoData:
    """Load the data named by ``cfg.data`` and split it by ``cfg.train.seed``.

    Raises:
        DataValidationError: a bad ``files`` table (see :func:`read_files`), before any work.
    """
    dc = cfg.data
    groups = None
    if dc.source == "files":
        q, ll, w, labels, split = _prepare_files(dc, cfg.train.seed)
    elif dc.source == "text_places":
        from geograph.data.text_places import load_text_places

        places = load_text_places(
            places=dc.places,
            min_population=dc.min_population,
            template=dc.template,
            max_places=dc.max_places,
            seed=0,  # the subset is fixed; the split varies with train.seed
            cache_dir=dc.cache_dir,
        )
        q, ll, w, labels = places.embeddings, places.latlon, places.population, places.texts
        groups = list(places.countries)
    else:
        if dc.world_dir:
            from geograph.data import load_world

            world = load_world(dc.world_dir)
        else:
            from geograph.data.synthetic import generate_world

            world = generate_world(
                n_pois=dc.n_pois, seed=dc.world_seed, n_images=dc.n_images, embedding_dim=dc.embedding_dim
            )
        if world.images is None or world.images.height == 0:
            raise DataValidationError(
                "the world has no images table; geolocation needs images", field=EMBEDDING
            )
        q, ll, labels = images_to_arrays(world.images)
        w = np.ones(len(q))
    if dc.source != "files":
        split = _random_split(len(q), cfg.train.seed, dc.test_frac, dc.val_frac)
    # the data and the splits the files fix; a split drawn by train.seed is not hashed, so the
    # seeds of one config share a fingerprint and `geograph compare` aggregates them
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(q).tobytes())
    h.update(np.ascontiguousarray(ll).tobytes())
    if dc.source == "files":
        h.update(split["test"].tobytes())
        if dc.val_file:
            h.update(split["val"].tobytes())
    return GeoData(
        q.astype(np.float32),
        ll.astype(np.float64),
        np.asarray(w, np.float64),
        list(labels),
        split,
        dc.source,
        h.hexdigest()[:16],
        groups,
    )

"""``geograph geolocate``: predict coordinates for query embeddings or texts with a logged model.

    geograph geolocate --run-id ID --query-embeddings queries.npy [--gallery geoclip]
    geograph geolocate --model-uri models:/geo/1 --text "Lyon, France" --text "Osaka, Japan"

Prints a table of predictions and writes them as a GeoJSON FeatureCollection (atomically).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from geograph.errors import DataValidationError, GeographError

DEFAULT_OUTPUT = "geolocate_predictions.geojson"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "geolocate",
        help="predict GPS coordinates for image/text embeddings with a trained geolocation model",
        description=__doc__.split("\n\n")[0],
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-id", help="MLflow run of `geograph train geolocate` (its logged model)")
    src.add_argument("--model-uri", help="MLflow model URI (runs:/ID/model, models:/NAME/VERSION, a folder)")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument(
        "--query-embeddings",
        metavar="FILE",
        help=".npy (N, D), or .csv / .parquet with columns e0..e{D-1} or an 'embedding' list column "
        "(an optional 'id' or 'query' column names the rows)",
    )
    q.add_argument(
        "--text",
        action="append",
        metavar="TEXT",
        help="a place description to embed with the offline MiniLM model (repeatable; text models only)",
    )
    p.add_argument(
        "--gallery",
        "--lat-lon-gallery",
        dest="gallery",
        default="train",
        help="candidate coordinates: train (the model's own), geoclip (100K), h3 / h3:RES, or a CSV "
        "with latitude/longitude columns (default: train)",
    )
    p.add_argument("--top-k", type=int, default=None, help="candidates per query (default: the model's)")
    p.add_argument("--regions", type=int, default=3, help="ranked H3 regions shown per query (default 3)")
    p.add_argument(
        "--output", default=DEFAULT_OUTPUT, help=f"GeoJSON file to write (default {DEFAULT_OUTPUT})"
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or the local store)",
    )
    p.add_argument(
        "--limit", type=int, default=20, help="rows shown in the table (default 20; all are written)"
    )
    p.set_defaults(func=_run)


def read_query_file(path: str | Path) -> tuple:
    """Query embeddings ``(N, D)`` float32 and a label per row from ``.npy`` / ``.csv`` / ``.parquet``.

    Raises:
        DataValidationError: a missing file, no embedding columns, ragged or non-finite rows.
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise DataValidationError("query file not found", file=path)
    if path.suffix == ".npy":
        try:
            q = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataValidationError(f"cannot read .npy: {exc}", file=path) from exc
        if q.ndim != 2:
            raise DataValidationError(f"expected a 2-d array (N, D), got shape {q.shape}", file=path)
        labels = [str(i) for i in range(len(q))]
    elif path.suffix in (".csv", ".parquet"):
        import polars as pl

        try:
            df = pl.read_csv(path) if path.suffix == ".csv" else pl.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - any parse failure
            raise DataValidationError(f"cannot read table: {exc}", file=path) from exc
        ecols = sorted((c for c in df.columns if c[:1] == "e" and c[1:].isdigit()), key=lambda c: int(c[1:]))
        if "embedding" in df.columns:
            lens = df["embedding"].list.len().to_numpy()
            if len(lens) and (lens != lens[0]).any():
                row = int(np.flatnonzero(lens != lens[0])[0])
                raise DataValidationError(
                    f"embedding length {lens[row]} differs from {lens[0]}",
                    file=path,
                    row=row,
                    field="embedding",
                )
            q = np.asarray(df["embedding"].to_list(), dtype=np.float32)
        elif ecols:
            q = df.select(ecols).to_numpy().astype(np.float32)
        else:
            raise DataValidationError(
                "no query columns: need e0..e{D-1} or an 'embedding' list column", file=path
            )
        label_col = next((c for c in ("id", "query", "image_id", "text") if c in df.columns), None)
        labels = df[label_col].cast(pl.Utf8).to_list() if label_col else [str(i) for i in range(len(q))]
    else:
        raise DataValidationError(
            f"unsupported query file type {path.suffix!r}; use .npy, .csv or .parquet", file=path
        )
    q = np.asarray(q, dtype=np.float32)
    bad = ~np.isfinite(q).all(1)
    if bad.any():
        raise DataValidationError("non-finite query embedding", file=path, row=int(np.flatnonzero(bad)[0]))
    return q, labels


def load_model(run_id: str | None, model_uri: str | None, tracking_uri: str | None):
    """The :class:`~geograph.geolocate.predict.LoadedGeolocator` behind a logged pyfunc model."""
    from geograph.tracking import configure
    from geograph.tracking.registry import load_model as load_pyfunc

    configure(tracking_uri)
    uri = model_uri or f"runs:/{run_id}/model"
    try:  # errors name the stored model, not the temporary copy MLflow loads it from
        model = load_pyfunc(uri, tracking_uri=tracking_uri)
    except GeographError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types for a bad URI
        raise GeographError(f"cannot load geolocation model {uri!r}: {exc}") from exc
    inner = model.unwrap_python_model()
    geo = getattr(inner, "geolocator", None)
    if geo is None:
        raise GeographError(f"{uri!r} is not a geograph geolocation model")
    return geo


def to_geojson(labels, latlon, confidence, regions) -> dict:
    """A FeatureCollection of one Point per query (``[lon, lat]`` order, as GeoJSON wants)."""
    feats = []
    for i, (lab, (lat, lon), c) in enumerate(zip(labels, latlon.tolist(), confidence.tolist(), strict=True)):
        props = {"query": lab, "confidence": float(c), "rank": 1}
        if regions is not None:
            props["regions"] = list(regions[i])
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [float(lon), float(lat)]},
                "properties": props,
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def _run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from geograph.utils.atomic import atomic_write_text

    geo = load_model(args.run_id, args.model_uri, args.tracking_uri)
    if args.text:
        from geograph.data.text_places import embed_texts

        q = embed_texts(list(args.text), cache_dir=None)
        labels = list(args.text)
    else:
        q, labels = read_query_file(args.query_embeddings)
    if q.shape[1] != geo.query_dim:
        what = "text embeddings (384-d MiniLM)" if args.text else f"embeddings of size {q.shape[1]}"
        raise GeographError(f"this model expects queries of size {geo.query_dim}, got {what}")
    try:
        pred = geo.with_gallery(args.gallery)
    except ValueError as exc:
        raise GeographError(f"--gallery: {exc}") from exc
    if args.top_k is not None:
        if args.top_k < 1:
            raise GeographError(f"--top-k must be >= 1, got {args.top_k}")
        pred.top_k = args.top_k
    p = pred.predict(q, num_regions=max(args.regions, 1))
    atomic_write_text(
        args.output, json.dumps(to_geojson(labels, p.latlon, p.confidence, p.regions), indent=1)
    )

    t = Table(
        title=f"geolocation ({len(labels)} queries, gallery {pred.gallery.name}, {len(pred.gallery)} points)"
    )
    for col, just in (
        ("query", "left"),
        ("lat", "right"),
        ("lon", "right"),
        ("confidence", "right"),
        ("top H3 regions", "left"),
    ):
        t.add_column(col, justify=just)
    for i in range(min(len(labels), args.limit)):
        regs = ", ".join((p.regions or [[]])[i][: args.regions]) if p.regions else ""
        t.add_row(labels[i], f"{p.latlon[i, 0]:.4f}", f"{p.latlon[i, 1]:.4f}", f"{p.confidence[i]:.3f}", regs)
    con = Console()
    con.print(t)
    con.print(f"wrote {len(labels)} predictions to {args.output}")
    return 0

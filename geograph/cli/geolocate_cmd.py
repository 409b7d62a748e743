"""``geograph geolocate``: predict coordinates for query embeddings or texts with a logged model.

    geograph geolocate --run-id ID --query-embeddings queries.npy [--gallery geoclip]
    geograph geolocate --model-uri models:/geo/1 --text "Lyon, France" --text "Osaka, Japan"
    geograph geolocate predict --run-id ID --input queries.parquet --out predictions.csv

The first two print a table of predictions and write them as a GeoJSON FeatureCollection;
``predict`` scores a CSV / Parquet table of queries (``id`` and ``embedding`` or ``text``,
optionally ``lat`` / ``lon``), writes ``id, lat, lon, confidence`` (CSV or Parquet by the
extension) and, when the input has coordinates, prints the accuracy. Files are written
atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from geograph.cli.common import add_quiet_arg, console, step
from geograph.errors import DataValidationError, GeographError

SEARCH_CHOICES = ("exact", "ivf")  # geograph.retrieval.ann.SEARCH_METHODS (not imported: keeps --help fast)

DEFAULT_OUTPUT = "geolocate_predictions.geojson"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "geolocate",
        help="predict GPS coordinates for image/text embeddings with a trained geolocation model",
        description=__doc__.split("\n\n")[0],
    )
    _add_model_args(p)
    q = p.add_mutually_exclusive_group()
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
    _add_predict_args(p)
    p.add_argument("--regions", type=int, default=3, help="ranked H3 regions shown per query (default 3)")
    p.add_argument(
        "--output", default=DEFAULT_OUTPUT, help=f"GeoJSON file to write (default {DEFAULT_OUTPUT})"
    )
    p.add_argument(
        "--limit", type=int, default=20, help="rows shown in the table (default 20; all are written)"
    )
    p.set_defaults(func=_run)
    sub = p.add_subparsers(dest="geolocate_command", metavar="{predict}")
    f = sub.add_parser(
        "predict",
        help="score a CSV / Parquet table of query embeddings (or texts) and write id, lat, lon",
        description="Score a table of queries with a logged geolocation model: id, lat, lon, confidence "
        "out (CSV or Parquet by --out's extension, written atomically); with lat / lon in the input, "
        "the accuracy within 1 / 25 / 200 / 750 / 2500 km is printed.",
    )
    _add_model_args(f, required=True)
    f.add_argument(
        "--input",
        required=True,
        metavar="FILE",
        help="CSV or Parquet: id, and embedding (a list; JSON in CSV) or text; lat / lon optional",
    )
    f.add_argument("--out", required=True, metavar="FILE", help="predictions to write: .csv or .parquet")
    f.add_argument(
        "--embedding-column", default="embedding", help="embedding column of --input (default embedding)"
    )
    f.add_argument("--text-column", default="text", help="text column of --input (default text)")
    _add_predict_args(f)
    f.set_defaults(func=_predict)


def _add_model_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    """``--run-id`` / ``--model-uri`` (one of them; checked in the handler unless ``required``)."""
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument(
        "--run-id", help="MLflow run id, a unique prefix, or latest, of `geograph train geolocate` (its logged model)"
    )
    src.add_argument("--model-uri", help="MLflow model URI (runs:/ID/model, models:/NAME/VERSION, a folder)")


def _add_predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gallery",
        "--lat-lon-gallery",
        dest="gallery",
        default="train",
        help="candidate coordinates: train (the model's own), geoclip (100K), h3 / h3:RES, or a CSV "
        "with latitude/longitude columns (default: train)",
    )
    p.add_argument("--top-k", type=int, default=None, help="candidates per query (default: the model's)")
    p.add_argument(
        "--search",
        choices=SEARCH_CHOICES,
        default=None,
        help="gallery search: exact, or ivf (a FAISS inverted-file index; needs faiss-cpu) "
        "(default: the model's predict.search)",
    )
    p.add_argument("--nprobe", type=int, default=None, help="ivf: lists searched per query (default: the model's)")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or the local store)",
    )
    add_quiet_arg(p)


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
        fields = []
    elif path.suffix in (".csv", ".parquet"):
        import polars as pl

        try:
            df = pl.read_csv(path) if path.suffix == ".csv" else pl.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - any parse failure
            raise DataValidationError(f"cannot read table: {exc}", file=path) from exc
        ecols = sorted((c for c in df.columns if c[:1] == "e" and c[1:].isdigit()), key=lambda c: int(c[1:]))
        if "embedding" in df.columns:
            col = df["embedding"]
            if col.dtype == pl.String:  # CSV: a JSON list per row
                try:
                    col = col.str.json_decode(pl.List(pl.Float64))
                except Exception as exc:  # noqa: BLE001 - any parse failure
                    raise DataValidationError(
                        f"embedding must be a JSON list of numbers per row ({exc})",
                        file=path,
                        field="embedding",
                    ) from exc
            if not isinstance(col.dtype, (pl.List, pl.Array)):
                raise DataValidationError(
                    f"embedding must be a list of numbers, got a {col.dtype} column",
                    file=path,
                    field="embedding",
                )
            lens = col.list.len().fill_null(0).to_numpy()
            if len(lens) and ((lens != lens[0]) | (lens == 0)).any():
                row = int(np.flatnonzero((lens != lens[0]) | (lens == 0))[0])
                raise DataValidationError(
                    f"embedding length {lens[row]} differs from {lens[0]}"
                    if lens[row]
                    else "missing or empty embedding",
                    file=path,
                    row=row,
                    field="embedding",
                )
            q = np.asarray(col.to_list(), dtype=np.float32).reshape(len(col), -1)
        elif ecols:
            q = df.select(ecols).to_numpy().astype(np.float32)
        else:
            raise DataValidationError(
                "no query columns: need e0..e{D-1} or an 'embedding' list column", file=path
            )
        label_col = next((c for c in ("id", "query", "image_id", "text") if c in df.columns), None)
        labels = df[label_col].cast(pl.Utf8).to_list() if label_col else [str(i) for i in range(len(q))]
        fields = ["embedding"] * q.shape[1] if "embedding" in df.columns else ecols
    else:
        raise DataValidationError(
            f"unsupported query file type {path.suffix!r}; use .npy, .csv or .parquet", file=path
        )
    q = np.asarray(q, dtype=np.float32)
    if q.shape[0] == 0 or q.shape[1] == 0:
        raise DataValidationError(f"no queries: the file holds an array of shape {q.shape}", file=path)
    bad = ~np.isfinite(q)
    if bad.any():
        row, j = (int(v[0]) for v in np.nonzero(bad))
        raise DataValidationError(
            f"query value {j} is {q[row, j]}; embeddings must be finite numbers",
            file=path,
            row=row,
            field=fields[j] if fields else None,
        )
    return q, labels


def load_model(run_id: str | None, model_uri: str | None, tracking_uri: str | None):
    """The :class:`~geograph.geolocate.predict.LoadedGeolocator` behind a logged pyfunc model."""
    from geograph.geolocate.predict import load_logged_geolocator

    return load_logged_geolocator(run_id, model_uri, tracking_uri)


def _predictor(geo, args):
    """The model's predictor with ``--gallery``, ``--top-k``, ``--search`` and ``--nprobe`` applied."""
    if args.top_k is not None and args.top_k < 1:
        raise GeographError(f"--top-k must be >= 1, got {args.top_k}")
    if args.nprobe is not None and args.nprobe < 1:
        raise GeographError(f"--nprobe must be >= 1, got {args.nprobe}")
    try:
        with step(f"gallery {args.gallery}", args.quiet):
            pred = geo.with_gallery(args.gallery)
    except ValueError as exc:
        raise GeographError(f"--gallery: {exc}") from exc
    if args.top_k is not None:
        pred.top_k = args.top_k
    if args.search is not None or args.nprobe is not None:
        opts = pred.search_options
        pred.search_options = dataclasses.replace(
            opts,
            method=args.search or opts.method,
            nprobe=args.nprobe if args.nprobe is not None else opts.nprobe,
        )
    return pred


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

    if not (args.run_id or args.model_uri):
        raise GeographError("geolocate: one of the arguments --run-id --model-uri is required")
    if not (args.text or args.query_embeddings):
        raise GeographError(
            "geolocate: one of the arguments --query-embeddings --text is required "
            "(or score a table: geograph geolocate predict --input FILE --out FILE)"
        )
    # the query file is read and checked before the model is loaded
    q, labels = (None, list(args.text)) if args.text else read_query_file(args.query_embeddings)
    with step(f"loading model {args.model_uri or 'of run ' + args.run_id}", args.quiet):
        geo = load_model(args.run_id, args.model_uri, args.tracking_uri)
    if q is not None and q.shape[1] != geo.query_dim:
        raise DataValidationError(
            f"this model expects queries of size {geo.query_dim}, got embeddings of size {q.shape[1]}",
            file=args.query_embeddings,
            row=0,
            field="embedding",
        )
    if q is None:
        from geograph.geolocate.data import TEXT_DIM

        if geo.query_dim != TEXT_DIM:
            raise GeographError(
                f"this model expects queries of size {geo.query_dim}, got text embeddings ({TEXT_DIM}-d MiniLM)"
            )
        from geograph.data.text_places import embed_texts

        with step(f"embedding {len(args.text)} texts", args.quiet):
            q = embed_texts(list(args.text), cache_dir=None)
    pred = _predictor(geo, args)
    with step(f"predicting {len(labels)} queries", args.quiet):
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


def _predict(args) -> int:
    """``geograph geolocate predict``: check the output path and the input file, load the
    model, check the input against it, then embed (texts), predict and write."""
    from geograph.constants import QUERY_ID, QUERY_LAT, QUERY_LON
    from geograph.geolocate.data import check_width, read_query_table
    from geograph.geolocate.predict import check_output_path, score_queries, write_predictions
    from geograph.metrics.geo import threshold_key

    out = check_output_path(args.out)
    with step(f"reading {args.input}", args.quiet):
        table = read_query_table(
            args.input,
            embedding_column=args.embedding_column,
            text_column=args.text_column,
            require_coordinates=False,
        )
    with step(f"loading model {args.model_uri or 'of run ' + args.run_id}", args.quiet):
        geo = load_model(args.run_id, args.model_uri, args.tracking_uri)
    check_width(table, geo.query_dim, "the model", args.embedding_column)
    pred = _predictor(geo, args)
    with step(f"predicting {len(table)} queries", args.quiet):
        frame, metrics = score_queries(pred, table, geo.cfg.data.cache_dir)
    write_predictions(frame, out)
    con = console()
    con.print(f"wrote {frame.height} predictions ({QUERY_ID}, {QUERY_LAT}, {QUERY_LON}, confidence) to {out}")
    if metrics is not None:
        from rich.table import Table

        from geograph.constants import GEO_THRESHOLDS_KM

        t = Table(title=f"accuracy, {frame.height} queries")
        t.add_column("within")
        t.add_column("share", justify="right")
        for km in GEO_THRESHOLDS_KM:
            t.add_row(f"{km:g} km", f"{metrics[threshold_key(km)]:.3f}")
        t.add_row("median error", f"{metrics['median_km']:.1f} km")
        con.print(t)
    return 0

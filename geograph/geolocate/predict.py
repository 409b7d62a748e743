"""A saved geolocator: write it, load it, predict coordinates, score a file of queries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from geograph.constants import EMBEDDING, QUERY_ID, QUERY_LAT, QUERY_LON, TEXT

if TYPE_CHECKING:
    import polars as pl
from geograph.errors import CheckpointError, GeographError
from geograph.geolocate.config import GeolocateConfig
from geograph.geolocate.data import GeoData, QueryTable, check_width, embed_tables, read_query_table
from geograph.geolocate.model import build_head
from geograph.geolocate.select import Selected, _fusion_knn, gallery_graph, gallery_keys, query_augmentation
from geograph.retrieval import (
    Gallery,
    GeoPredictor,
)

BUNDLE_FILE = "geolocator.pt"
BUNDLE_FORMAT = 1
# ----------------------------------------------------------------------------------------
# saving / loading a geolocator (the pyfunc model's payload)
# ----------------------------------------------------------------------------------------


def save_geolocator(cfg: GeolocateConfig, sel: Selected, data: GeoData, folder: str | Path) -> Path:
    """Write a head geolocator (weights, gallery keys, knobs, RANGE database) to ``folder``.

    The file is written atomically with a SHA-256 beside it; :func:`load_geolocator` checks it.
    """
    from geograph.utils.atomic import atomic_write, atomic_write_text

    if sel.method != "head":
        raise ValueError(f"only the head method has a model to save, got {sel.method!r}")
    gp: GeoPredictor = sel.predictor
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "format": BUNDLE_FORMAT,
        "config": cfg.to_dict(),
        "query_dim": data.query_dim,
        "head": {k: v.detach().cpu() for k, v in gp.head.state_dict().items()},
        "gallery_name": gp.gallery.name,
        "gallery_latlon": gp.gallery.latlon.cpu(),
        "gallery_keys": gp.gallery.embeddings.detach().cpu(),
        "choice": dict(sel.choice),
    }
    if gp.range_weight > 0 or gp.fusion_weight > 0 or gp.query_aug is not None:  # the RANGE / kNN database
        idx = data.split["train"]
        state["database_latlon"] = torch.as_tensor(data.latlon[idx])
        state["database_queries"] = torch.as_tensor(data.queries[idx])
    if gp.query_aug is not None:  # its (propagated) location embeddings
        state["query_values"] = gp.query_aug.db_values.detach().cpu()
    with atomic_write(folder / BUNDLE_FILE) as tmp:
        torch.save(state, tmp)
    digest = hashlib.sha256((folder / BUNDLE_FILE).read_bytes()).hexdigest()
    atomic_write_text(folder / (BUNDLE_FILE + ".sha256"), digest + "\n")
    return folder


@dataclass
class LoadedGeolocator:
    """A geolocator read back by :func:`load_geolocator`."""

    cfg: GeolocateConfig
    predictor: GeoPredictor
    database: tuple[torch.Tensor, torch.Tensor] | None

    def with_gallery(self, spec: str) -> GeoPredictor:
        """The same head searched against another gallery (``geoclip``, ``h3``, ``h3:RES``, CSV).

        ``train`` means the bundled gallery.
        """
        if spec in ("train", self.predictor.gallery.name):
            return self.predictor
        g = Gallery.from_spec(spec)
        edges = gallery_graph(self.cfg.propagation, g) if self.cfg.propagation.appnp_k > 0 else None
        w = self.predictor.range_weight
        g.set_embeddings(gallery_keys(self.cfg, self.predictor.head, g, None, w, edges, self.database))
        p = self.predictor
        return GeoPredictor(
            p.head,
            g,
            top_k=p.top_k,
            kde_bandwidth_km=p.kde_bandwidth_km,
            region_resolution=p.region_resolution,
            range_weight=w,
            range_values=p.range_values,
            kde_temperature=p.kde_temperature,
            knn=p.knn,
            fusion_weight=p.fusion_weight,
            query_aug=p.query_aug,
            search=p.search_options,
        )

    @property
    def query_dim(self) -> int:
        return self.predictor.head.query_dim


def load_geolocator(folder: str | Path) -> LoadedGeolocator:
    """Read :func:`save_geolocator`'s bundle (checksum verified, ``weights_only`` unpickling).

    Raises:
        CheckpointError: the bundle is missing, truncated, corrupt or of another format.
    """
    folder = Path(folder)
    path = folder / BUNDLE_FILE
    if not path.is_file():
        raise CheckpointError(f"no geolocator bundle at {path}")
    sha = folder / (BUNDLE_FILE + ".sha256")
    if sha.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != sha.read_text().strip():
        raise CheckpointError(f"{path} does not match its SHA-256 (truncated or modified)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad bundle
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(f"{path} is not a geolocator bundle of format {BUNDLE_FORMAT}")
    cfg = GeolocateConfig.from_dict(state["config"])
    n_gallery = int(state["gallery_latlon"].shape[0]) if torch.is_tensor(state.get("gallery_latlon")) else 0
    if n_gallery == 0 or int(state["gallery_keys"].shape[0]) != n_gallery:
        raise CheckpointError(
            f"{path}: field 'gallery_latlon': the model's gallery is empty or does not match its keys "
            f"({n_gallery} points); it cannot predict. Retrain, or pass another gallery"
        )
    head = build_head(cfg, int(state["query_dim"]), load_pretrained=False)
    head.load_state_dict(state["head"])
    head.eval()
    g = Gallery(state["gallery_latlon"], name=state["gallery_name"])
    g.set_embeddings(state["gallery_keys"])
    ch = state["choice"]
    bw = ch.get("kde_bandwidth_km", -1.0)
    pc = cfg.predict
    gp = GeoPredictor(
        head,
        g,
        top_k=pc.top_k,
        kde_bandwidth_km=None if bw is None or bw < 0 else float(bw),
        region_resolution=pc.region_resolution,
        range_weight=float(ch.get("range_weight", 0.0)),
        range_values=cfg.propagation.range_values,
        kde_temperature=float(ch.get("kde_temperature", pc.kde_temperature)),
        search=pc.search_options(cfg.train.seed),
    )
    db = (state["database_latlon"], state["database_queries"]) if "database_latlon" in state else None
    fusion = float(ch.get("fusion_weight", 0.0))
    if fusion > 0:
        if db is None:
            raise CheckpointError(f"{path} uses kNN fusion but carries no database")
        gp.knn = _fusion_knn(cfg.predict).fit(db[1].numpy(), db[0].numpy())
        gp.fusion_weight = fusion
    beta = float(ch.get("query_weight", 0.0))
    if beta > 0:
        if db is None or "query_values" not in state:
            raise CheckpointError(f"{path} uses query retrieval but carries no database")
        gp.query_aug = query_augmentation(cfg, db[1], state["query_values"], beta)
    return LoadedGeolocator(cfg, gp, db)


# ----------------------------------------------------------------------------------------
# scoring a file of queries with a logged model
# ----------------------------------------------------------------------------------------
OUTPUT_SUFFIXES = (".csv", ".parquet")


def load_logged_geolocator(
    run_id: str | None = None, model_uri: str | None = None, tracking_uri: str | None = None
) -> LoadedGeolocator:
    """The geolocator behind a logged pyfunc model (``runs:/RUN/model``, a registry URI...).

    Args:
        run_id: MLflow run id, or a unique prefix, of a ``geograph train geolocate`` run.
        model_uri: Any MLflow model URI (used instead of ``run_id``).
        tracking_uri: MLflow tracking URI (default ``MLFLOW_TRACKING_URI`` or the local store).

    Raises:
        GeographError: the run or model cannot be found or is not a geolocation model.
    """
    from geograph.tracking import configure
    from geograph.tracking.registry import load_model as load_pyfunc

    if not (run_id or model_uri):
        raise GeographError("a run id or a model URI is needed")
    configure(tracking_uri)
    uri = model_uri or f"runs:/{run_id}/model"  # load_pyfunc resolves a run id prefix
    try:  # errors name the stored model, not the temporary copy MLflow loads it from
        model = load_pyfunc(uri, tracking_uri=tracking_uri)
    except GeographError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types for a bad URI
        raise GeographError(f"cannot load geolocation model {uri!r}: {exc}") from exc
    geo = getattr(model.unwrap_python_model(), "geolocator", None)
    if geo is None:
        raise GeographError(f"{uri!r} is not a geograph geolocation model")
    return geo


def check_output_path(out: str | Path) -> Path:
    """``out`` as a Path; raises ``GeographError`` unless it ends in ``.csv`` or ``.parquet``."""
    out = Path(out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise GeographError(f"output file {out} must end in .csv or .parquet, got {out.suffix!r}")
    if out.is_dir():
        raise GeographError(f"output file {out} is a folder")
    return out


def score_queries(
    predictor: GeoPredictor, table: QueryTable, cache_dir: str | None = None
) -> tuple[pl.DataFrame, dict[str, float] | None]:
    """Predict every query of ``table``.

    Returns:
        The predictions (``id, lat, lon, confidence``, then ``true_lat, true_lon, error_km``
        when the table has coordinates) and, then, the accuracy within 1 / 25 / 200 / 750 /
        2500 km and the median / mean error (else None).
    """
    import polars as pl

    from geograph.metrics.geo import geo_metrics, great_circle_error_km

    embed_tables([table], cache_dir)
    p = predictor.predict(table.queries)  # type: ignore[arg-type]
    cols: dict = {
        QUERY_ID: table.ids,
        QUERY_LAT: p.latlon[:, 0],
        QUERY_LON: p.latlon[:, 1],
        "confidence": np.asarray(p.confidence, dtype=np.float64),
    }
    metrics = None
    if table.latlon is not None:
        cols["true_lat"], cols["true_lon"] = table.latlon[:, 0], table.latlon[:, 1]
        cols["error_km"] = great_circle_error_km(p.latlon, table.latlon)
        metrics = geo_metrics(p.latlon, table.latlon)
    return pl.DataFrame(cols), metrics


def write_predictions(frame: pl.DataFrame, out: str | Path) -> Path:
    """Write ``frame`` to ``out`` (CSV or Parquet by extension), atomically (temp file + rename)."""
    from geograph.utils.atomic import atomic_write

    out = check_output_path(out)
    with atomic_write(out, suffix=out.suffix) as tmp:
        if out.suffix.lower() == ".csv":
            frame.write_csv(tmp)
        else:
            frame.write_parquet(tmp)
    return out


def predict_file(
    input_file: str | Path,
    out: str | Path,
    *,
    run_id: str | None = None,
    model_uri: str | None = None,
    tracking_uri: str | None = None,
    embedding_column: str = EMBEDDING,
    text_column: str = TEXT,
) -> dict[str, float] | None:
    """Score a file of queries with a logged model and write ``id, lat, lon`` predictions.

    The Python form of ``geograph geolocate predict``. The output path and the input file are
    checked before the model is loaded, the input against the model before any prediction.

    Args:
        input_file: CSV / Parquet with ``id`` and ``embedding`` (or ``text``); ``lat`` / ``lon``
            optional.
        out: ``.csv`` or ``.parquet`` file to write (atomically).
        run_id: MLflow run id, or a unique prefix, of the run that logged the model (see
            :func:`load_logged_geolocator`).
        model_uri: Any MLflow model URI (used instead of ``run_id``).
        tracking_uri: MLflow tracking URI (default ``MLFLOW_TRACKING_URI`` or the local store).
        embedding_column: Column of the query embeddings in the input.
        text_column: Column of the query texts in the input (used when it has no embedding column).

    Returns:
        The accuracy metrics when the input has coordinates, else None.

    Raises:
        DataValidationError: a bad input file (naming file, row, field).
        GeographError: a bad output path or model.
    """
    out = check_output_path(out)
    table = read_query_table(
        input_file, embedding_column=embedding_column, text_column=text_column, require_coordinates=False
    )
    geo = load_logged_geolocator(run_id, model_uri, tracking_uri)
    check_width(table, geo.query_dim, "the model", embedding_column)
    frame, metrics = score_queries(geo.predictor, table, geo.cfg.data.cache_dir)
    write_predictions(frame, out)
    return metrics

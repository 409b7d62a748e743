"""A saved geolocator: write it, load it, predict coordinates."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from geograph.errors import CheckpointError
from geograph.geolocate.config import GeolocateConfig
from geograph.geolocate.data import GeoData
from geograph.geolocate.model import build_head
from geograph.geolocate.select import Selected, _fusion_knn, gallery_graph, gallery_keys
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
    if gp.range_weight > 0 or gp.fusion_weight > 0:  # the RANGE / kNN database
        idx = data.split["train"]
        state["database_latlon"] = torch.as_tensor(data.latlon[idx])
        state["database_queries"] = torch.as_tensor(data.queries[idx])
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
    )
    db = (state["database_latlon"], state["database_queries"]) if "database_latlon" in state else None
    fusion = float(ch.get("fusion_weight", 0.0))
    if fusion > 0:
        if db is None:
            raise CheckpointError(f"{path} uses kNN fusion but carries no database")
        gp.knn = _fusion_knn(cfg.predict).fit(db[1].numpy(), db[0].numpy())
        gp.fusion_weight = fusion
    return LoadedGeolocator(cfg, gp, db)

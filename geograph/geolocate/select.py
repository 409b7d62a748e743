"""Inference knobs picked on validation: galleries, RANGE augmentation, APPNP propagation,
kNN fusion and KDE refinement (RANGE, https://arxiv.org/abs/2502.19781;
Revisiting IM2GPS, https://arxiv.org/abs/1705.04838)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from geograph.errors import ConfigError
from geograph.geolocate.config import (
    SELECT_METRIC,
    SELECT_METRICS,
    GeolocateConfig,
    PredictConfig,
    PropagationConfig,
)
from geograph.geolocate.data import GeoData
from geograph.geolocate.model import place_edges, query_augmentation
from geograph.geolocate.train import FitResult, acc_mean, selection_score
from geograph.metrics.geo import geo_metrics
from geograph.retrieval import (
    CellGeolocator,
    Gallery,
    GeoPredictor,
    KNNGeolocator,
    RetrievalHead,
    build_gallery_keys,
    weighted_mode,
)
from geograph.retrieval.kde import product_kde_mode
from geograph.retrieval.predictor import combine_keys, gallery_parts

# ----------------------------------------------------------------------------------------
# inference: gallery keys, selection on validation, evaluation
# ----------------------------------------------------------------------------------------


def make_gallery(spec: str, data: GeoData) -> Gallery:
    """The gallery named by ``predict.gallery`` (``train`` uses the training split)."""
    if spec == "train":  # not deduplicated: row i is training item i (also the RANGE database)
        return Gallery(data.latlon[data.split["train"]], name="train")
    try:
        return Gallery.from_spec(spec, train_latlon=data.latlon[data.split["train"]])
    except ValueError as exc:
        raise ConfigError(f"predict.gallery: {exc}") from exc


def gallery_graph(pc: PropagationConfig, gallery: Gallery) -> torch.Tensor | None:
    """Edges of the APPNP graph over gallery rows (None when APPNP is off)."""
    from geograph.nn.propagation import h3_adjacency_graph, knn_graph_latlon

    if pc.appnp_k <= 0:
        return None
    if pc.appnp_graph == "h3":
        if not gallery.name.startswith("h3:"):
            raise ConfigError("propagation.appnp_graph=h3 needs predict.gallery=h3 or h3:RES")
        res = int(gallery.name.split(":")[1])
        return h3_adjacency_graph(gallery.cells(res))
    return knn_graph_latlon(gallery.latlon.numpy(), pc.appnp_neighbors)


def _fusion_knn(pc: PredictConfig) -> KNNGeolocator:
    """The kNN of the fused density (its bandwidth is the head's KDE bandwidth, unused here)."""
    return KNNGeolocator(k=pc.fusion_knn_k, power=pc.fusion_knn_power)


def _range_module(pc: PropagationConfig):
    from geograph.nn.propagation import RANGEAugmentation

    return RANGEAugmentation(
        temperature=pc.range_temperature,
        top_k=pc.range_top_k,
        geo_temperature=pc.range_geo_temperature,
        geo_weight=pc.range_geo_weight,
    )


def _appnp(pc: PropagationConfig):
    from geograph.nn.propagation import APPNPPropagation

    return APPNPPropagation(pc.appnp_k, pc.appnp_alpha) if pc.appnp_k > 0 else None


def query_values(
    cfg: GeolocateConfig,
    head: RetrievalHead,
    data: GeoData,
    embeddings: torch.Tensor | None = None,
) -> torch.Tensor:
    """``z_j`` of the query retrieval: location embeddings of the training coordinates,
    propagated (APPNP, ``graph_mode: fixed``) over the configured place graph
    (``propagation.graph_edges``). The ``learned`` mode's values come from training
    (:attr:`FitResult.query_values`).

    ``embeddings`` supplies the unit-norm location embeddings of the training rows when known
    (the ``train`` gallery's ``e``).
    """
    from geograph.nn.place_graph import propagate_values

    pc = cfg.propagation
    idx = data.split["train"]
    if embeddings is None:
        g = Gallery(data.latlon[idx], name="train")
        e, _ = gallery_parts(head, g)
    else:
        e = embeddings
    if not pc.graph_edges or pc.graph_k == 0:
        return e
    return propagate_values(e.float(), place_edges(cfg, data), pc.graph_k, pc.graph_alpha).to(e.dtype)


def gallery_keys(
    cfg: GeolocateConfig,
    head: RetrievalHead,
    gallery: Gallery,
    data: GeoData | None,
    range_weight: float,
    edge_index: torch.Tensor | None = None,
    database: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Keys of ``gallery`` for a head, with the configured RANGE database and APPNP graph.

    The RANGE database is the training split (its coordinates and query embeddings), or
    ``database`` = ``(latlon, queries)`` when given (a loaded model carries its own).
    """
    pc = cfg.propagation
    db_ll = db_q = None
    if range_weight > 0:
        if database is not None:
            db_ll, db_q = database
        else:
            assert data is not None
            idx = data.split["train"]
            db_ll, db_q = torch.as_tensor(data.latlon[idx]), torch.as_tensor(data.queries[idx])
    return build_gallery_keys(
        head,
        gallery,
        database_latlon=db_ll,
        database_queries=db_q,
        range_module=_range_module(pc) if range_weight > 0 else None,
        range_weight=range_weight,
        range_values=pc.range_values,
        appnp=_appnp(pc),
        edge_index=edge_index,
    )


@torch.no_grad()
def knn_grid_predictions(
    q_tr: np.ndarray,
    ll_tr: np.ndarray,
    queries: np.ndarray,
    settings: Sequence[tuple[int, float, float]],
    chunk_size: int = 256,
) -> dict[tuple[int, float, float], np.ndarray]:
    """:meth:`KNNGeolocator.predict` of every ``(k, bandwidth_km, power)`` setting at once.

    One neighbour search at the largest ``k`` and, per chunk of queries, one distance matrix
    of the neighbours (the settings' ``k`` nearest are its prefixes) and one kernel per
    ``(k, bandwidth)``: the same numbers as predicting with each setting (up to float
    rounding), for a fraction of the time (the search and the distance matrices dominate).
    """
    from geograph.geo.sphere import cdist_km, latlon_to_xyz, xyz_to_latlon
    from geograph.retrieval import chunked_topk

    kmax = max(k for k, _, _ in settings)
    db = KNNGeolocator(k=kmax).fit(q_tr, ll_tr)
    assert db.keys is not None and db.latlon is not None
    q = torch.nn.functional.normalize(torch.as_tensor(np.asarray(queries, dtype=np.float32)), dim=1)
    out: dict[tuple[int, float, float], list[torch.Tensor]] = {st: [] for st in settings}
    for start in range(0, len(q), chunk_size):
        sim, idx = chunked_topk(q[start : start + chunk_size], db.keys, kmax)
        x = latlon_to_xyz(db.latlon[idx].to(torch.float64))  # (B, kmax, 3)
        d_all = cdist_km(x, x)
        logd = torch.log(torch.sqrt((2 - 2 * sim.double()).clamp(min=1e-12)))
        rows = torch.arange(x.shape[0])
        kern_cache: dict[tuple[int, float], torch.Tensor] = {}
        for k, bw, pw in settings:
            if (k, bw) not in kern_cache:
                kern_cache = {(k, bw): torch.exp(-0.5 * (d_all[:, :k, :k] / bw) ** 2)}
            w = torch.exp(-pw * logd[:, :k])
            w = w / w.sum(1, keepdim=True)
            w = w / w.sum(1, keepdim=True).clamp(min=1e-300)
            dens = (kern_cache[(k, bw)] * w[:, None, :]).sum(-1)
            out[(k, bw, pw)].append(xyz_to_latlon(x[rows, dens.argmax(1)]))
    return {st: torch.cat(v).numpy() for st, v in out.items()}


def fit_cells(
    cfg: GeolocateConfig, data: GeoData, log: Callable[[str], None] | None = None
) -> CellGeolocator:
    """The geocell classifier of ``method: cells`` fitted on the training split (seeded by
    ``train.seed``; one line per epoch to ``log``)."""
    cc = cfg.cells
    q_tr, ll_tr = data.part("train")
    knobs = {k: v for k, v in asdict(cc).items() if not k.endswith("_grid")}  # the grids are tried below
    cg = CellGeolocator(**knobs, seed=cfg.train.seed)
    progress = (lambda e, loss: log(f"cells epoch {e}/{cc.epochs}: loss {loss:.4f}")) if log else None
    return cg.fit(q_tr, ll_tr, progress=progress)


@dataclass
class Selected:
    """The fitted geolocator and the knobs picked on validation."""

    method: str
    predictor: Any  # GeoPredictor | KNNGeolocator | CellGeolocator | np.ndarray (prior mode)
    choice: dict
    val_metrics: dict


def _grid(values: Sequence, default: Any, tune: bool) -> list:
    return list(values) if tune and len(values) else [default]


class _Best:
    """The best candidate so far under each criterion."""

    def __init__(self, criteria: Sequence[str]) -> None:
        self.best: dict[str, tuple[float, dict, Any, dict]] = {}
        self.criteria = list(criteria)

    def offer(self, metrics: dict, predictor: Any, choice: dict) -> None:
        for c in self.criteria:
            score = selection_score(metrics, c)
            if c not in self.best or score > self.best[c][0]:
                self.best[c] = (score, metrics, predictor, choice)

    def result(self, method: str) -> dict[str, Selected]:
        return {c: Selected(method, p, dict(ch), m) for c, (_, m, p, ch) in self.best.items()}


def select(
    cfg: GeolocateConfig,
    data: GeoData,
    fr: FitResult | None = None,
    log: Callable[[str], None] | None = None,
    cache: dict | None = None,
) -> Selected:
    """Fit the baselines / build the head's gallery, and pick inference knobs on validation.

    The criterion is ``cfg.predict.select_metric``; see :func:`select_all`.
    """
    return select_all(cfg, data, fr, log, cache, [cfg.predict.select_metric])[cfg.predict.select_metric]


def select_all(
    cfg: GeolocateConfig,
    data: GeoData,
    fr: FitResult | None = None,
    log: Callable[[str], None] | None = None,
    cache: dict | None = None,
    criteria: Sequence[str] = SELECT_METRICS,
) -> dict[str, Selected]:
    """Try every inference setting of the grids once; the best under each criterion.

    Args:
        cfg: The config (method, grids, propagation).
        data: Prepared data.
        fr: The trained head (method ``head``).
        log: Called with one line per tried setting.
        cache: A dict reused across calls with the same trained head: gallery embeddings and
            RANGE retrievals are kept in it (keyed by gallery and RANGE settings), so
            propagation variants of one head do not re-encode the gallery.
        criteria: Validation criteria (``median_km``, ``acc_mean``).

    Returns:
        ``{criterion: Selected}``.
    """
    q_val, ll_val = data.part("val")
    q_tr, ll_tr = data.part("train")
    pc, tune = cfg.predict, cfg.predict.tune_on_val
    best = _Best(criteria)

    def scored(pred: np.ndarray) -> dict:
        m = geo_metrics(pred, ll_val)
        m[SELECT_METRIC] = acc_mean(m)
        return m

    if cfg.method == "prior":
        mode = weighted_mode(
            torch.as_tensor(ll_tr), torch.as_tensor(data.weights[data.split["train"]]), cfg.prior.bandwidth_km
        ).numpy()
        best.offer(
            scored(np.repeat(mode[None], len(ll_val), 0)),
            mode,
            {"prior_lat": float(mode[0]), "prior_lon": float(mode[1])},
        )
        return best.result("prior")
    if cfg.method == "knn":
        settings = [
            (int(k), float(bw), float(pw))
            for k in _grid(cfg.knn.k_grid, cfg.knn.k, tune)
            # bandwidth and power do nothing with one neighbour
            for bw in _grid(cfg.knn.bandwidth_grid, cfg.knn.bandwidth_km, tune and int(k) != 1)
            for pw in _grid(cfg.knn.power_grid, cfg.knn.power, tune and int(k) != 1)
        ]
        preds = knn_grid_predictions(q_tr, ll_tr, q_val, settings)
        db = KNNGeolocator().fit(q_tr, ll_tr)
        for k, bw, pw in settings:
            knn = KNNGeolocator(k=k, bandwidth_km=bw, power=pw)
            knn.keys, knn.latlon = db.keys, db.latlon  # one database shared by the settings
            m = scored(preds[(k, bw, pw)])
            if log:
                log(
                    f"knn k={k} bandwidth={bw} power={pw}: val median {m['median_km']:.0f} km, "
                    f"{SELECT_METRIC} {m[SELECT_METRIC]:.4f}"
                )
            best.offer(m, knn, {"knn_k": k, "knn_bandwidth_km": bw, "knn_power": pw})
        return best.result("knn")
    if cfg.method == "cells":
        cc = cfg.cells
        cg = fit_cells(cfg, data, log)
        settings = [
            (int(top), float(bw), float(pw))
            for top in _grid(cc.top_cells_grid, cc.top_cells, tune)
            # bandwidth and power do nothing when the answer is the top cell's centre
            for bw in _grid(cc.bandwidth_grid, cc.bandwidth_km, tune and int(top) != 0)
            for pw in _grid(cc.power_grid, cc.power, tune and int(top) != 0)
        ]
        preds = cg.predict_grid(q_val, settings, cfg.predict.batch_size)
        for top, bw, pw in settings:
            cand = copy.copy(cg)  # one fitted classifier shared by the settings
            cand.top_cells, cand.bandwidth_km, cand.power = top, bw, pw
            m = scored(preds[(top, bw, pw)][0])
            if log:
                log(
                    f"cells top={top} bandwidth={bw} power={pw}: val median {m['median_km']:.0f} km, "
                    f"{SELECT_METRIC} {m[SELECT_METRIC]:.4f}"
                )
            best.offer(m, cand, {"cells_top": top, "cells_bandwidth_km": bw, "cells_power": pw})
        return best.result("cells")
    if fr is None:
        raise ValueError("method 'head' needs a FitResult")
    head = fr.head
    prop = cfg.propagation
    gallery = make_gallery(pc.gallery, data)
    edges = gallery_graph(prop, gallery)
    weights = _grid(prop.range_weight_grid, prop.range_weight, tune) if prop.range_on else [0.0]
    idx = data.split["train"]
    # the gallery and RANGE parts are computed once; each weight only rescales and propagates
    cache = cache if cache is not None else {}
    key_e = ("e", pc.gallery)
    key_r = (
        "r",
        pc.gallery,
        prop.range_values,
        prop.range_temperature,
        prop.range_top_k,
        prop.range_geo_weight,
        prop.range_geo_temperature,
    )
    if key_e not in cache and pc.gallery == "train" and fr.train_embeddings is not None:
        cache[key_e] = fr.train_embeddings  # the training rows were encoded at the end of fit
    if key_e not in cache or (prop.range_on and key_r not in cache):
        e, r = gallery_parts(
            head,
            gallery,
            database_latlon=torch.as_tensor(data.latlon[idx]),
            database_queries=torch.as_tensor(data.queries[idx]),
            range_module=_range_module(prop) if prop.range_on else None,
            range_values=prop.range_values,
            embeddings=cache.get(key_e),
        )
        cache[key_e] = e
        if r is not None:
            cache[key_r] = r
    e, r = cache[key_e], cache.get(key_r) if prop.range_on else None
    fuse = pc.fusion_weight > 0
    knn, nb = None, None
    if fuse:  # the kNN neighbours of the validation queries do not depend on the head's knobs
        key_n = ("knn", pc.fusion_knn_k, pc.fusion_knn_power)
        if key_n not in cache:
            knn = _fusion_knn(pc).fit(q_tr, ll_tr)
            cache[key_n] = (knn, knn.neighbours(q_val))
        knn, nb = cache[key_n]
    mixes = [float(x) for x in _grid(pc.fusion_grid, pc.fusion_weight, tune)] if fuse else [0.0]
    betas = (
        [float(b) for b in _grid(prop.query_weight_grid, prop.query_weight, tune)] if prop.query_on else [0.0]
    )
    z = None
    if prop.query_on:  # the database values of the query retrieval (propagated over the place graph)
        key_z = (
            "z",
            prop.graph_mode,
            tuple(prop.graph_edges),
            prop.graph_k,
            prop.graph_alpha,
            prop.graph_knn,
            prop.graph_h3_resolution,
            prop.graph_group_degree,
        )
        if prop.learned:  # refined by the GNN trained with this head
            if fr.query_values is None:
                raise ValueError(
                    "propagation.graph_mode 'learned' needs a head trained with it (FitResult.query_values)"
                )
            cache[key_z] = fr.query_values
        elif key_z not in cache:
            cache[key_z] = query_values(cfg, head, data, e if pc.gallery == "train" else None)
        z = cache[key_z]
    scale = float(head.scale.detach())
    for w, beta in [(w, b) for w in weights for b in betas]:
        g = Gallery(gallery.latlon, gallery.name)
        g._cells = gallery._cells
        g.set_embeddings(combine_keys(e, r, float(w), _appnp(prop), edges))
        qaug = query_augmentation(cfg, q_tr, z, beta) if z is not None else None
        found = None  # the top-k search does not depend on the KDE knobs: done once per weight
        for bw in _grid(pc.kde_grid, pc.kde_bandwidth_km, tune):
            if fuse and bw is None:
                continue  # fusion multiplies densities: it needs a bandwidth
            temps = (
                [pc.kde_temperature]
                if bw is None
                else _grid(pc.kde_temperature_grid, pc.kde_temperature, tune)
            )

            def predictor(temp: float, mix: float, g=g, bw=bw, w=w, qaug=qaug) -> GeoPredictor:
                return GeoPredictor(
                    head,
                    g,
                    top_k=pc.top_k,
                    kde_bandwidth_km=None if bw is None else float(bw),
                    region_resolution=pc.region_resolution,
                    range_weight=float(w),
                    range_values=prop.range_values,
                    kde_temperature=float(temp),
                    knn=knn,
                    fusion_weight=mix,
                    query_aug=qaug,
                    search=pc.search_options(cfg.train.seed),
                )

            if found is None:
                found = predictor(temps[0], 0.0).search(q_val, batch_size=pc.batch_size)
            if fuse:  # every temperature and mix from one kernel matrix
                probs = torch.stack([torch.softmax(float(t) * scale * found[0].double(), 1) for t in temps])
                modes, _ = product_kde_mode(gallery.latlon[found[1]], probs, nb[0], nb[1], float(bw), mixes)
                preds = {
                    (t, mx): modes[a, b].numpy() for a, t in enumerate(temps) for b, mx in enumerate(mixes)
                }
            else:
                preds = {
                    (t, 0.0): predictor(t, 0.0).predict_from_search(*found, batch_size=pc.batch_size).latlon
                    for t in temps
                }
            for (temp, mix), pred in preds.items():
                m = scored(pred)
                if log:
                    log(
                        f"range_weight={w} query_weight={beta} kde={bw} temperature={temp} fusion={mix}: val median "
                        f"{m['median_km']:.0f} km, {SELECT_METRIC} {m[SELECT_METRIC]:.4f}"
                    )
                choice = {
                    "range_weight": float(w),
                    "kde_bandwidth_km": -1.0 if bw is None else float(bw),
                    "kde_temperature": float(temp),
                }
                if fuse:
                    choice["fusion_weight"] = mix
                if prop.query_on:
                    choice["query_weight"] = beta
                best.offer(m, predictor(temp, mix), choice)
    return best.result("head")


def predict_with(sel: Selected, queries: np.ndarray, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates ``(Q, 2)`` and confidence ``(Q,)`` from a selected geolocator."""
    if sel.method == "prior":
        return np.repeat(np.asarray(sel.predictor)[None], len(queries), 0), np.zeros(len(queries))
    if sel.method == "knn":
        return sel.predictor.predict(queries)
    if sel.method == "cells":
        return sel.predictor.predict(queries, batch_size=batch_size)
    p = sel.predictor.predict(queries, batch_size=batch_size)
    return p.latlon, p.confidence

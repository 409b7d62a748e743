"""Turn query embeddings into coordinates with a trained head and an embedded gallery."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from geograph.geo.h3cells import cell_area_km2, latlng_to_cells
from geograph.retrieval.ann import SearchOptions
from geograph.retrieval.gallery import Gallery
from geograph.retrieval.head import RetrievalHead
from geograph.retrieval.kde import kde_mode, product_kde_mode
from geograph.retrieval.knn import KNNGeolocator
from geograph.retrieval.search import _distributed, gather_shards, shard_bounds
from geograph.retrieval.validate import check_embeddings

RANGE_VALUES = ("raw", "projected")


@dataclass
class Prediction:
    """Predicted coordinates ``(Q, 2)``, confidence ``(Q,)``, top-k gallery rows and probabilities."""

    latlon: np.ndarray
    confidence: np.ndarray
    top_index: np.ndarray
    top_prob: np.ndarray
    regions: list[list[str]] | None = None


class GeoPredictor:
    """Top-1 gallery point or KDE mode over the top-k, plus ranked H3 regions.

    Args:
        head: A trained :class:`RetrievalHead`.
        gallery: An embedded :class:`Gallery` (unit-norm rows in the head's space, or keys
            built by :func:`build_gallery_keys` with a RANGE part appended).
        top_k: Candidates kept per query (default 100); probabilities are the softmax of
            ``scale * cos`` renormalised over them.
        kde_bandwidth_km: None predicts the top-1 candidate; a bandwidth predicts the KDE mode
            over the top-k (Revisiting IM2GPS style).
        region_resolution: H3 resolution of the ranked regions and of RvA (default 4).
        chunk_size: Gallery rows per matrix product (default 65,536).
        range_weight: Weight ``w`` of the RANGE part of the gallery keys (default 0: none). The
            query then becomes ``[f(q), sqrt(w) * v(q)]`` to match keys
            ``[e(g), sqrt(w) * r(g)]``, so its score is ``cos(f(q), e(g)) + w * cos(v(q), r(g))``.
        range_values: What ``v`` is: ``"raw"`` (the normalised query embedding itself, matching
            retrieved raw database embeddings) or ``"projected"`` (the head's ``f(q)``).
        kde_temperature: Multiplier of the head's logit scale in the candidate probabilities
            ``softmax(kde_temperature * scale * score)`` (default 1; below 1 flattens the
            weights the KDE votes with, and the confidence).
        knn: A fitted :class:`KNNGeolocator` over a geotagged database of raw query embeddings
            (e.g. the training texts), used when ``fusion_weight > 0``.
        fusion_weight: ``m`` in ``[0, 1)``: predict the mode of ``f_head^(1-m) * f_knn^m``, the
            product of the KDE of the head's top-k gallery points and the KDE of the query's
            kNN neighbours in embedding space (:func:`product_kde_mode`; needs
            ``kde_bandwidth_km``). Default 0: the head alone. Recall vs Area and the ranked
            regions stay those of the head's scores.
        query_aug: A :class:`~geograph.nn.query_retrieval.QueryRetrievalAugmentation` applied
            to the head's query keys (default None): each query's key is mixed with the
            location embeddings of its nearest database queries, for the search, the KDE and
            Recall vs Area alike.
        search: How the gallery is searched (:class:`~geograph.retrieval.ann.SearchOptions`;
            default exact).

    Raises:
        DataValidationError: at :meth:`predict`, :meth:`search` and :meth:`area_needed`,
            before any search: queries of another width than the head's, a NaN or infinite
            value (naming the first bad row), no queries.
    """

    def __init__(
        self,
        head: RetrievalHead,
        gallery: Gallery,
        top_k: int = 100,
        kde_bandwidth_km: float | None = None,
        region_resolution: int = 4,
        chunk_size: int = 65536,
        range_weight: float = 0.0,
        range_values: str = "raw",
        kde_temperature: float = 1.0,
        knn: KNNGeolocator | None = None,
        fusion_weight: float = 0.0,
        query_aug=None,
        search: SearchOptions | None = None,
    ) -> None:
        if not 0.0 <= fusion_weight < 1.0:
            raise ValueError(f"fusion_weight must be in [0, 1), got {fusion_weight}")
        if fusion_weight > 0 and (knn is None or kde_bandwidth_km is None):
            raise ValueError("fusion_weight > 0 needs a fitted knn and a kde_bandwidth_km")
        if kde_temperature <= 0:
            raise ValueError(f"kde_temperature must be > 0, got {kde_temperature}")
        if range_values not in RANGE_VALUES:
            raise ValueError(f"range_values must be one of {RANGE_VALUES}, got {range_values!r}")
        if range_weight < 0:
            raise ValueError(f"range_weight must be >= 0, got {range_weight}")
        if gallery.embeddings is None:
            raise ValueError("the gallery must be embedded (gallery.embed(...)) before predicting")
        check_embeddings(gallery.embeddings, "gallery.embeddings")
        if query_aug is not None and query_aug.query_dim != head.query_dim:
            raise ValueError(
                f"query_aug's database queries have {query_aug.query_dim} values but the head takes {head.query_dim}"
            )
        self.query_aug = query_aug
        self.head, self.gallery = head, gallery
        self.top_k, self.kde_bandwidth_km = top_k, kde_bandwidth_km
        self.region_resolution, self.chunk_size = region_resolution, chunk_size
        self.range_weight, self.range_values = range_weight, range_values
        self.kde_temperature = kde_temperature
        self.knn, self.fusion_weight = knn, fusion_weight
        self.search_options = search or SearchOptions()
        self._region_index: tuple[list[str], torch.Tensor, np.ndarray, dict[str, int]] | None = None

    @torch.no_grad()
    def encode(self, queries: np.ndarray | torch.Tensor) -> torch.Tensor:
        self.head.eval()
        q = (
            torch.as_tensor(np.asarray(queries, dtype=np.float32))
            if not torch.is_tensor(queries)
            else queries
        )
        p = next(self.head.query_mlp.parameters())
        q = q.to(device=p.device, dtype=p.dtype)
        f = self.head.encode_queries(q)
        if self.query_aug is not None:
            f = self.query_aug(q, f)
        if self.range_weight > 0:
            v = F.normalize(q, dim=-1) if self.range_values == "raw" else f
            f = torch.cat([f, math.sqrt(self.range_weight) * v], dim=1)
        return f

    @torch.no_grad()
    def predict(
        self, queries: np.ndarray | torch.Tensor, batch_size: int = 1024, num_regions: int = 0
    ) -> Prediction:
        """Predict coordinates for ``(Q, query_dim)`` query embeddings.

        Args:
            queries: Raw query embeddings (before the head's MLP).
            batch_size: Queries per search batch.
            num_regions: Also return this many ranked H3 regions per query (0: none).

        Raises:
            DataValidationError: see the class.
        """
        self.check_queries(queries)
        scores, index = self.search(queries, batch_size, checked=True)
        nb = self.knn.neighbours(queries) if self.fusion_weight > 0 and self.knn is not None else None
        return self.predict_from_search(scores, index, batch_size, num_regions, neighbours=nb)

    def check_queries(self, queries: np.ndarray | torch.Tensor, field: str = "queries") -> None:
        """Refuse queries the head cannot take (see :func:`~geograph.retrieval.validate.check_embeddings`)."""
        check_embeddings(
            queries,
            field,
            width=self.head.query_dim,
            width_source=f"the head (query_dim={self.head.query_dim})",
        )

    @torch.no_grad()
    def search(
        self, queries: np.ndarray | torch.Tensor, batch_size: int = 1024, checked: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k gallery scores and rows of each query, best first (on the CPU).

        Shapes: ``queries`` ``(Q, query_dim)``; returns ``(Q, top_k)`` scores and indices.
        ``checked`` skips :meth:`check_queries` (the caller ran it).
        """
        if not checked:
            self.check_queries(queries)
        out_s, out_i = [], []
        for start in range(0, len(queries), batch_size):
            q = self.encode(queries[start : start + batch_size])
            s, i = self.gallery.search(q, self.top_k, self.chunk_size, self.search_options)
            out_s.append(s.cpu())
            out_i.append(i.cpu())
        return torch.cat(out_s), torch.cat(out_i)

    @torch.no_grad()
    def predict_from_search(
        self,
        scores: torch.Tensor,
        index: torch.Tensor,
        batch_size: int = 1024,
        num_regions: int = 0,
        neighbours: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Prediction:
        """:meth:`predict` from a :meth:`search` result (the knobs after the search — KDE
        bandwidth and temperature — can be varied without searching again).

        ``neighbours`` is :meth:`KNNGeolocator.neighbours` of the same queries (needed when
        ``fusion_weight > 0``).

        Shapes: ``scores`` and ``index`` ``(Q, k)``.
        """
        if self.fusion_weight > 0 and neighbours is None:
            raise ValueError("fusion_weight > 0: pass the queries' kNN neighbours")
        lat, conf, tidx, tprob, regions = [], [], [], [], []
        scale = float(self.head.scale.detach()) * self.kde_temperature
        for start in range(0, len(scores), batch_size):
            s, i = scores[start : start + batch_size], index[start : start + batch_size]
            prob = torch.softmax(scale * s.double(), dim=1)
            cand = self.gallery.latlon[i]
            if self.kde_bandwidth_km is None:
                lat.append(cand[:, 0])
                conf.append(prob[:, 0])
            elif self.fusion_weight > 0:
                assert neighbours is not None
                nc, nw = neighbours[0][start : start + batch_size], neighbours[1][start : start + batch_size]
                m, c = product_kde_mode(cand, prob, nc, nw, self.kde_bandwidth_km, self.fusion_weight)
                lat.append(m)
                conf.append(c)
            else:
                m, c = kde_mode(cand, prob, self.kde_bandwidth_km)
                lat.append(m)
                conf.append(c)
            tidx.append(i)
            tprob.append(prob)
            if num_regions > 0:
                regions.extend(self._rank_regions(i, prob, num_regions))
        return Prediction(
            latlon=torch.cat(lat).numpy(),
            confidence=torch.cat(conf).float().numpy(),
            top_index=torch.cat(tidx).numpy(),
            top_prob=torch.cat(tprob).float().numpy(),
            regions=regions if num_regions > 0 else None,
        )

    def _rank_regions(self, idx: torch.Tensor, prob: torch.Tensor, n: int) -> list[list[str]]:
        cells = self.gallery.cells(self.region_resolution)
        out = []
        for row_i, row_p in zip(idx.tolist(), prob.tolist(), strict=True):
            mass: dict[str, float] = {}
            for j, p in zip(row_i, row_p, strict=True):
                mass[cells[j]] = mass.get(cells[j], 0.0) + p
            out.append(sorted(mass, key=lambda c: -mass[c])[:n])
        return out

    def _regions(self) -> tuple[list[str], torch.Tensor, np.ndarray, dict[str, int]]:
        if self._region_index is None:
            cells = self.gallery.cells(self.region_resolution)
            uniq = sorted(set(cells))
            pos = {c: k for k, c in enumerate(uniq)}
            col = torch.tensor([pos[c] for c in cells], dtype=torch.long)
            self._region_index = (uniq, col, cell_area_km2(uniq), pos)
        return self._region_index

    @torch.no_grad()
    def area_needed(
        self, queries: np.ndarray | torch.Tensor, true_latlon: np.ndarray, batch_size: int = 256
    ) -> np.ndarray:
        """Recall-vs-Area input: km² searched before the true H3 region is reached.

        Regions are the H3 cells (at ``region_resolution``) holding gallery points, scored
        by the softmax mass of the whole gallery that falls in them; see
        :func:`geograph.metrics.geo.area_to_capture_from_scores`.
        """
        from geograph.metrics.geo import area_to_capture_from_scores

        self.check_queries(queries)
        uniq, col, areas, pos = self._regions()
        t = np.asarray(true_latlon, dtype=np.float64)
        truth = np.asarray(
            [pos.get(c, -1) for c in latlng_to_cells(t[:, 0], t[:, 1], self.region_resolution)]
        )
        emb = self.gallery.embeddings
        assert emb is not None
        scale = float(self.head.scale.detach()) * self.kde_temperature
        out = []
        for start in range(0, len(t), batch_size):
            q = self.encode(queries[start : start + batch_size]).to(emb.dtype)
            p = torch.zeros(q.shape[0], len(uniq), dtype=torch.float64)
            logits = []
            for g in range(0, emb.shape[0], self.chunk_size):
                logits.append(scale * (q @ emb[g : g + self.chunk_size].T).double())
            lg = torch.cat(logits, 1)
            p.index_add_(1, col, torch.softmax(lg, dim=1).cpu())
            out.append(area_to_capture_from_scores(p.numpy(), areas, truth[start : start + batch_size]))
        return np.concatenate(out)


@torch.no_grad()
def gallery_parts(
    head: RetrievalHead,
    gallery: Gallery,
    *,
    database_latlon: torch.Tensor | None = None,
    database_queries: torch.Tensor | None = None,
    range_module=None,
    range_values: str = "raw",
    batch_size: int = 8192,
    embeddings: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``e(g)``, the head's unit-norm location embeddings of the gallery, and the RANGE
    retrieval ``r(g)`` (None without ``range_module``); see :func:`build_gallery_keys`.
    ``embeddings`` supplies ``e(g)`` when it is already known."""
    if range_values not in RANGE_VALUES:
        raise ValueError(f"range_values must be one of {RANGE_VALUES}, got {range_values!r}")
    head.eval()
    param = next(head.query_mlp.parameters())
    dev, dt = param.device, param.dtype
    enc = head.location_encoder

    def embed(ll: torch.Tensor) -> torch.Tensor:
        # under torchrun each rank encodes its shard of the rows, then all ranks gather them
        rank, world = _distributed()
        lo, hi = shard_bounds(len(ll), rank, world)
        mine = ll[lo:hi]
        local = [
            head.encode_locations(mine[s : s + batch_size].to(dev, dt))
            for s in range(0, len(mine), batch_size)
        ]
        out = torch.cat(local) if local else torch.zeros(0, enc.out_dim, device=dev, dtype=dt)
        return gather_shards(out, len(ll))

    was = enc.training
    enc.eval()
    try:
        e = embeddings if embeddings is not None else embed(gallery.latlon)
        r = None
        if range_module is not None:
            if database_latlon is None or database_queries is None:
                raise ValueError("RANGE augmentation needs database_latlon and database_queries")
            same = database_latlon.shape == gallery.latlon.shape and torch.equal(
                database_latlon.to(gallery.latlon.dtype), gallery.latlon
            )
            db_keys = e if same else embed(database_latlon)  # the training gallery is the database
            dq = database_queries.to(dev, dt)
            values = F.normalize(dq, dim=-1) if range_values == "raw" else head.encode_queries(dq)
            r = F.normalize(
                range_module(e, db_keys, values, gallery.latlon.to(dev), database_latlon.to(dev)), dim=-1
            )
    finally:
        enc.train(was)
    return e, r


@torch.no_grad()
def combine_keys(
    e: torch.Tensor,
    r: torch.Tensor | None = None,
    range_weight: float = 0.0,
    appnp=None,
    edge_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[e, sqrt(w) * r]`` (or ``e``), then APPNP over ``edge_index`` keeping row lengths."""
    keys = e
    if r is not None and range_weight > 0:
        keys = torch.cat([e, math.sqrt(range_weight) * r], dim=1)
    if appnp is not None and edge_index is not None:
        norm = keys.norm(dim=1, keepdim=True)
        keys = appnp(keys, edge_index.to(keys.device)) * norm  # keep each row's length (RANGE part weight)
    return keys


@torch.no_grad()
def build_gallery_keys(
    head: RetrievalHead,
    gallery: Gallery,
    *,
    database_latlon: torch.Tensor | None = None,
    database_queries: torch.Tensor | None = None,
    range_module=None,
    range_weight: float = 0.0,
    range_values: str = "raw",
    appnp=None,
    edge_index: torch.Tensor | None = None,
    batch_size: int = 8192,
) -> torch.Tensor:
    """Search keys of a gallery: location embeddings, optionally RANGE-augmented and propagated.

    1. ``e(g)``: the head's unit-norm location embedding of each gallery point.
    2. RANGE (``range_module`` and ``range_weight > 0``; Dhakal et al. 2025,
       https://arxiv.org/abs/2502.19781): ``r(g)`` = the module's soft retrieval over a
       database of (coordinates, query embeddings) — keys are the database's location
       embeddings (plus its coordinates for the RANGE+ geographic term), values are its raw or
       projected query embeddings — appended as ``sqrt(w) * normalize(r(g))`` (RANGE
       concatenates; see :class:`GeoPredictor` for the matching query side).
    3. APPNP (``appnp`` with ``edge_index`` over gallery rows): parameter-free smoothing of
       the keys over a gallery graph, so each point's score borrows from its neighbours'.

    Shapes: ``database_latlon`` ``(N, 2)``, ``database_queries`` ``(N, Dq)``,
    ``edge_index`` ``(2, E)``; returns ``(G, D)`` or ``(G, D + Dq)``.
    """
    use_range = range_module is not None and range_weight > 0
    e, r = gallery_parts(
        head,
        gallery,
        database_latlon=database_latlon,
        database_queries=database_queries,
        range_module=range_module if use_range else None,
        range_values=range_values,
        batch_size=batch_size,
    )
    return combine_keys(e, r, range_weight, appnp, edge_index)

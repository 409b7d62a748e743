"""Coarse to fine: classify a query into H3 cells, then refine inside the likeliest cells.

The hierarchical candidate of geolocation (PIGEON, Haas et al. 2024,
https://arxiv.org/abs/2307.05845, and G3-style pipelines): an MLP over the query embedding
predicts a distribution over *geocells*, the H3 cells at one resolution that hold training
places, trained with haversine label smoothing (the target of a place spreads over cells by
``exp(-(d(cell, place) - d(own cell, place)) / tau)``, so a near miss costs less than a far
one); the estimate is then refined inside the ``top_cells`` most probable cells: the kernel
density mode over the training places there, each weighted by its cell's probability times
its similarity to the query (``1 / d^power`` in embedding space, as kNN + KDE weighs its
neighbours).

With ``neighbours > 0`` the classifier also reads the cells of the query's nearest training
places in embedding space: one hop of label propagation over the text-kNN graph of the places
(each neighbour's cell, ``softmax(temperature x cos)``-weighted, a training place never
reading itself), as the query retrieval of the head reads its neighbours' location embeddings.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from geograph.retrieval.kde import kde_mode
from geograph.retrieval.validate import check_embeddings


class CellGeolocator:
    """Geocell classification with haversine label smoothing, refined by kNN + KDE in the cells.

    Args:
        resolution: H3 resolution of the geocells (3: about 12,400 km² a cell).
        hidden: Width of the MLP's hidden layer (0: a linear classifier).
        epochs: Training epochs (AdamW, full passes over the training places).
        lr: Learning rate.
        batch_size: Training batch size.
        smoothing_km: ``tau`` of the haversine label smoothing.
        top_cells: Cells the refinement searches (0: answer the most probable cell's centre).
        k: Training places per query the KDE weighs (the highest weights in the top cells).
        bandwidth_km: KDE bandwidth.
        power: Similarity weight ``1 / d^power``, ``d = sqrt(2 - 2 cos)`` (as
            :class:`~geograph.retrieval.KNNGeolocator`).
        seed: Seed of the MLP's initialisation and of the batch order.
        neighbours: Nearest training places whose cells the classifier reads (0: none).
        neighbour_temperature: Softmax temperature of their cosine weights.
    """

    def __init__(
        self,
        resolution: int = 3,
        hidden: int = 512,
        epochs: int = 20,
        lr: float = 1e-3,
        batch_size: int = 256,
        smoothing_km: float = 75.0,
        top_cells: int = 5,
        k: int = 100,
        bandwidth_km: float = 100.0,
        power: float = 10.0,
        seed: int = 0,
        neighbours: int = 0,
        neighbour_temperature: float = 20.0,
    ) -> None:
        for name, v, lo in (
            ("resolution", resolution, 0),
            ("epochs", epochs, 1),
            ("batch_size", batch_size, 1),
            ("k", k, 1),
            ("top_cells", top_cells, 0),
            ("hidden", hidden, 0),
            ("neighbours", neighbours, 0),
        ):
            if v < lo:
                raise ValueError(f"{name} must be >= {lo}, got {v}")
        if resolution > 15:
            raise ValueError(f"resolution must be 0-15, got {resolution}")
        for name, v in (("lr", lr), ("smoothing_km", smoothing_km), ("bandwidth_km", bandwidth_km)):
            if not v > 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        self.resolution, self.hidden, self.epochs, self.lr = resolution, hidden, epochs, lr
        self.batch_size, self.smoothing_km, self.top_cells, self.k = batch_size, smoothing_km, top_cells, k
        self.bandwidth_km, self.power, self.seed = bandwidth_km, power, seed
        self.neighbours, self.neighbour_temperature = neighbours, neighbour_temperature
        self.cells: np.ndarray | None = None  # (C,) uint64 H3 ids of the geocells
        self.centers: torch.Tensor | None = None  # (C, 2) degrees
        self.model: nn.Module | None = None
        self.keys: torch.Tensor | None = None  # (N, D) unit training embeddings
        self.latlon: torch.Tensor | None = None  # (N, 2)
        self.place_cell: torch.Tensor | None = None  # (N,) class of each training place

    # ------------------------------------------------------------------------------------
    def fit(
        self, embeddings: np.ndarray | torch.Tensor, latlon: np.ndarray | torch.Tensor, progress=None
    ) -> CellGeolocator:
        """Train the classifier on training embeddings ``(N, D)`` with coordinates ``(N, 2)``
        and keep them as the refinement database. ``progress(epoch, loss)`` is called per epoch."""
        from geograph.geo.h3cells import cell_centers, latlng_to_cell_ids
        from geograph.geo.sphere import cdist_km, latlon_to_xyz

        check_embeddings(embeddings, "database_queries")
        e = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        ll = np.asarray(latlon, dtype=np.float64)
        if len(e) != len(ll):
            raise ValueError(f"{len(e)} embeddings but {len(ll)} coordinates")
        ids = np.asarray(latlng_to_cell_ids(ll[:, 0], ll[:, 1], self.resolution), dtype=np.uint64)
        self.cells, place_cell = np.unique(ids, return_inverse=True)
        self.centers = torch.as_tensor(cell_centers(self.cells), dtype=torch.float64)
        self.keys = nn.functional.normalize(e, dim=1)
        self.latlon = torch.as_tensor(ll)
        self.place_cell = torch.as_tensor(place_cell, dtype=torch.long)
        n_cls, dim = len(self.cells), e.shape[1]
        if self.neighbours:  # the cells of each place's nearest other places, as input
            dim += n_cls
            nbr, w = self._neighbours(self.keys, exclude=torch.arange(len(e)))
        gen = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self.model = (
            nn.Sequential(nn.Linear(dim, self.hidden), nn.GELU(), nn.Linear(self.hidden, n_cls))
            if self.hidden
            else nn.Linear(dim, n_cls)
        )
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=1e-4)
        cell_xyz = latlon_to_xyz(self.centers).float()
        place_xyz = latlon_to_xyz(self.latlon).float()
        for epoch in range(self.epochs):
            self.model.train()
            total = 0.0
            for b in torch.randperm(len(e), generator=gen).split(self.batch_size):
                d = cdist_km(place_xyz[b], cell_xyz)  # (B, C)
                own = d.gather(1, self.place_cell[b, None])
                target = torch.softmax(-(d - own) / self.smoothing_km, dim=1)
                x = self.keys[b]
                if self.neighbours:
                    x = torch.cat([x, self._neighbour_cells(nbr[b], w[b])], 1)
                logp = torch.log_softmax(self.model(x), dim=1)
                loss = -(target * logp).sum(1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
            if progress is not None:
                progress(epoch + 1, total / len(e))
        self.model.eval()
        return self

    def _neighbours(
        self, q: torch.Tensor, exclude: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from geograph.nn.query_retrieval import retrieval_neighbours

        return retrieval_neighbours(q, self.keys, self.neighbours, self.neighbour_temperature, exclude=exclude)

    def _neighbour_cells(self, nbr: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(nbr.shape[0], len(self.cells), dtype=torch.float32)
        return out.scatter_add_(1, self.place_cell[nbr], w.float())

    @torch.no_grad()
    def neighbour_cells(
        self, queries: np.ndarray | torch.Tensor, exclude: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(Q, C)``: the weight of the query's ``neighbours`` nearest training places that
        lie in each geocell (what the classifier reads besides the query); ``exclude`` ``(Q,)``:
        a training row each query must not read (``-1``: none), as training excludes the
        place itself."""
        if not self.neighbours:
            raise ValueError("neighbour_cells needs neighbours > 0")
        return self._neighbour_cells(*self._neighbours(self._check(queries), exclude))

    def _logits(self, q: torch.Tensor) -> torch.Tensor:
        """Classifier logits of unit-norm queries ``(B, D)``."""
        if self.neighbours:
            q = torch.cat([q, self._neighbour_cells(*self._neighbours(q))], 1)
        return self.model(q)

    def _check(self, queries) -> torch.Tensor:
        if self.model is None or self.keys is None:
            raise RuntimeError("CellGeolocator is not fitted; call fit() first")
        check_embeddings(queries, "queries", width=self.keys.shape[1], width_source="the cell classifier")
        return nn.functional.normalize(torch.as_tensor(np.asarray(queries, dtype=np.float32)), dim=1)

    @torch.no_grad()
    def cell_probabilities(self, queries: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(Q, C)`` probability of each geocell (columns in the order of :attr:`cells`)."""
        return torch.softmax(self._logits(self._check(queries)), dim=1)

    @torch.no_grad()
    def predict(
        self, queries: np.ndarray | torch.Tensor, batch_size: int = 1024
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates ``(Q, 2)`` and confidence ``(Q,)`` (the top cell's probability without
        refinement, else the KDE's share of weight around the mode)."""
        setting = (self.top_cells, self.bandwidth_km, self.power)
        return self.predict_grid(queries, [setting], batch_size)[setting]

    @torch.no_grad()
    def predict_grid(
        self,
        queries: np.ndarray | torch.Tensor,
        settings: list[tuple[int, float, float]],
        batch_size: int = 1024,
    ) -> dict[tuple[int, float, float], tuple[np.ndarray, np.ndarray]]:
        """:meth:`predict` under every ``(top_cells, bandwidth_km, power)`` setting at once: the
        classifier and the query-database similarities are computed once per batch."""
        q = self._check(queries)
        outs: dict = {st: ([], []) for st in settings}
        for qb in q.split(batch_size):
            p = torch.softmax(self._logits(qb), dim=1)
            d = None
            for top_cells, bandwidth_km, power in settings:
                pred, conf = outs[(top_cells, bandwidth_km, power)]
                if top_cells == 0:
                    c, top = p.max(1)
                    pred.append(self.centers[top])
                    conf.append(c.double())
                    continue
                if d is None:  # embedding distance to every training place, shared by the settings
                    d = torch.sqrt((2 - 2 * (qb @ self.keys.T).double()).clamp(min=1e-12))
                top_p, top = p.topk(min(top_cells, p.shape[1]), dim=1)
                # cell probability of every training place for each query, 0 outside the top cells
                keep = torch.zeros_like(p).scatter_(1, top, top_p)[:, self.place_cell]  # (B, N)
                w = keep.double() * torch.exp(-power * torch.log(d))
                wk, ik = w.topk(min(self.k, w.shape[1]), dim=1)
                m, c = kde_mode(self.latlon[ik], wk / wk.sum(1, keepdim=True).clamp(min=1e-300), bandwidth_km)
                pred.append(m)
                conf.append(c)
        return {st: (torch.cat(a).numpy(), torch.cat(b).numpy()) for st, (a, b) in outs.items()}

    @torch.no_grad()
    def area_needed(self, queries: np.ndarray | torch.Tensor, true_latlon: np.ndarray) -> np.ndarray:
        """Recall-vs-Area input: km² of the geocells ranked at or above the true place's cell
        by probability (``inf`` when the true place lies in no geocell).

        The regions are the classifier's own cells (at :attr:`resolution`), not a fixed
        region grid. Shapes: ``queries`` ``(Q, D)``, ``true_latlon`` ``(Q, 2)``; returns ``(Q,)``.
        """
        from geograph.geo.h3cells import cell_area_km2, latlng_to_cell_ids

        t = np.asarray(true_latlon, dtype=np.float64)
        truth = np.asarray(latlng_to_cell_ids(t[:, 0], t[:, 1], self.resolution), dtype=np.uint64)
        pos = np.searchsorted(self.cells, truth).clip(max=len(self.cells) - 1)
        known = self.cells[pos] == truth
        area = torch.as_tensor(cell_area_km2(self.cells), dtype=torch.float64)
        p = self.cell_probabilities(queries).double()
        out = np.full(len(t), np.inf)
        rows = np.flatnonzero(known)
        pt = p[rows, pos[rows]]
        out[rows] = ((p[rows] >= pt[:, None]).double() @ area).numpy()
        return out

    def __repr__(self) -> str:
        n = 0 if self.cells is None else len(self.cells)
        return (
            f"CellGeolocator(resolution={self.resolution}, cells={n}, top_cells={self.top_cells}, "
            f"k={self.k}, bandwidth_km={self.bandwidth_km:g}, power={self.power:g}, neighbours={self.neighbours})"
        )

"""kNN in embedding space with a kernel-density vote (the Revisiting IM2GPS baseline).

Vo, Jacobs & Hays 2017, https://arxiv.org/abs/1705.04838 : neighbours of the query among the
geotagged database by feature similarity, each weighted by ``1 / d^p`` (``p = 10`` in the
released code) of its feature distance, then the mode of a kernel density of their coordinates.
"""

from __future__ import annotations

import numpy as np
import torch

from geograph.retrieval.kde import kde_mode
from geograph.retrieval.search import chunked_topk
from geograph.retrieval.validate import check_embeddings


class KNNGeolocator:
    """Predict the KDE mode of the ``k`` most similar database items' coordinates.

    Args:
        k: Neighbours per query (default 100).
        bandwidth_km: KDE bandwidth (default 100 km); with ``k = 1`` it has no effect.
        power: Neighbour weight ``1 / d^power`` with ``d = sqrt(2 - 2 cos)`` (default 10).
    """

    def __init__(self, k: int = 100, bandwidth_km: float = 100.0, power: float = 10.0) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k, self.bandwidth_km, self.power = k, bandwidth_km, power
        self.keys: torch.Tensor | None = None
        self.latlon: torch.Tensor | None = None

    def fit(self, embeddings: np.ndarray | torch.Tensor, latlon: np.ndarray | torch.Tensor) -> KNNGeolocator:
        """Store unit-normalised database embeddings ``(N, D)`` and coordinates ``(N, 2)``."""
        check_embeddings(embeddings, "database_queries")
        e = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        self.keys = torch.nn.functional.normalize(e, dim=1)
        self.latlon = torch.as_tensor(np.asarray(latlon, dtype=np.float64))
        if len(self.keys) != len(self.latlon):
            raise ValueError(f"{len(self.keys)} embeddings but {len(self.latlon)} coordinates")
        return self

    @torch.no_grad()
    def neighbours(
        self, queries: np.ndarray | torch.Tensor, batch_size: int = 2048
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates ``(Q, k, 2)`` of each query's ``k`` nearest database items and their
        normalised ``1 / d^power`` weights ``(Q, k)`` (the KDE input of :meth:`predict`)."""
        batches = list(self._neighbour_batches(queries, batch_size))
        return torch.cat([c for c, _ in batches]), torch.cat([w for _, w in batches])

    def _neighbour_batches(self, queries: np.ndarray | torch.Tensor, batch_size: int):
        """Per batch of ``batch_size`` queries: neighbour coordinates ``(B, k, 2)`` and weights ``(B, k)``."""
        if self.keys is None or self.latlon is None:
            raise RuntimeError("KNNGeolocator is not fitted; call fit() first")
        check_embeddings(queries, "queries", width=self.keys.shape[1], width_source="the kNN database")
        q = torch.nn.functional.normalize(torch.as_tensor(np.asarray(queries, dtype=np.float32)), dim=1)
        for start in range(0, len(q), batch_size):
            s, i = chunked_topk(q[start : start + batch_size], self.keys, self.k)
            d = torch.sqrt((2 - 2 * s.double()).clamp(min=1e-12))
            w = torch.exp(-self.power * torch.log(d))
            yield self.latlon[i], w / w.sum(1, keepdim=True)

    @torch.no_grad()
    def predict(
        self, queries: np.ndarray | torch.Tensor, batch_size: int = 2048
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates ``(Q, 2)`` and confidence ``(Q,)`` for query embeddings ``(Q, D)``."""
        outs, confs = [], []
        for cands, w in self._neighbour_batches(queries, batch_size):
            m, c = kde_mode(cands, w, self.bandwidth_km)
            outs.append(m)
            confs.append(c)
        return torch.cat(outs).numpy(), torch.cat(confs).numpy()

    @torch.no_grad()
    def area_needed(
        self,
        queries: np.ndarray | torch.Tensor,
        true_latlon: np.ndarray,
        resolution: int = 4,
        batch_size: int = 2048,
    ) -> np.ndarray:
        """Recall-vs-Area input: km² searched before the true H3 region is reached.

        Regions are the H3 cells (at ``resolution``) of each query's ``k`` neighbours, ranked by
        the neighbours' summed weights; a truth outside them is never captured (``inf``), as
        with :meth:`GeoPredictor.area_needed <geograph.retrieval.GeoPredictor.area_needed>`.

        Shapes: ``queries`` ``(Q, D)``, ``true_latlon`` ``(Q, 2)``; returns ``(Q,)``.
        """
        from geograph.geo.h3cells import cell_area_km2, latlng_to_cells

        t = np.asarray(true_latlon, dtype=np.float64)
        truth = latlng_to_cells(t[:, 0], t[:, 1], resolution)
        out, row = np.full(len(t), np.inf), 0
        for cands, w in self._neighbour_batches(queries, batch_size):
            c = cands.reshape(-1, 2).numpy()
            cells = np.asarray(latlng_to_cells(c[:, 0], c[:, 1], resolution)).reshape(cands.shape[:2])
            for cs, ws in zip(cells, w.numpy(), strict=True):
                mass: dict[str, float] = {}
                for cell, x in zip(cs.tolist(), ws.tolist(), strict=True):
                    mass[cell] = mass.get(cell, 0.0) + x
                st = mass.get(truth[row], 0.0)
                if st > 0:
                    keep = [cell for cell, x in mass.items() if x >= st]
                    out[row] = float(cell_area_km2(keep).sum())
                row += 1
        return out

    def __repr__(self) -> str:
        n = 0 if self.keys is None else len(self.keys)
        return f"KNNGeolocator(k={self.k}, bandwidth_km={self.bandwidth_km:g}, power={self.power:g}, database={n})"

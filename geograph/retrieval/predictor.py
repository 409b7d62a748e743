"""Turn query embeddings into coordinates with a trained head and an embedded gallery."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geograph.geo.h3cells import cell_area_km2, latlng_to_cells
from geograph.retrieval.gallery import Gallery
from geograph.retrieval.head import RetrievalHead
from geograph.retrieval.kde import kde_mode


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
        gallery: An embedded :class:`Gallery` (unit-norm rows in the head's space).
        top_k: Candidates kept per query (default 100); probabilities are the softmax of
            ``scale * cos`` renormalised over them.
        kde_bandwidth_km: None predicts the top-1 candidate; a bandwidth predicts the KDE mode
            over the top-k (Revisiting IM2GPS style).
        region_resolution: H3 resolution of the ranked regions and of RvA (default 4).
        chunk_size: Gallery rows per matrix product (default 65,536).
    """

    def __init__(
        self,
        head: RetrievalHead,
        gallery: Gallery,
        top_k: int = 100,
        kde_bandwidth_km: float | None = None,
        region_resolution: int = 4,
        chunk_size: int = 65536,
    ) -> None:
        if gallery.embeddings is None:
            raise ValueError("the gallery must be embedded (gallery.embed(...)) before predicting")
        self.head, self.gallery = head, gallery
        self.top_k, self.kde_bandwidth_km = top_k, kde_bandwidth_km
        self.region_resolution, self.chunk_size = region_resolution, chunk_size
        self._region_index: tuple[list[str], torch.Tensor, np.ndarray, dict[str, int]] | None = None

    @torch.no_grad()
    def encode(self, queries: np.ndarray | torch.Tensor) -> torch.Tensor:
        self.head.eval()
        q = torch.as_tensor(np.asarray(queries, dtype=np.float32)) if not torch.is_tensor(queries) else queries
        p = next(self.head.query_mlp.parameters())
        return self.head.encode_queries(q.to(device=p.device, dtype=p.dtype))

    @torch.no_grad()
    def predict(
        self, queries: np.ndarray | torch.Tensor, batch_size: int = 1024, num_regions: int = 0
    ) -> Prediction:
        """Predict coordinates for ``(Q, query_dim)`` query embeddings.

        Args:
            queries: Raw query embeddings (before the head's MLP).
            batch_size: Queries per search batch.
            num_regions: Also return this many ranked H3 regions per query (0: none).
        """
        lat, conf, tidx, tprob, regions = [], [], [], [], []
        scale = float(self.head.scale)
        for start in range(0, len(queries), batch_size):
            q = self.encode(queries[start : start + batch_size])
            s, i = self.gallery.search(q, self.top_k, self.chunk_size)
            prob = torch.softmax(scale * s.double(), dim=1)
            cand = self.gallery.latlon[i]
            if self.kde_bandwidth_km is None:
                lat.append(cand[:, 0])
                conf.append(prob[:, 0])
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
    def area_needed(self, queries: np.ndarray | torch.Tensor, true_latlon: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Recall-vs-Area input: km² searched before the true H3 region is reached.

        Regions are the H3 cells (at ``region_resolution``) holding gallery points, scored
        by the softmax mass of the whole gallery that falls in them; see
        :func:`geograph.metrics.geo.area_to_capture_from_scores`.
        """
        from geograph.metrics.geo import area_to_capture_from_scores

        uniq, col, areas, pos = self._regions()
        t = np.asarray(true_latlon, dtype=np.float64)
        truth = np.asarray([pos.get(c, -1) for c in latlng_to_cells(t[:, 0], t[:, 1], self.region_resolution)])
        emb = self.gallery.embeddings
        assert emb is not None
        scale = float(self.head.scale)
        out = []
        for start in range(0, len(t), batch_size):
            q = self.encode(queries[start : start + batch_size]).to(emb.dtype)
            p = torch.zeros(q.shape[0], len(uniq), dtype=torch.float64)
            logits = []
            for g in range(0, emb.shape[0], self.chunk_size):
                logits.append(scale * (q @ emb[g : g + self.chunk_size].T).double())
            lg = torch.cat(logits, 1)
            p.index_add_(1, col, torch.softmax(lg, dim=1))
            out.append(area_to_capture_from_scores(p.numpy(), areas, truth[start : start + batch_size]))
        return np.concatenate(out)

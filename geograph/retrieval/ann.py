"""Approximate gallery search: a FAISS inverted-file index (the optional ``faiss-cpu`` package).

An IVF-Flat index clusters the gallery embeddings into ``nlist`` lists by k-means and searches
only the ``nprobe`` lists whose centroids score highest against a query, with exact inner
products inside them. On GeoCLIP's 100,000-point gallery with GeoNames places as queries
(``benchmarks/retrieval.py --embeddings geoclip``) 1,024 lists and ``nprobe`` 16 found 99.5% of
the exact top 10 in about a ninth of the exact search's time; on random embeddings, which have
no clusters, it finds few of them. The exact search (:func:`~geograph.retrieval.search.chunked_topk`)
stays the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from geograph.errors import ConfigError
from geograph.retrieval.search import chunked_topk

SEARCH_METHODS = ("exact", "ivf")
_TRAIN_PER_LIST = 40  # k-means training points per list (FAISS warns below 39)


@dataclass(frozen=True)
class SearchOptions:
    """How a gallery is searched.

    Attributes:
        method: ``exact`` (every candidate scored) or ``ivf`` (a FAISS IVF-Flat index).
        nlist: Lists of the index (0: :func:`default_nlist`).
        nprobe: Lists searched per query.
        seed: Seed of the k-means training sample and initialisation.
    """

    method: str = "exact"
    nlist: int = 0
    nprobe: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in SEARCH_METHODS:
            raise ConfigError(f"search method must be one of {SEARCH_METHODS}, got {self.method!r}")
        if self.nlist < 0 or self.nprobe < 1:
            raise ConfigError(f"search needs nlist >= 0 and nprobe >= 1, got {self.nlist}, {self.nprobe}")


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ConfigError(
            "approximate search (method 'ivf') needs the optional 'faiss-cpu' package: "
            "pip install faiss-cpu, or geograph[ann] (or use the exact search)"
        ) from exc
    return faiss


def default_nlist(n: int) -> int:
    """A power of two near ``4 * sqrt(n)``, with at least 40 training points per list."""
    nlist = 2 ** round(math.log2(max(4.0 * math.sqrt(max(n, 1)), 1.0)))
    return max(1, min(nlist, n // _TRAIN_PER_LIST))


class IVFIndex:
    """FAISS IVF-Flat index (inner product) over gallery embeddings ``(G, D)``.

    Built once (k-means on a seeded sample of at most ``40 * nlist`` rows, then every row
    added); :meth:`search` returns the same shapes as the exact search. A query whose probed
    lists hold fewer than ``k`` rows gets the exact search instead.
    """

    def __init__(self, keys: torch.Tensor, options: SearchOptions) -> None:
        faiss = self._faiss = _faiss()
        faiss.omp_set_num_threads(torch.get_num_threads())  # torch's thread setting, not every core
        if keys.dim() != 2 or keys.shape[0] == 0:
            raise ValueError(f"need gallery embeddings (G, D) with G > 0, got {tuple(keys.shape)}")
        self.keys = keys
        x = np.ascontiguousarray(keys.detach().float().cpu().numpy())
        n, d = x.shape
        self.nlist = min(options.nlist, n) if options.nlist else default_nlist(n)
        self.nprobe = min(options.nprobe, self.nlist)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, self.nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = options.seed
        if self.nlist == 1:  # a gallery under 40 rows: one list, nothing for k-means to warn about
            index.cp.min_points_per_centroid = 1
        rng = np.random.default_rng(options.seed)
        rows = np.sort(rng.choice(n, min(n, _TRAIN_PER_LIST * self.nlist), replace=False))
        index.train(x[rows])
        index.add(x)
        index.nprobe = self.nprobe
        self.index = index

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Approximate top-``k`` by inner product; scores in the keys' dtype, indices ``long``.

        Shapes: ``queries`` ``(Q, D)``; returns ``(Q, min(k, G))`` each, best first.
        """
        k = min(k, self.keys.shape[0])
        q = np.ascontiguousarray(queries.detach().float().cpu().numpy())
        self._faiss.omp_set_num_threads(torch.get_num_threads())
        s, i = self.index.search(q, k)
        scores, index = torch.from_numpy(s), torch.from_numpy(i).long()
        short = (index < 0).any(1)
        if short.any():  # too few rows in the probed lists: those queries searched exactly
            es, ei = chunked_topk(queries[short.to(queries.device)].to(self.keys.dtype), self.keys, k)
            scores[short], index[short] = es.float().cpu(), ei.cpu()
        return scores.to(device=queries.device, dtype=self.keys.dtype), index.to(queries.device)

    def __repr__(self) -> str:
        return f"IVFIndex({self.keys.shape[0]} x {self.keys.shape[1]}, nlist={self.nlist}, nprobe={self.nprobe})"


__all__ = ["IVFIndex", "SearchOptions", "SEARCH_METHODS", "default_nlist"]

"""The contrastive retrieval head: align query embeddings (image or text) with GPS embeddings.

GeoCLIP (Vivanco et al. 2023, https://arxiv.org/abs/2309.16020): a query MLP and a location
encoder trained with InfoNCE, a learnable logit scale initialised at 1/0.07, in-batch
negatives plus a queue of recent GPS coordinates (4,096 by default) re-encoded every step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from geograph.geo.sphere import pairwise_haversine_km
from geograph.nn.location.base import LocationEncoderBase

MAX_LOGIT_SCALE = 100.0  # CLIP's clamp on exp(logit_scale)


class RetrievalHead(nn.Module):
    """Query MLP + location encoder, trained with InfoNCE against GPS embeddings.

    Args:
        query_dim: Size of the incoming query embeddings (e.g. 384 text, 768 CLIP image).
        location_encoder: Any :class:`LocationEncoderBase`; its ``out_dim`` sets the shared space.
        hidden: Width of the query MLP (default 768; ``0`` makes it one linear layer).
        dropout: Dropout inside the query MLP (default 0.0).
        queue_size: GPS negatives kept between steps (default 4,096; 0 disables the queue).
        logit_scale_init: Initial ``exp(logit_scale)`` (default 1/0.07).
        learn_logit_scale: Whether the scale is learned (default True).
        geo_smoothing_km: None (default): one-hot InfoNCE targets as in GeoCLIP. A distance
            ``tau`` in km: soft targets ``softmax(-haversine(x_i, c_j) / tau)`` over the batch and
            queue candidates ``c_j``, PIGEON's haversine label smoothing (Haas et al. 2024,
            https://arxiv.org/abs/2307.05845), so a nearby negative costs less than a far one.
        seed: Seed of the query MLP initialisation (default 0).

    Example:
        >>> from geograph.nn.location import SinusoidalLocationEncoder
        >>> head = RetrievalHead(384, SinusoidalLocationEncoder())
        >>> loss = head.loss(torch.randn(8, 384), torch.rand(8, 2) * 40)
    """

    def __init__(
        self,
        query_dim: int,
        location_encoder: LocationEncoderBase,
        hidden: int = 768,
        dropout: float = 0.0,
        queue_size: int = 4096,
        logit_scale_init: float = 1 / 0.07,
        learn_logit_scale: bool = True,
        geo_smoothing_km: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if geo_smoothing_km is not None and geo_smoothing_km <= 0:
            raise ValueError(f"geo_smoothing_km must be > 0 or None, got {geo_smoothing_km}")
        self.geo_smoothing_km = geo_smoothing_km
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        if logit_scale_init <= 0:
            raise ValueError(f"logit_scale_init must be > 0, got {logit_scale_init}")
        self.query_dim, self.hidden, self.dropout = query_dim, hidden, dropout
        self.queue_size, self.logit_scale_init, self.seed = queue_size, logit_scale_init, seed
        self.location_encoder = location_encoder
        out = location_encoder.out_dim
        if hidden > 0:
            self.query_mlp: nn.Module = nn.Sequential(
                nn.Linear(query_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out)
            )
        else:
            self.query_mlp = nn.Linear(query_dim, out)
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(logit_scale_init)), requires_grad=learn_logit_scale
        )
        self.register_buffer("gps_queue", torch.zeros(queue_size, 2))
        self.register_buffer("queue_index", torch.full((queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_count", torch.zeros((), dtype=torch.long))
        self.location_cache: torch.Tensor | None = None
        self._cache_kind = "final"
        self.reset_parameters(encoder=False)

    def reset_parameters(self, encoder: bool = True) -> None:
        """Re-initialise the query MLP, logit scale and queue (and the encoder when asked)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for m in self.query_mlp.modules():
                if isinstance(m, nn.Linear):
                    m.reset_parameters()
        with torch.no_grad():
            self.logit_scale.fill_(math.log(self.logit_scale_init))
        self.gps_queue.zero_()
        self.queue_index.fill_(-1)
        self.queue_ptr.zero_()
        self.queue_count.zero_()
        if encoder:
            self.location_encoder.reset_parameters()

    # --- embeddings -------------------------------------------------------------------
    @property
    def scale(self) -> torch.Tensor:
        """``exp(logit_scale)``, clamped at 100 as in CLIP."""
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def encode_queries(self, queries: torch.Tensor) -> torch.Tensor:
        """Unit-norm query embeddings; ``(Q, query_dim)`` -> ``(Q, out_dim)``."""
        return F.normalize(self.query_mlp(queries), dim=-1)

    def encode_locations(self, latlon: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Unit-norm location embeddings; ``(N, 2)`` degrees -> ``(N, out_dim)``.

        With a :meth:`cache_locations` table and ``index`` (rows of it, ``-1`` = not cached)
        the cached rows are looked up instead of re-encoded.
        """
        if index is not None and self.location_cache is not None and bool((index >= 0).all()):
            if self._cache_kind == "trunk":
                return F.normalize(self.location_encoder.from_trunk(self.location_cache[index]), dim=-1)
            return self.location_cache[index]
        return F.normalize(self.location_encoder(latlon), dim=-1)

    @torch.no_grad()
    def cache_locations(self, latlon: torch.Tensor, batch_size: int = 8192) -> None:
        """Pre-encode fixed coordinates (the training set) for index lookups.

        A frozen encoder caches final embeddings; an encoder whose trunk is frozen and whose
        heads train (``trunk_frozen``, e.g. GeoCLIP's :meth:`freeze_trunk`) caches trunk
        features, so each step only runs the heads.
        """
        enc = self.location_encoder
        if not enc.trainable:
            kind = "final"
        elif getattr(enc, "trunk_frozen", False):
            kind = "trunk"
        else:
            raise RuntimeError("cache_locations needs a frozen encoder or a frozen trunk")
        self.location_cache = None
        parts = []
        for s in range(0, len(latlon), batch_size):
            ll = latlon[s : s + batch_size]
            parts.append(self.encode_locations(ll) if kind == "final" else enc.trunk(ll))
        self.location_cache = torch.cat(parts)
        self._cache_kind = kind

    # --- training ---------------------------------------------------------------------
    def forward(
        self,
        queries: torch.Tensor,
        latlon: torch.Tensor,
        index: torch.Tensor | None = None,
        enqueue: bool = True,
    ) -> torch.Tensor:
        """The training loss (:meth:`loss`), so that ``DistributedDataParallel`` can wrap the head."""
        return self.loss(queries, latlon, index, enqueue)

    def loss(
        self,
        queries: torch.Tensor,
        latlon: torch.Tensor,
        index: torch.Tensor | None = None,
        enqueue: bool = True,
    ) -> torch.Tensor:
        """InfoNCE of each query against its own GPS, the batch's other GPS and the queue.

        Updates the queue with this batch afterwards (GeoCLIP's order: the batch never
        meets itself in the queue).

        Args:
            queries: Query embeddings.
            latlon: True coordinates of each query, degrees.
            index: Optional row of each coordinate in the :meth:`cache_locations` table.
            enqueue: Push this batch into the queue (data-parallel training pushes the whole
                global batch itself, so that every rank keeps the same queue).

        Shapes: ``queries`` ``(B, query_dim)``, ``latlon`` ``(B, 2)``, ``index`` ``(B,)``.
        """
        return self.keyed_loss(self.encode_queries(queries), latlon, index, enqueue)

    def keyed_loss(
        self,
        keys: torch.Tensor,
        latlon: torch.Tensor,
        index: torch.Tensor | None = None,
        enqueue: bool = True,
    ) -> torch.Tensor:
        """:meth:`loss` of given unit-norm query keys ``(B, D)`` instead of
        :meth:`encode_queries` of raw queries (e.g. keys augmented by a retrieval)."""
        q = keys
        n_q = int(self.queue_count)
        if n_q > 0:
            all_ll = torch.cat([latlon, self.gps_queue[:n_q].to(latlon.dtype)])
            all_idx = torch.cat([index, self.queue_index[:n_q]]) if index is not None else None
        else:
            all_ll, all_idx = latlon, index
        loc = self.encode_locations(all_ll, all_idx)
        logits = self.scale * q @ loc.T
        if self.geo_smoothing_km is None:
            loss = F.cross_entropy(logits, torch.arange(q.shape[0], device=q.device))
        else:
            a, b = latlon.double(), all_ll.double()
            d = pairwise_haversine_km(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
            target = torch.softmax(-d / self.geo_smoothing_km, dim=1).to(logits.dtype)
            loss = F.cross_entropy(logits, target)
        if enqueue:
            self.enqueue(latlon.detach(), index)
        return loss

    @torch.no_grad()
    def enqueue(self, latlon: torch.Tensor, index: torch.Tensor | None = None) -> None:
        """Push coordinates (and optional cache rows) into the ring-buffer queue."""
        if self.queue_size == 0:
            return
        latlon = latlon[-self.queue_size :]
        idx = (
            index[-self.queue_size :]
            if index is not None
            else torch.full((len(latlon),), -1, dtype=torch.long)
        )
        n = latlon.shape[0]
        pos = (int(self.queue_ptr) + torch.arange(n)) % self.queue_size
        self.gps_queue[pos] = latlon.to(self.gps_queue.dtype)
        self.queue_index[pos] = idx.to(self.queue_index.device)
        self.queue_ptr.fill_((int(self.queue_ptr) + n) % self.queue_size)
        self.queue_count.fill_(min(int(self.queue_count) + n, self.queue_size))

    def __repr__(self) -> str:
        smooth = f", geo_smoothing_km={self.geo_smoothing_km:g}" if self.geo_smoothing_km else ""
        return (
            f"{self.__class__.__name__}(query_dim={self.query_dim}, hidden={self.hidden}, "
            f"encoder={self.location_encoder!r}, queue_size={self.queue_size}{smooth})"
        )

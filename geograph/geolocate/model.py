"""Geolocation models built from a config: the location encoder, the contrastive retrieval head,
the graph of the training places and the learned GNN over it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from geograph.errors import ConfigError
from geograph.geolocate.config import EncoderConfig, GeolocateConfig
from geograph.nn.location import LocationEncoderBase, build_location_encoder
from geograph.nn.place_graph_refiner import PlaceGraphRefiner
from geograph.retrieval import RetrievalHead

if TYPE_CHECKING:
    from geograph.geolocate.data import GeoData

# ----------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------


def build_encoder(ec: EncoderConfig, seed: int = 0, load_pretrained: bool = True) -> LocationEncoderBase:
    """The configured location encoder (published GeoCLIP weights when ``pretrained``)."""
    opts = dict(ec.options or {})
    if ec.name == "geoclip" and ec.pretrained and load_pretrained:
        return build_location_encoder("geoclip_pretrained", **opts)
    opts.setdefault("seed", seed)
    try:
        return build_location_encoder(ec.name, **opts)
    except TypeError as exc:
        raise ConfigError(f"encoder.options do not fit {ec.name!r}: {exc}") from exc


def build_head(cfg: GeolocateConfig, query_dim: int, load_pretrained: bool = True) -> RetrievalHead:
    enc = build_encoder(cfg.encoder, cfg.train.seed, load_pretrained)
    mode = cfg.encoder.finetune_mode
    if cfg.encoder.pretrained and mode == "none":
        enc.freeze()
    elif mode == "heads":
        enc.freeze_trunk()
    hc = cfg.head
    return RetrievalHead(
        query_dim,
        enc,
        hidden=hc.hidden,
        dropout=hc.dropout,
        queue_size=hc.queue_size,
        logit_scale_init=hc.logit_scale_init,
        learn_logit_scale=hc.learn_logit_scale,
        geo_smoothing_km=hc.geo_smoothing_km,
        seed=cfg.train.seed,
    )


def place_edges(cfg: GeolocateConfig, data: GeoData, kinds: Sequence[str] | None = None) -> torch.Tensor:
    """Edges of the graph of the training places (rows of ``data.split["train"]``).

    Args:
        cfg: The config (``propagation.graph_*``; the ``group`` partners are seeded by
            ``train.seed``).
        data: Prepared data.
        kinds: Edge kinds (default ``propagation.graph_edges``).

    Raises:
        ConfigError: ``group`` edges on data without groups.
    """
    from geograph.nn.place_graph import place_graph

    pc = cfg.propagation
    kinds = list(pc.graph_edges if kinds is None else kinds)
    idx = data.split["train"]
    groups = None
    if "group" in kinds:
        if data.groups is None:
            raise ConfigError(
                f"propagation.graph_edges has 'group' but data.source {data.source!r} has no groups "
                "(countries come with text_places)"
            )
        groups = [data.groups[i] for i in idx]
    return place_graph(
        data.latlon[idx],
        kinds=kinds,
        embeddings=data.queries[idx],
        groups=groups,
        knn=pc.graph_knn,
        h3_resolution=pc.graph_h3_resolution,
        group_degree=pc.graph_group_degree,
        seed=cfg.train.seed,
    )


def build_refiner(cfg: GeolocateConfig, value_dim: int, query_dim: int) -> PlaceGraphRefiner:
    """The GNN of ``propagation.graph_mode: learned`` (seeded by ``train.seed``)."""
    pc = cfg.propagation
    return PlaceGraphRefiner(
        value_dim, query_dim, hidden=pc.graph_hidden, num_layers=pc.graph_layers, seed=cfg.train.seed
    )


def query_augmentation(
    cfg: GeolocateConfig, database_queries: torch.Tensor | np.ndarray, values: torch.Tensor, weight: float
):
    """The :class:`~geograph.nn.query_retrieval.QueryRetrievalAugmentation` of ``cfg`` (None when
    ``weight`` is 0)."""
    from geograph.nn.query_retrieval import QueryRetrievalAugmentation

    if weight <= 0:
        return None
    pc = cfg.propagation
    return QueryRetrievalAugmentation(
        torch.as_tensor(np.asarray(database_queries, dtype=np.float32)),
        values,
        weight=weight,
        temperature=pc.query_temperature,
        top_k=pc.query_top_k,
    )

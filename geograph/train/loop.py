"""The one training loop of geograph: epochs, validation, early stopping, best weights,
checkpoints and resume, and a progress line on stderr.

A task gives the loop two callables, ``train_epoch(epoch) -> metrics`` (one pass over its
training data, with its own batching, hiding and distributed joins) and
``validate(epoch) -> metrics``, plus a ``score(metrics) -> float`` (higher is better) that picks
the kept epoch. The loop owns everything around them, so both tasks, the sharded trainer and
the benchmarks share one implementation of:

* early stopping: stop before epoch ``e`` when ``e - best_epoch > patience``;
* best weights: the model's state at the best-scoring epoch is restored at the end;
* checkpoints: after every epoch the model, the optimizer, the scheduler, the torch RNG state,
  the history and the best state are written atomically (``save_checked``) by rank 0 to the
  given path (one folder per MLflow run id, see :func:`geograph.train.tracked.checkpoint_path`);
  ``resume`` continues after the checkpoint's epoch and ends exactly as an uninterrupted run;
* progress: :class:`~geograph.train.progress.EpochProgress` on stderr (a live bar on a terminal,
  ``[name] epoch 3/40  loss 0.4121  val_r2 0.5127 (best @ 3)  1.2 s/epoch  elapsed 3.9 s  ETA 44 s``
  lines elsewhere).

Why not Lightning: ``benchmarks/loop_overhead.py`` measures its per-epoch overhead against this
loop on the embedded world (docs: CONTRIBUTING.md); the loop is a few dozen lines, keeps the
random draws of every epoch a function of (seed, epoch), and has no dependency beyond torch.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from geograph.errors import CheckpointError
from geograph.graph.cache import load_checked, save_checked
from geograph.train.progress import EpochProgress, format_seconds
from geograph.utils.determinism import deterministic_algorithms

CHECKPOINT_FILE = "last.pt"


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> Any: ...


@dataclass
class LoopResult:
    """What the loop produced.

    Attributes:
        history: One dict per epoch (``epoch`` plus the train and validation metrics).
        best_epoch: The epoch whose weights the model holds at the end (0: none ran).
        best_score: Its score.
        train_time_s: Seconds spent in ``train_epoch`` (validation excluded), over all runs of a
            resumed training.
        resumed_from: The checkpoint's epoch when resumed, else None.
        stopped_early: True when early stopping ended the loop before ``epochs``.
    """

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -math.inf
    train_time_s: float = 0.0
    resumed_from: int | None = None
    stopped_early: bool = False


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _copy_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_checkpoint(path: Path, key: str) -> dict:
    """A checkpoint written by :func:`fit_loop` for the config with hash ``key``.

    Raises:
        CheckpointError: the file is missing, damaged, or was written by another config.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: nothing to resume")
    state = load_checked(path)
    if state.get("key") != key:
        raise CheckpointError(
            f"{path} was written by another training config (key {state.get('key')!r}, this config "
            f"{key!r}); resume with the config that wrote it"
        )
    return state


def fit_loop(
    model: torch.nn.Module,
    *,
    epochs: int,
    train_epoch: Callable[[int], dict[str, float]],
    validate: Callable[[int], dict[str, float]],
    score: Callable[[dict[str, float]], float],
    stateful: dict[str, Stateful | None] | None = None,
    after_validate: Callable[[dict[str, float]], None] | None = None,
    patience: int | None = None,
    keep_best: bool = True,
    checkpoint: Path | None = None,
    key: str = "",
    resume: bool = False,
    is_main: bool = True,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    stop_after_epoch: int | None = None,
    progress: bool = False,
    monitor: str | None = None,
    label: str = "train",
) -> LoopResult:
    """Train ``model`` for up to ``epochs`` epochs (see the module docstring).

    Args:
        model: The module whose weights are checkpointed and restored (not a DDP wrapper).
        epochs: Last epoch (epochs count from 1).
        train_epoch: One training pass; returns at least ``train_loss``.
        validate: Validation after each epoch; returns ``val_*`` metrics (and may add others).
        score: Higher is better; picks the kept epoch from the merged epoch metrics.
        stateful: Optimizer, scheduler, ... saved in and restored from checkpoints (None skipped).
        after_validate: Called with the epoch's metrics before the best epoch is updated
            (a ReduceLROnPlateau step).
        patience: Stop when the best epoch is more than this many epochs behind (None: never).
        keep_best: False keeps the last epoch instead of the best-scoring one.
        checkpoint: ``last.pt`` path written after every epoch by the main rank (None: none).
        key: Config hash stored in the checkpoint; ``resume`` refuses another key.
        resume: Continue from ``checkpoint`` (a missing file starts fresh).
        is_main: Whether this process writes checkpoints and prints progress.
        on_epoch: ``(epoch, metrics)`` after each epoch this call trains (MLflow logging); the
            metrics include ``epoch_time_s``.
        stop_after_epoch: Return after this epoch as if killed (resume tests).
        progress: Show the epochs on stderr (main rank only): a live bar on a terminal, else
            rate-limited lines (:class:`~geograph.train.progress.EpochProgress`).
        monitor: Metric shown as the validation figure of the progress (default: the first
            ``val_`` key).
        label: Name shown first in the progress.

    Raises:
        CheckpointError: ``resume`` met a damaged checkpoint or one of another config.
    """
    stateful = {k: v for k, v in (stateful or {}).items() if v is not None}
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    out = LoopResult()
    best_state = _copy_state(model)
    start = 1
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, key)
        model.load_state_dict(state["model"])
        for name, obj in stateful.items():
            if state.get(name) is not None:
                obj.load_state_dict(state[name])
        _set_rng_state(state["rng"], device)
        start = int(state["epoch"]) + 1
        out.best_score, out.best_epoch = float(state["best_score"]), int(state["best_epoch"])
        best_state = state["best_state"]
        out.history = list(state["history"])
        out.train_time_s = float(state["train_time_s"])
        out.resumed_from = start - 1
    shown = progress and is_main and start <= epochs
    bar_ctx = EpochProgress(label, epochs, first_epoch=start, monitor=monitor) if shown else contextlib.nullcontext()
    # deterministic kernels: the same seed gives the same weights for any thread count
    with deterministic_algorithms(), bar_ctx as bar:
        for epoch in range(start, epochs + 1):
            if patience is not None and out.best_epoch and epoch - out.best_epoch > patience:
                out.stopped_early = True
                break
            t0 = time.perf_counter()
            metrics = dict(train_epoch(epoch))
            out.train_time_s += time.perf_counter() - t0
            metrics.update(validate(epoch))
            out.history.append({"epoch": epoch, **metrics})
            if after_validate is not None:
                after_validate(metrics)
            value = score(metrics)
            if not keep_best or value > out.best_score:
                out.best_score, out.best_epoch = value, epoch
                best_state = _copy_state(model)
            if checkpoint is not None and is_main:  # one writer: the parameters are equal on every rank
                save_checked(
                    {
                        "key": key,
                        "epoch": epoch,
                        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                        **{name: obj.state_dict() for name, obj in stateful.items()},
                        "rng": _rng_state(device),
                        "best_score": out.best_score,
                        "best_epoch": out.best_epoch,
                        "best_state": best_state,
                        "history": out.history,
                        "train_time_s": out.train_time_s,
                    },
                    Path(checkpoint),
                )
            elapsed = time.perf_counter() - t0
            if on_epoch is not None:
                on_epoch(epoch, {**metrics, "epoch_time_s": elapsed})
            if bar is not None:
                bar.update(epoch, metrics, out.best_epoch, elapsed)
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                break
    model.load_state_dict(best_state)
    return out


__all__ = ["CHECKPOINT_FILE", "LoopResult", "fit_loop", "format_seconds", "load_checkpoint"]

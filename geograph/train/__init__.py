"""The one training loop and tracked run shared by every task.

* :mod:`~geograph.train.loop`: :func:`fit_loop` (epochs, validation, early stopping, best
  weights, checkpoints, resume).
* :mod:`~geograph.train.progress`: :class:`EpochProgress` (epochs on stderr: a live bar on a
  terminal, rate-limited lines elsewhere) and :func:`phase` (a timed step: data preparation, scoring).
* :mod:`~geograph.train.tracked`: :func:`tracked_run` (the MLflow run, checkpoints keyed by its
  run id, ``--resume RUN_ID``), :func:`shared_run_id` (the run every rank logs to),
  :func:`param_checksum`, :func:`pip_requirements`.
"""

from geograph.train.loop import CHECKPOINT_FILE, LoopResult, fit_loop, load_checkpoint
from geograph.train.progress import EpochProgress, format_seconds, phase
from geograph.train.tracked import (
    DEFAULT_CHECKPOINT_ROOT,
    TrackedRun,
    check_resumable,
    checkpoint_path,
    log_resumed_history,
    param_checksum,
    pip_requirements,
    rank_session,
    resume_checkpoint,
    shared_run_id,
    tracked_run,
)

__all__ = [
    "CHECKPOINT_FILE",
    "DEFAULT_CHECKPOINT_ROOT",
    "EpochProgress",
    "LoopResult",
    "TrackedRun",
    "check_resumable",
    "checkpoint_path",
    "fit_loop",
    "format_seconds",
    "load_checkpoint",
    "log_resumed_history",
    "param_checksum",
    "phase",
    "pip_requirements",
    "rank_session",
    "resume_checkpoint",
    "shared_run_id",
    "tracked_run",
]

"""One tracked training run, the same for every task: the MLflow run, its checkpoint folder
(keyed by the run id), resume, and what every run logs.

* :func:`tracked_run` opens a new MLflow run, or with ``resume=RUN_ID`` reopens exactly that
  run after checking, before anything is written, that it may be resumed (it exists, has not
  finished, and its checkpoint loads and was written by the same config). Two runs of the
  same config never share a checkpoint: each writes ``<checkpoint_root>/<run id>/last.pt``.
* :func:`rank_session` holds one rank's part of a run; when the ranks end it, rank 0 sends its
  run id to every rank, so :func:`shared_run_id` names the run on every rank (the other ranks
  train and evaluate but leave the logging to rank 0).
* :func:`log_resumed_history` logs the epochs a killed run trained before its checkpoint.
* :func:`param_checksum` and :func:`pip_requirements` serve both tasks.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from geograph.errors import CheckpointError
from geograph.tracking.store import TAG_TRAINING_KEY
from geograph.train.loop import CHECKPOINT_FILE, load_checkpoint

DEFAULT_CHECKPOINT_ROOT = Path("mlruns") / "checkpoints"
TAG_RESUMED_FROM = "geograph.resumed_from_epoch"

# The run of this process's last training: opened here (rank 0, or a single process), or
# received from rank 0 when a rank session ended (see shared_run_id).
_SHARED: dict[str, str | None] = {"run_id": None}


def checkpoint_path(run_id: str, root: str | Path | None = None) -> Path:
    """``<root>/<run_id>/last.pt`` (root default ``mlruns/checkpoints``)."""
    return Path(root or DEFAULT_CHECKPOINT_ROOT) / run_id / CHECKPOINT_FILE


@dataclass
class TrackedRun:
    """An open run: its id, its checkpoint and whether it continues an earlier process."""

    run_id: str
    checkpoint: Path
    resumed: bool


def check_resumable(run_id: str, key: str, root: str | Path | None, tracking_uri: str | None) -> tuple[str, Path]:
    """The full id and checkpoint of the run to resume; raises before anything is written.

    Raises:
        TrackingError: no such run (or an ambiguous prefix).
        CheckpointError: the run finished, has no checkpoint, or its checkpoint is damaged or was
            written by another config.
    """
    from mlflow.tracking import MlflowClient

    from geograph.tracking.store import resolve_run_id, resolve_tracking_uri

    full = resolve_run_id(run_id, tracking_uri)
    run = MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri)).get_run(full)
    if run.info.status == "FINISHED":
        raise CheckpointError(f"run {full} already finished: nothing to resume (train a new run instead)")
    ckpt = checkpoint_path(full, root)
    load_checkpoint(ckpt, key)  # missing, damaged or another config: the run stays as it is
    return full, ckpt


@contextlib.contextmanager
def tracked_run(
    *,
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    key: str,
    tracking_uri: str | None = None,
    resume: str | None = None,
    checkpoint_root: str | Path | None = None,
) -> Iterator[TrackedRun]:
    """Open (or with ``resume`` reopen) the MLflow run of one training.

    Args:
        experiment: Experiment name.
        run_name: Run name of a new run.
        params: The whole config, logged as params of a new run.
        tags: Run tags of a new run (task, config name, data fingerprint, ...).
        key: The config hash stored in checkpoints; a resumed run's checkpoint must carry it.
        tracking_uri: Tracking URI (default: the configured one).
        resume: Run id (or unique prefix) to continue.
        checkpoint_root: Folder of the per-run checkpoint folders.

    Raises:
        TrackingError, CheckpointError: see :func:`check_resumable` (raised before the run opens).
    """
    from geograph.distributed.failures import record_run
    from geograph.tracking import start_run
    from geograph.tracking.store import reopen_run

    if resume:
        run_id, _ = check_resumable(resume, key, checkpoint_root, tracking_uri)
        ctx = reopen_run(run_id, tracking_uri)
    else:
        ctx = start_run(experiment, run_name, params=params, tags={**tags, TAG_TRAINING_KEY: key},
                        tracking_uri=tracking_uri)
    with ctx as active:
        import mlflow

        run_id = active.info.run_id
        ckpt = checkpoint_path(run_id, checkpoint_root)
        record_run(run_id, mlflow.get_tracking_uri(), ckpt)  # for failure messages and `--nproc`
        _SHARED["run_id"] = run_id
        yield TrackedRun(run_id, ckpt, bool(resume))


@contextlib.contextmanager
def rank_session(timeout_s: float) -> Iterator[Any]:
    """This process's part of one run under ``torchrun`` (or alone): the process group set up
    from the environment (and torn down at the end if this call made it), and a lost rank or
    torchrun's SIGTERM turned into a ``DistributedError`` naming the checkpoint to resume from
    (:func:`geograph.distributed.failures.rank_failures`). Yields the ``DistInfo``.

    When the body ends without an error, rank 0 broadcasts the id of the run it opened (a
    collective: every rank ends its session), so :func:`shared_run_id` names it on every rank."""
    import torch.distributed as tdist

    from geograph.distributed import cleanup, init_from_env
    from geograph.distributed.failures import rank_failures

    owned = not (tdist.is_available() and tdist.is_initialized())
    _SHARED["run_id"] = None
    info = init_from_env(timeout_s)
    try:
        with rank_failures(info, timeout_s):
            yield info
            if info.enabled:
                box = [_SHARED["run_id"] if info.is_main else None]
                tdist.broadcast_object_list(box, src=0)
                _SHARED["run_id"] = box[0]
    finally:
        if info.enabled and owned:
            cleanup()


def shared_run_id() -> str | None:
    """The MLflow run of this process's last training: the one it opened, or on a rank other
    than 0 of a distributed run, the one rank 0 opened and logs to (None before any run, or
    when the ranks' session ended with an error)."""
    return _SHARED["run_id"]


def resume_checkpoint(resume: str | None, tracking_uri: str | None, root: str | Path | None) -> Path | None:
    """The checkpoint a rank other than 0 resumes from (rank 0 opens the run and checks it)."""
    if not resume:
        return None
    from geograph.tracking.store import resolve_run_id

    return checkpoint_path(resolve_run_id(resume, tracking_uri), root)


def log_resumed_history(history: list[dict], resumed_from: int | None) -> None:
    """Tag a resumed run with the checkpoint's epoch, and log the epochs up to it that the run
    lacks (a process killed between writing a checkpoint and logging its epoch). Epochs the
    run already holds are not logged again; an epoch trained after the last checkpoint is
    trained and logged again by the resumed process, with the same values at the same step."""
    import mlflow

    if not resumed_from or not history:
        return
    mlflow.set_tag(TAG_RESUMED_FROM, str(resumed_from))
    key = next((k for k in history[0] if k != "epoch"), None)
    client = mlflow.tracking.MlflowClient()
    logged = {m.step for m in client.get_metric_history(mlflow.active_run().info.run_id, key)} if key else set()
    for h in history[:resumed_from]:
        if int(h["epoch"]) not in logged:
            mlflow.log_metrics({k: v for k, v in h.items() if k != "epoch"}, step=int(h["epoch"]))


def param_checksum(module: torch.nn.Module | Any) -> str | None:
    """SHA-256 (16 hex) of a module's state: equal on every rank of a data-parallel run."""
    if not isinstance(module, torch.nn.Module):
        return None
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def pip_requirements(packages: tuple[str, ...]) -> list[str]:
    """Pinned requirements of a logged model (stated, so MLflow does not infer them slowly)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in (*packages, "geograph"):
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


__all__ = [
    "DEFAULT_CHECKPOINT_ROOT",
    "TrackedRun",
    "check_resumable",
    "checkpoint_path",
    "log_resumed_history",
    "param_checksum",
    "pip_requirements",
    "rank_session",
    "resume_checkpoint",
    "shared_run_id",
    "tracked_run",
]

"""What a distributed run does when a rank dies, hangs or is stopped.

* :func:`rank_failures` (around a rank's work): a collective that fails because another rank
  died (gloo: "Connection closed by peer") or stopped answering (after the process-group
  timeout, ``train.dist_timeout_s``) becomes a :class:`DistributedError` naming this rank, the
  timeout and the checkpoint to resume from; the SIGTERM that ``torchrun`` sends every rank
  when one of them fails becomes the same error, so rank 0 closes its MLflow run as FAILED
  (a Python process killed by SIGTERM runs no ``finally`` and would leave it RUNNING).
* :func:`record_run` / :func:`fail_recorded_run`: rank 0 writes its MLflow run id to the file
  named by ``GEOGRAPH_RUN_FILE`` (set by ``geograph train --nproc``); when ``torchrun`` exits
  non-zero the launcher marks that run FAILED if it is still RUNNING (rank 0 was SIGKILLed and
  could not).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from geograph.distributed.env import DistInfo, DistributedError
from geograph.tracking.store import TAG_END_REASON

RUN_FILE_ENV = "GEOGRAPH_RUN_FILE"

# What torch's collectives raise when a peer is gone or silent: gloo "Connection closed by peer" /
# "Application timeout caused pair closure" / "Timed out waiting ... for recv", nccl and c10d
# watchdog errors. DistError subclasses (DistBackendError, DistNetworkError, ...) always count.
_LOST_PEER = re.compile(
    r"gloo|nccl|c10d|pair closure|connection (closed|reset|refused)|broken pipe|timed? ?out", re.IGNORECASE
)

_recorded: dict[str, str | None] = {}


class _Stopped(BaseException):
    """Raised by the SIGTERM handler of :func:`rank_failures`."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", line)  # drop the C++ source location


def is_lost_rank_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective failing because another rank died or stopped answering."""
    import torch.distributed as dist

    if isinstance(exc, DistributedError):
        return False
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    return isinstance(exc, RuntimeError) and bool(_LOST_PEER.search(str(exc)))


def record_run(run_id: str, tracking_uri: str | None, checkpoint: Path | None = None) -> None:
    """Remember rank 0's MLflow run (and write it, with the run's checkpoint path, to
    ``$GEOGRAPH_RUN_FILE`` when set)."""
    _recorded.update(run_id=run_id, tracking_uri=tracking_uri, checkpoint=checkpoint)
    path = os.environ.get(RUN_FILE_ENV)
    if path:
        tmp = Path(path).with_suffix(".tmp")
        ckpt = str(Path(checkpoint).resolve()) if checkpoint is not None else None
        tmp.write_text(json.dumps({"run_id": run_id, "tracking_uri": tracking_uri, "checkpoint": ckpt}))
        os.replace(tmp, path)


def _tag_end_reason(reason: str) -> None:
    run_id = _recorded.get("run_id")
    if not run_id:
        return
    try:
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=_recorded.get("tracking_uri")).set_tag(
            run_id, TAG_END_REASON, reason[:5000]
        )
    except Exception:  # noqa: BLE001 - the store may be what failed; the error itself matters more
        pass


@contextlib.contextmanager
def rank_failures(info: DistInfo, timeout_s: float, checkpoint: Path | None = None) -> Iterator[None]:
    """Turn a lost rank (or torchrun's SIGTERM) into a :class:`DistributedError` (see module doc).

    Does nothing in a single process.

    Args:
        info: This process's place in the job.
        timeout_s: The process-group timeout, quoted in the message.
        checkpoint: The run's ``last.pt``, quoted in the message when it exists (default: the
            one :func:`record_run` recorded, once the run has started).
    """
    if not info.enabled:
        yield
        return
    _recorded.clear()

    def resume_hint() -> str:
        ckpt = checkpoint if checkpoint is not None else _recorded.get("checkpoint")
        if ckpt is not None and Path(ckpt).exists():
            run = _recorded.get("run_id")
            how = f"--resume {run}" if run else "--resume RUN_ID"
            return f"; the last checkpoint {ckpt} is kept: rerun with {how} to continue from it"
        return "; no checkpoint was written yet"

    stopped = (
        f"rank {info.rank} of {info.world_size} was stopped by SIGTERM (torchrun stops every rank "
        "when one fails; look for the first failing rank above)"
    )

    raised = []

    def on_sigterm(signum, frame):
        # torchrun sends SIGTERM to every rank once one fails, possibly while this rank is
        # already ending (an error on its way up, MLflow closing the run): raising then would cut
        # that short and leave the run RUNNING or without its reason, so only the first SIGTERM
        # of a rank that is not already handling an error raises
        if raised or sys.exc_info()[0] is not None:
            return
        raised.append(signum)
        raise _Stopped  # a BaseException: no `except Exception` on the way swallows it

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except _Stopped:
        err = DistributedError(stopped + resume_hint())
        _tag_end_reason(str(err))
        raise err from None
    except DistributedError as exc:
        _tag_end_reason(str(exc))
        raise
    except Exception as exc:
        if not is_lost_rank_error(exc):
            raise
        err = DistributedError(
            f"rank {info.rank} of {info.world_size} lost contact with another rank: it died or did not "
            f"answer within train.dist_timeout_s={timeout_s:g} s ({_first_line(exc)}){resume_hint()}"
        )
        _tag_end_reason(str(err))
        raise err from exc
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def fail_recorded_run(run_file: Path, reason: str) -> dict | None:
    """Mark FAILED the run named in ``run_file`` if it is still RUNNING; returns the record
    (``run_id``, ``tracking_uri``, ``checkpoint``), or None when no run was recorded."""
    if not run_file.exists():
        return None
    rec = json.loads(run_file.read_text())
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=rec.get("tracking_uri"))
    run = client.get_run(rec["run_id"])
    if run.info.status == "RUNNING":
        client.set_tag(rec["run_id"], TAG_END_REASON, reason[:5000])
        client.set_terminated(rec["run_id"], status="FAILED")
    return rec

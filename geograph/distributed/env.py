"""Process-group set-up from the environment ``torchrun`` provides.

``torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT] -m geograph train ...``
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; geograph
then joins the group (gloo on CPU, nccl on CUDA). A rank that dies or a rendezvous that never
completes raises after ``timeout_s`` seconds instead of hanging.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from geograph.errors import GeographError


class DistributedError(GeographError):
    """A distributed run could not start or lost a rank."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """The current process's :class:`DistInfo` (single-process when no group is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_backend())
    return DistInfo()


def init_from_env(timeout_s: float = 300.0, backend: str | None = None) -> DistInfo:
    """Join the process group described by ``torchrun``'s environment variables.

    Does nothing (single process) when ``WORLD_SIZE`` is unset or 1.

    Args:
        timeout_s: Rendezvous and collective timeout; a dead rank surfaces as an error after it.
        backend: ``"gloo"`` or ``"nccl"``; default nccl when CUDA is available, else gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if dist.is_initialized():
        return dist_info()
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise DistributedError(f"WORLD_SIZE={world} but {missing} are not set; launch with torchrun")
    try:
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    except Exception as exc:  # noqa: BLE001 - rendezvous failures come in many types
        raise rendezvous_error(exc, timeout_s) from exc
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return dist_info()


def rendezvous_error(exc: BaseException, timeout_s: float) -> DistributedError:
    """The error of a rendezvous that did not complete: which rank waited, for what, where."""
    rank, world = os.environ.get("RANK", "?"), os.environ.get("WORLD_SIZE", "?")
    where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
    lines = str(exc).strip().splitlines()
    cause = lines[0] if lines else type(exc).__name__  # torch appends C++ stack frames: keep the message
    if rank == "0" and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        waited = f"waited for the other {int(world) - 1} rank(s) to join its store at {where}"
    else:
        waited = f"could not join the process group through the store of rank 0 at {where}"
    return DistributedError(
        f"rendezvous did not complete: rank {rank} of {world} {waited} for train.dist_timeout_s="
        f"{timeout_s:g} s ({cause}); start every rank with the same MASTER_ADDR and MASTER_PORT "
        "(torchrun does), or raise train.dist_timeout_s"
    )


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


# name -> (default group, a group beside it): made once per default group, dropped by cleanup()
_SIDE_GROUPS: dict[str, tuple[object, object]] = {}


def side_group(name: str):
    """A process group of every rank beside the default one (its backend: gloo on CPU, nccl on
    CUDA), made on the first call for ``name`` after the default group was (re)created, and
    reused after. Every rank must make the first call together. :func:`cleanup` destroys it with
    the default group and drops this module's reference, so the group is not torn down only at
    interpreter exit, after the peers' sockets closed."""
    world = dist.group.WORLD
    held = _SIDE_GROUPS.get(name)
    if held is None or held[0] is not world:
        _SIDE_GROUPS[name] = (world, dist.new_group())
    return _SIDE_GROUPS[name][1]


def cleanup() -> None:
    """Leave the process group and every :func:`side_group` (safe to call when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _SIDE_GROUPS.clear()

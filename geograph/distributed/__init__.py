"""torch.distributed support: process-group set-up from ``torchrun``'s environment, balanced
sharding of states over ranks, exact reductions of predictions, and a launcher."""

from geograph.distributed.env import DistInfo, barrier, cleanup, dist_info, init_from_env
from geograph.distributed.reduce import Reduction, sum_across_ranks
from geograph.distributed.sharding import balanced_partition

__all__ = [
    "DistInfo",
    "dist_info",
    "init_from_env",
    "cleanup",
    "barrier",
    "balanced_partition",
    "sum_across_ranks",
    "Reduction",
]

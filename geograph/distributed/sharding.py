"""Balanced assignment of states (or state groups) to ranks.

A state is any region key (``CA``, ``CA-ON``, ``FI-18``, ``H3-<cell>``; see
:mod:`geograph.data.regions`): items are only names with weights.
"""

from __future__ import annotations

from collections.abc import Mapping


def balanced_partition(weights: Mapping[str, float], n_ranks: int) -> list[list[str]]:
    """Longest-processing-time-first partition: items sorted by weight (largest first, ties by
    name) each go to the currently lightest rank. Deterministic; every item lands on exactly
    one rank. Its makespan is within 4/3 of the optimum (Graham 1969).

    Example:
        >>> balanced_partition({"CA": 10, "TX": 7, "NY": 5, "WY": 1}, 2)
        [['CA', 'WY'], ['TX', 'NY']]
    """
    if n_ranks < 1:
        raise ValueError(f"n_ranks must be >= 1, got {n_ranks}")
    parts: list[list[str]] = [[] for _ in range(n_ranks)]
    loads = [0.0] * n_ranks
    for name in sorted(weights, key=lambda k: (-weights[k], k)):
        r = min(range(n_ranks), key=lambda i: (loads[i], i))
        parts[r].append(name)
        loads[r] += weights[name]
    return parts

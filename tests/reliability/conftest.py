"""Reliability tests: shared fixtures, the fuzz budget and the counts written at the end.

Default run (``pytest tests/reliability``): small hypothesis budgets, ~1 min on 2 cores.
``pytest -m slow tests/reliability``: the large budgets, the subprocess SIGKILL / resume /
concurrent-logging runs with real training, and the 100K-POI query load test.
"""

from __future__ import annotations

import pytest

from .counting import totals, write_counts


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = write_counts()
    if path is not None:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write("\n")
            tr.write_line(f"reliability counts -> {path}: {totals()}")

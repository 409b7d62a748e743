"""Reliability tests: shared fixtures, the fuzz budget and the counts written at the end.

Default run (``pytest tests/reliability``): small hypothesis budgets and one fast variant of
each fault-injection test, under a minute on 2 cores. ``pytest -m slow tests/reliability``
(``make test-all`` runs both): the large budgets, the subprocess SIGKILL / resume /
concurrent-logging runs with real training, and the 100K-POI query load test.

Hypothesis keeps its files (example database, caches) under the system temporary folder,
never in the working tree: ``HYPOTHESIS_HOME`` is set in ``tests/conftest.py``, when pytest loads it,
before any test runs, and the ``geograph`` settings profile puts the example database there
(the fuzz tests themselves run with ``database=None``: their cases are derandomized or drawn
afresh).
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

"""Experiments: the task registry, suites of configs x seeds, and comparison of their runs.

* :mod:`~geograph.experiments.registry`: task names -> the functions that train one run.
* :mod:`~geograph.experiments.suite`: experiment suites (YAML), resumable.
* :mod:`~geograph.experiments.loading`: the finished runs of an experiment, from MLflow.
* :mod:`~geograph.experiments.grouping`: configs x seeds -> mean ± std table, the best config.
* :mod:`~geograph.experiments.rendering`: rich tables, Markdown / CSV files, plots.
* :mod:`~geograph.experiments.compare`: ``compare_runs`` and ``report``, composed from the three.

Everything loads on first attribute access.
"""

from __future__ import annotations

from geograph.utils.lazy import lazy_getattr

_LAZY = {
    "register_task": "geograph.experiments.registry",
    "get_task": "geograph.experiments.registry",
    "available_tasks": "geograph.experiments.registry",
    "unregister_task": "geograph.experiments.registry",
    "TASKS": "geograph.experiments.registry",
    "run_suite": "geograph.experiments.suite",
    "load_suite": "geograph.experiments.suite",
    "SuiteRunError": "geograph.experiments.suite",
    "compare_runs": "geograph.experiments.compare",
    "report": "geograph.experiments.compare",
    "ComparisonReport": "geograph.experiments.compare",
    "print_table": "geograph.experiments.rendering",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [*_LAZY]

"""Task registry: a name in a config or suite -> the function that trains and logs one run.

Every task function has the signature::

    fn(config: dict, *, tracking_uri: str | None = None, fast: bool = False) -> dict

and returns at least ``{"run_id": str, "metrics": dict[str, float]}``. Built-in tasks are
listed in :data:`TASKS` as ``"module:function"`` paths and imported only when first asked
for, so ``geograph --help`` does not import torch. Tests and plugins add their own with
:func:`register_task`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from geograph.errors import ConfigError

TaskFn = Callable[..., dict[str, Any]]

# Built-in tasks: name -> "module:function", resolved lazily by get_task.
TASKS: dict[str, str] = {
    "covisit": "geograph.covisit:run_from_config",
    "geolocate": "geograph.geolocate:run_from_config",
}

_BUILTIN = frozenset(TASKS)
_REGISTERED: dict[str, TaskFn] = {}


def _resolve(name: str, path: str) -> TaskFn:
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"task {name!r}: path must look like 'package.module:function', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"task {name!r}: cannot import {module_name!r} ({exc})") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"task {name!r}: {module_name!r} has no function {attr!r}")
    return fn


def register_task(name: str, fn: TaskFn | str, *, overwrite: bool = False) -> None:
    """Make ``name`` resolve to ``fn`` (a callable or a ``"module:function"`` path).

    Raises:
        ConfigError: ``name`` is taken and ``overwrite`` is False.
    """
    if not name or not isinstance(name, str):
        raise ConfigError(f"task name must be a non-empty string, got {name!r}")
    if not overwrite and (name in _REGISTERED or name in TASKS):
        raise ConfigError(f"task {name!r} is already registered; pass overwrite=True to replace it")
    if isinstance(fn, str):
        _REGISTERED.pop(name, None)
        TASKS[name] = fn
    elif callable(fn):
        _REGISTERED[name] = fn
    else:
        raise ConfigError(f"task {name!r}: expected a callable or 'module:function', got {type(fn).__name__}")


def unregister_task(name: str) -> None:
    """Forget a task added with :func:`register_task` (built-ins cannot be removed)."""
    _REGISTERED.pop(name, None)
    if name not in _BUILTIN:
        TASKS.pop(name, None)


def available_tasks() -> list[str]:
    """Every task name :func:`get_task` knows, sorted."""
    return sorted(set(TASKS) | set(_REGISTERED))


def get_task(name: str) -> TaskFn:
    """Return the task function registered as ``name`` (imports its module on first use).

    A name that is not registered but looks like ``"package.module:function"`` is imported
    as that path, so a suite can name a task of its own without registering it.

    Raises:
        ConfigError: unknown name, or the module / function cannot be loaded.
    """
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in TASKS:
        return _resolve(name, TASKS[name])
    if ":" in name:  # a "module:function" path used directly as the task name
        return _resolve(name, name)
    raise ConfigError(f"unknown task {name!r}; expected one of {available_tasks()} or 'module:function'")


__all__ = ["TASKS", "TaskFn", "available_tasks", "get_task", "register_task", "unregister_task"]

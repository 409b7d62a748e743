"""Shared CLI helpers: config loading with --set overrides, consoles, ``--quiet`` and steps.

Output rule of every command: stdout carries the result only (tables, JSON, ids); progress,
notes and errors go to stderr, and ``--quiet`` silences the progress (errors still print)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator

# MLflow's artifact download bars and INFO lines clutter the terminal; geograph shows its own
# progress. MLflow sets its loggers' level from MLFLOW_LOGGING_LEVEL when it is imported.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
logging.getLogger("mlflow").setLevel(logging.WARNING)


def add_config_args(p: argparse.ArgumentParser, default_config: str | None = None) -> None:
    p.add_argument("--config", default=default_config, help=f"YAML config (default {default_config})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.hidden=128 (repeatable)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)")
    p.add_argument("--fast", action="store_true", help="shrink data and epochs for a smoke run")


def load_config(args, cls: type | None = None) -> dict:
    """``--config`` with the ``--set`` overrides applied; with ``cls`` (a task's config class)
    checked now, so that a bad key names its file (or ``--set``) before any work starts."""
    from geograph.config import read_config

    return read_config(args.config, args.overrides, cls)


def console():
    """A rich console; 120 columns when output is not a terminal (logs, CI, pipes)."""

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=120)


def add_overwrite_args(p: argparse.ArgumentParser, what: str = "data") -> None:
    """``--overwrite`` / ``--replace FILE`` of every command that writes a data folder: only files
    geograph wrote (listed in its ``manifest.json``) are replaced, others only when named."""
    p.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace the {what} in an existing folder (only files geograph wrote, listed in its manifest.json)",
    )
    p.add_argument(
        "--replace",
        action="append",
        default=[],
        metavar="FILE",
        help="with --overwrite: a file in the folder that geograph did not write but may replace or remove "
        "(e.g. pois.csv; repeatable)",
    )


def command_modules(names: tuple[str, ...]) -> list:
    """The modules of ``names`` that exist, in order (a module missing is simply not offered;
    an import error inside one is raised)."""
    import importlib

    mods = []
    for name in names:
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
    return mods


def add_quiet_arg(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet``: no progress on stderr (errors still print; stdout keeps the result)."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr (errors still print)")


def stderr_console():
    """A rich console on stderr, for progress and notes (never the result)."""
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def step(text: str, quiet: bool = False) -> Iterator[None]:
    """Show a step that may take a while on stderr (:func:`geograph.train.progress.phase`):
    a spinner on a terminal, else a plain ``geograph: TEXT ...`` line; either way
    ``geograph: TEXT: 2.1 s`` when it ends. Nothing with ``quiet``."""
    from geograph.train.progress import phase

    with phase(text, enabled=not quiet):
        yield

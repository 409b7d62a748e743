"""Shared CLI helpers: config loading with --set overrides, consoles."""

from __future__ import annotations

import argparse
import logging
import os

# MLflow's artifact download bars and INFO lines clutter the terminal; geograph shows its own progress.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
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
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=120)

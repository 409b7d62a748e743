"""Command-line interface (``geograph``)."""

from geograph.cli.main import main

__all__ = ["main"]

"""``geograph import <format> FILE... --out DIR``: bring real data in as a geograph data folder.

One subcommand per source format, each in its own module (``import_patterns``,
``import_osm``) exposing ``add_parser(subparsers)``; the output is the same contract folder
(Parquet tables + ``manifest.json``) that ``geograph world`` writes, ready for
``geograph graph``, ``train`` and ``query``.
"""

from __future__ import annotations

import argparse

from geograph.cli.common import command_modules

# Format modules, in the order they appear in ``geograph import --help``.
FORMAT_MODULES = ("geograph.cli.import_patterns", "geograph.cli.import_osm")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import",
        help="import real data (vendor patterns, OpenStreetMap) as a geograph data folder",
        description="Read real data files and write a geograph data folder (Parquet tables and "
        "manifest.json) ready for `geograph graph`, `train` and `query`. See docs/guides/data.md.",
    )
    sub = p.add_subparsers(dest="format", metavar="FORMAT")
    sub.required = True
    for mod in command_modules(FORMAT_MODULES):
        mod.add_parser(sub)

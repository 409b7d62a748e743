"""The one geograph entry point: ``geograph <command> ...`` (also ``python -m geograph``).

Each subcommand lives in its own module under ``geograph/cli/`` and exposes
``register(subparsers)``; the module list below is the whole command surface.
Heavy imports happen inside the handlers so ``geograph --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from geograph.cli.common import command_modules
from geograph.errors import GeographError

# Subcommand modules, in the order they appear in --help. A module missing here is
# simply not offered.
COMMAND_MODULES = (
    "geograph.cli.world_cmd",
    "geograph.cli.import_cmd",
    "geograph.cli.demo_cmd",
    "geograph.cli.graph_cmd",
    "geograph.cli.train_cmd",
    "geograph.cli.evaluate_cmd",
    "geograph.cli.geolocate_cmd",
    "geograph.cli.tracking_cmd",
    "geograph.cli.query_cmd",
    "geograph.cli.config_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geograph",
        description="Geospatial graph learning: co-visitation prediction and geolocation on PyG.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in command_modules(COMMAND_MODULES):
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 2 bad input / usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage error (2) or --help (0)
        return exc.code if isinstance(exc.code, int) else 2
    args.cli_argv = list(sys.argv[1:] if argv is None else argv)  # for a command that starts itself again
    try:
        rc = args.func(args)
    except GeographError as exc:
        print(f"geograph: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave cannot be read or written (a folder, no permission, disk full)
        print(f"geograph: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("geograph: error: out of memory; ask for less (e.g. a smaller --pois) or free memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("geograph: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

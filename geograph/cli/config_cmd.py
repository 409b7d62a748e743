"""``geograph config show covisit|geolocate [--config FILE] [--set k=v ...]``: every default in one place."""

from __future__ import annotations

import argparse
import importlib

# task -> its config class ("module:Class"), imported only when asked for
CONFIG_CLASSES = {
    "covisit": "geograph.covisit.config:CovisitConfig",
    "geolocate": "geograph.geolocate.config:GeolocateConfig",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config", help="print a task's resolved config (every default) as YAML")
    sub = p.add_subparsers(dest="config_command", metavar="ACTION")
    sub.required = True
    s = sub.add_parser("show", help="print the config a run would use: defaults, then --config, then --set")
    s.add_argument("task", choices=sorted(CONFIG_CLASSES), help="the task whose config to show")
    s.add_argument("--config", default=None, help="YAML config (default: none, i.e. every default)")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 (repeatable)")
    s.add_argument("--describe", action="store_true",
                   help="print each key's default, type and description instead of the resolved values")
    s.set_defaults(func=_show)


def config_class(task: str) -> type:
    """The config dataclass of a built-in task."""
    module, _, name = CONFIG_CLASSES[task].partition(":")
    return getattr(importlib.import_module(module), name)


def _show(args) -> int:
    import yaml

    from geograph.config import describe, from_dict, read_config

    cls = config_class(args.task)
    if args.describe:
        out = describe(cls)
    else:
        d = read_config(args.config, args.overrides, cls)
        out = from_dict(cls, d, source=args.config).to_dict()
    print(yaml.safe_dump(out, sort_keys=False, allow_unicode=True), end="")
    return 0

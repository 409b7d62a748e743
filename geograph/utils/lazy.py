"""Lazy package attributes: ``geograph --help`` and ``import geograph.covisit`` import no torch."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str], *, submodules: bool = False) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``names[attr]`` (a module path) on first access.

    Args:
        package: The package's ``__name__`` (named in the AttributeError).
        names: Attribute -> module that defines it.
        submodules: Also resolve ``package.<attr>`` submodules (``geograph.covisit.evaluate``).
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        if submodules and importlib.util.find_spec(f"{package}.{name}") is not None:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__

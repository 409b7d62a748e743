"""Small shared utilities: atomic writes, seeding, device selection.

``seed_everything``, ``select_device`` and ``autocast_context`` import torch, so they are
loaded on first use: importing ``geograph.utils`` for atomic writes stays cheap.
"""

from geograph.utils.atomic import atomic_write, atomic_write_bytes, atomic_write_text

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "seed_everything",
    "select_device",
    "autocast_context",
]

_LAZY = {"seed_everything": "geograph.utils.seed", "select_device": "geograph.utils.device",
         "autocast_context": "geograph.utils.device"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geograph.utils' has no attribute {name!r}")

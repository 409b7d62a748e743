"""Small shared utilities: atomic writes, seeding, device selection."""

from geograph.utils.atomic import atomic_write, atomic_write_bytes, atomic_write_text
from geograph.utils.seed import seed_everything
from geograph.utils.device import autocast_context, select_device

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "seed_everything",
    "select_device",
    "autocast_context",
]

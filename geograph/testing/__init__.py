"""Tiny seeded builders used by tests and docs."""

from geograph.testing.worlds import hand_made_world, tiny_world

__all__ = ["hand_made_world", "tiny_world"]

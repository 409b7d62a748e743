"""Type aliases used across geograph."""

from __future__ import annotations

NodeType = str
EdgeType = tuple[str, str, str]
H3Cell = str

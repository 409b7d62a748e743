"""Graph cache: a built graph saved under a hash of its inputs and config, reloaded instead of rebuilt.

Files are written atomically and carry a SHA-256 checksum of their payload; a truncated or
corrupt cache file is reported, deleted and rebuilt. Loading uses
``torch.load(weights_only=True)``: nothing is unpickled. Caches written before node features
moved from ``x_raw`` to ``x`` still load: :meth:`GeoGraph.from_state` renames the old key.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path

import torch

from geograph.data.world_io import World
from geograph.errors import CheckpointError
from geograph.graph.builder import build_graph
from geograph.graph.config import GraphConfig
from geograph.graph.geograph_data import GeoGraph
from geograph.utils.atomic import atomic_write_bytes

CACHE_VERSION = 1
DEFAULT_CACHE_DIR = Path(".geograph_cache")
_MAGIC = b"GEOGRAPH-CACHE-1\n"


def cache_key(world: World, config: GraphConfig) -> str:
    """Hash of the world's content, the graph config and the cache format version."""
    blob = json.dumps({"world": world.fingerprint(), "config": config.to_dict(), "v": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def save_checked(obj: dict, path: Path) -> None:
    """``torch.save`` ``obj`` with a checksum header, atomically."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    atomic_write_bytes(path, _MAGIC + digest + b"\n" + payload)


def load_checked(path: Path) -> dict:
    """Load a file written by :func:`save_checked`; raise :class:`CheckpointError` if it is damaged."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not raw.startswith(_MAGIC):
        raise CheckpointError(f"{path} is not a geograph checksummed file (bad header)")
    body = raw[len(_MAGIC) :]
    digest, _, payload = body.partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CheckpointError(f"{path} is corrupt or truncated (checksum mismatch)")
    try:
        return torch.load(io.BytesIO(payload), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything torch raises here means a bad file
        raise CheckpointError(f"{path} could not be decoded: {exc}") from exc


def cached_build(world: World, config: GraphConfig | None = None, cache_dir: str | Path | None = DEFAULT_CACHE_DIR) -> GeoGraph:
    """Build the graph of ``world`` or load it from ``cache_dir`` (None disables the cache)."""
    config = config or GraphConfig()
    if cache_dir is None:
        return build_graph(world, config)
    path = Path(cache_dir) / f"graph-{cache_key(world, config)}.pt"
    if path.exists():
        try:
            graph = GeoGraph.from_state(load_checked(path))
            graph.stats = dict(graph.stats, cache="hit")
            return graph
        except CheckpointError as exc:
            warnings.warn(f"{exc}; rebuilding the graph", stacklevel=2)
            path.unlink(missing_ok=True)
    graph = build_graph(world, config)
    save_checked(graph.to_state(), path)
    graph.stats = dict(graph.stats, cache="miss")
    return graph

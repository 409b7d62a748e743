"""The built graph as a PyG ``InMemoryDataset``, loaded the way ``Planetoid`` is.

Example:
    >>> from geograph.graph import GeoGraphDataset
    >>> ds = GeoGraphDataset("data/pyg", n_pois=500, seed=0)   # the embedded world
    >>> data = ds[0]                                            # a HeteroData
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from torch_geometric.data import InMemoryDataset

from geograph.graph.builder import build_graph
from geograph.graph.config import GraphConfig
from geograph.graph.transforms import BRAND_NAMES
from geograph.utils.atomic import atomic_write_text

FORMAT_VERSION = 2
"""Version of the processed files, part of their name: 2 keeps node features in ``x`` (1 had
``x_raw``) and the brand names on the graph, so older processed files are rebuilt, not loaded."""


class GeoGraphDataset(InMemoryDataset):
    """A geograph world as a one-graph PyG dataset.

    ``ds[0]`` is the built ``HeteroData`` (features in ``x``) with ``brand_names`` set, so a
    fitted :class:`~geograph.graph.transforms.FeaturePreprocessor` works as its ``transform``.

    Args:
        root: Dataset folder (``processed/`` is created under it).
        world_dir: A world folder to read (see :func:`geograph.data.load_world`); when None the
            embedded world is generated with ``n_pois`` and ``seed``.
        config: Graph construction options.
        n_pois: Size of the embedded world (ignored with ``world_dir``).
        seed: Seed of the embedded world.
        transform: Applied on every access (PyG convention).
        pre_transform: Applied once before saving.
        force_reload: Rebuild even if processed files exist.
    """

    def __init__(
        self,
        root: str | Path,
        world_dir: str | Path | None = None,
        config: GraphConfig | None = None,
        n_pois: int = 2000,
        seed: int = 0,
        transform: Callable | None = None,
        pre_transform: Callable | None = None,
        force_reload: bool = False,
    ) -> None:
        self.world_dir = Path(world_dir) if world_dir is not None else None
        self.graph_config = config or GraphConfig()
        self.n_pois = n_pois
        self.seed = seed
        super().__init__(str(root), transform, pre_transform, force_reload=force_reload)
        self.load(self.processed_paths[0])
        self.index_tables = json.loads(Path(self.processed_paths[1]).read_text())

    @property
    def _key(self) -> str:
        src = str(self.world_dir.resolve()) if self.world_dir else f"embedded:{self.n_pois}:{self.seed}"
        # a world folder's files (name, size, mtime) are part of the key, so editing the world
        # makes new processed files instead of silently reloading the old graph
        stamp = (
            sorted(
                (str(f.relative_to(self.world_dir)), f.stat().st_size, f.stat().st_mtime_ns)
                for f in self.world_dir.rglob("*")
                if f.is_file()
            )
            if self.world_dir is not None and self.world_dir.is_dir()
            else []
        )
        blob = json.dumps(
            {"src": src, "files": stamp, "config": self.graph_config.to_dict(), "format": FORMAT_VERSION}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def raw_file_names(self) -> list[str]:
        return []

    @property
    def processed_file_names(self) -> list[str]:
        return [f"graph-{self._key}.pt", f"index-{self._key}.json"]

    def download(self) -> None:  # data is local or generated; nothing to fetch
        return None

    def process(self) -> None:
        if self.world_dir is not None:
            from geograph.data import load_world

            world = load_world(self.world_dir)
        else:
            from geograph.data.synthetic import generate_world

            world = generate_world(n_pois=self.n_pois, seed=self.seed)
        graph = build_graph(world, self.graph_config)
        data = graph.data
        data[BRAND_NAMES] = list(graph.index["brands"])
        if self.pre_transform is not None:
            data = self.pre_transform(data)
        self.save([data], self.processed_paths[0])
        atomic_write_text(self.processed_paths[1], json.dumps(graph.index))

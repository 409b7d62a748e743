"""A learnable embedding per H3 cell (baseline location encoder).

The vocabulary is every cell of one resolution (res 2: 5,882 cells, res 3: 41,162), or a
given list of cells with one shared row for cells outside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import h3
import torch
from torch import nn

from geograph.nn.location.base import LocationEncoderBase

_MAX_ALL_CELLS_RES = 4  # res 4 has 288,122 cells; finer resolutions need an explicit list


def all_cells(resolution: int) -> list[str]:
    """Every H3 cell at ``resolution`` (0..4), sorted."""
    if not 0 <= resolution <= _MAX_ALL_CELLS_RES:
        raise ValueError(
            f"enumerating all cells needs resolution 0..{_MAX_ALL_CELLS_RES}, got {resolution}; pass cells="
        )
    out: list[str] = []
    for c in h3.get_res0_cells():
        out.extend(h3.cell_to_children(c, resolution))
    return sorted(out)


class H3CellEmbedding(LocationEncoderBase):
    """``nn.Embedding`` looked up by the H3 cell containing each point.

    Args:
        resolution: H3 resolution (default 2, ~86,700 km² cells).
        out_dim: Embedding size (default 128).
        cells: Vocabulary; default every cell at ``resolution``. Points in a cell outside the
            vocabulary share one extra "unknown" row.
        seed: Initialisation seed (default 0).
    """

    def __init__(
        self, resolution: int = 2, out_dim: int = 128, cells: Sequence[str] | None = None, seed: int = 0
    ) -> None:
        super().__init__()
        if not 0 <= resolution <= 15:
            raise ValueError(f"h3 resolution must be 0..15, got {resolution}")
        self.resolution, self.out_dim, self.seed = resolution, out_dim, seed
        vocab = sorted(set(cells)) if cells is not None else all_cells(resolution)
        bad = [c for c in vocab if not h3.is_valid_cell(c) or h3.get_resolution(c) != resolution]
        if bad:
            raise ValueError(f"cells must be valid H3 cells at resolution {resolution}, got {bad[0]!r}")
        self.cells = vocab
        self.index = {c: i for i, c in enumerate(vocab)}
        self.embedding = nn.Embedding(len(vocab) + 1, out_dim)  # last row: unknown cell
        self.reset_parameters()

    def reset_parameters(self) -> None:
        g = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.randn(self.embedding.weight.shape, generator=g) * 0.1)

    def cell_ids(self, latlon: torch.Tensor) -> torch.Tensor:
        """Row of each point's cell (``len(cells)`` for unknown cells); shape ``(N,)``."""
        unk = len(self.cells)
        res = self.resolution
        ids = [
            self.index.get(h3.latlng_to_cell(a, b, res), unk)
            for a, b in latlon.detach().cpu().double().tolist()
        ]
        return torch.tensor(ids, dtype=torch.long, device=self.embedding.weight.device)

    def encode(self, latlon: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.cell_ids(latlon))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(resolution={self.resolution}, cells={len(self.cells)}, out_dim={self.out_dim})"

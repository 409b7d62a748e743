"""Learnable embeddings of the NAICS hierarchy.

geograph's own design (``mode="hierarchical"``): one embedding table per level (2, 3, 4, 5,
6 digits), summed. Index 0 at each level means "unseen in training" and embeds to zero, so a
rare or unseen 6-digit code is represented by its seen ancestors and borrows strength from
its sector. ``mode="flat"`` reproduces the released code of Alrubyli et al. (one table over
the 6-digit codes, LayerNorm); see https://arxiv.org/abs/2507.19697.
"""

from __future__ import annotations

import torch
from torch import nn

from geograph.nn.norm import LayerNorm


class NAICSEncoder(nn.Module):
    """Embed per-level NAICS indices.

    Args:
        num_embeddings: Table size per level (from ``NAICSVocabulary.sizes()``), in level order.
        dim: Embedding size.
        mode: ``"hierarchical"`` (sum over levels) or ``"flat"`` (finest level only + LayerNorm).

    Shapes:
        input ``(N, L)`` int64 indices (one column per level); output ``(N, dim)``.
    """

    def __init__(self, num_embeddings: list[int], dim: int = 16, mode: str = "hierarchical") -> None:
        super().__init__()
        if mode not in ("hierarchical", "flat"):
            raise ValueError(f"NAICSEncoder mode must be 'hierarchical' or 'flat', got {mode!r}")
        if dim <= 0:
            raise ValueError(f"NAICSEncoder dim must be > 0, got {dim}")
        self.num_embeddings = list(num_embeddings)
        self.dim = dim
        self.mode = mode
        sizes = self.num_embeddings if mode == "hierarchical" else self.num_embeddings[-1:]
        self.tables = nn.ModuleList(nn.Embedding(n, dim, padding_idx=0) for n in sizes)
        self.norm = LayerNorm(dim) if mode == "flat" else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for t in self.tables:
            nn.init.normal_(t.weight, std=0.1)
            with torch.no_grad():
                t.weight[0].zero_()
        if isinstance(self.norm, LayerNorm):
            self.norm.reset_parameters()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if self.mode == "flat":
            return self.norm(self.tables[0](idx[:, -1]))
        out = self.tables[0](idx[:, 0])
        for j in range(1, len(self.tables)):
            out = out + self.tables[j](idx[:, j])
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(levels={len(self.num_embeddings)}, dim={self.dim}, mode={self.mode})"

"""Every default of graph construction in one dataclass (logged whole to MLflow)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from geograph.config import from_dict
from geograph.errors import ConfigError


@dataclass
class GraphConfig:
    """How a world becomes a :class:`~torch_geometric.data.HeteroData`.

    Attributes:
        granularity: ``"poi"`` (one node per venue) or ``"brand"`` (one node per brand within a
            state, as in the NAICS co-visitation paper).
        cell_resolution: H3 resolution of ``cell`` nodes (0..15).
        cell_k: Grid distance of ``cell -adjacent-> cell`` edges (among cells that hold a POI or image).
        near_k: Nearest POIs per POI for ``poi -near-> poi`` (0 disables).
        near_radius_km: Maximum great-circle distance of a ``near`` edge.
        image_k: Nearest images in embedding space for ``image -similar-> image`` (0 disables).
        include_images: Add ``image`` nodes when the world has images.
        halo_km: Border halo of the state partitioner: POIs of other states within this distance
            join a state's subgraph as context (never as targets).
        rank_k: Same-state neighbour distances kept per POI (``poi.knn_km``) for the
            ``neighbour_rank`` pair feature (intervening opportunities, capped at ``rank_k``).
    """

    granularity: str = "poi"
    cell_resolution: int = 7
    cell_k: int = 1
    near_k: int = 8
    near_radius_km: float = 25.0
    image_k: int = 8
    include_images: bool = True
    halo_km: float = 0.0
    rank_k: int = 32

    def __post_init__(self) -> None:
        if self.granularity not in ("poi", "brand"):
            raise ConfigError(f"graph.granularity must be 'poi' or 'brand', got {self.granularity!r}")
        if not 0 <= int(self.cell_resolution) <= 15:
            raise ConfigError(f"graph.cell_resolution must be 0..15, got {self.cell_resolution}")
        for name in ("cell_k", "near_k", "image_k", "rank_k"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"graph.{name} must be >= 0, got {getattr(self, name)}")
        if self.near_radius_km <= 0:
            raise ConfigError(f"graph.near_radius_km must be > 0, got {self.near_radius_km}")
        if self.halo_km < 0:
            raise ConfigError(f"graph.halo_km must be >= 0, got {self.halo_km}")

    @classmethod
    def from_dict(cls, d: dict | None, *, source: str | None = None) -> GraphConfig:
        """Build from a dict of ``graph`` keys (see :func:`geograph.config.from_dict`).

        Raises:
            ConfigError: an unknown key (named ``graph.<key>``), a wrong type or a bad value.
        """
        return from_dict(cls, d, source=source, section="graph")

    def to_dict(self) -> dict:
        return asdict(self)

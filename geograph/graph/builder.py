"""Build a :class:`GeoGraph` (PyG ``HeteroData``) from a validated world.

Node types: ``poi`` (one per POI row, or per brand within a state with
``granularity="brand"``), ``cell`` (H3 cells holding a POI or an image) and ``image``; every
node type keeps its features in ``x``. The relations are listed in :mod:`geograph.graph.edges`.

Rules for awkward input (each counted in :attr:`GeoGraph.stats` and warned about):
co-visit self-loops are dropped; duplicated (src, dst) pairs are summed; co-visits naming a
POI not in the POI table raise :class:`~geograph.errors.DataValidationError`.
"""

from __future__ import annotations

import polars as pl
from torch_geometric.data import HeteroData

from geograph.constants import IMAGE_ID, POI_ID
from geograph.data.brands import to_brand_level
from geograph.data.covisit_tables import expand_brand_covisits, sorted_unique
from geograph.data.poi_tables import check_unique, poi_feature_columns
from geograph.data.world_io import World
from geograph.errors import DataValidationError
from geograph.geo.sphere import unit_xyz
from geograph.graph.config import GraphConfig
from geograph.graph.edges import (
    add_cell_edges,
    add_covisit_edges,
    add_image_edges,
    add_near_edges,
    knn_embedding_edges,
    knn_geo_edges,
    symmetrize,
)
from geograph.graph.geograph_data import GeoGraph
from geograph.graph.nodes import add_cell_nodes, add_image_nodes, add_poi_nodes, image_positions
from geograph.graph.pairs import PAIR_COLUMNS, neighbour_rank, pair_features, same_state_knn_km

__all__ = [
    "build_graph",
    # re-exported from the modules they moved to, for code that imports them from here
    "PAIR_COLUMNS",
    "expand_brand_covisits",
    "knn_embedding_edges",
    "knn_geo_edges",
    "neighbour_rank",
    "pair_features",
    "poi_feature_columns",
    "same_state_knn_km",
    "sorted_unique",
    "symmetrize",
    "unit_xyz",
]


def build_graph(world: World, config: GraphConfig | None = None, file: str = "<world>") -> GeoGraph:
    """Build the heterogeneous graph of ``world``.

    Args:
        world: Validated tables (see :mod:`geograph.data`).
        config: Construction options; defaults to :class:`GraphConfig()`.
        file: Name used in error messages.

    Returns:
        A :class:`GeoGraph` whose node features ``x`` are the raw values; fit a
        :class:`~geograph.graph.transforms.FeaturePreprocessor` on training nodes to
        standardise them.

    Raises:
        DataValidationError: an empty POI table, a repeated ``poi_id``, or a co-visit row that
            names a POI not in the POI table.
    """
    config = config or GraphConfig()
    if config.granularity == "brand":
        world = to_brand_level(world)
    pois = world.pois
    if pois.height == 0:
        raise DataValidationError("the POI table is empty", file=file, field=POI_ID)
    check_unique(pois[POI_ID].cast(pl.Utf8), POI_ID, file)
    stats: dict[str, int] = {}
    data = HeteroData()

    poi = add_poi_nodes(data, pois)
    images = world.images if (config.include_images and world.images is not None and world.images.height) else None
    ilat, ilon = image_positions(images)
    cells = add_cell_nodes(data, poi.lat, poi.lon, ilat, ilon, world.regions, int(config.cell_resolution))
    add_cell_edges(data, cells.poi_cell, cells.ids, config)
    add_near_edges(data, poi.lat, poi.lon, config)
    add_covisit_edges(data, pois, world.covisits, stats, file)

    index = {
        "poi_ids": pois[POI_ID].cast(pl.Utf8).to_list(),
        "cell_ids": cells.ids,
        "states": poi.states,
        "brands": poi.brands,
        "poi_feature_names": poi.feature_names,
        "cell_feature_names": cells.feature_names,
        "image_ids": [],
    }
    if images is not None:
        emb = add_image_nodes(data, images, ilat, ilon)
        add_image_edges(data, emb, cells.image_cell, config)
        index["image_ids"] = images[IMAGE_ID].cast(pl.Utf8).to_list()
    return GeoGraph(data=data, index=index, config=config.to_dict(), stats=stats)

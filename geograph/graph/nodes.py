"""Node stores of the built graph: POIs, H3 cells (with their region features) and images.

Every node type keeps its numeric features in ``x`` (POI columns, cell counts and region
columns, image embeddings), as PyG models expect; the id tables that map rows back to the
data go to :attr:`GeoGraph.index`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from torch_geometric.data import HeteroData

from geograph.constants import BRAND_COL, CELL, EMBEDDING, H3_CELL, IMAGE, LAT, LON, NAICS_CODE, POI, STATE
from geograph.data.poi_tables import poi_feature_columns
from geograph.errors import DataValidationError
from geograph.geo.h3cells import (
    as_cell_ids,
    cell_centers,
    cell_parents,
    cell_resolutions,
    cells_to_strings,
    latlng_to_cell_ids,
)

CELL_COUNT_FEATURE = "log1p_pois"
"""The first cell feature: ``log1p`` of the number of POIs in the cell."""

HAS_REGION_FEATURE = "has_region"
"""The last cell feature when the world has regions: 1 where a region row matched the cell."""


@dataclass
class PoiNodes:
    """What the builder keeps from the POI table besides the ``poi`` store.

    Attributes:
        lat: Latitudes as in the table (float64).
        lon: Longitudes as in the table (float64).
        feature_names: Names of the columns of ``poi.x``.
        states: State codes, sorted; ``poi.state`` indexes them.
        brands: Brand names, sorted; ``poi.brand`` indexes them (-1: unbranded).
    """

    lat: np.ndarray
    lon: np.ndarray
    feature_names: list[str]
    states: list[str]
    brands: list[str]


def add_poi_nodes(data: HeteroData, pois: pl.DataFrame) -> PoiNodes:
    """Write the ``poi`` store: ``x``, ``pos``, ``state``, ``brand``, ``naics_code``.

    Args:
        data: The graph being built.
        pois: The validated POI table (one node per row, in table order).

    Returns:
        The table columns and id lists the other builder steps need.
    """
    n = pois.height
    lat = pois[LAT].cast(pl.Float64).to_numpy()
    lon = pois[LON].cast(pl.Float64).to_numpy()
    feat_cols = poi_feature_columns(pois)
    x = (
        pois.select(pl.col(c).cast(pl.Float64) for c in feat_cols).to_numpy()
        if feat_cols
        else np.zeros((n, 0), dtype=np.float64)
    )
    states_s = pois[STATE].cast(pl.Utf8)
    states = sorted(states_s.unique().to_list())
    state_idx = states_s.replace_strict(states, list(range(len(states))), return_dtype=pl.Int64).to_numpy()
    brand_s = pois[BRAND_COL].cast(pl.Utf8)
    brands = sorted(brand_s.drop_nulls().unique().to_list())
    brand_idx = brand_s.replace_strict(brands, list(range(len(brands))), default=-1, return_dtype=pl.Int64).to_numpy()
    naics = pois[NAICS_CODE].cast(pl.Utf8).str.strip_chars()
    p = data[POI]
    p.num_nodes = n
    p.x = torch.from_numpy(np.array(x, dtype=np.float32))
    p.pos = torch.from_numpy(np.stack([lat, lon], 1)).float()
    p.state = torch.from_numpy(np.array(state_idx, dtype=np.int64))
    p.brand = torch.from_numpy(np.array(brand_idx, dtype=np.int64))
    p.naics_code = torch.from_numpy(np.array(naics.cast(pl.Int64).to_numpy(), dtype=np.int64))
    return PoiNodes(lat=lat, lon=lon, feature_names=feat_cols, states=states, brands=brands)


@dataclass
class CellNodes:
    """The ``cell`` nodes: H3 cells holding a POI or an image, sorted by H3 id.

    Attributes:
        ids: H3 ids of the cells.
        poi_cell: Cell index of each POI; shape ``(N,)``.
        image_cell: Cell index of each image; shape ``(I,)``.
        feature_names: Names of the columns of ``cell.x``.
    """

    ids: list[str]
    poi_cell: np.ndarray
    image_cell: np.ndarray
    feature_names: list[str]


def add_cell_nodes(
    data: HeteroData,
    poi_lat: np.ndarray,
    poi_lon: np.ndarray,
    image_lat: np.ndarray,
    image_lon: np.ndarray,
    regions: pl.DataFrame | None,
    resolution: int,
) -> CellNodes:
    """Write the ``cell`` store (``pos``, ``x``) and ``poi.cell``.

    Args:
        data: The graph being built (its ``poi`` store already written).
        poi_lat: POI latitudes.
        poi_lon: POI longitudes.
        image_lat: Image latitudes (empty without images).
        image_lon: Image longitudes.
        regions: The regions table, if any (see :func:`cell_features`).
        resolution: H3 resolution of the cells.
    """
    n = len(poi_lat)
    points = latlng_to_cell_ids(np.concatenate([poi_lat, image_lat]), np.concatenate([poi_lon, image_lon]), resolution)
    # uint64 order is the hex strings' order (see geograph.geo.h3cells): cells sorted by H3 id
    cell_u64, inverse = np.unique(points, return_inverse=True)
    poi_cell = inverse[:n]
    c = data[CELL]
    c.num_nodes = len(cell_u64)
    c.pos = cell_positions(cell_u64)
    cell_x, names = cell_features(cell_u64, poi_cell, regions, resolution)
    c.x = torch.from_numpy(cell_x).float()
    data[POI].cell = torch.from_numpy(poi_cell.astype(np.int64))
    return CellNodes(ids=cells_to_strings(cell_u64), poi_cell=poi_cell, image_cell=inverse[n:], feature_names=names)


def cell_positions(cell_ids) -> torch.Tensor:
    """Centres of H3 cells (``uint64`` indexes or hex strings); ``(C, 2)`` float32 ``(lat, lon)``."""
    return torch.from_numpy(cell_centers(cell_ids)).float().reshape(-1, 2)


def cell_features(
    cells, poi_cell: np.ndarray, regions: pl.DataFrame | None, res: int
) -> tuple[np.ndarray, list[str]]:
    """Cell features: log1p(POIs in cell), the numeric region columns of the covering region (or
    the mean of the finer regions / region points inside the cell), and ``has_region``.

    Args:
        cells: H3 ids of the cells (``uint64`` indexes or hex strings).
        poi_cell: Cell index of each POI.
        regions: Regions keyed by ``h3_cell`` (any one resolution) or by ``latitude`` /
            ``longitude`` points; None: only the POI count.
        res: H3 resolution of ``cells``.

    Returns:
        ``(features, names)``: ``(C, F)`` float64 and the column names.

    Raises:
        DataValidationError: regions of more than one H3 resolution.
    """
    counts = np.bincount(poi_cell, minlength=len(cells)).astype(np.float64)
    feats = [np.log1p(counts)[:, None]]
    names = [CELL_COUNT_FEATURE]
    # a regions table without rows (a state-partitioned world's state that has none) still adds
    # the region columns (zeros, has_region 0), so every state's graph has the same features
    by_cell = regions is not None and H3_CELL in regions.columns
    by_point = regions is not None and not by_cell and {LAT, LON} <= set(regions.columns)
    if by_cell or by_point:
        num = [cname for cname, dt in regions.schema.items() if cname != H3_CELL and dt.is_numeric()
               and cname not in (LAT, LON)]
        cell_u64 = as_cell_ids(cells)
        if by_cell:
            # the regions table keeps hex strings for users; joined here as uint64 indexes
            reg_cells = as_cell_ids(regions[H3_CELL])
            resolutions = sorted(set(np.unique(cell_resolutions(reg_cells)).tolist()))
            if len(resolutions) > 1:
                raise DataValidationError(
                    f"regions mix H3 resolutions {resolutions}; expected one resolution", field=H3_CELL
                )
            reg_res = resolutions[0] if resolutions else res
            table = regions.select(num).with_columns(pl.Series(H3_CELL, reg_cells, pl.UInt64))
        else:
            # region points (latitude / longitude): the cell holding each point
            reg_res = res + 1
            pts = latlng_to_cell_ids(regions[LAT].cast(pl.Float64).to_numpy(), regions[LON].cast(pl.Float64).to_numpy(), res)
            table = regions.select(num).with_columns(pl.Series(H3_CELL, pts, pl.UInt64))
        if reg_res <= res:
            keys = cell_parents(cell_u64, reg_res)
        else:
            # finer regions than cells: average them up to the cell resolution
            if by_cell:
                table = table.with_columns(pl.Series(H3_CELL, cell_parents(table[H3_CELL].to_numpy(), res), pl.UInt64))
            table = table.group_by(H3_CELL).agg(pl.col(num).mean())
            keys = cell_u64
        table = table.with_columns(pl.lit(1.0).alias("_hit"))
        joined = (
            pl.DataFrame({H3_CELL: pl.Series(keys, dtype=pl.UInt64)})
            .with_row_index("_r")
            .join(table, on=H3_CELL, how="left")
            .sort("_r")
        )
        vals = joined.select(num).to_numpy().astype(np.float64)
        # has_region: a region row matched (a null in one of its columns still counts)
        has = joined["_hit"].is_not_null().to_numpy()
        feats += [np.nan_to_num(vals, nan=0.0), has[:, None].astype(np.float64)]
        names += num + [HAS_REGION_FEATURE]
    return np.concatenate(feats, axis=1), names


def image_positions(images: pl.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """``(lat, lon)`` float64 of the images (empty arrays for None)."""
    if images is None:
        return np.zeros(0), np.zeros(0)
    return images[LAT].cast(pl.Float64).to_numpy(), images[LON].cast(pl.Float64).to_numpy()


def add_image_nodes(data: HeteroData, images: pl.DataFrame, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Write the ``image`` store (``x``: the embeddings, ``pos``); returns the ``(I, D)`` float32
    embeddings."""
    emb = np.asarray(images[EMBEDDING].to_list(), dtype=np.float32)
    im = data[IMAGE]
    im.num_nodes = images.height
    im.x = torch.from_numpy(emb)
    im.pos = torch.from_numpy(np.stack([lat, lon], 1)).float()
    return emb

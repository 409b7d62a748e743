"""Edge stores of the built graph (reverse relations carry the ``rev_`` prefix).

====================  ============================================================
edge type             meaning
====================  ============================================================
poi -in-> cell        the H3 cell (``cell_resolution``) holding the POI
cell -adjacent-> cell H3 neighbours within ``cell_k`` among cells holding data
poi -near-> poi       ``near_k`` nearest POIs within ``near_radius_km`` (symmetrised)
poi -covisits-> poi   every co-visit row (``visitors``, zeros included)
image -in-> cell      the cell holding the image
image -similar->image ``image_k`` nearest images in embedding space (symmetrised)
====================  ============================================================
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import torch
from scipy.spatial import cKDTree
from torch_geometric.data import HeteroData

from geograph.constants import (
    ADJACENT,
    CELL,
    COVISITS,
    DST_BRAND,
    DST_POI,
    IMAGE,
    IN,
    NEAR,
    POI,
    REV_PREFIX,
    SIMILAR,
    SRC_POI,
    VISITORS,
)
from geograph.data.covisit_tables import aggregate_pairs, expand_brand_covisits, map_poi_ids
from geograph.geo.h3cells import as_cell_ids, grid_disks
from geograph.geo.sphere import km_to_chord, unit_xyz
from geograph.graph.config import GraphConfig
from geograph.graph.geograph_data import empty_long
from geograph.graph.pairs import PAIR_COLUMNS, pair_features, same_state_knn_km


def symmetrize(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Union of ``edge_index`` and its transpose, without duplicates or self-loops, sorted."""
    if edge_index.numel() == 0:
        return empty_long()
    ei = edge_index.numpy()
    src, dst = np.concatenate([ei[0], ei[1]]), np.concatenate([ei[1], ei[0]])
    keep = src != dst
    key = np.sort(src[keep].astype(np.int64) * num_nodes + dst[keep])
    starts = np.ones(len(key), dtype=bool)
    np.not_equal(key[1:], key[:-1], out=starts[1:])
    key = key[starts]
    return torch.from_numpy(np.stack([key // num_nodes, key % num_nodes]))


def knn_geo_edges(lat: np.ndarray, lon: np.ndarray, k: int, radius_km: float) -> torch.Tensor:
    """Directed edges i -> j for the ``k`` nearest points of i within ``radius_km``."""
    n = len(lat)
    if n < 2 or k == 0:
        return empty_long()
    xyz = unit_xyz(lat, lon)
    tree = cKDTree(xyz)
    kk = min(k + 1, n)
    dist, nbr = tree.query(xyz, k=kk, distance_upper_bound=km_to_chord(radius_km), workers=-1)
    src = np.repeat(np.arange(n), kk)
    dst = nbr.reshape(-1)
    ok = (dst < n) & (dst != src)
    return torch.from_numpy(np.stack([src[ok], dst[ok]])).long()


def knn_embedding_edges(emb: np.ndarray, k: int) -> torch.Tensor:
    """Directed edges i -> j to the ``k`` nearest embeddings (cosine), chunked exact top-k."""
    n = len(emb)
    if n < 2 or k == 0:
        return empty_long()
    x = torch.nn.functional.normalize(torch.as_tensor(emb, dtype=torch.float32), dim=1)
    kk = min(k + 1, n)
    out = []
    for start in range(0, n, 4096):
        sim = x[start : start + 4096] @ x.T
        idx = sim.topk(kk, dim=1).indices
        src = torch.arange(start, start + len(idx)).repeat_interleave(kk)
        out.append(torch.stack([src, idx.reshape(-1)]))
    ei = torch.cat(out, dim=1)
    return ei[:, ei[0] != ei[1]]


def cell_adjacency_edges(cell_ids, k: int) -> torch.Tensor:
    """``cell -adjacent-> cell`` edges: every pair of the cells within H3 grid distance ``k``.

    Edges are listed by source cell, each source's in ``h3.grid_disk`` order.

    Args:
        cell_ids: The cells (``uint64`` indexes or hex strings), one node each.
        k: Grid distance.

    Shapes: returns ``(2, E)`` int64 (empty for ``k == 0`` or a single cell).
    """
    if k <= 0 or len(cell_ids) < 2:
        return empty_long()
    ids = as_cell_ids(cell_ids)
    offsets, disk = grid_disks(ids, int(k))
    src = np.repeat(np.arange(len(ids), dtype=np.int64), np.diff(offsets))
    order = np.argsort(ids, kind="stable")
    at = np.minimum(np.searchsorted(ids[order], disk), len(ids) - 1)
    dst = order[at].astype(np.int64)
    keep = (ids[dst] == disk) & (dst != src)
    return torch.from_numpy(np.stack([src[keep], dst[keep]])).reshape(2, -1)


def add_cell_edges(data: HeteroData, poi_cell: np.ndarray, cell_ids: list[str], config: GraphConfig) -> None:
    """Write ``poi -in-> cell`` (and its reverse) and ``cell -adjacent-> cell``."""
    ei = torch.from_numpy(np.stack([np.arange(len(poi_cell)), poi_cell]).astype(np.int64))
    data[POI, IN, CELL].edge_index = ei
    data[CELL, REV_PREFIX + IN, POI].edge_index = ei.flip(0)
    data[CELL, ADJACENT, CELL].edge_index = cell_adjacency_edges(cell_ids, int(config.cell_k))


def add_near_edges(data: HeteroData, lat: np.ndarray, lon: np.ndarray, config: GraphConfig) -> None:
    """Write ``poi -near-> poi`` (with pair features as ``edge_attr``) and ``poi.knn_km``.

    Args:
        data: The graph being built (its ``poi`` store already written).
        lat: POI latitudes as in the table (float64; the neighbours are found on these).
        lon: POI longitudes.
        config: ``near_k``, ``near_radius_km`` and ``rank_k``.
    """
    p = data[POI]
    n = len(lat)
    near = symmetrize(knn_geo_edges(lat, lon, int(config.near_k), float(config.near_radius_km)), n)
    data[POI, NEAR, POI].edge_index = near
    # from the stored (float32) positions, the ones pair_features measures pair distances on
    pos32 = p.pos.double().numpy()
    p.knn_km = torch.from_numpy(same_state_knn_km(pos32[:, 0], pos32[:, 1], p.state.numpy(), int(config.rank_k)))
    data[POI, NEAR, POI].edge_attr = (
        pair_features(p, near[0], near[1]) if near.size(1) else torch.zeros(0, PAIR_COLUMNS)
    )


def add_covisit_edges(
    data: HeteroData, pois: pl.DataFrame, covisits: pl.DataFrame, stats: dict[str, int], file: str = "<world>"
) -> None:
    """Write ``poi -covisits-> poi`` and its reverse (``visitors`` on both, pair features as
    ``edge_attr`` on the forward relation).

    Brand-level rows are first expanded to POI rows (see
    :func:`~geograph.data.covisit_tables.expand_brand_covisits`); self-loops are dropped and
    duplicated pairs summed (:func:`~geograph.data.covisit_tables.aggregate_pairs`), each
    counted in ``stats`` and warned about.

    Raises:
        DataValidationError: a co-visit row names a POI that is not in ``pois``.
    """
    n = pois.height
    cov = covisits
    if DST_BRAND in cov.columns and DST_POI not in cov.columns:
        cov, st = expand_brand_covisits(pois, cov, file)
        stats.update(st)
        if st["brand_rows_without_target"]:
            warnings.warn(
                f"dropped {st['brand_rows_without_target']} brand-level co-visit rows whose dst_brand has no "
                "other POI in the source POI's state",
                stacklevel=3,
            )
    src = map_poi_ids(cov[SRC_POI], pois, SRC_POI, file)
    dst = map_poi_ids(cov[DST_POI], pois, DST_POI, file)
    vis = cov[VISITORS].cast(pl.Int64).to_numpy()
    cs, cd, vis, counts = aggregate_pairs(src, dst, vis, n)
    stats.update(counts)
    if counts["covisit_self_loops_dropped"]:
        warnings.warn(f"dropped {counts['covisit_self_loops_dropped']} co-visit self-loops (src == dst)", stacklevel=3)
    if counts["covisit_duplicates_summed"]:
        warnings.warn(f"summed {counts['covisit_duplicates_summed']} duplicated co-visit pairs", stacklevel=3)
    cs, cd = torch.from_numpy(cs), torch.from_numpy(cd)
    cov_ei = torch.stack([cs, cd]).long()
    store = data[POI, COVISITS, POI]
    store.edge_index = cov_ei
    store.visitors = torch.from_numpy(vis)
    store.edge_attr = pair_features(data[POI], cs, cd) if len(cs) else torch.zeros(0, PAIR_COLUMNS)
    rev = data[POI, REV_PREFIX + COVISITS, POI]
    rev.edge_index = cov_ei.flip(0)
    rev.visitors = torch.from_numpy(vis)


def add_image_edges(data: HeteroData, emb: np.ndarray, image_cell: np.ndarray, config: GraphConfig) -> None:
    """Write ``image -in-> cell`` (and its reverse) and ``image -similar-> image``."""
    n = len(emb)
    iei = torch.from_numpy(np.stack([np.arange(n), image_cell]).astype(np.int64))
    data[IMAGE, IN, CELL].edge_index = iei
    data[CELL, REV_PREFIX + IN, IMAGE].edge_index = iei.flip(0)
    data[IMAGE, SIMILAR, IMAGE].edge_index = symmetrize(knn_embedding_edges(emb, int(config.image_k)), n)

"""Build a :class:`GeoGraph` (PyG ``HeteroData``) from a validated world.

Node types and relations (reverse relations carry the ``rev_`` prefix):

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

Rules for awkward input (each counted in :attr:`GeoGraph.stats` and warned about):
co-visit self-loops are dropped; duplicated (src, dst) pairs are summed; co-visits naming a
POI not in the POI table raise :class:`~geograph.errors.DataValidationError`.
"""

from __future__ import annotations

import warnings

import h3
import numpy as np
import polars as pl
import torch
from scipy.spatial import cKDTree
from torch_geometric.data import HeteroData

from geograph.constants import (
    ADJACENT,
    BRAND_COL,
    CELL,
    COVISITS,
    DST_BRAND,
    DST_POI,
    EARTH_RADIUS_KM,
    EMBEDDING,
    H3_CELL,
    IMAGE,
    IMAGE_ID,
    IN,
    LAT,
    LON,
    NAICS_CODE,
    NEAR,
    POI,
    POI_ID,
    REV_PREFIX,
    SIMILAR,
    SRC_POI,
    STATE,
    VISITORS,
)
from geograph.data.world_io import World
from geograph.errors import DataValidationError
from geograph.graph.config import GraphConfig
from geograph.graph.geograph_data import GeoGraph, empty_long

# POI columns that are never numeric features.
_NON_FEATURE = {POI_ID, "name", BRAND_COL, NAICS_CODE, LAT, LON, STATE}


def poi_feature_columns(pois: pl.DataFrame) -> list[str]:
    """Numeric extra columns of a POI table, in table order."""
    return [c for c, dt in pois.schema.items() if c not in _NON_FEATURE and dt.is_numeric()]


def unit_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere; chord distance is monotone in great-circle distance."""
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=1)


def sorted_unique(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, starts, unique)``: the sort order of ``key``, a mask of the sorted positions that
    start a new value, and the sorted distinct values.

    Measured on 2 cores: for 10-20M int64 keys ``np.argsort`` / ``np.sort`` plus this mask is
    2x faster than ``np.unique(..., return_inverse=True)`` and 5x faster than ``torch.unique``.
    """
    order = np.argsort(key)
    sk = key[order]
    starts = np.ones(len(sk), dtype=bool)
    np.not_equal(sk[1:], sk[:-1], out=starts[1:])
    return order, starts, sk[starts]


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
    chord = 2 * np.sin(radius_km / EARTH_RADIUS_KM / 2)
    dist, nbr = tree.query(xyz, k=kk, distance_upper_bound=chord, workers=-1)
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


def _check_unique(ids: pl.Series, what: str, file: str) -> None:
    dup = ids.is_duplicated()
    if dup.any():
        row = int(dup.arg_max())
        raise DataValidationError(f"duplicate {what} {ids[row]!r}", file=file, row=row, field=what)


def _map_ids(col: pl.Series, lookup: pl.DataFrame, field: str, file: str) -> np.ndarray:
    """Map string ids to node indices through a join; unknown ids raise naming the row."""
    frame = pl.DataFrame({"_id": col.cast(pl.Utf8)}).with_row_index("_row")
    joined = frame.join(lookup, on="_id", how="left").sort("_row")
    missing = joined["_idx"].is_null()
    if missing.any():
        row = int(missing.arg_max())
        raise DataValidationError(
            f"co-visit names POI {joined['_id'][row]!r} which is not in the POI table "
            f"({int(missing.sum())} such rows)",
            file=file,
            row=row,
            field=field,
        )
    return joined["_idx"].to_numpy().astype(np.int64)


def expand_brand_covisits(
    pois: pl.DataFrame, covisits: pl.DataFrame, file: str = "<world>"
) -> tuple[pl.DataFrame, dict]:
    """Turn (src_poi_id, dst_brand, visitors) rows into POI-to-POI rows.

    Rule: a row's visitors are split evenly (rounded down, remainder to the first POIs by
    ``poi_id``) over the POIs of ``dst_brand`` in the source POI's state, the source POI itself
    excluded. Rows whose brand has no POI in that state (other than the source itself) are
    dropped and counted (``brand_rows_without_target``). A ``src_poi_id`` not in the POI table
    raises :class:`~geograph.errors.DataValidationError`.
    """
    known = covisits[SRC_POI].cast(pl.Utf8).is_in(pois[POI_ID].cast(pl.Utf8).implode())
    if not known.all():
        row = int((~known).arg_max())
        raise DataValidationError(
            f"co-visit names POI {covisits[SRC_POI][row]!r} which is not in the POI table "
            f"({int((~known).sum())} such rows)",
            file=file,
            row=row,
            field=SRC_POI,
        )
    src_state = pois.select(pl.col(POI_ID).alias(SRC_POI), pl.col(STATE).alias("_state"))
    targets = (
        pois.filter(pl.col(BRAND_COL).is_not_null())
        .select(pl.col(BRAND_COL).alias(DST_BRAND), pl.col(STATE).alias("_state"), pl.col(POI_ID).alias(DST_POI))
        .sort(DST_POI)
    )
    rows = covisits.select(SRC_POI, DST_BRAND, VISITORS).with_row_index("_row").join(src_state, on=SRC_POI, how="left")
    joined = rows.join(targets, on=[DST_BRAND, "_state"], how="left")
    # a POI of the destination brand that is the source itself gets no share (it would be a self-loop)
    # (a row whose only target was the source itself disappears here, so count kept rows)
    joined = joined.filter(pl.col(DST_POI).is_not_null() & (pl.col(DST_POI) != pl.col(SRC_POI)))
    unmatched = covisits.height - joined["_row"].n_unique()
    # joins do not promise row order: sort, so the remainder goes to the first POIs by poi_id
    joined = joined.sort("_row", DST_POI).with_columns(
        pl.len().over("_row").alias("_n"), pl.int_range(pl.len()).over("_row").alias("_k")
    ).with_columns(
        (pl.col(VISITORS) // pl.col("_n") + (pl.col("_k") < pl.col(VISITORS) % pl.col("_n")).cast(pl.Int64)).alias(
            VISITORS
        )
    )
    out = joined.select(SRC_POI, DST_POI, VISITORS)
    return out, {"brand_rows_without_target": int(unmatched), "brand_rows_expanded_to": out.height}


def pair_features(graph_or_arrays, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Pair features ``[distance_km, same_brand, naics_prefix_depth, neighbour_rank]`` for POI pairs.

    ``distance_km`` is the great-circle (haversine) distance, ``same_brand`` 1 when both POIs
    carry the same brand (never for unbranded POIs), ``naics_prefix_depth`` the number of
    leading NAICS digits shared (2..6; 0 when the sectors differ). ``neighbour_rank`` counts the
    intervening opportunities (Stouffer; the ``s_ij`` of the radiation model): the number of
    same-state POIs closer to one end than the other end is, the smaller of the two directions,
    capped at ``rank_k`` (the width of ``poi.knn_km``; NaN when the store has no ``knn_km``).

    Shapes: ``src``, ``dst`` are ``(E,)``; returns ``(E, 4)`` float32.
    """
    store = graph_or_arrays.data[POI] if isinstance(graph_or_arrays, GeoGraph) else graph_or_arrays
    s, d = src.numpy(), dst.numpy()
    # per-node terms first (radians, cos(lat), NAICS prefixes), then gather per pair: at 1M POIs /
    # 20M pairs this is 2-3x faster than haversine_km on gathered coordinates, with equal output
    pos = store.pos.double().numpy()
    lat, lon = np.radians(pos[:, 0]), np.radians(pos[:, 1])
    cos_lat = np.cos(lat)
    h = np.sin((lat[d] - lat[s]) / 2) ** 2 + cos_lat[s] * cos_lat[d] * np.sin((lon[d] - lon[s]) / 2) ** 2
    out = np.empty((len(s), PAIR_COLUMNS), dtype=np.float32)
    km = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    out[:, 0] = km
    brand = store.brand.numpy()
    out[:, 1] = (brand[s] == brand[d]) & (brand[s] >= 0)
    naics = store.naics_code.numpy()
    depth = np.zeros(len(s), dtype=np.float32)
    still = np.ones(len(s), dtype=bool)
    for lv in (2, 3, 4, 5, 6):
        prefix = (naics // 10 ** (6 - lv)).astype(np.int32)
        still &= prefix[s] == prefix[d]
        depth[still] = lv
    out[:, 2] = depth
    knn = getattr(store, "knn_km", None)
    out[:, 3] = neighbour_rank(knn.numpy(), s, d, km) if knn is not None else np.nan
    return torch.from_numpy(out)


PAIR_COLUMNS = 4
"""Columns of :func:`pair_features`."""


def neighbour_rank(knn_km: np.ndarray, s: np.ndarray, d: np.ndarray, km: np.ndarray) -> np.ndarray:
    """``min(#{k: knn_km[s, k] < km}, #{k: knn_km[d, k] < km})`` per pair (10 cm of tolerance keeps
    the other end itself, at exactly ``km``, out), in chunks so that 1M x 32 gathers stay small."""
    out = np.empty(len(s), dtype=np.float32)
    lim = (km - 1e-4)[:, None]
    step = 1 << 18
    for a in range(0, len(s), step):
        b = a + step
        r1 = (knn_km[s[a:b]] < lim[a:b]).sum(1)
        r2 = (knn_km[d[a:b]] < lim[a:b]).sum(1)
        out[a:b] = np.minimum(r1, r2)
    return out


def same_state_knn_km(lat: np.ndarray, lon: np.ndarray, state: np.ndarray, k: int) -> np.ndarray:
    """Great-circle km to each point's ``k`` nearest same-state points, ascending; ``(N, k)``
    float32, ``inf`` where a state has fewer than ``k + 1`` points."""
    n = len(lat)
    out = np.full((n, k), np.inf, dtype=np.float32)
    if n < 2 or k == 0:
        return out
    xyz = unit_xyz(lat, lon)
    order = np.argsort(state, kind="stable")
    bounds = np.flatnonzero(np.r_[True, state[order][1:] != state[order][:-1], True])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        idx = order[lo:hi]
        kk = min(k + 1, len(idx))
        if kk < 2:
            continue
        chord, _ = cKDTree(xyz[idx]).query(xyz[idx], k=kk, workers=-1)
        chord = np.asarray(chord).reshape(len(idx), kk)[:, 1:]  # column 0 is the point itself
        out[idx, : kk - 1] = 2 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2, 0.0, 1.0))
    return out


def build_graph(world: World, config: GraphConfig | None = None, file: str = "<world>") -> GeoGraph:
    """Build the heterogeneous graph of ``world``.

    Args:
        world: Validated tables (see :mod:`geograph.data`).
        config: Construction options; defaults to :class:`GraphConfig()`.
        file: Name used in error messages.

    Returns:
        A :class:`GeoGraph` with raw features (``x_raw``); fit a
        :class:`~geograph.graph.transforms.FeaturePreprocessor` on training nodes to get ``x``.
    """
    config = config or GraphConfig()
    if config.granularity == "brand":
        from geograph.graph.brand import to_brand_level

        world = to_brand_level(world)
    pois = world.pois
    if pois.height == 0:
        raise DataValidationError("the POI table is empty", file=file, field=POI_ID)
    _check_unique(pois[POI_ID].cast(pl.Utf8), POI_ID, file)
    stats: dict[str, int] = {}
    n = pois.height
    data = HeteroData()

    # --- POI nodes --------------------------------------------------------------------
    lat = pois[LAT].cast(pl.Float64).to_numpy()
    lon = pois[LON].cast(pl.Float64).to_numpy()
    feat_cols = poi_feature_columns(pois)
    x_raw = (
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
    p.x_raw = torch.from_numpy(np.array(x_raw, dtype=np.float32))
    p.pos = torch.from_numpy(np.stack([lat, lon], 1)).float()
    p.state = torch.from_numpy(np.array(state_idx, dtype=np.int64))
    p.brand = torch.from_numpy(np.array(brand_idx, dtype=np.int64))
    p.naics_code = torch.from_numpy(np.array(naics.cast(pl.Int64).to_numpy(), dtype=np.int64))

    # --- images ---------------------------------------------------------------------------
    images = world.images if (config.include_images and world.images is not None and world.images.height) else None
    if images is not None:
        ilat = images[LAT].cast(pl.Float64).to_numpy()
        ilon = images[LON].cast(pl.Float64).to_numpy()
    else:
        ilat = ilon = np.zeros(0)

    # --- cells ------------------------------------------------------------------------------
    res = int(config.cell_resolution)
    f = h3.latlng_to_cell
    poi_cells = [f(a, b, res) for a, b in zip(lat.tolist(), lon.tolist(), strict=True)]
    img_cells = [f(a, b, res) for a, b in zip(ilat.tolist(), ilon.tolist(), strict=True)]
    cell_ids, inverse = np.unique(np.asarray(poi_cells + img_cells, dtype=object).astype(str), return_inverse=True)
    cell_ids = cell_ids.tolist()
    poi_cell = inverse[:n]
    img_cell = inverse[n:]
    c = data[CELL]
    c.num_nodes = len(cell_ids)
    c.pos = torch.tensor([h3.cell_to_latlng(x) for x in cell_ids], dtype=torch.float32).reshape(-1, 2)
    cell_x, cell_feat_names = _cell_features(cell_ids, poi_cell, world.regions, res)
    c.x_raw = torch.from_numpy(cell_x).float()
    p.cell = torch.from_numpy(poi_cell.astype(np.int64))

    ei = torch.from_numpy(np.stack([np.arange(n), poi_cell]).astype(np.int64))
    data[POI, IN, CELL].edge_index = ei
    data[CELL, REV_PREFIX + IN, POI].edge_index = ei.flip(0)

    if config.cell_k > 0 and len(cell_ids) > 1:
        pos_of = {cid: i for i, cid in enumerate(cell_ids)}
        src, dst = [], []
        for i, cid in enumerate(cell_ids):
            for nb in h3.grid_disk(cid, int(config.cell_k)):
                j = pos_of.get(nb)
                if j is not None and j != i:
                    src.append(i)
                    dst.append(j)
        data[CELL, ADJACENT, CELL].edge_index = torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)
    else:
        data[CELL, ADJACENT, CELL].edge_index = empty_long()

    # --- near ------------------------------------------------------------------------------
    near = symmetrize(knn_geo_edges(lat, lon, int(config.near_k), float(config.near_radius_km)), n)
    data[POI, NEAR, POI].edge_index = near
    # from the stored (float32) positions, the ones pair_features measures pair distances on
    pos32 = p.pos.double().numpy()
    p.knn_km = torch.from_numpy(same_state_knn_km(pos32[:, 0], pos32[:, 1], p.state.numpy(), int(config.rank_k)))
    data[POI, NEAR, POI].edge_attr = (
        pair_features(p, near[0], near[1]) if near.size(1) else torch.zeros(0, PAIR_COLUMNS)
    )

    # --- co-visits ----------------------------------------------------------------------------
    cov = world.covisits
    if DST_BRAND in cov.columns and DST_POI not in cov.columns:
        cov, st = expand_brand_covisits(pois, cov, file)
        stats.update(st)
        if st["brand_rows_without_target"]:
            warnings.warn(
                f"dropped {st['brand_rows_without_target']} brand-level co-visit rows whose dst_brand has no "
                "other POI in the source POI's state",
                stacklevel=2,
            )
    lookup = pl.DataFrame({"_id": pois[POI_ID].cast(pl.Utf8), "_idx": np.arange(n, dtype=np.int64)})
    src = _map_ids(cov[SRC_POI], lookup, SRC_POI, file)
    dst = _map_ids(cov[DST_POI], lookup, DST_POI, file)
    vis = cov[VISITORS].cast(pl.Int64).to_numpy()
    loops = src == dst
    stats["covisit_self_loops_dropped"] = int(loops.sum())
    if loops.any():
        warnings.warn(f"dropped {int(loops.sum())} co-visit self-loops (src == dst)", stacklevel=2)
        src, dst, vis = src[~loops], dst[~loops], vis[~loops]
    key = src * n + dst
    order, starts, uniq = sorted_unique(key)
    stats["covisit_duplicates_summed"] = int(len(key) - len(uniq))
    if len(uniq) < len(key):
        warnings.warn(f"summed {len(key) - len(uniq)} duplicated co-visit pairs", stacklevel=2)
        group = np.cumsum(starts) - 1  # distinct-key index of each sorted row
        vis = np.bincount(group, weights=vis[order], minlength=len(uniq)).astype(np.int64)
    else:
        vis = vis[order]
    cs, cd = torch.from_numpy(uniq // n), torch.from_numpy(uniq % n)
    cov_ei = torch.stack([cs, cd]).long()
    data[POI, COVISITS, POI].edge_index = cov_ei
    data[POI, COVISITS, POI].visitors = torch.from_numpy(vis)
    data[POI, COVISITS, POI].edge_attr = pair_features(p, cs, cd) if len(uniq) else torch.zeros(0, PAIR_COLUMNS)
    data[POI, REV_PREFIX + COVISITS, POI].edge_index = cov_ei.flip(0)
    data[POI, REV_PREFIX + COVISITS, POI].visitors = torch.from_numpy(vis)

    # --- image nodes ----------------------------------------------------------------------------
    index = {
        "poi_ids": pois[POI_ID].cast(pl.Utf8).to_list(),
        "cell_ids": cell_ids,
        "states": states,
        "brands": brands,
        "poi_feature_names": feat_cols,
        "cell_feature_names": cell_feat_names,
        "image_ids": [],
    }
    if images is not None:
        emb = np.asarray(images[EMBEDDING].to_list(), dtype=np.float32)
        im = data[IMAGE]
        im.num_nodes = images.height
        im.x = torch.from_numpy(emb)
        im.pos = torch.from_numpy(np.stack([ilat, ilon], 1)).float()
        iei = torch.from_numpy(np.stack([np.arange(images.height), img_cell]).astype(np.int64))
        data[IMAGE, IN, CELL].edge_index = iei
        data[CELL, REV_PREFIX + IN, IMAGE].edge_index = iei.flip(0)
        data[IMAGE, SIMILAR, IMAGE].edge_index = symmetrize(knn_embedding_edges(emb, int(config.image_k)), images.height)
        index["image_ids"] = images[IMAGE_ID].cast(pl.Utf8).to_list()
    return GeoGraph(data=data, index=index, config=config.to_dict(), stats=stats)


def _cell_features(cells: list[str], poi_cell: np.ndarray, regions: pl.DataFrame | None, res: int):
    """Cell features: log1p(POIs in cell), the numeric region columns of the covering region (or
    the mean of the finer regions / region points inside the cell), and ``has_region``."""
    counts = np.bincount(poi_cell, minlength=len(cells)).astype(np.float64)
    feats = [np.log1p(counts)[:, None]]
    names = ["log1p_pois"]
    # a regions table without rows (a state-partitioned world's state that has none) still adds
    # the region columns (zeros, has_region 0), so every state's graph has the same features
    by_cell = regions is not None and H3_CELL in regions.columns
    by_point = regions is not None and not by_cell and {LAT, LON} <= set(regions.columns)
    if by_cell or by_point:
        num = [cname for cname, dt in regions.schema.items() if cname != H3_CELL and dt.is_numeric()
               and cname not in (LAT, LON)]
        if by_cell:
            resolutions = sorted({h3.get_resolution(x) for x in regions[H3_CELL].unique().to_list()})
            if len(resolutions) > 1:
                raise DataValidationError(
                    f"regions mix H3 resolutions {resolutions}; expected one resolution", field=H3_CELL
                )
            reg_res = resolutions[0] if resolutions else res
            table = regions.select(H3_CELL, *num)
        else:
            # region points (latitude / longitude): the cell holding each point
            reg_res = res + 1
            pts = zip(regions[LAT].to_list(), regions[LON].to_list(), strict=True)
            table = regions.select(num).with_columns(pl.Series(H3_CELL, [h3.latlng_to_cell(a, b, res) for a, b in pts], pl.Utf8))
        if reg_res <= res:
            keys = [h3.cell_to_parent(cid, reg_res) for cid in cells]
        else:
            # finer regions than cells: average them up to the cell resolution
            if by_cell:
                table = table.with_columns(
                    pl.col(H3_CELL).map_elements(lambda x: h3.cell_to_parent(x, res), return_dtype=pl.Utf8)
                )
            table = table.group_by(H3_CELL).agg(pl.col(num).mean())
            keys = cells
        table = table.with_columns(pl.lit(1.0).alias("_hit"))
        joined = pl.DataFrame({H3_CELL: keys}).with_row_index("_r").join(table, on=H3_CELL, how="left").sort("_r")
        vals = joined.select(num).to_numpy().astype(np.float64)
        # has_region: a region row matched (a null in one of its columns still counts)
        has = joined["_hit"].is_not_null().to_numpy()
        feats += [np.nan_to_num(vals, nan=0.0), has[:, None].astype(np.float64)]
        names += num + ["has_region"]
    return np.concatenate(feats, axis=1), names

"""``whatif``: score a hypothetical new venue with a trained co-visitation GNN.

The venue becomes a new POI node of the model's graph, placed by
:class:`~geograph.graph.insert.PoiInserter` with the settings the graph was built with:

* **features**: each numeric POI feature is the value given, or else the median of the POIs
  with the same 6-digit NAICS code in the venue's state (then in any state, then all POIs
  of the state), scaled with the model's fitted :class:`~geograph.graph.transforms.FeaturePreprocessor`;
* **NAICS**: indices through the model's fitted vocabulary (a code unseen in training falls
  back to its seen parent levels, exactly as for training POIs);
* **cell**: the H3 cell at the graph's resolution (its POI count grows by one; a cell the
  graph lacks is created with the region features of a cell without region data and
  ``adjacent`` edges to the graph's cells within ``cell_k``);
* **near**: edges to its ``near_k`` nearest POIs within ``near_radius_km`` (both directions;
  the existing POIs keep their own nearest-neighbour lists, so no POI adds the venue to its
  list: ``reverse_near=False``);
* **co-visits**: none (a new venue has no observed co-visits: the cold-start case).

Its embedding comes from the model's encoder run on the ``layers``-hop neighbourhood of the
new node and of the scored POIs inside the venue's state group, which gives the same
embeddings as a pass over the whole group graph. The edge head then predicts the co-visits of
the venue with its ``candidates`` nearest POIs of the same state (within ``radius_km``),
averaging both pair orientations in log1p space. The same is done for the nearest existing
POI with the same NAICS code, on the same candidates, for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
from torch_geometric.data import HeteroData

from geograph.constants import (
    ADJACENT,
    BRAND_COL,
    CELL,
    COVISITS,
    IMAGE,
    IN,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    NEAR,
    POI,
    POI_ID,
    REV_PREFIX,
    STATE,
)
from geograph.data.naics import NAICSTaxonomy
from geograph.errors import ConfigError, DataValidationError
from geograph.geo.sphere import haversine_km
from geograph.graph.insert import PoiInserter, PoiInsertion
from geograph.graph.pairs import pair_features
from geograph.graph.transforms import raw_features

from ._checks import check_lat_lon, check_naics, check_positive, check_state
from .model_context import ModelContext, one_thread, to_visitors
from .world_source import WorldSource, reads_world

FAR_KM = 50.0  # beyond this from any POI of its state, a venue is an extrapolation (noted)


@dataclass
class Venue:
    """A hypothetical venue.

    Attributes:
        latitude: WGS84 degrees.
        longitude: WGS84 degrees.
        naics_code: 6-digit 2022 NAICS code.
        brand: Brand name (a brand the model knows makes ``same_brand`` pair features count).
        name: Label used in outputs. Default "new venue".
        state: 2-letter state code (default: the state of the nearest POI).
        features: Numeric POI features by name (the others: same-NAICS medians).
    """

    latitude: float
    longitude: float
    naics_code: str
    brand: str | None = None
    name: str = "new venue"
    state: str | None = None
    features: dict[str, float] = field(default_factory=dict)


@dataclass
class WhatIfResult:
    """The answer of :func:`whatif`.

    Attributes:
        venue: The venue as scored: coordinates, code and title, brand, state, cell, the
            feature values used and where each came from.
        neighbours: Top predicted co-visited POIs: ``rank, poi_id, name, brand, naics_code,
            latitude, longitude, distance_km, predicted_visitors, comparison_predicted_visitors``.
        total_predicted: Predicted co-visitors summed over all candidates.
        comparison: The nearest existing POI with the same NAICS code (or a parent level):
            ``poi_id, name, naics_code, match_level, latitude, longitude, distance_km, total_predicted`` (over the
            candidates other than itself), ``venue_total_same_candidates`` and
            ``observed_total`` (its observed co-visitors in the data); None when no POI shares
            even the NAICS sector.
        candidates: Number of POIs scored.
        notes: Assumptions worth reading (state guessed, unseen NAICS code, unknown brand...).
    """

    venue: dict[str, Any]
    neighbours: pl.DataFrame
    total_predicted: float
    comparison: dict[str, Any] | None
    candidates: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "total_predicted": self.total_predicted,
            "candidates": self.candidates,
            "comparison": self.comparison,
            "notes": self.notes,
            "neighbours": self.neighbours.to_dicts(),
        }


@reads_world
def whatif(
    model: ModelContext,
    venue: Venue,
    *,
    source: WorldSource | None = None,
    top: int = 10,
    candidates: int = 200,
    radius_km: float | None = None,
) -> WhatIfResult:
    """Predict the co-visits of a hypothetical ``venue`` (see the module docstring).

    Args:
        model: A trained GNN co-visitation model.
        venue: The venue.
        source: The data, for POI names (optional).
        top: Neighbours to list. Default 10.
        candidates: Nearest POIs of the state to score. Default 200.
        radius_km: Only candidates within this distance (default: no limit).

    Raises:
        DataValidationError: coordinates out of range, invalid NAICS code, unknown state,
            unknown feature name or a non-finite feature value.
        ConfigError: a non-GNN model, or bad ``top`` / ``candidates`` / ``radius_km``.
    """
    model.require_gnn("whatif")
    check_positive("top", top, integer=True)
    check_positive("candidates", candidates, integer=True)
    check_positive("radius_km", radius_km)
    lat, lon = check_lat_lon(venue.latitude, venue.longitude)
    code = check_naics(venue.naics_code)
    ctx = _WhatIfGraph.of(model)
    notes: list[str] = []
    tax = NAICSTaxonomy()

    # --- the state -------------------------------------------------------------------------
    if venue.state is not None:
        st_name = check_state(venue.state)
        st = model.state_of(st_name)
    else:
        j, d = model.nearest(lat, lon, 1)
        st = int(model.state_idx[j[0]])
        st_name = model.states[st]
        notes.append(f"state {st_name} taken from the nearest POI ({model.ids[j[0]]}, {d[0]:.1f} km away)")
    _, dn = model.nearest(lat, lon, 1, st)
    if len(dn) and dn[0] > FAR_KM:
        notes.append(f"the nearest POI of {st_name} is {dn[0]:.0f} km away: the prediction extrapolates")

    # --- node inputs ------------------------------------------------------------------------
    feat_values, feat_src = ctx.features(code, st, venue.features)
    row = {LAT: lat, LON: lon, NAICS_CODE: code, STATE: st_name, BRAND_COL: venue.brand}
    insertion = ctx.inserter.plan(row | dict(zip(ctx.feature_names, feat_values.tolist(), strict=True)), reverse_near=False)
    naics_idx = torch.from_numpy(ctx.pre.vocab.transform([code]))
    seen = [lv for lv, i in zip(ctx.pre.vocab.levels, naics_idx[0].tolist(), strict=True) if i > 0]
    if 6 not in seen:
        notes.append(
            f"NAICS {code} was not seen in training; the model uses its {max(seen)}-digit parent"
            if seen
            else f"NAICS {code} was not seen in training at any level; the model uses no NAICS embedding"
        )
    brands = model.graph.index["brands"]
    brand_idx = brands.index(venue.brand) if venue.brand in brands else -1
    if venue.brand is not None and brand_idx < 0:
        notes.append(f"brand {venue.brand!r} is unknown to the model; it counts as unbranded in pair features")

    # --- neighbourhood -------------------------------------------------------------------------
    allowed = ctx.allowed(st_name)
    near_idx = insertion.near[allowed[insertion.near]]
    cand, cand_d = model.nearest(lat, lon, candidates, st, radius_km)
    if len(cand) == 0:
        raise DataValidationError(
            f"no POI of {st_name} within {radius_km} km of ({lat}, {lon}); widen --radius-km", field="radius_km"
        )
    comp, comp_level = _comparison(model, code, lat, lon, st)
    with one_thread():
        h, local, new_local = ctx.encode(
            seeds=np.unique(np.concatenate([cand, near_idx, [comp] if comp is not None else []]).astype(np.int64)),
            allowed=allowed,
            insertion=insertion,
            near=near_idx,
            naics=naics_idx,
        )

    # --- scoring ------------------------------------------------------------------------------
    pf = ctx.pair_raw(lat, lon, int(code), brand_idx, cand, st)
    with one_thread():
        pred = to_visitors(ctx.score(h[new_local], h[local[cand]], pf))
    comp_pred = np.full(len(cand), np.nan)
    comparison = None
    if comp is not None:
        others = cand != comp
        cpos = model.pos[comp]
        cpf = ctx.pair_raw(
            float(cpos[0]), float(cpos[1]), int(model.naics[comp]), int(ctx.brand[comp]), cand[others], st, own=comp
        )
        with one_thread():
            comp_pred[others] = to_visitors(ctx.score(h[local[comp]], h[local[cand[others]]], cpf))
        comparison = {
            POI_ID: model.ids[comp],
            NAME: None,
            NAICS_CODE: f"{int(model.naics[comp]):06d}",
            "match_level": comp_level,
            LAT: round(float(cpos[0]), 5),
            LON: round(float(cpos[1]), 5),
            "distance_km": float(haversine_km(lat, lon, cpos[0], cpos[1])),
            "total_predicted": float(np.nansum(comp_pred)),
            "venue_total_same_candidates": float(pred[others].sum()),
            "observed_total": ctx.observed_total(comp),
        }
        if comp_level < 6:
            notes.append(f"no POI with NAICS {code} in {st_name}; comparison shares its {comp_level}-digit code")
    else:
        notes.append(f"no POI shares even the NAICS sector of {code}; no comparison venue")

    order = np.lexsort((np.arange(len(cand)), -pred))[:top]
    ids = [model.ids[i] for i in cand[order]]
    neighbours = pl.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1, dtype=np.int64),
            POI_ID: ids,
            BRAND_COL: [brands[b] if b >= 0 else None for b in ctx.brand[cand[order]].tolist()],
            NAICS_CODE: [f"{c:06d}" for c in model.naics[cand[order]].tolist()],
            LAT: np.round(model.pos[cand[order], 0], 5),
            LON: np.round(model.pos[cand[order], 1], 5),
            "distance_km": cand_d[order],
            "predicted_visitors": pred[order],
            "comparison_predicted_visitors": comp_pred[order],
        },
        schema_overrides={BRAND_COL: pl.String},
    ).with_columns(pl.col("comparison_predicted_visitors").fill_nan(None))
    names = _names_of(source, ids + ([comparison[POI_ID]] if comparison else []))
    neighbours = neighbours.with_columns(
        pl.col(POI_ID).replace_strict(names, default=None, return_dtype=pl.String).alias(NAME)
    ).select(
        "rank", POI_ID, NAME, BRAND_COL, NAICS_CODE, LAT, LON, "distance_km", "predicted_visitors",
        "comparison_predicted_visitors",
    )
    if comparison is not None:
        comparison[NAME] = names.get(comparison[POI_ID])
    info = {
        "name": venue.name,
        "latitude": lat,
        "longitude": lon,
        NAICS_CODE: code,
        "naics_title": tax.title(code),
        BRAND_COL: venue.brand,
        "state": st_name,
        "h3_cell": insertion.cell_id,
        "new_cell": insertion.new_cell,
        "near_edges": int(len(near_idx)),
        "features": {n: {"value": float(v), "source": s} for n, v, s in zip(ctx.feature_names, feat_values.tolist(), feat_src, strict=True)},
    }
    return WhatIfResult(info, neighbours, float(pred.sum()), comparison, int(len(cand)), notes)



def _comparison(model: ModelContext, code: str, lat: float, lon: float, st: int) -> tuple[int | None, int]:
    """Nearest POI with the same code (same state first), falling back to 5, 4, 3, 2 digits."""
    code_i = int(code)
    for level in (6, 5, 4, 3, 2):
        div = 10 ** (6 - level)
        match = (model.naics // div) == (code_i // div)
        for in_state in (True, False):
            mask = match & (model.state_idx == st) if in_state else match
            if mask.any():
                cand = np.flatnonzero(mask)
                d = haversine_km(lat, lon, model.pos[cand, 0], model.pos[cand, 1])
                return int(cand[int(np.argmin(d))]), level
    return None, 0


class _WhatIfGraph:
    """Lookups over the model's graph built once per model: CSR adjacency per relation,
    state groups, cell positions, brand / feature arrays."""

    @classmethod
    def of(cls, model: ModelContext) -> _WhatIfGraph:
        """The lookups of ``model``, built on first use and kept on the model object."""
        hit = model.__dict__.get("_whatif_graph")
        if hit is None:
            hit = model.__dict__["_whatif_graph"] = cls(model)
        return hit

    def __init__(self, model: ModelContext) -> None:
        self.model = model
        pred = model.predictor
        self.pred = pred
        self.gnn = pred.model
        self.pre = pred.pre
        g = model.graph
        d = g.data
        if IMAGE in d.node_types and self.gnn.image_in > 0:
            raise ConfigError("whatif does not support models that pass messages through image nodes")
        p = d[POI]
        self.n = int(p.num_nodes)
        self.n_cell = int(d[CELL].num_nodes)
        self.brand = p.brand.numpy()
        self.knn_km = p.knn_km.numpy() if "knn_km" in p else None
        self.poi_raw = raw_features(p).double().numpy()
        self.feature_names: list[str] = list(g.index["poi_feature_names"])
        self.cell_of = p.cell.numpy()
        self.inserter = PoiInserter(g)  # the builder's placement, from the graph's own config
        self.edge_types = list(self.gnn.edge_types)
        self.groups = pred.groups
        # CSR per relation, rows = source nodes; data = edge position + 1 (weights looked up by it)
        self.csr: dict[tuple[str, str, str], sp.csr_matrix] = {}
        sizes = {POI: self.n, CELL: self.n_cell}
        msg = pred.message
        self.msg_weight = pred._weights(msg).numpy() if pred.cfg.model.weighted_covisits and msg.size(1) else None
        for et in self.edge_types:
            if et[1] in (COVISITS, REV_PREFIX + COVISITS):
                ei = msg if et[1] == COVISITS else msg.flip(0)
            else:
                ei = d[et].edge_index if et in d.edge_types else torch.zeros(2, 0, dtype=torch.long)
            e = ei.numpy()
            self.csr[et] = sp.csr_matrix(
                (np.arange(1, e.shape[1] + 1, dtype=np.float64), (e[0], e[1])), shape=(sizes[et[0]], sizes[et[2]])
            )
        cov = d[POI, COVISITS, POI]
        self.obs_total = np.bincount(cov.edge_index[0].numpy(), weights=cov.visitors.double().numpy(), minlength=self.n) + np.bincount(
            cov.edge_index[1].numpy(), weights=cov.visitors.double().numpy(), minlength=self.n
        )
        self._allowed: dict[str, np.ndarray] = {}
        self._rev_cache: dict[int, sp.csr_matrix] = {}

    # -- inputs ------------------------------------------------------------------------------
    def features(self, code: str, st: int, given: dict[str, float]) -> tuple[np.ndarray, list[str]]:
        unknown = sorted(set(given) - set(self.feature_names))
        if unknown:
            raise DataValidationError(
                f"unknown feature(s) {unknown}; the model's POI features are {self.feature_names}", field="features"
            )
        m = self.model
        code_i = int(code)
        pools = (
            ((m.naics == code_i) & (m.state_idx == st), f"median of NAICS {code} POIs in {m.states[st]}"),
            (m.naics == code_i, f"median of NAICS {code} POIs"),
            (m.state_idx == st, f"median of all POIs in {m.states[st]}"),
            (np.ones(self.n, dtype=bool), "median of all POIs"),
        )
        out = np.zeros(len(self.feature_names))
        src: list[str] = []
        for j, name in enumerate(self.feature_names):
            if name in given:
                v = float(given[name])
                if not np.isfinite(v):
                    raise DataValidationError(f"feature {name} must be a finite number, got {given[name]!r}", field=name)
                out[j], how = v, "given"
            else:
                how = "no data (0)"
                for mask, pool in pools:
                    vals = self.poi_raw[mask, j]
                    vals = vals[np.isfinite(vals)]
                    if len(vals):
                        out[j], how = round(float(np.median(vals)), 6), pool  # float32 storage noise off
                        break
            src.append(how)
        return out, src

    def allowed(self, state: str) -> np.ndarray:
        """POIs of the state group that holds ``state`` (the graph the model encodes it in)."""
        if state not in self._allowed:
            group = next((g for g in self.groups if state in g), [state])
            sidx = [self.model.states.index(s) for s in group if s in self.model.states]
            self._allowed[state] = np.isin(self.model.state_idx, sidx)
        return self._allowed[state]

    def observed_total(self, i: int) -> float:
        return float(self.obs_total[i])

    # -- encoding -------------------------------------------------------------------------------
    def _closure(self, seed_poi: np.ndarray, seed_cell: np.ndarray, allowed: np.ndarray, hops: int) -> tuple[np.ndarray, np.ndarray]:
        """Nodes within ``hops`` hops (any relation, either direction of message flow) of the seeds."""
        allowed_cell = np.zeros(self.n_cell, dtype=bool)
        allowed_cell[np.unique(self.cell_of[allowed])] = True
        in_p = np.zeros(self.n, dtype=bool)
        in_c = np.zeros(self.n_cell, dtype=bool)
        in_p[seed_poi] = True
        in_c[seed_cell] = True
        in_p &= allowed
        in_c &= allowed_cell
        front_p, front_c = in_p.copy(), in_c.copy()
        for _ in range(hops):
            nxt_p = np.zeros(self.n, dtype=bool)
            nxt_c = np.zeros(self.n_cell, dtype=bool)
            for (s, _r, t), a in self.csr.items():
                # dst t aggregates from src s: dst's embedding needs src, so walk t -> s
                front = front_p if t == POI else front_c
                rows = np.flatnonzero(front)
                if len(rows) == 0:
                    continue
                reached = np.unique(self._rev(a)[rows].indices)
                (nxt_p if s == POI else nxt_c)[reached] = True
            nxt_p &= allowed & ~in_p
            nxt_c &= allowed_cell & ~in_c
            in_p |= nxt_p
            in_c |= nxt_c
            front_p, front_c = nxt_p, nxt_c
        return np.flatnonzero(in_p), np.flatnonzero(in_c)

    def _rev(self, a: sp.csr_matrix) -> sp.csr_matrix:
        key = id(a)
        if key not in self._rev_cache:
            self._rev_cache[key] = a.T.tocsr()
        return self._rev_cache[key]

    @torch.no_grad()
    def encode(
        self,
        seeds: np.ndarray,
        allowed: np.ndarray,
        insertion: PoiInsertion,
        near: np.ndarray,
        naics: torch.Tensor,
    ) -> tuple[torch.Tensor, np.ndarray, int]:
        """Embeddings of the closure plus the new node; returns ``(h, local_of_global, new_local)``.

        ``near`` are the POIs of ``insertion.near`` the model's state group holds.
        """
        d = self.model.graph.data
        hops = int(self.gnn.config.layers)
        cell = None if insertion.new_cell else insertion.cell
        if cell is not None:
            new_cell_nbrs = np.zeros(0, dtype=np.int64)
            seed_cells = np.array([cell])
        else:
            new_cell_nbrs = insertion.cell_neighbours
            seed_cells = new_cell_nbrs
        pois, cells = self._closure(seeds, seed_cells, allowed, max(hops, 1))
        n_p, n_c = len(pois), len(cells)
        local = np.full(self.n, -1, dtype=np.int64)
        local[pois] = np.arange(n_p)
        local_c = np.full(self.n_cell, -1, dtype=np.int64)
        local_c[cells] = np.arange(n_c)
        new = n_p  # local index of the venue
        p = d[POI]
        sub = HeteroData()
        sub[POI].x = torch.cat([p.x[pois], self.pre.scale_poi(insertion.x)])
        sub[POI].pos = torch.cat([p.pos[pois], insertion.pos.to(p.pos.dtype)])
        sub[POI].naics = torch.cat([p.naics[pois], naics])
        if "brand_idx" in p:
            sub[POI].brand_idx = torch.cat([p.brand_idx[pois], self.pre.brand_index([insertion.brand])])
        sub[POI].num_nodes = n_p + 1
        cell_x = raw_features(d[CELL])[cells].clone()
        if cell is not None:  # the venue's cell, with one more POI counted
            new_cell = int(local_c[cell])
            cell_x[new_cell] = insertion.cell_x[0]
        else:
            new_cell = n_c
            cell_x = torch.cat([cell_x, insertion.cell_x])
        sub[CELL].x = self.pre.scale_cell(cell_x)
        sub[CELL].num_nodes = cell_x.size(0)
        size = {POI: (pois, local, n_p + 1), CELL: (cells, local_c, cell_x.size(0))}
        msg_local = torch.zeros(2, 0, dtype=torch.long)
        msg_w = None
        near_l = local[near]
        near_l = near_l[near_l >= 0]
        for et in self.edge_types:
            s, rel, t = et
            a = self.csr[et][size[s][0]][:, size[t][0]].tocoo()
            src, dst, eid = a.row.astype(np.int64), a.col.astype(np.int64), a.data.astype(np.int64) - 1
            if rel == COVISITS:
                msg_local = torch.from_numpy(np.stack([src, dst]))
                if self.msg_weight is not None:
                    msg_w = torch.from_numpy(self.msg_weight[eid]).float()
                continue
            if rel == REV_PREFIX + COVISITS:
                continue
            add_s, add_t = [], []
            if rel == NEAR:
                add_s, add_t = [new] * len(near_l) + near_l.tolist(), near_l.tolist() + [new] * len(near_l)
            elif rel == IN and s == POI:
                add_s, add_t = [new], [new_cell]
            elif rel == REV_PREFIX + IN and t == POI:
                add_s, add_t = [new_cell], [new]
            elif rel == ADJACENT and cell is None:
                ring = local_c[new_cell_nbrs]
                ring = ring[ring >= 0].tolist()
                add_s, add_t = [new_cell] * len(ring) + ring, ring + [new_cell] * len(ring)
            ei = torch.from_numpy(np.stack([np.concatenate([src, add_s]), np.concatenate([dst, add_t])]).astype(np.int64))
            sub[et].edge_index = ei
        self.gnn.eval()
        h = self.gnn.encode(sub, msg_local, msg_w)
        return h, local, new

    # -- scoring --------------------------------------------------------------------------------
    def pair_raw(
        self, lat: float, lon: float, code: int, brand: int, cand: np.ndarray, state: int, own: int | None = None
    ) -> torch.Tensor:
        """Raw pair features of (the point ``lat, lon`` with ``code`` / ``brand``, each candidate),
        computed by the graph builder's own :func:`~geograph.graph.pairs.pair_features`. The
        point's neighbour distances are those of POI ``own`` when it is one of the graph's, else
        measured to the POIs of ``state``."""
        m = self.model
        store = SimpleNamespace(
            pos=torch.from_numpy(np.vstack([[lat, lon], m.pos[cand]])),
            brand=torch.from_numpy(np.concatenate([[brand], self.brand[cand]]).astype(np.int64)),
            naics_code=torch.from_numpy(np.concatenate([[code], m.naics[cand]]).astype(np.int64)),
        )
        if self.knn_km is not None:
            # the venue's own same-state neighbour distances; the candidates keep theirs (the new
            # venue would move a candidate's count by at most one)
            k = self.knn_km.shape[1]
            if own is not None:
                mine = self.knn_km[own][None]
            else:
                _, dist = m.nearest(lat, lon, k, state)
                mine = np.full((1, k), np.inf, dtype=np.float32)
                mine[0, : len(dist)] = dist
            store.knn_km = torch.from_numpy(np.vstack([mine, self.knn_km[cand]]))
        k = len(cand)
        return pair_features(store, torch.zeros(k, dtype=torch.long), torch.arange(1, k + 1))

    @torch.no_grad()
    def score(self, h_a: torch.Tensor, h_b: torch.Tensor, pf: torch.Tensor) -> np.ndarray:
        """Predicted log1p(visitors) of pairs (a broadcast against each b), both orientations averaged."""
        if h_b.size(0) == 0:
            return np.zeros(0)
        ha = h_a.reshape(1, -1).expand(h_b.size(0), -1)
        tpf = self.gnn.pair_inputs(pf)
        head = self.gnn.head
        out = (self._decode(head(ha, h_b, tpf)) + self._decode(head(h_b, ha, tpf))) / 2
        return out.double().numpy()

    def _decode(self, out: torch.Tensor) -> torch.Tensor:
        if self.pred.cfg.train.loss == "poisson":
            return torch.log1p(torch.exp(out.clamp(max=20)))
        return self.pred.scaler.decode(out)


def _names_of(source: WorldSource | None, ids: list[str]) -> dict[str, str]:
    return source.names(ids) if source is not None else {}

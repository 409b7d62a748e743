"""``similar``: POIs (or brands) nearest in the learned embedding space (cosine similarity)."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from geograph.constants import BRAND_COL, LAT, LON, NAICS_CODE, NAME, POI_ID, STATE

from ._checks import check_positive, check_state, poi_or_brand, unknown_value_error
from .model_context import ModelContext
from .world_source import WorldSource, reads_world

SIMILARITY = "similarity"


@reads_world
def similar(
    model: ModelContext,
    poi: str | None = None,
    brand: str | None = None,
    *,
    top: int = 10,
    state: str | None = None,
    source: WorldSource | None = None,
) -> pl.DataFrame:
    """The ``top`` POIs most similar to ``poi`` (or brands most similar to ``brand``).

    POI embeddings are the model encoder's output on its own graph (the ones its edge head
    scores). A brand's embedding is the mean of its POIs' embeddings (in ``state`` when given).

    Args:
        model: A trained GNN co-visitation model.
        poi: A POI id the model knows (exclusive with ``brand``).
        brand: A brand name the model knows.
        top: Rows to return. Default 10.
        state: Only POIs (brands: POIs of the brand) in this state.
        source: The data, for POI names (optional).

    Returns:
        POIs: ``rank, poi_id, name, brand, naics_code, state, latitude, longitude, similarity``;
        brands: ``rank, brand, pois, similarity``. Similarity is the cosine in [-1, 1].
    """
    poi_or_brand(poi, brand)
    check_positive("top", top, integer=True)
    state = check_state(state)
    model.require_gnn("similar")
    emb = model.unit_embeddings()
    g = model.graph
    brands: list[str] = list(g.index["brands"])
    brand_of = g.data["poi"].brand
    keep = torch.ones(len(model.ids), dtype=torch.bool)
    if state is not None:
        keep &= torch.from_numpy(model.state_idx == model.state_of(state))
    if poi is not None:
        i = model.idx(poi)
        sim = emb @ emb[i]
        keep[i] = False
        sim = torch.where(keep, sim, torch.tensor(-np.inf))
        k = min(top, int(keep.sum()))
        vals, idx = sim.topk(k)
        ids = [model.ids[j] for j in idx.tolist()]
        out = pl.DataFrame(
            {
                "rank": np.arange(1, k + 1, dtype=np.int64),
                POI_ID: ids,
                BRAND_COL: [brands[b] if b >= 0 else None for b in brand_of[idx].tolist()],
                NAICS_CODE: [f"{c:06d}" for c in model.naics[idx.numpy()].tolist()],
                STATE: [model.states[s] for s in model.state_idx[idx.numpy()].tolist()],
                LAT: np.round(model.pos[idx.numpy(), 0], 5),
                LON: np.round(model.pos[idx.numpy(), 1], 5),
                SIMILARITY: vals.double().numpy(),
            },
            schema_overrides={BRAND_COL: pl.String},
        )
        names = _names_of(source, ids)
        return out.with_columns(
            pl.col(POI_ID).replace_strict(names, default=None, return_dtype=pl.String).alias(NAME)
        ).select("rank", POI_ID, NAME, BRAND_COL, NAICS_CODE, STATE, LAT, LON, SIMILARITY)
    # brands: mean embedding of each brand's POIs
    if brand not in brands:
        raise unknown_value_error("brand (not in the model)", str(brand), pl.Series(brands, dtype=pl.String), BRAND_COL)
    mask = keep & (brand_of >= 0)
    b = brand_of[mask]
    sums = torch.zeros(len(brands), emb.size(1)).index_add_(0, b, emb[mask])
    counts = torch.bincount(b, minlength=len(brands))
    me = brands.index(brand)
    if counts[me] == 0:
        raise unknown_value_error(f"brand in {state}", str(brand), pl.Series([brands[j] for j in torch.nonzero(counts).flatten().tolist()], dtype=pl.String), BRAND_COL)
    centroid = torch.nn.functional.normalize(sums / counts.clamp(min=1).unsqueeze(1), dim=1)
    sim = centroid @ centroid[me]
    valid = (counts > 0).clone()
    valid[me] = False
    sim = torch.where(valid, sim, torch.tensor(-np.inf))
    k = min(top, int(valid.sum()))
    vals, idx = sim.topk(k)
    return pl.DataFrame(
        {
            "rank": np.arange(1, k + 1, dtype=np.int64),
            BRAND_COL: [brands[j] for j in idx.tolist()],
            "pois": counts[idx].numpy().astype(np.int64),
            SIMILARITY: vals.double().numpy(),
        }
    )



def _names_of(source: WorldSource | None, ids: list[str]) -> dict[str, str]:
    return source.names(ids) if source is not None else {}

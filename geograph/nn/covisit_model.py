"""NAICS-aware heterogeneous GraphSAGE for co-visitation prediction.

After Alrubyli et al., "NAICS-Aware Graph Neural Networks for Large-Scale POI Co-visitation
Prediction" (https://arxiv.org/abs/2507.19697): NAICS embeddings joined with numeric POI
features and a location encoding, message passing over the heterogeneous graph
(co-visits weighted by log1p visitors, nearby POIs, POI-in-cell, cell adjacency), and an
edge head that predicts log1p(visitors of A who also visit B) from both embeddings, their
product and pair features.
"""

from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from geograph.config import from_dict
from geograph.constants import ADJACENT, CELL, COVISITS, IMAGE, IN, NEAR, POI, REV_PREFIX, SIMILAR
from geograph.errors import ConfigError
from geograph.nn.dropout import Dropout, relu_dropout_scale, relu_keep
from geograph.nn.halo import HaloPlan
from geograph.nn.hetero_sage import HeteroSAGE, add_product
from geograph.nn.naics_encoder import NAICSEncoder
from geograph.nn.norm import LayerNorm
from geograph.nn.norm import LayerNorm as ScaledLayerNorm  # takes a scale (see _layer)
from geograph.nn.weighted_sage_conv import SPARSE_AGGRS, Adjacency

RELATIONS = {
    "covisits": [(POI, COVISITS, POI), (POI, REV_PREFIX + COVISITS, POI)],
    "near": [(POI, NEAR, POI)],
    "in": [(POI, IN, CELL), (CELL, REV_PREFIX + IN, POI), (IMAGE, IN, CELL), (CELL, REV_PREFIX + IN, IMAGE)],
    "adjacent": [(CELL, ADJACENT, CELL)],
    "similar": [(IMAGE, SIMILAR, IMAGE)],
}
PAIR_FEATURES = 4  # log1p(distance km), same brand, NAICS prefix depth / 6, log1p(neighbour rank) / 4


@dataclass
class ModelConfig:
    """Architecture of the co-visitation model (every default visible here).

    Attributes:
        family: ``"gnn"`` (this module; ``layers=0`` gives the MLP baseline), ``"gravity"``
            (log-linear regression on distance and masses), ``"gravity_dc"`` (that regression's
            distance deterrence, doubly constrained to POI totals by iterative proportional
            fitting: :mod:`geograph.covisit.gravity_dc`) or ``"gbt"`` (scikit-learn
            ``HistGradientBoostingRegressor`` on pair features).
        naics: ``"hierarchical"`` (2/3/4/5/6-digit embeddings summed), ``"flat"`` (6-digit only,
            LayerNorm: the paper's released code) or ``"none"`` (ablation).
        naics_dim: NAICS embedding size.
        brand_dim: Size of a learnable brand embedding joined to the POI inputs (0 = none).
            Brands are indexed from the training POIs; unbranded POIs share one vector and
            brands unseen in training another.
        hidden: Width of node embeddings.
        layers: Message-passing layers (0 = no message passing).
        first_layer: What the first layer aggregates: ``"projected"`` (each node's inputs mapped
            to ``hidden`` by a Linear + ReLU + dropout first, so every layer passes
            ``hidden``-wide messages) or ``"raw"`` (the inputs themselves, as GraphSAGE does:
            POI features, location encoding, NAICS embedding, ... about 40 wide, and only the
            learned NAICS / brand columns carry a gradient back through the aggregation). The
            projection still feeds the residual of the first layer and jumping knowledge.
        aggr: SAGE aggregation (``mean``, ``max``, ``sum``).
        dropout: Dropout after each layer and in the head (:class:`geograph.nn.Dropout`). (0
            saves the 6% of a step's CPU time that the masks take at 10K POIs, 11% with
            ``F.dropout``, but on the embedded 5,000-POI world its mean best validation R² over
            seeds 0-2 was 0.533 against 0.540 with 0.1.)
        norm: ``"layer"``, ``"batch"`` or ``"none"`` after each layer.
        activation: ``"relu"``, ``"tanh"`` or ``"gelu"``.
        residual: Add each layer's input to its output.
        input_skip: Layers (1-based) after which the projected input is added again (paper: [2, 4]).
        head_hidden: Hidden widths of the edge head MLP.
        head_product: Feed ``h_u * h_v`` to the head besides ``h_u`` and ``h_v``.
        pair_rank: Give the head (and the GBT baseline) the ``neighbour_rank`` pair feature
            (intervening opportunities between the two POIs, see
            :func:`geograph.graph.builder.pair_features`).
        jk: Jumping knowledge: the head sees ``[input projection, last layer]`` of each node,
            so a node's own NAICS / features are not washed out by neighbour averaging.
        location_freqs: Sinusoidal location-encoding frequencies per coordinate (0 disables).
        relations: Relation groups used for message passing (see ``RELATIONS``).
        weighted_covisits: Scale co-visit messages by log1p(visitors) / its training mean.
        strength_features: Add each POI's degree and strength (sum of message weights) in the
            co-visit message graph, in and out, as inputs (computed from the message edges of
            each step, so a scored pair never contributes to them).
        residual_features: Add each POI's mean residual over its visible co-visit rows, sent and
            received: ``log1p(visitors)`` minus a gravity fit on the training pairs
            (:mod:`geograph.covisit.messages`), an estimate of the venue's own pull. The
            co-visit weights are then ``(M, 2)``: ``[weight, residual]``. ``"auto"`` (default):
            on, except that a :class:`~geograph.covisit.config.CovisitConfig` turns it off under
            the ``states`` / ``h3`` protocols (see there) and without ``weighted_covisits``.
        sparse: Aggregate neighbours as a sparse-dense matrix product over a CSR adjacency
            (same function as PyG's gather-scatter, several times faster on CPU; ``mean`` and
            ``sum`` aggregation only, ``max`` always uses gather-scatter).
        recompute: Keep only each message-passing layer's inputs during training and compute
            its activations again in the backward pass (``torch.utils.checkpoint``, the dropout
            masks replayed): the same gradients with less memory for a large state group, at
            the price of a second forward pass of the layers. Not part of the config hash.
        mass_feature: POI feature used as mass by the gravity models and the gravity baseline
            of ``residual_features``: ``"auto"`` (default) takes the first of ``visits``,
            ``raw_visitor_counts`` (an imported Patterns file), ``visitors`` the POIs have;
            ``"none"`` (or ``"auto"`` on POIs without any of them) uses no mass: distance alone.
        gbt_naics_level: NAICS digits given to the GBT baseline as categorical features of both
            ends (0 = none), or a list of levels (``[2, 3, 4, 6]``); a level with more than 255
            distinct training codes is given as an ordinal number instead (the trees' limit).
        gbt_max_iter: Boosting iterations of the GBT baseline.
    """

    family: str = "gnn"
    naics: str = "hierarchical"
    naics_dim: int = 16
    brand_dim: int = 0
    hidden: int = 64
    layers: int = 2
    first_layer: str = "projected"
    aggr: str = "mean"
    dropout: float = 0.1
    norm: str = "layer"
    activation: str = "relu"
    residual: bool = True
    input_skip: list[int] = field(default_factory=list)
    head_hidden: list[int] = field(default_factory=lambda: [64])
    head_product: bool = True
    pair_rank: bool = True
    jk: bool = True
    location_freqs: int = 4
    relations: list[str] = field(default_factory=lambda: ["covisits", "near", "in", "adjacent"])
    weighted_covisits: bool = True
    strength_features: bool = True
    residual_features: bool | str = "auto"
    sparse: bool = True
    recompute: bool = False
    mass_feature: str = "auto"
    gbt_naics_level: int | list[int] = 4
    gbt_max_iter: int = 300

    @property
    def gbt_naics_levels(self) -> list[int]:
        """``gbt_naics_level`` as a list (empty: no NAICS columns)."""
        lv = self.gbt_naics_level
        return [int(v) for v in lv] if isinstance(lv, list) else ([int(lv)] if lv else [])

    def __post_init__(self) -> None:
        bad = [v for v in self.gbt_naics_levels if not 2 <= v <= 6]
        if bad:
            raise ConfigError(f"model.gbt_naics_level values must be NAICS levels 2..6, got {bad}")
        checks = {
            "family": ("gnn", "gravity", "gravity_dc", "gbt"),
            "naics": ("hierarchical", "flat", "none"),
            "aggr": ("mean", "max", "sum"),
            "first_layer": ("projected", "raw"),
            "norm": ("layer", "batch", "none"),
            "activation": ("relu", "tanh", "gelu"),
        }
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"model.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        bad = sorted(set(self.relations) - set(RELATIONS))
        if bad:
            raise ConfigError(f"model.relations has unknown group(s) {bad}; known: {sorted(RELATIONS)}")
        if self.residual_features not in (True, False, "auto"):
            raise ConfigError(
                f"model.residual_features must be true, false or auto, got {self.residual_features!r}"
            )
        if self.residual_features == "auto" and not self.weighted_covisits:
            self.residual_features = False
        if self.residual_features is True and not self.weighted_covisits:
            raise ConfigError("model.residual_features needs model.weighted_covisits: true")
        if self.brand_dim < 0:
            raise ConfigError(f"model.brand_dim must be >= 0, got {self.brand_dim}")
        if self.layers < 0 or self.hidden <= 0:
            raise ConfigError(
                f"model.layers must be >= 0 and model.hidden > 0, got {self.layers}, {self.hidden}"
            )
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_dict(cls, d: dict | None, *, source: str | None = None) -> ModelConfig:
        """Build from a dict of ``model`` keys (see :func:`geograph.config.from_dict`).

        Raises:
            ConfigError: an unknown key (named ``model.<key>``), a wrong type or a bad value.
        """
        return from_dict(cls, d, source=source, section="model")

    def to_dict(self) -> dict:
        return asdict(self)


def _act(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "tanh": nn.Tanh(), "gelu": nn.GELU()}[name]


def _norm(name: str, dim: int) -> nn.Module:
    return {"layer": LayerNorm(dim), "batch": nn.BatchNorm1d(dim), "none": nn.Identity()}[name]


def location_encoding(pos: Tensor, freqs: int) -> Tensor:
    """Fixed sinusoidal encoding of (lat, lon) degrees at ``freqs`` octaves; ``(N, 4 * freqs)``."""
    if freqs == 0:
        return pos.new_zeros(pos.size(0), 0)
    rad = torch.deg2rad(pos.float())
    scales = 2.0 ** torch.arange(freqs, dtype=torch.float32, device=pos.device) * (180.0 / 10.0)
    ang = rad.unsqueeze(-1) * scales  # (N, 2, F): periods from 10 degrees down
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1).flatten(1)


def residual_means(edge_index: Tensor, residual: Tensor, n: int) -> Tensor:
    """Mean residual of each node's edges as source and as target (0 without edges); ``(n, 2)``."""
    cols = []
    for side in (0, 1):
        total = residual.new_zeros(n).index_add_(0, edge_index[side], residual.float())
        count = residual.new_zeros(n).index_add_(
            0, edge_index[side], torch.ones_like(residual, dtype=torch.float32)
        )
        cols.append(total / count.clamp(min=1))
    return torch.stack(cols, dim=1)


def strength(edge_index: Tensor, weight: Tensor | None, n: int) -> Tensor:
    """``log1p`` of out-degree, in-degree, out-strength and in-strength; ``(n, 4)``."""
    w = torch.ones(edge_index.size(1), device=edge_index.device) if weight is None else weight.float()
    ones = torch.ones_like(w)
    cols = []
    for vals in (ones, w):
        for side in (0, 1):
            cols.append(torch.zeros(n, device=edge_index.device).index_add_(0, edge_index[side], vals))
    out = torch.stack([cols[0], cols[1], cols[2], cols[3]], dim=1)
    return torch.log1p(out)


def _linear_relu_dropout(proj: nn.Sequential, x: Tensor) -> Tensor:
    """``proj(x)`` for ``proj = Sequential(Linear, ReLU, Dropout)``; on the CPU in training the
    dropout scale is folded into the linear layer and ReLU and the mask take one pass."""
    lin, drop = proj[0], proj[2]
    scale = relu_dropout_scale(drop.p, drop.training, x.device)
    if scale is None:
        return proj(x)
    return relu_keep(torch.nn.functional.linear(x, lin.weight * scale, lin.bias * scale), drop.p)


class EdgeHead(nn.Module):
    """MLP on ``[h_u, h_v, (h_u * h_v), pair features]`` predicting one number per pair.

    Shapes: ``h_src``, ``h_dst`` ``(E, D)``; ``pair`` ``(E, pair_dim)``; output ``(E,)``.
    """

    def __init__(
        self,
        dim: int,
        hidden: list[int],
        product: bool = True,
        dropout: float = 0.0,
        pair_dim: int = PAIR_FEATURES,
    ) -> None:
        super().__init__()
        self.dim, self.hidden, self.product, self.pair_dim = dim, list(hidden), product, pair_dim
        layers: list[nn.Module] = []
        width = dim * (3 if product else 2) + pair_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def reset_parameters(self) -> None:
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, h_src: Tensor, h_dst: Tensor, pair: Tensor) -> Tensor:
        # the first layer's product with [h_u, h_v, h_u * h_v, pair] computed block by block and
        # added up (addmm): the same function without a concatenated copy of the inputs
        first, d = self.mlp[0], self.dim
        y = torch.addmm(first.bias, h_src, first.weight[:, :d].t())
        product = [h_src * h_dst] if self.product else []
        return self._rest(self._add_blocks(y, [h_dst, *product, pair], d))

    score_chunk: int = 8192
    """Pairs scored at a time without gradients: the temporaries of a chunk stay in cache (on
    1.73M pairs of 50,000 rows, 0.64-0.69 s against 3.4 s in one piece)."""

    def score(self, h: Tensor, src: Tensor, dst: Tensor, pair: Tensor) -> Tensor:
        """``forward(h[src], h[dst], pair)``: the head on pairs of rows of ``h``.

        With more pairs than rows (a dense co-visit graph, ranking candidates), the first
        layer's ``h_u`` and ``h_v`` blocks are multiplied once per row of ``h`` and gathered per
        pair: ``2 N`` products of width ``dim`` instead of ``2 E``. Without gradients (evaluation,
        prediction) the pairs go through in chunks of :attr:`score_chunk`; with them in one piece,
        since each chunk's backward would fill an ``(N, dim)`` gradient of ``h``. The same
        function either way; only the rounding differs.

        Shapes: ``h`` ``(N, dim)``; ``src``, ``dst`` ``(E,)``; ``pair`` ``(E, pair_dim)``; output ``(E,)``.
        """
        n_pairs = src.numel()
        chunk = max(n_pairs, 1) if torch.is_grad_enabled() else self.score_chunk
        per_row = n_pairs > h.size(0)
        if per_row:
            first, d = self.mlp[0], self.dim
            per_src, per_dst = h @ first.weight[:, :d].t(), h @ first.weight[:, d : 2 * d].t()
        outs = []
        for i in range(0, max(n_pairs, 1), chunk):  # one (empty) part for no pairs
            s, t, p = src[i : i + chunk], dst[i : i + chunk], pair[i : i + chunk]
            if not per_row:
                outs.append(self(h.index_select(0, s), h.index_select(0, t), p))
                continue
            y = per_src.index_select(0, s) + per_dst.index_select(0, t) + first.bias
            product = [h.index_select(0, s) * h.index_select(0, t)] if self.product else []
            outs.append(self._rest(self._add_blocks(y, [*product, p], 2 * d)))
        return torch.cat(outs) if len(outs) != 1 else outs[0]

    def _add_blocks(self, y: Tensor, parts: list[Tensor], start: int) -> Tensor:
        """``y`` plus the first layer's products with ``parts``, the input blocks from column
        ``start`` on, each added in place (:func:`~geograph.nn.hetero_sage.add_product`)."""
        w = self.mlp[0].weight
        for part in parts:
            y = add_product(y, part, w[:, start : start + part.size(-1)].t())
            start += part.size(-1)
        return y

    def _rest(self, y: Tensor) -> Tensor:
        """The layers after the first, on its output ``y`` ``(E, hidden[0])``."""
        # (ReLU, Dropout, Linear) per hidden layer; on the CPU the dropout scale goes into the
        # next layer's weight and ReLU and the mask take one pass (geograph.nn.dropout.relu_keep)
        mods = list(self.mlp)
        for i in range(1, len(mods) - 1, 3):
            act, drop, lin = mods[i : i + 3]
            scale = relu_dropout_scale(drop.p, self.training, y.device)
            if scale is None:
                y = lin(drop(act(y)))
            else:
                y = torch.nn.functional.linear(relu_keep(y, drop.p), lin.weight * scale, lin.bias)
        return y.squeeze(-1)

    def __repr__(self) -> str:
        return f"EdgeHead({self.dim}, hidden={self.hidden}, product={self.product})"


def pair_input_dim(rank: bool = True) -> int:
    """Width of :func:`transform_pair_features`' output."""
    return PAIR_FEATURES if rank else PAIR_FEATURES - 1


def transform_pair_features(pair: Tensor, rank: bool = True) -> Tensor:
    """Raw ``[distance_km, same_brand, depth, neighbour_rank]`` -> model inputs ``[log1p km,
    same_brand, depth / 6, log1p rank / 4]`` (the last one only with ``rank``)."""
    cols = [torch.log1p(pair[:, 0]), pair[:, 1], pair[:, 2] / 6.0]
    if rank:
        r = pair[:, 3]
        if torch.isnan(r).any():
            raise ValueError(
                "pair features have no neighbour rank: the graph was built without poi.knn_km "
                "(before geograph added it); rebuild the graph or set model.pair_rank=false"
            )
        cols.append(torch.log1p(r) / 4.0)
    return torch.stack(cols, dim=1)


class EncoderInputs(NamedTuple):
    """What :meth:`CovisitGNN.encode` passes messages over (per node type / relation)."""

    raw: dict[str, Tensor]  # node inputs: POI features, location encoding, NAICS, ...
    projected: dict[str, Tensor]  # the inputs mapped to the hidden width
    edges: dict[tuple[str, str, str], Tensor | Adjacency]
    weights: dict[tuple[str, str, str], Tensor]  # edge weights of (2, E) edge indices


class CovisitGNN(nn.Module):
    """Encoder (node inputs + heterogeneous SAGE layers) and :class:`EdgeHead`.

    Args:
        config: Architecture.
        poi_in: Number of numeric POI features.
        cell_in: Number of numeric cell features.
        image_in: Image embedding size (0 when the graph has no images).
        naics_sizes: NAICS table sizes per level (from ``NAICSVocabulary.sizes()``).
        n_brands: Brand vocabulary size including the unbranded and unseen entries
            (``len(FeaturePreprocessor.brands) + 2``); used when ``config.brand_dim > 0``.
    """

    def __init__(
        self,
        config: ModelConfig,
        poi_in: int,
        cell_in: int,
        image_in: int,
        naics_sizes: list[int],
        n_brands: int = 2,
    ) -> None:
        super().__init__()
        c = self.config = config
        self.poi_in, self.cell_in, self.image_in, self.n_brands = poi_in, cell_in, image_in, n_brands
        self.naics = NAICSEncoder(naics_sizes, c.naics_dim, c.naics) if c.naics != "none" else None
        self.brand = nn.Embedding(n_brands, c.brand_dim) if c.brand_dim > 0 else None
        n_in = poi_in + 4 * c.location_freqs + (c.naics_dim if self.naics is not None else 0)
        n_in += c.brand_dim
        n_in += 4 if c.strength_features else 0
        n_in += 2 if c.residual_features else 0
        self.poi_proj = nn.Sequential(nn.Linear(n_in, c.hidden), nn.ReLU(), Dropout(c.dropout))
        self.cell_proj = nn.Linear(max(cell_in, 1), c.hidden)
        self.image_proj = nn.Linear(image_in, c.hidden) if image_in > 0 else None
        self.edge_types = [
            et for g in c.relations for et in RELATIONS[g] if image_in > 0 or IMAGE not in (et[0], et[2])
        ]
        node_types = [POI, CELL] + ([IMAGE] if image_in > 0 else [])
        dims = dict.fromkeys(node_types, c.hidden)
        raw_dims = {POI: n_in, CELL: max(cell_in, 1), IMAGE: image_in}
        # the last layer computes POIs only: the head reads nothing else
        self.convs = nn.ModuleList(
            HeteroSAGE(
                self.edge_types,
                raw_dims if i == 0 and c.first_layer == "raw" else dims,
                c.hidden,
                dst_types=[POI] if i == c.layers - 1 else node_types,
                aggr=c.aggr,
            )
            for i in range(c.layers)
        )
        self.norms = nn.ModuleList(
            nn.ModuleDict({nt: _norm(c.norm, c.hidden) for nt in conv.dst_types}) for conv in self.convs
        )
        self.act = _act(c.activation)
        self.drop = Dropout(c.dropout)
        self.head = EdgeHead(
            c.hidden * (2 if c.jk and c.layers > 0 else 1),
            c.head_hidden,
            c.head_product,
            c.dropout,
            pair_input_dim(c.pair_rank),
        )
        # static relation -> CSR adjacency, keyed weakly by the edge tensor (see _adjacency)
        self._adj_cache: dict[int, tuple] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters") and not isinstance(m, CovisitGNN):
                m.reset_parameters()
        if self.brand is not None:
            nn.init.normal_(self.brand.weight, std=0.1)  # the NAICS tables' scale

    def __repr__(self) -> str:
        c = self.config
        return (
            f"CovisitGNN(naics={c.naics}, hidden={c.hidden}, layers={c.layers}, aggr={c.aggr}, "
            f"relations={c.relations}" + (f", brand_dim={c.brand_dim}" if c.brand_dim else "") + ")"
        )

    def encode(
        self, data, covisit_edge_index: Tensor, covisit_weight: Tensor | None = None, halo: HaloPlan | None = None
    ) -> Tensor:
        """POI embeddings ``(N_poi, hidden)`` (``2 * hidden`` with ``jk``); co-visit message edges
        are given explicitly.

        With ``halo`` (node-parallel, :mod:`geograph.nn.halo`), ``data`` is this rank's part:
        own nodes, then halo nodes; the rows of halo nodes are taken from their owners after the
        inputs and after every layer, so the own and halo rows returned are those of the whole
        graph, followed by the rows of the plan's ``head`` halo (embeddings only)."""
        own = halo.n_own if halo is not None else None
        inp = self.encoder_inputs(data, covisit_edge_index, covisit_weight, own)
        h0 = inp.projected
        if halo is not None:  # inputs of own rows only, halo rows from their owners
            h0 = halo.fill(h0)
            if self.config.first_layer == "raw":
                inp = inp._replace(raw=halo.fill(inp.raw))
            inp = inp._replace(projected=h0)
        h = h0
        recompute = self.config.recompute and self.training and torch.is_grad_enabled()
        for i in range(len(self.convs)):
            if recompute:
                h = checkpoint(self._layer, i, h, h0, inp, own, use_reentrant=False)
            else:
                h = self._layer(i, h, h0, inp, own)
            if halo is not None:
                h = halo.fill(h, self.convs[i].dst_types)
        out = torch.cat([h0[POI], h[POI]], dim=-1) if self.config.jk and self.config.layers > 0 else h[POI]
        return halo.extend(out, POI) if halo is not None else out

    def _layer(
        self, i: int, h: dict[str, Tensor], h0: dict[str, Tensor], inp: EncoderInputs, own: dict[str, int] | None = None
    ) -> dict[str, Tensor]:
        """Message-passing layer ``i`` with its norm, activation, dropout and skips; with ``own``
        (node-parallel) only the first ``own[t]`` rows of each type are computed."""
        conv, norms = self.convs[i], self.norms[i]
        out = conv(inp.raw if i == 0 and self.config.first_layer == "raw" else h, inp.edges, inp.weights, own)
        new = {}
        for nt, x in h.items():
            y = out.get(nt)
            if y is None:
                new[nt] = x
                continue
            norm, scale = norms[nt], None
            # LayerNorm, ReLU and dropout as one: only with geograph's norm (it takes the scale),
            # not another LayerNorm swapped in
            if isinstance(norm, ScaledLayerNorm) and self.config.activation == "relu":
                scale = relu_dropout_scale(self.drop.p, self.training, y.device)
            if scale is None:
                y = self.drop(self.act(norm(y)))
            else:  # the same function with the dropout scale folded into the norm's affine part
                y = relu_keep(norm(y, scale), self.drop.p)
            if self.config.residual:
                y = y + x[: y.size(0)]
            if (i + 1) in self.config.input_skip:
                y = y + h0[nt][: y.size(0)]
            new[nt] = y
        return new

    def encoder_inputs(
        self, data, covisit_edge_index: Tensor, covisit_weight: Tensor | None = None, own: dict[str, int] | None = None
    ) -> EncoderInputs:
        """Node inputs (raw and projected) and each relation's edges (CSR adjacencies with
        ``model.sparse``) for :meth:`encode`. With ``own`` (node-parallel), the inputs of the
        first ``own[t]`` rows of each type only, and adjacencies into those rows."""
        p = data[POI]
        parts = [p.x, location_encoding(p.pos, self.config.location_freqs)]
        if self.naics is not None:
            parts.append(self.naics(p.naics))
        if self.brand is not None:
            parts.append(self.brand(p.brand_idx))
        if self.config.residual_features:
            if covisit_weight is None and covisit_edge_index.size(1) == 0:
                covisit_weight = p.x.new_zeros(0, 2)  # no message edges: no residuals to average
            if covisit_weight is None or covisit_weight.dim() != 2:
                raise ValueError(
                    "model.residual_features needs (M, 2) co-visit weights [weight, residual] "
                    "(geograph.covisit.messages.message_weights with a baseline)"
                )
            parts.append(residual_means(covisit_edge_index, covisit_weight[:, 1], p.x.size(0)))
        if covisit_weight is not None and covisit_weight.dim() == 2:
            covisit_weight = covisit_weight[:, 0]
        if self.config.strength_features:
            parts.append(strength(covisit_edge_index, covisit_weight, p.x.size(0)))
        cx = data[CELL].x if data[CELL].x.size(1) else data[CELL].x.new_ones(data[CELL].num_nodes, 1)
        raw = {POI: torch.cat(parts, dim=-1), CELL: cx}
        if self.image_proj is not None:
            raw[IMAGE] = data[IMAGE].x
        n_rows = {nt: x.size(0) for nt, x in raw.items()}
        if own is not None:
            raw = {nt: x[: own.get(nt, x.size(0))] for nt, x in raw.items()}
        h0 = {POI: _linear_relu_dropout(self.poi_proj, raw[POI]), CELL: self.cell_proj(raw[CELL])}
        if self.image_proj is not None:
            h0[IMAGE] = self.image_proj(raw[IMAGE])
        edges, weights = {}, {}
        for et in self.edge_types:
            if et[1] == COVISITS:
                edges[et] = covisit_edge_index
                weights[et] = covisit_weight
            elif et[1] == REV_PREFIX + COVISITS:
                edges[et] = covisit_edge_index.flip(0)
                weights[et] = covisit_weight
            elif et in data.edge_types:
                edges[et] = data[et].edge_index
        if own is not None:  # co-visit rows into own POIs only (the part's static edges already are)
            for et in [et for et in edges if et[1] in (COVISITS, REV_PREFIX + COVISITS)]:
                keep = edges[et][1] < own[et[2]]
                edges[et] = edges[et][:, keep]
                if weights.get(et) is not None:
                    weights[et] = weights[et][keep]
        if self.config.sparse and self.config.aggr in SPARSE_AGGRS:
            # one CSR adjacency per relation, shared by the layers; weights and mean in its values
            edges = {
                et: self._adjacency(et, ei, weights.get(et), n_rows[et[0]], h0[et[2]].size(0))
                for et, ei in edges.items()
            }
            weights = {}
        weights = {et: w for et, w in weights.items() if w is not None}
        return EncoderInputs(raw, h0, edges, weights)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # weights saved before the last layer computed POIs only hold that layer's relations into
        # cells and their norms, which nothing read: dropped
        for i, conv in enumerate(self.convs):
            for k in [k for k in state_dict if k.startswith(f"{prefix}convs.{i}.convs.<")]:
                if k[len(f"{prefix}convs.{i}.convs.") :].split(".", 1)[0] not in conv.convs:
                    del state_dict[k]
            for k in [k for k in state_dict if k.startswith(f"{prefix}norms.{i}.")]:
                if k[len(f"{prefix}norms.{i}.") :].split(".", 1)[0] not in conv.dst_types:
                    del state_dict[k]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __getstate__(self) -> dict:
        # the adjacency cache holds weak references (not picklable) and is rebuilt on demand
        return {**self.__dict__, "_adj_cache": {}}

    def _adjacency(self, et, edge_index: Tensor, weight: Tensor | None, n_src: int, n_dst: int) -> Adjacency:
        """CSR adjacency ``(n_dst, n_src)`` of one relation. The graph's own (static) relations are
        converted once per edge tensor and reused while that tensor lives and is not modified in
        place; the co-visit message edges change at every step and are converted each time."""
        if weight is not None or et[1] in (COVISITS, REV_PREFIX + COVISITS):
            return Adjacency(edge_index, weight, n_src, n_dst, self.config.aggr)
        key = (edge_index._version, n_src, n_dst, self.config.aggr)
        hit = self._adj_cache.get(id(edge_index))
        if hit is not None and hit[0]() is edge_index and hit[1] == key:
            return hit[2]
        # drop the entries of edge tensors that no longer exist (a new graph, a moved copy); threads
        # share one model (geograph.analytics.whatif), so another may be dropping the same entry
        for k in [k for k, v in list(self._adj_cache.items()) if v[0]() is None]:
            self._adj_cache.pop(k, None)
        adj = Adjacency(edge_index, None, n_src, n_dst, self.config.aggr)
        self._adj_cache[id(edge_index)] = (weakref.ref(edge_index), key, adj)
        return adj

    def forward(
        self,
        data,
        covisit_edge_index: Tensor,
        covisit_weight: Tensor | None,
        src: Tensor,
        dst: Tensor,
        pair: Tensor,
        halo: HaloPlan | None = None,
    ) -> Tensor:
        """Predicted target for pairs ``(src, dst)`` (local POI indices); shape ``(E,)``."""
        h = self.encode(data, covisit_edge_index, covisit_weight, halo)
        return self.head.score(h, src, dst, self.pair_inputs(pair))

    def pair_inputs(self, pair: Tensor) -> Tensor:
        """Raw pair features (:func:`geograph.graph.builder.pair_features`) -> the head's inputs."""
        return transform_pair_features(pair, self.config.pair_rank)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

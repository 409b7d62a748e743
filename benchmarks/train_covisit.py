"""Benchmark co-visitation training: geograph's NAICS-aware model next to a plain PyG GraphSAGE.

For each size (default 10K, 100K, 1M POIs) one subprocess (so that its peak resident memory is
its own) generates the embedded world of ``experiments/covisit_naics_sage.yaml`` at that size
(``generate_world(n, seed=data.world_seed, n_images=0)``, 10 co-visit pairs per POI: ``n * 5``
co-visit rows), builds the graph and runs ``geograph.covisit.data.prepare`` (leak-free split
with one sampled zero pair per row, train-only feature / NAICS transforms, state groups). Those
three steps are timed and reported but are not part of the throughput. Then these models train on
the same prepared data, with the same batches:

* **geograph**: ``build_model(prep)``, the config's ``CovisitGNN`` (hierarchical NAICS embeddings,
  location encoding, heterogeneous SAGE layers (``HeteroSAGE``) over co-visits (weighted, both
  directions), ``near``, ``poi -in-> cell`` / ``rev_in`` and cell ``adjacent``, LayerNorm,
  residuals, jumping knowledge, the MLP ``EdgeHead``).
* **plain SAGE**: ``torch_geometric.nn.GraphSAGE`` with the same width, depth, aggregation and
  dropout on the homogeneous POI graph (the same co-visit message edges in both directions plus
  the ``near`` edges, unweighted), numeric POI features only (``data[poi].x``), and the same
  ``EdgeHead`` class (hidden widths and product term from the config) on its output.
* **plain SAGE + NAICS**: the same, with geograph's ``NAICSEncoder`` joined to its inputs.
* **plain hetero SAGE**: PyG's own heterogeneous GraphSAGE on the same graph as geograph's model,
  one ``HeteroConv`` of ``SAGEConv`` per layer (what ``to_hetero`` builds) over the same relations
  (co-visits both ways, unweighted; ``near``; ``in`` / ``rev_in``; ``adjacent``), raw POI and cell
  features, ReLU and dropout between layers, the same ``EdgeHead``; its last layer computes POIs
  only, as geograph's does (:func:`_plain_hetero_sage`).

The training step is the one of ``fit_gnn`` (copied here so that both models run it): each epoch
walks the state groups in a seeded random order; each group's training pairs are cut into
``round(1 / split.hide_frac)`` folds (``hiding_folds``, by pair or by source as ``split.hide_by``
says); each fold is one optimizer step that encodes the whole group
with the fold's own pairs removed from the message graph and scores the fold's pairs (AdamW,
gradient clipping, the config's loss). Both models draw the same permutations (the generator is
seeded by ``(seed, epoch)`` as in ``fit_gnn``), so they see identical batches of target pairs.
Validation, checkpoints and MLflow are left out of the timed region (they are per-epoch costs of
``fit_gnn`` independent of the model's throughput); ``--check-fit`` also runs ``fit_gnn`` itself
and prints its per-epoch training losses next to this loop's (they are identical: same
computation).

Both wall-clock and process CPU time are measured (``pairs/s`` and ``pairs / CPU-s``); CPU time leaves
out the time a process waits for a core, so the CPU-time ratio is the steadier one. ``--threads 1`` sets
``torch.set_num_threads(1)`` in the subprocess: with more threads than free cores torch's OpenMP
threads spin while waiting for a core and a 2-thread epoch can take several times longer.

Epochs of the two models alternate (geograph first on even epochs, plain SAGE first on odd ones),
so anything else running on the machine hits both alike. The first ``--warmup`` epochs are
not timed; throughput = training pairs of the timed epochs / their time. Peak memory: before each
epoch the process's high-water mark is reset to its current RSS (``/proc/self/clear_refs``, after
``gc`` and ``malloc_trim``) and ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is read after it,
so each model's peak is the process RSS (the prepared data, shared by both, included) during its
own epochs. The driver process imports nothing heavy (a child's ``ru_maxrss`` starts from the
RSS of the process that spawned it). ``--max-steps K`` times only the first ``K`` optimizer steps of each epoch (in the
epoch's random group order) and extrapolates the epoch from the per-pair cost; the table marks it.

The ranking candidates of ``prepare`` (``split.rank_negatives``) are only used by evaluation and
their sampler is a per-source Python loop over the source's whole state (about 12 s at 100K
POIs, growing with sources x state size, so roughly 100x that at 1M), so the benchmark sets ``rank_negatives=0`` unless ``--rank-negatives`` says
otherwise; the training pairs, message edges and group subgraphs are the same either way.

The run prints a hardware line first: CPU model, logical CPUs, torch version, torch threads
and the malloc the size runs used (``glibc``, or ``tcmalloc`` when the command runs under
``LD_PRELOAD=libtcmalloc_minimal.so.4``, which the size subprocesses inherit).

``--ablate`` adds copies of the geograph model with one feature switched off at a time
(``ABLATIONS``) and a
plain SAGE with an input projection, all on the same batches, to show where geograph's time
goes; ``--profile`` adds ``torch.profiler`` op tables and a per-relation forward breakdown of
the largest state group.

    .venv/bin/python benchmarks/train_covisit.py --threads 1              # 10K, 100K, 1M
    .venv/bin/python benchmarks/train_covisit.py --sizes 10000 --epochs 3 --threads 1 --ablate --check-fit
    .venv/bin/python benchmarks/train_covisit.py --sizes 1000000 --max-steps 40
    .venv/bin/python benchmarks/train_covisit.py --report benchmarks/out/train_covisit.json
    .venv/bin/python benchmarks/train_covisit.py --data data/patterns50k_world --threads 1   # your own world folder

``--data DIR`` trains on a world folder (``geograph import``, ``geograph world``, or tables of your
own in the data contracts) instead of generated worlds: one run, named after the folder.

Prints Markdown tables and writes ``benchmarks/out/train_covisit.json`` (``--out``). Measured
results: the "Training throughput" section of ``docs/guides/covisit.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
CONFIG = ROOT / "experiments" / "covisit_naics_sage.yaml"
MODELS = ("geograph", "plain_sage", "plain_sage_naics", "plain_hetero_sage")
# --ablate: geograph with one feature switched off (model config overrides), to attribute its cost
ABLATIONS = {
    "no_naics": {"naics": "none"},
    "no_strength": {"strength_features": False},
    "no_residual": {"residual_features": False},
    "no_location": {"location_freqs": 0},
    "poi_edges_only": {"relations": ["covisits", "near"]},
    "unweighted": {"weighted_covisits": False, "residual_features": False},
    "no_layernorm": {"norm": "none"},
    "no_jk": {"jk": False},
    "no_dropout": {"dropout": 0.0},
    "gather_scatter": {"sparse": False},
    "projected_first_layer": {"first_layer": "projected"},
    "raw_first_layer": {"first_layer": "raw"},
    "recompute": {"recompute": True},
    "all_off": {
        "naics": "none",
        "strength_features": False,
        "residual_features": False,
        "location_freqs": 0,
        "relations": ["covisits", "near"],
        "weighted_covisits": False,
        "norm": "none",
        "jk": False,
        "residual": False,
    },
}


# ----------------------------------------------------------------------------------------
# child process: one size
# ----------------------------------------------------------------------------------------


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_peak() -> float:
    """Free what can be freed, reset the RSS high-water mark (Linux >= 4.0); return current RSS."""
    import gc

    from geograph.utils.memory import release_free_memory

    gc.collect()
    release_free_memory()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _current_rss_mb()


def _plain_sage(in_dim: int, mc, project: bool = False, naics_sizes: list[int] | None = None):
    """Homogeneous PyG GraphSAGE + geograph's EdgeHead with the widths of ``mc`` (a ModelConfig).

    ``project=True`` (``--ablate`` only) first maps the inputs to ``hidden`` (Linear, ReLU,
    dropout) as ``CovisitGNN.poi_proj`` does, so the first layer also passes ``hidden``-wide
    messages. ``naics_sizes`` adds geograph's ``NAICSEncoder`` (``mc.naics`` mode, ``mc.naics_dim``
    wide) and feeds ``[x, NAICS embedding]`` to the same GraphSAGE: the NAICS-aware GraphSAGE
    whose cost against the plain one is the price of NAICS awareness alone.
    """
    import torch
    from torch import nn
    from torch_geometric.nn import GraphSAGE

    from geograph.nn.covisit_model import EdgeHead, pair_input_dim, transform_pair_features
    from geograph.nn.naics_encoder import NAICSEncoder

    naics = NAICSEncoder(naics_sizes, mc.naics_dim, mc.naics) if naics_sizes else None
    in_dim = in_dim + (mc.naics_dim if naics is not None else 0)

    class PlainSAGE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = (
                nn.Sequential(nn.Linear(in_dim, mc.hidden), nn.ReLU(), nn.Dropout(mc.dropout))
                if project
                else None
            )
            width = mc.hidden if project else in_dim
            self.gnn = GraphSAGE(width, mc.hidden, num_layers=mc.layers, dropout=mc.dropout, aggr=mc.aggr)
            self.head = EdgeHead(
                mc.hidden, mc.head_hidden, mc.head_product, mc.dropout, pair_input_dim(mc.pair_rank)
            )

            self.naics = naics

        def forward(self, x, edge_index, src, dst, pair, naics=None):
            if self.naics is not None:
                x = torch.cat([x, self.naics(naics)], dim=-1)
            h = self.gnn(x if self.proj is None else self.proj(x), edge_index)
            return self.head.score(h, src, dst, transform_pair_features(pair, mc.pair_rank))

    return PlainSAGE()


def _plain_hetero_sage(edge_types: list, in_dims: dict, mc):
    """PyG's heterogeneous GraphSAGE on geograph's graph: one ``HeteroConv`` of ``SAGEConv`` per
    layer (``aggr="sum"`` over relations, as ``to_hetero`` builds it) over the relations
    geograph's model passes messages on (co-visits both ways, unweighted; ``near``; POI-in-cell
    both ways; cell ``adjacent``), the raw POI and cell features as inputs, ReLU and dropout
    between layers, and geograph's ``EdgeHead`` on the POI outputs. Its last layer keeps only
    the relations into POIs (the head reads nothing else), as geograph's does.
    """
    import warnings

    from torch import nn
    from torch_geometric.nn import HeteroConv, SAGEConv

    from geograph.constants import POI
    from geograph.nn.covisit_model import EdgeHead, pair_input_dim, transform_pair_features

    class PlainHeteroSAGE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            dims = dict(in_dims)
            self.convs = nn.ModuleList()
            for i in range(mc.layers):
                rels = [et for et in edge_types if i < mc.layers - 1 or et[2] == POI]
                with warnings.catch_warnings():  # cells are no destination of the last layer: meant
                    warnings.filterwarnings("ignore", message="There exist node types")
                    conv = HeteroConv(
                        {et: SAGEConv((dims[et[0]], dims[et[2]]), mc.hidden, aggr=mc.aggr) for et in rels},
                        aggr="sum",
                    )
                self.convs.append(conv)
                dims = dict.fromkeys(dims, mc.hidden)
            self.drop = nn.Dropout(mc.dropout)
            self.head = EdgeHead(
                mc.hidden, mc.head_hidden, mc.head_product, mc.dropout, pair_input_dim(mc.pair_rank)
            )

        def forward(self, x_dict, edge_index_dict, src, dst, pair):
            for i, conv in enumerate(self.convs):
                x_dict = conv(x_dict, edge_index_dict)
                if i < len(self.convs) - 1:
                    x_dict = {t: self.drop(x.relu()) for t, x in x_dict.items()}
            h = x_dict[POI]
            return self.head.score(h, src, dst, transform_pair_features(pair, mc.pair_rank))

    return PlainHeteroSAGE()


def _hetero_inputs(data, message, edge_types: list) -> tuple[dict, dict]:
    """``x_dict`` and ``edge_index_dict`` of :func:`_plain_hetero_sage` for one training step
    (cells without features get a column of ones, as geograph's model gives them)."""
    from geograph.constants import CELL, COVISITS, POI, REV_PREFIX

    cx = data[CELL].x if data[CELL].x.size(1) else data[CELL].x.new_ones(data[CELL].num_nodes, 1)
    x_dict = {POI: data[POI].x, CELL: cx}
    edges = {}
    for et in edge_types:
        if et[1] == COVISITS:
            edges[et] = message
        elif et[1] == REV_PREFIX + COVISITS:
            edges[et] = message.flip(0)
        elif et in data.edge_types:
            edges[et] = data[et].edge_index
    return x_dict, edges


def _epoch(kind: str, model, opt, prep, ctx: dict, epoch: int, max_steps: int) -> dict:
    """One training epoch of ``kind`` (the loop body of ``fit_gnn``); returns time, pairs, steps."""
    import torch

    from geograph.constants import NEAR, POI
    from geograph.utils.device import autocast_context

    cfg, device = prep.cfg, ctx["device"]
    train, feats, y_scaled, loss_fn = ctx["train"], prep.pair_feats["train"], ctx["y_scaled"], ctx["loss_fn"]
    model.train()
    total, pairs, steps = 0.0, 0, 0
    # CPU seconds per phase (meaningful on CPU, where every op is synchronous)
    phase = dict.fromkeys(("select", "forward", "backward", "optimizer"), 0.0)
    clock = time.process_time
    t0, c0 = time.perf_counter(), clock()
    from geograph.covisit.train import epoch_steps

    steps_iter = epoch_steps(prep, epoch)  # the steps of fit_gnn, drawn from (seed, epoch) as there
    while True:
        if max_steps and steps >= max_steps:
            break
        ca = clock()
        step = next(steps_iter, None)
        if step is None:
            break
        data = step.data.to(device)
        cb = clock()
        with autocast_context(device):
            if kind == "plain_hetero_sage":
                x_dict, edges = _hetero_inputs(data, step.message.to(device), ctx["edge_types"])
                out = model(x_dict, edges, step.src.to(device), step.dst.to(device), feats[step.ids].to(device))
            elif not kind.startswith("plain_sage"):
                w_arg = step.weight.to(device) if cfg.model.weighted_covisits else None
                out = model(
                    data,
                    step.message.to(device),
                    w_arg,
                    step.src.to(device),
                    step.dst.to(device),
                    feats[step.ids].to(device),
                )
            else:
                m = step.message
                ei = torch.cat([m, m.flip(0), data[POI, NEAR, POI].edge_index.cpu()], dim=1).to(device)
                out = model(
                    data[POI].x,
                    ei,
                    step.src.to(device),
                    step.dst.to(device),
                    feats[step.ids].to(device),
                    data[POI].naics,
                )
            loss = loss_fn(out.float(), y_scaled[step.ids].to(device), train.visitors[step.ids].to(device))
        cc = clock()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        cd = clock()
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        total += float(loss.detach()) * step.ids.numel()
        ce = clock()
        for k, a, b in (("select", ca, cb), ("forward", cb, cc), ("backward", cc, cd), ("optimizer", cd, ce)):
            phase[k] += b - a
        pairs += step.ids.numel()
        steps += 1
    return {
        "time_s": time.perf_counter() - t0,
        "cpu_s": clock() - c0,
        "pairs": pairs,
        "steps": steps,
        "loss": total / max(pairs, 1),
        "phase_cpu_s": {k: round(v, 4) for k, v in phase.items()},
    }


def _profile(kinds: dict, prep, ctx: dict, steps: int, rows: int) -> dict:
    """torch.profiler table (self CPU time per op) of ``steps`` steps of each model."""
    from torch.profiler import ProfilerActivity, profile

    out = {}
    for kind in MODELS:
        model, opt = kinds[kind]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            _epoch(kind, model, opt, prep, ctx, 10_000, steps)
        ka = prof.key_averages()
        out[kind] = {
            "ops": ka.table(sort_by="self_cpu_time_total", row_limit=rows),
            "total_self_cpu_ms": sum(e.self_cpu_time_total for e in ka) / 1e3,
        }
    return out


def _breakdown(prep, geo_model, ctx: dict, repeats: int) -> dict:
    """Forward time of the pieces of ``CovisitGNN.encode`` on the largest group (no grad)."""
    import torch

    from geograph.constants import POI
    from geograph.nn.covisit_model import location_encoding

    gd = max(prep.groups, key=lambda g: g.sub.data[POI].num_nodes)
    data = gd.sub.data
    msg, w2 = gd.message["train"]
    w = w2[:, 0] if w2.dim() == 2 else w2  # [weight, residual] with model.residual_features
    n_poi = int(data[POI].num_nodes)
    m = geo_model
    res: dict[str, float] = {}

    def timed(name, fn):
        fn()
        t0 = time.perf_counter()
        for _ in range(repeats):
            r = fn()
        res[name] = round(1e3 * (time.perf_counter() - t0) / repeats, 2)
        return r

    m.eval()
    with torch.no_grad():
        p = data[POI]
        if m.naics is not None:
            timed("naics_encoder", lambda: m.naics(p.naics))
        timed("location_encoding", lambda: location_encoding(p.pos, m.config.location_freqs))
        if getattr(m.config, "residual_features", False):
            from geograph.nn.covisit_model import residual_means

            timed("residual_features", lambda: residual_means(msg, w2[:, 1], p.x.size(0)))
        if getattr(m.config, "strength_features", False):
            from geograph.nn.covisit_model import strength

            timed("strength_features", lambda: strength(msg, w, p.x.size(0)))
        timed("encoder_inputs (incl. CSR adjacencies)", lambda: m.encoder_inputs(data, msg, w2))
        inp = m.encoder_inputs(data, msg, w2)
        h = inp.raw if m.config.first_layer == "raw" else inp.projected
        edges, weights = inp.edges, inp.weights
        from geograph.nn.hetero_sage import aggregate

        conv = m.convs[0]
        for et, ei in edges.items():
            n_dst = h[et[2]].size(0)
            n_edges = int(ei.csr.values().numel()) if hasattr(ei, "csr") else int(ei.size(1))
            timed(
                f"layer1 aggregation {'__'.join(et)} ({n_edges:,} edges)",
                lambda et=et, ei=ei, n=n_dst: aggregate(ei, h[et[0]], n, weights.get(et), m.config.aggr),
            )
        timed("layer1_total", lambda: conv(h, edges, weights))
        timed("encode_total", lambda: m.encode(data, msg, w2))
        order = torch.argsort(msg[1] * n_poi + msg[0])
        timed(
            "encode_total, co-visit message edges sorted by destination",
            lambda: m.encode(data, msg[:, order], w2[order]),
        )
    m.train()
    return {"group_pois": int(data[POI].num_nodes), "ms": res}


def child(args: argparse.Namespace) -> dict:
    import numpy as np  # noqa: F401 - imports are not timed
    import torch
    import torch_geometric  # noqa: F401
    import yaml

    import geograph.covisit.data as cvdata
    import geograph.covisit.model as cvmodel
    import geograph.covisit.train as cv
    from geograph.constants import COVISITS, NEAR, POI
    from geograph.covisit.config import CovisitConfig, apply_overrides
    from geograph.data.synthetic import generate_world
    from geograph.graph.builder import build_graph
    from geograph.utils.memory import allocator

    n = args.child
    if args.threads:
        torch.set_num_threads(args.threads)
    raw = yaml.safe_load(CONFIG.read_text())
    # --data: the world folder replaces the generated world (one graph, loaded whole)
    source = [f"data.world_dir={args.data}", "data.loading=whole"] if args.data else [f"data.n_pois={n}"]
    sets = [
        *source,
        "data.cache_dir=null",
        f"split.rank_negatives={args.rank_negatives}",
        f"train.device={args.device}",
        *args.set,
    ]
    cfg = CovisitConfig.from_dict(apply_overrides(raw, sets))
    row: dict = {
        "pois": n,
        "config": str(CONFIG.relative_to(ROOT)),
        "overrides": sets,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "malloc": allocator(),
        "rss_after_imports_mb": round(_rss_mb()),
    }

    t0 = time.perf_counter()
    if args.data:
        world = cvdata.load_world_for(cfg)
        n = row["pois"] = world.pois.height
        row["data"] = Path(args.data).name
    else:
        world = generate_world(
            n_pois=cfg.data.n_pois, seed=cfg.data.world_seed, n_images=cfg.data.n_images, progress=False
        )
    t1 = time.perf_counter()
    graph = build_graph(world, cfg.graph)
    t2 = time.perf_counter()
    # prepare() builds the graph through the cache helper; hand it the graph built above instead
    cvdata.cached_build = lambda *a, **k: graph
    prep = cvdata.prepare(cfg, world)
    t3 = time.perf_counter()
    del world
    row.update(
        world_s=round(t1 - t0, 2),
        graph_s=round(t2 - t1, 2),
        prepare_s=round(t3 - t2, 2),
        peak_rss_prepare_mb=round(_rss_mb()),
    )
    g = prep.graph.data
    row.update(
        covisit_rows=int(g[POI, COVISITS, POI].edge_index.size(1)),
        near_edges=int(g[POI, NEAR, POI].edge_index.size(1)),
        train_pairs=len(prep.split.pairs["train"]),
        groups=len(prep.groups),
        largest_group_pois=max(int(gd.sub.data[POI].num_nodes) for gd in prep.groups),
    )
    print(
        f"[{n:,}] world {row['world_s']} s, graph {row['graph_s']} s, prepare {row['prepare_s']} s; "
        f"{row['train_pairs']:,} train pairs in {row['groups']} groups",
        file=sys.stderr,
        flush=True,
    )

    tc, mc = cfg.train, cfg.model
    device = cv.select_device(tc.device)
    scaler = cvmodel.TargetScaler(tc.target_scaling).fit(prep.split.pairs["train"].visitors)
    train = prep.split.pairs["train"]
    ctx = {
        "device": device,
        "train": train,
        "y_scaled": scaler.encode(train.visitors),
        "loss_fn": cvmodel._loss_fn(tc.loss),
    }
    torch.manual_seed(tc.seed)
    geo = cvmodel.build_model(prep).to(device)
    torch.manual_seed(tc.seed)
    plain = _plain_sage(int(g[POI].x.size(1)), mc).to(device)
    torch.manual_seed(tc.seed)
    sizes = [prep.pre.vocab.sizes()[lv] for lv in prep.pre.vocab.levels]  # as build_model
    plain_naics = _plain_sage(int(g[POI].x.size(1)), mc, naics_sizes=sizes).to(device)
    from geograph.constants import CELL

    ctx["edge_types"] = list(geo.edge_types)
    torch.manual_seed(tc.seed)
    hetero_dims = {POI: int(g[POI].x.size(1)), CELL: max(int(g[CELL].x.size(1)), 1)}
    plain_hetero = _plain_hetero_sage(ctx["edge_types"], hetero_dims, mc).to(device)
    models = [
        ("geograph", geo),
        ("plain_sage", plain),
        ("plain_sage_naics", plain_naics),
        ("plain_hetero_sage", plain_hetero),
    ]
    if args.ablate:
        import dataclasses

        from geograph.nn.covisit_model import CovisitGNN

        for name, over in ABLATIONS.items():
            torch.manual_seed(tc.seed)
            sizes = [prep.pre.vocab.sizes()[lv] for lv in prep.pre.vocab.levels]  # as build_model
            variant = CovisitGNN(
                dataclasses.replace(mc, **over), geo.poi_in, geo.cell_in, geo.image_in, sizes
            )
            models.append((name, variant.to(device)))
        torch.manual_seed(tc.seed)
        models.append(("plain_sage_proj", _plain_sage(int(g[POI].x.size(1)), mc, project=True).to(device)))
    names = [k for k, _ in models]
    kinds = {}
    for kind, model in models:
        kinds[kind] = (model, torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay))
        row[kind] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "model": str(model).splitlines()[0],
            "epochs": [],
        }
    row["device"] = str(device)
    if device.type == "cuda":
        row["device_name"] = torch.cuda.get_device_name(device)

    for e in range(1, args.warmup + args.epochs + 1):
        order = names if e % 2 else names[::-1]
        for kind in order:
            model, opt = kinds[kind]
            base = _reset_peak()
            r = _epoch(kind, model, opt, prep, ctx, e, args.max_steps)
            r.update(
                epoch=e,
                warmup=e <= args.warmup,
                rss_before_mb=round(base),
                peak_rss_mb=round(_rss_mb()),
            )
            row[kind]["epochs"].append(r)
            print(
                f"[{n:,}] epoch {e} {kind}: {r['time_s']:.2f} s (CPU {r['cpu_s']:.2f} s), {r['steps']} steps, {r['pairs']:,} pairs, "
                f"loss {r['loss']:.4f}, peak {r['peak_rss_mb']} MB",
                file=sys.stderr,
                flush=True,
            )

    for kind in names:
        timed = [r for r in row[kind]["epochs"] if not r["warmup"]]
        secs, pairs = sum(r["time_s"] for r in timed), sum(r["pairs"] for r in timed)
        cpu = sum(r["cpu_s"] for r in timed)
        row[kind].update(
            pairs_per_s=pairs / secs if secs else float("nan"),
            pairs_per_cpu_s=pairs / cpu if cpu else float("nan"),
            epoch_s=[round(r["time_s"], 3) for r in timed],
            # extrapolated full-epoch time when --max-steps cut the epochs short
            full_epoch_s=row["train_pairs"] * secs / pairs if pairs else float("nan"),
            phase_cpu_s_per_epoch={
                k: sum(r["phase_cpu_s"][k] for r in timed) / len(timed) for k in timed[0]["phase_cpu_s"]
            },
            peak_rss_mb=max(r["peak_rss_mb"] for r in row[kind]["epochs"]),
            train_increment_mb=max(r["peak_rss_mb"] - r["rss_before_mb"] for r in row[kind]["epochs"]),
        )
    row["partial_epochs"] = any(r["pairs"] < row["train_pairs"] for r in row["geograph"]["epochs"])
    row["ratio_plain_over_geograph"] = row["plain_sage"]["pairs_per_s"] / row["geograph"]["pairs_per_s"]
    row["cpu_ratio_plain_over_geograph"] = (
        row["plain_sage"]["pairs_per_cpu_s"] / row["geograph"]["pairs_per_cpu_s"]
    )
    row["cpu_ratio_naics_over_plain"] = (
        row["plain_sage"]["pairs_per_cpu_s"] / row["plain_sage_naics"]["pairs_per_cpu_s"]
    )
    row["cpu_ratio_hetero_over_geograph"] = (
        row["plain_hetero_sage"]["pairs_per_cpu_s"] / row["geograph"]["pairs_per_cpu_s"]
    )
    row["ablations"] = {
        k: {
            "overrides": ABLATIONS[k],
            "cpu_s_per_epoch_vs_geograph": row["geograph"]["pairs_per_cpu_s"] / row[k]["pairs_per_cpu_s"],
        }
        for k in names
        if k in ABLATIONS
    }
    if "plain_sage_proj" in names:
        row["ablations"]["plain_sage_proj"] = {
            "overrides": {},
            "cpu_s_per_epoch_vs_geograph": row["geograph"]["pairs_per_cpu_s"]
            / row["plain_sage_proj"]["pairs_per_cpu_s"],
        }

    if args.profile:
        row["profile"] = _profile(kinds, prep, ctx, args.profile_steps, args.profile_rows)
        try:
            row["breakdown"] = _breakdown(prep, geo, ctx, 5)
        except Exception as exc:  # noqa: BLE001 - the breakdown mirrors CovisitGNN.encode and may lag behind it
            row["breakdown"] = {"error": repr(exc)}
    if args.check_fit:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            prep.cfg.train.checkpoint_dir, prep.cfg.train.epochs = tmp, args.warmup + args.epochs
            c0 = time.process_time()
            epoch_s: list[float] = []  # the loop reports an epoch's time (with validation) to on_epoch
            fr = cv.fit_gnn(prep, on_epoch=lambda _e, m: epoch_s.append(m["epoch_time_s"]))
            cpu = time.process_time() - c0
            hist = fr.history
        # same seeds, initialisation and batches: the per-epoch training losses must agree
        row["fit_gnn"] = {
            "train_time_s": round(fr.train_time_s, 2),
            "epochs": len(hist),
            "cpu_s_incl_val": round(cpu, 2),
            "epoch_time_s_with_val": [round(t, 2) for t in epoch_s],
            "pairs_per_s_incl_first_epoch": row["train_pairs"] * len(hist) / fr.train_time_s,
            "train_loss": [h["train_loss"] for h in hist],
            "train_loss_benchmark_loop": [r["loss"] for r in row["geograph"]["epochs"]],
        }
        print(
            f"[{n:,}] fit_gnn train losses {row['fit_gnn']['train_loss']} vs this loop "
            f"{row['fit_gnn']['train_loss_benchmark_loop']}",
            file=sys.stderr,
            flush=True,
        )
    return row


# ----------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------


def run_size(n: int, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(n),
        "--epochs",
        str(args.epochs),
        "--warmup",
        str(args.warmup),
        "--max-steps",
        str(args.max_steps),
        "--rank-negatives",
        str(args.rank_negatives),
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--profile-steps",
        str(args.profile_steps),
        "--profile-rows",
        str(args.profile_rows),
    ]
    cmd += ["--profile"] * args.profile + ["--check-fit"] * args.check_fit + ["--ablate"] * args.ablate
    cmd += ["--data", str(Path(args.data).resolve())] if args.data else []
    for s in args.set:
        cmd += ["--set", s]
    data = {"data": Path(args.data).name} if args.data else {}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=args.max_seconds)
    except subprocess.TimeoutExpired:
        return {"pois": n, **data, "failed": f"stopped after {args.max_seconds:g} s (--max-seconds)"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"pois": n, **data, "failed": f"child exited with {proc.returncode}"}
    row = json.loads(lines[-1][len("RESULT ") :])
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    return row


def size_label(r: dict) -> str:
    """A row's name in the tables: the world folder's name (``--data``) or the size (10K, 1M)."""
    if r.get("data"):
        return r["data"]
    return f"{r['pois'] // 1000:,}K" if r["pois"] < 1_000_000 else f"{r['pois'] / 1e6:g}M"


def markdown(rows: list[dict]) -> str:
    """The main table: throughput (wall clock and per CPU second), ratio, peak RSS, setup times."""
    head = (
        "| size | POIs | target pairs / epoch | geograph pairs/s | plain SAGE pairs/s | ratio (wall) | "
        "geograph pairs / CPU-s | plain SAGE pairs / CPU-s | ratio (CPU) | plain SAGE + NAICS pairs / CPU-s | "
        "NAICS cost on plain SAGE (CPU) | plain hetero SAGE pairs / CPU-s | ratio to hetero (CPU) | "
        "geograph peak MB | plain SAGE peak MB | world / graph / prepare s |"
    )
    sep = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    body = []
    for r in rows:
        label = size_label(r)
        if "failed" in r:
            body.append(f"| {label} | {r['pois']:,} |" + " - |" * 13 + f" {r['failed']} |")
            continue
        g, p, pn = r["geograph"], r["plain_sage"], r["plain_sage_naics"]
        mark = " *" if r["partial_epochs"] else ""
        ph = r.get("plain_hetero_sage")  # absent from results saved before it was added
        hetero = (
            f"{ph['pairs_per_cpu_s']:,.0f}{mark} | {r['cpu_ratio_hetero_over_geograph']:.2f}x"
            if ph
            else "- | -"
        )
        body.append(
            f"| {label} | {r['pois']:,} | {r['train_pairs']:,} | {g['pairs_per_s']:,.0f}{mark} | {p['pairs_per_s']:,.0f}{mark} | "
            f"{r['ratio_plain_over_geograph']:.2f}x | {g['pairs_per_cpu_s']:,.0f}{mark} | {p['pairs_per_cpu_s']:,.0f}{mark} | "
            f"{r['cpu_ratio_plain_over_geograph']:.2f}x | {pn['pairs_per_cpu_s']:,.0f}{mark} | "
            f"{100 * (r['cpu_ratio_naics_over_plain'] - 1):+.0f}% | {hetero} | "
            f"{g['peak_rss_mb']:,} | {p['peak_rss_mb']:,} | "
            f"{r['world_s']:.1f} / {r['graph_s']:.1f} / {r['prepare_s']:.1f} |"
        )
    return "\n".join([head, sep, *body])


def phase_markdown(rows: list[dict]) -> str:
    """CPU seconds per epoch in each phase of the training step, geograph vs plain SAGE."""
    rows = [r for r in rows if "failed" not in r]
    if not rows:
        return ""
    head = "| POIs | model | pair selection + masking | forward + loss | backward | clip + AdamW | CPU s / epoch |"
    body = []
    for r in rows:
        for kind in [k for k in MODELS if k in r]:
            ph = r[kind]["phase_cpu_s_per_epoch"]
            scale = (
                r["train_pairs"]
                * len(r[kind]["epoch_s"])
                / sum(e["pairs"] for e in r[kind]["epochs"] if not e["warmup"])
            )
            cells = [f"{v * scale:.2f}" for v in ph.values()]
            body.append(
                f"| {r['pois']:,} | {kind} | "
                + " | ".join(cells)
                + f" | {r['train_pairs'] / r[kind]['pairs_per_cpu_s']:.2f} |"
            )
    return "\n".join([head, "|---:|---|---:|---:|---:|---:|---:|", *body])


def ablation_markdown(rows: list[dict]) -> str:
    """CPU time per epoch of each geograph variant relative to the full model (and to plain SAGE)."""
    rows = [r for r in rows if r.get("ablations")]
    if not rows:
        return ""
    head = (
        "| variant (geograph with ...) | "
        + " | ".join(f"{r['pois']:,} POIs: CPU s / epoch" for r in rows)
        + " |"
    )
    sep = "|---|" + "---:|" * len(rows)
    body = []
    for name in ["geograph", *rows[0]["ablations"], "plain_sage"]:
        if name == "plain_sage_proj":
            continue
        cells = []
        for r in rows:
            cpu = r["train_pairs"] / r[name]["pairs_per_cpu_s"]
            base = r["train_pairs"] / r["geograph"]["pairs_per_cpu_s"]
            cells.append(f"{cpu:.2f} ({100 * (cpu / base - 1):+.0f}%)")
        label = {
            "geograph": "everything on (the config)",
            "plain_sage": "plain PyG GraphSAGE (reference)",
        }.get(name, ", ".join(f"{k}={v}" for k, v in ABLATIONS.get(name, {}).items()))
        body.append(f"| {name}: {label} | " + " | ".join(cells) + " |")
    if "plain_sage_proj" in rows[0]["ablations"]:
        cells = []
        for r in rows:
            cpu = r["train_pairs"] / r["plain_sage_proj"]["pairs_per_cpu_s"]
            cells.append(
                f"{cpu:.2f} ({100 * (cpu / (r['train_pairs'] / r['geograph']['pairs_per_cpu_s']) - 1):+.0f}%)"
            )
        body.append(
            "| plain_sage_proj: plain SAGE after a Linear input projection to the hidden width | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join([head, sep, *body])


def hardware_line(rows: list[dict]) -> str:
    """CPU model, logical CPUs, torch version, torch threads and malloc of the size runs."""
    from hostinfo import hardware_line as line

    ok = [r for r in rows if "failed" not in r] or [{}]
    seen = {k: "/".join(sorted({str(r.get(k, "?")) for r in ok})) for k in ("torch", "threads", "malloc")}
    gpus = sorted({r["device_name"] for r in ok if r.get("device_name")})
    extra = [f"GPU {'/'.join(gpus)} (train.device cuda, bf16 autocast)"] if gpus else []
    return line(f"torch {seen['torch']}", f"{seen['threads']} torch thread(s)", f"malloc {seen['malloc']}", *extra)


def render(rows: list[dict], max_steps: int) -> str:
    """All tables of a run, as printed at its end."""
    out = [markdown(rows)]
    if any(r.get("partial_epochs") for r in rows):
        out.append(f"* extrapolated: only the first {max_steps} steps of each epoch were timed")
    phases = phase_markdown(rows)
    if phases:
        out.append("CPU seconds per full epoch by phase:\n\n" + phases)
    ablation = ablation_markdown(rows)
    if ablation:
        out.append("Ablation, CPU seconds per full epoch (change vs the full geograph model):\n\n" + ablation)
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated POI counts")
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="a world folder (geograph import / geograph world) to train on instead of generated worlds",
    )
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per model (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs per model")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=0,
        help="time only the first K steps of each epoch and extrapolate (0: full epochs)",
    )
    parser.add_argument(
        "--rank-negatives", type=int, default=0, help="split.rank_negatives (evaluation only)"
    )
    parser.add_argument("--device", default="auto", help="train.device: auto, cpu or cuda")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch.set_num_threads in the child (0: torch's default)"
    )
    parser.add_argument("--set", action="append", default=[], help="extra config override section.key=value")
    parser.add_argument("--profile", action="store_true", help="torch.profiler tables + forward breakdown")
    parser.add_argument("--profile-steps", type=int, default=5, help="steps profiled per model")
    parser.add_argument("--profile-rows", type=int, default=25, help="rows of each profiler table")
    parser.add_argument(
        "--ablate",
        action="store_true",
        help="also train geograph with one feature off at a time (see ABLATIONS), same batches",
    )
    parser.add_argument("--check-fit", action="store_true", help="also time geograph's own fit_gnn")
    parser.add_argument(
        "--max-seconds", type=float, default=7200.0, help="time limit of each size's subprocess"
    )
    parser.add_argument("--out", default=str(OUT / "train_covisit.json"), help="JSON results file")
    parser.add_argument("--report", metavar="JSON", help="print the tables of a saved run and exit")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.warmup < 0:
        parser.error(f"--epochs must be >= 1 and --warmup >= 0, got {args.epochs}, {args.warmup}")

    if args.report:
        saved = json.loads(Path(args.report).read_text())
        print(f"command: {saved['command']}\n")
        if saved.get("machine", {}).get("hardware"):
            print(saved["machine"]["hardware"] + "\n")
        print(render(saved["rows"], saved["args"]["max_steps"]))
        return 0
    if args.child:
        sys.path.insert(0, str(ROOT))
        print("RESULT " + json.dumps(child(args)), flush=True)
        return 0

    if args.data:
        folder = Path(args.data)
        if not (folder / "pois.parquet").exists() and not (folder / "pois").is_dir():
            parser.error(f"--data {args.data}: not a world folder (no pois.parquet or pois/ in it)")
        sizes = [1]  # one run on the folder (the child counts its POIs; --child 0 is the driver)
    else:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    rows = []
    for n in sizes:
        row = run_size(n, args)
        rows.append(row)
        if "profile" in row:
            for kind, p in row["profile"].items():
                print(
                    f"\n### torch.profiler, {kind}, {n:,} POIs, {args.profile_steps} steps "
                    f"({p['total_self_cpu_ms']:.0f} ms self CPU)\n{p['ops']}",
                    file=sys.stderr,
                )
            print(
                f"\nforward breakdown (ms, no grad): {json.dumps(row['breakdown'], indent=1)}",
                file=sys.stderr,
            )
    hw = hardware_line(rows)
    print(hw + "\n")
    print(render(rows, args.max_steps))
    table, phases, ablation = markdown(rows), phase_markdown(rows), ablation_markdown(rows)
    meta = {
        "command": " ".join(
            [".venv/bin/python", "benchmarks/train_covisit.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": {
            "hardware": hw,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "args": {k: v for k, v in vars(args).items() if k != "child"},
        "rows": rows,
        "markdown": table,
        "ablation_markdown": ablation,
        "phase_markdown": phases,
    }
    sys.path.insert(0, str(ROOT))
    from geograph.utils.atomic import atomic_write_text

    atomic_write_text(Path(args.out), json.dumps(meta, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

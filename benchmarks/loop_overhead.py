"""Per-epoch overhead of ``lightning.Trainer`` next to a plain training loop (a measurement harness).

This script only measures; it is not geograph's training code. It builds the embedded-world
co-visitation setup the way ``geograph covisit`` does (``prepare(CovisitConfig.from_dict(...))``
with ``data.n_pois`` POIs and the default GNN, ``build_model(prep)``) and defines ONE training
step, a minimal copy of the per-fold step of ``fit_gnn``: encode one state group with the fold's
own training pairs removed from the message graph, score the fold's pairs, the config's loss.
Each epoch walks the groups in a seeded order and cuts each group's pairs into
``round(1 / split.hide_frac)`` folds (``hiding_folds``), one optimizer step per fold; the random
draws of an epoch come from ``(seed, epoch)`` as in ``fit_gnn``. Validation scores the ``val``
pairs group by group (``val`` message edges) and computes R² of log1p counts. Left out of all
variants alike: the LR scheduler, checkpoints of ``fit_gnn``, MLflow, early stopping.

The same step, with the same initial weights and the same draws, runs in:

* ``plain``: a Python loop (``zero_grad`` / ``backward`` / ``clip_grad_norm_`` / ``AdamW.step``);
* ``lightning``: ``lightning.Trainer`` on CPU with ``logger=False``,
  ``enable_checkpointing=False``, ``enable_progress_bar=False``, ``enable_model_summary=False``,
  ``num_sanity_val_steps=0``; a ``LightningModule`` whose ``training_step`` is the same step,
  gradient clipping by Lightning (``gradient_clip_val``), a ``DataLoader`` (``batch_size=None``,
  identity collate) over a sampler that yields the epoch's ``(epoch, group, fold)`` steps;
* ``lightning_defaults`` (``--defaults``): the same with Lightning's defaults on (logger: a
  ``CSVLogger`` when TensorBoard is not installed, a checkpoint every epoch, progress bar, model
  summary, sanity validation), plus ``self.log`` of the training loss every step and of the
  validation R² every epoch, as a port to Lightning would do.

Timing: one warm-up epoch (``--warmup``), then ``--epochs`` timed epochs per variant; an epoch is
the time from its start to the next epoch's start (the last one: to the end of training), so
whatever the loop does between epochs is counted; "train" ends where validation starts. Wall
clock and process CPU time are both recorded (CPU time leaves out waits for a core, so it is steadier).
``--repeats`` runs every variant that many times, rotating their order; the table reports
medians and minima over all timed epochs and, as the figure least moved by other processes on the
machine, "paired" numbers: per round, the variant's median epoch against the plain loop's median
epoch of the same round (they ran back to back), then the median over rounds. "setup" is the
time outside the epochs: model copy and optimizer for ``plain``; ``Trainer(...)`` construction,
``fit`` start-up and teardown for Lightning. With ``--defaults`` Lightning's model summary and
progress bar print to the terminal before the tables.

On the embedded world an epoch has few steps of tens of milliseconds each, so a per-step cost of
the loop machinery is below the timing noise between runs; ``--null-steps N`` (default
500) therefore runs the same loops a second time around a null step (a ``Linear(16, 1)`` on 8
rows, ``N`` steps per epoch, one validation batch), which measures the loops' own cost per step
directly. The first table's overhead in seconds per epoch is bounded by that cost times the
steps per epoch.

Correctness: each Lightning variant's per-step training losses and per-epoch validation R² are
compared with those of the plain loop of the same round (max absolute difference). With more
than one torch thread, float reductions are split across threads and two runs of the *same* loop
can differ in the last bit (about 1e-7 on one step, growing through later steps to about 5e-5
after 30 steps); with ``--repeats`` >= 2 the plain loop's
own run-to-run difference is printed as the yardstick (``--threads 1`` gives identical losses).

Lightning is not a geograph dependency; install it for this script with
``pip install -c constraints.txt lightning==2.6.*`` (the constraints keep the CPU torch).

    .venv/bin/python benchmarks/loop_overhead.py --threads 2
    .venv/bin/python benchmarks/loop_overhead.py --threads 2 --defaults --repeats 10
    .venv/bin/python benchmarks/loop_overhead.py --n-pois 5000 --null-steps 0

Prints a Markdown table and writes ``benchmarks/out/loop_overhead.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "loop_overhead.json"
INSTALL_HINT = "pip install -c constraints.txt lightning==2.6.*"
VARIANTS = ("plain", "lightning", "lightning_defaults")


def _import_lightning():
    try:
        import lightning
    except ImportError as exc:
        raise SystemExit(
            f"benchmarks/loop_overhead.py needs Lightning, which geograph does not depend on: {INSTALL_HINT} ({exc})"
        ) from exc
    return lightning


# ----------------------------------------------------------------------------------------
# the shared setup and step
# ----------------------------------------------------------------------------------------


class Harness:
    """The prepared embedded world, the initial weights, the step list and the one training step."""

    def __init__(self, n_pois: int, seed: int):
        from geograph.constants import POI
        from geograph.covisit import CovisitConfig, TargetScaler, build_model, hiding_folds, prepare

        try:
            from geograph.covisit.model import _loss_fn
        except ImportError:  # older layout: everything in geograph.covisit.train
            from geograph.covisit.train import _loss_fn

        # rank_negatives only feed the ranking metrics, which this harness does not compute
        cfg = CovisitConfig.from_dict(
            {
                "data": {"n_pois": n_pois, "cache_dir": None},
                "split": {"rank_negatives": 0},
                "train": {"seed": seed},
            }
        )
        t0 = time.perf_counter()
        self.prep = prepare(cfg)
        self.prepare_s = time.perf_counter() - t0
        self.cfg = cfg
        self._build_model = build_model
        self._hiding_folds = hiding_folds
        torch.manual_seed(cfg.train.seed)
        self.init_state = {k: v.detach().clone() for k, v in build_model(self.prep).state_dict().items()}
        train = self.prep.split.pairs["train"]
        self.scaler = TargetScaler(cfg.train.target_scaling).fit(train.visitors)
        self.y = self.scaler.encode(train.visitors)
        self.counts = train.visitors
        self.feats = self.prep.pair_feats["train"]
        self.loss_fn = _loss_fn(cfg.train.loss)
        hf = cfg.split.hide_frac
        self.n_folds = max(1, int(round(1.0 / hf))) if hf > 0 else 1
        self.n_local = [gd.sub.data[POI].num_nodes for gd in self.prep.groups]
        self.msg_keys = [
            gd.message["train"][0][0] * n + gd.message["train"][0][1]
            for gd, n in zip(self.prep.groups, self.n_local, strict=True)
        ]
        self.val_groups = [gi for gi, gd in enumerate(self.prep.groups) if gd.pairs["val"].numel()]
        self.y_val = torch.log1p(self.prep.split.pairs["val"].visitors.double())
        self._steps: dict[int, list] = {}

    def epoch_seed(self, epoch: int) -> int:
        return self.cfg.train.seed * 100_003 + epoch

    def new_model(self) -> torch.nn.Module:
        model = self._build_model(self.prep)
        model.load_state_dict(self.init_state)
        return model

    def steps(self, epoch: int) -> list[tuple[int, int, torch.Tensor]]:
        """``(epoch, group, fold pair positions)`` of every optimizer step of ``epoch``."""
        if epoch not in self._steps:
            gen = torch.Generator().manual_seed(self.epoch_seed(epoch))
            out = []
            for gi in torch.randperm(len(self.prep.groups), generator=gen).tolist():
                gd = self.prep.groups[gi]
                perm = torch.randperm(gd.pairs["train"].numel(), generator=gen)
                if perm.numel() == 0:
                    continue
                for fold in self._hiding_folds(
                    gd.local["train"][0], perm, self.n_folds, self.cfg.split.hiding
                ):
                    out.append((epoch, gi, fold))
            self._steps = {epoch: out}
        return self._steps[epoch]

    def step_loss(self, model: torch.nn.Module, gi: int, fold: torch.Tensor) -> torch.Tensor:
        """The training step: forward and loss of one fold of one group (``fit_gnn``'s inner step)."""
        gd = self.prep.groups[gi]
        ids = gd.pairs["train"][fold]
        n = self.n_local[gi]
        msg, w = gd.message["train"]
        loc = gd.local["train"][:, fold]
        keep = ~torch.isin(self.msg_keys[gi], loc[0] * n + loc[1])
        w_arg = w[keep] if self.cfg.model.weighted_covisits else None
        out = model(gd.sub.data, msg[:, keep], w_arg, loc[0], loc[1], self.feats[ids])
        return self.loss_fn(out.float(), self.y[ids], self.counts[ids])

    def val_group(self, model: torch.nn.Module, gi: int, pred: torch.Tensor) -> None:
        """Predicted log1p of the group's ``val`` pairs, written into ``pred`` (eval mode, no grad)."""
        gd = self.prep.groups[gi]
        msg, w = gd.message["val"]
        h = model.encode(gd.sub.data, msg, w if self.cfg.model.weighted_covisits else None)
        loc = gd.local["val"]
        ids = gd.pairs["val"]
        out = model.head(h[loc[0]], h[loc[1]], model.pair_inputs(self.prep.pair_feats["val"][ids]))
        pred[ids] = self.scaler.decode(out.float()).double()

    def new_val_pred(self) -> torch.Tensor:
        return torch.zeros_like(self.y_val)

    def val_r2(self, pred: torch.Tensor) -> float:
        ss = float(((self.y_val - self.y_val.mean()) ** 2).sum())
        return 1.0 - float(((self.y_val - pred) ** 2).sum()) / max(ss, 1e-12)


class NullHarness:
    """The same loops around a step that does almost nothing: the loops' own cost per step.

    A ``Linear(16, 1)`` on 8 fixed rows, ``n_steps`` steps per epoch, one "validation group";
    same optimizer, clipping and seeding as :class:`Harness`.
    """

    def __init__(self, h: Harness, n_steps: int):
        self.cfg = h.cfg
        self.epoch_seed = h.epoch_seed
        self.n_steps = n_steps
        self.x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
        self.val_groups = [0]
        self.y_val = torch.ones(8, dtype=torch.float64)

    def new_model(self) -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Linear(16, 1)

    def steps(self, epoch: int) -> list[tuple[int, int, torch.Tensor]]:
        return [(epoch, 0, torch.arange(8))] * self.n_steps

    def step_loss(self, model: torch.nn.Module, gi: int, fold: torch.Tensor) -> torch.Tensor:
        return model(self.x[fold]).pow(2).mean()

    def val_group(self, model: torch.nn.Module, gi: int, pred: torch.Tensor) -> None:
        pred[:] = model(self.x).double().flatten()

    def new_val_pred(self) -> torch.Tensor:
        return torch.zeros_like(self.y_val)

    def val_r2(self, pred: torch.Tensor) -> float:
        return float(pred.mean())


class Timer:
    """Wall and process-CPU marks of epochs and their validation passes."""

    def __init__(self):
        self.marks: list[dict[str, tuple[float, float]]] = []
        self.end: tuple[float, float] | None = None

    @staticmethod
    def now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def epoch_start(self) -> None:
        self.marks.append({"start": self.now()})

    def val_start(self) -> None:
        self.marks[-1]["val_start"] = self.now()

    def val_end(self) -> None:
        self.marks[-1]["val_end"] = self.now()

    def finish(self) -> None:
        self.end = self.now()

    def epochs(self) -> list[dict[str, float]]:
        """Per epoch: ``total`` / ``train`` / ``val`` wall seconds and ``total_cpu`` CPU seconds."""
        out = []
        for i, m in enumerate(self.marks):
            nxt = self.marks[i + 1]["start"] if i + 1 < len(self.marks) else self.end
            vs = m.get("val_start", nxt)
            ve = m.get("val_end", vs)
            out.append(
                {
                    "total": nxt[0] - m["start"][0],
                    "total_cpu": nxt[1] - m["start"][1],
                    "train": vs[0] - m["start"][0],
                    "val": ve[0] - vs[0],
                }
            )
        return out


# ----------------------------------------------------------------------------------------
# (a) the plain loop
# ----------------------------------------------------------------------------------------


def run_plain(h: Harness, n_epochs: int, validate: bool) -> dict:
    t0 = time.perf_counter()
    tc = h.cfg.train
    model = h.new_model()
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    timer, losses, r2s = Timer(), [], []
    threads = None
    setup = time.perf_counter() - t0
    for epoch in range(n_epochs):
        timer.epoch_start()
        torch.manual_seed(h.epoch_seed(epoch))
        model.train()
        for _, gi, fold in h.steps(epoch):
            threads = threads or torch.get_num_threads()
            loss = h.step_loss(model, gi, fold)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
        if validate:
            timer.val_start()
            model.eval()
            pred = h.new_val_pred()
            with torch.no_grad():
                for gi in h.val_groups:
                    h.val_group(model, gi, pred)
            r2s.append(h.val_r2(pred))
            timer.val_end()
    timer.finish()
    return {"timer": timer, "losses": losses, "val_r2": r2s, "setup_s": setup, "threads": threads}


# ----------------------------------------------------------------------------------------
# (b), (c) lightning.Trainer
# ----------------------------------------------------------------------------------------


def _identity(batch):
    return batch


def run_lightning(h: Harness, n_epochs: int, validate: bool, defaults: bool) -> dict:
    L = _import_lightning()
    from torch.utils.data import DataLoader, Dataset, Sampler

    t0 = time.perf_counter()
    tc = h.cfg.train
    timer = Timer()

    class Steps(Dataset):
        def __getitem__(self, item):
            return item

    class EpochSteps(Sampler):
        """The steps of the epoch Lightning sets (``set_epoch``), drawn as ``fit_gnn`` draws them."""

        def __init__(self):
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            yield from h.steps(self.epoch)

        def __len__(self) -> int:
            return len(h.steps(self.epoch))

    class StepModule(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = h.new_model()
            self.losses: list[float] = []
            self.r2s: list[float] = []
            self.threads = None
            self.pred = h.new_val_pred()

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)

        def on_train_epoch_start(self):
            torch.manual_seed(h.epoch_seed(self.current_epoch))

        def training_step(self, batch, batch_idx):
            epoch, gi, fold = batch
            if epoch != self.current_epoch:
                raise RuntimeError(f"step of epoch {epoch} in epoch {self.current_epoch}")
            self.threads = self.threads or torch.get_num_threads()
            loss = h.step_loss(self.model, gi, fold)
            self.losses.append(float(loss.detach()))
            if defaults:
                self.log("train_loss", loss, batch_size=fold.numel())
            return loss

        def on_validation_epoch_start(self):
            self.pred = h.new_val_pred()

        def validation_step(self, batch, batch_idx):
            h.val_group(self.model, batch, self.pred)

        def on_validation_epoch_end(self):
            r2 = h.val_r2(self.pred)
            if not self.trainer.sanity_checking:
                self.r2s.append(r2)
            if defaults:
                self.log("val_r2", r2)

    class Timing(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            timer.epoch_start()

        def on_validation_start(self, trainer, pl_module):
            if not trainer.sanity_checking:
                timer.val_start()

        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                timer.val_end()

        def on_train_end(self, trainer, pl_module):
            timer.finish()

    module = StepModule()
    # a generator of its own: the loader's base-seed draw must not touch the global RNG (dropout)
    train_dl = DataLoader(
        Steps(), sampler=EpochSteps(), batch_size=None, collate_fn=_identity, generator=torch.Generator()
    )
    val_dl = DataLoader(h.val_groups, batch_size=None, collate_fn=_identity, generator=torch.Generator())
    kwargs = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=n_epochs,
        gradient_clip_val=tc.grad_clip if tc.grad_clip > 0 else None,
        gradient_clip_algorithm="norm",
        limit_val_batches=1.0 if validate else 0,
        callbacks=[Timing()],
    )
    with tempfile.TemporaryDirectory() as tmp:
        if defaults:
            kwargs.update(default_root_dir=tmp)
        else:
            kwargs.update(
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
            )
        trainer = L.Trainer(**kwargs)
        trainer.fit(module, train_dataloaders=train_dl, val_dataloaders=val_dl if validate else None)
    wall = time.perf_counter() - t0
    epochs_wall = timer.end[0] - timer.marks[0]["start"][0]
    return {
        "timer": timer,
        "losses": module.losses,
        "val_r2": module.r2s,
        "setup_s": wall - epochs_wall,
        "threads": module.threads,
    }


# ----------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------


def hardware(threads: int) -> dict:
    from hostinfo import cpu_model

    model = cpu_model()
    lightning_version = None
    try:
        import lightning

        lightning_version = lightning.__version__
    except ImportError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "lightning": lightning_version,
        "python": platform.python_version(),
        "threads": threads,
    }


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarize(runs: dict[str, list[dict]], warmup: int, steps_per_epoch: int) -> list[dict]:
    rows = []
    for name, rs in runs.items():
        timed = [e for r in rs for e in r["timer"].epochs()[warmup:]]
        rows.append(
            {
                "variant": name,
                "epochs_timed": len(timed),
                "train_s": _median([e["train"] for e in timed]),
                "val_s": _median([e["val"] for e in timed]),
                "epoch_s": _median([e["total"] for e in timed]),
                "epoch_s_min": min((e["total"] for e in timed), default=float("nan")),
                "epoch_cpu_s": _median([e["total_cpu"] for e in timed]),
                "setup_s": _median([r["setup_s"] for r in rs]),
                "threads_in_step": rs[0]["threads"],
                "max_abs_loss_diff": max(r.get("loss_diff", 0.0) for r in rs),
                "max_abs_val_r2_diff": max(r.get("r2_diff", 0.0) for r in rs),
            }
        )
    base, plain_runs = rows[0], runs[rows[0]["variant"]]
    for row in rows:
        rs = runs[row["variant"]]
        row["ratio"] = row["epoch_s"] / base["epoch_s"]
        row["ratio_cpu"] = row["epoch_cpu_s"] / base["epoch_cpu_s"]
        row["ratio_min"] = row["epoch_s_min"] / base["epoch_s_min"]
        # paired: each round's variants ran back to back, so they saw about the same load
        per_round = [
            (_round_median(r, warmup, "total"), _round_median(p, warmup, "total"))
            for r, p in zip(rs, plain_runs, strict=True)
        ]
        train_round = [
            (_round_median(r, warmup, "train"), _round_median(p, warmup, "train"))
            for r, p in zip(rs, plain_runs, strict=True)
        ]
        row["ratio_paired"] = _median([v / p for v, p in per_round])
        row["overhead_s_per_epoch"] = _median([v - p for v, p in per_round])
        row["overhead_ms_per_step"] = (
            1000 * _median([v - p for v, p in train_round]) / max(steps_per_epoch, 1)
        )
        row["val_overhead_s"] = row["val_s"] - base["val_s"]
    return rows


def _round_median(run: dict, warmup: int, key: str) -> float:
    return _median([e[key] for e in run["timer"].epochs()[warmup:]])


def table(rows: list[dict]) -> str:
    head = (
        "| loop | train s/epoch | val s/epoch | epoch s | epoch s (min) | epoch CPU-s | ratio (medians) "
        "| ratio (paired) | ratio (min) | overhead s/epoch (paired) | overhead ms/step (paired, train) "
        "| setup+teardown s | max abs Δ loss | max abs Δ val R² |"
    )
    lines = [head, "|---" + "|---:" * 13 + "|"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['train_s']:.3f} | {r['val_s']:.3f} | {r['epoch_s']:.3f} | {r['epoch_s_min']:.3f} "
            f"| {r['epoch_cpu_s']:.3f} | {r['ratio']:.3f} | {r['ratio_paired']:.3f} | {r['ratio_min']:.3f} "
            f"| {r['overhead_s_per_epoch']:+.4f} | {r['overhead_ms_per_step']:+.2f} | {r['setup_s']:.2f} "
            f"| {r['max_abs_loss_diff']:.2e} | {r['max_abs_val_r2_diff']:.2e} |"
        )
    return "\n".join(lines)


def measure(h, variants: list[str], n_epochs: int, validate: bool, repeats: int):
    """Every variant ``repeats`` times (order rotated); losses compared with the plain loop's."""
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for rep in range(repeats):
        order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
        done = {}
        for v in order:
            print(f"{type(h).__name__} round {rep + 1}/{repeats}: {v}", file=sys.stderr, flush=True)
            if v == "plain":
                done[v] = run_plain(h, n_epochs, validate)
            else:
                done[v] = run_lightning(h, n_epochs, validate, defaults=v == "lightning_defaults")
        ref = done["plain"]
        for v, r in done.items():
            if len(r["losses"]) != len(ref["losses"]) or len(r["val_r2"]) != len(ref["val_r2"]):
                raise RuntimeError(
                    f"{v} ran {len(r['losses'])} steps / {len(r['val_r2'])} validations, "
                    f"plain {len(ref['losses'])} / {len(ref['val_r2'])}"
                )
            r["loss_diff"] = max(
                (abs(a - b) for a, b in zip(r["losses"], ref["losses"], strict=True)), default=0.0
            )
            r["r2_diff"] = max(
                (abs(a - b) for a, b in zip(r["val_r2"], ref["val_r2"], strict=True)), default=0.0
            )
            runs[v].append(r)
    plains = runs["plain"]
    self_loss = max(
        (abs(a - b) for r in plains[1:] for a, b in zip(r["losses"], plains[0]["losses"], strict=True)),
        default=None,
    )
    self_r2 = max(
        (abs(a - b) for r in plains[1:] for a, b in zip(r["val_r2"], plains[0]["val_r2"], strict=True)),
        default=None,
    )
    return runs, self_loss, self_r2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n-pois", type=int, default=2000, help="POIs of the embedded world (data.n_pois)")
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs per variant")
    ap.add_argument("--warmup", type=int, default=1, help="untimed epochs before them")
    ap.add_argument("--repeats", type=int, default=3, help="runs of every variant, order rotated each time")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--defaults", action="store_true", help="also run Lightning with its default callbacks and logging"
    )
    ap.add_argument(
        "--null-steps",
        type=int,
        default=500,
        help="steps per epoch of the null-step calibration (0: skip it)",
    )
    ap.add_argument("--no-val", action="store_true", help="no validation pass")
    ap.add_argument("--out", type=Path, default=OUT, help="JSON report")
    args = ap.parse_args(argv)
    _import_lightning()  # fail before the world is built; it also sets its loggers' levels
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available.*")

    hw = hardware(args.threads)
    h = Harness(args.n_pois, args.seed)
    n_epochs = args.warmup + args.epochs
    steps = len(h.steps(0))
    validate = not args.no_val
    variants = list(VARIANTS if args.defaults else VARIANTS[:2])
    runs, self_loss, self_r2 = measure(h, variants, n_epochs, validate, args.repeats)
    rows = summarize(runs, args.warmup, steps)
    null_rows = []
    if args.null_steps > 0:
        null_runs, _, _ = measure(NullHarness(h, args.null_steps), variants, n_epochs, validate, args.repeats)
        null_rows = summarize(null_runs, args.warmup, args.null_steps)

    g = h.prep
    in_step = ", ".join(f"{r['variant']} {r['threads_in_step']}" for r in rows)
    print(
        f"hardware: {hw['cpu']}, {hw['cores']} cores ({hw['cores_usable']} usable), torch {hw['torch']}, "
        f"lightning {hw['lightning']}, python {hw['python']}, torch threads {args.threads} "
        f"(in the step: {in_step})"
    )
    print(
        f"setup: embedded world, {args.n_pois} POIs (prepare {h.prepare_s:.1f} s), {len(g.groups)} state groups, "
        f"{len(g.split.pairs['train'])} training pairs, {steps} optimizer steps per epoch "
        f"({h.n_folds} hiding folds per group, hide_by={h.cfg.split.hiding}), {len(h.val_groups)} validation groups, "
        f"{len(g.split.pairs['val'])} val pairs; {args.warmup} warm-up + {args.epochs} timed epochs x {args.repeats} "
        f"repeat(s) per variant, medians over the timed epochs"
    )
    if self_loss is not None:
        print(
            f"plain loop against itself (run-to-run, {args.repeats} runs): max abs Δ loss {self_loss:.2e}, "
            f"max abs Δ val R² {self_r2:.2e}"
        )
    print()
    print(table(rows))
    if null_rows:
        print(
            f"\nthe same loops around a null step (Linear(16, 1) on 8 rows; {args.null_steps} steps per epoch, "
            f"one validation batch): the loops' own cost"
        )
        print()
        print(table(null_rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "hardware": hw,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "steps_per_epoch": steps,
        "plain_run_to_run": {"max_abs_loss_diff": self_loss, "max_abs_val_r2_diff": self_r2},
        "rows": rows,
        "null_steps": args.null_steps,
        "null_rows": null_rows,
        "epochs": {v: [r["timer"].epochs() for r in rs] for v, rs in runs.items()},
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Progress of one training on stderr: a live rich bar on a terminal, plain lines elsewhere.

On a terminal (stderr is a TTY) :class:`EpochProgress` shows one rich progress bar with the
epoch, the last loss and validation figure, the elapsed time (ticking while an epoch runs) and
an ETA. Anywhere else (CI logs, ``2> file``, pipes) it prints plain lines, at most one every
``min_interval_s`` seconds plus the first and the last epoch, so a log of a 500-epoch run stays
readable; a line is also printed when an epoch has been running for ``heartbeat_s`` seconds, so
a long epoch is never silent::

    [covisit_naics_sage] epoch 3/40  loss 0.4121  val_r2 0.5127 (best @ 3)  1.2 s/epoch  elapsed 3.9 s  ETA 44 s

Nothing is written to stdout: stdout carries a command's result only.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

PLAIN_INTERVAL_S = 5.0  # fewest seconds between two plain epoch lines (first and last always shown)
HEARTBEAT_S = 60.0  # a plain line when an epoch has run this long without one
ETA_WINDOW = 5  # epochs averaged for the ETA


def format_seconds(s: float) -> str:
    """``4.2 s``, ``42 s``, ``3m05s``, ``1h02m`` (``?`` for an unknown time)."""
    if not math.isfinite(s):
        return "?"
    s = max(0.0, s)
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


@contextlib.contextmanager
def phase(text: str, enabled: bool = True) -> Iterator[None]:
    """Show a step that may take a while on stderr: a spinner on a terminal, else a plain
    ``geograph: TEXT ...`` line; either way ``geograph: TEXT: 2.1 s`` when it ends. Nothing
    when not ``enabled`` (``--quiet``, ``train.progress: false``, ranks other than 0).

    Example::

        with phase("preparing data"):
            prep = prepare(cfg)
    """
    if not enabled:
        yield
        return
    from rich.console import Console

    con = Console(stderr=True)
    t0 = time.perf_counter()
    if con.is_terminal:
        with con.status(text):
            yield
    else:
        print(f"geograph: {text} ...", file=sys.stderr, flush=True)
        yield
    print(f"geograph: {text}: {format_seconds(time.perf_counter() - t0)}", file=sys.stderr, flush=True)


class EpochProgress:
    """Per-epoch progress of one training (a context manager; see the module docstring).

    Args:
        label: Shown first (the config name).
        epochs: Last epoch.
        first_epoch: The first epoch this process trains (after a resumed checkpoint's epoch).
        monitor: Validation metric shown (default: the first ``val_`` key of an epoch's metrics).
        live: Rich bar (True) or plain lines (False); default: whether stderr is a terminal.
        min_interval_s: Fewest seconds between plain lines (default :data:`PLAIN_INTERVAL_S`).
        heartbeat_s: Seconds an epoch may run before a plain "running" line (default
            :data:`HEARTBEAT_S`; 0: none).
        stream: Where plain lines go (default ``sys.stderr`` at the time of each line).
    """

    def __init__(
        self,
        label: str,
        epochs: int,
        *,
        first_epoch: int = 1,
        monitor: str | None = None,
        live: bool | None = None,
        min_interval_s: float = PLAIN_INTERVAL_S,
        heartbeat_s: float = HEARTBEAT_S,
        stream: TextIO | None = None,
    ) -> None:
        self.label, self.epochs, self.first_epoch, self.monitor = label, epochs, first_epoch, monitor
        self.live = sys.stderr.isatty() if live is None else live
        self.min_interval_s, self.heartbeat_s, self._stream = min_interval_s, heartbeat_s, stream
        self._durations: list[float] = []
        self._epoch = first_epoch - 1  # last finished epoch
        self._t0 = self._last_line = time.perf_counter()
        self._pending: str | None = None  # the last epoch line when rate limiting held it back
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Any = None
        self._task: Any = None

    def __repr__(self) -> str:
        return f"EpochProgress({self.label!r}, epochs={self.epochs}, live={self.live})"

    def __enter__(self) -> EpochProgress:
        self._t0 = self._last_line = time.perf_counter()
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("epoch {task.completed}/{task.total}"),
                TextColumn("{task.fields[figures]}"),
                TimeElapsedColumn(),
                TextColumn("ETA {task.fields[eta]}"),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                self.label, total=self.epochs, completed=self._epoch, figures="", eta="?"
            )
        elif self.heartbeat_s > 0:
            self._thread = threading.Thread(target=self._heartbeat, name="geograph-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.stop()
        elif self._pending is not None:  # the last trained epoch is always shown
            self._write(self._pending)

    def figures(self, metrics: dict[str, float], best_epoch: int) -> str:
        """``loss 0.4121  val_r2 0.5127 (best @ 3)`` of one epoch."""
        key = self.monitor or next((k for k in metrics if k.startswith("val_")), None)
        val = f"  {key} {metrics[key]:.4f}" if key is not None and key in metrics else ""
        best = f" (best @ {best_epoch})" if best_epoch else ""
        return f"loss {metrics.get('train_loss', math.nan):.4f}{val}{best}"

    def eta_s(self) -> float:
        """Seconds left: the mean of the last :data:`ETA_WINDOW` epochs times the epochs left."""
        if not self._durations:
            return math.nan
        recent = self._durations[-ETA_WINDOW:]
        return sum(recent) / len(recent) * (self.epochs - self._epoch)

    def update(self, epoch: int, metrics: dict[str, float], best_epoch: int, epoch_s: float) -> None:
        """Record a finished epoch and show it (plain lines: unless one was shown too recently)."""
        with self._lock:
            self._epoch = epoch
            self._durations.append(epoch_s)
            figures, eta = self.figures(metrics, best_epoch), format_seconds(self.eta_s())
            if self._bar is not None:
                self._bar.update(self._task, completed=epoch, figures=figures, eta=eta)
                return
            now = time.perf_counter()
            line = (
                f"[{self.label}] epoch {epoch}/{self.epochs}  {figures}  {format_seconds(epoch_s)}/epoch  "
                f"elapsed {format_seconds(now - self._t0)}  ETA {eta}"
            )
            if epoch in (self.first_epoch, self.epochs) or now - self._last_line >= self.min_interval_s:
                self._write(line)
            else:
                self._pending = line

    def _write(self, line: str) -> None:
        print(line, file=self._stream or sys.stderr, flush=True)
        self._last_line = time.perf_counter()
        self._pending = None

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(self.heartbeat_s, 5.0)):
            with self._lock:
                now = time.perf_counter()
                if now - self._last_line < self.heartbeat_s or self._epoch >= self.epochs:
                    continue
                running = now - self._t0 - sum(self._durations)
                self._write(
                    f"[{self.label}] epoch {self._epoch + 1}/{self.epochs} running for {format_seconds(running)}  "
                    f"elapsed {format_seconds(now - self._t0)}"
                )


__all__ = ["ETA_WINDOW", "HEARTBEAT_S", "PLAIN_INTERVAL_S", "EpochProgress", "format_seconds"]

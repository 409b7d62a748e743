"""Run tags: where a run's code, data and hardware came from.

Every run opened through :func:`geograph.tracking.start_run` carries :func:`default_tags`
(git commit, Python and package versions, device, torch's intra-op thread count, the malloc the
process runs with; the thread count is set again when the run ends, so a count changed by the training shows). Training
runs add :data:`TAG_DATA_FINGERPRINT` (a content hash of the data read) and
:data:`TAG_CONFIG_HASH`, the two tags a suite uses to skip runs that are already done.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from geograph.config import config_hash as _config_hash

# --- tag keys ---------------------------------------------------------------------------
TAG_PREFIX = "geograph."
TAG_CONFIG_HASH = "geograph.config_hash"
TAG_DATA_FINGERPRINT = "geograph.data_fingerprint"
TAG_CONFIG_NAME = "geograph.config_name"
TAG_GIT_COMMIT = "geograph.git_commit"
TAG_GIT_DIRTY = "geograph.git_dirty"
TAG_DEVICE = "geograph.device"
TAG_TORCH_THREADS = "geograph.torch_threads"  # torch.get_num_threads(), logged with every run
TAG_MKL_CBWR = "geograph.mkl_cbwr"  # MKL's reproducibility mode (geograph.utils.determinism)
TAG_MALLOC = "geograph.malloc"  # the process's malloc: glibc, tcmalloc, system (geograph.utils.memory)
# "suite" (a suite's parent run), "summary" (a comparison report); absent on training runs
TAG_RUN_KIND = "geograph.run_kind"
TAG_SUITE = "geograph.suite"
TAG_SUITE_HASH = "geograph.suite_hash"
TAG_COMPARED_RUNS = "geograph.compared_runs"  # on a summary run: hash of the run ids it compared
TAG_TASK = "geograph.task"
TAG_FAST = "geograph.fast"
TAG_VERSION_PREFIX = "geograph.version."

RUN_KIND_SUITE = "suite"
RUN_KIND_SUMMARY = "summary"

# Packages whose versions are tagged on every run (distribution names), and Python's.
TRACKED_PACKAGES = ("torch", "torch_geometric", "mlflow", "polars", "numpy", "scikit-learn", "geograph")
PYTHON_VERSION_TAG = TAG_VERSION_PREFIX + "python"

NO_DATA = "none"  # fingerprint of a config that names no data file
_FINGERPRINT_LEN = 16
_CHUNK = 1 << 20


def _sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()[:_FINGERPRINT_LEN]


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace (tuples become lists, other objects ``str``)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit hash of a config mapping (key order does not matter): the hash of
    :func:`canonical_json`, by :func:`geograph.config.config_hash`."""
    return _config_hash(config, length=_FINGERPRINT_LEN, default=str, compact=True)


def _hash_path(h: Any, path: Path) -> None:
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(child.relative_to(path).as_posix().encode("utf-8") + b"\0")
            _hash_file(h, child)
    else:
        h.update(path.name.encode("utf-8") + b"\0")
        _hash_file(h, path)


def _hash_file(h: Any, path: Path) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    h.update(b"\0")


def data_fingerprint(*sources: str | Path | bytes | Any) -> str:
    """Content hash of the data a run reads (16 hex digits; :data:`NO_DATA` when given nothing).

    Args:
        *sources: Files or folders (hashed by content; a folder by every file under it, by
            relative name), raw ``bytes``, or polars DataFrames (hashed via their Arrow IPC
            bytes, so stable for one polars version).

    Raises:
        FileNotFoundError: a path does not exist.
    """
    if not sources:
        return NO_DATA
    h = hashlib.sha256()
    for src in sources:
        if isinstance(src, bytes):
            h.update(src)
        elif isinstance(src, (str, Path)):
            path = Path(src)
            if not path.exists():
                raise FileNotFoundError(f"data fingerprint: {path} does not exist")
            _hash_path(h, path)
        elif hasattr(src, "write_ipc"):
            buf = io.BytesIO()
            src.write_ipc(buf, compression="uncompressed")
            h.update(buf.getvalue())
        else:
            raise TypeError(
                f"data fingerprint: expected a path, bytes or polars DataFrame, got {type(src).__name__}"
            )
        h.update(b"\1")
    return h.hexdigest()[:_FINGERPRINT_LEN]


# Config keys that name outputs, not inputs: their paths never enter the data fingerprint
# (an output folder created by the first run would otherwise change the fingerprint).
OUTPUT_KEY_PARTS = (
    "out",
    "checkpoint",
    "ckpt",
    "cache",
    "log",
    "report",
    "save",
    "artifact",
    "mlruns",
    "tracking",
)


def data_paths_in(config: Mapping[str, Any], exclude: Iterable[str | Path] = ()) -> list[Path]:
    """Every string value in ``config`` (searched recursively) that names an existing file or folder.

    Used by suites to fingerprint the data a config reads without knowing its schema.
    Values under keys that look like outputs (see :data:`OUTPUT_KEY_PARTS`) are ignored, as are
    the working directory itself and ``exclude``.
    """
    skip = {Path(p).resolve() for p in exclude} | {Path.cwd().resolve()}
    found: dict[Path, None] = {}

    def walk(v: Any, key: str) -> None:
        if any(part in key.lower() for part in OUTPUT_KEY_PARTS):
            return
        if isinstance(v, Mapping):
            for k, x in v.items():
                walk(x, str(k))
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x, key)
        elif isinstance(v, str) and v and len(v) < 4096 and "\n" not in v:
            p = Path(v)
            try:
                if p.exists() and p.resolve() not in skip:
                    found[p] = None
            except OSError:
                pass

    walk(config, "")
    return sorted(found, key=lambda p: p.as_posix())


@functools.lru_cache(maxsize=8)
def git_state(repo_dir: str | None = None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout holding ``repo_dir`` (default: geograph's source)."""
    if repo_dir is None:
        repo_dir = str(Path(__file__).resolve().parents[2])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def package_versions(packages: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (``"not installed"`` for missing ones)."""
    out: dict[str, str] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def current_device() -> str:
    """``"cuda:<name>"`` when torch is loaded and sees a GPU, else ``"cpu"``.

    torch is only consulted when something already imported it, so tagging a run never
    pays for a torch import.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return "cpu"


def thread_tags() -> dict[str, str]:
    """``{geograph.torch_threads: N, geograph.mkl_cbwr: MODE}`` when torch is loaded, else ``{}``.

    Like :func:`current_device`, torch is only consulted when something already imported it.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    return {TAG_TORCH_THREADS: str(torch.get_num_threads()), TAG_MKL_CBWR: os.environ.get("MKL_CBWR", "unset")}


def default_tags(device: str | None = None) -> dict[str, str]:
    """Tags for every run: git commit (+ dirty flag), device, torch thread count, malloc, Python
    and package versions."""
    from geograph.utils.memory import allocator

    commit, dirty = git_state()
    tags = {TAG_DEVICE: device or current_device(), **thread_tags(), TAG_MALLOC: allocator()}
    if commit is not None:
        tags[TAG_GIT_COMMIT] = commit
        tags[TAG_GIT_DIRTY] = str(dirty).lower()
    tags[PYTHON_VERSION_TAG] = platform.python_version()
    for name, version in package_versions().items():
        tags[TAG_VERSION_PREFIX + name] = version
    return tags


def run_tags(
    *,
    device: str | None = None,
    data_fingerprint: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """:func:`default_tags` plus the data fingerprint and config hash when given."""
    tags = default_tags(device)
    if data_fingerprint is not None:
        tags[TAG_DATA_FINGERPRINT] = data_fingerprint
    if config is not None:
        tags[TAG_CONFIG_HASH] = config_hash(config)
    return tags


__all__ = [
    "TAG_COMPARED_RUNS",
    "TAG_CONFIG_HASH",
    "TAG_CONFIG_NAME",
    "TAG_DATA_FINGERPRINT",
    "TAG_DEVICE",
    "TAG_FAST",
    "TAG_MALLOC",
    "TAG_GIT_COMMIT",
    "TAG_GIT_DIRTY",
    "TAG_RUN_KIND",
    "TAG_SUITE",
    "TAG_SUITE_HASH",
    "TAG_TASK",
    "TAG_TORCH_THREADS",
    "TAG_VERSION_PREFIX",
    "PYTHON_VERSION_TAG",
    "TRACKED_PACKAGES",
    "RUN_KIND_SUITE",
    "RUN_KIND_SUMMARY",
    "NO_DATA",
    "canonical_json",
    "config_hash",
    "current_device",
    "data_fingerprint",
    "data_paths_in",
    "default_tags",
    "git_state",
    "package_versions",
    "run_tags",
    "thread_tags",
]

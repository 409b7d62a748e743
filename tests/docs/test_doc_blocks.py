"""Every shell and Python block of README.md and docs/**/*.md runs against the demo world.

One test per Markdown file and block group: ``test_doc_blocks[README.md-fast]`` runs the file's
fast blocks in order, ``test_doc_blocks[README.md-slow]`` (slow suite) runs all its runnable
blocks in order, fast ones included, since a slow block may use what an earlier block made.
Each test works in its own scratch folder holding the demo world (``geograph world --out
data/world``, made once per session), a fresh MLflow SQLite store at ``mlruns/mlflow.db``
(MLFLOW_TRACKING_URI points there), the repository's experiments/ and benchmarks/ (copied,
without benchmarks/out/), and ``.venv`` linked to the running interpreter's environment.
Markers and block syntax: tests/docs/doc_blocks.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from doc_blocks import DocBlock, DocBlockError, block_env, parse_blocks, run_block

REPO = Path(__file__).resolve().parents[2]
# generated pages (the co-visitation report) and the API reference hold no runnable examples
EXCLUDED_DIRS = ("docs/covisit_report", "docs/reference")
BLOCK_TIMEOUT_S = {"fast": 300.0, "slow": 1800.0}
BIN = Path(sys.executable).parent


def doc_files() -> list[Path]:
    """README.md and every Markdown file under docs/, minus the excluded folders."""
    files = [REPO / "README.md"] if (REPO / "README.md").is_file() else []
    for p in sorted((REPO / "docs").rglob("*.md")) if (REPO / "docs").is_dir() else []:
        rel = p.relative_to(REPO).as_posix()
        if not any(rel.startswith(d + "/") for d in EXCLUDED_DIRS):
            files.append(p)
    return files


def _cases() -> list:
    """One param per (file, group) with runnable blocks; a file whose markers cannot be read
    gets one 'fast' param that fails with the parse error."""
    cases = []
    for p in doc_files():
        rel = p.relative_to(REPO).as_posix()
        try:
            blocks = [b for b in parse_blocks(p.read_text(encoding="utf-8"), rel) if b.runnable]
        except DocBlockError as e:
            cases.append(pytest.param(rel, "fast", str(e), id=f"{rel}-fast"))
            continue
        if any(not b.slow for b in blocks):
            cases.append(pytest.param(rel, "fast", None, id=f"{rel}-fast"))
        if any(b.slow for b in blocks):
            cases.append(pytest.param(rel, "slow", None, id=f"{rel}-slow", marks=pytest.mark.slow))
    return cases


def blocks_of(rel: str, group: str) -> list[DocBlock]:
    """The blocks a group runs: the fast ones, or (slow) every runnable block, in file order."""
    blocks = [b for b in parse_blocks((REPO / rel).read_text(encoding="utf-8"), rel) if b.runnable]
    return [b for b in blocks if group == "slow" or not b.slow]


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo world (``geograph world`` defaults), written once per session."""
    root = tmp_path_factory.mktemp("doc_demo_world")
    subprocess.run(
        [sys.executable, "-m", "geograph", "world", "--out", "data/world"],
        cwd=root,
        check=True,
        capture_output=True,
        env=block_env(root, BIN),
    )
    return root / "data" / "world"


@pytest.fixture
def scratch(tmp_path: Path, demo_world: Path, empty_store_db: Path) -> Path:
    """A working folder for the blocks of one file: demo world, empty store, experiments/,
    benchmarks/ and .venv."""
    shutil.copytree(demo_world, tmp_path / "data" / "world")
    (tmp_path / "mlruns").mkdir()
    shutil.copyfile(empty_store_db, tmp_path / "mlruns" / "mlflow.db")
    shutil.copytree(REPO / "experiments", tmp_path / "experiments")
    # copied, not linked: a benchmark writes under its own folder (benchmarks/out/), and a doc
    # run must not replace the repository's raw results
    shutil.copytree(
        REPO / "benchmarks", tmp_path / "benchmarks", ignore=shutil.ignore_patterns("out", "__pycache__")
    )
    # the pages call the interpreter as `.venv/bin/python`, as in a checkout after `make`
    (tmp_path / ".venv").symlink_to(BIN.parent, target_is_directory=True)
    return tmp_path


@pytest.mark.parametrize(("rel", "group", "parse_error"), _cases())
def test_doc_blocks(rel: str, group: str, parse_error: str | None, scratch: Path) -> None:
    if parse_error is not None:
        pytest.fail(parse_error)
    env = block_env(scratch, BIN)
    blocks = blocks_of(rel, group)
    assert blocks, f"{rel}: no {group} blocks to run"
    for block in blocks:
        run_block(block, scratch, env, sys.executable, BLOCK_TIMEOUT_S[group])


def test_readme_is_checked() -> None:
    """README.md has fast blocks, so the default suite runs its tour."""
    readme = [c for c in _cases() if c.values[0] == "README.md"]
    assert [c.values[1] for c in readme][:1] == ["fast"], readme
    assert readme[0].values[2] is None, readme[0].values[2]

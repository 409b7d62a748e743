"""Fenced code blocks of the Markdown documentation, and how to run them.

A block tagged ``bash``, ``sh``, ``shell`` or ``console`` is shell, one tagged ``python`` (or
``py``) is Python; every other block (``text``, ``yaml``, ``toml``, ``json``, ``output``,
untagged) is shown, never run. In a shell block whose lines start with ``$ ``, only those lines
(and the lines a trailing backslash continues) are commands; the rest is the output they print.

An HTML comment on the line right before a block's opening fence (invisible on the rendered
page) marks it:

* ``<!-- doc-test: slow -->``: the block runs only in the slow suite (``pytest -m slow``).
* ``<!-- doc-test: skip REASON -->``: the block never runs inside the test suite (``make test``
  itself, ``make demo``, servers); the reason is required.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

SHELL_TAGS = frozenset({"bash", "sh", "shell", "console"})
PYTHON_TAGS = frozenset({"python", "py", "python3"})
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*doc-test:(?P<body>.*?)-->\s*$")
PROMPT = "$ "
# the last lines of a failing block's stderr / stdout put in the failure message
TAIL_LINES = 40


class DocBlockError(ValueError):
    """A doc-test marker or a fence that cannot be read; the message names file and line."""


@dataclass(frozen=True)
class DocBlock:
    """One fenced code block.

    Attributes:
        path: The Markdown file (as given to :func:`parse_blocks`).
        line: 1-based line of the opening fence.
        tag: The first word of the fence's info string, lower-cased ('' when untagged).
        code: The block's text, the fence's indentation removed.
        slow: Marked ``<!-- doc-test: slow -->``.
        skip: The reason of a ``<!-- doc-test: skip REASON -->`` marker, else None.
    """

    path: str
    line: int
    tag: str
    code: str
    slow: bool = False
    skip: str | None = None

    @property
    def kind(self) -> str | None:
        """'shell', 'python', or None for a block that is only shown."""
        if self.tag in SHELL_TAGS:
            return "shell"
        if self.tag in PYTHON_TAGS:
            return "python"
        return None

    @property
    def runnable(self) -> bool:
        """A shell or Python block without a skip marker."""
        return self.kind is not None and self.skip is None

    def script(self) -> str:
        """What runs: the Python code, or the shell commands with their ``$ `` prompts removed."""
        if self.kind != "shell":
            return self.code
        lines = self.code.splitlines()
        if not any(ln.startswith(PROMPT) or ln.rstrip() == "$" for ln in lines):
            return self.code
        commands: list[str] = []
        continued = False
        for ln in lines:
            if continued:
                commands.append(ln)
            elif ln.startswith(PROMPT):
                commands.append(ln[len(PROMPT) :])
            else:  # output printed by the command above
                continue
            continued = ln.rstrip().endswith("\\")
        return "\n".join(commands) + "\n"


def _marker(body: str, path: str, line: int) -> tuple[bool, str | None]:
    """(slow, skip reason) of one ``<!-- doc-test: ... -->`` comment."""
    words = body.strip().split(None, 1)
    if not words:
        raise DocBlockError(f"{path}:{line}: empty doc-test marker; expected 'slow' or 'skip REASON'")
    if words[0] == "slow" and len(words) == 1:
        return True, None
    if words[0] == "skip":
        if len(words) < 2 or not words[1].strip():
            raise DocBlockError(
                f"{path}:{line}: 'doc-test: skip' needs a reason, e.g. <!-- doc-test: skip starts a server -->"
            )
        return False, words[1].strip()
    raise DocBlockError(
        f"{path}:{line}: unknown doc-test marker {body.strip()!r}; expected 'slow' or 'skip REASON'"
    )


def parse_blocks(text: str, path: str = "<string>") -> list[DocBlock]:
    """The fenced code blocks of a Markdown text, in order.

    Args:
        text: Markdown source.
        path: Name used in error messages and stored on each block (default ``<string>``).

    Returns:
        Every fenced block, runnable or not.

    Raises:
        DocBlockError: a marker without a reason, an unknown marker, a marker not followed by a
            block on the next line, or a fence that is never closed.
    """
    lines = text.splitlines()
    blocks: list[DocBlock] = []
    pending: tuple[int, bool, str | None] | None = None  # marker line, slow, skip
    i = 0
    while i < len(lines):
        ln = lines[i]
        m = MARKER.match(ln)
        if m:
            if pending is not None:
                raise DocBlockError(f"{path}:{pending[0]}: doc-test marker is not followed by a code block")
            pending = (i + 1, *_marker(m.group("body"), path, i + 1))
            i += 1
            continue
        f = FENCE.match(ln)
        if f is None:
            if pending is not None:
                raise DocBlockError(
                    f"{path}:{pending[0]}: doc-test marker is not followed by a code block "
                    "(put it on the line right before the opening fence)"
                )
            i += 1
            continue
        indent, fence = f.group("indent"), f.group("fence")
        info = f.group("info").strip()
        tag = info.split()[0].strip("{}.").lower() if info else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = lines[j].strip()
            if close.startswith(fence[0] * len(fence)) and not close.strip(fence[0]):
                break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        else:
            raise DocBlockError(f"{path}:{i + 1}: code block opened here is never closed")
        slow, skip = (pending[1], pending[2]) if pending else (False, None)
        blocks.append(
            DocBlock(path=path, line=i + 1, tag=tag, code="\n".join(body) + "\n", slow=slow, skip=skip)
        )
        pending = None
        i = j + 1
    if pending is not None:
        raise DocBlockError(f"{path}:{pending[0]}: doc-test marker is not followed by a code block")
    return blocks


def _tail(text: str, n: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def run_block(block: DocBlock, cwd: Path, env: dict[str, str], python: str, timeout_s: float) -> None:
    """Run one block in ``cwd``: shell with ``bash -e``, Python with ``python`` as a script.

    Args:
        block: A runnable block.
        cwd: Working directory (the scratch folder shared by the blocks of one file).
        env: Environment of the process.
        python: The interpreter for Python blocks.
        timeout_s: Seconds before the block counts as failed.

    Raises:
        AssertionError: the block exited non-zero or ran past ``timeout_s``; the message names
            file, line and the tail of its stderr.
    """
    scripts = cwd / ".doc_blocks"
    scripts.mkdir(exist_ok=True)
    stem = f"{Path(block.path).stem}_{block.line}"
    if block.kind == "shell":
        script = scripts / f"{stem}.sh"
        cmd = ["bash", "-e", str(script)]
    else:
        script = scripts / f"{stem}.py"
        cmd = [python, str(script)]
    script.write_text(block.script())
    where = f"{block.path}:{block.line} ({block.tag} block)"
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        out = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise AssertionError(
            f"{where} ran past {timeout_s:.0f} s\n--- stderr (tail) ---\n{_tail(out)}"
        ) from None
    if proc.returncode != 0:
        raise AssertionError(
            f"{where} exited {proc.returncode}\n--- block ---\n{block.script().rstrip()}\n"
            f"--- stderr (tail) ---\n{_tail(proc.stderr)}\n--- stdout (tail) ---\n{_tail(proc.stdout, 10)}"
        )


def block_env(scratch: Path, bin_dir: Path) -> dict[str, str]:
    """The environment of the blocks: ``bin_dir`` first on PATH (so ``geograph`` resolves) and
    MLflow pointed at the scratch folder's store (the same place as the default store,
    ``mlruns/mlflow.db`` under the working directory)."""
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch / 'mlruns' / 'mlflow.db'}"
    env["COLUMNS"] = "120"
    env.pop("PYTHONPATH", None)
    return env

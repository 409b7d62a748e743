"""The Markdown block parser and runner of tests/docs/doc_blocks.py, on tiny strings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from doc_blocks import DocBlock, DocBlockError, block_env, parse_blocks, run_block

DOC = """\
# Title

```bash
geograph world --out data/world
```

Some text.

<!-- doc-test: slow -->
```python
print("hi")
```

<!-- doc-test: skip starts a server -->
```console
$ geograph ui
MLflow UI at http://127.0.0.1:5000
```

```yaml
a: 1
```

```
untagged
```

~~~sh
echo tilde
~~~
"""


def test_tags_kinds_lines_and_markers() -> None:
    blocks = parse_blocks(DOC, "doc.md")
    assert [(b.line, b.tag, b.kind) for b in blocks] == [
        (3, "bash", "shell"),
        (10, "python", "python"),
        (15, "console", "shell"),
        (20, "yaml", None),
        (24, "", None),
        (28, "sh", "shell"),
    ]
    assert [b.slow for b in blocks] == [False, True, False, False, False, False]
    assert [b.skip for b in blocks] == [None, None, "starts a server", None, None, None]
    assert [b.runnable for b in blocks] == [True, True, False, False, False, True]
    assert blocks[0].code == "geograph world --out data/world\n"
    assert blocks[0].path == "doc.md"


def test_prompt_lines_are_the_commands() -> None:
    b = DocBlock(
        path="x.md",
        line=1,
        tag="console",
        code="$ geograph graph \\\n    --data data/world\ntable row\n$ echo done\ndone\n",
    )
    assert b.script() == "geograph graph \\\n    --data data/world\necho done\n"
    plain = DocBlock(path="x.md", line=1, tag="bash", code="echo a\necho b\n")
    assert plain.script() == "echo a\necho b\n"


def test_indented_fence_and_longer_fence() -> None:
    text = "1. step\n\n    ```bash\n    echo one\n    ```\n\n````python\nx = '```'\n````\n"
    blocks = parse_blocks(text)
    assert [(b.line, b.tag, b.code) for b in blocks] == [
        (3, "bash", "echo one\n"),
        (7, "python", "x = '```'\n"),
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("<!-- doc-test: skip -->\n```bash\nmake test\n```\n", r"doc\.md:1: 'doc-test: skip' needs a reason"),
        (
            "<!-- doc-test: skip   -->\n```bash\nmake test\n```\n",
            r"doc\.md:1: 'doc-test: skip' needs a reason",
        ),
        ("x\n<!-- doc-test: fast -->\n```bash\nls\n```\n", r"doc\.md:2: unknown doc-test marker 'fast'"),
        ("<!-- doc-test: slow -->\n\n```bash\nls\n```\n", r"doc\.md:1: doc-test marker is not followed"),
        ("text\n<!-- doc-test: slow -->\n", r"doc\.md:2: doc-test marker is not followed"),
        ("a\n```bash\nls\n", r"doc\.md:2: code block opened here is never closed"),
    ],
)
def test_bad_markers_and_fences_name_file_and_line(text: str, match: str) -> None:
    with pytest.raises(DocBlockError, match=match):
        parse_blocks(text, "doc.md")


def test_failing_block_names_file_line_and_stderr(tmp_path: Path) -> None:
    env = block_env(tmp_path, Path(sys.executable).parent)
    ok = parse_blocks("```console\n$ echo made > out.txt\nmade\n```\n", "a.md")[0]
    run_block(ok, tmp_path, env, sys.executable, 60)
    assert (tmp_path / "out.txt").read_text() == "made\n"
    # a later block of the same file sees what the earlier one made
    py = parse_blocks("\n```python\nassert open('out.txt').read() == 'made\\n'\n```\n", "a.md")[0]
    run_block(py, tmp_path, env, sys.executable, 60)
    bad = parse_blocks("x\n\n```bash\necho first-line >&2\nfalse\necho never\n```\n", "b.md")[0]
    with pytest.raises(AssertionError, match=r"(?s)b\.md:3 \(bash block\) exited 1.*first-line") as e:
        run_block(bad, tmp_path, env, sys.executable, 60)
    assert "never" not in str(e.value).split("--- stderr")[1]
    bad_py = parse_blocks("```python\nraise SystemExit('boom')\n```\n", "c.md")[0]
    with pytest.raises(AssertionError, match=r"(?s)c\.md:1 \(python block\) exited 1.*boom"):
        run_block(bad_py, tmp_path, env, sys.executable, 60)

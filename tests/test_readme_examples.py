"""Every ```python block of README.md and docs/*.md runs, verbatim.

The convention for writers of the README and the docs:

- A block fenced as ```python is code a user may paste. The blocks of one file run in the order they
  appear, in one namespace (as a user pasting them one after another into one notebook would), in a
  fresh Python process per file, from the repository root, offline (``HF_HUB_OFFLINE=1``). So a later block may use what an earlier block of the same file defined, and every block must
  run offline on the shipped teaching models in a few seconds.
- A block fenced as ```python no-run is shown but not run. Only for code that cannot run here: a hub
  model (``kit.load("gpt2")``) or a GPU (``device="cuda"``); ``test_no_run_blocks_need_the_hub_or_a_gpu``
  refuses any other. A signature or a sketch that is not meant to run is not Python to paste: fence it
  as ```text.
- Other fences (```bash, ```text, ...) are not run.

A failure names the file and the line where the failing block starts, with Python's traceback,
whose line numbers are the file's own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the block's first code line
    info: str  # the fence's info string, e.g. "python" or "python no-run"
    code: str

    @property
    def language(self) -> str:
        return self.info.split()[0].lower() if self.info.split() else ""

    @property
    def runs(self) -> bool:
        return self.language == "python" and "no-run" not in self.info.split()[1:]

    @property
    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with their info strings (indentation of the fence removed)."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        body, j = [], i + 1
        while j < len(lines) and not re.match(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        if j == len(lines):
            raise ValueError(f"{path}:{i + 1}: a code fence is never closed")
        blocks.append(Block(path, i + 2, info, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


RUNNER = r"""
import json, sys, traceback
blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
for b in blocks:
    # pad with blank lines so that tracebacks give the Markdown file's own line numbers
    try:
        exec(compile("\n" * (b["line"] - 1) + b["code"], b["path"], "exec"), namespace)
    except BaseException:
        print(f"\nthe block at {b['where']} failed:\n", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
    print(f"ran {b['where']}")
"""


def run_blocks(blocks: list[Block], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``blocks`` in order in one namespace in a fresh, offline Python process at the repository root."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "MPLBACKEND": "Agg"}
    payload = [{"path": str(b.path), "line": b.line, "where": b.where, "code": b.code} for b in blocks]
    return subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(payload), capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=timeout)


# the extraction and the runner --------------------------------------------------------------------

def test_blocks_are_extracted_with_their_fences_and_lines(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("text\n```python\na = 1\n```\n\n1. a list\n\n   ```python no-run\n   kit.load('gpt2')\n   ```\n"
                  "````text\n```python\nnot a block\n```\n````\n")
    blocks = code_blocks(md)
    assert [(b.line, b.info, b.code, b.runs) for b in blocks] == [
        (3, "python", "a = 1\n", True),
        (9, "python no-run", "kit.load('gpt2')\n", False),
        (12, "text", "```python\nnot a block\n```\n", False),
    ]
    md.write_text("```python\nnever closed\n")
    with pytest.raises(ValueError, match="never closed"):
        code_blocks(md)


def test_runner_shares_one_namespace_and_names_the_failing_block(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("```python\nx = 41\n```\n\n```python\nassert x + 1 == 42\n```\n\n```python\n\nundefined_name\n```\n")
    blocks = [b for b in code_blocks(md) if b.runs]
    ok = run_blocks(blocks[:2], timeout=60)
    assert ok.returncode == 0, ok.stderr
    failed = run_blocks(blocks, timeout=60)
    assert failed.returncode == 1
    assert "the block at" in failed.stderr and "NameError" in failed.stderr
    assert f'File "{md}", line 11' in failed.stderr  # the Markdown file's own line


# the README and the docs --------------------------------------------------------------------------

def test_readme_has_the_quick_start_block():
    runnable = [b for b in code_blocks(ROOT / "README.md") if b.runs]
    assert runnable and 'kit.load("' in runnable[0].code


@pytest.mark.parametrize("path", [p for p in DOCS if any(b.runs for b in code_blocks(p))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run_verbatim(path):
    blocks = [b for b in code_blocks(path) if b.runs]
    result = run_blocks(blocks)
    if result.returncode != 0:
        pytest.fail(f"{path.relative_to(ROOT)}:\n{result.stdout}\n{result.stderr[-6000:]}", pytrace=False)
    assert result.stdout.count("ran ") == len(blocks)


def test_no_run_blocks_need_the_hub_or_a_gpu():
    from kit.models import models

    shipped = set(models())
    for path in DOCS:
        for b in code_blocks(path):
            if b.language != "python" or b.runs:
                continue
            loads = set(re.findall(r"""load\(\s*["']([^"']+)["']""", b.code))
            hub = bool(loads - shipped) or "from_pretrained" in b.code
            gpu = "cuda" in b.code
            assert hub or gpu, (f"{b.where}: a `python no-run` block must need a hub model or a GPU; this one "
                                "can run here, so fence it as ```python (or as ```text if it is not code to run)")


def test_quick_start_states_the_measured_figures():
    # the Quick start's comments state what its last lines give on the shipped models
    import kit

    readme = (ROOT / "README.md").read_text()
    model = kit.load("facts-4l", device="cpu")
    top = model.tokenizer.decode(model.trace("The capital of Fusuvaria is", capture=[]).logits[0, -1].argmax())
    assert f"# {top!r}: the capital it memorised" in readme
    induction = kit.load("induction-2l", device="cpu")
    seq, ti = "ba ke po mu ti ba ke po mu", induction.tokenizer.convert_tokens_to_ids("ti")
    clean = induction.trace(seq, capture=[]).logits[0, -1].softmax(-1)[ti]
    ablated = induction.trace(seq, capture=[], interventions=[kit.Ablate(layer=1, head=0)]).logits[0, -1].softmax(-1)[ti]
    assert f"# {clean:.2f} -> {ablated:.2f}: L1H0 is its induction head" in readme
    assert clean > 0.5 and ablated < clean / 2  # the head does the copying: not a tie

"""The README's tour runs as written: its ``bash`` blocks, in order, in one bash process (as in one terminal), in an
empty folder with a fresh state dir.

The tour is everything from "## A tour by role" up to "## Going further", plus the offline "Bring your own
data" and "The task as a file" blocks of "Going further". The script runs under ``set -euo pipefail``, so a
command that fails, or a tour that names a command, option or file that does not exist, fails the test with
its block and output. The services the tour starts are stopped afterwards whatever
happened."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```bash\n(.*?)^```$", re.MULTILINE | re.DOTALL)

pytestmark = [pytest.mark.slow]


def _section(text: str, start: str, end: str) -> str:
    i = text.index(start)
    j = text.index(end, i + len(start))
    return text[i:j]


def tour_blocks(text: str) -> list[str]:
    """The bash blocks the test runs, in README order."""
    blocks = BLOCK.findall(_section(text, "## A tour by role", "## Going further"))
    further = _section(text, "## Going further", "### Bring your own model")
    return blocks + BLOCK.findall(further)


def test_the_tour_is_in_role_order_and_has_blocks() -> None:
    text = README.read_text(encoding="utf-8")
    tour = _section(text, "## A tour by role", "## Going further")
    headings = re.findall(r"^### (.+)$", tour, re.MULTILINE)
    assert headings[:5] == ["Operator: local infrastructure", "Consortium administrator",
                            "Participant (a hospital, a bank)", "Aggregator", "Auditor"]
    assert len(tour_blocks(text)) >= 10


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    blocks = tour_blocks(README.read_text(encoding="utf-8"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDCHAIN_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir()
    work = tmp_path / "tour"
    work.mkdir()
    # one bash process, as in one terminal: a background agent of one block is what a later `wait` waits for
    script = "set -euo pipefail\n" + "".join(
        f'echo "@@block {n} $(date +%s.%N)" >&2\n{block}\n' for n, block in enumerate(blocks, start=1)
    ) + 'echo "@@block end $(date +%s.%N)" >&2\n'
    try:
        proc = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=1500)
    finally:
        for service in ("devnet", "ipfs"):
            subprocess.run(["fedchain", service, "stop"], cwd=work, env=env, capture_output=True, timeout=120)
    marks = [line.split() for line in proc.stderr.splitlines() if line.startswith("@@block ")]
    print("\n".join(f"block {a[1]}: {float(b[2]) - float(a[2]):.1f} s" for a, b in itertools.pairwise(marks)))
    last = marks[-1][1] if marks else "1"
    assert proc.returncode == 0 and last == "end", (
        f"README tour block {last} exited {proc.returncode}:\n{blocks[int(last) - 1] if last != 'end' else ''}"
        f"\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
    )
    assert (work / ".fedchain" / "audit.html").is_file()
    assert (work / ".fedchain" / "model.safetensors").is_file()
    assert (work / "consortium" / "hospital_b.npz").is_file()

"""Runs the forge unit, fuzz and invariant suite of the contracts (contracts/test/) offline, with the
pinned solc-js behind hardhat-local/solc-lookalike.js (configured in foundry.toml), so that the
Python test run covers the Solidity tests too."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]

FORGE = REPO_ROOT / "hardhat-local" / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"
FUZZ_RUNS = 128
INVARIANT_RUNS = 32
INVARIANT_DEPTH = 40


def test_forge_suite_passes() -> None:
    assert FORGE.is_file(), f"forge is not installed at {FORGE}; run ./scripts/setup"
    env = {
        **os.environ,
        "FOUNDRY_FUZZ_RUNS": str(FUZZ_RUNS),
        "FOUNDRY_INVARIANT_RUNS": str(INVARIANT_RUNS),
        "FOUNDRY_INVARIANT_DEPTH": str(INVARIANT_DEPTH),
        "FOUNDRY_DISABLE_NIGHTLY_WARNING": "1",
        "NO_COLOR": "1",
    }
    proc = subprocess.run(
        [str(FORGE), "test", "--offline", "--threads", "1"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-6000:]
    summary = re.search(r"(\d+) tests passed, (\d+) failed, (\d+) skipped", report)
    assert summary is not None, report[-3000:]
    passed, failed, skipped = map(int, summary.groups())
    assert (failed, skipped) == (0, 0)
    assert passed >= 40, f"only {passed} forge tests ran"
    assert "invariant_noDoubleCommit" in report and "testFuzz_commitOnlyUpToDeadline" in report

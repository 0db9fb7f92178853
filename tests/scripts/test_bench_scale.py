"""scripts/bench_scale.py's helpers: the memory of a process tree read from /proc, and the document its runs make.
The benchmark itself is a thousand participants on the ledger: not a test."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_scale.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_memory_of_a_process_tree_counts_its_children() -> None:
    bench = load()
    child = subprocess.Popen([sys.executable, "-c", "b = bytearray(200 * 2**20); import time; time.sleep(30)"])
    try:
        import time

        for _ in range(100):  # until the child holds its 200 MiB
            if bench._tree_rss_kib(child.pid) > 190 * 1024:
                break
            time.sleep(0.05)
        assert bench._tree_rss_kib(child.pid) > 190 * 1024
        import os

        assert bench._tree_rss_kib(os.getpid()) >= bench._tree_rss_kib(child.pid) + 10 * 1024  # this process too
    finally:
        child.kill()
        child.wait()


def _run(n: int, signed: bool, gas: dict[str, float], included: int | None = None) -> dict[str, Any]:
    return {"n": n, "signed": signed, "round_seconds": n / 10, "peak_rss_mib": n * 4.0,
            "gas_per_round": int(sum(gas.values())), "gas_by_function_per_round": gas,
            "included": [included if included is not None else n], "audit_ok": True}


def test_the_document_has_the_issue_keys_and_judges_the_goals() -> None:
    bench = load()
    flat = {"openSignedRound": 113_000.0, "postCommitmentSet": 86_000.0, "commitUpdate": 0.0, "finalizeRound": 158_000.0}
    onchain = {n: _run(n, False, {"openRound": 88_000.0, "commitUpdate": 38_263.0 * n, "finalizeRound": 158_000.0})
               for n in (10, 100)}
    signed = {n: _run(n, True, flat) for n in (10, 100, 1000)}

    doc = bench.summarise(onchain, signed, 1)

    for key in ("round_seconds_n10", "round_seconds_n100", "round_seconds_n1000", "gas_per_round_n100_onchain",
                "gas_per_round_n100_batched", "peak_rss_mib_n1000"):
        assert key in doc, key
    assert doc["round_mode"] == {"n10": "onchain", "n100": "onchain", "n1000": "signed"}
    assert doc["gas_per_participant_n100_batched"] == 860.0
    assert doc["batched_gas_spread"] == 0.0 and doc["met"] is True

    signed[1000] = _run(1000, True, flat, included=999)  # one left out of the thousand
    assert bench.summarise(onchain, signed, 1)["goals"]["thousand_participants_in_a_round"] is False

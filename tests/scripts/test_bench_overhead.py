"""scripts/bench_overhead.py's measuring helpers: the CPU of the processes a run starts, read from /proc by
kind, and the profile summary. The benchmark itself is minutes of MNIST on the ledger: not a test."""

from __future__ import annotations

import cProfile
import importlib.util
import io
import pstats
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_overhead.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_overhead", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_cpu_of_a_child_process_is_counted_under_its_kind() -> None:
    bench = load()
    busy = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", busy, "participant"])  # ' participant ' in its command line
    try:
        deadline = time.monotonic() + 20
        seen = bench.descendants_cpu()
        while seen.get("participant processes", 0.0) < 0.4 and time.monotonic() < deadline:
            time.sleep(0.1)
            seen = bench.descendants_cpu()
    finally:
        child.kill()
        child.wait()
    assert seen.get("participant processes", 0.0) >= 0.4
    assert seen.get("participant processes", 0.0) < 30  # the child's, not every process of the machine


def test_the_profile_summary_names_the_function_that_took_the_time() -> None:
    bench = load()

    def spin() -> None:
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass

    profiler = cProfile.Profile()
    profiler.enable()
    spin()
    profiler.disable()
    top = bench.profile_top(pstats.Stats(profiler, stream=io.StringIO()), 5)
    assert any("(spin)" in row["function"] and float(row["cumulative_s"]) >= 0.15 for row in top["by_cumulative"])
    assert len(top["by_own"]) <= 5

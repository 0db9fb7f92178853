"""scripts/bench_vs_flower.py: its ratio arithmetic and goal flags, and the document a run prints without Flower
(Flower's own virtualenv is a benchmark dependency, not a test one). No timed assertion: the figures are the
benchmark's to report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_vs_flower.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_vs_flower", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_round_time_is_the_mean_of_the_rounds_after_the_first() -> None:
    bench = load()
    assert bench.steady_mean([30.0, 1.0, 2.0, 3.0]) == 2.0
    assert bench.steady_mean([4.0]) == 4.0


def test_ratios_and_goal_flags_come_from_the_raw_figures() -> None:
    bench = load()
    report = {"fedchain_ledger_round_s": 3.0, "flower_round_s": 2.0, "fedchain_memory_round_s": 0.5,
              "fedchain_ledger_command_s": 90.0, "flower_command_s": 60.0, "fedchain_memory_command_s": 6.0,
              "fedchain_ledger_final_accuracy": 0.93, "fedchain_memory_final_accuracy": 0.94,
              "flower_final_accuracy": 0.96}
    out = bench.compare(report, None, None)
    assert out["round_ratio_vs_flower"] == 1.5 and out["met"]["round_ratio"] is True
    assert out["command_ratio_vs_flower"] == 1.5 and out["met"]["command_ratio"] is False
    assert out["memory_round_ratio_vs_flower"] == 0.25 and out["ledger_round_ratio_vs_memory"] == 6.0
    assert out["final_accuracy_spread"] == 0.03 and out["accuracies_close"] is False


def test_a_side_left_out_leaves_its_ratios_and_flags_empty() -> None:
    bench = load()
    out = bench.compare({"fedchain_memory_round_s": 0.5, "fedchain_memory_final_accuracy": 0.9}, None, None)
    assert out["round_ratio_vs_flower"] is None and out["command_ratio_vs_flower"] is None
    assert out["met"] == {"round_ratio": None, "command_ratio": None}
    assert out["final_accuracy_spread"] == 0.0


def test_a_run_without_flower_prints_one_document_with_the_memory_figures(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load()
    rc = bench.main(["--json", "--clients", "3", "--rounds", "2", "--skip-flower", "--skip-ledger"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0  # no goal could be judged, and one accuracy is within any spread of itself
    assert report["clients"] == 3 and report["rounds"] == 2 and report["cores_fedchain_memory"] == 1
    assert len(report["fedchain_memory_round_s_per_round"]) == 2
    assert report["fedchain_memory_round_s"] == report["fedchain_memory_round_s_per_round"][1]
    assert 0.5 < report["fedchain_memory_final_accuracy"] <= 1.0
    assert report["fedchain_memory_command_s"] > 0
    assert report["round_ratio_vs_flower"] is None and "flower_round_s" not in report
    assert "fedchain_ledger_round_s" not in report and report["met"]["command_ratio"] is None


def test_a_further_devnet_gets_its_own_suffixed_ratios() -> None:
    bench = load()
    report = {"fedchain_ledger_round_s": 0.3, "fedchain_ledger_managed_round_s": 0.6, "flower_round_s": 0.3,
              "fedchain_ledger_command_s": 10.0, "fedchain_ledger_managed_command_s": 20.0, "flower_command_s": 10.0}
    out = bench.compare(report, None, None)
    assert out["round_ratio_vs_flower"] == 1.0 and out["round_ratio_vs_flower_managed"] == 2.0
    assert out["command_ratio_vs_flower"] == 1.0 and out["command_ratio_vs_flower_managed"] == 2.0
    assert "round_ratio_vs_flower_plain" not in out


def test_devnets_are_named_once_each() -> None:
    bench = load()
    assert bench.devnet_list("ephemeral,managed") == ["ephemeral", "managed"]
    for bad in ("", "ephemeral,ephemeral", "bogus"):
        with pytest.raises(Exception, match="expected distinct names"):
            bench.devnet_list(bad)

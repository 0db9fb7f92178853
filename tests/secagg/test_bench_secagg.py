from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_secagg.py"


def test_quick_benchmark_prints_one_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_secagg", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rc = module.main(["--quick", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["goals_met"] is True
    assert report["max_abs_error_vs_plain"] <= report["error_bound"]
    assert 1.0 < report["bytes_ratio_n50"] < 1.5
    assert "unmask_seconds_n50_drop20_before_masking" in report and "bytes_ratio_n100" not in report
    acc = report["accuracy"]
    assert acc["dataset"] == "breast_cancer" and 0 < acc["max_abs_model_diff_round1"] <= acc["model_error_bound"]
    assert abs(acc["secagg"] - acc["plain_uniform"]) <= 0.02 and acc["secagg"] > 0.85

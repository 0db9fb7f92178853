"""``fedchain simulate --secagg``: whole secure-aggregation federations, participants as separate processes on
the real devnet. With participants dropping out at every stage the rounds recover from the shares and the audit
re-derives every model from the public records; an aggregator that publishes something else than the unmasked
sum is caught. Option errors come before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedchain.cli.main import cli
from fedchain.errors import ExitCode
from tests.sim.test_privacy_sim import _mining


def _simulate(chain_env: Any, tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, [
        "simulate", *args, "--store", "local", "--rpc-url", chain_env.url, "--state-dir", str(tmp_path / "state"),
        "--out", str(tmp_path / "out"), "--json",
    ])


@pytest.mark.slow
@pytest.mark.devnet
def test_a_secure_federation_with_dropouts_recovers_and_audits_clean(chain_env: Any, tmp_path: Path) -> None:
    with _mining(chain_env.url):
        result = _simulate(chain_env, tmp_path, "--secagg", "--dropout", "0.2", "--clients", "7", "--rounds", "2",
                           "--min-updates", "3", "--commit-duration", "60", "--secagg-phase", "30")
    assert result.exit_code == ExitCode.OK, result.output
    summary = json.loads(result.stdout)
    assert summary["audit"]["ok"] is True
    assert {f["kind"] for f in summary["audit"]["findings"]} <= {"role_held_by_eoa"}
    secagg = summary["secagg"]
    assert secagg["clip"] == 5.0 and secagg["dropout"] == 0.2 and len(secagg["rounds"]) == 2
    finalized = [r for r in secagg["rounds"] if r["finalized"]]
    assert finalized, secagg  # 7 participants, threshold 4: a round fails only when 4 or more drop out (3.3%)
    for r in secagg["rounds"]:
        if not r["finalized"]:
            assert "threshold" in r["close_reason"] or "unmask" in r["close_reason"], r
    for r, rnd in zip(secagg["rounds"], summary["rounds"], strict=True):
        if r["finalized"]:
            assert r["survivors"] == len(rnd["included"]) >= 3
    # who dropped out is drawn per run (the accounts are fresh); the agents' tests drop each stage on purpose
    advertised = summary["gas"]["postAdvertisement"]["count"]
    committed = sum(r["commit_count"] for r in summary["rounds"])
    unmasked = summary["gas"]["postUnmaskingShares"]["count"]
    assert 7 * 2 >= advertised >= committed >= unmasked >= 3, (advertised, committed, unmasked)
    accuracy = [r["evaluation"].get("accuracy") for r in summary["rounds"] if r["finalized"]]
    assert all(a is not None and a > 0.8 for a in accuracy), accuracy


@pytest.mark.slow
@pytest.mark.devnet
def test_an_aggregator_that_cheats_on_the_sum_is_caught(chain_env: Any, tmp_path: Path) -> None:
    with _mining(chain_env.url):
        result = _simulate(chain_env, tmp_path, "--secagg", "--clients", "4", "--rounds", "1", "--min-updates", "3",
                           "--dishonest-aggregator", "shift-model", "--commit-duration", "60", "--secagg-phase", "30")
    assert result.exit_code == ExitCode.AUDIT_FINDINGS, result.output
    summary = json.loads(result.stdout)
    errors = [f for f in summary["audit"]["findings"] if f["severity"] == "error"]
    assert errors and all(f["round"] == 1 for f in errors), summary["audit"]["findings"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--dropout", "0.2"), ExitCode.USAGE, "--dropout needs --secagg"),
        (("--secagg", "--robust", "trimmed_mean:beta=0.1"), ExitCode.CONFIG, "robust rule"),
        (("--secagg", "--strategy", "scaffold"), ExitCode.CONFIG, "fedavg, fedprox"),
        (("--secagg", "--secagg-degree", "3"), ExitCode.CONFIG, "even"),
        (("--secagg", "--reveal-duration", "30"), ExitCode.CONFIG, "commit-reveal"),
        (("--secagg", "--dp", "dpsgd", "--epsilon-budget", "3"), ExitCode.CONFIG, "DP-SGD"),
    ],
)
def test_option_errors_come_before_anything_runs(tmp_path: Path, args: tuple[str, ...], code: int, message: str) -> None:
    result = CliRunner().invoke(cli, ["simulate", *args, "--store", "local", "--state-dir", str(tmp_path / "state"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())

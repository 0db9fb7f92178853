"""Runs the forge unit, fuzz and invariant suite of the contracts (contracts/test/) offline, with the
pinned solc-js behind hardhat-local/solc-lookalike.js (configured in foundry.toml), so that the
Python test run covers the Solidity tests too - with foundry.toml's fuzz and invariant counts, not fewer
(scripts/fuzz_long.sh runs the same suite at 10,000 fuzz runs and 100,000 invariant calls)."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]

FORGE = REPO_ROOT / "hardhat-local" / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"
# Environment variables that would override foundry.toml's counts; the run must not inherit them.
OVERRIDES = ("FOUNDRY_PROFILE", "FOUNDRY_FUZZ_RUNS", "FOUNDRY_INVARIANT_RUNS", "FOUNDRY_INVARIANT_DEPTH",
             "DAPP_FUZZ_RUNS", "DAPP_INVARIANT_RUNS", "DAPP_INVARIANT_DEPTH")


def foundry_counts() -> dict[str, int]:
    """The fuzz runs, invariant runs and invariant depth configured in foundry.toml."""
    config: dict[str, Any] = tomllib.loads((REPO_ROOT / "foundry.toml").read_text(encoding="utf-8"))
    return {
        "fuzz_runs": int(config["fuzz"]["runs"]),
        "invariant_runs": int(config["invariant"]["runs"]),
        "invariant_depth": int(config["invariant"]["depth"]),
    }


def test_forge_suite_passes_with_the_foundry_toml_counts() -> None:
    assert FORGE.is_file(), f"forge is not installed at {FORGE}; run ./scripts/setup"
    counts = foundry_counts()
    assert counts["fuzz_runs"] >= 256 and counts["invariant_runs"] * counts["invariant_depth"] >= 2560
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    env.update(FOUNDRY_DISABLE_NIGHTLY_WARNING="1", NO_COLOR="1")
    proc = subprocess.run(
        [str(FORGE), "test", "--offline", "--threads", "1"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-6000:]
    summary = re.search(r"(\d+) tests passed, (\d+) failed, (\d+) skipped", report)
    assert summary is not None, report[-3000:]
    passed, failed, skipped = map(int, summary.groups())
    assert (failed, skipped) == (0, 0)
    assert passed >= 140, f"only {passed} forge tests ran"
    assert "invariant_noDoubleCommit" in report and "testFuzz_commitOnlyUpToDeadline" in report
    # governance: the lifecycle, the verification and dispute tests, and the governance invariants
    for name in ("test_governanceLifecycleAdmitsAParticipant", "test_attestationQuorumBlocksTheNextRound",
                 "test_disputeFallsBackToTheBaseModel", "invariant_votingPowerEqualsMembers",
                 "invariant_onlyTheTimelockAdministers", "testFuzz_attestationQuorumIsCeil"):
        assert f"[PASS] {name}(" in report, f"{name} did not pass"
    # incentives: deposits, slashes, claims, the budget cap and their invariants
    for name in ("test_withdrawalBeforeTheDelayRevertsAfterItPays", "test_aRootThatPaysOneParticipantDoubleIsRefused"
                 "OnceTheBudgetIsReached", "test_claimPaysOnceAndRefusesTheRest", "test_withdrawCannotBeReentered",
                 "invariant_claimsPerRoundWithinBudget", "invariant_depositsConserved",
                 "testFuzz_claimNeverExceedsTheBudget"):
        assert f"[PASS] {name}(" in report, f"{name} did not pass"
    # privacy: every refusal of a claim, the events and their order, and the epsilon ledger's invariants
    for name in ("test_budgetExceededRevertsWithSpentClaimedAndBudget", "test_decreasedClaimReverts",
                 "test_commitPrivateUpdateRecordsAndEmits", "test_plainTaskAfterPrivateOneClearsTheBudget",
                 "test_commitPrivateUpdateMakesTheChecksOfCommitUpdate", "invariant_privacyOutcomesMatchModel",
                 "invariant_neverOverBudget", "testFuzz_claimAcceptedOnlyWithinTheBudgetAndNotDecreasing"):
        assert f"[PASS] {name}(" in report, f"{name} did not pass"
    # every fuzz test ran foundry.toml's runs, every invariant its runs x depth calls
    fuzz = re.findall(r"\[PASS\] (testFuzz_\w+)\([^)]*\) \(runs: (\d+),", report)
    invariants = re.findall(r"\[PASS\] (invariant_\w+)\(\) \(runs: (\d+), calls: (\d+),", report)
    assert len(fuzz) >= 10 and len(invariants) >= 14, report[-3000:]
    assert {int(runs) for _, runs in fuzz} == {counts["fuzz_runs"]}, fuzz
    assert {(int(runs), int(calls)) for _, runs, calls in invariants} == {
        (counts["invariant_runs"], counts["invariant_runs"] * counts["invariant_depth"])
    }, invariants

"""``fedchain simulate --dp ...``: whole private federations, participants as separate processes on the
real devnet. A DP-SGD run spends each participant's budget and audits clean; a client-level DP run
catches a participant that left out its share of the noise; a run asked for more rounds than the
budget allows is stopped: the participants stop before the round they cannot afford."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedchain.cli.main import cli
from fedchain.errors import ExitCode

pytestmark = [pytest.mark.slow, pytest.mark.devnet]


def _simulate(chain_env: Any, tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, [
        "simulate", *args, "--store", "local", "--rpc-url", chain_env.url, "--state-dir", str(tmp_path / "state"),
        "--out", str(tmp_path / "out"), "--json",
    ])


@contextmanager
def _mining(url: str, every_s: float = 1.0) -> Iterator[None]:
    """Mine a block every ``every_s`` seconds (the test devnet mines only on transactions, and a round whose
    participants all stopped sends none: its deadline must pass in a block)."""
    from fedchain.chain.connection import Connection

    conn = Connection(url)
    stop = threading.Event()

    def mine() -> None:
        while not stop.wait(every_s):
            conn.request("evm_mine")

    thread = threading.Thread(target=mine, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def test_a_dpsgd_federation_spends_the_budget_and_audits_clean(chain_env: Any, tmp_path: Path) -> None:
    result = _simulate(chain_env, tmp_path, "--dp", "dpsgd", "--epsilon-budget", "3", "--clients", "3", "--rounds", "2",
                       "--min-updates", "2")
    assert result.exit_code == ExitCode.OK, result.output
    summary = json.loads(result.stdout)
    assert summary["audit"]["ok"] is True
    assert {f["kind"] for f in summary["audit"]["findings"]} <= {"role_held_by_eoa"}  # the plain deployment's warning
    assert all(r["finalized"] for r in summary["rounds"])
    assert summary["gas"]["commitPrivateUpdate"]["count"] == 6 and "commitUpdate" not in summary["gas"]
    privacy = summary["privacy"]
    assert privacy["mechanism"] == "dpsgd" and privacy["epsilon_budget"] == 3.0
    spent = [p["epsilon_spent"] for p in privacy["participants"]]
    assert len(spent) == 3 and all(2.5 < e <= 3.0 for e in spent), spent  # calibrated: two rounds spend ~ the budget
    report = json.loads((tmp_path / "out" / "audit.json").read_text())
    curves = report["privacy"]["participants"]
    assert len(curves) == 3 and all([c["round"] for c in p["curve"]] == [1, 2] for p in curves)
    assert all(c["claimed"] == c["recomputed"] for p in curves for c in p["curve"])


def test_client_level_dp_rejects_a_participant_that_skipped_its_noise(chain_env: Any, tmp_path: Path) -> None:
    result = _simulate(chain_env, tmp_path, "--dp", "client", "--epsilon-budget", "8", "--clients", "5", "--rounds", "1",
                       "--min-updates", "4", "--attack", "skip_noise:1")
    assert result.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT, result.output
    summary = json.loads(result.stdout)
    [rnd] = summary["rounds"]
    assert rnd["finalized"] and len(rnd["included"]) == 4
    [rejected] = rnd["rejected"]
    assert rejected["rule"] == "dp_noise"
    skipper = next(p["address"] for p in summary["participants"] if p["attack"] == "skip_noise")
    assert rejected["participant"].lower() == skipper.lower()
    assert summary["audit"]["ok"] is True


def test_a_run_longer_than_the_budget_stops_the_participants_at_the_budget(chain_env: Any, tmp_path: Path) -> None:
    # a noise multiplier calibrated for one round of the budget: round 2 cannot be afforded
    from fedchain.sim.config import ExperimentConfig, PrivacyRequest, load_task_dataset, resolve_privacy

    cfg = ExperimentConfig(clients=2, rounds=1, privacy=PrivacyRequest("dpsgd", 1.0))
    policy = resolve_privacy(cfg, load_task_dataset(cfg))
    with _mining(chain_env.url):
        result = _simulate(chain_env, tmp_path, "--dp", "dpsgd", "--epsilon-budget", "1", "--clients", "2",
                           "--rounds", "2", "--min-updates", "1", "--noise-multiplier", repr(policy.noise_multiplier),
                           "--dp-sample-rate", repr(policy.sample_rate), "--commit-duration", "20")
    assert result.exit_code == ExitCode.OK, result.output
    summary = json.loads(result.stdout)
    first, second = summary["rounds"]
    assert first["finalized"] and not second["finalized"] and second["commit_count"] == 0
    people = summary["privacy"]["participants"]
    assert all(p["stopped"] and 0 < p["epsilon_spent"] <= 1.0 for p in people), people
    assert all(p["exit_code"] == ExitCode.PRIVACY_BUDGET for p in summary["participants"])

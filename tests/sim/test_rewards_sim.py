"""``fedchain simulate --rewards shapley``: a governed federation with deposits, a reward budget and
Shapley scores on the consortium's validation set. A free-rider (it uploads the unchanged model)
earns nothing, a poisoner (its update rejected) earns nothing and is slashed by vote, the honest
participants share each round's budget, every claim is made, and the audit recomputes it all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedchain.cli.main import cli
from fedchain.errors import ExitCode

pytestmark = [pytest.mark.slow]

BUDGET = 1_000_000


def test_free_rider_earns_nothing_poisoner_is_slashed_honest_participants_share_the_budget(
    chain_env: Any, tmp_path: Path
) -> None:
    result = CliRunner().invoke(cli, [
        "simulate", "--rewards", "shapley", "--reward-budget", str(BUDGET), "--clients", "4", "--rounds", "2",
        "--attack", "free_ride:1", "--attack", "scaling:1:1000", "--store", "local", "--rpc-url", chain_env.url,
        "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path / "out"), "--json",
    ])

    # the only findings are the poisoner's rejected updates, handled by the aggregator
    assert result.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT, result.output
    summary = json.loads(result.stdout)
    assert summary["audit"]["ok"] is True
    assert {f["kind"] for f in summary["audit"]["findings"]} == {"update_rejected"}
    rewards = summary["rewards"]
    assert rewards["rule"] == "shapley"
    by_attack = {p["attack"]: p for p in rewards["participants"] if p["attack"]}
    honest = [p for p in rewards["participants"] if not p["attack"]]
    assert int(by_attack["free_ride"]["amount"]) == 0
    assert int(by_attack["scaling:1000"]["amount"]) == 0
    assert all(int(p["amount"]) > 0 for p in honest)
    # every round's budget is paid out exactly, and claimed in full
    assert [(int(r["total"]), int(r["claimed"])) for r in rewards["rounds"]] == [(BUDGET, BUDGET)] * 2
    assert sum(int(p["claimed"]) for p in rewards["participants"]) == 2 * BUDGET
    assert all(p["claimed_every_round"] for p in rewards["participants"])
    # the poisoner's deposit was slashed by an executed proposal citing the round's evidence
    [slash] = rewards["slashes"]
    assert slash["participant"] == by_attack["scaling:1000"]["address"] and slash["justified"] is True
    slashes = [p for p in summary["governance"]["executed_proposals"] if p["description"].startswith("slash")]
    assert len(slashes) == 1 and slashes[0]["executed_block"]

"""``fedchain simulate --governance``: a consortium governs a whole run through the Governor and the
timelock. With a dishonest aggregator, the members' live replays catch its first round, a dispute
is executed (the aggregator role goes to another account), and the run finishes from the fallback
model with every later round clean; a member is voted in and trains from the next round; the
learning rate is changed by vote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedchain.chain.connection import Connection
from fedchain.chain.federation import AGGREGATOR_ROLE, read_deployment
from fedchain.chain.governance import Governance
from fedchain.cli.main import cli
from fedchain.errors import ExitCode

pytestmark = [pytest.mark.slow]


def simulate(chain_env: Any, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [
        "simulate", "--governance", "--clients", "3", "--rounds", "3", "--store", "local", "--rpc-url", chain_env.url,
        "--state-dir", str(tmp_path / "state"), "--out", str(out), "--json", *extra,
    ])
    assert result.exit_code in (0, int(ExitCode.AUDIT_FINDINGS)), result.output
    return result.exit_code, json.loads(result.stdout)


def test_a_dishonest_aggregator_is_caught_live_disputed_and_replaced_and_the_run_finishes_clean_after_it(
    chain_env: Any, tmp_path: Path
) -> None:
    code, summary = simulate(chain_env, tmp_path, "--dishonest-aggregator", "shift-model")

    gov = summary["governance"]
    descriptions = [p["description"] for p in gov["executed_proposals"]]
    assert descriptions[0].startswith("genesis") and descriptions[1].startswith("dispute round 1")
    assert descriptions[2].startswith("admit participant-2") and descriptions[3].startswith("halve the learning rate")
    assert all(p["votes"]["for"] >= p["quorum"] and p["executed_block"] for p in gov["executed_proposals"])
    [dispute] = gov["disputed_rounds"]
    aggregator, backup = dispute["accused"], dispute["new_aggregator"]
    assert dispute["round"] == 1 and dispute["attestations"] == {"ok": 0, "negative": 2}

    # the members caught round 1; rounds 2 and 3 (the backup aggregator's, from the fallback model) are clean
    assert code == ExitCode.AUDIT_FINDINGS
    findings = summary["audit"]["findings"]
    assert {f["round"] for f in findings} == {1}
    assert {"model_mismatch", "round_disputed"} <= {f["kind"] for f in findings}
    assert summary["audit"]["rounds_checked"] == [1, 2, 3]
    # the voted-in member trained from the round after its admission
    assert [len(r["included"]) for r in summary["rounds"]] == [2, 3, 3]
    assert [p["exit_code"] for p in summary["participants"]] == [0, 0, 0]

    conn = Connection(chain_env.url)
    deployment = read_deployment(tmp_path / "state", conn.chain_id)
    governance = Governance.from_deployment(conn, deployment)
    assert governance.member_count() == 3
    fed = governance.federation
    assert not fed.has_role(AGGREGATOR_ROLE, aggregator) and fed.has_role(AGGREGATOR_ROLE, backup)
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["governance"]["disputed_rounds"] == gov["disputed_rounds"]

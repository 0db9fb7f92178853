"""Participants as real OS processes: kill and restart, and a whole simulation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from click.testing import CliRunner

from fedchain.chain.accounts import create_keystore
from fedchain.cli.main import cli
from fedchain.config import Settings
from fedchain.federation.simulate import participant_command
from fedchain.types import RoundId
from tests.federation.harness import Fed

PASSWORD = "test-password"


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_participant_killed_mid_round_and_restarted_commits_once(fed: Fed, ipfs_api_url: str, tmp_path: Path) -> None:
    account = fed.env.accounts.participants[0]
    keystore = create_keystore(tmp_path, PASSWORD, private_key=bytes(account.key), iterations=2**10).path
    settings = Settings(state_dir=tmp_path / "state", store="ipfs")

    def command(until_round: int) -> list[str]:
        return participant_command(keystore=keystore, data=fed.clients[0].path, rpc_url=fed.env.url,
                                   address=fed.env.deployment.address, settings=settings, ipfs_api=ipfs_api_url,
                                   until_round=until_round, work_dir=tmp_path / "work")

    env = dict(os.environ, FEDCHAIN_PASSWORD=PASSWORD)
    env.pop("FEDCHAIN_PRIVATE_KEY", None)
    rid = fed.open_round()

    # the first process would stay for round 2: it is certainly alive when killed
    first = subprocess.Popen(command(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        _wait_for(lambda: len(fed.reader.commitments(rid)) == 1 or first.poll() is not None, 120, "the first commitment")
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    assert fed.reader.round(rid).status == 1  # still open: the kill happened mid-round

    second = subprocess.run(command(1), capture_output=True, text=True, env=env, timeout=120)

    assert second.returncode == 0, second.stderr
    results = json.loads(second.stdout)["results"]
    assert [r["already_committed"] for r in results] == [True]
    mine = [c for c in fed.reader.commitments(RoundId(rid)) if c.participant == account.address]
    assert len(mine) == 1
    assert results[0]["cid"] == mine[0].cid


def test_simulate_runs_participant_processes_and_audits_clean(chain_env, tmp_path: Path) -> None:
    out = tmp_path / "out"

    result = CliRunner().invoke(cli, [
        "simulate", "--clients", "3", "--rounds", "2", "--store", "local", "--rpc-url", chain_env.url,
        "--state-dir", str(tmp_path / "state"), "--out", str(out), "--json",
    ])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["audit"]["ok"] is True and summary["audit"]["rounds_checked"] == [1, 2]
    assert [r["included"] for r in summary["rounds"]] == [3, 3]
    assert all(0.5 < r["accuracy"] <= 1.0 for r in summary["rounds"])
    assert summary["gas"]["commitUpdate"]["count"] == 6 and summary["gas"]["commitUpdate"]["max"] <= 50_000
    assert [p["exit_code"] for p in summary["participants"]] == [0, 0, 0]
    assert summary["bytes"]["uploaded"] > 0
    for name in ("report.json", "audit.html", "audit.json", "accuracy.png"):
        assert (out / name).is_file()

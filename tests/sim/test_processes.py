"""Participants as real OS processes: kill and restart, and a whole simulation."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedchain.chain.accounts import create_keystore
from fedchain.cli.main import cli
from fedchain.config import Settings
from fedchain.errors import ServiceError
from fedchain.protocol.participant import READY_FILE, TEST_CRASH_ENV
from fedchain.sim.federation import participant_command, require_clean_exits
from fedchain.types import RoundId
from tests.protocol.harness import Fed

PASSWORD = "test-password"


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _participant(fed: Fed, ipfs_api_url: str, tmp_path: Path) -> tuple[Any, Callable[[int], list[str]], dict[str, str]]:
    """Participant 0 as a process: its account, its command line (logging at INFO) and environment."""
    account = fed.env.accounts.participants[0]
    keystore = create_keystore(tmp_path, PASSWORD, private_key=bytes(account.key), iterations=2**10).path
    settings = Settings(state_dir=tmp_path / "state", store="ipfs")

    def command(until_round: int) -> list[str]:
        cmd = participant_command(keystore=keystore, data=fed.clients[0].path, rpc_url=fed.env.url,
                                  address=fed.env.deployment.address, settings=settings, ipfs_api=ipfs_api_url,
                                  until_round=until_round, work_dir=tmp_path / "work")
        return cmd[:3] + ["-v"] + cmd[3:]

    env = dict(os.environ, FEDCHAIN_PASSWORD=PASSWORD)
    env.pop("FEDCHAIN_PRIVATE_KEY", None)
    env.pop(TEST_CRASH_ENV, None)
    return account, command, env


@pytest.mark.slow
def test_participant_killed_mid_round_and_restarted_commits_once(fed: Fed, ipfs_api_url: str, tmp_path: Path) -> None:
    account, command, env = _participant(fed, ipfs_api_url, tmp_path)
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


@pytest.mark.slow
@pytest.mark.parametrize(("crash_at", "on_chain_after_crash"), [("after_put", 0), ("after_send", 1)])
def test_participant_crashing_between_upload_and_commit_commits_once_after_restart(
    fed: Fed, ipfs_api_url: str, tmp_path: Path, crash_at: str, on_chain_after_crash: int
) -> None:
    account, command, env = _participant(fed, ipfs_api_url, tmp_path)
    rid = fed.open_round()

    crashed = subprocess.run(command(1), capture_output=True, text=True, env=dict(env, **{TEST_CRASH_ENV: crash_at}),
                             timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    stored = re.findall(r"round 1: stored update (\S+)", crashed.stderr)
    assert len(stored) == 1, crashed.stderr
    assert len(fed.reader.commitments(rid)) == on_chain_after_crash

    restarted = subprocess.run(command(1), capture_output=True, text=True, env=env, timeout=120)

    assert restarted.returncode == 0, restarted.stderr
    results = json.loads(restarted.stdout)["results"]
    assert [r["already_committed"] for r in results] == [bool(on_chain_after_crash)]
    mine = [c for c in fed.reader.commitments(rid) if c.participant == account.address]
    assert len(mine) == 1 and len(fed.reader.commitments(rid)) == 1
    assert mine[0].cid == stored[0] == results[0]["cid"]
    # one client state waits for the round's verdict: the committed update's
    assert [f.name for f in (tmp_path / "work").glob("client_state*")] == [f"client_state.pending-{rid}.npz"]


@pytest.mark.slow
def test_simulate_runs_participant_processes_and_audits_clean(chain_env, tmp_path: Path) -> None:
    out = tmp_path / "out"

    result = CliRunner().invoke(cli, [
        "simulate", "--clients", "3", "--rounds", "2", "--store", "local", "--rpc-url", chain_env.url,
        "--state-dir", str(tmp_path / "state"), "--out", str(out), "--json",
    ])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["audit"]["ok"] is True and summary["audit"]["rounds_checked"] == [1, 2]
    assert [len(r["included"]) for r in summary["rounds"]] == [3, 3]
    assert all(0.5 < r["evaluation"]["accuracy"] <= 1.0 for r in summary["rounds"])
    assert summary["gas"]["commitUpdate"]["count"] == 6 and summary["gas"]["commitUpdate"]["max"] <= 50_000
    assert [p["exit_code"] for p in summary["participants"]] == [0, 0, 0]
    assert summary["bytes"]["uploaded_by_participants"] > 0 and summary["bytes"]["uploaded_by_aggregator"] > 0
    for name in ("report.json", "audit.html", "audit.json", "accuracy.png"):
        assert (out / name).is_file()
    audit = json.loads((out / "audit.json").read_text())  # the audit report carries the run's test accuracy
    assert [e["round"] for e in audit["evaluation"]] == [1, 2]
    assert [e["accuracy"] for e in audit["evaluation"]] == [r["evaluation"]["accuracy"] for r in summary["rounds"]]
    assert audit["meta"]["rpc_url"] == chain_env.url


def test_participant_run_removes_a_stale_ready_file_before_failing(fed: Fed, tmp_path: Path) -> None:
    account = fed.env.accounts.participants[0]
    keystore = create_keystore(tmp_path, PASSWORD, private_key=bytes(account.key), iterations=2**10).path
    work = tmp_path / "work"
    work.mkdir()
    (work / READY_FILE).write_text("4242", encoding="utf-8")

    result = CliRunner().invoke(cli, [
        "participant", "run", "--keystore", str(keystore), "--data", str(tmp_path / "missing.npz"),
        "--rpc-url", fed.env.url, "--address", fed.env.deployment.address, "--store", "local",
        "--state-dir", str(tmp_path / "state"), "--work-dir", str(work), "--until-round", "1",
    ], env={"FEDCHAIN_PASSWORD": PASSWORD, "FEDCHAIN_PRIVATE_KEY": None})

    assert result.exit_code != 0
    assert not (work / READY_FILE).exists()


def test_a_participant_process_exiting_non_zero_fails_the_simulation(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "participant-1.log").write_text("starting\nDataSchemaError: bad data\n", encoding="utf-8")
    procs = [subprocess.Popen([sys.executable, "-c", f"import sys; sys.exit({code})"], text=True) for code in (0, 3)]
    for p in procs:
        p.wait(timeout=30)

    with pytest.raises(ServiceError, match="participant process 1 exited with code 3: DataSchemaError: bad data"):
        require_clean_exits(procs, logs)
    require_clean_exits(procs[:1], logs)


def _aggregator_command(fed: Fed, ipfs_api_url: str, tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "fedchain", "-v", "aggregator", "run", *args, "--rpc-url", fed.env.url,
            "--address", fed.env.deployment.address, "--store", "ipfs", "--ipfs-api", ipfs_api_url,
            "--state-dir", str(tmp_path / "state"), "--json"]


def _aggregator_env(fed: Fed) -> dict[str, str]:
    env = dict(os.environ, FEDCHAIN_PRIVATE_KEY=fed.env.accounts.aggregator.key.hex())
    env.pop(TEST_CRASH_ENV, None)
    return env


def test_aggregator_killed_mid_run_and_restarted_resumes_the_open_round(fed: Fed, ipfs_api_url: str,
                                                                        tmp_path: Path) -> None:
    env = _aggregator_env(fed)
    first = subprocess.Popen(_aggregator_command(fed, ipfs_api_url, tmp_path, "--rounds", "2"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        _wait_for(lambda: int(fed.reader.latest_round_id()) == 1 or first.poll() is not None, 120, "round 1 to open")
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    for p in fed.participants:  # the participants commit while no aggregator runs
        p.submit(RoundId(1))

    restarted = subprocess.Popen(_aggregator_command(fed, ipfs_api_url, tmp_path, "--until-round", "2"),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_for(lambda: int(fed.reader.latest_round_id()) == 2 or restarted.poll() is not None, 120, "round 2")
        for p in fed.participants:
            p.submit(RoundId(2))
        stdout, stderr = restarted.communicate(timeout=120)
    finally:
        if restarted.poll() is None:
            restarted.kill()
            restarted.communicate()

    assert restarted.returncode == 0, stderr
    assert "round 1 is still open" in stderr and "resuming it" in stderr
    rounds = json.loads(stdout)["rounds"]
    assert [(r["round"], r["finalized"], len(r["included"])) for r in rounds] == [(1, True, 3), (2, True, 3)]
    assert int(fed.reader.latest_round_id()) == 2
    report = fed.auditor().audit()
    assert report.ok, report.findings


def test_participant_process_follows_the_ipfs_node_to_its_new_port(fed: Fed, tmp_path: Path) -> None:
    """Started from the state dir (no --ipfs-api), a participant that finds the node gone reads
    the node's record again and carries on on the new port (here the old one is taken)."""
    import socket

    from fedchain.engine.ledger import LedgerTransport
    from fedchain.engine.loop import finish_round
    from fedchain.protocol.participant import ParticipantAgent
    from fedchain.services.ipfs import start_node, stop_node
    from fedchain.storage.ipfs import IpfsStore

    state = tmp_path / "state"
    account = fed.env.accounts.participants[0]
    keystore = create_keystore(tmp_path, PASSWORD, private_key=bytes(account.key), iterations=2**10).path
    env = dict(os.environ, FEDCHAIN_PASSWORD=PASSWORD)
    env.pop("FEDCHAIN_PRIVATE_KEY", None)
    env.pop(TEST_CRASH_ENV, None)
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    first_node, _ = start_node(state)
    stores = [IpfsStore(first_node.api_url, cat_timeout_s=3)]
    proc: subprocess.Popen[str] | None = None
    try:
        stores[0].put(fed.store.get(fed.task_cid))  # the task document, on this node too
        transport = LedgerTransport(fed.aggregator.ledger, stores[0])
        others = [ParticipantAgent(p.ledger, stores[0], p.data_path, tmp_path / f"p{i}")
                  for i, p in enumerate(fed.participants[1:], 1)]
        rid = transport.open_round().round_id
        cmd = participant_command(keystore=keystore, data=fed.clients[0].path, rpc_url=fed.env.url,
                                  address=fed.env.deployment.address, settings=Settings(state_dir=state, store="ipfs"),
                                  ipfs_api=None, until_round=2, work_dir=tmp_path / "work")
        proc = subprocess.Popen(cmd[:3] + ["-v"] + cmd[3:], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        _wait_for(lambda: len(fed.reader.commitments(rid)) == 1 or proc.poll() is not None, 120, "its commitment")
        for agent in others:
            agent.submit(rid)

        stop_node(state)  # the node restarts, and its old API port is someone else's by then
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", int(first_node.api_url.rsplit(":", 1)[1])))
        taken.listen()
        second_node, _ = start_node(state)
        taken.close()  # nothing answers on the old port now
        assert second_node.api_url != first_node.api_url
        stores.append(IpfsStore(second_node.api_url, cat_timeout_s=3))
        transport.store = stores[1]
        for agent in others:
            agent.store = stores[1]
        assert finish_round(transport, transport.attach(rid), commit_timeout_s=120).finalized
        rid2 = transport.open_round().round_id
        for agent in others:
            agent.submit(rid2)
        stdout, stderr = proc.communicate(timeout=180)
        assert finish_round(transport, transport.attach(rid2), commit_timeout_s=120).finalized
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        for store in stores:
            store.close()
        stop_node(state)
        taken.close()

    assert proc.returncode == 0, stderr
    assert f"the IPFS node answers on {second_node.api_url} now" in stderr
    assert [r["already_committed"] for r in json.loads(stdout)["results"]] == [False, False]
    assert {c.participant for c in fed.reader.commitments(rid2)} == {p.address for p in fed.participants}


def test_simulate_with_commit_reveal_seals_then_reveals_and_audits_clean(chain_env, tmp_path: Path) -> None:
    out = tmp_path / "out"

    result = CliRunner().invoke(cli, [
        "simulate", "--clients", "3", "--rounds", "2", "--store", "local", "--reveal-duration", "120",
        "--rpc-url", chain_env.url, "--state-dir", str(tmp_path / "state"), "--out", str(out), "--json",
    ])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["audit"]["ok"] is True and summary["audit"]["rounds_checked"] == [1, 2]
    assert [len(r["included"]) for r in summary["rounds"]] == [3, 3]
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert doc["config"]["reveal_duration"] == 120
    # every update went on chain twice: sealed in the commit phase, revealed after it
    assert summary["gas"]["sealUpdate"]["count"] == 6 and summary["gas"]["revealUpdate"]["count"] == 6

"""A whole federation (``fedchain simulate``: participant processes, the aggregator, the audit) on the
managed services of a state directory survives a SIGKILL of its services mid-run: anvil (the
devnet supervisor restarts it), the whole devnet (restarted by hand on its port) and the IPFS node
(restarted on its old ports). Each run must complete every round with every update included and
audit clean: no mined transaction may vanish, no agent may give up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fedchain.chain.connection import Connection
from fedchain.chain.federation import FederationContract, read_deployment
from fedchain.chain.ledger import ChainLedger
from fedchain.errors import FedchainError
from fedchain.services.base import process_alive
from fedchain.services.devnet import devnet_status, read_devnet, start_devnet, stop_devnet
from fedchain.services.ipfs import read_node, start_node, stop_node

pytestmark = [pytest.mark.slow, pytest.mark.devnet]

CLIENTS = 3
ROUNDS = 4
KILL_IN_ROUND = 2
RUN_TIMEOUT_S = 540


def simulate(state_dir: Path, out: Path, store: str) -> subprocess.Popen[str]:
    """``fedchain simulate`` on the state directory's own devnet (and IPFS node), as a process."""
    cmd = [
        sys.executable, "-m", "fedchain", "simulate", "--clients", str(CLIENTS), "--rounds", str(ROUNDS),
        "--store", store, "--state-dir", str(state_dir), "--out", str(out), "--json",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("FEDCHAIN_RPC_URL", "FEDCHAIN_IPFS_API", "FEDCHAIN_PRIVATE_KEY")}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=(out.parent / "simulate.log").open("w"), text=True, env=env)


def latest_round(state_dir: Path) -> int:
    """The newest round opened on the state directory's federation (0: not deployed or none yet)."""
    info = read_devnet(state_dir)
    if info is None:
        return 0
    try:
        conn = Connection(info.url)
        deployment = read_deployment(state_dir, conn.chain_id)
        return int(ChainLedger(FederationContract.from_deployment(conn, deployment)).latest_round_id())
    except (FedchainError, OSError, ValueError):
        return 0


def log_tail(log: Path) -> str:
    """The end of the simulation's log and of each participant's (out/run/logs next to it)."""
    def tail(path: Path, lines: int) -> str:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else "(no log)"

    parts = sorted((log.parent / "out" / "run" / "logs").glob("participant-*.log"))
    return "\n".join([tail(log, 40), *(f"--- {p.name}:\n{tail(p, 15)}" for p in parts)])


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen[str], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc.poll() is not None:
            log = Path(proc.args[proc.args.index("--out") + 1]).parent / "simulate.log"  # type: ignore[union-attr]
            raise AssertionError(f"the simulation exited ({proc.returncode}) while waiting for {what}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def finish(proc: subprocess.Popen[str], log: Path) -> dict[str, Any]:
    try:
        stdout, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, _ = proc.communicate()
    assert proc.returncode == 0, f"simulate exited {proc.returncode}; its log ends:\n{log_tail(log)}"
    summary: dict[str, Any] = json.loads(stdout)
    return summary


def assert_complete_and_clean(summary: dict[str, Any]) -> None:
    assert [int(r["round"]) for r in summary["rounds"]] == list(range(1, ROUNDS + 1))
    assert [len(r["included"]) for r in summary["rounds"]] == [CLIENTS] * ROUNDS
    assert summary["audit"]["ok"] is True, summary["audit"]["findings"]
    assert summary["audit"]["rounds_checked"] == list(range(1, ROUNDS + 1))
    assert [p["exit_code"] for p in summary["participants"]] == [0] * CLIENTS


def test_sigkill_of_anvil_mid_run_the_federation_completes_and_audits_clean(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = simulate(state, tmp_path / "out", "local")
    try:
        wait_for(lambda: latest_round(state) >= KILL_IN_ROUND, proc, RUN_TIMEOUT_S, f"round {KILL_IN_ROUND}")
        status = devnet_status(state)
        assert status.persistence is not None
        os.kill(status.persistence.anvil_pid, signal.SIGKILL)

        summary = finish(proc, tmp_path / "simulate.log")
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_devnet(state)

    assert_complete_and_clean(summary)


def test_sigkill_of_the_whole_devnet_mid_run_restarted_on_its_port_the_federation_completes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = simulate(state, tmp_path / "out", "local")
    try:
        wait_for(lambda: latest_round(state) >= KILL_IN_ROUND, proc, RUN_TIMEOUT_S, f"round {KILL_IN_ROUND}")
        info = read_devnet(state)
        assert info is not None
        os.kill(info.pid, signal.SIGKILL)  # the supervisor; the kernel takes anvil along
        deadline = time.monotonic() + 10
        while process_alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(3)  # an outage the agents have to ride out
        restarted, _ = start_devnet(state)
        assert restarted.url == info.url

        summary = finish(proc, tmp_path / "simulate.log")
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_devnet(state)

    assert_complete_and_clean(summary)


@pytest.mark.ipfs
def test_sigkill_of_the_ipfs_node_mid_run_restarted_on_its_port_the_federation_completes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = simulate(state, tmp_path / "out", "ipfs")
    try:
        wait_for(lambda: latest_round(state) >= KILL_IN_ROUND, proc, RUN_TIMEOUT_S, f"round {KILL_IN_ROUND}")
        node = read_node(state)
        assert node is not None
        os.killpg(node.pid, signal.SIGKILL)
        time.sleep(3)  # an outage the agents have to ride out
        restarted, started = start_node(state)
        assert started and restarted.api_url == node.api_url

        summary = finish(proc, tmp_path / "simulate.log")
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_node(state)
        stop_devnet(state)

    assert_complete_and_clean(summary)

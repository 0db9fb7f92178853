"""``fedchain devnet`` end to end: start (idempotent), status, deploy, stop, restart with state kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account

from fedchain.chain.connection import Connection
from fedchain.chain.federation import deploy, load_deployment
from fedchain.cli.main import cli
from fedchain.errors import ExitCode, ServiceError
from fedchain.services.base import toolchain_dir
from fedchain.services.devnet import DevnetProcess, devnet_status, stop_devnet

pytestmark = pytest.mark.devnet


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_start_status_deploy_stop_restart_keeps_state(tmp_path: Path) -> None:
    sd = str(tmp_path)
    try:
        started = run("devnet", "start", "--block-time", "0", "--state-dir", sd, "--json")
        assert started["reused"] is False and started["engine"] == "anvil" and started["chain_id"] == 31337
        again = run("devnet", "start", "--state-dir", sd, "--json")
        assert again["reused"] is True and again["pid"] == started["pid"]

        deployer = Account.create()
        run("account", "fund", deployer.address, "--amount", "5", "--state-dir", sd, "--json")
        env = {"FEDCHAIN_PRIVATE_KEY": deployer.key.hex(), "FEDCHAIN_RPC_URL": ""}
        deployed = run("devnet", "deploy", "--state-dir", sd, "--json", env=env)
        address = deployed["deployment"]["address"]
        assert deployed["tx"]["gas_used"] > 0

        status = run("devnet", "status", "--state-dir", sd, "--json")
        assert status["running"] is True and status["url"] == started["url"]
        block = status["block_number"]
        assert block == deployed["deployment"]["block_number"]

        stopped = run("devnet", "stop", "--state-dir", sd, "--json")
        assert stopped == {"stopped": True, "pid": started["pid"], "url": started["url"]}
        assert run("devnet", "status", "--state-dir", sd, "--json")["running"] is False
        assert (tmp_path / "devnet" / "state.json.gz").stat().st_size > 0

        restarted = run("devnet", "start", "--block-time", "0", "--state-dir", sd, "--json")
        assert restarted["reused"] is False and restarted["pid"] != started["pid"]
        assert restarted["url"] == started["url"]  # the port is reused when free
        assert run("devnet", "status", "--state-dir", sd, "--json")["block_number"] == block
        conn = Connection(restarted["url"])
        assert load_deployment(tmp_path, conn).address == address  # code survived the restart
    finally:
        stop_devnet(tmp_path)
    assert devnet_status(tmp_path).running is False


def test_other_engine_while_running_is_refused(tmp_path: Path) -> None:
    try:
        run("devnet", "start", "--state-dir", str(tmp_path), "--json")
        result = CliRunner().invoke(cli, ["devnet", "start", "--engine", "hardhat", "--state-dir", str(tmp_path)])
        assert result.exit_code == ExitCode.SERVICE
        assert "already running" in result.output
    finally:
        stop_devnet(tmp_path)


def test_stop_without_devnet_is_harmless(tmp_path: Path) -> None:
    assert run("devnet", "stop", "--state-dir", str(tmp_path), "--json") == {"stopped": False, "pid": None, "url": None}


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ServiceError, match="unknown devnet engine 'geth'"):
        DevnetProcess("geth")


@pytest.mark.skipif(
    not (toolchain_dir() / "hardhat.config.js").exists(), reason="hardhat-local/hardhat.config.js not present"
)
def test_hardhat_engine_smoke(tmp_path: Path) -> None:
    from eth_hash.auto import keccak

    with DevnetProcess("hardhat", log_file=tmp_path / "hardhat.log") as node:
        conn = Connection(node.url)
        admin, participant = Account.create(), Account.create()
        for acct in (admin, participant):
            conn.fund_from_dev_account(acct.address, 10**19)
        contract, _, _ = deploy(conn, admin, admin.address, admin.address, state_dir=tmp_path)
        contract.configure_task(keccak(b"s"), keccak(b"t"), keccak(b"d"), "bafycfg", 3600)
        contract.with_account(participant).register("org", "x", b"", 100)
        contract.admit(participant.address)
        rid = contract.open_round(keccak(b"b"), "bafyb", 60, 1).round_id
        report = contract.with_account(participant).commit_update(rid, keccak(b"u"), "bafyu", 1, keccak(b"m"))
        assert report.gas_used < 50_000
        assert contract.get_round(rid).commit_count == 1
        # Hardhat words a revert its own way ("VM Exception while processing transaction: reverted with custom
        # error ..."): it is still decoded into the contract's typed error
        from fedchain.reverts import FederationDuplicateCommit

        with pytest.raises(FederationDuplicateCommit):
            contract.with_account(participant).commit_update(rid, keccak(b"u"), "bafyu", 1, keccak(b"m"))

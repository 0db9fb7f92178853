"""The read-only status commands load nothing they do not use: ``participant status``, ``round status``
and ``admin members`` import neither PyTorch nor the round engine (importing PyTorch alone took most
of their seconds), nor a web3 library, eth-account (its key-file code pulls a BLS pairing library:
half a second), eth-abi/eth-utils (pydantic) or an HTTP library (the chain layer speaks JSON-RPC over the standard library's HTTP
client); checked in a fresh interpreter against the devnet. ``scripts/bench_status.py`` times them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fixtures_devnet import DevnetEnv

PROBE = """
import json, sys
from click.testing import CliRunner
from fedchain.cli.main import cli
result = CliRunner().invoke(cli, sys.argv[1:])
heavy = sorted(m for m in ("torch", "fedchain.fl.training", "fedchain.engine.loop", "fedchain.audit.replay",
                            "web3", "eth_account", "eth_keyfile", "py_ecc", "requests", "httpx", "eth_abi",
                            "eth_utils", "eth_hash", "pydantic")
               if m in sys.modules)
print(json.dumps({"exit_code": result.exit_code, "output": result.output, "heavy": heavy}))
"""


@pytest.mark.parametrize("command", [("participant", "status", "{participant}"), ("round", "status"),
                                     ("admin", "members")])
def test_status_commands_import_no_torch(federation_env: DevnetEnv, command: tuple[str, ...], tmp_path) -> None:
    args = [c.format(participant=federation_env.admitted[0].address) for c in command]
    args += ["--rpc-url", federation_env.url, "--address", federation_env.deployment.address, "--store", "local",
             "--state-dir", str(tmp_path), "--json"]
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, check=True)
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["exit_code"] == 0, probe["output"]
    assert probe["heavy"] == [], f"{' '.join(command)} imported {probe['heavy']}"


def test_participant_status_reads_the_keystores_address_without_unlocking_it(federation_env: DevnetEnv,
                                                                            tmp_path) -> None:
    from click.testing import CliRunner

    from fedchain.chain.accounts import create_keystore
    from fedchain.cli.main import cli

    account = federation_env.admitted[0]
    create_keystore(tmp_path, "a password nobody types", name="st-mary", private_key=bytes(account.key),
                    iterations=2**10)
    result = CliRunner().invoke(cli, [
        "participant", "status", "--keystore", "st-mary", "--state-dir", str(tmp_path), "--rpc-url", federation_env.url,
        "--address", federation_env.deployment.address, "--store", "local", "--json",
    ], env={"FEDCHAIN_PASSWORD": None, "FEDCHAIN_PRIVATE_KEY": None})
    assert result.exit_code == 0, result.output  # no password asked: a status needs only the address
    assert json.loads(result.stdout)["address"] == account.address
    assert json.loads(result.stdout)["status"] == "active"

"""Connection and deployment failure modes against the real devnet."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from fedchain.chain.connection import Connection
from fedchain.chain.federation import (
    deploy,
    deployment_path,
    load_deployment,
    load_federation_artifact,
    read_deployment,
    verify_federation_code,
    write_deployment,
)
from fedchain.chain.ledger import ChainLedger
from fedchain.errors import (
    ChainIdMismatchError,
    DeploymentNotFoundError,
    ExitCode,
    InsufficientFundsError,
    RpcUnavailableError,
)
from fedchain.services.base import free_port
from tests.fixtures_devnet import DevnetEnv


def test_unreachable_rpc_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RpcUnavailableError, match=url.replace(".", r"\.")) as info:
        Connection(url, timeout_s=2)
    assert info.value.exit_code == ExitCode.RPC_UNAVAILABLE
    message = str(info.value)
    assert message.startswith(f"cannot reach the Ethereum node at {url}: [Errno ")
    assert message.endswith("Connection refused") and "\n" not in message


def test_chain_id_mismatch(chain_env: DevnetEnv) -> None:
    with pytest.raises(ChainIdMismatchError) as info:
        Connection(chain_env.url, expected_chain_id=1)
    assert (info.value.expected, info.value.actual) == (1, 31337)


def test_deployment_record_round_trips(chain_env: DevnetEnv) -> None:
    record = load_deployment(chain_env.state_dir, chain_env.conn)
    assert record == chain_env.deployment
    data = json.loads(deployment_path(chain_env.state_dir, 31337).read_text())
    assert data["address"] == chain_env.deployment.address and len(data["source_hash"]) == 64


def test_unknown_deployment(chain_env: DevnetEnv, tmp_path: Path) -> None:
    with pytest.raises(DeploymentNotFoundError, match="no Federation deployment recorded for chain 31337"):
        load_deployment(tmp_path, chain_env.conn)
    with pytest.raises(DeploymentNotFoundError):
        ChainLedger.connect(chain_env.url, tmp_path)


def test_deployment_without_code(chain_env: DevnetEnv, tmp_path: Path) -> None:
    from dataclasses import replace

    write_deployment(tmp_path, replace(chain_env.deployment, address=chain_env.accounts.outsider.address))
    with pytest.raises(DeploymentNotFoundError, match="no contract code at"):
        load_deployment(tmp_path, chain_env.conn)


# init code that deploys the 10-byte runtime "return uint256(42)"
OTHER_CONTRACT_INIT = bytes.fromhex("600a600c600039600a6000f3" + "602a60005260206000f3")


def test_deployment_with_other_code(chain_env: DevnetEnv, tmp_path: Path) -> None:
    from dataclasses import replace

    _, receipt = chain_env.conn.send_transaction(chain_env.accounts.outsider, to=None, data=OTHER_CONTRACT_INIT)
    other = to_checksum_address(receipt["contractAddress"])  # the node's answer, as JSON-RPC spells it
    assert chain_env.conn.code_at(other) == bytes.fromhex("602a60005260206000f3")
    write_deployment(tmp_path, replace(chain_env.deployment, address=other))
    with pytest.raises(DeploymentNotFoundError, match=f"the code at {other} .* is not the Federation contract"):
        load_deployment(tmp_path, chain_env.conn)
    with pytest.raises(DeploymentNotFoundError, match="is not the Federation contract"):
        ChainLedger.connect(chain_env.url, tmp_path)


def test_federation_built_from_other_sources_is_refused(chain_env: DevnetEnv) -> None:
    artifact = load_federation_artifact()
    code = bytearray(bytes.fromhex(artifact["deployedBytecode"][2:]))
    code[-40] ^= 0xFF  # inside solc's metadata hash: the same contract compiled from different sources
    stand_in = chain_env.accounts.participants[7].address
    chain_env.conn.request("anvil_setCode", [stand_in, "0x" + code.hex()])
    with pytest.raises(DeploymentNotFoundError, match=f"runtime code keccak256 0x{keccak(bytes(code)).hex()}"):
        verify_federation_code(chain_env.conn, stand_in)
    verify_federation_code(chain_env.conn, chain_env.deployment.address)


def test_unfunded_account_cannot_send(federation_env: DevnetEnv) -> None:
    poor = Account.create()
    with pytest.raises(InsufficientFundsError, match=poor.address) as info:
        federation_env.ledger(poor).register("org", "x", b"", 1)
    assert info.value.exit_code == ExitCode.INSUFFICIENT_FUNDS


def test_failed_deploy_writes_no_record(chain_env: DevnetEnv, tmp_path: Path) -> None:
    poor = Account.create()
    with pytest.raises(InsufficientFundsError):
        deploy(chain_env.conn, poor, poor.address, poor.address, state_dir=tmp_path)
    assert not deployment_path(tmp_path, chain_env.conn.chain_id).exists()
    with pytest.raises(DeploymentNotFoundError):
        read_deployment(tmp_path, chain_env.conn.chain_id)


def test_deploy_records_and_logs_gas_never_keys(
    chain_env: DevnetEnv, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    admin = chain_env.accounts.admin
    with caplog.at_level(logging.INFO, logger="fedchain"):
        contract, deployment, report = deploy(chain_env.conn, admin, admin.address, admin.address, state_dir=tmp_path)
    assert read_deployment(tmp_path, chain_env.conn.chain_id) == deployment
    assert (deployment.tx_hash, deployment.block_number) == (report.tx_hash, report.block_number)
    assert contract.latest_round_id() == 0
    assert report.gas_used > 1_000_000
    text = caplog.text
    assert report.tx_hash in text and f"gas {report.gas_used}" in text
    assert admin.key.hex() not in text and admin.key.hex()[2:] not in text


def test_chain_ledger_connects_from_state_dir(chain_env: DevnetEnv) -> None:
    ledger = ChainLedger.connect(chain_env.url, chain_env.state_dir, chain_env.accounts.admin, expected_chain_id=31337)
    assert ledger.sender == chain_env.accounts.admin.address
    assert ledger.latest_round_id() == 0
    assert ledger.block_number() >= chain_env.deployment.block_number


@contextmanager
def fake_node(answer: Callable[[dict[str, Any]], dict[str, Any] | tuple[int, bytes]], *,
              truncate: bool = False) -> Iterator[str]:
    """A JSON-RPC node on loopback (its URL): ``eth_chainId`` answers 31337, every other call
    ``answer(call)``: a result or an error object, or (HTTP status, raw body) to answer exactly that; with
    ``truncate`` those answers stop after three bytes of their body and the connection closes, as a node
    killed mid-answer does."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Node(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook
            call = json.loads(self.rfile.read(int(self.headers["content-length"])))
            chain_id = call["method"] == "eth_chainId"
            reply = {"result": "0x7a69"} if chain_id else answer(call)
            status, body = reply if isinstance(reply, tuple) else (
                200, json.dumps({"jsonrpc": "2.0", "id": call["id"], **reply}).encode())
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if truncate and not chain_id:
                self.wfile.write(body[:3])  # the rest never comes: the connection closes
                self.close_connection = True
            else:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_a_devnet_restarting_its_anvil_is_an_outage_to_ride_out_not_a_chain_error() -> None:
    """The managed devnet's supervisor answers DEVNET_UNAVAILABLE_CODE while its anvil is down:
    agents must take that as an unreachable node (and retry), never as a failed call."""
    from fedchain.errors import RpcUnavailableError
    from fedchain.services.base import DEVNET_UNAVAILABLE_CODE

    restarting = {"error": {"code": DEVNET_UNAVAILABLE_CODE, "message": "the devnet's anvil is restarting"}}
    with fake_node(lambda call: restarting) as url:
        with pytest.raises(RpcUnavailableError, match="restarting"):
            Connection(url).block_number()


def test_a_node_that_dies_between_its_answers_headers_and_body_is_an_outage_not_a_crash() -> None:
    """A SIGKILL of the devnet can land after the answer's headers went out and before its body:
    the client reads a truncated body (requests' ChunkedEncodingError). That is an unreachable
    node to ride out (RpcUnavailableError), never an exception that ends an agent."""
    from fedchain.errors import RpcUnavailableError

    with fake_node(lambda call: {"result": "0x7a69"}, truncate=True) as url:
        with pytest.raises(RpcUnavailableError, match="broke mid-answer"):
            Connection(url).block_number()


def test_a_read_whose_block_vanished_under_it_is_an_outage_to_ride_out() -> None:
    """A read racing a rewind or reorganisation is resolved against a block the node no longer has
    (anvil: ``BlockOutOfRangeError``): the same read a moment later succeeds, so agents retry it
    (RpcUnavailableError) rather than die of a ChainError."""
    from fedchain.errors import RpcUnavailableError

    rewound = {"error": {"code": -32602, "message": "BlockOutOfRangeError: block height is 20 but requested was 21"}}
    with fake_node(lambda call: rewound) as url:
        with pytest.raises(RpcUnavailableError, match="changed under the read"):
            Connection(url).block_number()


def test_a_nonce_taken_by_another_process_of_the_same_key_is_signed_again(
    chain_env: DevnetEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes signing with one key (a member's agent and its votes) race for a nonce: the
    one that read the nonce first but sent second gets 'nonce too low'; it signs again with a fresh
    nonce instead of failing."""
    from eth_account import Account

    from fedchain.types import Wei

    account = Account.create()
    chain_env.conn.fund_from_dev_account(account.address, Wei(10**18))
    conn = Connection(chain_env.url)
    conn.transfer(account, chain_env.accounts.admin.address, Wei(1))  # nonce 0 is taken
    real_batch, real_count = conn.rpc.batch, conn.transaction_count
    reads: list[int] = []

    def stale_batch(calls: Any) -> list[Any]:
        answers = real_batch(calls)
        if not reads:  # the first nonce read is stale: it says 0 although nonce 0 was taken
            answers = ["0x0" if c.method == "eth_getTransactionCount" else a for c, a in zip(calls, answers, strict=True)]
        reads.append(1)
        return answers

    def count(address: str, block: object = "latest") -> int:
        reads.append(1)
        return real_count(address, block)  # type: ignore[arg-type]

    monkeypatch.setattr(conn.rpc, "batch", stale_batch)
    monkeypatch.setattr(conn, "transaction_count", count)
    report = conn.transfer(account, chain_env.accounts.admin.address, Wei(1))

    assert report.block_number > 0 and len(reads) == 2
    assert real_count(account.address) == 2


def test_a_transaction_is_three_round_trips_on_one_kept_alive_connection(chain_env: DevnetEnv) -> None:
    """Estimate, fees, nonce and balance go in one batch, then the raw transaction, then its receipt (mined by
    the time the send returns on an automining devnet, but anvil may answer a read or two before it lands):
    three HTTP exchanges and a read per extra receipt poll, no chain-id check per request."""
    from fedchain.types import Wei

    conn = Connection(chain_env.url)
    conn.transfer(chain_env.accounts.outsider, chain_env.accounts.admin.address, Wei(1))  # the connection is open
    sock = conn.rpc._conn.sock if conn.rpc._conn is not None else None
    before, counts = conn.rpc.exchanges, dict(conn.rpc.counts)
    report = conn.transfer(chain_env.accounts.outsider, chain_env.accounts.admin.address, Wei(1))
    sent = {m: n - counts.get(m, 0) for m, n in conn.rpc.counts.items() if n - counts.get(m, 0)}
    assert report.block_number > 0
    polls = sent.pop("eth_getTransactionReceipt")
    assert conn.rpc.exchanges - before == 2 + polls and polls <= 3
    assert sent == {"eth_getBlockByNumber": 1, "eth_maxPriorityFeePerGas": 1, "eth_getTransactionCount": 1,
                    "eth_getBalance": 1, "eth_estimateGas": 1, "eth_sendRawTransaction": 1}
    assert conn.rpc._conn is not None and conn.rpc._conn.sock is sock  # the same socket: kept alive


def test_a_kept_alive_connection_the_node_closed_is_opened_again(chain_env: DevnetEnv) -> None:
    """A node that closes idle connections (or restarted): the next request opens a fresh one, transparently."""
    import socket

    conn = Connection(chain_env.url)
    head = conn.block_number()
    assert conn.rpc._conn is not None and conn.rpc._conn.sock is not None
    old = conn.rpc._conn.sock
    old.shutdown(socket.SHUT_RDWR)  # as if the node had dropped it
    assert conn.block_number() == head
    assert conn.rpc._conn is not None and conn.rpc._conn.sock is not old

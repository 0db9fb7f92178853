"""The managed devnet under its supervisor: a SIGKILL of anvil, of the supervisor or of both loses
no transaction a client saw mined; interval mining moves a quiet chain's clock; the state file and
its directory are the owner's only."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from eth_account import Account

from fedchain.cli.main import cli
from fedchain.services.base import process_alive
from fedchain.services.devnet import DevnetProcess, devnet_status, read_devnet, start_devnet, stop_devnet
from fedchain.services.supervisor import Journal, StateFile

pytestmark = pytest.mark.devnet

# anvil's first well-known development key (the default mnemonic): funded on every fresh devnet
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
RECIPIENT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


class RpcError(Exception):
    pass


def call(client: httpx.Client, url: str, method: str, params: list[Any] | None = None) -> Any:
    body = client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).json()
    if "error" in body:
        raise RpcError(body["error"])
    return body["result"]


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Sender:
    """Sends signed transfers one after another, riding out outages; records every receipt it saw."""

    url: str
    seen: list[tuple[str, str]] = field(default_factory=list)  # (tx hash, block hash)
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        account = Account.from_key(DEV_KEY)
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                try:
                    nonce = int(call(client, self.url, "eth_getTransactionCount", [account.address, "pending"]), 16)
                    signed = account.sign_transaction({
                        "to": RECIPIENT, "value": 1, "gas": 21_000, "nonce": nonce, "chainId": 31337,
                        "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9,
                    })
                    tx = call(client, self.url, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])
                    deadline = time.monotonic() + 5
                    while time.monotonic() < deadline:
                        receipt = call(client, self.url, "eth_getTransactionReceipt", [tx])
                        if receipt is not None:
                            self.seen.append((tx, receipt["blockHash"]))
                            break
                        time.sleep(0.01)
                except (httpx.HTTPError, RpcError, ValueError):
                    self.errors += 1
                    time.sleep(0.05)


@pytest.fixture()
def sender_for() -> Iterator[Callable[[str], Sender]]:
    started: list[tuple[Sender, threading.Thread]] = []

    def start(url: str) -> Sender:
        sender = Sender(url)
        thread = threading.Thread(target=sender.run, daemon=True)
        thread.start()
        started.append((sender, thread))
        return sender

    yield start
    for sender, thread in started:
        sender.stop.set()
        thread.join(timeout=30)


def anvil_pid(state_dir: Path) -> int:
    persistence = devnet_status(state_dir).persistence
    assert persistence is not None
    return persistence.anvil_pid


def assert_all_on_chain(url: str, seen: list[tuple[str, str]]) -> None:
    with httpx.Client(timeout=30) as client:
        missing = []
        for tx, block_hash in seen:
            receipt = call(client, url, "eth_getTransactionReceipt", [tx])
            if receipt is None or receipt["blockHash"] != block_hash:
                missing.append(tx)
    assert not missing, f"{len(missing)} of {len(seen)} transactions seen mined are gone: {missing[:3]}"


def test_sigkill_of_anvil_loses_no_transaction_a_client_saw_mined(tmp_path: Path, sender_for: Callable[[str], Sender]) -> None:
    try:
        info, _ = start_devnet(tmp_path, block_time_s=0.5)
        sender = sender_for(info.url)
        for kill in range(3):
            wanted = 10 * (kill + 1)
            wait_for(lambda: len(sender.seen) >= wanted, 60, f"transactions before kill {kill + 1}")  # noqa: B023
            killed = anvil_pid(tmp_path)
            with httpx.Client(timeout=30) as client:
                seen_head = call(client, info.url, "eth_getBlockByNumber", ["latest", False])  # maybe an empty block
            os.kill(killed, signal.SIGKILL)
            wait_for(lambda: anvil_pid(tmp_path) != killed, 60, "the supervisor to restart anvil")  # noqa: B023
            with httpx.Client(timeout=30) as client:
                same = call(client, info.url, "eth_getBlockByNumber", [seen_head["number"], False])
            assert same is not None and same["hash"] == seen_head["hash"]  # no block anyone saw is taken back
        wait_for(lambda: len(sender.seen) >= 40, 60, "transactions after the last restart")
        sender.stop.set()

        status = devnet_status(tmp_path)
        assert status.persistence is not None and status.persistence.anvil_restarts == 3
        assert read_devnet(tmp_path) is not None and status.url == info.url  # the public port never moved
        assert_all_on_chain(info.url, sender.seen)
    finally:
        stop_devnet(tmp_path)


def test_sigkill_of_the_whole_devnet_loses_no_transaction_and_it_comes_back_on_its_port(
    tmp_path: Path, sender_for: Callable[[str], Sender]
) -> None:
    try:
        info, _ = start_devnet(tmp_path, block_time_s=0)
        sender = sender_for(info.url)
        wait_for(lambda: len(sender.seen) >= 15, 60, "transactions before the kill")
        anvil = anvil_pid(tmp_path)

        os.kill(info.pid, signal.SIGKILL)  # the supervisor: the kernel takes its anvil along
        wait_for(lambda: not process_alive(anvil), 10, "anvil to die with its supervisor")
        assert read_devnet(tmp_path) is None
        seen_before_restart = len(sender.seen)
        restarted, reused = start_devnet(tmp_path, block_time_s=0)
        wait_for(lambda: len(sender.seen) >= seen_before_restart + 10, 60, "transactions after the restart")
        sender.stop.set()

        assert not reused and restarted.url == info.url
        assert sender.errors > 0  # the outage was real
        assert_all_on_chain(info.url, sender.seen)
    finally:
        stop_devnet(tmp_path)


def test_interval_mining_moves_a_watched_quiet_chain_and_zero_turns_it_off(tmp_path: Path) -> None:
    with httpx.Client(timeout=10) as client:
        try:
            info, _ = start_devnet(tmp_path / "mining", block_time_s=0.5)
            first = call(client, info.url, "eth_getBlockByNumber", ["latest", False])

            def passed() -> bool:
                latest = call(client, info.url, "eth_getBlockByNumber", ["latest", False])
                return int(latest["timestamp"], 16) >= int(first["timestamp"], 16) + 2

            wait_for(passed, 30, "a block 2 s later without any transaction")
            assert info.block_time_s == 0.5
            watched = int(call(client, info.url, "eth_blockNumber"), 16)
            time.sleep(1.5)  # nobody asks: nothing is mined
            after = call(client, info.url, "eth_getBlockByNumber", ["latest", False])
            assert int(after["number"], 16) == watched + 1  # one block for this request, none while unwatched
            assert time.time() - int(after["timestamp"], 16) < 2
        finally:
            stop_devnet(tmp_path / "mining")
        try:
            quiet, _ = start_devnet(tmp_path / "quiet", block_time_s=0)
            before = int(call(client, quiet.url, "eth_blockNumber"), 16)
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                assert int(call(client, quiet.url, "eth_blockNumber"), 16) == before
                time.sleep(0.1)
        finally:
            stop_devnet(tmp_path / "quiet")


def test_clean_stop_keeps_every_block_and_the_files_are_the_owners_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with httpx.Client(timeout=10) as client:
        try:
            info, _ = start_devnet(state, block_time_s=0.2)
            tx = call(client, info.url, "eth_sendTransaction", [{"from": Account.from_key(DEV_KEY).address,
                                                                 "to": RECIPIENT, "value": "0x1"}])
            wait_for(lambda: int(call(client, info.url, "eth_blockNumber"), 16) >= 8, 30, "empty blocks")
            stopped = stop_devnet(state)
            assert stopped is not None
            head_file = StateFile(Path(info.state_file or ""))
            dumped = json.loads(gzip.decompress(head_file.path.read_bytes()))
            best = dumped["best_block_number"]
            head = int(best, 16) if isinstance(best, str) else int(best)
            assert head >= 8  # the empty blocks too, not only the transaction's

            again, _ = start_devnet(state, block_time_s=0)
            assert int(call(client, again.url, "eth_blockNumber"), 16) == head
            assert call(client, again.url, "eth_getTransactionReceipt", [tx]) is not None
        finally:
            stop_devnet(state)
    devnet_dir = state / "devnet"
    assert stat.S_IMODE(devnet_dir.stat().st_mode) == 0o700
    for path in devnet_dir.iterdir():
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert not (devnet_dir / "load-state.json").exists()


def test_cli_start_takes_the_block_time_and_status_reports_the_persistence(tmp_path: Path) -> None:
    sd = str(tmp_path)
    try:
        started = CliRunner().invoke(cli, ["devnet", "start", "--block-time", "0", "--state-dir", sd, "--json"])
        assert started.exit_code == 0, started.output
        assert json.loads(started.stdout)["block_time_s"] == 0
        with httpx.Client(timeout=10) as client:
            call(client, json.loads(started.stdout)["url"], "eth_sendTransaction",
                 [{"from": Account.from_key(DEV_KEY).address, "to": RECIPIENT, "value": "0x1"}])

        status = CliRunner().invoke(cli, ["devnet", "status", "--state-dir", sd, "--json"])

        assert status.exit_code == 0, status.output
        persistence = json.loads(status.stdout)["persistence"]
        assert persistence["persisted_block"] == 1 and persistence["dumps"] >= 1
        assert persistence["state_bytes"] > 0 and persistence["anvil_restarts"] == 0
        human = CliRunner().invoke(cli, ["devnet", "status", "--state-dir", sd])
        assert "written through block 1" in human.output
    finally:
        stop_devnet(tmp_path)


def test_a_negative_block_time_is_refused_naming_the_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["devnet", "start", "--block-time", "-1", "--state-dir", str(tmp_path)])

    assert result.exit_code == 2 and "--block-time" in result.output
    assert read_devnet(tmp_path) is None


def test_a_state_dir_of_an_unsupervised_anvil_is_taken_over(tmp_path: Path) -> None:
    legacy = tmp_path / "devnet" / "state.json"
    legacy.parent.mkdir()
    with httpx.Client(timeout=10) as client:
        with DevnetProcess("anvil") as old:  # what anvil's own --state wrote before the supervisor: plain JSON
            tx = call(client, old.url, "eth_sendTransaction", [{"from": Account.from_key(DEV_KEY).address,
                                                               "to": RECIPIENT, "value": "0x1"}])
            wait_for(lambda: call(client, old.url, "eth_getTransactionReceipt", [tx]) is not None, 10, "the transaction")
            legacy.write_bytes(gzip.decompress(bytes.fromhex(call(client, old.url, "anvil_dumpState")[2:])))
        try:
            info, _ = start_devnet(tmp_path, block_time_s=0)
            receipt = call(client, info.url, "eth_getTransactionReceipt", [tx])
            assert receipt is not None and int(receipt["blockNumber"], 16) == 1
        finally:
            stop_devnet(tmp_path)
    assert (tmp_path / "devnet" / "state.json.gz").is_file()


def test_an_oversized_request_is_refused_and_the_proxy_keeps_serving(tmp_path: Path) -> None:
    try:
        info, _ = start_devnet(tmp_path, block_time_s=0)
        with socket.create_connection(("127.0.0.1", info.port), timeout=10) as raw:
            raw.sendall(b"POST / HTTP/1.1\r\nHost: devnet\r\nContent-Length: 1000000000000\r\n\r\n{}")
            status_line = raw.recv(200).split(b"\r\n", 1)[0]
        assert b" 413 " in status_line
        with httpx.Client(timeout=10) as client:
            assert call(client, info.url, "eth_chainId") == "0x7a69"
    finally:
        stop_devnet(tmp_path)


def test_the_devnet_names_the_supervisor_by_its_module() -> None:
    """The devnet module spells the supervisor's marker itself (so that reading a devnet record imports no HTTP
    library); it must stay the supervisor module's own name."""
    from fedchain.services import devnet, supervisor

    assert devnet.SUPERVISOR_MARKER == supervisor.MARKER == supervisor.__name__


def test_sends_that_arrive_together_share_a_write_and_none_is_lost(tmp_path: Path) -> None:
    try:
        info, _ = start_devnet(tmp_path, block_time_s=0)
        with httpx.Client(timeout=30) as client:
            senders = call(client, info.url, "eth_accounts", [])[:8]
        seen: list[tuple[str, str]] = []
        lock = threading.Lock()

        def send_from(account: str) -> None:
            with httpx.Client(timeout=30) as client:
                for _ in range(6):
                    tx = call(client, info.url, "eth_sendTransaction", [{"from": account, "to": RECIPIENT, "value": "0x1"}])
                    receipt = call(client, info.url, "eth_getTransactionReceipt", [tx])  # mined and written before
                    with lock:
                        seen.append((tx, receipt["blockHash"]))

        before = devnet_status(tmp_path).persistence
        assert before is not None
        threads = [threading.Thread(target=send_from, args=(a,)) for a in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        after = devnet_status(tmp_path).persistence
        assert after is not None and len(seen) == 6 * len(senders)
        # eight senders at once: fewer writes than transactions (a dump made while others waited holds their blocks)
        assert after.dumps - before.dumps < len(seen), (after.dumps - before.dumps, len(seen))

        killed = anvil_pid(tmp_path)
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: anvil_pid(tmp_path) != killed, 60, "the supervisor to restart anvil")
        assert_all_on_chain(info.url, seen)  # every hash that went back survives
    finally:
        stop_devnet(tmp_path)


def _hashes(client: httpx.Client, url: str) -> list[str]:
    head = int(call(client, url, "eth_blockNumber"), 16)
    return [call(client, url, "eth_getBlockByNumber", [hex(n), False])["hash"] for n in range(head + 1)]


def test_blocks_go_to_the_journal_and_a_restarted_anvil_mines_them_again_unchanged(
        tmp_path: Path, sender_for: Callable[[str], Sender]) -> None:
    try:
        info, _ = start_devnet(tmp_path, block_time_s=0)
        sender = sender_for(info.url)
        wait_for(lambda: len(sender.seen) >= 25, 60, "transactions")
        sender.stop.set()
        time.sleep(0.3)
        before = devnet_status(tmp_path).persistence
        assert before is not None
        # a block costs one journal line, not a write of the whole chain
        assert before.journaled_blocks >= 25 and before.dumps <= 2 and before.journal_bytes > 0
        with httpx.Client(timeout=30) as client:
            seen = _hashes(client, info.url)
        killed = anvil_pid(tmp_path)
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: anvil_pid(tmp_path) != killed, 60, "the supervisor to restart anvil")
        with httpx.Client(timeout=30) as client:
            assert _hashes(client, info.url) == seen  # every block mined again, hash for hash
            after = devnet_status(tmp_path).persistence
            assert after is not None and after.dumps == before.dumps + 1 and after.journal_bytes == 0
            # the chain's clock is back in the present: a new block is not stamped in the past
            call(client, info.url, "evm_mine")
            latest = call(client, info.url, "eth_getBlockByNumber", ["latest", False])
            assert abs(int(latest["timestamp"], 16) - time.time()) < 5
        assert_all_on_chain(info.url, sender.seen)
    finally:
        stop_devnet(tmp_path)


def test_a_call_that_changes_more_than_blocks_writes_the_whole_state_and_empties_the_journal(tmp_path: Path) -> None:
    try:
        info, _ = start_devnet(tmp_path, block_time_s=0)
        with httpx.Client(timeout=30) as client:
            call(client, info.url, "evm_mine")  # the first write is the whole state (genesis included)
            call(client, info.url, "evm_mine")
            before = devnet_status(tmp_path).persistence
            assert before is not None and before.journal_bytes > 0
            call(client, info.url, "anvil_setBalance", [RECIPIENT, hex(12345)])
            after = devnet_status(tmp_path).persistence
            assert after is not None and after.dumps == before.dumps + 1 and after.journal_bytes == 0
            killed = anvil_pid(tmp_path)
            os.kill(killed, signal.SIGKILL)
            wait_for(lambda: anvil_pid(tmp_path) != killed, 60, "the supervisor to restart anvil")
            assert int(call(client, info.url, "eth_getBalance", [RECIPIENT, "latest"]), 16) == 12345
    finally:
        stop_devnet(tmp_path)


def test_the_journal_leaves_out_a_torn_last_line_and_stops_at_a_corrupt_one(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    assert journal.entries() == [] and journal.size() == 0
    entries = [{"block": n, "hash": f"0x{n:064x}", "timestamp": 1000 + n, "txs": []} for n in (1, 2)]
    journal.append(entries)
    assert journal.entries() == entries and stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    with journal.path.open("ab") as handle:
        handle.write(b'{"block":3,"hash":"0x')  # a write cut by a crash: never acknowledged
    assert journal.entries() == entries
    journal.path.write_bytes(journal.path.read_bytes().replace(b'"block":2', b'"block":"x"', 1) + b"\n"
                             + json.dumps(entries[0]).encode() + b"\n")
    assert journal.entries() == entries[:1]  # nothing from the line that does not parse on
    journal.reset()
    assert journal.entries() == [] and journal.size() == 0

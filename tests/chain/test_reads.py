"""Pinned reads (fedchain.chain.reads): one block for every read of a process's threads, each
identical read made once per block, never behind a block the process has seen; and on the real
devnet, through a pinned Connection: a transaction's sender reads its effect at once."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from fedchain.chain.connection import Connection
from fedchain.chain.federation import FederationContract
from fedchain.chain.ledger import ChainLedger
from fedchain.chain.reads import Head, PinnedReads
from fedchain.errors import RpcUnavailableError
from tests.fixtures_devnet import TASK_CID, TASK_DIGESTS, TASK_MAX_COMMIT_DURATION, DevnetEnv


class Chain:
    """A node's latest header, moved by the test; counts the header reads."""

    def __init__(self) -> None:
        self.number = 10
        self.fork = "a"
        self.reads = 0
        self.lag = 0  # answer this many blocks behind (a node behind its peers)

    def latest(self) -> dict[str, Any]:
        self.reads += 1
        n = self.number - self.lag
        return {"number": hex(n), "hash": f"0x{self.fork}{n:04x}"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_identical_reads_at_one_head_are_made_once_and_a_new_block_reads_again() -> None:
    chain, clock = Chain(), Clock()
    reads = PinnedReads(chain.latest, ttl_s=0.05, clock=clock)
    made: list[int] = []

    def fetch(head: Head) -> str:
        made.append(head.number)
        return f"state@{head.number}"

    assert reads.read("eth_call", {"to": "0x1"}, fetch)[0] == "state@10"
    assert reads.read("eth_call", {"to": "0x1"}, fetch)[0] == "state@10"
    assert reads.read("eth_call", {"to": "0x2"}, fetch)[0] == "state@10"  # other params: a read of its own
    assert made == [10, 10] and chain.reads == 1 and reads.shared == 1
    chain.number = 11
    clock.now += 0.01
    assert reads.read("eth_call", {"to": "0x1"}, fetch)[0] == "state@10"  # within the ttl: the pinned head
    clock.now += 0.05
    assert reads.read("eth_call", {"to": "0x1"}, fetch)[0] == "state@11"  # ttl over: the latest block again
    assert made == [10, 10, 11] and chain.reads == 2


def test_a_block_the_process_saw_is_never_read_past() -> None:
    chain, clock = Chain(), Clock()
    reads = PinnedReads(chain.latest, ttl_s=60.0, clock=clock)
    assert reads.head().number == 10
    chain.number = 12
    reads.saw_block(12)  # a receipt in block 12: the head within its ttl is too old now
    assert reads.head().number == 12 and chain.reads == 2
    reads.saw_block(11)  # older than the head: nothing to read
    assert reads.head().number == 12 and chain.reads == 2


def test_a_node_behind_the_floor_is_asked_again_until_it_catches_up() -> None:
    chain = Chain()
    reads = PinnedReads(chain.latest, ttl_s=60.0)
    reads.head()
    chain.number, chain.lag = 13, 2
    reads.saw_block(13)

    def catch_up() -> None:
        time.sleep(0.05)
        chain.lag = 0

    threading.Thread(target=catch_up).start()
    assert reads.head().number == 13 and chain.reads > 2


def test_a_rewound_chain_is_taken_as_it_is_after_the_wait_and_forget_drops_everything(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fedchain.chain.reads.FLOOR_WAIT_S", 0.05)
    chain = Chain()
    reads = PinnedReads(chain.latest, ttl_s=0.0)
    reads.saw_block(10)
    assert reads.head().number == 10
    chain.number, chain.fork = 8, "b"  # rewound below what was seen
    assert reads.head().number == 8
    started = time.monotonic()
    assert reads.head().number == 8 and time.monotonic() - started < 0.04  # the floor came down with it
    reads.forget()
    assert reads.read("eth_call", [], lambda head: head.hash)[0] == "0xb0008"


def test_threads_asking_for_one_read_wait_for_it_and_a_failure_is_the_asker_s_own() -> None:
    chain = Chain()
    reads = PinnedReads(chain.latest, ttl_s=60.0)
    gate, calls = threading.Event(), []

    def slow(head: Head) -> str:
        calls.append(threading.current_thread().name)
        gate.wait(5)
        return "answer"

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(reads.read("eth_call", ["x"], slow)[0]), name=f"t{i}")
               for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(5)
    assert results == ["answer"] * 8 and len(calls) == 1 and reads.shared == 7

    def failing(head: Head) -> str:
        raise RuntimeError("reverted")

    with pytest.raises(RuntimeError, match="reverted"):
        reads.read("eth_call", ["y"], failing)
    assert reads.read("eth_call", ["y"], lambda head: "second try")[0] == "second try"  # a failure is not kept


def test_a_malformed_latest_block_is_an_unavailable_node_not_a_crash() -> None:
    for answer in (None, {"number": "0xzz", "hash": "0x1"}, {"hash": "0x1"}, ["0x1"]):
        reads = PinnedReads(lambda answer=answer: answer)
        with pytest.raises(RpcUnavailableError, match="no usable latest block"):
            reads.head()


def test_a_new_fork_at_the_same_height_drops_the_answers() -> None:
    chain, clock = Chain(), Clock()
    reads = PinnedReads(chain.latest, ttl_s=0.05, clock=clock)
    assert reads.read("eth_call", [1], lambda head: head.hash)[0] == "0xa000a"
    chain.fork = "c"
    clock.now += 1
    assert reads.read("eth_call", [1], lambda head: head.hash)[0] == "0xc000a"


def test_a_pinned_connection_reads_its_own_transaction_at_once_and_others_after_the_ttl(
        chain_env: DevnetEnv) -> None:
    pinned = Connection(chain_env.url, tx_timeout_s=30)
    other = Connection(chain_env.url, tx_timeout_s=30)
    try:
        reads = pinned.pin_reads(ttl_s=0.2)
        ledger = ChainLedger(FederationContract.from_deployment(pinned, chain_env.deployment, chain_env.accounts.admin))
        assert ledger.latest_round_id() == 0 and ledger.latest_round_id() == 0
        assert reads.shared >= 1  # one block: one read
        start = int(pinned.latest_header()["number"], 16)
        other.request("evm_mine")  # a block this connection knows nothing of: read once the ttl has passed
        assert int(pinned.latest_header()["number"], 16) == start
        time.sleep(0.25)
        assert int(pinned.latest_header()["number"], 16) == start + 1
        # a transaction this connection waited for is in every read after its receipt, whatever the ttl
        reads.ttl_s = 3600.0
        assert ledger.task() is None
        FederationContract.from_deployment(pinned, chain_env.deployment, chain_env.accounts.admin).configure_task(
            *TASK_DIGESTS, TASK_CID, TASK_MAX_COMMIT_DURATION)
        task = ledger.task()
        assert task is not None and task.config_cid == TASK_CID
        # a development call that may rewind the chain drops the pinned head
        other_block = other.block_number()
        snapshot = pinned.request("evm_snapshot")
        pinned.request("evm_mine")
        pinned.request("evm_revert", [snapshot])
        assert int(pinned.latest_header()["number"], 16) == other_block
    finally:
        pinned.close()
        other.close()

"""The aggregator after a restart and through outages: a round left open is resumed (when the
transport is told to), and an unreachable store does not end the run."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fedchain.engine.ledger import LedgerTransport
from fedchain.engine.loop import OutagePolicy, run_rounds
from fedchain.errors import AggregationError, StorageUnavailableError
from fedchain.ports import RoundStatus
from fedchain.types import RoundId
from tests.protocol.harness import Fed


def test_a_round_left_open_is_resumed_not_reopened(fed: Fed, caplog: pytest.LogCaptureFixture) -> None:
    rid = fed.open_round()  # the aggregator stops here
    for p in fed.participants:
        p.submit(rid)
    restarted = LedgerTransport(fed.aggregator.ledger, fed.store, resume=True)
    caplog.set_level(logging.WARNING, logger="fedchain")

    run = run_rounds(restarted, 1)

    assert f"round {rid} is still open" in caplog.text and "resuming it" in caplog.text
    assert [int(r.round_id) for r in run.rounds] == [rid] and run.rounds[0].finalized
    assert int(fed.reader.latest_round_id()) == rid
    assert fed.auditor().audit().ok


def test_without_resume_a_round_left_open_is_a_clear_error(fed: Fed) -> None:
    rid = fed.open_round()

    with pytest.raises(AggregationError, match=f"round {rid} is still open.*fedchain round close"):
        LedgerTransport(fed.aggregator.ledger, fed.store).open_round()
    assert int(fed.reader.latest_round_id()) == rid


class _StoreDown:
    """The real blob store, unreachable for the next ``failures`` reads once ``armed``."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def get(self, cid: str) -> bytes:
        if self.failures:
            self.failures -= 1
            raise StorageUnavailableError("blob store unreachable")
        return bytes(self._store.get(cid))


def test_the_round_loop_rides_out_a_store_outage_and_resumes_its_round(fed: Fed) -> None:
    store = _StoreDown(fed.store)
    transport = LedgerTransport(fed.aggregator.ledger, store, resume=True)  # type: ignore[arg-type]
    looked_up: list[int] = []

    def submit_then_break(rid: RoundId) -> None:
        for p in fed.participants:
            p.submit(rid)
        store.failures = 3  # the store goes away while the aggregator collects

    transport.on_open = submit_then_break
    policy = OutagePolicy(first_pause_s=0.01, on_outage=lambda: looked_up.append(1))

    run = run_rounds(transport, 2, ride_out=policy)

    assert [r.finalized for r in run.rounds] == [True, True]
    assert [len(r.included) for r in run.rounds] == [3, 3]
    assert store.failures == 0 and len(looked_up) == 6
    assert fed.reader.round(RoundId(2)).status == RoundStatus.FINALIZED
    assert fed.auditor().audit().ok


def test_an_outage_longer_than_the_policy_allows_is_raised(fed: Fed) -> None:
    store = _StoreDown(fed.store)
    transport = LedgerTransport(fed.aggregator.ledger, store, resume=True)  # type: ignore[arg-type]

    def submit_then_break(rid: RoundId) -> None:
        for p in fed.participants:
            p.submit(rid)
        store.failures = 10**6

    transport.on_open = submit_then_break

    with pytest.raises(StorageUnavailableError):
        run_rounds(transport, 1, ride_out=OutagePolicy(max_outage_s=0.2, first_pause_s=0.05))
    assert fed.reader.round(RoundId(1)).status == RoundStatus.OPEN


def test_without_a_policy_an_outage_ends_the_run(fed: Fed) -> None:
    store = _StoreDown(fed.store)
    transport = LedgerTransport(fed.aggregator.ledger, store)  # type: ignore[arg-type]

    def submit_then_break(rid: RoundId) -> None:
        for p in fed.participants:
            p.submit(rid)
        store.failures = 1

    transport.on_open = submit_then_break

    with pytest.raises(StorageUnavailableError):
        run_rounds(transport, 1)

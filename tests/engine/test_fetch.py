"""LedgerTransport fetches a round's blobs concurrently, under one overall deadline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fedchain.codec.canonical import sha256_digest
from fedchain.engine.ledger import fetch_all
from fedchain.errors import StorageUnavailableError
from fedchain.ports import UpdateCommitment
from fedchain.protocol.rounds import RULE_BLOB_UNAVAILABLE
from fedchain.storage.cid import compute_cid
from fedchain.storage.local import LocalStore
from fedchain.types import Address, Cid, Digest, RoundId

WINDOW_S = 1.0


def _commitment(i: int, data: bytes) -> UpdateCommitment:
    return UpdateCommitment(RoundId(1), Address("0x" + f"{i + 1:02x}" * 20), sha256_digest(data), compute_cid(data), 10,
                            Digest(b"\x00" * 32), 1, "0x" + "00" * 32, i)


def test_eight_unavailable_blobs_cost_one_retry_window_not_eight(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    missing = [_commitment(i, f"never stored {i}".encode()) for i in range(8)]

    t0 = time.monotonic()
    outcomes = fetch_all(store, missing, window_s=WINDOW_S)
    elapsed = time.monotonic() - t0

    assert [o.error_rule for o in outcomes] == [RULE_BLOB_UNAVAILABLE] * 8
    assert WINDOW_S <= elapsed < 2 * WINDOW_S  # sequential fetching took 8 windows


def test_outcomes_keep_the_commitment_order_and_carry_the_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    blobs = [f"blob {i}".encode() for i in range(5)]
    for i in (0, 2, 4):
        store.put(blobs[i])
    commitments = [_commitment(i, b) for i, b in enumerate(blobs)]

    outcomes = fetch_all(store, commitments, window_s=0.2)

    assert [o.commitment for o in outcomes] == commitments
    assert [o.data for o in outcomes] == [blobs[0], None, blobs[2], None, blobs[4]]


class _UnreachableFor:
    """The real local store, except that reading ``cid`` finds the backend unreachable."""

    def __init__(self, store: LocalStore, cid: Cid) -> None:
        self._store = store
        self._cid = cid

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._store, name)

    def get(self, cid: Cid) -> bytes:
        if cid == self._cid:
            time.sleep(0.1)  # the others are waiting for their blobs by now
            raise StorageUnavailableError("blob store unreachable")
        return self._store.get(cid)


def test_an_unreachable_store_aborts_the_fetch_at_once_instead_of_blaming_participants(tmp_path: Path) -> None:
    commitments = [_commitment(i, f"never stored {i}".encode()) for i in range(4)]
    store = _UnreachableFor(LocalStore(tmp_path), commitments[2].cid)

    t0 = time.monotonic()
    with pytest.raises(StorageUnavailableError, match="unreachable"):
        fetch_all(store, commitments, window_s=30.0)  # type: ignore[arg-type]

    assert time.monotonic() - t0 < 5.0  # the waiting workers stopped at their next pause


def test_no_commitments_fetch_nothing(tmp_path: Path) -> None:
    assert fetch_all(LocalStore(tmp_path), [], window_s=1.0) == ()

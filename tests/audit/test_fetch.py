"""fetch_committed: only a definitive answer about a committed blob is a rejection."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedchain.codec.canonical import sha256_digest
from fedchain.errors import StorageUnavailableError
from fedchain.ports import UpdateCommitment
from fedchain.protocol.rounds import RULE_BLOB_INTEGRITY, RULE_BLOB_UNAVAILABLE, fetch_committed
from fedchain.storage.cid import compute_cid
from fedchain.storage.ipfs import IpfsStore
from fedchain.storage.local import LocalStore
from fedchain.types import Address, Cid, Digest, RoundId

BLOB = b"an update blob"


def _commitment(cid: str) -> UpdateCommitment:
    return UpdateCommitment(RoundId(1), Address("0x" + "11" * 20), sha256_digest(BLOB), Cid(cid), 10,
                            Digest(b"\x00" * 32), 1, "0x" + "00" * 32, 0)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_blob_that_turns_up_within_the_window_is_fetched(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    clock = _Clock()
    waits: list[float] = []

    def wait(seconds: float) -> None:  # the blob reaches the store while the aggregator waits
        waits.append(seconds)
        clock.now += seconds
        store.put(BLOB)

    out = fetch_committed(store, _commitment(compute_cid(BLOB)), retry_window_s=5, sleep=wait, clock=clock)

    assert out.data == BLOB and out.error_rule is None
    assert len(waits) == 1


def test_blob_still_missing_after_the_window_is_rejected_as_unavailable(tmp_path: Path) -> None:
    clock = _Clock()
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    out = fetch_committed(LocalStore(tmp_path), _commitment(compute_cid(BLOB)), retry_window_s=2, sleep=wait, clock=clock)

    assert out.data is None and out.error_rule == RULE_BLOB_UNAVAILABLE
    assert sum(waits) == pytest.approx(2) and len(waits) > 1


def test_bytes_that_do_not_match_the_cid_are_rejected_at_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cid = store.put(BLOB)
    path = store.path_of(cid)
    path.chmod(0o644)
    path.write_bytes(BLOB + b"!")

    out = fetch_committed(store, _commitment(cid), retry_window_s=60, sleep=lambda s: pytest.fail("no retry expected"))

    assert out.data is None and out.error_rule == RULE_BLOB_INTEGRITY


def test_unreachable_store_raises_instead_of_rejecting() -> None:
    store = IpfsStore("http://127.0.0.1:9", retries=0)

    with pytest.raises(StorageUnavailableError):
        fetch_committed(store, _commitment(compute_cid(BLOB)), retry_window_s=0)

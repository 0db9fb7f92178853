"""Blob reads shared by a host's agents (fedchain.storage.shared): one fetch per blob for every thread, only
verified blobs kept, a bound on what is kept, and writes left to each agent's own store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fedchain.errors import IntegrityError
from fedchain.storage.local import LocalStore
from fedchain.storage.shared import BlobCache, CachedReads
from fedchain.types import Cid


class CountingStore(LocalStore):
    def __init__(self, root: Path, delay_s: float = 0.0) -> None:
        super().__init__(root)
        self.gets = 0
        self.delay_s = delay_s

    def get(self, cid: Cid) -> bytes:
        self.gets += 1
        time.sleep(self.delay_s)
        return super().get(cid)


def test_agents_reading_one_blob_at_once_fetch_it_once(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "blobs", delay_s=0.1)
    cid = store.put(b"the round's base model")
    cache = BlobCache()
    agents = [CachedReads(store, cache) for _ in range(8)]
    got: list[bytes] = []
    threads = [threading.Thread(target=lambda a=a: got.append(a.get(cid))) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert got == [b"the round's base model"] * 8 and store.gets == 1
    assert agents[0].get(cid) == b"the round's base model" and store.gets == 1 and cache.shared == 8


def test_a_blob_that_fails_verification_is_not_kept_and_each_reader_sees_the_error(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "blobs")
    cid = store.put(b"honest bytes")
    store.path_of(cid).write_bytes(b"tampered bytes")  # the store's file no longer matches its CID
    reads = CachedReads(store, BlobCache())
    for _ in range(2):
        with pytest.raises(IntegrityError):
            reads.get(cid)
    assert store.gets == 2  # nothing was kept: the second read asked the store again


def test_the_cache_keeps_at_most_its_bound_dropping_the_least_recently_used(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "blobs")
    cids = [store.put(bytes([i]) * 100) for i in range(3)]
    reads = CachedReads(store, BlobCache(max_bytes=250))
    reads.get(cids[0])
    reads.get(cids[1])
    reads.get(cids[0])  # the most recently used now
    reads.get(cids[2])  # 300 bytes: the least recently used (cids[1]) goes
    assert store.gets == 3
    reads.get(cids[0])
    assert store.gets == 3
    reads.get(cids[1])
    assert store.gets == 4
    big = store.put(b"x" * 1000)  # larger than the bound: never kept
    reads.get(big)
    reads.get(big)
    assert store.gets == 6


def test_writes_and_the_rest_go_to_the_agent_s_own_store(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "blobs")
    reads = CachedReads(store, BlobCache())
    cid = reads.put(b"an update")
    assert store.has(cid) and reads.has(cid) and reads.describe() == store.describe()
    reads.pin(cid)
    assert reads.get_file(cid, tmp_path / "out.bin") == len(b"an update")
    with pytest.raises(ValueError, match="max_bytes"):
        BlobCache(max_bytes=-1)

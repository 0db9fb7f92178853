"""Blob reads shared by the threads of one process (``participant host``).

Every agent a host runs fetches the same blobs each round: the round's base model and the task
document. A blob is its CID's content, and every store checks what it returns against the CID,
so a verified blob one agent fetched is the blob any other would fetch: :class:`BlobCache` keeps
the recent ones (up to ``max_bytes``), and a fetch the other threads ask for meanwhile is made
once. :class:`CachedReads` is one agent's store with its reads going through the host's cache;
what the agent writes, pins and closes is its own store's business.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from fedchain.ports import BlobStore
from fedchain.singleflight import SingleFlight
from fedchain.types import Cid

__all__ = ["DEFAULT_CACHE_BYTES", "BlobCache", "CachedReads"]

DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
"""What a host keeps of the blobs its agents read (a few rounds' base models)."""
_WAIT_S = 300.0  # a thread waiting for another's fetch gives up after this and fetches itself


class BlobCache:
    """Verified blobs by CID, least recently used first out past ``max_bytes``; one fetch per CID at a time."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._flight: SingleFlight[bytes] = SingleFlight(_WAIT_S)
        self.fetches = 0  # blobs fetched from a store
        self.shared = 0  # reads answered by another thread's or an earlier fetch

    def get(self, cid: Cid, fetch: Callable[[Cid], bytes]) -> bytes:
        """The blob of ``cid``: from memory, from a fetch another thread is making, or ``fetch(cid)`` (whose
        exception goes to this thread only; a waiting thread then fetches for itself)."""
        key = str(cid)
        with self._lock:
            data = self._blobs.get(key)
            if data is not None:
                self._blobs.move_to_end(key)
                self.shared += 1
                return data

        def call() -> bytes:
            fetched = fetch(cid)
            with self._lock:  # kept before any thread can find the fetch over: a later one reads it here
                self.fetches += 1
                self._keep(key, fetched)
            return fetched

        data, shared = self._flight.do(key, call)
        if shared:
            with self._lock:
                self.shared += 1
        return data

    def _keep(self, key: str, data: bytes) -> None:
        """Remember ``data`` (the lock held), dropping the least recently used past the bound."""
        if len(data) > self.max_bytes or key in self._blobs:
            return
        self._blobs[key] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            _, dropped = self._blobs.popitem(last=False)
            self._size -= len(dropped)


class CachedReads:
    """``store`` with its :meth:`get` going through ``cache`` (shared with the other agents of a host)."""

    def __init__(self, store: BlobStore, cache: BlobCache) -> None:
        self.store = store
        self.cache = cache

    def put(self, data: bytes) -> Cid:
        """Store ``data`` in the agent's own store."""
        return self.store.put(data)

    def get(self, cid: Cid) -> bytes:
        """The verified blob of ``cid``, fetched once for the host."""
        return self.cache.get(cid, self.store.get)

    def pin(self, cid: Cid) -> None:
        """Pin ``cid`` in the agent's own store."""
        self.store.pin(cid)

    def has(self, cid: Cid) -> bool:
        """Whether the agent's own store holds ``cid``."""
        return self.store.has(cid)

    def put_file(self, path: Path) -> Cid:
        """Stream a file into the agent's own store."""
        return self.store.put_file(path)

    def get_file(self, cid: Cid, dest: Path) -> int:
        """Stream ``cid`` into ``dest`` from the agent's own store."""
        return self.store.get_file(cid, dest)

    def describe(self) -> str:
        """The agent's own store."""
        return self.store.describe()

    def close(self) -> None:
        """Close the agent's own store."""
        self.store.close()

    def __enter__(self) -> CachedReads:
        return self

    def __exit__(self, *exc: object) -> None:
        """Calls :meth:`close`."""
        self.close()

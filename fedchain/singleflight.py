"""One call at a time per key, its answer shared with the threads that asked for it meanwhile.

What the threads of one process (the agents of ``participant host``) ask for together - a contract
read at one block (:mod:`fedchain.chain.reads`), a blob (:mod:`fedchain.storage.shared`) - is asked
of the node or the store once: the first thread calls, the others wait for its answer. An exception
goes to the calling thread only; a thread that waited for it then calls for itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

V = TypeVar("V")


class _Pending(Generic[V]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: V | None = None
        self.ok = False


class SingleFlight(Generic[V]):
    """Calls by key, each key's call made by one thread at a time for all (``wait_s``: how long a waiting
    thread waits for another's call before it calls itself)."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._pending: dict[Hashable, _Pending[V]] = {}

    def do(self, key: Hashable, call: Callable[[], V]) -> tuple[V, bool]:
        """``call()``'s answer, and whether it came from another thread's call of ``key``."""
        with self._lock:
            pending = self._pending.get(key)
            owner = pending is None
            if pending is None:
                pending = self._pending[key] = _Pending()
        if not owner:
            if pending.done.wait(self.wait_s) and pending.ok:
                return pending.value, True  # type: ignore[return-value]  # ok: set with the answer
            return call(), False
        try:
            value = call()
            pending.value, pending.ok = value, True
            return value, False
        finally:
            with self._lock:
                self._pending.pop(key, None)
            pending.done.set()

"""Reads pinned to one block, shared by the threads of a process (``participant host``).

The agents a host runs in threads share one :class:`~fedchain.chain.connection.Connection`; each
wakes on the same new block and reads the same things (the latest round, its record, the
participant's own entry), so a hundred agents would send a hundred identical ``eth_call``\\ s per
block. With :meth:`Connection.pin_reads <fedchain.chain.connection.Connection.pin_reads>` every
read of the latest state is answered as of one block, the *pinned head*, and an ``eth_call`` made
at that head is made once: the threads asking for it meanwhile wait for that answer, and later ones
get it from memory until the head moves.

The pinned head is never behind what the process knows of the chain (its *floor*): the block of
any receipt the connection fetched and any block number it read. A thread that sent a transaction
therefore reads a state holding it, and a thread woken by the block watcher reads that block or a
later one. Otherwise the head is read again once it is ``ttl_s`` old, so that a read never shows a
state older than that of another process's transaction that nobody here has seen yet - the same as
a read made ``ttl_s`` earlier. Every read of one step of an agent that runs within that time sees
the same block: what the contract says and what the event index holds agree.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fedchain.errors import RpcUnavailableError
from fedchain.singleflight import SingleFlight

__all__ = ["DEFAULT_TTL_S", "FLOOR_WAIT_S", "Head", "PinnedReads"]

DEFAULT_TTL_S = 0.05
"""How long a pinned head serves reads before the latest block is read again (a block watcher's poll)."""
FLOOR_WAIT_S = 2.0
"""How long a node answering an older latest block than the floor is asked again (a node behind its peers)."""
_FLOOR_PAUSE_S = 0.005
_WAIT_S = 60.0  # a thread waiting for another's identical read gives up after this and asks itself


@dataclass(frozen=True)
class Head:
    """The block reads are pinned to: its number, hash and the node's raw header (``eth_getBlockByNumber``)."""

    number: int
    hash: str
    raw: dict[str, Any]


class PinnedReads:
    """The pinned head of one connection and the answers read at it.

    ``latest`` reads the node's latest header (a raw ``eth_getBlockByNumber`` answer); ``clock``
    is injectable for tests."""

    def __init__(self, latest: Callable[[], Any], *, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not ttl_s >= 0:
            raise ValueError(f"ttl_s must be >= 0, got {ttl_s}")
        self._latest = latest
        self.ttl_s = ttl_s
        self._clock = clock
        self._head_lock = threading.Lock()
        self._lock = threading.Lock()
        self._head: Head | None = None
        self._head_at = 0.0
        self._floor = -1
        self._answers: dict[tuple[str, str], Any] = {}
        self._flight: SingleFlight[Any] = SingleFlight(_WAIT_S)
        self.head_reads = 0  # latest headers read
        self.shared = 0  # reads answered from another thread's or an earlier identical read

    def saw_block(self, number: int) -> None:
        """The process learnt that block ``number`` exists (a receipt, a block number read): no
        read is answered from an older head from now on."""
        with self._lock:
            if number > self._floor:
                self._floor = number

    def head(self) -> Head:
        """The pinned head, read again when it is older than ``ttl_s`` or behind the floor."""
        with self._lock:
            head, floor = self._head, self._floor
            if head is not None and head.number >= floor and self._clock() - self._head_at < self.ttl_s:
                return head
        with self._head_lock:  # one thread reads the header; the others wait for it and use it
            with self._lock:
                head, floor = self._head, self._floor
                if head is not None and head.number >= floor and self._clock() - self._head_at < self.ttl_s:
                    return head
            fresh = self._read_head(floor)
            with self._lock:
                if self._head is None or fresh.hash != self._head.hash:
                    self._answers.clear()
                self._head, self._head_at = fresh, self._clock()
                if fresh.number < floor == self._floor:
                    self._floor = fresh.number  # still behind after the wait: a shorter chain (rewound), as it is
                else:
                    self._floor = max(self._floor, fresh.number)  # a block seen meanwhile stays the floor
            return fresh

    def forget(self) -> None:
        """Drop the head, the floor and every answer (the chain was rewound or changed by a
        development call: ``evm_revert``, ``anvil_reorg``...)."""
        with self._lock:
            self._head, self._floor = None, -1
            self._answers.clear()

    def _read_head(self, floor: int) -> Head:
        give_up = self._clock() + FLOOR_WAIT_S
        while True:
            raw = self._latest()
            self.head_reads += 1
            try:
                head = Head(int(str(raw["number"]), 16), str(raw["hash"]), raw)
            except (KeyError, TypeError, ValueError) as err:
                raise RpcUnavailableError(f"the node answered no usable latest block ({err!r}): {str(raw)[:200]}") from err
            if head.number >= floor or self._clock() >= give_up:
                return head  # a node still behind after the wait: its own latest block, as an unpinned read would
            time.sleep(_FLOOR_PAUSE_S)

    def read(self, method: str, params: Any, fetch: Callable[[Head], Any]) -> tuple[Any, Head]:
        """``fetch(head)`` for the pinned head, and that head; made once per head for identical
        ``method`` and ``params``: threads asking meanwhile wait for that answer. An exception is
        raised to the thread that made the request only; the others then make their own."""
        head = self.head()
        key = (head.hash, method + json.dumps(params, sort_keys=True, separators=(",", ":")))
        with self._lock:
            if key in self._answers:
                self.shared += 1
                return self._answers[key], head

        def call() -> Any:
            value = fetch(head)
            with self._lock:  # kept before any thread can find the call over: a later one reads it here
                if self._head is not None and self._head.hash == head.hash:
                    self._answers[key] = value
            return value

        value, shared = self._flight.do(key, call)
        if shared:
            with self._lock:
                self.shared += 1
        return value, head

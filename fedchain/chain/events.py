"""An incremental, reorg-safe index of the ``Federation`` event log, and a block watcher.

:class:`EventIndex` keeps every event of the contract from the deployment block up to a block
*cursor*, with lookups by round, participant and task version. Each read first brings it up to
the latest block: it asks for the logs of the blocks after the cursor only (in chunks of
:data:`LOG_CHUNK_BLOCKS` blocks), so a read costs O(new events) + O(answer) instead of a rescan
of the whole history.

Reorganisations. The index remembers the hashes of the blocks it read within the last
``reorg_depth`` blocks below the cursor (:data:`REORG_DEPTH`). Before reading on it checks that
the block at the cursor still has the hash it had (a block hash commits to every block before
it, so one comparison covers the whole indexed range); when it changed, the newest remembered
block whose hash did not change is the fork point, the events of later blocks are dropped and
read again. A reorganisation deeper than the remembered window drops everything and re-reads
the log from the deployment block. Logs of the cursor's own block are checked against the hash
read for it, so a batch read across a reorganisation is thrown away and read again.

Privacy claims. A commitment in a private round is two logs of one transaction, ``UpdateCommitted``
then ``PrivacySpent``; every batch of records (one chunk of blocks, which holds a transaction whole)
joins the claim into the commitment's record (:func:`join_privacy_claims`), so the commitment carries
its ``epsilon_spent`` and ``accountant_digest`` wherever it is looked up, and a reorganisation drops
and re-reads both with their block.

:class:`BlockWatcher` waits for a new block with ``eth_newBlockFilter`` and
``eth_getFilterChanges`` (polling ``eth_blockNumber`` where the node refuses filters, and
recreating a filter the node forgot).

Both are safe to share between the threads of one agent: each holds a lock around its state.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar, cast

from fedchain.chain.abi import DecodedLog, to_bytes
from fedchain.chain.connection import Connection
from fedchain.errors import ChainError, RpcUnavailableError
from fedchain.ports import (
    AdvertisementPosted,
    ContestAnswered,
    ExclusionContested,
    LedgerEvent,
    ParticipantRegistered,
    PrivacyPolicySet,
    PrivacySpent,
    RoundAttested,
    RoundClosed,
    RoundDisputed,
    RoundFinalized,
    RoundOpened,
    TaskConfigured,
    UnmaskingSharesPosted,
    UpdateCommitment,
    UpdateSeal,
)

log = logging.getLogger(__name__)

LOG_CHUNK_BLOCKS = 2_000
"""The most blocks one ``eth_getLogs`` request covers."""
REORG_DEPTH = 12
"""How many blocks below the cursor the index remembers hashes of (the fork-point search window)."""
BLOCK_POLL_S = 0.05
"""Pause between two ``eth_getFilterChanges`` (or ``eth_blockNumber``) requests of a waiting watcher."""
SYNC_ATTEMPTS = 5
"""How often one read starts over when the chain reorganises under it before it gives up."""

RoundEvent = RoundOpened | RoundFinalized | RoundClosed


class Positioned(Protocol):
    """A typed event record: where it is in the chain."""

    @property
    def block_number(self) -> int:
        """The block the event was emitted in."""
        ...

    @property
    def log_index(self) -> int:
        """Its index among the block's logs."""
        ...


R = TypeVar("R", bound=Positioned)
ToRecord = Callable[[DecodedLog], R | None]


class EventDecoding(Protocol):
    """What decodes a :class:`LogSource`'s raw logs (:class:`fedchain.chain.abi.EventDecoder`)."""

    def decode(self, log: Mapping[str, Any]) -> DecodedLog | None:
        """The decoded log, None for a foreign event."""
        ...


class LogSource(Protocol):
    """The contract (or contracts) an index reads: :class:`fedchain.chain.federation.FederationContract`,
    or the governance contracts of :class:`fedchain.chain.governance.Governance`."""

    @property
    def conn(self) -> Connection:
        """The connection to the node."""
        ...

    @property
    def deployment_block(self) -> int:
        """The first block with the source's logs."""
        ...

    @property
    def events(self) -> EventDecoding:
        """The decoder of the source's logs."""
        ...

    def logs(self, from_block: int, to_block: int, *, topics: list[Any] | None = None) -> list[dict[str, Any]]:
        """Raw logs of the source in ``[from_block, to_block]``."""
        ...


def _position(event: Positioned) -> tuple[int, int]:
    return (event.block_number, event.log_index)


class EventSource(Protocol):
    """Where :class:`fedchain.chain.ledger.ChainLedger` finds the contract's events: the
    :class:`EventIndex`, or ``RescanEvents`` (every lookup a filtered rescan of the log)."""

    def events(self, from_block: int | None = None, to_block: int | None = None) -> list[LedgerEvent]:
        """Every event in ``[from_block, to_block]`` (default: the deployment block to the
        latest block), ordered by (block, log index)."""
        ...

    def round_events(self, round_id: int) -> list[RoundEvent]:
        """The round's ``RoundOpened``, ``RoundFinalized`` and ``RoundClosed`` events, in chain order."""
        ...

    def commitments(self, round_id: int) -> list[UpdateCommitment]:
        """The round's ``UpdateCommitted`` events, in chain order."""
        ...

    def seals(self, round_id: int) -> list[UpdateSeal]:
        """The round's ``UpdateSealed`` events (commit-reveal rounds), in chain order."""
        ...

    def advertisements(self, round_id: int) -> list[AdvertisementPosted]:
        """The round's ``AdvertisementPosted`` events (secure rounds), in chain order."""
        ...

    def unmasking_shares(self, round_id: int) -> list[UnmaskingSharesPosted]:
        """The round's ``UnmaskingSharesPosted`` events (secure rounds), in chain order."""
        ...

    def registrations(self, address: str) -> list[ParticipantRegistered]:
        """The participant's ``ParticipantRegistered`` events, in chain order."""
        ...

    def participant_events(self, address: str) -> list[LedgerEvent]:
        """Every event naming ``address`` as its participant (registered, admitted, removed,
        commitments, seals, advertisements, unmasking shares, attestations, exclusion contests and their answers), in
        chain order."""
        ...

    def attestations(self, round_id: int) -> list[RoundAttested]:
        """The round's ``RoundAttested`` events, in chain order."""
        ...

    def disputes(self, round_id: int) -> list[RoundDisputed]:
        """The round's ``RoundDisputed`` event (a round is disputed at most once)."""
        ...

    def contests(self, round_id: int) -> list[ExclusionContested | ContestAnswered]:
        """The round's ``ExclusionContested`` and ``ContestAnswered`` events, in chain order."""
        ...

    def task_configs(self, version: int) -> list[TaskConfigured]:
        """The ``TaskConfigured`` events of task ``version``, in chain order."""
        ...

    def privacy_policies(self, version: int) -> list[PrivacyPolicySet]:
        """The ``PrivacyPolicySet`` events of task ``version`` (none for a task without a privacy policy)."""
        ...


@dataclass(frozen=True)
class BlockRef:
    """A block as the index remembers it."""

    number: int
    hash: str
    parent_hash: str


def _hex(value: Any) -> str:
    return "0x" + to_bytes(value).hex()


def get_block(conn: Connection, block: int | str) -> BlockRef | None:
    """The header of ``block`` (a number or ``"latest"``), None when the node has no such block."""
    if block == "latest":
        raw = conn.latest_header()  # the pinned head where the connection pins its reads
    else:
        raw = conn.request("eth_getBlockByNumber", [block if isinstance(block, str) else hex(block), False])
    if raw is None:
        return None
    return BlockRef(int(raw["number"], 16), _hex(raw["hash"]), _hex(raw["parentHash"]))


def fetch_events(
    contract: LogSource,
    to_record: ToRecord[R],
    from_block: int,
    to_block: int,
    *,
    topics: Sequence[Any] | None = None,
    chunk_blocks: int = LOG_CHUNK_BLOCKS,
) -> list[R]:
    """The (matching) events of ``contract`` in ``[from_block, to_block]`` read with one
    ``eth_getLogs`` request per ``chunk_blocks`` blocks, as typed records in chain order."""
    if from_block < 0 or to_block < from_block - 1:
        raise ChainError(f"invalid block range [{from_block}, {to_block}]")
    if chunk_blocks <= 0:
        raise ChainError(f"chunk_blocks must be positive, got {chunk_blocks}")
    events: list[R] = []
    block = from_block
    while block <= to_block:
        last = min(block + chunk_blocks - 1, to_block)
        raw_logs = contract.logs(block, last, topics=list(topics) if topics is not None else None)
        events.extend(_records(contract, to_record, raw_logs))
        block = last + 1
    events.sort(key=_position)
    return events


def _records(contract: LogSource, to_record: ToRecord[R], raw_logs: Iterable[Mapping[str, Any]]) -> list[R]:
    records: list[R] = []
    for raw in raw_logs:
        decoded = contract.events.decode(raw)
        record = to_record(decoded) if decoded is not None else None
        if record is not None:
            records.append(record)
    return join_privacy_claims(records)


def join_privacy_claims(records: Sequence[R]) -> list[R]:
    """``records`` with each :class:`fedchain.ports.UpdateCommitment` that has a ``PrivacySpent`` event in the
    same transaction (same round and participant) carrying that claim's ``epsilon_spent`` and
    ``accountant_digest``; every other record, the ``PrivacySpent`` events included, unchanged."""
    claims = {
        (e.tx_hash, int(e.round_id), e.participant.lower()): e for e in records if isinstance(e, PrivacySpent)
    }
    if not claims:
        return list(records)
    joined: list[R] = []
    for event in records:
        if isinstance(event, UpdateCommitment):
            claim = claims.get((event.tx_hash, int(event.round_id), event.participant.lower()))
            if claim is not None:
                event = cast(R, replace(event, epsilon_spent=claim.epsilon_spent, accountant_digest=claim.accountant_digest))
        joined.append(event)
    return joined


def _block_of(event: Positioned) -> int:
    return event.block_number


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


class EventIndex(Generic[R]):
    """Every event of ``contract`` from ``start_block`` (default: its deployment block), kept up
    to date incrementally; over the Federation's records (an ``EventIndex[LedgerEvent]``), an
    :class:`EventSource`.

    ``to_record`` turns a decoded log into its typed record
    (:func:`fedchain.chain.ledger.to_record`, or the governance records of
    :mod:`fedchain.chain.governance`). Every lookup reads the blocks mined since the
    previous one first (:meth:`sync`) and returns a new list; the lookups by round, participant
    and task version find the Federation's records only."""

    def __init__(
        self,
        contract: LogSource,
        to_record: ToRecord[R],
        *,
        start_block: int | None = None,
        chunk_blocks: int = LOG_CHUNK_BLOCKS,
        reorg_depth: int = REORG_DEPTH,
    ) -> None:
        if chunk_blocks <= 0:
            raise ChainError(f"chunk_blocks must be positive, got {chunk_blocks}")
        if reorg_depth <= 0:
            raise ChainError(f"reorg_depth must be positive, got {reorg_depth}")
        self.contract = contract
        self.start_block = contract.deployment_block if start_block is None else start_block
        self.chunk_blocks = chunk_blocks
        self.reorg_depth = reorg_depth
        self._to_record = to_record
        self._lock = threading.RLock()
        self._cursor = self.start_block - 1
        self._hashes: dict[int, str] = {}  # block number -> hash, within reorg_depth below the cursor
        self._events: list[R] = []
        self._rounds: defaultdict[int, list[R]] = defaultdict(list)
        self._commitments: defaultdict[int, list[R]] = defaultdict(list)
        self._seals: defaultdict[int, list[R]] = defaultdict(list)
        self._secure: defaultdict[int, list[R]] = defaultdict(list)  # advertisements and unmasking shares
        self._participants: defaultdict[str, list[R]] = defaultdict(list)
        self._registrations: defaultdict[str, list[R]] = defaultdict(list)
        self._tasks: defaultdict[int, list[R]] = defaultdict(list)
        self._verification: defaultdict[int, list[R]] = defaultdict(list)  # attestations, disputes, contests

    @property
    def cursor(self) -> int:
        """The last block indexed (``start_block - 1`` before the first read)."""
        return self._cursor

    def __len__(self) -> int:
        return len(self._events)

    # --- lookups ---------------------------------------------------------------------

    def events(self, from_block: int | None = None, to_block: int | None = None) -> list[R]:
        """Every indexed event in ``[from_block, to_block]``, after catching up with the chain; the part
        before the index's start block is read from the node."""
        with self._lock:
            head = self.sync()
            start = self.start_block if from_block is None else from_block
            end = head if to_block is None else to_block
            if start < 0 or end < start - 1:
                raise ChainError(f"invalid block range [{start}, {end}]")
            before: list[R] = []
            if start < self.start_block:  # not covered by the index: read that part directly
                before = fetch_events(
                    self.contract, self._to_record, start, min(end, self.start_block - 1), chunk_blocks=self.chunk_blocks
                )
            lo = bisect.bisect_left(self._events, max(start, self.start_block), key=_block_of)
            hi = bisect.bisect_right(self._events, end, key=_block_of)
            return before + self._events[lo:hi]

    def round_events(self, round_id: int) -> list[RoundEvent]:
        """The round's opened, finalized and closed events, from the index."""
        return [e for e in self._lookup(self._rounds, int(round_id)) if isinstance(e, (RoundOpened, RoundFinalized, RoundClosed))]

    def commitments(self, round_id: int) -> list[UpdateCommitment]:
        """The round's commitments, from the index."""
        return [e for e in self._lookup(self._commitments, int(round_id)) if isinstance(e, UpdateCommitment)]

    def seals(self, round_id: int) -> list[UpdateSeal]:
        """The round's seals, from the index."""
        return [e for e in self._lookup(self._seals, int(round_id)) if isinstance(e, UpdateSeal)]

    def advertisements(self, round_id: int) -> list[AdvertisementPosted]:
        """The round's advertisements, from the index."""
        return [e for e in self._lookup(self._secure, int(round_id)) if isinstance(e, AdvertisementPosted)]

    def unmasking_shares(self, round_id: int) -> list[UnmaskingSharesPosted]:
        """The round's unmasking shares, from the index."""
        return [e for e in self._lookup(self._secure, int(round_id)) if isinstance(e, UnmaskingSharesPosted)]

    def registrations(self, address: str) -> list[ParticipantRegistered]:
        """The participant's registrations, from the index."""
        return [e for e in self._lookup(self._registrations, address.lower()) if isinstance(e, ParticipantRegistered)]

    def participant_events(self, address: str) -> list[R]:
        """Every event naming the participant, from the index."""
        return self._lookup(self._participants, address.lower())

    def task_configs(self, version: int) -> list[TaskConfigured]:
        """The ``TaskConfigured`` events of task ``version``, from the index."""
        return [e for e in self._lookup(self._tasks, int(version)) if isinstance(e, TaskConfigured)]

    def privacy_policies(self, version: int) -> list[PrivacyPolicySet]:
        """The ``PrivacyPolicySet`` events of task ``version``, from the index."""
        return [e for e in self._lookup(self._tasks, int(version)) if isinstance(e, PrivacyPolicySet)]

    def attestations(self, round_id: int) -> list[RoundAttested]:
        """The round's attestations, from the index."""
        return [e for e in self._lookup(self._verification, int(round_id)) if isinstance(e, RoundAttested)]

    def disputes(self, round_id: int) -> list[RoundDisputed]:
        """The round's dispute, from the index."""
        return [e for e in self._lookup(self._verification, int(round_id)) if isinstance(e, RoundDisputed)]

    def contests(self, round_id: int) -> list[ExclusionContested | ContestAnswered]:
        """The round's exclusion contests and their answers, from the index."""
        return [
            e for e in self._lookup(self._verification, int(round_id)) if isinstance(e, (ExclusionContested, ContestAnswered))
        ]

    def _lookup(self, table: Mapping[Any, list[R]], key: Any) -> list[R]:
        with self._lock:
            self.sync()
            return list(table.get(key, ()))

    # --- keeping up with the chain ---------------------------------------------------

    def sync(self) -> int:
        """Index the blocks mined since the last read (after undoing any reorganisation of the
        indexed ones); returns the block the index now reaches."""
        with self._lock:
            for _ in range(SYNC_ATTEMPTS):
                head = get_block(self.contract.conn, "latest")
                if head is None:
                    raise ChainError(f"the node at {self.contract.conn.url} has no latest block")
                self._undo_reorg(head)
                if self._catch_up(head):
                    return self._cursor
            raise ChainError(
                f"the chain at {self.contract.conn.url} reorganised under {SYNC_ATTEMPTS} consecutive reads of its log"
            )

    def _undo_reorg(self, head: BlockRef) -> None:
        if self._cursor < self.start_block:
            return  # nothing indexed yet
        known = self._hashes.get(self._cursor)
        if head.number == self._cursor and head.hash == known:
            return
        if head.number == self._cursor + 1 and head.parent_hash == known:
            return
        if head.number > self._cursor:
            at_cursor = get_block(self.contract.conn, self._cursor)
            if at_cursor is not None and at_cursor.hash == known:
                return
        for number in sorted(self._hashes, reverse=True):
            if number > head.number:
                continue  # that block is gone
            block = head if number == head.number else get_block(self.contract.conn, number)
            if block is not None and block.hash == self._hashes[number]:
                dropped = self._truncate(number)
                log.warning("chain reorganised after block %d: dropped %d indexed event(s) of later blocks", number, dropped)
                return
        dropped = self._truncate(self.start_block - 1)
        log.warning(
            "chain reorganised deeper than the %d remembered block(s): dropped all %d indexed event(s), "
            "reading the log again from block %d", self.reorg_depth, dropped, self.start_block,
        )

    def _catch_up(self, head: BlockRef) -> bool:
        """Read blocks ``cursor + 1 .. head``, chunk by chunk; False when the chain moved under
        the read (the blocks read before that stay indexed)."""
        while self._cursor < head.number:
            first = self._cursor + 1
            last = min(first + self.chunk_blocks - 1, head.number)
            end = head if last == head.number else get_block(self.contract.conn, last)
            if end is None:
                return False  # the chain got shorter since the head was read
            raw_logs = self.contract.logs(first, last)
            for raw in raw_logs:
                if _int(raw["blockNumber"]) == last and _hex(raw["blockHash"]) != end.hash:
                    log.info("block %d changed while its logs were read; reading again", last)
                    return False
            batch = _records(self.contract, self._to_record, raw_logs)
            batch.sort(key=_position)
            for event in batch:
                self._add(event)
            self._cursor = last
            self._hashes[last] = end.hash
            for raw in raw_logs:  # more fork-point candidates, for free
                number = _int(raw["blockNumber"])
                if number > last - self.reorg_depth:
                    self._hashes.setdefault(number, _hex(raw["blockHash"]))
            for number in [n for n in self._hashes if n <= last - self.reorg_depth]:
                del self._hashes[number]
        return True

    # --- the tables ------------------------------------------------------------------

    def _tables(self, event: R) -> list[list[R]]:
        """The lookup lists ``event`` belongs to."""
        tables: list[list[R]] = []
        participant = getattr(event, "participant", None)
        if isinstance(participant, str):
            tables.append(self._participants[participant.lower()])
        if isinstance(event, ParticipantRegistered):
            tables.append(self._registrations[event.participant.lower()])
        elif isinstance(event, UpdateCommitment):
            tables.append(self._commitments[int(event.round_id)])
        elif isinstance(event, UpdateSeal):
            tables.append(self._seals[int(event.round_id)])
        elif isinstance(event, (AdvertisementPosted, UnmaskingSharesPosted)):
            tables.append(self._secure[int(event.round_id)])
        elif isinstance(event, (RoundOpened, RoundFinalized, RoundClosed)):
            tables.append(self._rounds[int(event.round_id)])
        elif isinstance(event, (TaskConfigured, PrivacyPolicySet)):
            tables.append(self._tasks[int(event.version)])
        elif isinstance(event, (RoundAttested, RoundDisputed, ExclusionContested, ContestAnswered)):
            tables.append(self._verification[int(event.round_id)])
        return tables

    def _add(self, event: R) -> None:
        self._events.append(event)
        for table in self._tables(event):
            table.append(event)

    def _truncate(self, last_kept: int) -> int:
        """Forget the events of blocks after ``last_kept``; returns how many were dropped."""
        dropped = 0
        while self._events and self._events[-1].block_number > last_kept:
            event = self._events.pop()
            for table in self._tables(event):
                table.pop()  # chain order everywhere: the newest event is last in each of its lists
            dropped += 1
        self._cursor = last_kept
        for number in [n for n in self._hashes if n > last_kept]:
            del self._hashes[number]
        return dropped


class BlockWatcher:
    """Waits for new blocks on ``conn`` with a block filter (``eth_newBlockFilter``).

    One filter serves every waiting thread. Where the node refuses filters the watcher polls
    ``eth_blockNumber`` instead; a filter the node forgot ("filter not found") is recreated.
    ``sleep`` and ``clock`` are injectable for tests."""

    def __init__(
        self,
        conn: Connection,
        *,
        poll_s: float = BLOCK_POLL_S,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conn = conn
        self.poll_s = poll_s
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._filter_id: str | None = None
        self._filters_refused = False
        self._generation = 0  # bumped whenever a filter poll reports blocks, so every waiter rechecks
        self._polls = 0  # filter polls made: a waiter that wakes after another's poll does not poll again
        self._number: int | None = None  # the latest block number read, and when (the clock's time)
        self._number_at = 0.0

    @property
    def filter_id(self) -> str | None:
        """The node's id of the block filter in use (None: not created yet, or polling)."""
        return self._filter_id

    @property
    def polling(self) -> bool:
        """Whether the node refused filters, so that the watcher polls ``eth_blockNumber``."""
        return self._filters_refused

    def wait_for_block(self, after: int, timeout_s: float) -> int:
        """The latest block number once it is greater than ``after``; the current one (which
        may still be ``after`` or lower) once ``timeout_s`` seconds have passed.

        Threads waiting on one watcher share its requests: after each pause only the first to
        wake polls the filter (the others see what it found), and the block number is read once
        per poll that reported blocks, so a hundred waiting agents cost the node what one does."""
        deadline = self._clock() + max(0.0, timeout_s)
        with self._lock:
            self._ensure_filter()
            seen = self._generation
            if self._number is None or self._clock() - self._number_at > self.poll_s:
                self._read_number()
            number = self._number
            assert number is not None
        while number <= after:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return number
            ticket = self._polls
            self._sleep(min(self.poll_s, remaining))
            with self._lock:
                if self._polls == ticket:  # nobody polled while this thread slept: poll now
                    self._polls += 1
                    before = self._generation
                    self._poll_filter()
                    if self._generation != before:
                        self._read_number()
                fresh, seen = self._generation != seen, self._generation
                if fresh:
                    assert self._number is not None
                    number = self._number
        return number

    def _read_number(self) -> None:
        """Read the latest block number (the lock held)."""
        self._number = self.conn.block_number()
        self._number_at = self._clock()

    def close(self) -> None:
        """Uninstall the filter (best effort: the node forgets idle filters anyway)."""
        with self._lock:
            if self._filter_id is not None:
                try:
                    self.conn.request("eth_uninstallFilter", [self._filter_id])
                except ChainError as err:
                    log.debug("could not uninstall block filter %s: %s", self._filter_id, err)
                self._filter_id = None

    def _ensure_filter(self) -> None:
        if self._filter_id is not None or self._filters_refused:
            return
        try:
            self._filter_id = str(self.conn.request("eth_newBlockFilter"))
        except RpcUnavailableError:
            raise
        except ChainError as err:
            self._filters_refused = True
            log.info("the node at %s refuses block filters (%s); polling eth_blockNumber instead", self.conn.url, err)

    def _poll_filter(self) -> None:
        if self._filter_id is None:
            self._ensure_filter()
            self._generation += 1  # polling (or a filter just made): look at the block number
            return
        try:
            changes = self.conn.request("eth_getFilterChanges", [self._filter_id])
        except RpcUnavailableError:
            raise
        except ChainError as err:
            if "filter not found" not in str(err).lower():
                raise
            log.info("the node forgot block filter %s; creating a new one", self._filter_id)
            self._filter_id = None
            self._ensure_filter()
            self._generation += 1  # blocks may have come while nobody watched
            return
        if changes:
            self._generation += 1

"""The devnet supervisor: anvil behind a JSON-RPC proxy that persists the chain before it replies.

anvil keeps its chain in memory; ``--state-interval`` writes it to disk every few seconds, so a
SIGKILL loses what was mined since (in one run: two whole rounds, which every agent had seen
mined). The supervisor closes that window. It runs anvil on an internal loopback port and serves
the devnet's public port itself; every request is forwarded to anvil, and the answer is held back
until the chain it was computed from is on disk:

- after a request that only mines (a transaction, ``evm_mine``) the new blocks are appended to
  a journal next to the state file, one line each (number, hash, timestamp, raw transactions),
  and fsync'd before the answer leaves; a transaction's hash goes back only once the transaction
  is mined (anvil mines it at once) and journaled, so a hash the devnet returned is never lost
  (sends that arrive together share one write: a send whose block a write made while it waited
  already holds goes back without a write of its own). A write thus costs what it adds, not the
  whole chain; once the journal outgrows the state file (and 1 MiB) the whole state is written
  instead (``anvil_dumpState``, atomically: temp file, fsync, rename, fsync of the directory) and
  the journal emptied;
- after any other request that changes the chain (``anvil_setBalance``, ``evm_revert``...) the
  whole state is written before the answer leaves;
- after any other request, if the head is not the block last written (a block was mined
  meanwhile), the new blocks are journaled first.

So no client ever sees a block - a transaction's hash, a receipt, a log, a balance, an empty
block's number - that a SIGKILL of anvil, of the supervisor or of both could take back: after a
restart the chain is at least where anyone saw it, with the same blocks.

Interval mining (``--block-time``) happens here, on demand: before a request is answered, an
empty block is mined if the head is ``block_time`` seconds old, so no client ever sees an older
head and a deadline passes on a quiet chain without any transaction. While nobody asks, nothing
is mined: an unwatched devnet does not grow, and neither does its state file.

When anvil starts, from the state file, the journaled blocks past its head are mined again from
their raw transactions at their timestamps - anvil mines the very same blocks, hash for hash
(checked; a difference is logged) - and the whole state is written. When anvil dies under the
supervisor it is started again so on a new internal port while the public port stays open: requests
in flight wait for it (reads are answered from the restarted chain; a raw transaction is looked up
by its hash and sent again only if the chain lost it; any other call that changes the chain gets a
JSON-RPC error saying its effect is unknown). SIGTERM dumps the chain a last time, stops anvil and
exits 0. anvil runs in its own session (a signal to the supervisor's process group does not reach
it) and, on Linux, is killed by the kernel when the supervisor dies; a leftover anvil of the same
state file is stopped on start.

The proxy answers one method itself: ``fedchain_devnetStatus`` (anvil's pid, restarts,
persisted block, dump count and cost, state file size, journaled blocks and journal size).

Run as ``python -m fedchain.services.supervisor --anvil PATH --port N --state FILE
[--block-time S] [-- anvil args]``; :mod:`fedchain.services.devnet` does that for a managed devnet.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gzip
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from fedchain.codec.abi import keccak
from fedchain.config import open_private, private_dir
from fedchain.errors import AnvilDown
from fedchain.services.base import (
    DEVNET_UNAVAILABLE_CODE,
    HOST,
    free_port,
    idle_socket_unusable,
    process_alive,
    terminate_pid,
)

__all__ = [
    "LOAD_NAME",
    "MARKER",
    "STATUS_METHOD",
    "PersistenceStats",
    "StateFile",
    "main",
]

log = logging.getLogger(__name__)

MARKER = "fedchain.services.supervisor"
"""What the supervisor's command line contains (its process marker)."""
STATUS_METHOD = "fedchain_devnetStatus"
"""The JSON-RPC method the proxy answers itself with :class:`PersistenceStats`."""
LOAD_NAME = "load-state.json"
"""The decompressed copy of the state file anvil is started from (next to the state file)."""
JOURNAL_NAME = "journal.jsonl"
"""The blocks mined since the state file was written (next to the state file)."""
JOURNAL_MIN_BYTES = 1024 * 1024
"""The whole state is written again once the journal outgrows this and the state file (a write's cost stays
proportional to what it adds, whatever the chain's length)."""
MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""The largest request body the proxy reads (a contract deployment is some kilobytes)."""
SEND_MINE_WAIT_S = 5.0
"""How long a send's answer waits for its transaction to be mined (anvil automines at once)."""
RESTART_WAIT_S = 60.0
"""How long a request waits for anvil to come back after it died."""
UPSTREAM_TIMEOUT_S = 300.0
"""How long a forwarded request may take anvil (a big ``anvil_dumpState``, a slow trace)."""
UPSTREAM_CONNECT_TIMEOUT_S = 5.0
DEATH_GRACE_S = 0.5
"""How long a failed call waits for anvil to be reported dead before taking the failure as anvil's
own answer: a SIGKILLed anvil resets its connections a moment before the kernel reports it dead."""
MAX_QUICK_RESTARTS = 5
"""anvil dying this many times within :data:`_QUICK_S` makes the supervisor give up."""
_QUICK_S = 60.0

_READ_ONLY = frozenset({
    "eth_chainId", "net_version", "net_listening", "net_peerCount", "web3_clientVersion", "web3_sha3",
    "eth_blockNumber", "eth_call", "eth_estimateGas", "eth_createAccessList", "eth_gasPrice",
    "eth_maxPriorityFeePerGas", "eth_blobBaseFee", "eth_feeHistory", "eth_accounts", "eth_syncing",
    "eth_mining", "eth_hashrate", "eth_coinbase", "eth_protocolVersion", "eth_newFilter", "eth_newBlockFilter",
    "eth_newPendingTransactionFilter", "eth_getFilterChanges", "eth_getFilterLogs", "eth_uninstallFilter",
    "eth_sign", "eth_signTypedData_v4", "eth_signTransaction", "eth_simulateV1", "debug_traceCall",
    "debug_traceTransaction", "trace_transaction", "trace_block", "txpool_content", "txpool_status",
    "txpool_inspect", "anvil_nodeInfo", "anvil_metadata", "anvil_dumpState", "evm_snapshot",
    "ots_getApiLevel",
})
_SENDS = frozenset({"eth_sendRawTransaction", "eth_sendTransaction"})
_MINES = _SENDS | {"evm_mine"}  # calls whose only change is blocks, which the journal holds
Change = Literal["none", "blocks", "state"]
"""What a call changed (:meth:`Supervisor.settle`): nothing, only blocks, or more."""
_NO_CHAIN_STATE = frozenset({"eth_chainId", "net_version", "web3_clientVersion", "net_listening"})
_PR_SET_PDEATHSIG = 1


def _is_read_only(method: str) -> bool:
    return method in _READ_ONLY or method.startswith(("eth_get", "ots_"))


# --- the state file --------------------------------------------------------------------------


def _outlives(process: subprocess.Popen[bytes], grace_s: float) -> bool:
    """Whether ``process`` is still running after ``grace_s`` seconds (False as soon as it exits)."""
    deadline = time.monotonic() + grace_s
    while process.poll() is None:
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.02)
    return False


class StateFile:
    """The devnet's chain on disk: ``anvil_dumpState``'s gzip-compressed JSON, written atomically.

    ``<dir>/state.json.gz`` (mode 0600 in a 0700 directory). A plain ``state.json`` of an older
    state directory (anvil's own ``--state`` format) is loaded when no compressed file exists."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def legacy(self) -> Path:
        """The uncompressed ``state.json`` anvil's own ``--state`` wrote."""
        return self.path.with_name("state.json")

    def exists(self) -> bool:
        """Whether there is a chain to load."""
        return self.path.is_file() or self.legacy.is_file()

    def size(self) -> int:
        """Bytes on disk (0 when there is none)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def write(self, compressed: bytes) -> None:
        """Replace the state with ``compressed`` atomically and durably (fsync file and directory)."""
        directory = private_dir(self.path.parent)
        tmp = directory / f".{self.path.name}.tmp"
        with open_private(tmp) as handle:
            handle.write(compressed)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def load_file(self) -> Path | None:
        """A plain JSON copy of the state for ``anvil --load-state`` (None: start a fresh chain)."""
        if self.path.is_file():
            target = self.path.with_name(LOAD_NAME)
            data = gzip.decompress(self.path.read_bytes())
            with open_private(target) as handle:
                handle.write(data)
            return target
        if self.legacy.is_file():
            return self.legacy
        return None


class Journal:
    """The blocks mined since the state file was written: one JSON line each (number, hash, timestamp, raw
    transactions), appended and fsync'd before any answer shows the block, so a write costs one block, not the
    whole chain. Replayed onto the state file's chain when anvil starts (anvil mines the same block again from the
    same transactions and timestamp: same hash), and emptied whenever the whole state is written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def size(self) -> int:
        """Bytes on disk (0 when there is none)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def append(self, entries: Sequence[dict[str, Any]]) -> None:
        """Append ``entries`` durably (written and fsync'd when this returns)."""
        data = b"".join(json.dumps(e, separators=(",", ":"), sort_keys=True).encode() + b"\n" for e in entries)
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def reset(self) -> None:
        """Empty the journal (the state file holds everything it did)."""
        if not self.path.exists():
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        """The journaled blocks in order; a torn last line (a write cut by a crash, never acknowledged) is left
        out, and so is everything from a line that does not parse."""
        try:
            lines = self.path.read_bytes().split(b"\n")
        except OSError:
            return []
        out: list[dict[str, Any]] = []
        for i, line in enumerate(lines):
            if not line:
                continue
            try:
                entry = json.loads(line)
                int(entry["block"]), str(entry["hash"]), int(entry["timestamp"]), list(entry["txs"])
            except (ValueError, KeyError, TypeError):
                if any(lines[i + 1:]):
                    log.error("journal %s: line %d does not parse; the blocks from it on are not replayed", self.path,
                              i + 1)
                break
            out.append(entry)
        return out


@dataclass(frozen=True)
class PersistenceStats:
    """What ``fedchain_devnetStatus`` answers: the supervisor's anvil and what it wrote."""

    anvil_pid: int
    anvil_restarts: int
    persisted_block: int
    dumps: int
    dump_ms_total: float
    dump_ms_max: float
    dump_ms_last: float
    state_bytes: int
    state_file: str
    block_time_s: float
    grouped_sends: int = 0  # sends whose block a write made for another request already held
    journaled_blocks: int = 0  # blocks written to the journal (a line each) instead of a whole-state write
    journal_bytes: int = 0
    unchecked_reads: int = 0  # reads answered with nothing unwritten anywhere: no look at the head, no write

    def to_json(self) -> dict[str, Any]:
        """One JSON object."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PersistenceStats:
        """Parse the status answer (KeyError, TypeError or ValueError when malformed)."""
        return cls(
            anvil_pid=int(data["anvil_pid"]), anvil_restarts=int(data["anvil_restarts"]),
            persisted_block=int(data["persisted_block"]), dumps=int(data["dumps"]),
            dump_ms_total=float(data["dump_ms_total"]), dump_ms_max=float(data["dump_ms_max"]),
            dump_ms_last=float(data["dump_ms_last"]), state_bytes=int(data["state_bytes"]),
            state_file=str(data["state_file"]), block_time_s=float(data["block_time_s"]),
            grouped_sends=int(data.get("grouped_sends", 0)), unchecked_reads=int(data.get("unchecked_reads", 0)),
            journaled_blocks=int(data.get("journaled_blocks", 0)), journal_bytes=int(data.get("journal_bytes", 0)),
        )


# --- anvil under supervision -----------------------------------------------------------------


def _pdeathsig() -> Any:
    """A pre-exec hook asking the kernel to SIGKILL the child when the supervisor dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    prctl = ctypes.CDLL(name, use_errno=True).prctl  # resolved before fork: the child only calls it

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    return hook


class Supervisor:
    """anvil on an internal port, the persisting proxy on the public one."""

    def __init__(self, anvil: Path, port: int, state: StateFile, *, block_time_s: float, extra_args: Sequence[str]) -> None:
        self.anvil = anvil
        self.port = port
        self.state = state
        self.block_time_s = block_time_s
        self.extra_args = list(extra_args)
        self.client = _Upstream()
        self.process: subprocess.Popen[bytes] | None = None
        self.upstream = ""
        self.restarts = 0
        self.stopping = threading.Event()
        self.up = threading.Event()  # set while anvil answers
        self._persist_lock = threading.Lock()
        self._persisted = -1  # the last block on disk (state file or journal)
        self.journal = Journal(state.path.with_name(JOURNAL_NAME))
        self._journaled = 0
        self._dumps = 0
        self._grouped = 0  # sends whose block a dump made for another request already wrote
        self._dump_ms_total = 0.0
        self._dump_ms_max = 0.0
        self._dump_ms_last = 0.0
        self._mine_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._undurable = 0  # calls that may have changed the chain and are not yet known to be on disk
        self._failed_changes = 0  # such calls that failed (their change, if any, maybe unwritten)
        self._written_after = 0  # the value of _failed_changes when the last write started
        self._fast_reads = 0  # reads answered without a look at the head (nothing unwritten anywhere)
        self._head_seen = -1
        self._head_seen_at = 0.0  # monotonic time the head last moved
        self._pre_exec = _pdeathsig()

    # -- anvil ---------------------------------------------------------------------------------

    def _anvil_command(self, port: int) -> list[str]:
        cmd = [str(self.anvil), *_anvil_marker(port).split()]
        load = self.state.load_file()
        if load is not None:
            cmd += ["--load-state", str(load)]
        return cmd + self.extra_args

    def _reap_leftover(self) -> None:
        """Stop an anvil a killed supervisor of this state file left behind (no PDEATHSIG)."""
        pid_file = self.state.path.with_name("anvil.pid")
        try:
            pid_text, port_text = pid_file.read_text(encoding="utf-8").split()
            pid, port = int(pid_text), int(port_text)
        except (OSError, ValueError):
            return
        marker = _anvil_marker(port)
        if pid != os.getpid() and process_alive(pid, marker):
            log.warning("stopping anvil pid %d left behind by an earlier supervisor", pid)
            terminate_pid(pid, timeout_s=10.0, marker=marker, what="leftover anvil")

    def launch(self, timeout_s: float = 60.0) -> None:
        """Start anvil (from the state file when there is one) and wait until it answers."""
        self.up.clear()
        port = free_port()
        cmd = self._anvil_command(port)
        log.info("starting anvil on internal port %d: %s", port, " ".join(cmd))
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            cmd, stdin=subprocess.DEVNULL, start_new_session=True, umask=0o077, preexec_fn=self._pre_exec,
        )
        with open_private(self.state.path.with_name("anvil.pid")) as handle:
            handle.write(f"{self.process.pid} {port}\n".encode("ascii"))
        self.upstream = f"http://{HOST}:{port}"
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"anvil exited with code {self.process.returncode} while starting")
            try:
                self._call("eth_chainId")
                break
            except AnvilDown:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"anvil did not answer on {self.upstream} within {timeout_s:.0f}s") from None
                time.sleep(0.05)
        load = self.state.path.with_name(LOAD_NAME)
        load.unlink(missing_ok=True)  # anvil has read it
        with self._persist_lock:
            self.replay_journal()
            head = int(self._call("eth_blockNumber"), 16)
            self._persisted = head if self.state.exists() else -1
            self._saw_head(head)
        self.up.set()
        log.info("anvil pid %d answers on %s at block %d", self.process.pid, self.upstream, head)

    def _call(self, method: str, params: list[Any] | None = None) -> Any:
        request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
        _status, content = self.client.post(self.upstream, request)
        try:
            body = json.loads(content)
        except ValueError as err:
            raise AnvilDown(f"{method}: anvil answered no JSON ({err})") from err
        if not isinstance(body, dict) or "error" in body:
            raise AnvilDown(f"{method} failed: {body.get('error') if isinstance(body, dict) else body}")
        return body.get("result")

    def forward(self, body: bytes) -> bytes:
        """anvil's answer to ``body``; AnvilDown when it does not answer."""
        status, content = self.client.post(self.upstream, body)
        if status >= 500:
            raise AnvilDown(f"HTTP {status}")
        return content

    # -- persistence ---------------------------------------------------------------------------

    def dump(self, head: int) -> None:
        """Write the whole chain (at least up to ``head``) to the state file. Caller holds the lock."""
        start = time.perf_counter()
        with self._count_lock:
            failed_before = self._failed_changes
        raw = self._call("anvil_dumpState")
        if not isinstance(raw, str) or not raw.startswith("0x"):
            raise AnvilDown(f"anvil_dumpState answered {type(raw).__name__}")
        self.state.write(bytes.fromhex(raw[2:]))
        self.journal.reset()  # the state file holds every block the journal did
        elapsed = (time.perf_counter() - start) * 1000
        self._dumps += 1
        self._dump_ms_total += elapsed
        self._dump_ms_max = max(self._dump_ms_max, elapsed)
        self._dump_ms_last = elapsed
        self._persisted = head
        with self._count_lock:
            self._written_after = failed_before

    def journal_blocks(self, head: int) -> None:
        """Write blocks ``persisted + 1 .. head`` to the journal (one line each: number, hash, timestamp and raw
        transactions, read back from anvil), then the whole state instead once the journal outgrows it. Caller
        holds the lock."""
        entries = []
        for number in range(self._persisted + 1, head + 1):
            block = self._call("eth_getBlockByNumber", [hex(number), False])
            if not isinstance(block, dict):
                raise AnvilDown(f"anvil has no block {number} below its head {head}")
            txs = [self._call("eth_getRawTransactionByHash", [h]) for h in block.get("transactions", [])]
            if not all(isinstance(t, str) and t.startswith("0x") for t in txs):
                raise AnvilDown(f"anvil answered no raw transaction of block {number}")
            entries.append({"block": number, "hash": str(block["hash"]), "timestamp": int(str(block["timestamp"]), 16),
                            "txs": txs})
        if entries:
            self.journal.append(entries)
            self._journaled += len(entries)
            self._persisted = head
        if self.journal.size() > max(JOURNAL_MIN_BYTES, self.state.size()):
            self.dump(head)

    def replay_journal(self) -> int:
        """Mine the journaled blocks past anvil's head again (each from its raw transactions, at its timestamp),
        checking each block's hash against the one journaled, then write the whole state; the blocks replayed."""
        head = int(self._call("eth_blockNumber"), 16)
        entries = [e for e in self.journal.entries() if int(e["block"]) > head]
        replayed = 0
        if entries:  # anvil's clock starts at the present: set it back to the first journaled block's
            self._call("evm_setTime", [int(entries[0]["timestamp"])])
        for entry in entries:
            number = int(entry["block"])
            if number != head + 1:
                log.error("journal: block %d follows block %d; the blocks from it on are not replayed", number, head)
                break
            txs = [str(t) for t in entry["txs"]]
            if txs:
                self._call("evm_setAutomine", [False])
                try:
                    for raw in txs:
                        self._call("eth_sendRawTransaction", [raw])
                    self._call("evm_mine", [int(entry["timestamp"])])
                finally:
                    self._call("evm_setAutomine", [True])
            else:
                self._call("evm_mine", [int(entry["timestamp"])])
            block = self._call("eth_getBlockByNumber", [hex(number), False])
            got = str(block.get("hash")) if isinstance(block, dict) else None
            if got != str(entry["hash"]):
                log.error("journal: block %d mined again as %s, not %s (its transactions are there, its hash is not "
                          "the one clients saw)", number, got, entry["hash"])
            head, replayed = number, replayed + 1
        if entries:
            self._call("evm_setTime", [max(int(time.time()), int(entries[-1]["timestamp"]))])  # and on to the present
            log.info("journal: %d block(s) mined again from %s, through block %d", replayed, self.journal.path, head)
            self.dump(head)
        return replayed

    def _saw_head(self, head: int) -> None:
        if head != self._head_seen:
            self._head_seen, self._head_seen_at = head, time.monotonic()

    def keep_fresh(self) -> None:
        """Interval mining while someone watches: mine an empty block before answering when the
        head is ``block_time_s`` old or older, so no answer shows a head older than that and a
        deadline passes on a quiet chain; while nobody asks, nothing is mined (an unwatched devnet
        neither grows nor costs anything)."""
        if self.block_time_s <= 0 or time.monotonic() - self._head_seen_at < self.block_time_s:
            return
        with self._mine_lock:
            if time.monotonic() - self._head_seen_at < self.block_time_s:
                return  # another request mined meanwhile
            with self._changing():
                self._call("evm_mine")
                self.settle("blocks")  # the empty block is on disk before any answer shows it

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Around a call that may change the chain, until what it changed is on disk: while one
        is in flight, or after one failed, reads look at the head before they answer."""
        with self._count_lock:
            self._undurable += 1
        failed = True
        try:
            yield
            failed = False
        finally:
            with self._count_lock:
                self._undurable -= 1
                if failed:  # it may have changed the chain without a write: reads check until one is made
                    self._failed_changes += 1

    def all_written(self, *, count: bool = False) -> bool:
        """Whether everything any call may have changed is on disk: no call that changes the chain
        is in flight, and the last one that failed was followed by a write. Then a read's answer
        (received before this is asked, so computed from changes that all made it to disk) needs
        no look at the head (``count``: tally such a read)."""
        with self._count_lock:
            written = self._undurable == 0 and self._written_after == self._failed_changes
            if written and count:
                self._fast_reads += 1
            return written

    def _wait_mined(self, answer: bytes) -> int | None:
        """Wait (briefly) until the transaction a send answered with is mined, so that the state
        written before the hash goes back holds it: a hash the devnet returned is never lost. The
        number of the block it was mined in (None: an error answer, or not mined in time)."""
        try:
            tx = json.loads(answer).get("result")
        except (ValueError, AttributeError):
            return None
        if not isinstance(tx, str):
            return None  # an error answer: nothing was sent
        deadline = time.monotonic() + SEND_MINE_WAIT_S
        delay = 0.001
        while (receipt := self._call("eth_getTransactionReceipt", [tx])) is None:
            if time.monotonic() > deadline:
                log.warning("transaction %s not mined within %.0f s; its hash goes back unwritten", tx, SEND_MINE_WAIT_S)
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            return int(receipt["blockNumber"], 16)
        except (KeyError, TypeError, ValueError):
            return None

    def settle(self, change: Change, mined_block: int | None = None) -> None:
        """Make sure the chain an answer was computed from is on disk before it leaves: after a
        call that changed the chain, or when the head is not the one last written (a block mined
        meanwhile, by a transaction or by interval mining: empty blocks too, so that a restart
        never takes back a block anyone saw, and heights never go down).

        ``change``: ``"blocks"`` after a call that only mines (a transaction, ``evm_mine``): the new
        blocks go to the journal; ``"state"`` after any other call that changes the chain
        (``anvil_setBalance``, ``evm_revert``...): the whole state is written; ``"none"`` after a read.

        A send whose transaction was mined in ``mined_block`` needs no write of its own when a
        write made while it waited for the lock already holds that block (group commit: the
        sends that arrive together share one write; the written head is read before the blocks
        are written, so a written head at or past the block means the block is on disk)."""
        with self._persist_lock:
            if mined_block is not None and self._persisted >= mined_block and change == "blocks":
                self._grouped += 1
                return
            head = int(self._call("eth_blockNumber"), 16)
            self._saw_head(head)
            with self._count_lock:
                failed = self._written_after != self._failed_changes
            if change == "state" or failed or head < self._persisted or self._persisted < 0:
                self.dump(head)  # what changed may be more than blocks (or the chain went back): all of it
            elif head > self._persisted:
                self.journal_blocks(head)

    def stats(self) -> PersistenceStats:
        """The numbers ``fedchain_devnetStatus`` answers."""
        return PersistenceStats(
            anvil_pid=self.process.pid if self.process is not None else 0,
            anvil_restarts=self.restarts,
            persisted_block=self._persisted,
            dumps=self._dumps,
            dump_ms_total=round(self._dump_ms_total, 3),
            dump_ms_max=round(self._dump_ms_max, 3),
            dump_ms_last=round(self._dump_ms_last, 3),
            state_bytes=self.state.size(),
            state_file=str(self.state.path),
            block_time_s=self.block_time_s,
            grouped_sends=self._grouped,
            unchecked_reads=self._fast_reads,
            journaled_blocks=self._journaled,
            journal_bytes=self.journal.size(),
        )

    # -- one request ---------------------------------------------------------------------------

    def handle(self, body: bytes) -> bytes:
        """Answer one JSON-RPC request (or batch) once what it saw is persisted."""
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        calls = parsed if isinstance(parsed, list) else [parsed]
        methods = [str(c.get("method", "")) if isinstance(c, dict) else "" for c in calls]
        if isinstance(parsed, dict) and methods == [STATUS_METHOD]:
            return json.dumps({"jsonrpc": "2.0", "id": parsed.get("id"), "result": self.stats().to_json()}).encode()
        mutating = not all(_is_read_only(m) for m in methods)
        retry_all = not mutating
        raw_tx = _raw_transaction(parsed)
        chain_state = not all(m in _NO_CHAIN_STATE for m in methods)
        deadline = time.monotonic() + RESTART_WAIT_S
        first = True
        while True:
            if not self.up.wait(timeout=max(0.0, deadline - time.monotonic())):
                return _error(parsed, "the devnet's anvil is restarting and did not come back in time; retry",
                              DEVNET_UNAVAILABLE_CODE)
            process = self.process
            try:
                if not first and raw_tx is not None and self._call("eth_getTransactionByHash", [raw_tx]) is not None:
                    self.settle("blocks")
                    return json.dumps({"jsonrpc": "2.0", "id": parsed.get("id"), "result": raw_tx}).encode()
                if mutating:
                    with self._changing():
                        answer = self.forward(body)
                        mined = self._wait_mined(answer) if len(methods) == 1 and methods[0] in _SENDS else None
                        self.settle("blocks" if all(m in _MINES for m in methods) else "state", mined)
                    return answer
                if chain_state:
                    self.keep_fresh()
                answer = self.forward(body)
                if chain_state and not self.all_written(count=True):
                    self.settle("none")
                return answer
            except AnvilDown as err:
                if process is not None and err.delivered and _outlives(process, DEATH_GRACE_S):
                    # anvil runs: the call failed on its own (a timeout, an error answer)
                    return _error(parsed, f"the devnet's anvil failed to answer: {err}")
                log.warning("anvil did not answer %s: %s", ",".join(methods), err)
                if not (retry_all or raw_tx is not None or not err.delivered) or self.stopping.is_set():
                    return _error(parsed, "the devnet's anvil died while this request ran; whether it took effect is "
                                          "unknown: check the chain and retry", DEVNET_UNAVAILABLE_CODE)
                while self.process is process and time.monotonic() < deadline and not self.stopping.is_set():
                    time.sleep(0.05)  # the main loop notices the death and starts anvil again
                if time.monotonic() >= deadline:
                    return _error(parsed, "the devnet's anvil did not come back in time; retry", DEVNET_UNAVAILABLE_CODE)
                first = False

    # -- the main loop -------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until SIGTERM; the exit status."""
        self._reap_leftover()
        try:
            self.launch()
        except (RuntimeError, OSError) as err:
            log.error("%s", err)
            return 1
        try:
            server = _Server((HOST, self.port), _Handler, self)
        except OSError as err:
            log.error("cannot listen on %s:%d: %s (address in use?)", HOST, self.port, err)
            self._stop_anvil()
            return 2
        threading.Thread(target=server.serve_forever, name="devnet-proxy", daemon=True).start()
        log.info("devnet proxy listening on http://%s:%d", HOST, self.port)
        quick: list[float] = []
        while not self.stopping.is_set():
            assert self.process is not None
            try:
                self.process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            if self.stopping.is_set():
                break
            self.up.clear()
            log.error("anvil pid %d exited with code %s; restarting it from %s", self.process.pid,
                      self.process.returncode, self.state.path)
            now = time.monotonic()
            quick = [t for t in quick if now - t < _QUICK_S] + [now]
            if len(quick) > MAX_QUICK_RESTARTS:
                log.error("anvil died %d times within %.0f s; giving up", len(quick), _QUICK_S)
                server.shutdown()
                return 3
            try:
                self.launch()
                self.restarts += 1
            except (RuntimeError, OSError) as err:
                log.error("restarting anvil failed: %s", err)
        server.shutdown()
        self._final_dump()
        self._stop_anvil()
        stats = self.stats()
        log.info("devnet supervisor stopped: %d state writes (%.1f ms in all, at most %.1f ms), state file %d bytes, "
                 "through block %d, anvil restarted %d time(s)", stats.dumps, stats.dump_ms_total, stats.dump_ms_max,
                 stats.state_bytes, stats.persisted_block, stats.anvil_restarts)
        return 0

    def _final_dump(self) -> None:
        with self._persist_lock:
            try:
                if self.up.is_set():
                    self.dump(int(self._call("eth_blockNumber"), 16))
            except AnvilDown as err:
                log.warning("final state dump failed: %s", err)

    def _stop_anvil(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate_pid(self.process.pid, timeout_s=20.0, what="anvil")
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - terminate_pid killed it
                pass
        self.state.path.with_name("anvil.pid").unlink(missing_ok=True)


def _anvil_marker(port: int) -> str:
    """What the command line of the supervisor's anvil on internal ``port`` contains."""
    return f"--host {HOST} --port {port}"


def _raw_transaction(parsed: Any) -> str | None:
    """The hash of the transaction an ``eth_sendRawTransaction`` request sends, else None."""
    if not isinstance(parsed, dict) or parsed.get("method") != "eth_sendRawTransaction":
        return None
    params = parsed.get("params")
    if not isinstance(params, list) or not params or not isinstance(params[0], str):
        return None
    try:
        return "0x" + keccak(bytes.fromhex(params[0].removeprefix("0x"))).hex()
    except ValueError:
        return None


def _error(parsed: Any, message: str, code: int = -32603) -> bytes:
    def one(call: Any) -> dict[str, Any]:
        ident = call.get("id") if isinstance(call, dict) else None
        return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}

    if isinstance(parsed, list):
        return json.dumps([one(c) for c in parsed]).encode()
    return json.dumps(one(parsed)).encode()


class _Upstream:
    """Keep-alive HTTP/1.1 connections to anvil, one per proxy thread (``http.client``: the
    proxy's own cost per forwarded request is most of what it adds to a read)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def post(self, url: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` to ``url``: the answer's status and content. :class:`AnvilDown` when
        anvil does not answer (``delivered`` False: the connection was refused)."""
        conn = self._connection(url)
        try:
            conn.request("POST", "/", body=body, headers={"content-type": "application/json"})
            response = conn.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException) as err:
            self._drop()
            raise AnvilDown(f"{type(err).__name__}: {err}") from err
        if response.will_close:
            self._drop()
        return response.status, content

    def _connection(self, url: str) -> http.client.HTTPConnection:
        held: tuple[str, http.client.HTTPConnection] | None = getattr(self._local, "held", None)
        if held is not None:
            if held[0] == url and not idle_socket_unusable(held[1].sock):
                return held[1]
            self._drop()
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=UPSTREAM_CONNECT_TIMEOUT_S)
        try:
            conn.connect()
        except OSError as err:
            conn.close()
            raise AnvilDown(f"{type(err).__name__}: {err}", delivered=False) from err
        assert conn.sock is not None
        conn.sock.settimeout(UPSTREAM_TIMEOUT_S)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._local.held = (url, conn)
        return conn

    def _drop(self) -> None:
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            held[1].close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        """Forward one JSON-RPC request to anvil and answer once what it saw is written."""
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BYTES:
            self.send_error(413 if length > 0 else 400, f"a request body of 0 to {MAX_REQUEST_BYTES} bytes is expected")
            return
        body = self.rfile.read(length)
        try:
            answer = self.server.supervisor.handle(body)
        except Exception as err:  # the process edge: one bad request must not kill the proxy thread
            log.exception("request failed in the devnet proxy")
            answer = _error(None, f"the devnet proxy failed: {err}")
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Quiet: one line per request would drown the log."""


# --- the command line ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fedchain.services.supervisor``: supervise anvil until SIGTERM."""
    parser = argparse.ArgumentParser(prog=f"python -m {MARKER}", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--anvil", type=Path, required=True, help="the anvil binary")
    parser.add_argument("--port", type=int, required=True, help="the public loopback port")
    parser.add_argument("--state", type=Path, required=True, help="the state file (state.json.gz)")
    parser.add_argument("--block-time", type=float, default=0.0, help="interval mining in seconds (0: off)")
    parser.add_argument("anvil_args", nargs="*", help="further anvil arguments (after --)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="devnet-supervisor %(levelname)s %(message)s")
    supervisor = Supervisor(args.anvil, args.port, StateFile(args.state), block_time_s=args.block_time,
                            extra_args=args.anvil_args)

    def on_term(signum: int, _frame: object) -> None:
        log.info("received signal %d: dumping the chain and stopping", signum)
        supervisor.stopping.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())

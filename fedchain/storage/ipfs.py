"""Blob store over the Kubo RPC HTTP API (``/api/v0/...``) with httpx.

Only ``add``, ``cat``, ``pin/add``, ``pin/ls`` and ``version`` are used, so a Kubo daemon,
the js-ipfs node that ``fedchain ipfs start`` runs, or an IPFS Cluster proxy endpoint all
work unchanged. ``add`` is called with explicit ``cid-version=1``, ``raw-leaves=true``,
``chunker=size-262144``, ``hash=sha2-256`` and ``cid-base=base32``; the CID the node
answers is checked against the one computed locally, so a node configured differently is
caught at once instead of producing CIDs nobody else can reproduce.

Every call has a timeout on each step (a ``cat`` of a CID the node cannot find otherwise waits
forever, and is reported as :class:`~fedchain.errors.BlobNotFoundError`) and a deadline for the
whole call, and every answer is bounded: a blob by ``max_bytes``, the node's JSON answers by
``max_answer_bytes`` and the bounded JSON parser. Connection errors are retried a bounded number
of times with exponential backoff, then reported as :class:`~fedchain.errors.StorageUnavailableError`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import httpx

from fedchain.codec.bounded_json import JsonLimits, parse_json
from fedchain.errors import BlobFormatError, BlobNotFoundError, IntegrityError, StorageError, StorageUnavailableError
from fedchain.storage.base import check_size, verify_builder
from fedchain.storage.cid import CHUNK_SIZE, CidBuilder, compute_cid, compute_file_cid, parse_cid
from fedchain.types import Cid

__all__ = ["IpfsStore", "DEFAULT_TIMEOUT_S", "DEFAULT_CAT_TIMEOUT_S", "DEFAULT_DEADLINE_S", "MAX_ANSWER_BYTES"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CAT_TIMEOUT_S = 10.0
DEFAULT_DEADLINE_S = 60.0
"""The longest one call may take, whatever the node does (a 256 MiB blob needs 4.5 MB/s)."""
MAX_ANSWER_BYTES = 1024 * 1024
"""The largest JSON answer (add, pin, version, an error) read from the node."""
ANSWER_LIMITS = JsonLimits(max_bytes=MAX_ANSWER_BYTES, max_depth=8, max_members=100_000, max_values=1_000_000)
"""The bounds of a node's JSON answer (its deepest, pin/ls, nests 3 levels)."""
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
_ADD_PARAMS = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": f"size-{CHUNK_SIZE}",
    "hash": "sha2-256",
    "cid-base": "base32",
    "pin": "true",
    "progress": "false",
    "trickle": "false",
}
T = TypeVar("T")


class IpfsStore:
    """A :class:`~fedchain.ports.BlobStore` on a Kubo-compatible RPC API.

    ``timeout_s`` bounds every step of a call (connect, each read, each write); ``cat_timeout_s``
    bounds how long a read waits for the node to start answering a ``cat`` (what a missing
    CID turns into), and for each later piece of the answer. ``deadline_s`` bounds a whole call:
    connection retries, the upload and the whole answer. A blob that has not arrived whole by then
    is not available (:class:`~fedchain.errors.BlobNotFoundError`), so a node or a provider that
    drips the bytes cannot hold a caller longer than that; any other call that overruns it, or
    an answer of more than ``max_answer_bytes`` (the node's JSON, never a blob), is a
    :class:`~fedchain.errors.StorageError`. ``retries`` connection attempts beyond the first are
    made, waiting ``backoff_s``, then twice that, and so on, as long as the deadline allows.
    """

    def __init__(
        self,
        api_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        cat_timeout_s: float = DEFAULT_CAT_TIMEOUT_S,
        deadline_s: float = DEFAULT_DEADLINE_S,
        retries: int = 3,
        backoff_s: float = 0.1,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        if not api_url.startswith(("http://", "https://")):
            raise StorageError(f"IPFS API URL must start with http:// or https://, got {api_url!r}")
        if timeout_s <= 0 or cat_timeout_s <= 0 or deadline_s <= 0:
            raise StorageError("IPFS timeouts must be positive")
        if retries < 0:
            raise StorageError("IPFS retries must be >= 0")
        if max_answer_bytes < 1:
            raise StorageError("IPFS max_answer_bytes must be positive")
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s
        self.cat_timeout_s = cat_timeout_s
        self.deadline_s = deadline_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_bytes = max_bytes
        self.max_answer_bytes = max_answer_bytes
        self._answer_limits = JsonLimits(
            max_bytes=max_answer_bytes, max_depth=ANSWER_LIMITS.max_depth,
            max_members=ANSWER_LIMITS.max_members, max_values=ANSWER_LIMITS.max_values,
        )
        # identity: a blob's bytes must arrive as they are (its CID is checked), and no answer may
        # inflate beyond the bytes counted against the limits
        self._client = httpx.Client(
            base_url=self.api_url + "/api/v0", timeout=httpx.Timeout(timeout_s), headers={"Accept-Encoding": "identity"}
        )

    def describe(self) -> str:
        """``ipfs <API URL>``."""
        return f"ipfs {self.api_url}"

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def __enter__(self) -> IpfsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------
    def _deadline(self) -> float:
        return time.monotonic() + self.deadline_s

    def _retrying(self, what: str, call: Callable[[], T], end: float) -> T:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return call()
            except (httpx.ConnectError, httpx.ConnectTimeout) as err:
                if attempt == self.retries or time.monotonic() + delay > end:
                    raise StorageUnavailableError(
                        f"IPFS API at {self.api_url} is unreachable ({what}: {err}); "
                        "start the managed node with `fedchain ipfs start` or pass --ipfs-api URL"
                    ) from err
                log.debug("ipfs %s: connection failed (%s), retry %d in %.2fs", what, err, attempt + 1, delay)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self, path: str, params: dict[str, str], end: float, *, timeout: httpx.Timeout | None = None,
        files: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Send one request and return its streaming response (the caller closes it)."""

        def call() -> httpx.Response:
            request = self._client.build_request(
                "POST", path, params=params, files=files,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            return self._client.send(request, stream=True)

        return self._retrying(path, call, end)

    def _read_answer(self, response: httpx.Response, path: str, end: float) -> bytes:
        """The whole body of a JSON answer, at most ``max_answer_bytes``, by the deadline."""
        parts: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > self.max_answer_bytes:
                    raise StorageError(
                        f"IPFS {path} answer from {self.api_url} is over the limit of {self.max_answer_bytes} bytes"
                    )
                if time.monotonic() > end:
                    raise StorageError(f"IPFS {path} at {self.api_url} did not answer within {self.deadline_s:g}s")
                parts.append(chunk)
        except httpx.TimeoutException as err:
            raise StorageError(f"IPFS {path} timed out after {self.timeout_s}s at {self.api_url}") from err
        except httpx.HTTPError as err:
            raise StorageUnavailableError(f"IPFS {path} broke off at {self.api_url}: {err}") from err
        return b"".join(parts)

    def _call(
        self, path: str, params: dict[str, str], *, timeout: httpx.Timeout | None = None,
        upload: _Upload | None = None,
    ) -> _Answer:
        """One API call, its whole answer read within the bounds (any HTTP status)."""
        end = self._deadline()
        files = None
        if upload is not None:
            upload.end, upload.what = end, f"IPFS {path} at {self.api_url}"
            files = {"file": ("blob", upload, "application/octet-stream")}
        try:
            response = self._send(path, params, end, timeout=timeout, files=files)
        except httpx.TimeoutException as err:
            raise StorageError(f"IPFS {path} timed out after {self.timeout_s}s at {self.api_url}") from err
        except httpx.HTTPError as err:
            raise StorageUnavailableError(f"IPFS {path} failed at {self.api_url}: {err}") from err
        try:
            return _Answer(response.status_code, self._read_answer(response, path, end), response.reason_phrase)
        finally:
            response.close()

    def _post(
        self, path: str, params: dict[str, str], *, timeout: httpx.Timeout | None = None,
        upload: _Upload | None = None,
    ) -> _Answer:
        answer = self._call(path, params, timeout=timeout, upload=upload)
        if answer.status >= 400:
            raise StorageError(f"IPFS {path} failed with HTTP {answer.status}: {self._message(answer)}")
        return answer

    @contextmanager
    def _cat(self, cid: Cid, end: float) -> Iterator[httpx.Response]:
        timeout = httpx.Timeout(self.timeout_s, read=self.cat_timeout_s)
        try:
            response = self._send("/cat", {"arg": cid}, end, timeout=timeout)
        except httpx.ReadTimeout as err:
            raise BlobNotFoundError(f"blob {cid} is not available from the IPFS node at {self.api_url} "
                                    f"(no answer within {self.cat_timeout_s}s)") from err
        except httpx.TimeoutException as err:
            raise StorageError(f"IPFS cat {cid} timed out at {self.api_url}") from err
        except httpx.HTTPError as err:
            raise StorageUnavailableError(f"IPFS cat {cid} failed at {self.api_url}: {err}") from err
        try:
            if response.status_code >= 400:
                message = self._message(_Answer(response.status_code, self._read_answer(response, "/cat", end),
                                                response.reason_phrase))
                if "not found" in message.lower() or "no link" in message.lower():
                    raise BlobNotFoundError(f"blob {cid} is not on the IPFS node at {self.api_url}: {message}")
                raise StorageError(f"IPFS cat {cid} failed with HTTP {response.status_code}: {message}")
            yield response
        finally:
            response.close()

    def _iter_cat(self, cid: Cid, response: httpx.Response, end: float) -> Iterator[bytes]:
        received = 0
        try:  # pieces as they arrive (a chunk size would wait for that many bytes before the deadline check)
            for chunk in response.iter_raw():
                received += len(chunk)
                if time.monotonic() > end:
                    raise BlobNotFoundError(
                        f"blob {cid} did not arrive whole from the IPFS node at {self.api_url} within "
                        f"{self.deadline_s:g}s ({received} bytes by then)"
                    )
                yield chunk
        except httpx.ReadTimeout as err:
            raise BlobNotFoundError(f"IPFS cat {cid} stalled (no data for {self.cat_timeout_s}s)") from err
        except httpx.HTTPError as err:
            raise StorageUnavailableError(f"IPFS cat {cid} broke off at {self.api_url}: {err}") from err

    def _json(self, answer: _Answer, what: str) -> dict[str, Any]:
        """Kubo streams one JSON object per line; the last one holds the result."""
        lines = [line for line in answer.body.splitlines() if line.strip()]
        if not lines:
            raise StorageError(f"IPFS {what} answered with an empty body")
        try:
            data = parse_json(lines[-1], self._answer_limits, f"IPFS {what} answer")
        except BlobFormatError as err:  # the node's fault, never a blob's: a plain StorageError
            raise StorageError(f"{err}: {_shown(lines[-1])}") from None
        if not isinstance(data, dict):
            raise StorageError(f"IPFS {what} answer is not a JSON object: {_shown(lines[-1])}")
        return data

    def _message(self, answer: _Answer) -> str:
        """The ``Message`` of an error answer, or the start of its text."""
        try:
            data = parse_json(answer.body, self._answer_limits, "IPFS error answer")
        except BlobFormatError:
            return answer.body[:300].decode("utf-8", "replace").strip() or answer.reason
        if isinstance(data, dict) and isinstance(data.get("Message"), str):
            return str(data["Message"])[:1000]
        return json.dumps(data)[:300]

    # -- API -------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        """The node's ``/api/v0/version`` answer (``Version`` and friends)."""
        data = self._json(self._post("/version", {}), "version")
        if "Version" not in data:
            raise StorageError(f"IPFS version answer has no Version: {json.dumps(data)[:200]}")
        return data

    def put(self, data: bytes) -> Cid:
        """Add ``data`` to the node (pinned); IntegrityError when the node files it under another CID than ours."""
        view = memoryview(data).cast("B")
        check_size(len(view), self.max_bytes, "blob")
        expected = compute_cid(view)
        return self._add(_Upload(io.BytesIO(view)), expected)

    def put_file(self, path: Path) -> Cid:
        """Stream a file to the node (pinned), checked against the CID computed locally first."""
        path = Path(path)
        try:
            check_size(path.stat().st_size, self.max_bytes, f"file {path}")
        except OSError as err:
            raise StorageError(f"cannot read {path}: {err}") from err
        expected, _ = compute_file_cid(path)
        try:
            source: BinaryIO = open(path, "rb")
        except OSError as err:
            raise StorageError(f"cannot read {path}: {err}") from err
        with source:
            return self._add(_Upload(source), expected)

    def _add(self, upload: _Upload, expected: Cid) -> Cid:
        answer = self._json(self._post("/add", dict(_ADD_PARAMS), upload=upload), "add")
        got = answer.get("Hash")
        if not isinstance(got, str):
            raise StorageError(f"IPFS add answered without a Hash: {json.dumps(answer)[:200]}")
        if got != expected:
            raise IntegrityError(
                f"IPFS node at {self.api_url} filed the blob under {_shown(got)}, but it hashes to {expected}; "
                "the node does not honour cid-version=1, raw-leaves, 256 KiB chunks and a balanced layout"
            )
        log.debug("ipfs: put %s", got)
        return Cid(got)

    def get(self, cid: Cid) -> bytes:
        """The blob's bytes from the node, verified against ``cid``, within the deadline."""
        parse_cid(cid)
        end = self._deadline()
        builder = CidBuilder()
        parts: list[bytes] = []
        with self._cat(cid, end) as response:
            for chunk in self._iter_cat(cid, response, end):
                builder.update(chunk)
                check_size(builder.size, self.max_bytes, f"blob {cid}")
                parts.append(chunk)
        verify_builder(cid, builder, f"IPFS node at {self.api_url} returned wrong bytes for {cid}")
        return b"".join(parts)

    def get_file(self, cid: Cid, dest: Path) -> int:
        """Stream the blob into ``dest`` (atomically, once verified) within the deadline; return its size."""
        parse_cid(cid)
        end = self._deadline()
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
        tmp = Path(name)
        builder = CidBuilder()
        try:
            with os.fdopen(fd, "wb") as out, self._cat(cid, end) as response:
                for chunk in self._iter_cat(cid, response, end):
                    builder.update(chunk)
                    check_size(builder.size, self.max_bytes, f"blob {cid}")
                    out.write(chunk)
            verify_builder(cid, builder, f"IPFS node at {self.api_url} returned wrong bytes for {cid}")
            os.replace(tmp, dest)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write {dest}: {err}") from err
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return builder.size

    def pin(self, cid: Cid) -> None:
        """Pin ``cid`` on the node; BlobNotFoundError when the node cannot find it in time."""
        parse_cid(cid)
        timeout = httpx.Timeout(self.timeout_s, read=self.cat_timeout_s)
        try:
            answer = self._post("/pin/add", {"arg": cid, "recursive": "true"}, timeout=timeout)
        except StorageError as err:
            if isinstance(err.__cause__, httpx.ReadTimeout):
                raise BlobNotFoundError(f"cannot pin {cid}: the IPFS node at {self.api_url} does not have it") from err
            raise
        pins = self._json(answer, "pin/add").get("Pins")
        if not isinstance(pins, list) or not pins:
            raise StorageError(f"IPFS pin/add {cid} answered without Pins: {_shown(answer.body)}")

    def has(self, cid: Cid) -> bool:
        """Whether the node holds ``cid`` pinned."""
        parse_cid(cid)
        answer = self._call("/pin/ls", {"arg": cid, "type": "recursive", "cid-base": "base32"})
        if answer.status >= 400:
            message = self._message(answer)
            if "not pinned" in message.lower():
                return False
            raise StorageError(f"IPFS pin/ls {cid} failed with HTTP {answer.status}: {message}")
        keys = self._json(answer, "pin/ls").get("Keys")
        return isinstance(keys, dict) and cid in keys


@dataclass(frozen=True)
class _Answer:
    """A whole (bounded) answer of the node: HTTP status, body, reason phrase."""

    status: int
    body: bytes
    reason: str


class _Upload(io.RawIOBase):
    """The body of an ``add``, read by httpx in pieces; a read past the call's deadline is refused,
    so a node that takes the upload slowly cannot hold the caller."""

    def __init__(self, source: BinaryIO | io.BytesIO) -> None:
        super().__init__()
        self._source = source
        self.end = float("inf")
        self.what = "IPFS add"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._source.seek(offset, whence)

    def tell(self) -> int:
        return self._source.tell()

    def readinto(self, buffer: Any) -> int:
        if time.monotonic() > self.end:
            raise StorageError(f"{self.what}: the upload did not finish within the deadline")
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _shown(text: bytes | str) -> str:
    """The start of an answer for a message."""
    shown = repr(text[:200])
    return shown + ("..." if len(text) > 200 else "")

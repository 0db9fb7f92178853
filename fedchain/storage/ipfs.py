"""Blob store over the Kubo RPC HTTP API (``/api/v0/...``) with httpx.

Only ``add``, ``cat``, ``pin/add``, ``pin/ls`` and ``version`` are used, so a Kubo daemon,
the js-ipfs node that ``fedchain ipfs start`` runs, or an IPFS Cluster proxy endpoint all
work unchanged. ``add`` is called with explicit ``cid-version=1``, ``raw-leaves=true``,
``chunker=size-262144``, ``hash=sha2-256`` and ``cid-base=base32``; the CID the node
answers is checked against the one computed locally, so a node configured differently is
caught at once instead of producing CIDs nobody else can reproduce.

Every call has a timeout (a ``cat`` of a CID the node cannot find otherwise waits forever,
and is reported as :class:`~fedchain.errors.BlobNotFoundError`). Connection errors are
retried a bounded number of times with exponential backoff, then reported as
:class:`~fedchain.errors.StorageUnavailableError`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import httpx

from fedchain.errors import BlobNotFoundError, IntegrityError, StorageError, StorageUnavailableError
from fedchain.storage.base import check_size, verify_builder
from fedchain.storage.cid import CHUNK_SIZE, CidBuilder, compute_cid, compute_file_cid, parse_cid
from fedchain.types import Cid

__all__ = ["IpfsStore", "DEFAULT_TIMEOUT_S", "DEFAULT_CAT_TIMEOUT_S"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CAT_TIMEOUT_S = 10.0
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

    ``timeout_s`` bounds every call (connect, each read, each write); ``cat_timeout_s``
    bounds how long a read waits for the node to start answering a ``cat`` (what a missing
    CID turns into). ``retries`` connection attempts beyond the first are made, waiting
    ``backoff_s``, then twice that, and so on.
    """

    def __init__(
        self,
        api_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        cat_timeout_s: float = DEFAULT_CAT_TIMEOUT_S,
        retries: int = 3,
        backoff_s: float = 0.1,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if not api_url.startswith(("http://", "https://")):
            raise StorageError(f"IPFS API URL must start with http:// or https://, got {api_url!r}")
        if timeout_s <= 0 or cat_timeout_s <= 0:
            raise StorageError("IPFS timeouts must be positive")
        if retries < 0:
            raise StorageError("IPFS retries must be >= 0")
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s
        self.cat_timeout_s = cat_timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_bytes = max_bytes
        self._client = httpx.Client(base_url=self.api_url + "/api/v0", timeout=httpx.Timeout(timeout_s))

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
    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return call()
            except (httpx.ConnectError, httpx.ConnectTimeout) as err:
                if attempt == self.retries:
                    raise StorageUnavailableError(
                        f"IPFS API at {self.api_url} is unreachable ({what}: {err}); "
                        "start the managed node with `fedchain ipfs start` or pass --ipfs-api URL"
                    ) from err
                log.debug("ipfs %s: connection failed (%s), retry %d in %.2fs", what, err, attempt + 1, delay)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, path: str, params: dict[str, str], **kwargs: Any) -> httpx.Response:
        def call() -> httpx.Response:
            return self._client.post(path, params=params, **kwargs)

        try:
            response = self._retrying(path, call)
        except httpx.TimeoutException as err:
            raise StorageError(f"IPFS {path} timed out after {self.timeout_s}s at {self.api_url}") from err
        except httpx.HTTPError as err:
            raise StorageUnavailableError(f"IPFS {path} failed at {self.api_url}: {err}") from err
        if response.status_code >= 400:
            raise StorageError(f"IPFS {path} failed with HTTP {response.status_code}: {_message(response)}")
        return response

    @contextmanager
    def _cat(self, cid: Cid) -> Iterator[httpx.Response]:
        timeout = httpx.Timeout(self.timeout_s, read=self.cat_timeout_s)

        def call() -> httpx.Response:
            request = self._client.build_request("POST", "/cat", params={"arg": cid}, timeout=timeout)
            return self._client.send(request, stream=True)

        try:
            response = self._retrying("cat", call)
        except httpx.ReadTimeout as err:
            raise BlobNotFoundError(f"blob {cid} is not available from the IPFS node at {self.api_url} "
                                    f"(no answer within {self.cat_timeout_s}s)") from err
        except httpx.TimeoutException as err:
            raise StorageError(f"IPFS cat {cid} timed out at {self.api_url}") from err
        except httpx.HTTPError as err:
            raise StorageUnavailableError(f"IPFS cat {cid} failed at {self.api_url}: {err}") from err
        try:
            if response.status_code >= 400:
                response.read()
                message = _message(response)
                if "not found" in message.lower() or "no link" in message.lower():
                    raise BlobNotFoundError(f"blob {cid} is not on the IPFS node at {self.api_url}: {message}")
                raise StorageError(f"IPFS cat {cid} failed with HTTP {response.status_code}: {message}")
            yield response
        finally:
            response.close()

    def _iter_cat(self, cid: Cid, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_raw(1024 * 1024)
        except httpx.ReadTimeout as err:
            raise BlobNotFoundError(f"IPFS cat {cid} stalled (no data for {self.cat_timeout_s}s)") from err
        except httpx.HTTPError as err:
            raise StorageUnavailableError(f"IPFS cat {cid} broke off at {self.api_url}: {err}") from err

    # -- API -------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        """The node's ``/api/v0/version`` answer (``Version`` and friends)."""
        response = self._post("/version", {})
        try:
            data = response.json()
        except ValueError as err:
            raise StorageError(f"IPFS version answer is not JSON: {response.text[:200]!r}") from err
        if not isinstance(data, dict) or "Version" not in data:
            raise StorageError(f"IPFS version answer has no Version: {data!r}")
        return data

    def put(self, data: bytes) -> Cid:
        """Add ``data`` to the node (pinned); IntegrityError when the node files it under another CID than ours."""
        view = memoryview(data)
        check_size(len(view), self.max_bytes, "blob")
        expected = compute_cid(view)
        cid = self._add(lambda: bytes(view), expected)
        return cid

    def put_file(self, path: Path) -> Cid:
        """Stream a file to the node (pinned), checked against the CID computed locally first."""
        path = Path(path)
        try:
            check_size(path.stat().st_size, self.max_bytes, f"file {path}")
        except OSError as err:
            raise StorageError(f"cannot read {path}: {err}") from err
        expected, _ = compute_file_cid(path)

        def content() -> BinaryIO:
            try:
                return open(path, "rb")
            except OSError as err:
                raise StorageError(f"cannot read {path}: {err}") from err

        return self._add(content, expected)

    def _add(self, content: Callable[[], bytes | BinaryIO], expected: Cid) -> Cid:
        body = content()
        try:
            response = self._post("/add", dict(_ADD_PARAMS), files={"file": ("blob", body, "application/octet-stream")})
        finally:
            if hasattr(body, "close"):
                body.close()
        answer = _last_json_line(response.text, "add")
        got = answer.get("Hash")
        if not isinstance(got, str):
            raise StorageError(f"IPFS add answered without a Hash: {answer!r}")
        if got != expected:
            raise IntegrityError(
                f"IPFS node at {self.api_url} filed the blob under {got}, but it hashes to {expected}; "
                "the node does not honour cid-version=1, raw-leaves, 256 KiB chunks and a balanced layout"
            )
        log.debug("ipfs: put %s", got)
        return Cid(got)

    def get(self, cid: Cid) -> bytes:
        """The blob's bytes from the node, verified against ``cid``."""
        parse_cid(cid)
        builder = CidBuilder()
        parts: list[bytes] = []
        with self._cat(cid) as response:
            for chunk in self._iter_cat(cid, response):
                builder.update(chunk)
                check_size(builder.size, self.max_bytes, f"blob {cid}")
                parts.append(chunk)
        verify_builder(cid, builder, f"IPFS node at {self.api_url} returned wrong bytes for {cid}")
        return b"".join(parts)

    def get_file(self, cid: Cid, dest: Path) -> int:
        """Stream the blob into ``dest`` (atomically, once verified); return its size."""
        parse_cid(cid)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
        tmp = Path(name)
        builder = CidBuilder()
        try:
            with os.fdopen(fd, "wb") as out, self._cat(cid) as response:
                for chunk in self._iter_cat(cid, response):
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
            response = self._post("/pin/add", {"arg": cid, "recursive": "true"}, timeout=timeout)
        except StorageError as err:
            if isinstance(err.__cause__, httpx.ReadTimeout):
                raise BlobNotFoundError(f"cannot pin {cid}: the IPFS node at {self.api_url} does not have it") from err
            raise
        pins = _last_json_line(response.text, "pin/add").get("Pins")
        if not isinstance(pins, list) or not pins:
            raise StorageError(f"IPFS pin/add {cid} answered without Pins: {response.text[:200]!r}")

    def has(self, cid: Cid) -> bool:
        """Whether the node holds ``cid`` pinned."""
        parse_cid(cid)
        def call() -> httpx.Response:
            return self._client.post("/pin/ls", params={"arg": cid, "type": "recursive", "cid-base": "base32"})

        try:
            response = self._retrying("pin/ls", call)
        except httpx.TimeoutException as err:
            raise StorageError(f"IPFS pin/ls timed out after {self.timeout_s}s at {self.api_url}") from err
        except httpx.HTTPError as err:
            raise StorageUnavailableError(f"IPFS pin/ls failed at {self.api_url}: {err}") from err
        if response.status_code >= 400:
            message = _message(response)
            if "not pinned" in message.lower():
                return False
            raise StorageError(f"IPFS pin/ls {cid} failed with HTTP {response.status_code}: {message}")
        keys = _last_json_line(response.text, "pin/ls").get("Keys")
        return isinstance(keys, dict) and cid in keys


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(data, dict) and isinstance(data.get("Message"), str):
        return str(data["Message"])
    return json.dumps(data)[:300]


def _last_json_line(text: str, what: str) -> dict[str, Any]:
    """Kubo streams one JSON object per line; the last one holds the result."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise StorageError(f"IPFS {what} answered with an empty body")
    try:
        data = json.loads(lines[-1])
    except ValueError as err:
        raise StorageError(f"IPFS {what} answer is not JSON: {lines[-1][:200]!r}") from err
    if not isinstance(data, dict):
        raise StorageError(f"IPFS {what} answer is not a JSON object: {lines[-1][:200]!r}")
    return data

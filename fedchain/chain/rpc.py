"""A lean JSON-RPC 2.0 client over one kept-alive HTTP connection (standard library only).

What the chain layer sends to a node goes through :class:`JsonRpc`: one persistent
``http.client`` connection per client (re-opened when the node closed it), requests
serialised by a lock (a connection carries one exchange at a time), batches in one
round trip, and a count of requests by method (what the benchmarks report). Nothing is
validated per request: the chain id is read once, by :class:`fedchain.chain.connection.Connection`.

Failures come out as two exception types, which the connection translates into the
fedchain chain family: :class:`RpcTransportError` (the node could not be reached, or its
answer broke off; ``broken`` tells which) and :class:`RpcError` (the node answered with a
JSON-RPC error object: code, message, data).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fedchain.errors import RpcError, RpcTransportError
from fedchain.services.base import idle_socket_unusable

MAX_ANSWER_BYTES = 256 * 1024 * 1024
"""The largest answer read from a node (a log range of a long history is tens of MB at most)."""


@dataclass(frozen=True)
class Call:
    """One request of a batch: a method and its parameters."""

    method: str
    params: Sequence[Any] = ()


class JsonRpc:
    """JSON-RPC over HTTP to ``url`` with one kept-alive connection. Thread-safe (one exchange at a time)."""

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RpcTransportError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._next_id = 0
        self.counts: Counter[str] = Counter()
        """Requests sent, by method (a batch counts each of its requests)."""
        self.exchanges = 0
        """HTTP round trips made (a batch is one)."""

    def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        """The result of ``method(params)``; :class:`RpcError` for an error answer."""
        (answer,) = self._exchange([Call(method, params)])
        if isinstance(answer, RpcError):
            raise answer
        return answer

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """The results of ``calls`` sent in one round trip, in order; an error answer is its :class:`RpcError`
        in the list (not raised), so that one failed request does not hide the others."""
        return self._exchange(list(calls)) if calls else []

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        with self._lock:
            self._drop()

    # --- the exchange ------------------------------------------------------------------

    def _exchange(self, calls: list[Call]) -> list[Any]:
        with self._lock:
            first = self._next_id
            self._next_id += len(calls)
            payload: Any = [{"jsonrpc": "2.0", "id": first + i, "method": c.method, "params": list(c.params)}
                            for i, c in enumerate(calls)]
            body = json.dumps(payload[0] if len(calls) == 1 else payload, separators=(",", ":")).encode()
            for call in calls:
                self.counts[call.method] += 1
            self.exchanges += 1
            raw = self._post(body)
        try:
            decoded = json.loads(raw)
        except (ValueError, RecursionError) as err:
            raise RpcTransportError(f"the answer is not JSON ({err})", broken=True) from err
        answers = decoded if isinstance(decoded, list) else [decoded]
        by_id: dict[int, Any] = {}
        for answer in answers:
            if isinstance(answer, dict) and isinstance(answer.get("id"), int):
                by_id[answer["id"]] = answer
        out: list[Any] = []
        for i, call in enumerate(calls):
            answer = by_id.get(first + i)
            if (answer is None and len(calls) == 1 and len(answers) == 1 and isinstance(answers[0], dict)
                    and answers[0].get("id") is None and "error" in answers[0]):
                answer = answers[0]  # an error the node could not tie to the request (id null, as JSON-RPC allows)
            if answer is None:
                raise RpcTransportError(f"the answer has no response to {call.method} (id {first + i})", broken=True)
            error = answer.get("error")
            if error is not None:
                if not isinstance(error, dict):
                    error = {"message": str(error)}
                code = error.get("code")
                out.append(RpcError(call.method, code if isinstance(code, int) else None,
                                    str(error.get("message", "")), error.get("data")))
            else:
                out.append(answer.get("result"))
        return out

    def _post(self, body: bytes) -> bytes:
        """POST ``body`` and return the answer's body; a kept-alive connection the node closed meanwhile is
        re-opened once (the request never reached the node)."""
        reused = self._conn is not None and not self._stale()
        if not reused:
            self._drop()
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request("POST", self._path, body=body,
                             headers={"Content-Type": "application/json", "Connection": "keep-alive"})
            except (ConnectionError, OSError) as err:
                self._drop()
                if reused and attempt == 0:
                    continue  # the node had closed the kept-alive connection: open a fresh one
                raise RpcTransportError(_reason(err)) from err
            try:
                response = conn.getresponse()
            except http.client.RemoteDisconnected as err:
                self._drop()
                if reused and attempt == 0:
                    continue
                raise RpcTransportError(_reason(err)) from err
            except (ConnectionError, OSError, http.client.HTTPException) as err:
                self._drop()
                raise RpcTransportError(_reason(err)) from err
            try:
                length = response.getheader("content-length")
                if length is not None and int(length) > MAX_ANSWER_BYTES:
                    raise RpcTransportError(f"the answer is {length} bytes (more than {MAX_ANSWER_BYTES})")
                data = response.read(MAX_ANSWER_BYTES + 1)
            except (ConnectionError, OSError, http.client.HTTPException, ValueError) as err:
                self._drop()
                raise RpcTransportError(_reason(err), broken=True) from err
            if len(data) > MAX_ANSWER_BYTES:
                self._drop()
                raise RpcTransportError(f"the answer is more than {MAX_ANSWER_BYTES} bytes")
            if response.will_close:
                self._drop()
            if response.status != 200 and not data.lstrip().startswith((b"{", b"[")):
                raise RpcTransportError(f"HTTP {response.status} {response.reason}")
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout_s)
        return self._conn

    def _stale(self) -> bool:
        """Whether the kept-alive socket was closed by the node (readable with nothing to read: EOF)."""
        return idle_socket_unusable(self._conn.sock if self._conn is not None else None)

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _reason(err: BaseException) -> str:
    """The innermost cause of a transport failure, e.g. ``[Errno 111] Connection refused``."""
    inner: BaseException = err
    while (cause := inner.__cause__ or inner.__context__) is not None:
        inner = cause
    if isinstance(inner, TimeoutError) and "Errno" not in str(inner):
        return "timed out"
    if isinstance(inner, http.client.IncompleteRead):
        return f"the answer broke off after {len(inner.partial)} bytes"
    text = str(inner)
    if "Errno" in text:
        return text[text.index("[Errno"):].rstrip(")\"'")
    return text.splitlines()[0] if text else type(inner).__name__

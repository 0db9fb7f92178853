"""A node that misbehaves cannot hold or flood a store call: every call ends by its deadline, no
answer is read past its bound, and the node's JSON is parsed within bounds.

The real IPFS node does none of this, so these tests serve the misbehaviour from a small HTTP
server on loopback that speaks just enough of the Kubo API; the local store's tests use real files.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import eth_account  # noqa: F401 - its py_ecc raises the recursion limit: deep JSON would crash json.loads
import pytest

from fedchain.codec.cid import cid_problem
from fedchain.codec.cid import parse_cid as codec_parse_cid
from fedchain.errors import BlobFormatError, BlobNotFoundError, StorageError
from fedchain.storage.cid import compute_cid
from fedchain.storage.cid import parse_cid as storage_parse_cid
from fedchain.storage.ipfs import IpfsStore
from fedchain.storage.local import LocalStore

BLOB = b"a blob the node will be slow to serve" * 10
Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


def _serve(behaviour: dict[str, Behaviour]) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            path = self.path.split("?")[0].removeprefix("/api/v0")
            try:
                behaviour[path](self)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _chunked(handler: http.server.BaseHTTPRequestHandler, status: int, pieces: Iterator[bytes]) -> None:
    handler.send_response(status)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for piece in pieces:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        handler.wfile.flush()
    handler.wfile.write(b"0\r\n\r\n")


def _read_body(handler: http.server.BaseHTTPRequestHandler) -> None:
    length = int(handler.headers.get("Content-Length") or 0)
    handler.rfile.read(length)


def _drip(handler: http.server.BaseHTTPRequestHandler) -> None:
    """Serve BLOB one byte every 20 ms: never a read timeout, seven seconds in all."""

    def pieces() -> Iterator[bytes]:
        for i in range(len(BLOB)):
            time.sleep(0.02)
            yield BLOB[i : i + 1]

    _read_body(handler)
    _chunked(handler, 200, pieces())


def _flood(answer: bytes) -> Behaviour:
    """Answer 20 MB of blank lines, then ``answer``: what a Kubo client reads as the last JSON line."""

    def behaviour(handler: http.server.BaseHTTPRequestHandler) -> None:
        _read_body(handler)
        _chunked(handler, 200, iter([b"\n" * 1_000_000] * 20 + [answer]))

    return behaviour


def _deep(status: int) -> Behaviour:
    def behaviour(handler: http.server.BaseHTTPRequestHandler) -> None:
        _read_body(handler)
        _chunked(handler, status, iter([b"[" * 200_000, b"]" * 200_000]))

    return behaviour


def _slow_reader(handler: http.server.BaseHTTPRequestHandler) -> None:
    """Take the upload at 20 KB/s, then answer."""
    remaining = int(handler.headers.get("Content-Length") or 0)
    while remaining > 0:
        got = handler.rfile.read(min(remaining, 1024))
        if not got:
            return
        remaining -= len(got)
        time.sleep(0.05)
    _chunked(handler, 200, iter([b'{"Hash":"x"}']))


@pytest.fixture()
def hostile_node() -> Iterator[str]:
    yield from _serve({
        "/cat": _drip,
        "/add": _flood(b'{"Name":"blob","Hash":"%s","Size":"1"}' % compute_cid(BLOB).encode()),
        "/version": _deep(200),
        "/pin/ls": _deep(500),
    })


@pytest.fixture()
def slow_reading_node() -> Iterator[str]:
    yield from _serve({"/add": _slow_reader})


def test_a_blob_dripped_out_is_not_available_once_the_deadline_passes(hostile_node: str) -> None:
    store = IpfsStore(hostile_node, deadline_s=1.0, cat_timeout_s=5.0)
    start = time.monotonic()

    with pytest.raises(BlobNotFoundError, match=r"did not arrive whole .* within 1s \([0-9]+ bytes by then\)"):
        store.get(compute_cid(BLOB))

    assert time.monotonic() - start < 3.0  # the drip itself lasts seven seconds and never stalls a read


def test_a_dripped_blob_streamed_to_a_file_ends_the_same_way(hostile_node: str, tmp_path: Path) -> None:
    store = IpfsStore(hostile_node, deadline_s=1.0, cat_timeout_s=5.0)

    with pytest.raises(BlobNotFoundError, match="did not arrive whole"):
        store.get_file(compute_cid(BLOB), tmp_path / "out")

    assert list(tmp_path.iterdir()) == []


def test_an_answer_past_its_bound_is_refused_before_it_is_read_whole(hostile_node: str) -> None:
    store = IpfsStore(hostile_node, max_answer_bytes=1024 * 1024)

    with pytest.raises(StorageError, match=r"/add answer from .* is over the limit of 1048576 bytes") as err:
        store.put(BLOB)

    assert not isinstance(err.value, BlobFormatError)  # the node's fault: never a blob rejection


def test_a_deeply_nested_answer_is_refused_not_parsed(hostile_node: str) -> None:
    store = IpfsStore(hostile_node)

    with pytest.raises(StorageError, match="IPFS version answer is nested more than 8 levels deep") as err:
        store.version()
    assert not isinstance(err.value, BlobFormatError)
    with pytest.raises(StorageError, match=r"pin/ls .* failed with HTTP 500: \[\[\["):
        store.has(compute_cid(BLOB))


def test_an_upload_the_node_takes_too_slowly_ends_by_the_deadline(slow_reading_node: str) -> None:
    store = IpfsStore(slow_reading_node, deadline_s=1.0, timeout_s=2.0)
    start = time.monotonic()

    with pytest.raises(StorageError, match="did not finish within the deadline|timed out"):
        store.put(os.urandom(8 * 1024 * 1024))  # 400 s at the rate the node reads

    assert time.monotonic() - start < 6.0


# --- the local store ------------------------------------------------------------------------------
def test_a_fifo_under_a_blob_name_is_refused_without_blocking(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    cid = compute_cid(BLOB)
    path = store.path_of(cid)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)  # reading it would wait forever for a writer

    with pytest.raises(StorageError, match="is not a regular file"):
        store.get(cid)
    with pytest.raises(StorageError, match="is not a regular file"):
        store.get_file(cid, tmp_path / "out")
    assert store.verify_all() == [cid]


def test_a_link_to_an_endless_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    cid = compute_cid(BLOB)
    path = store.path_of(cid)
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/zero")  # its size reads as 0; reading it never ends

    with pytest.raises(StorageError, match="is not a regular file"):
        store.get(cid)


def test_a_blob_that_grew_past_the_limit_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs", max_bytes=len(BLOB))
    cid = store.put(BLOB)
    store.path_of(cid).write_bytes(BLOB + b"more")

    with pytest.raises(BlobFormatError, match="over the limit"):
        store.get(cid)
    with pytest.raises(BlobFormatError, match="over the limit"):
        store.get_file(cid, tmp_path / "out")


# --- one CID parser ------------------------------------------------------------------------------
def test_the_storage_layer_parses_cids_with_the_codec_s_pure_parser() -> None:
    assert storage_parse_cid is codec_parse_cid
    assert cid_problem(compute_cid(BLOB)) is None
    assert cid_problem("this-is-not-a-cid") == "not a base32 CIDv1 (must start with 'b'): 'this-is-not-a-cid'"

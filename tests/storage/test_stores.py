"""Both blob stores against real backends: round trips, integrity, availability."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedchain.config import Settings
from fedchain.errors import BlobFormatError, BlobNotFoundError, IntegrityError, StorageUnavailableError
from fedchain.services.base import free_port
from fedchain.services.ipfs import node_status, read_node, start_node, stop_node
from fedchain.storage import BlobStore, IpfsStore, LocalStore, compute_cid, open_store
from fedchain.storage.cid import CHUNK_SIZE


def _data(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).bytes(size)


# -- the protocol -------------------------------------------------------------------
def test_both_stores_satisfy_the_protocol(local_store: LocalStore, ipfs_store: IpfsStore) -> None:
    assert isinstance(local_store, BlobStore)
    assert isinstance(ipfs_store, BlobStore)


# -- local store --------------------------------------------------------------------
def test_local_round_trip(local_store: LocalStore) -> None:
    data = _data(3 * CHUNK_SIZE + 5)
    cid = local_store.put(data)
    assert cid == compute_cid(data)
    assert local_store.has(cid)
    assert local_store.get(cid) == data


def test_local_put_leaves_no_temporary_files(local_store: LocalStore, tmp_path: Path) -> None:
    local_store.put(b"one")
    src = tmp_path / "src.bin"
    src.write_bytes(_data(CHUNK_SIZE + 1))
    local_store.put_file(src)
    names = [p.name for p in local_store.root.rglob("*") if p.is_file()]
    assert sorted(names) == sorted([compute_cid(b"one"), compute_cid(src.read_bytes())])


def test_local_streaming_round_trip(local_store: LocalStore, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(_data(5 * 1024 * 1024 + 17, seed=5))
    cid = local_store.put_file(src)
    assert cid == compute_cid(src.read_bytes())
    size = local_store.get_file(cid, tmp_path / "out" / "copy.bin")
    assert size == src.stat().st_size
    assert (tmp_path / "out" / "copy.bin").read_bytes() == src.read_bytes()


def test_tampered_local_file_is_reported_corrupt(local_store: LocalStore, tmp_path: Path) -> None:
    data = _data(CHUNK_SIZE * 2)
    cid = local_store.put(data)
    path = local_store.path_of(cid)
    tampered = bytearray(path.read_bytes())
    tampered[CHUNK_SIZE + 3] ^= 0xFF
    path.write_bytes(bytes(tampered))
    with pytest.raises(IntegrityError, match="corrupt"):
        local_store.get(cid)
    with pytest.raises(IntegrityError):
        local_store.get_file(cid, tmp_path / "never.bin")
    assert not (tmp_path / "never.bin").exists()
    assert local_store.verify_all() == [cid]


def test_local_missing_blob_is_not_found(local_store: LocalStore) -> None:
    cid = compute_cid(b"never stored")
    assert not local_store.has(cid)
    with pytest.raises(BlobNotFoundError):
        local_store.get(cid)
    with pytest.raises(BlobNotFoundError):
        local_store.pin(cid)


def test_local_store_refuses_blobs_over_the_limit(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs", max_bytes=1000)
    with pytest.raises(BlobFormatError, match="over the limit"):
        store.put(b"x" * 1001)


# -- IPFS store ----------------------------------------------------------------------
def test_ipfs_round_trip_pins_and_has(ipfs_store: IpfsStore) -> None:
    data = _data(CHUNK_SIZE + 99, seed=7)
    cid = ipfs_store.put(data)
    assert cid == compute_cid(data)
    assert ipfs_store.has(cid)
    ipfs_store.pin(cid)
    assert ipfs_store.get(cid) == data


def test_ipfs_streaming_round_trip(ipfs_store: IpfsStore, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(_data(4 * 1024 * 1024 + 3, seed=8))
    cid = ipfs_store.put_file(src)
    assert cid == compute_cid(src.read_bytes())
    assert ipfs_store.get_file(cid, tmp_path / "out.bin") == src.stat().st_size
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()


def test_ipfs_missing_cid_times_out_as_not_found(ipfs_store: IpfsStore) -> None:
    cid = compute_cid(b"no node has this " + os.urandom(16))
    assert not ipfs_store.has(cid)
    with pytest.raises(BlobNotFoundError, match="not available"):
        ipfs_store.get(cid)
    with pytest.raises(BlobNotFoundError, match="does not have it"):
        ipfs_store.pin(cid)


def test_blob_put_in_one_store_is_found_under_the_same_cid_in_the_other(
    local_store: LocalStore, ipfs_store: IpfsStore
) -> None:
    a = _data(2 * CHUNK_SIZE + 1, seed=11)
    b = _data(1000, seed=12)
    cid_a = local_store.put(a)
    assert ipfs_store.put(local_store.get(cid_a)) == cid_a
    cid_b = ipfs_store.put(b)
    assert local_store.put(ipfs_store.get(cid_b)) == cid_b
    assert ipfs_store.get(cid_a) == a
    assert local_store.get(cid_b) == b


def test_unreachable_api_is_storage_unavailable() -> None:
    store = IpfsStore(f"http://127.0.0.1:{free_port()}", retries=2, backoff_s=0.01)
    with pytest.raises(StorageUnavailableError, match="unreachable"):
        store.put(b"data")
    with pytest.raises(StorageUnavailableError):
        store.get(compute_cid(b"data"))


class _LyingNode(http.server.BaseHTTPRequestHandler):
    """An HTTP endpoint that answers like a Kubo API but serves other bytes than asked for."""

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.startswith("/api/v0/cat"):
            body = b"these are not the bytes you are looking for"
        else:  # add: claim a CID the content does not have
            body = json.dumps({"Name": "blob", "Hash": compute_cid(b"something else"), "Size": "1"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def lying_node() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LyingNode)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_node_serving_wrong_bytes_is_an_integrity_error(lying_node: str) -> None:
    with IpfsStore(lying_node) as store:
        with pytest.raises(IntegrityError, match="wrong bytes"):
            store.get(compute_cid(b"what I asked for"))


def test_node_filing_under_another_cid_is_an_integrity_error(lying_node: str) -> None:
    with IpfsStore(lying_node) as store:
        with pytest.raises(IntegrityError, match="hashes to"):
            store.put(b"what I stored")


# -- the factory and the managed node -----------------------------------------------
def test_open_store_local(tmp_path: Path) -> None:
    store = open_store(Settings(state_dir=tmp_path, store="local"))
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "blobs"


def test_open_store_ipfs_with_explicit_api(ipfs_api_url: str, tmp_path: Path) -> None:
    store = open_store(Settings(state_dir=tmp_path, store="ipfs", ipfs_api=ipfs_api_url))
    assert isinstance(store, IpfsStore)
    assert store.version()["Version"]
    store.close()


def test_open_store_ipfs_without_a_node_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(StorageUnavailableError, match="fedchain ipfs start"):
        open_store(Settings(state_dir=tmp_path, store="ipfs"))


@pytest.mark.ipfs
def test_managed_node_down_is_a_clean_error_and_data_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    settings = Settings(state_dir=state, store="ipfs")
    try:
        info, started = start_node(state)
        assert started and node_status(state).running
        store = open_store(settings)
        data = _data(CHUNK_SIZE * 2 + 3, seed=21)
        cid = store.put(data)

        assert stop_node(state) == info
        assert read_node(state) is None
        with pytest.raises(StorageUnavailableError):
            store.get(cid)
        store.close()
        with pytest.raises(StorageUnavailableError):
            open_store(settings)

        start_node(state)
        with open_store(settings) as again:
            assert again.has(cid)
            assert again.get(cid) == data
    finally:
        stop_node(state)
    assert not node_status(state).running


@pytest.mark.ipfs
def test_node_killed_without_cleanup_restarts_on_the_same_repo(tmp_path: Path) -> None:
    import signal

    from fedchain.services.ipfs import IpfsNode

    node = IpfsNode(tmp_path / "node")
    try:
        node.start()
        with IpfsStore(node.api_url) as store:
            cid = store.put(b"kept across a crash")
        assert node.info is not None
        os.killpg(node.info.pid, signal.SIGKILL)  # leaves the repo lock behind
        node.stop()
        assert (node.repo / "repo.lock").exists()

        node.start()
        with IpfsStore(node.api_url) as store:
            assert store.get(cid) == b"kept across a crash"
    finally:
        node.stop()

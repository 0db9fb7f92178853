"""pytest plugin: the real js-ipfs node for storage tests.

Fixtures
--------
``ipfs_node`` (session)
    A :class:`fedchain.services.ipfs.IpfsNode` started in a temporary repo, with its API,
    gateway and gRPC on free loopback ports picked by the OS; stopped in ``finally`` at the
    end of the session. ``ipfs_node.info`` is its :class:`~fedchain.services.ipfs.NodeInfo`.
``ipfs_api_url`` (session)
    ``ipfs_node``'s RPC API URL, e.g. ``http://127.0.0.1:41217``.
``ipfs_store`` (function)
    An :class:`fedchain.storage.ipfs.IpfsStore` on that node, closed after the test.
``local_store`` (function)
    A :class:`fedchain.storage.local.LocalStore` in the test's ``tmp_path``.

Tests that use the node are marked ``ipfs`` automatically (by ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fedchain.services.ipfs import IpfsNode
from fedchain.storage.ipfs import IpfsStore
from fedchain.storage.local import LocalStore


@pytest.fixture(scope="session")
def ipfs_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsNode]:
    node = IpfsNode(tmp_path_factory.mktemp("ipfs-node"))
    try:
        node.start(timeout_s=120)
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def ipfs_api_url(ipfs_node: IpfsNode) -> str:
    return ipfs_node.api_url


@pytest.fixture()
def ipfs_store(ipfs_api_url: str) -> Iterator[IpfsStore]:
    store = IpfsStore(ipfs_api_url, timeout_s=60, cat_timeout_s=3)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture()
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "blobs")

"""The local CID builder against the real js-ipfs node: same bytes, same CID."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from fedchain.storage.cid import CHUNK_SIZE, CODEC_DAG_PB, MAX_LINKS, compute_cid, parse_cid

KIB = 1024
MIB = 1024 * KIB


def _data(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).bytes(size) if size else b""


def _node_add(api_url: str, data: bytes) -> str:
    """Ask the node directly (not through IpfsStore, which checks the CID itself)."""
    response = httpx.post(
        api_url + "/api/v0/add",
        params={"cid-version": "1", "raw-leaves": "true", "cid-base": "base32", "pin": "false"},
        files={"file": ("blob", data, "application/octet-stream")},
        timeout=120,
    )
    response.raise_for_status()
    return str(response.json()["Hash"])


@pytest.mark.parametrize(
    "size",
    [0, 1, 100, 256 * KIB - 1, 256 * KIB, 256 * KIB + 1, 1 * MIB, 20 * MIB],
    ids=["0B", "1B", "100B", "256KiB-1", "256KiB", "256KiB+1", "1MiB", "20MiB"],
)
def test_local_cid_equals_node_cid(ipfs_api_url: str, size: int) -> None:
    data = _data(size, seed=size)
    assert compute_cid(data) == _node_add(ipfs_api_url, data)


def test_two_level_tree_cid_equals_node_cid(ipfs_api_url: str) -> None:
    # 175 full chunks and a tail: more leaves than one node may link, so the root links
    # a full node of 174 leaves and a second node holding the rest (~46 MiB).
    size = (MAX_LINKS + 1) * CHUNK_SIZE + 12_345
    data = _data(size, seed=46)
    local = compute_cid(data)
    assert parse_cid(local).codec == CODEC_DAG_PB
    assert local == _node_add(ipfs_api_url, data)

"""CIDv1 computation identical to ``ipfs add --cid-version=1 --raw-leaves`` (Kubo, js-ipfs).

The layout is fixed: the bytes are cut into 256 KiB chunks, each chunk is a *raw* block
(codec 0x55) addressed by its SHA-256; a blob of one chunk (or none: the empty blob) is
that raw block itself. Larger blobs get a *balanced* tree of dag-pb nodes (codec 0x70),
each with at most 174 children, built bottom-up in groups of 174 as the js-ipfs and Kubo
importers do. Each tree node is a dag-pb ``PBNode`` whose ``Data`` is a UnixFS ``File``
message carrying the total ``filesize`` and one ``blocksizes`` entry per child, and whose
``Links`` carry the child CID, an empty ``Name`` and the cumulative ``Tsize``.

The protobuf encoding is written out here (it is small) so no CID library is needed.
Hashing dominates the cost: every byte of the blob goes through SHA-256 exactly once,
over memoryviews, without copies. Parsing and checking a CID's text is pure and lives in
:mod:`fedchain.codec.cid` (the protocol layer checks committed CIDs without any store); it is
re-exported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fedchain.codec.cid import (
    CID_V1,
    CODEC_DAG_PB,
    CODEC_RAW,
    MH_SHA2_256,
    ParsedCid,
    cid_problem,
    cid_to_string,
    parse_cid,
)
from fedchain.errors import StorageError
from fedchain.types import Cid

__all__ = [
    "CHUNK_SIZE",
    "MAX_LINKS",
    "CODEC_RAW",
    "CODEC_DAG_PB",
    "CidBuilder",
    "compute_cid",
    "compute_cid_of_chunks",
    "cid_to_string",
    "cid_problem",
    "parse_cid",
    "ParsedCid",
]

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
_UNIXFS_FILE = 2


def _varint(n: int) -> bytes:
    """Unsigned LEB128 (protobuf / multiformats varint)."""
    if n < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _cid_bytes(codec: int, sha256_digest: bytes) -> bytes:
    return bytes((CID_V1, codec)) + bytes((MH_SHA2_256, len(sha256_digest))) + sha256_digest


@dataclass(frozen=True)
class _Node:
    """One child in the tree: its binary CID, the file bytes below it, its cumulative Tsize."""

    cid: bytes
    file_size: int
    tsize: int


def _dag_pb_file_node(children: list[_Node]) -> bytes:
    """Encode a dag-pb PBNode (links first, then data, as @ipld/dag-pb and go-codec-dagpb do)."""
    unixfs = bytearray(b"\x08" + _varint(_UNIXFS_FILE))
    unixfs += b"\x18" + _varint(sum(c.file_size for c in children))
    for child in children:
        unixfs += b"\x20" + _varint(child.file_size)
    out = bytearray()
    for child in children:
        link = b"\x0a" + _varint(len(child.cid)) + child.cid + b"\x12\x00" + b"\x18" + _varint(child.tsize)
        out += b"\x12" + _varint(len(link)) + link
    out += b"\x0a" + _varint(len(unixfs)) + unixfs
    return bytes(out)


def _parent(children: list[_Node]) -> _Node:
    block = _dag_pb_file_node(children)
    cid = _cid_bytes(CODEC_DAG_PB, hashlib.sha256(block).digest())
    return _Node(cid=cid, file_size=sum(c.file_size for c in children), tsize=len(block) + sum(c.tsize for c in children))


class CidBuilder:
    """Incremental CID computation: feed bytes in any slicing with :meth:`update`, then
    :meth:`cid`. Holds at most one partial chunk in memory plus 36 bytes per full chunk."""

    def __init__(self) -> None:
        self._leaves: list[_Node] = []
        self._pending = bytearray()
        self._size = 0

    @property
    def size(self) -> int:
        """Bytes fed so far."""
        return self._size

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed the next bytes of the file."""
        view = memoryview(data).cast("B")
        self._size += len(view)
        if self._pending:
            take = min(CHUNK_SIZE - len(self._pending), len(view))
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) == CHUNK_SIZE:
                self._add_leaf(self._pending)
                self._pending = bytearray()
        full_end = len(view) - len(view) % CHUNK_SIZE
        for start in range(0, full_end, CHUNK_SIZE):
            self._add_leaf(view[start : start + CHUNK_SIZE])
        if full_end < len(view):
            self._pending += view[full_end:]

    def _add_leaf(self, chunk: bytes | bytearray | memoryview) -> None:
        digest = hashlib.sha256(chunk).digest()
        self._leaves.append(_Node(cid=_cid_bytes(CODEC_RAW, digest), file_size=len(chunk), tsize=len(chunk)))

    def cid_bytes(self) -> bytes:
        """The binary root CID of everything fed so far (the builder stays usable)."""
        leaves = list(self._leaves)
        if self._pending or not leaves:
            # the trailing partial chunk, or the single empty chunk of an empty blob
            digest = hashlib.sha256(self._pending).digest()
            leaves.append(_Node(cid=_cid_bytes(CODEC_RAW, digest), file_size=len(self._pending), tsize=len(self._pending)))
        if len(leaves) == 1:
            return leaves[0].cid
        level = leaves
        while len(level) > 1:
            level = [_parent(level[i : i + MAX_LINKS]) for i in range(0, len(level), MAX_LINKS)]
        return level[0].cid

    def cid(self) -> Cid:
        """The base32 CIDv1 of everything fed so far."""
        return cid_to_string(self.cid_bytes())


def compute_cid(data: bytes | bytearray | memoryview) -> Cid:
    """The CIDv1 that ``ipfs add --cid-version=1 --raw-leaves`` gives for ``data``."""
    builder = CidBuilder()
    builder.update(data)
    return builder.cid()


def compute_cid_of_chunks(chunks: Iterable[bytes | bytearray | memoryview]) -> Cid:
    """:func:`compute_cid` over a stream of byte chunks of any sizes."""
    builder = CidBuilder()
    for chunk in chunks:
        builder.update(chunk)
    return builder.cid()


def compute_file_cid(path: Path, *, read_size: int = 1024 * 1024) -> tuple[Cid, int]:
    """The CID and size of a file's bytes, streamed (never held in memory whole)."""
    builder = CidBuilder()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(read_size):
                builder.update(chunk)
    except OSError as err:
        raise StorageError(f"cannot read {path}: {err}") from err
    return builder.cid(), builder.size

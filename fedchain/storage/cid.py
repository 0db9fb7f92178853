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
over memoryviews, without copies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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
    "parse_cid",
    "ParsedCid",
]

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
_MH_SHA2_256 = 0x12
_CID_V1 = 0x01
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


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _cid_bytes(codec: int, sha256_digest: bytes) -> bytes:
    return bytes((_CID_V1, codec)) + bytes((_MH_SHA2_256, len(sha256_digest))) + sha256_digest


def cid_to_string(cid_bytes: bytes) -> Cid:
    """Multibase base32 (lower case, no padding, prefix ``b``) of a binary CID."""
    return Cid("b" + base64.b32encode(cid_bytes).decode("ascii").rstrip("=").lower())


@dataclass(frozen=True)
class ParsedCid:
    """The parts of a CIDv1 with a SHA-256 multihash."""

    codec: int
    digest: bytes
    binary: bytes


def parse_cid(text: str) -> ParsedCid:
    """Parse a base32 CIDv1 (``b...``) with a sha2-256 multihash and a raw or dag-pb codec.

    Raises :class:`~fedchain.errors.StorageError` naming what is wrong.
    """
    if not isinstance(text, str) or not text:
        raise StorageError(f"not a CID: {text!r}")
    if not text.startswith("b"):
        raise StorageError(f"not a base32 CIDv1 (must start with 'b'): {text!r}")
    body = text[1:]
    if body != body.lower() or not body:
        raise StorageError(f"not a lower-case base32 CIDv1: {text!r}")
    try:
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except (ValueError, binascii.Error) as err:
        raise StorageError(f"CID is not valid base32: {text!r}") from err
    try:
        version, pos = _read_varint(raw, 0)
        codec, pos = _read_varint(raw, pos)
        mh_code, pos = _read_varint(raw, pos)
        mh_len, pos = _read_varint(raw, pos)
    except ValueError as err:
        raise StorageError(f"CID is truncated: {text!r}") from err
    if version != _CID_V1:
        raise StorageError(f"CID version {version} is not supported (only CIDv1): {text!r}")
    if codec not in (CODEC_RAW, CODEC_DAG_PB):
        raise StorageError(f"CID codec 0x{codec:x} is not supported (raw or dag-pb only): {text!r}")
    if mh_code != _MH_SHA2_256 or mh_len != 32:
        raise StorageError(f"CID multihash is not sha2-256/32: {text!r}")
    digest = raw[pos:]
    if len(digest) != 32:
        raise StorageError(f"CID digest has {len(digest)} bytes, expected 32: {text!r}")
    if cid_to_string(raw) != text:
        raise StorageError(f"CID is not in canonical base32 form: {text!r}")
    return ParsedCid(codec=codec, digest=bytes(digest), binary=bytes(raw))


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

"""The text form of the CIDs fedchain's blobs are filed under, checked without any store.

A CID here is a CIDv1 in multibase base32 (lower case, no padding, prefix ``b``) whose codec is
raw (0x55) or dag-pb (0x70) and whose multihash is sha2-256 with a 32-byte digest, in exactly
the canonical form that encoding gives back - what ``ipfs add --cid-version=1 --raw-leaves``
prints and what :func:`fedchain.storage.cid.compute_cid` computes. A participant commits its
CID as a free string on chain; the aggregator and the auditor check it with :func:`cid_problem`
before asking a store for it, so a string that is no CID is a rejection of that update
(``invalid_cid``), never a store error.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from fedchain.errors import StorageError
from fedchain.types import Cid

__all__ = ["CID_V1", "CODEC_DAG_PB", "CODEC_RAW", "MAX_CID_CHARS", "ParsedCid", "cid_problem", "cid_to_string", "parse_cid"]

CID_V1 = 0x01
CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
MH_SHA2_256 = 0x12
MAX_CID_CHARS = 59
"""The length of every CID this module accepts: ``b`` + base32 of 36 bytes (version, codec,
multihash code, length, 32-byte digest)."""


@dataclass(frozen=True)
class ParsedCid:
    """The parts of a CIDv1 with a SHA-256 multihash."""

    codec: int
    digest: bytes
    binary: bytes


def cid_to_string(cid_bytes: bytes) -> Cid:
    """Multibase base32 (lower case, no padding, prefix ``b``) of a binary CID."""
    return Cid("b" + base64.b32encode(cid_bytes).decode("ascii").rstrip("=").lower())


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 varint at ``pos``: (value, position after it); ValueError if truncated."""
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


def _shown(text: object) -> str:
    """``text`` for a message: its repr, cut to 80 characters."""
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def parse_cid(text: object) -> ParsedCid:
    """Parse a CID (see the module docstring); :class:`~fedchain.errors.StorageError` names what is wrong."""
    if not isinstance(text, str) or not text:
        raise StorageError(f"not a CID: {_shown(text)}")
    if len(text) > MAX_CID_CHARS:
        raise StorageError(f"not a CID: {len(text)} characters, a CIDv1 of a sha2-256 digest has {MAX_CID_CHARS}: {_shown(text)}")
    if not text.startswith("b"):
        raise StorageError(f"not a base32 CIDv1 (must start with 'b'): {_shown(text)}")
    body = text[1:]
    if body != body.lower() or not body:
        raise StorageError(f"not a lower-case base32 CIDv1: {_shown(text)}")
    try:
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except (ValueError, binascii.Error) as err:
        raise StorageError(f"CID is not valid base32: {_shown(text)}") from err
    try:
        version, pos = _read_varint(raw, 0)
        codec, pos = _read_varint(raw, pos)
        mh_code, pos = _read_varint(raw, pos)
        mh_len, pos = _read_varint(raw, pos)
    except ValueError as err:
        raise StorageError(f"CID is truncated: {_shown(text)}") from err
    if version != CID_V1:
        raise StorageError(f"CID version {version} is not supported (only CIDv1): {_shown(text)}")
    if codec not in (CODEC_RAW, CODEC_DAG_PB):
        raise StorageError(f"CID codec 0x{codec:x} is not supported (raw or dag-pb only): {_shown(text)}")
    if mh_code != MH_SHA2_256 or mh_len != 32:
        raise StorageError(f"CID multihash is not sha2-256/32: {_shown(text)}")
    digest = raw[pos:]
    if len(digest) != 32:
        raise StorageError(f"CID digest has {len(digest)} bytes, expected 32: {_shown(text)}")
    if cid_to_string(raw) != text:
        raise StorageError(f"CID is not in canonical base32 form: {_shown(text)}")
    return ParsedCid(codec=codec, digest=bytes(digest), binary=bytes(raw))


def cid_problem(text: object) -> str | None:
    """What keeps ``text`` from being a CID (the reason :func:`parse_cid` would give), or None."""
    try:
        parse_cid(text)
    except StorageError as err:
        return str(err)
    return None

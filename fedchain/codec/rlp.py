"""A minimal RLP encoder (Ethereum's Recursive Length Prefix), for signing transactions.

An item is ``bytes`` (or ``bytearray``), a non-negative ``int`` (encoded as its minimal big-endian bytes:
0 is the empty string, as Ethereum's quantities are), or a list or tuple of items, nested to any depth.
Anything else (``str``, ``bool``, a negative integer) is refused with an :class:`~fedchain.errors.AbiEncodingError`
naming its path in the structure, as ``rlp.encode`` refuses it. The output is byte for byte what
pyrlp's ``rlp.encode`` writes for the same items. Decoding is not needed (fedchain reads transactions
through JSON-RPC) and is not provided.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from fedchain.errors import AbiEncodingError

__all__ = ["Item", "encode", "encode_int"]

Item: TypeAlias = "bytes | bytearray | int | Sequence[Item]"
"""What :func:`encode` takes: bytes, a non-negative integer, or a list/tuple of items."""

_MAX_LENGTH = 2**64 - 1  # a length prefix holds at most 8 bytes of length


def encode_int(value: int) -> bytes:
    """The minimal big-endian bytes of a non-negative integer (0 gives ``b""``)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise AbiEncodingError(f"RLP encodes non-negative integers, got {value!r}")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _prefix(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    if length > _MAX_LENGTH:  # pragma: no cover - 16 EiB
        raise AbiEncodingError(f"RLP cannot encode a length of {length}")
    body = encode_int(length)
    return bytes([offset + 55 + len(body)]) + body


def _encode(item: object, path: str) -> bytes:
    if isinstance(item, bool):
        raise AbiEncodingError(f"RLP item {path} is a bool; encode it as 0 or 1 explicitly")
    if isinstance(item, int):
        if item < 0:
            raise AbiEncodingError(f"RLP item {path} = {item} is negative")
        item = encode_int(item)
    if isinstance(item, (bytes, bytearray)):
        data = bytes(item)
        if len(data) == 1 and data[0] < 0x80:
            return data
        return _prefix(len(data), 0x80) + data
    if isinstance(item, (list, tuple)):
        body = b"".join(_encode(child, f"{path}[{i}]") for i, child in enumerate(item))
        return _prefix(len(body), 0xC0) + body
    raise AbiEncodingError(f"RLP item {path} is a {type(item).__name__}: only bytes, non-negative ints and lists")


def encode(item: Item) -> bytes:
    """The RLP encoding of ``item``."""
    return _encode(item, "item")

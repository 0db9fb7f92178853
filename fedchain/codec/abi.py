"""A small, pure Ethereum ABI codec and EIP-55 address helpers.

``encode`` and ``decode`` follow the standard (non-packed) ABI encoding, byte for byte as
``eth_abi`` 6 writes and reads it, for ``uintN``/``intN`` (N = 8..256 in steps of 8; ``uint``
and ``int`` mean 256), ``address``, ``bool``, ``bytesN`` (N = 1..32), ``bytes``, ``string``,
arrays ``T[]`` and ``T[k]`` of any of these, and tuples ``(t1,t2,...)`` nested to any depth.
The address helpers follow ``eth_utils`` 6. Keccak-256 comes from pycryptodome; nothing here
imports eth_abi, eth_utils, eth_hash or pydantic, so the module imports in milliseconds.

What the encoder accepts and refuses is what ``eth_abi.encode`` accepts and refuses:

* integers must be ``int`` (``bool`` and ``float`` are refused) and fit the type's range;
* ``bool`` takes only ``True`` or ``False`` (not ``0``/``1``);
* ``address`` takes 20 ``bytes``/``bytearray`` or a string of 40 hex digits with an optional
  ``0x``/``0X`` prefix. Like ``eth_abi`` 6 (whose ``is_address`` no longer checks EIP-55),
  the letter case is not checked: a mixed-case string with a wrong checksum is encoded too;
  callers that want the checksum enforced ask :func:`is_checksum_address` first;
* ``bytesN`` takes ``bytes``/``bytearray`` of at most N bytes and right-pads it with zeros;
  ``bytes`` takes ``bytes``/``bytearray``; ``string`` takes ``str`` (never bytes);
* arrays and tuples take any sequence that is not a string or bytes, of the exact length for
  ``T[k]`` and tuples.

The decoder is as strict as ``eth_abi.decode``: every padding byte is checked (zeros, or
``0xff`` sign extension for negative ``intN``), a ``bool`` word is 0 or 1, every offset must
point past its container's head and inside the data, and lengths must fit in the data. Trailing
bytes after the encoded values are ignored, as ``eth_abi`` does. Where this decoder differs:

* errors are :class:`DecodingError` throughout (``eth_abi`` lets ``UnicodeDecodeError`` out for
  invalid UTF-8 in a ``string``; here it is a :class:`DecodingError` too);
* a claimed length is compared with the data before anything is read or allocated, so a huge
  length fails at once instead of after a long loop;
* offsets may alias (several point at the same bytes), which ``eth_abi`` accepts and which can
  make a small input decode into a huge result; here the decoded values may cost at most
  ``4096 + 2 * len(data) // 32`` words in all, beyond which decoding fails (canonical encodings
  cost at most ``len(data) // 32``);
* the pointer check uses ``eth_abi``'s own notion of a tuple's head length (one word per
  component, ``k`` for a static ``T[k]``), so exactly the same offsets are accepted.

``fixedMxN``/``ufixedMxN``, ``function`` and the empty tuple ``()`` are not supported (``eth_abi``
refuses ``()`` as well).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from Crypto.Hash import keccak as _keccak

from fedchain.errors import AbiDecodingError, AbiEncodingError, AbiError

__all__ = [
    "AbiError",
    "DecodingError",
    "EncodingError",
    "decode",
    "encode",
    "is_address",
    "is_checksum_address",
    "is_hex_address",
    "keccak",
    "to_canonical_address",
    "to_checksum_address",
]

_WORD = 32
_UINT256_MAX = 2**256 - 1
_HEX_ADDRESS = re.compile(r"(0x)?[0-9a-f]{40}", re.IGNORECASE | re.ASCII)
EncodingError = AbiEncodingError
DecodingError = AbiDecodingError

_HEX_40 = re.compile(r"[0-9a-fA-F]{40}", re.ASCII)
_INT_TYPE = re.compile(r"(u?int)([1-9][0-9]*)?", re.ASCII)
_FIXED_BYTES = re.compile(r"bytes([1-9][0-9]*)", re.ASCII)
_ARRAY_LENGTH = re.compile(r"[1-9][0-9]*", re.ASCII)


def keccak(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's hash, not SHA3-256) of ``data``: 32 bytes."""
    return _keccak.new(digest_bits=256, data=bytes(data)).digest()


# --------------------------------------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class _Type:
    """A parsed ABI type: ``kind`` is uint, int, address, bool, fbytes, bytes, string, array or tuple."""

    name: str
    kind: str
    size: int = 0  # bits for uint/int, bytes for fbytes
    components: tuple[_Type, ...] = ()
    item: _Type | None = None
    length: int | None = None  # for arrays: k of T[k], None for T[]
    dynamic: bool = False
    head: int = _WORD  # bytes the value takes in its container's head (32 when dynamic)


def _split_components(inner: str, whole: str) -> list[str]:
    """The top-level comma-separated parts of a tuple's inside."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise AbiError(f"unbalanced parentheses in ABI type {whole!r}")
        elif ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    if depth != 0:
        raise AbiError(f"unbalanced parentheses in ABI type {whole!r}")
    parts.append(inner[start:])
    return parts


@lru_cache(maxsize=1024)
def _parse(name: str) -> _Type:
    """The parsed form of the ABI type string ``name``; AbiError when it is not one this codec supports."""
    if not isinstance(name, str) or not name:
        raise AbiError(f"not an ABI type: {name!r}")
    if name.endswith("]"):
        cut = name.rfind("[")
        if cut <= 0:
            raise AbiError(f"malformed array type {name!r}")
        inner = name[cut + 1 : -1]
        item = _parse(name[:cut])
        if inner == "":
            return _Type(name, "array", item=item, dynamic=True)
        if not _ARRAY_LENGTH.fullmatch(inner):
            raise AbiError(f"malformed array length in ABI type {name!r}")
        length = int(inner)
        if item.dynamic:
            return _Type(name, "array", item=item, length=length, dynamic=True)
        return _Type(name, "array", item=item, length=length, head=length * item.head)
    if name.startswith("("):
        if not name.endswith(")"):
            raise AbiError(f"malformed tuple type {name!r}")
        inner = name[1:-1]
        if inner == "":
            raise AbiError('zero-sized tuple types "()" are not supported')
        components = tuple(_parse(part) for part in _split_components(inner, name))
        if any(c.dynamic for c in components):
            return _Type(name, "tuple", components=components, dynamic=True)
        return _Type(name, "tuple", components=components, head=sum(c.head for c in components))
    if name in ("address", "bool"):
        return _Type(name, name)
    if name in ("bytes", "string"):
        return _Type(name, name, dynamic=True)
    match = _INT_TYPE.fullmatch(name)
    if match:
        bits = int(match.group(2) or 256)
        if bits % 8 or not 8 <= bits <= 256:
            raise AbiError(f"integer size out of bounds in ABI type {name!r} (8 to 256, a multiple of 8)")
        return _Type(name, match.group(1), size=bits)
    match = _FIXED_BYTES.fullmatch(name)
    if match:
        size = int(match.group(1))
        if size > _WORD:
            raise AbiError(f"maximum 32 bytes for fixed-length bytes, got ABI type {name!r}")
        return _Type(name, "fbytes", size=size)
    raise AbiError(f"unsupported ABI type {name!r}")


# ------------------------------------------------------------------------------------------ encoding


def _shown(value: Any) -> str:
    """A short repr of ``value`` for an error message."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _refuse(kind: _Type, value: Any, why: str = "") -> EncodingError:
    """The EncodingError for ``value`` as ``kind``."""
    tail = f": {why}" if why else ""
    return EncodingError(f"value {_shown(value)} of type {type(value).__name__} cannot be encoded as {kind.name}{tail}")


def _is_list_like(value: Any) -> bool:
    """A sequence that is not a string or bytes (eth_utils' ``is_list_like``)."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _pad_right(data: bytes) -> bytes:
    """``data`` followed by zeros up to a multiple of 32 bytes."""
    return data + b"\x00" * (-len(data) % _WORD)


def _encode_value(kind: _Type, value: Any) -> bytes:
    """The ABI encoding of one value (its tail, for a dynamic type)."""
    k = kind.kind
    if k in ("uint", "int"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _refuse(kind, value)
        low, high = (0, 2**kind.size - 1) if k == "uint" else (-(2 ** (kind.size - 1)), 2 ** (kind.size - 1) - 1)
        if not low <= value <= high:
            raise _refuse(kind, value, f"out of range [{low}, {high}]")
        return (value & _UINT256_MAX).to_bytes(_WORD, "big")
    if k == "bool":
        if not isinstance(value, bool):
            raise _refuse(kind, value)
        return (b"\x00" * 31) + (b"\x01" if value else b"\x00")
    if k == "address":
        if not is_address(value):
            raise _refuse(kind, value, "not a 20-byte address or 40 hex digits")
        return b"\x00" * 12 + to_canonical_address(value)
    if k == "fbytes":
        if not isinstance(value, (bytes, bytearray)):
            raise _refuse(kind, value)
        if len(value) > kind.size:
            raise _refuse(kind, value, f"longer than {kind.size} bytes")
        return bytes(value).ljust(_WORD, b"\x00")
    if k == "bytes":
        if not isinstance(value, (bytes, bytearray)):
            raise _refuse(kind, value)
        return len(value).to_bytes(_WORD, "big") + _pad_right(bytes(value))
    if k == "string":
        if not isinstance(value, str):
            raise _refuse(kind, value)
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise _refuse(kind, value, "not encodable as UTF-8") from err
        return len(raw).to_bytes(_WORD, "big") + _pad_right(raw)
    if k == "array":
        assert kind.item is not None
        if not _is_list_like(value):
            raise _refuse(kind, value, "must be a list or tuple")
        if kind.length is not None:
            if len(value) != kind.length:
                raise _refuse(kind, value, f"{len(value)} items where {kind.length} were expected")
            return _encode_sequence([kind.item] * kind.length, value)
        return len(value).to_bytes(_WORD, "big") + _encode_sequence([kind.item] * len(value), value)
    # tuple
    if not _is_list_like(value):
        raise _refuse(kind, value, "must be a list or tuple")
    if len(value) != len(kind.components):
        raise _refuse(kind, value, f"{len(value)} items where {len(kind.components)} were expected")
    return _encode_sequence(list(kind.components), value)


def _encode_sequence(kinds: Sequence[_Type], values: Sequence[Any]) -> bytes:
    """Head then tail of values of ``kinds`` (a tuple's components or an array's items)."""
    encoded = [_encode_value(kind, value) for kind, value in zip(kinds, values, strict=True)]
    offset = sum(kind.head for kind in kinds)
    heads: list[bytes] = []
    tails: list[bytes] = []
    for kind, enc in zip(kinds, encoded, strict=True):
        if kind.dynamic:
            heads.append(offset.to_bytes(_WORD, "big"))
            tails.append(enc)
            offset += len(enc)
        else:
            heads.append(enc)
    return b"".join(heads) + b"".join(tails)


def encode(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """The ABI encoding of ``values`` as the types ``types`` (as ``eth_abi.encode``); EncodingError names
    the type and value that cannot be encoded, AbiError a type string that is not supported."""
    kinds = [_parse(t) for t in types]
    if not _is_list_like(values):
        raise EncodingError(f"values must be a list or tuple, got {type(values).__name__}")
    if len(values) != len(kinds):
        raise EncodingError(f"{len(values)} values for {len(kinds)} types ({', '.join(types)})")
    return _encode_sequence(kinds, values)


# ------------------------------------------------------------------------------------------ decoding


class _Decoder:
    """One decoding pass over ``data``, with a budget against aliased offsets."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.budget = 4096 + 2 * (len(data) // _WORD)

    def spend(self, words: int) -> None:
        """Charge ``words`` to the budget; DecodingError when it is spent."""
        self.budget -= words
        if self.budget < 0:
            raise DecodingError("the data decodes to far more values than it holds (aliased offsets)")

    def word(self, pos: int) -> bytes:
        """The 32 bytes at ``pos``; DecodingError when the data ends first."""
        if pos + _WORD > self.size:
            got = max(0, self.size - pos)
            raise DecodingError(f"tried to read 32 bytes at offset {pos}, only got {got}")
        return self.data[pos : pos + _WORD]

    def uint256(self, pos: int) -> int:
        """The unsigned 256-bit word at ``pos``."""
        return int.from_bytes(self.word(pos), "big")

    def value(self, kind: _Type, pos: int) -> Any:
        """The value of ``kind`` whose encoding starts at ``pos`` (its tail, for a dynamic type)."""
        k = kind.kind
        if k in ("uint", "int", "bool", "address", "fbytes"):
            self.spend(1)
            return self.scalar(kind, self.word(pos))
        if k in ("bytes", "string"):
            length = self.uint256(pos)
            start = pos + _WORD
            available = self.size - start
            if length > available:
                raise DecodingError(f"{kind.name} of length {length} at offset {pos}: only {available} bytes follow")
            padded = length + (-length % _WORD)
            if padded > available:
                raise DecodingError(f"{kind.name} of length {length} at offset {pos}: its padding is cut off")
            self.spend(1 + padded // _WORD)
            raw = self.data[start : start + length]
            if self.data[start + length : start + padded].count(0) != padded - length:
                raise DecodingError(f"non-empty padding after {kind.name} at offset {pos}")
            if k == "bytes":
                return raw
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DecodingError(f"string at offset {pos} is not valid UTF-8: {err.reason}") from err
        if k == "array":
            assert kind.item is not None
            if kind.length is None:
                count = self.uint256(pos)
                self.spend(1)
                return self.sequence(kind.item, count, pos + _WORD)
            return self.sequence(kind.item, kind.length, pos)
        return self.tuple_at(kind.components, pos)

    def scalar(self, kind: _Type, word: bytes) -> Any:
        """A static scalar from its 32-byte word, padding checked as eth_abi checks it."""
        k = kind.kind
        if k == "uint":
            pad = _WORD - kind.size // 8
            if word[:pad].count(0) != pad:
                raise DecodingError(f"non-empty padding bytes in {kind.name}: {word.hex()}")
            return int.from_bytes(word, "big")
        if k == "int":
            pad = _WORD - kind.size // 8
            value = int.from_bytes(word[pad:], "big", signed=True)
            fill = 0xFF if value < 0 else 0
            if word[:pad].count(fill) != pad:
                raise DecodingError(f"non-empty padding bytes in {kind.name}: {word.hex()}")
            return value
        if k == "bool":
            if word[31] > 1:
                raise DecodingError(f"bool must be 0 or 1, got {word.hex()}")
            if word[:31].count(0) != 31:
                raise DecodingError(f"non-empty padding bytes in bool: {word.hex()}")
            return word[31] == 1
        if k == "address":
            if word[:12].count(0) != 12:
                raise DecodingError(f"non-empty padding bytes in address: {word.hex()}")
            return "0x" + word[12:].hex()
        # fbytes
        if word[kind.size :].count(0) != _WORD - kind.size:
            raise DecodingError(f"non-empty padding bytes in {kind.name}: {word.hex()}")
        return word[: kind.size]

    def sequence(self, item: _Type, count: int, base: int) -> tuple[Any, ...]:
        """``count`` items of type ``item`` whose heads start at ``base``."""
        if count * item.head > self.size - base:
            raise DecodingError(f"{count} items of {item.name} at offset {base} do not fit in {self.size} bytes")
        if not item.dynamic:
            return tuple(self.value(item, base + i * item.head) for i in range(count))
        end_of_heads = base + _WORD * count
        starts = [self.pointer(base, base + i * _WORD, end_of_heads, "array") for i in range(count)]
        return tuple(self.value(item, start) for start in starts)

    def tuple_at(self, components: tuple[_Type, ...], base: int) -> tuple[Any, ...]:
        """The components of a tuple whose head starts at ``base``."""
        # eth_abi's head length for the pointer check: one word per component, k for a static T[k].
        head_words = sum(c.length if c.kind == "array" and not c.dynamic and c.length is not None else 1 for c in components)
        end_of_heads = base + _WORD * head_words
        values: list[Any] = []
        starts: list[int | None] = []
        pos = base
        for component in components:
            if component.dynamic:
                starts.append(self.pointer(base, pos, end_of_heads, "tuple"))
                values.append(None)
            else:
                starts.append(None)
                values.append(self.value(component, pos))
            pos += component.head
        for i, (component, start) in enumerate(zip(components, starts, strict=True)):
            if start is not None:
                values[i] = self.value(component, start)
        return tuple(values)

    def pointer(self, base: int, pos: int, end_of_heads: int, container: str) -> int:
        """The absolute start of the tail whose offset (relative to ``base``) is at ``pos``."""
        start = base + self.uint256(pos)
        if start < end_of_heads or start >= self.size:
            raise DecodingError(f"invalid pointer in {container} at offset {pos}: {start - base}")
        return start


def decode(types: Sequence[str], data: bytes) -> tuple[Any, ...]:
    """The values ``data`` encodes as the types ``types`` (as ``eth_abi.decode``: ints as int, addresses as
    lowercase ``0x`` strings, arrays and tuples as tuples); DecodingError for data that is not such an
    encoding, AbiError for a type string that is not supported."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode needs bytes, got {type(data).__name__}")
    kinds = tuple(_parse(t) for t in types)
    if not kinds:
        return ()
    return _Decoder(bytes(data)).tuple_at(kinds, 0)


# ----------------------------------------------------------------------------------------- addresses


def is_hex_address(value: object) -> bool:
    """Whether ``value`` is a string of 40 hex digits, with or without ``0x`` (any letter case)."""
    return isinstance(value, str) and _HEX_ADDRESS.fullmatch(value) is not None


def is_address(value: object) -> bool:
    """Whether ``value`` is an address in a known form: a hex address (:func:`is_hex_address`, letter case
    not checked, as in eth_utils 6) or 20 bytes."""
    return is_hex_address(value) or (isinstance(value, (bytes, bytearray)) and len(value) == 20)


def _normalised(value: str | bytes) -> str:
    """40 lowercase hex digits of the address ``value``; ValueError (TypeError for a non-address type)."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 20:
            raise ValueError(f"Unknown format {value!r}: an address is 20 bytes, got {len(value)}")
        return bytes(value).hex()
    if isinstance(value, str):
        body = value[2:] if value.startswith(("0x", "0X")) else value
        if not _HEX_40.fullmatch(body):
            raise ValueError(f"Unknown format {value!r}: an address is 40 hex digits with an optional 0x prefix")
        return body.lower()
    if isinstance(value, int):
        raise ValueError(f"Unknown format {value!r}: an address is a hex string or 20 bytes")
    raise TypeError(f"an address is a hex string or 20 bytes, got {type(value).__name__}")


def to_checksum_address(value: str | bytes) -> str:
    """The EIP-55 checksummed form of the address ``value`` (hex string or 20 bytes); ValueError naming it
    when it is not an address."""
    body = _normalised(value)
    digest = keccak(body.encode("ascii")).hex()
    return "0x" + "".join(ch.upper() if int(h, 16) > 7 else ch for ch, h in zip(body, digest, strict=False))


def is_checksum_address(value: object) -> bool:
    """Whether ``value`` is a ``0x`` hex address in exactly its EIP-55 checksummed letter case."""
    return isinstance(value, str) and is_hex_address(value) and value == to_checksum_address(value)


def to_canonical_address(value: str | bytes) -> bytes:
    """The 20 bytes of the address ``value`` (hex string or bytes); ValueError naming it when it is not one."""
    return bytes.fromhex(_normalised(value))

"""ABI helpers: custom-error (revert) decoding and event-log decoding, from a contract ABI.

Pure functions over the ABI JSON and raw bytes (:mod:`fedchain.codec.abi`); the Web3 object is not needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from fedchain.codec.abi import DecodingError, keccak, to_checksum_address
from fedchain.codec.abi import decode as abi_decode
from fedchain.codec.abi import encode as abi_encode
from fedchain.errors import ContractRevertError
from fedchain.reverts import REVERTS, TypedRevertError

ERROR_STRING_SELECTOR = keccak(b"Error(string)")[:4]
PANIC_SELECTOR = keccak(b"Panic(uint256)")[:4]


def _canonical_type(param: Mapping[str, Any]) -> str:
    """ABI type with tuples expanded (``tuple[]`` -> ``(a,b)[]``)."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param.get("components", []))
        return f"({inner}){kind[len('tuple'):]}"
    return kind


def signature(item: Mapping[str, Any]) -> str:
    """The canonical signature ``name(type,...)`` of an ABI error, event or function, as keccak hashes it."""
    return f"{item['name']}({','.join(_canonical_type(p) for p in item.get('inputs', []))})"


def _normalise(kind: str, value: Any) -> Any:
    """Addresses checksummed; everything else as :func:`fedchain.codec.abi.decode` decodes it (ints, bytes, str,
    bool)."""
    if kind == "address":
        return to_checksum_address(value)
    if kind.endswith("]") and isinstance(value, (list, tuple)):
        base = kind[: kind.rindex("[")]
        return [_normalise(base, v) for v in value]
    return value


def to_bytes(data: Any) -> bytes:
    """Bytes from what web3 or JSON-RPC hands back (bytes, ``0x`` hex, HexBytes, memoryview, a non-negative int
    as its big-endian bytes); ``b""`` for None or bad hex."""
    if data is None:
        return b""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str):
        text = data[2:] if data.startswith(("0x", "0X")) else data
        try:
            return bytes.fromhex(text)
        except ValueError:
            return b""
    if isinstance(data, memoryview):
        return bytes(data)
    if isinstance(data, bool):
        return b"\x01" if data else b"\x00"
    if isinstance(data, int):
        if data < 0:
            raise ValueError(f"Cannot convert negative integer {data} to bytes")
        digits = format(data, "x")
        return bytes.fromhex(digits.rjust(len(digits) + len(digits) % 2, "0"))
    raise TypeError(f"Cannot convert {data!r} of type {type(data)} to bytes")


class RevertDecoder:
    """Maps 4-byte selectors of a contract's custom errors to :class:`ContractRevertError`.

    An error of the Federation contract (same name and signature as in :data:`fedchain.reverts.REVERTS`)
    comes back as its generated subclass, with typed attributes besides ``error_name`` and ``error_args``.
    """

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        self._typed: dict[bytes, type[TypedRevertError]] = {}
        for item in abi:
            if item.get("type") == "error":
                inputs = list(item.get("inputs", []))
                sig = signature(item)
                selector = keccak(sig.encode())[:4]
                names = [str(p.get("name") or f"arg{i}") for i, p in enumerate(inputs)]
                self._errors[selector] = (str(item["name"]), names, [_canonical_type(p) for p in inputs])
                typed = REVERTS.get(str(item["name"]))
                if _matches(typed, sig, names):
                    self._typed[selector] = typed

    @property
    def error_names(self) -> set[str]:
        """The names of the custom errors this decoder knows."""
        return {name for name, _, _ in self._errors.values()}

    def decode(self, data: Any, *, function: str = "") -> ContractRevertError | None:
        """The error encoded by revert ``data``, or None when there is nothing to decode."""
        raw = to_bytes(data)
        if len(raw) < 4:
            return None
        selector, payload = raw[:4], raw[4:]
        try:
            if selector in self._errors:
                name, names, types = self._errors[selector]
                values = abi_decode(types, payload) if types else ()
                args = {n: _normalise(t, v) for n, t, v in zip(names, types, values, strict=True)}
                typed = self._typed.get(selector)
                if typed is not None:
                    return typed.from_args(args, function=function)
                return ContractRevertError(name, args, function=function)
            if selector == ERROR_STRING_SELECTOR:
                (message,) = abi_decode(["string"], payload)
                return ContractRevertError("Error", {"message": message}, function=function)
            if selector == PANIC_SELECTOR:
                (code,) = abi_decode(["uint256"], payload)
                return ContractRevertError("Panic", {"code": code}, function=function)
        except (DecodingError, ValueError, OverflowError):
            return ContractRevertError("UnknownError", {"data": raw}, function=function)
        return ContractRevertError("UnknownError", {"data": raw}, function=function)


def _matches(typed: type[ContractRevertError] | None, sig: str, names: list[str]) -> TypeGuard[type[TypedRevertError]]:
    """Whether ``typed`` is a generated revert class for exactly this signature and argument names."""
    return (
        typed is not None
        and issubclass(typed, TypedRevertError)
        and typed.SIGNATURE == sig
        and [name for name, _ in typed.PARAMS] == names
    )


@dataclass(frozen=True)
class DecodedLog:
    """One event log decoded by :class:`EventDecoder`."""

    event: str
    args: dict[str, Any]
    address: str
    block_number: int
    tx_hash: str
    log_index: int


class EventDecoder:
    """Decodes raw logs of a contract's events (indexed topics and data)."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self._events: dict[bytes, Mapping[str, Any]] = {}
        self.topics: dict[str, bytes] = {}
        for item in abi:
            if item.get("type") == "event" and not item.get("anonymous", False):
                topic = keccak(signature(item).encode())
                self._events[topic] = item
                self.topics[str(item["name"])] = topic

    def topic(self, event: str) -> bytes:
        """The topic (keccak of the signature) of ``event``; KeyError when the ABI has no such event."""
        try:
            return self.topics[event]
        except KeyError as err:
            raise KeyError(f"the ABI has no event {event!r}") from err

    def decode(self, log: Mapping[str, Any]) -> DecodedLog | None:
        """Decode one log (web3 ``LogReceipt`` or raw JSON-RPC dict); None for foreign events."""
        topics = [to_bytes(t) for t in log["topics"]]
        if not topics or topics[0] not in self._events:
            return None
        item = self._events[topics[0]]
        inputs = list(item.get("inputs", []))
        indexed = [p for p in inputs if p.get("indexed")]
        plain = [p for p in inputs if not p.get("indexed")]
        args: dict[str, Any] = {}
        for param, topic in zip(indexed, topics[1:], strict=False):
            kind = _canonical_type(param)
            if kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("("):
                args[str(param["name"])] = topic  # dynamic indexed values are stored hashed
            else:
                args[str(param["name"])] = _normalise(kind, abi_decode([kind], topic)[0])
        values = abi_decode([_canonical_type(p) for p in plain], to_bytes(log["data"]))
        for param, value in zip(plain, values, strict=True):
            args[str(param["name"])] = _normalise(_canonical_type(param), value)
        return DecodedLog(
            event=str(item["name"]),
            args=args,
            address=to_checksum_address(log["address"]),
            block_number=_as_int(log["blockNumber"]),
            tx_hash="0x" + to_bytes(log["transactionHash"]).hex(),
            log_index=_as_int(log["logIndex"]),
        )


def _as_int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


@dataclass(frozen=True)
class DecodedCall:
    """Calldata decoded by :meth:`FunctionCodec.decode_call`: the function and its arguments by ABI name."""

    function: str
    args: dict[str, Any]

    def render(self, names: Mapping[bytes, str] | None = None) -> str:
        """``name(arg, ...)``: addresses as they are, bytes as ``0x`` hex (or their name in ``names``, e.g. a
        role's), strings quoted."""
        known = names or {}
        shown = [known[bytes(v)] if isinstance(v, (bytes, bytearray)) and bytes(v) in known else _render_value(v)
                 for v in self.args.values()]
        return f"{self.function}({', '.join(shown)})"


def _render_value(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and not (value.startswith("0x") and len(value) == 42):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_render_value(v) for v in value) + "]"
    return str(value)


class FunctionCodec:
    """Encodes calls to, and decodes results of, a contract's functions. Overloaded functions are refused,
    or with ``skip_overloads`` left out (an ERC-721's two ``safeTransferFrom``)."""

    def __init__(self, abi: Sequence[Mapping[str, Any]], *, skip_overloads: bool = False) -> None:
        self._functions: dict[str, tuple[bytes, list[str], list[str]]] = {}
        self._inputs: dict[str, list[str]] = {}  # name -> ABI argument names
        self._constructor: list[str] = []
        functions = [item for item in abi if item.get("type") == "function"]
        names = [str(item["name"]) for item in functions]
        for item in functions:
            name = str(item["name"])
            if names.count(name) > 1:
                if skip_overloads:
                    continue
                raise ValueError(f"overloaded function {name!r} is not supported")
            self._functions[name] = (
                keccak(signature(item).encode())[:4],
                [_canonical_type(p) for p in item.get("inputs", [])],
                [_canonical_type(p) for p in item.get("outputs", [])],
            )
            self._inputs[name] = [str(p.get("name") or f"arg{i}") for i, p in enumerate(item.get("inputs", []))]
        self._by_selector = {selector: name for name, (selector, _, _) in self._functions.items()}
        for item in abi:
            if item.get("type") == "constructor":
                self._constructor = [_canonical_type(p) for p in item.get("inputs", [])]

    def decode_call(self, data: bytes) -> DecodedCall | None:
        """The function and arguments ``data`` calls (addresses checksummed); None when its selector is not
        one of this ABI's functions or its arguments do not decode."""
        raw = to_bytes(data)
        name = self._by_selector.get(raw[:4]) if len(raw) >= 4 else None
        if name is None:
            return None
        _, types, _ = self._functions[name]
        try:
            values = abi_decode(types, raw[4:])
        except (DecodingError, ValueError, OverflowError):
            return None
        args = {n: _normalise(t, v) for n, t, v in zip(self._inputs[name], types, values, strict=True)}
        return DecodedCall(name, args)

    def has(self, name: str) -> bool:
        """Whether the ABI has a function ``name``."""
        return name in self._functions

    def encode_call(self, name: str, *args: Any) -> bytes:
        """The calldata of ``name(*args)``: selector and ABI-encoded arguments."""
        selector, types, _ = self._functions[name]
        if len(args) != len(types):
            raise ValueError(f"{name} takes {len(types)} arguments, got {len(args)}")
        return selector + abi_encode(types, list(args))

    def decode_result(self, name: str, data: bytes) -> tuple[Any, ...]:
        """The decoded return values of ``name`` (addresses checksummed)."""
        _, _, outputs = self._functions[name]
        values = abi_decode(outputs, data)
        return tuple(_normalise(t, v) for t, v in zip(outputs, values, strict=True))

    def encode_constructor(self, bytecode: bytes, *args: Any) -> bytes:
        """Deployment data: ``bytecode`` followed by the ABI-encoded constructor arguments."""
        if len(args) != len(self._constructor):
            raise ValueError(f"the constructor takes {len(self._constructor)} arguments, got {len(args)}")
        return bytecode + (abi_encode(self._constructor, list(args)) if args else b"")

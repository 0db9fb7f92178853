"""JSON from untrusted sources, parsed within stated bounds.

Every JSON text that comes from the blob store (a blob's header, its safetensors tensor header,
evidence and task documents) goes through :func:`parse_json` with a :class:`JsonLimits`. The
bounds are checked by a single iterative scan over the bytes *before* anything recursive sees
them: the scan keeps an explicit stack, so no input can exhaust the C stack, whatever the
interpreter's recursion limit is (libraries such as ``py_ecc`` raise it to 100,000, which turns a
deeply nested document into a segmentation fault in :func:`json.loads` instead of a
``RecursionError``). Only a text within every bound reaches :func:`json.loads`.

The scan stops at the first bound it crosses, so refusing a hostile text costs time and memory
proportional to the bound, not to the text. The quantities it bounds:

* ``max_bytes``: the length of the encoded text;
* ``max_depth``: arrays and objects open at once (``1`` is depth 0, ``[]`` depth 1, ``[[1]]`` 2);
* ``max_members``: entries of any one array, or key/value pairs of any one object;
* ``max_values``: JSON values in the whole text (each number, string, literal, array and object
  is one; an object's keys are not values).

Beyond the bounds the accepted language is strict RFC 8259 JSON in UTF-8 (no byte-order mark):
no ``NaN``/``Infinity`` and no number too large for a double (``1e400``), no duplicate keys within
an object. Every refusal is a
:class:`~fedchain.errors.BlobFormatError` that names what was parsed, the bound and the value.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from fedchain.errors import BlobFormatError

__all__ = ["JsonLimits", "parse_json", "scan_json"]

# One token per match, told apart by its group: a whole string literal, a lone quote (a string that
# never ends), an opening or a closing bracket, or a run of anything else (numbers, literals, and
# garbage for json.loads to refuse). Commas, colons and whitespace are skipped by the C engine. The
# string alternative is the unrolled ``"(?:[^"\\]|\\.)*"`` with possessive repeats: linear time,
# no backtracking.
_TOKEN = re.compile(rb'("[^"\\]*+(?:\\.[^"\\]*+)*+")|(")|([\[{])|([\]}])|([^\s"\[\]{},:]++)', re.S)
_LONE_QUOTE = 2
_OPEN = 3
_CLOSE = 4
_OPEN_OBJECT = ord("{")


@dataclass(frozen=True)
class JsonLimits:
    """Bounds for one kind of JSON text (see the module docstring for what each one counts)."""

    max_bytes: int
    max_depth: int
    max_members: int
    max_values: int

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_depth", "max_members", "max_values"):
            value = getattr(self, name)
            floor = 0 if name == "max_depth" else 1  # depth 0: a single number, string or literal
            if not isinstance(value, int) or isinstance(value, bool) or value < floor:
                raise ValueError(f"JsonLimits.{name} must be an integer >= {floor}, got {value!r}")


@dataclass(frozen=True)
class JsonShape:
    """What :func:`scan_json` measured: the deepest nesting, the largest container, the values."""

    depth: int
    members: int
    values: int


def scan_json(data: bytes | bytearray | memoryview, limits: JsonLimits, what: str) -> JsonShape:
    """Measure ``data`` against ``limits`` without recursion; :class:`BlobFormatError` at the first
    bound it crosses (or at a string that never ends). Syntax is left to the parser."""
    raw = bytes(data)
    if len(raw) > limits.max_bytes:
        raise BlobFormatError(f"{what} is {len(raw)} bytes, over the limit of {limits.max_bytes} bytes")
    # Per open container: [1 for an object, 0 for an array; tokens directly inside it]. Inside an
    # object the tokens alternate key, value (in any text json.loads accepts this far), so its odd
    # tokens are keys: they make a member but are not values.
    stack: list[list[int]] = []
    values = 0
    deepest = 0
    largest = 0
    for match in _TOKEN.finditer(raw):
        kind = match.lastindex
        if kind == _CLOSE:
            if not stack:
                break  # unbalanced: json.loads refuses the text at this point
            stack.pop()
            continue
        if kind == _LONE_QUOTE:
            raise BlobFormatError(f"{what} is not valid JSON: a string opened at byte {match.start()} never ends")
        if stack:
            top = stack[-1]
            top[1] += 1
            if top[0]:
                if top[1] % 2:  # a key
                    members = (top[1] + 1) // 2
                    if members > largest:
                        largest = members
                        if largest > limits.max_members:
                            raise BlobFormatError(
                                f"{what} has an object of more than {limits.max_members} entries "
                                f"(limit {limits.max_members})"
                            )
                    continue
            elif top[1] > largest:
                largest = top[1]
                if largest > limits.max_members:
                    raise BlobFormatError(
                        f"{what} has an array of more than {limits.max_members} entries (limit {limits.max_members})"
                    )
        values += 1
        if values > limits.max_values:
            raise BlobFormatError(f"{what} has more than {limits.max_values} JSON values (limit {limits.max_values})")
        if kind == _OPEN:
            stack.append([1 if raw[match.start()] == _OPEN_OBJECT else 0, 0])
            if len(stack) > deepest:
                deepest = len(stack)
                if deepest > limits.max_depth:
                    raise BlobFormatError(
                        f"{what} is nested more than {limits.max_depth} levels deep (limit {limits.max_depth})"
                    )
    return JsonShape(depth=deepest, members=largest, values=values)


def parse_json(data: bytes | bytearray | memoryview, limits: JsonLimits, what: str) -> Any:
    """Parse strict UTF-8 JSON within ``limits``: :class:`BlobFormatError` naming ``what`` for a
    text over a bound, invalid JSON, invalid UTF-8, a duplicate key, ``NaN`` or ``Infinity``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BlobFormatError(f"{what} must be bytes, not {type(data).__name__}")
    raw = bytes(data)
    scan_json(raw, limits, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BlobFormatError(f"{what} is not valid UTF-8: {err}") from err
    if text.startswith("\ufeff"):
        raise BlobFormatError(f"{what} starts with a byte-order mark")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as err:  # RecursionError: cannot happen within max_depth
        raise BlobFormatError(f"{what} is not valid JSON: {err}") from err


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of the range of a double")
    return value

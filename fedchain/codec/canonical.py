"""Canonical JSON and SHA-256 digests for every spec recorded on chain.

The same spec must hash to the same digest on every machine, so the encoding is
fixed: keys sorted, no whitespace, UTF-8 (no ``\\u`` escapes for non-ASCII), floats
via ``repr`` (shortest round-trip form), tuples as lists, and NaN/Infinity rejected.
No torch, no numpy required (numpy scalars are accepted if numpy is loaded).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from fedchain.errors import ConfigError
from fedchain.types import Digest

__all__ = ["canonical_json", "sha256_digest", "spec_digest"]


def _plain(value: Any, where: str) -> Any:
    """Return ``value`` as plain JSON types, rejecting anything non-canonical."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"canonical JSON: {where} is {value!r}; NaN and Infinity are not allowed")
        return float(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"canonical JSON: key {key!r} at {where} is not a string")
            out[key] = _plain(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    # numpy scalars, without importing numpy here
    module = type(value).__module__
    if module == "numpy" and hasattr(value, "item"):
        return _plain(value.item(), where)
    raise ConfigError(f"canonical JSON: {where} has unsupported type {type(value).__name__}")


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` as canonical JSON bytes (sorted keys, no spaces, UTF-8, floats via repr).

    Raises :class:`~fedchain.errors.ConfigError` for NaN/Infinity, non-string keys and
    values that have no JSON form.
    """
    plain = _plain(obj, "$")
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def sha256_digest(data: bytes | bytearray | memoryview) -> Digest:
    """SHA-256 of ``data`` as a 32-byte :data:`~fedchain.types.Digest`."""
    return Digest(hashlib.sha256(bytes(data)).digest())


def spec_digest(obj: Any) -> Digest:
    """``sha256_digest(canonical_json(obj))``: the digest of a spec as recorded on chain."""
    return sha256_digest(canonical_json(obj))

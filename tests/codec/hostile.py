"""Builders of hostile blobs and documents, shared by the codec tests and the protocol fuzz test.

Each builder writes the bytes by hand (not through the encoder, which refuses to write them), so
the decoders meet exactly what a hostile participant or aggregator could publish.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from fedchain.codec.blob import BLOB_MAGIC, BlobHeader, BlobKind
from fedchain.types import Digest

PARTICIPANT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def header_bytes(header: BlobHeader | dict[str, Any]) -> bytes:
    """The blob header's JSON as the encoder writes it (or any object, written the same way)."""
    obj = header.to_json() if isinstance(header, BlobHeader) else header
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def update_header(
    *, round_id: int = 1, participant: str = PARTICIPANT, base: bytes = b"\x00" * 32, num_samples: int = 10
) -> BlobHeader:
    """A valid update blob header."""
    return BlobHeader(
        kind=BlobKind.UPDATE,
        round=round_id,
        participant=participant,
        base_model_digest=Digest(base),
        num_samples=num_samples,
        extras={"update_kind": "delta"},
    )


def raw_blob(head: bytes, body: bytes, *, head_len: int | None = None) -> bytes:
    """MAGIC, a header length (``head_len``, or the true one), the header, the tensor section."""
    return struct.pack(">8sI", BLOB_MAGIC, len(head) if head_len is None else head_len) + head + body


def tensor_section(tensor_header: bytes, data: bytes = b"", *, length: int | None = None) -> bytes:
    """A safetensors section: 8-byte little-endian header length (``length``, or the true one)."""
    return struct.pack("<Q", len(tensor_header) if length is None else length) + tensor_header + data


def blob_with_tensor_header(tensor_header: bytes, data: bytes = b"", **header: Any) -> bytes:
    """A blob whose outer header is a valid update header and whose tensor header is ``tensor_header``."""
    return raw_blob(header_bytes(update_header(**header)), tensor_section(tensor_header, data))


def deep_array(depth: int) -> bytes:
    """``[[[...]]]`` nested ``depth`` levels deep: 2 * depth bytes."""
    return b"[" * depth + b"]" * depth


def deep_object(depth: int) -> bytes:
    """``{"a":{"a":...1...}}`` nested ``depth`` levels deep."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def many_empty_tensors(count: int) -> bytes:
    """A tensor header of ``count`` zero-size float32 tensors (about 62 bytes each)."""
    entry = b'"t%07d":{"data_offsets":[0,0],"dtype":"F32","shape":[0]}'
    return b"{" + b",".join(entry % i for i in range(count)) + b"}"


def tensor_entry(dtype: Any = "F32", shape: Any = (2,), offsets: Any = (0, 8)) -> dict[str, Any]:
    """One tensor header entry, with any (possibly hostile) field values."""
    return {
        "dtype": dtype,
        "shape": list(shape) if isinstance(shape, tuple) else shape,
        "data_offsets": list(offsets) if isinstance(offsets, tuple) else offsets,
    }


def tensor_header(entries: dict[str, Any]) -> bytes:
    """A tensor header from entries, as compact JSON."""
    return json.dumps(entries, separators=(",", ":")).encode()

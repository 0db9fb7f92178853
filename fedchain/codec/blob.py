"""The canonical blob format for model weights, updates and other tensors, and canonical
JSON documents. Same content -> same bytes -> same digest and CID, on any machine.

A tensor blob is::

    MAGIC (8 bytes, b"FEDCBLOB")
    header length (4 bytes, big-endian)
    header: canonical JSON of a BlobHeader (sorted keys, no whitespace, ASCII)
    safetensors bytes: tensors sorted by the safetensors writer, no metadata

Tensor dtypes are a fixed set (float32 for weights; float64 and int64 where needed),
little-endian, C-contiguous. NaN and infinities are rejected on both sides. Decoding
checks everything before numbers are handed out, and accepts only bytes that re-encode
to exactly themselves, so there is one valid encoding per content. Only
:class:`~fedchain.errors.BlobFormatError` comes out of the decoders, whatever the input.

Every JSON text in a blob, and every JSON document, is parsed by
:func:`fedchain.codec.bounded_json.parse_json` within stated bounds, so that no input can
crash or stall a decoder. The safetensors tensor header in particular is measured and
checked here in full (size, nesting, tensor count, dimensions, elements, offsets) before
the safetensors library, which parses it again in Rust, ever sees it. The bounds:

- blob bytes (the decoders' default): ``DEFAULT_MAX_BLOB_BYTES`` = 256 MiB;
- blob header: ``MAX_HEADER_BYTES`` = 64 KiB, nesting 2, at most 72 JSON values;
- tensor header: ``MAX_TENSOR_HEADER_BYTES`` = 4 MiB, nesting 3;
- tensors in one blob: ``MAX_TENSORS`` = 10,000; dimensions of one tensor:
  ``MAX_TENSOR_DIMS`` = 16; elements of all tensors together: ``MAX_TENSOR_ELEMENTS`` = 2**26
  (256 MiB of float32);
- a JSON document (task, evidence): ``MAX_DOCUMENT_BYTES`` = 16 MiB, nesting
  ``MAX_DOCUMENT_DEPTH`` = 32, ``MAX_DOCUMENT_MEMBERS`` = 100,000 entries in any one array or
  object, ``MAX_DOCUMENT_VALUES`` = 500,000 JSON values.

A real model fits with a wide margin: a safetensors header takes about 100 bytes a tensor, and
large published models have well under 2,000 tensors a file.

numpy and safetensors only; this module never imports torch.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from safetensors.numpy import load as _st_load
from safetensors.numpy import save as _st_save

from fedchain.codec.bounded_json import JsonLimits, parse_json
from fedchain.codec.canonical import canonical_json, sha256_digest
from fedchain.errors import BlobFormatError, ConfigError
from fedchain.types import DIGEST_SIZE, ZERO_DIGEST, Digest

__all__ = [
    "BLOB_MAGIC",
    "BLOB_FORMAT_VERSION",
    "ALLOWED_DTYPES",
    "DEFAULT_MAX_BLOB_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_TENSOR_HEADER_BYTES",
    "MAX_TENSORS",
    "MAX_TENSOR_DIMS",
    "MAX_TENSOR_ELEMENTS",
    "MAX_DOCUMENT_BYTES",
    "MAX_DOCUMENT_DEPTH",
    "MAX_DOCUMENT_MEMBERS",
    "MAX_DOCUMENT_VALUES",
    "HEADER_LIMITS",
    "TENSOR_HEADER_LIMITS",
    "DOCUMENT_LIMITS",
    "BlobKind",
    "BlobHeader",
    "encode_blob",
    "decode_blob",
    "decode_header",
    "blob_digest",
    "encode_json_doc",
    "decode_json_doc",
]

BLOB_MAGIC = b"FEDCBLOB"
BLOB_FORMAT_VERSION = 1
DEFAULT_MAX_BLOB_BYTES = 256 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_EXTRAS = 64
MAX_EXTRA_KEY = 64
MAX_EXTRA_VALUE = 4096
MAX_PARTICIPANT = 128
MAX_TENSOR_NAME = 256
MAX_TENSOR_HEADER_BYTES = 4 * 1024 * 1024
MAX_TENSORS = 10_000
MAX_TENSOR_DIMS = 16
MAX_TENSOR_ELEMENTS = 2**26
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
MAX_DOCUMENT_DEPTH = 32
MAX_DOCUMENT_MEMBERS = 100_000
MAX_DOCUMENT_VALUES = 500_000
_HEADER_FIELDS = 7
_PREFIX = struct.Struct(">8sI")
_TENSOR_PREFIX = struct.Struct("<Q")

HEADER_LIMITS = JsonLimits(
    max_bytes=MAX_HEADER_BYTES, max_depth=2, max_members=MAX_EXTRAS, max_values=1 + _HEADER_FIELDS + MAX_EXTRAS
)
"""The blob header: an object of seven fields, one of them (extras) an object of string values."""
TENSOR_HEADER_LIMITS = JsonLimits(
    max_bytes=MAX_TENSOR_HEADER_BYTES,
    max_depth=3,
    max_members=MAX_TENSORS,
    max_values=1 + MAX_TENSORS * (1 + 1 + 1 + MAX_TENSOR_DIMS + 1 + 2),
)
"""The safetensors header: an object of entries ``{"dtype", "shape": [dims], "data_offsets": [2]}``."""
DOCUMENT_LIMITS = JsonLimits(
    max_bytes=MAX_DOCUMENT_BYTES,
    max_depth=MAX_DOCUMENT_DEPTH,
    max_members=MAX_DOCUMENT_MEMBERS,
    max_values=MAX_DOCUMENT_VALUES,
)
"""Task and evidence documents."""

# numpy dtype -> safetensors dtype tag
ALLOWED_DTYPES: dict[np.dtype[Any], str] = {
    np.dtype("<f4"): "F32",
    np.dtype("<f8"): "F64",
    np.dtype("<i8"): "I64",
}
_TAG_ITEMSIZE = {tag: dt.itemsize for dt, tag in ALLOWED_DTYPES.items()}


class BlobKind(StrEnum):
    """What a blob holds."""

    UPDATE = "update"
    GLOBAL = "global"
    SCHEMA = "schema"
    EVIDENCE = "evidence"


@dataclass(frozen=True)
class BlobHeader:
    """The typed header stored in front of the tensors.

    ``participant`` is the 0x-address of the update's author ("" for global models and
    other blobs nobody in particular wrote); ``base_model_digest`` the digest of the
    model the update starts from (zero when there is none); ``extras`` a small
    str -> str map for algorithm-specific fields.
    """

    kind: BlobKind
    round: int
    participant: str = ""
    base_model_digest: Digest = ZERO_DIGEST
    num_samples: int = 0
    format_version: int = BLOB_FORMAT_VERSION
    extras: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            kind = BlobKind(self.kind)
        except ValueError as err:
            raise BlobFormatError(f"blob header: unknown kind {self.kind!r}") from err
        object.__setattr__(self, "kind", kind)
        _check_int("round", self.round)
        _check_int("num_samples", self.num_samples)
        _check_int("format_version", self.format_version)
        if self.format_version != BLOB_FORMAT_VERSION:
            raise BlobFormatError(
                f"blob header: format version {self.format_version} is not supported (expected {BLOB_FORMAT_VERSION})"
            )
        if not isinstance(self.participant, str) or len(self.participant) > MAX_PARTICIPANT or not self.participant.isascii():
            raise BlobFormatError(f"blob header: participant must be an ASCII string of <= {MAX_PARTICIPANT} chars")
        if not isinstance(self.base_model_digest, (bytes, bytearray)) or len(self.base_model_digest) != DIGEST_SIZE:
            raise BlobFormatError(f"blob header: base_model_digest must be {DIGEST_SIZE} bytes")
        object.__setattr__(self, "base_model_digest", Digest(bytes(self.base_model_digest)))
        if not isinstance(self.extras, Mapping) or len(self.extras) > MAX_EXTRAS:
            raise BlobFormatError(f"blob header: extras must be a mapping of at most {MAX_EXTRAS} entries")
        extras: dict[str, str] = {}
        for key in sorted(self.extras, key=lambda k: (not isinstance(k, str), str(k))):
            value = self.extras[key]
            if not isinstance(key, str) or not key or len(key) > MAX_EXTRA_KEY:
                raise BlobFormatError(f"blob header: extras key {key!r} must be a non-empty string of <= {MAX_EXTRA_KEY} chars")
            if not isinstance(value, str) or len(value) > MAX_EXTRA_VALUE:
                raise BlobFormatError(f"blob header: extras[{key!r}] must be a string of <= {MAX_EXTRA_VALUE} chars")
            extras[key] = value
        object.__setattr__(self, "extras", extras)

    def __hash__(self) -> int:
        return hash((self.kind, self.round, self.participant, self.base_model_digest, self.num_samples,
                     self.format_version, tuple(sorted(self.extras.items()))))

    def to_json(self) -> dict[str, Any]:
        """The header as the JSON object stored in the blob (digest as ``0x`` hex)."""
        return {
            "base_model_digest": "0x" + self.base_model_digest.hex(),
            "extras": dict(self.extras),
            "format": self.format_version,
            "kind": self.kind.value,
            "num_samples": self.num_samples,
            "participant": self.participant,
            "round": self.round,
        }

    @classmethod
    def from_json(cls, data: Any) -> BlobHeader:
        """Parse and validate a header JSON object; BlobFormatError on any deviation."""
        if not isinstance(data, dict):
            raise BlobFormatError("blob header is not a JSON object")
        expected = {"base_model_digest", "extras", "format", "kind", "num_samples", "participant", "round"}
        if set(data) != expected:
            raise BlobFormatError(f"blob header fields {sorted(data)} differ from {sorted(expected)}")
        version = data["format"]
        if not isinstance(version, int) or isinstance(version, bool) or version != BLOB_FORMAT_VERSION:
            raise BlobFormatError(f"blob format version {version!r} is not supported (expected {BLOB_FORMAT_VERSION})")
        digest_text = data["base_model_digest"]
        if not isinstance(digest_text, str) or len(digest_text) != 2 + 2 * DIGEST_SIZE or not digest_text.startswith("0x"):
            raise BlobFormatError(f"blob header: bad base_model_digest {digest_text!r}")
        try:
            digest = bytes.fromhex(digest_text[2:])
        except ValueError as err:
            raise BlobFormatError(f"blob header: base_model_digest is not hex: {digest_text!r}") from err
        return cls(
            kind=data["kind"],
            round=data["round"],
            participant=data["participant"],
            base_model_digest=Digest(digest),
            num_samples=data["num_samples"],
            format_version=version,
            extras=data["extras"],
        )


def _check_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= 2**63:
        raise BlobFormatError(f"blob header: {name} must be a non-negative 64-bit integer, got {value!r}")


def _canonical_header(header: BlobHeader) -> bytes:
    return json.dumps(header.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _prepare(name: Any, value: Any) -> np.ndarray:
    if not isinstance(name, str) or not name or len(name) > MAX_TENSOR_NAME or name == "__metadata__":
        raise BlobFormatError(f"tensor name {name!r} must be a non-empty string of <= {MAX_TENSOR_NAME} chars")
    if not isinstance(value, np.ndarray):
        raise BlobFormatError(f"tensor {name!r} is a {type(value).__name__}, not a numpy array")
    dtype = value.dtype.newbyteorder("<") if value.dtype.byteorder == ">" else value.dtype
    if dtype not in ALLOWED_DTYPES:
        allowed = ", ".join(str(d) for d in ALLOWED_DTYPES)
        raise BlobFormatError(f"tensor {name!r} has dtype {value.dtype}; allowed: {allowed}")
    array = value.astype(dtype, copy=False) if value.dtype != dtype else value
    if not array.flags.c_contiguous:
        array = array.copy(order="C")
    if array.dtype.kind == "f" and array.size and not np.isfinite(array).all():
        raise BlobFormatError(f"tensor {name!r} contains NaN or infinity")
    return array


def encode_blob(header: BlobHeader, tensors: Mapping[str, np.ndarray]) -> bytes:
    """Canonical bytes for ``header`` and ``tensors`` (input order does not matter)."""
    if not isinstance(header, BlobHeader):
        raise BlobFormatError(f"header must be a BlobHeader, not {type(header).__name__}")
    prepared = {name: _prepare(name, tensors[name]) for name in sorted(tensors)}
    head = _canonical_header(header)
    body = _st_save(prepared) if prepared else _st_save({})
    return _PREFIX.pack(BLOB_MAGIC, len(head)) + head + body


def _split(data: bytes, max_bytes: int) -> tuple[BlobHeader, memoryview]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BlobFormatError(f"blob must be bytes, not {type(data).__name__}")
    view = memoryview(data).cast("B")
    if len(view) > max_bytes:
        raise BlobFormatError(f"blob is {len(view)} bytes, over the limit of {max_bytes} bytes")
    if len(view) < _PREFIX.size:
        raise BlobFormatError(f"blob is truncated ({len(view)} bytes, shorter than its {_PREFIX.size}-byte prefix)")
    magic, head_len = _PREFIX.unpack_from(view, 0)
    if magic != BLOB_MAGIC:
        raise BlobFormatError(f"not a fedchain blob (magic {bytes(magic)!r}, expected {BLOB_MAGIC!r})")
    if head_len > MAX_HEADER_BYTES:
        raise BlobFormatError(f"blob header length {head_len} is over the limit of {MAX_HEADER_BYTES}")
    end = _PREFIX.size + head_len
    if end > len(view):
        raise BlobFormatError(f"blob is truncated inside its header ({len(view)} of at least {end} bytes)")
    head = bytes(view[_PREFIX.size : end])
    if not head.isascii():
        raise BlobFormatError("blob header is not ASCII")
    header = BlobHeader.from_json(parse_json(head, HEADER_LIMITS, "blob header"))
    if _canonical_header(header) != head:
        raise BlobFormatError("blob header is not in canonical form")
    return header, view[end:]


def decode_header(data: bytes, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> BlobHeader:
    """Only the header of a blob (the tensors are not checked)."""
    return _split(data, max_bytes)[0]


def _check_safetensors_layout(body: memoryview) -> None:
    """Validate the safetensors header ourselves, so the parser only ever sees sane input."""
    if len(body) < _TENSOR_PREFIX.size:
        raise BlobFormatError("blob is truncated: no tensor section")
    (n,) = _TENSOR_PREFIX.unpack_from(body, 0)
    if n > MAX_TENSOR_HEADER_BYTES:
        raise BlobFormatError(f"tensor header length {n} is over the limit of {MAX_TENSOR_HEADER_BYTES} bytes")
    available = len(body) - _TENSOR_PREFIX.size
    if n > available:
        raise BlobFormatError(f"blob is truncated: tensor header of {n} bytes, {available} available")
    meta = parse_json(body[_TENSOR_PREFIX.size : _TENSOR_PREFIX.size + n], TENSOR_HEADER_LIMITS, "tensor header")
    if not isinstance(meta, dict):
        raise BlobFormatError("tensor header is not a JSON object")
    if "__metadata__" in meta:
        raise BlobFormatError("tensor section carries metadata; canonical blobs have none")
    if len(meta) > MAX_TENSORS:  # the scan bounds it already; stated here for the reader
        raise BlobFormatError(f"blob has {len(meta)} tensors, over the limit of {MAX_TENSORS}")
    spans: list[tuple[int, int, str]] = []
    elements = 0
    for name, entry in meta.items():
        if not name or len(name) > MAX_TENSOR_NAME:
            raise BlobFormatError(f"tensor name {name[:MAX_TENSOR_NAME]!r} must be 1 to {MAX_TENSOR_NAME} characters")
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise BlobFormatError(f"tensor {name!r}: malformed entry")
        tag, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(tag, str) or tag not in _TAG_ITEMSIZE:
            raise BlobFormatError(f"tensor {name!r}: dtype {tag!r} is not allowed")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise BlobFormatError(f"tensor {name!r}: bad shape {shape!r}")
        if len(shape) > MAX_TENSOR_DIMS:
            raise BlobFormatError(f"tensor {name!r} has {len(shape)} dimensions, over the limit of {MAX_TENSOR_DIMS}")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
            raise BlobFormatError(f"tensor {name!r}: bad data offsets {offsets!r}")
        count = 1
        for dim in shape:
            count *= dim
        elements += count
        if elements > MAX_TENSOR_ELEMENTS:
            raise BlobFormatError(
                f"tensor {name!r} brings the blob to {elements} elements, over the limit of {MAX_TENSOR_ELEMENTS}"
            )
        begin, stop = offsets
        if stop - begin != count * _TAG_ITEMSIZE[tag]:
            raise BlobFormatError(f"tensor {name!r}: {stop - begin} bytes do not fit shape {shape} of {tag}")
        spans.append((begin, stop, name))
    position = 0
    for begin, stop, name in sorted(spans):
        if begin != position:
            raise BlobFormatError(f"tensor {name!r}: data does not follow the previous tensor")
        position = stop
    if position != available - n:
        raise BlobFormatError(f"blob is truncated or padded: tensors need {position} bytes, {available - n} present")


def _is_count(value: Any) -> bool:
    """A non-negative 64-bit integer (JSON booleans are not integers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def decode_blob(data: bytes, max_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> tuple[BlobHeader, dict[str, np.ndarray]]:
    """Header and tensors of a canonical blob; :class:`BlobFormatError` for anything else."""
    header, body = _split(data, max_bytes)
    _check_safetensors_layout(body)
    try:
        loaded = _st_load(bytes(body))
    except Exception as err:  # safetensors raises its own error types; input is already vetted
        raise BlobFormatError(f"tensor section cannot be parsed: {err}") from err
    tensors: dict[str, np.ndarray] = {}
    for name in sorted(loaded):
        array = loaded[name]
        if array.dtype not in ALLOWED_DTYPES:
            raise BlobFormatError(f"tensor {name!r} has dtype {array.dtype}, which is not allowed")
        if array.dtype.kind == "f" and array.size and not np.isfinite(array).all():
            raise BlobFormatError(f"tensor {name!r} contains NaN or infinity")
        tensors[name] = array
    try:
        canonical = _st_save(tensors)
    except Exception as err:
        raise BlobFormatError(f"tensor section cannot be re-encoded: {err}") from err
    if canonical != body:
        raise BlobFormatError("tensor section is not in canonical form")
    return header, tensors


def blob_digest(data: bytes | bytearray | memoryview) -> Digest:
    """SHA-256 of the blob bytes: the digest committed on chain."""
    return sha256_digest(data)


# -- JSON documents ------------------------------------------------------------------
def encode_json_doc(obj: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no whitespace, UTF-8, floats via repr) for a
    document stored in IPFS (task configs, evidence)."""
    try:
        return canonical_json(obj)
    except ConfigError as err:
        raise BlobFormatError(f"document cannot be stored as canonical JSON: {err}") from err


def decode_json_doc(data: bytes, max_bytes: int = MAX_DOCUMENT_BYTES, *, what: str = "document") -> Any:
    """Parse a document written by :func:`encode_json_doc` within :data:`DOCUMENT_LIMITS` (and at
    most ``max_bytes``); only its canonical form is accepted."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BlobFormatError(f"{what} must be bytes, not {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > max_bytes:
        raise BlobFormatError(f"{what} is {len(raw)} bytes, over the limit of {max_bytes} bytes")
    obj = parse_json(raw, DOCUMENT_LIMITS, what)
    if encode_json_doc(obj) != raw:
        raise BlobFormatError(f"{what} is not in canonical JSON form (sorted keys, no whitespace)")
    return obj

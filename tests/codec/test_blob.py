"""The canonical blob format and canonical JSON documents."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.numpy import save as st_save

from fedchain.codec.blob import (
    BLOB_MAGIC,
    BlobHeader,
    BlobKind,
    blob_digest,
    decode_blob,
    decode_header,
    decode_json_doc,
    encode_blob,
    encode_json_doc,
)
from fedchain.errors import BlobFormatError
from fedchain.storage.cid import compute_cid
from fedchain.types import Digest

HEADER = BlobHeader(
    kind=BlobKind.UPDATE,
    round=4,
    participant="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    base_model_digest=Digest(bytes(range(32))),
    num_samples=120,
    extras={"algorithm": "fedprox", "mu": "0.01"},
)


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "fc.weight": rng.standard_normal((4, 3)).astype(np.float32),
        "fc.bias": rng.standard_normal(4).astype(np.float32),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "scale": np.array([0.5, 2.0]),
    }


def _raw_blob(head: dict[str, object], body: bytes) -> bytes:
    text = json.dumps(head, sort_keys=True, separators=(",", ":")).encode()
    return struct.pack(">8sI", BLOB_MAGIC, len(text)) + text + body


def test_round_trip_keeps_header_tensors_and_dtypes() -> None:
    tensors = _tensors()
    header, decoded = decode_blob(encode_blob(HEADER, tensors))
    assert header == HEADER
    assert sorted(decoded) == sorted(tensors)
    for name, array in tensors.items():
        assert decoded[name].dtype == array.dtype
        assert np.array_equal(decoded[name], array)


def test_same_content_in_any_order_gives_the_same_bytes_digest_and_cid() -> None:
    tensors = _tensors()
    shuffled = {k: tensors[k] for k in reversed(list(tensors))}
    reordered_extras = BlobHeader(**{**HEADER.__dict__, "extras": {"mu": "0.01", "algorithm": "fedprox"}})
    a = encode_blob(HEADER, tensors)
    b = encode_blob(reordered_extras, shuffled)
    assert a == b
    assert blob_digest(a) == blob_digest(b)
    assert compute_cid(a) == compute_cid(b)


def test_non_contiguous_and_big_endian_inputs_encode_like_their_plain_copies() -> None:
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    plain = encode_blob(HEADER, {"w": base.T.copy(), "i": np.array([1, 2], dtype="<i8")})
    odd = encode_blob(HEADER, {"w": base.T, "i": np.array([1, 2], dtype=">i8")})
    assert odd == plain


def test_blob_digest_is_sha256_of_the_bytes() -> None:
    import hashlib

    data = encode_blob(HEADER, _tensors())
    assert blob_digest(data) == hashlib.sha256(data).digest()


def test_decode_header_only() -> None:
    assert decode_header(encode_blob(HEADER, _tensors())) == HEADER


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_encode_rejects_nan_and_infinity(bad: float) -> None:
    with pytest.raises(BlobFormatError, match="NaN or infinity"):
        encode_blob(HEADER, {"w": np.array([1.0, bad], dtype=np.float32)})


def test_decode_rejects_nan_smuggled_into_the_tensor_section() -> None:
    body = st_save({"w": np.array([1.0, np.nan], dtype=np.float32)})
    with pytest.raises(BlobFormatError, match="NaN or infinity"):
        decode_blob(_raw_blob(HEADER.to_json(), body))


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.uint8, np.bool_, np.complex64])
def test_encode_rejects_dtypes_outside_the_fixed_set(dtype: type) -> None:
    with pytest.raises(BlobFormatError, match="dtype"):
        encode_blob(HEADER, {"w": np.zeros(2, dtype=dtype)})


def test_decode_rejects_a_disallowed_dtype() -> None:
    body = st_save({"w": np.zeros(2, dtype=np.float16)})
    with pytest.raises(BlobFormatError, match="dtype 'F16' is not allowed"):
        decode_blob(_raw_blob(HEADER.to_json(), body))


def test_decode_rejects_wrong_magic() -> None:
    data = bytearray(encode_blob(HEADER, _tensors()))
    data[:8] = b"NOTABLOB"
    with pytest.raises(BlobFormatError, match="magic"):
        decode_blob(bytes(data))


@pytest.mark.parametrize("cut", [0, 5, 12, 40, -1, -17])
def test_decode_rejects_truncated_data(cut: int) -> None:
    data = encode_blob(HEADER, _tensors())
    with pytest.raises(BlobFormatError, match="truncated"):
        decode_blob(data[:cut])


def test_decode_rejects_an_unknown_format_version() -> None:
    head = {**HEADER.to_json(), "format": 2}
    with pytest.raises(BlobFormatError, match="version 2"):
        decode_blob(_raw_blob(head, st_save(_tensors())))


def test_header_rejects_an_unknown_format_version() -> None:
    with pytest.raises(BlobFormatError, match="format version 9"):
        BlobHeader(kind=BlobKind.GLOBAL, round=0, format_version=9)


def test_decode_rejects_oversized_blobs_by_the_configured_limit() -> None:
    data = encode_blob(HEADER, _tensors())
    assert decode_blob(data, max_bytes=len(data))[0] == HEADER
    with pytest.raises(BlobFormatError, match="over the limit"):
        decode_blob(data, max_bytes=len(data) - 1)


def test_decode_rejects_safetensors_metadata() -> None:
    body = st_save(_tensors(), metadata={"created": "today"})
    with pytest.raises(BlobFormatError, match="metadata"):
        decode_blob(_raw_blob(HEADER.to_json(), body))


def test_decode_rejects_a_non_canonical_header() -> None:
    text = json.dumps(HEADER.to_json(), sort_keys=True, indent=1).encode()
    data = struct.pack(">8sI", BLOB_MAGIC, len(text)) + text + st_save(_tensors())
    with pytest.raises(BlobFormatError, match="canonical"):
        decode_blob(data)


def test_decode_rejects_trailing_bytes() -> None:
    with pytest.raises(BlobFormatError, match="padded"):
        decode_blob(encode_blob(HEADER, _tensors()) + b"\x00")


@pytest.mark.parametrize(
    ("field", "value"),
    [("round", -1), ("num_samples", 1.5), ("kind", "weights"), ("participant", 7), ("extras", {"k": 1})],
)
def test_header_fields_are_validated(field: str, value: object) -> None:
    with pytest.raises(BlobFormatError, match="blob header"):
        BlobHeader(**{**HEADER.__dict__, field: value})


# -- properties -------------------------------------------------------------------
_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz._0123456789", min_size=1, max_size=12)
_arrays = st.one_of(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
               elements=st.floats(-1e6, 1e6, width=32)),
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=4), elements=st.floats(-1e6, 1e6)),
    hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=4)),
)
_headers = st.builds(
    BlobHeader,
    kind=st.sampled_from(list(BlobKind)),
    round=st.integers(0, 2**63 - 1),
    participant=st.text(alphabet="0123456789abcdefxABCDEF", max_size=42),
    base_model_digest=st.binary(min_size=32, max_size=32).map(Digest),
    num_samples=st.integers(0, 10**9),
    extras=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=16), max_size=4),
)


@settings(max_examples=60, deadline=None)
@given(header=_headers, tensors=st.dictionaries(_names, _arrays, max_size=5))
def test_encode_decode_is_the_identity_and_stable(header: BlobHeader, tensors: dict[str, np.ndarray]) -> None:
    data = encode_blob(header, tensors)
    decoded_header, decoded = decode_blob(data)
    assert decoded_header == header
    assert sorted(decoded) == sorted(tensors)
    for name, array in tensors.items():
        assert decoded[name].dtype == array.dtype and decoded[name].shape == array.shape
        assert np.array_equal(decoded[name], array)
    assert encode_blob(decoded_header, decoded) == data


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=512))
def test_decoder_never_crashes_on_garbage(garbage: bytes) -> None:
    for candidate in (garbage, BLOB_MAGIC + garbage, BLOB_MAGIC + struct.pack(">I", len(garbage)) + garbage):
        try:
            decode_blob(candidate)
        except BlobFormatError:
            pass


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), value=st.integers(0, 255), cut=st.integers(min_value=0))
def test_decoder_rejects_or_reproduces_mutated_blobs(position: int, value: int, cut: int) -> None:
    data = bytearray(encode_blob(HEADER, _tensors()))
    data[position % len(data)] = value
    mutated = bytes(data[: len(data) - cut % 64])
    try:
        header, tensors = decode_blob(mutated)
    except BlobFormatError:
        return
    assert encode_blob(header, tensors) == mutated  # whatever is accepted is canonical


# -- JSON documents ---------------------------------------------------------------
def test_json_doc_is_canonical_and_round_trips() -> None:
    doc = {"b": [1, 2.5, "é"], "a": {"y": None, "x": True}}
    data = encode_json_doc(doc)
    assert data == '{"a":{"x":true,"y":null},"b":[1,2.5,"é"]}'.encode()
    assert decode_json_doc(data) == doc


@pytest.mark.parametrize(
    "data",
    [b'{"b":1, "a":2}', b'{"b":1,"a":2}', b'{"a":1,"a":1}', b'{"a":NaN}', b"\xff", b"[1,", b"[" * 5000],
    ids=["whitespace", "unsorted", "duplicate", "nan", "not-utf8", "truncated", "deep"],
)
def test_json_doc_decoder_rejects_non_canonical_or_broken_input(data: bytes) -> None:
    with pytest.raises(BlobFormatError):
        decode_json_doc(data)


def test_json_doc_encoder_rejects_what_json_cannot_hold() -> None:
    with pytest.raises(BlobFormatError):
        encode_json_doc({"x": float("nan")})
    with pytest.raises(BlobFormatError):
        encode_json_doc({"x": object()})


def test_json_doc_decoder_honours_the_size_limit() -> None:
    with pytest.raises(BlobFormatError, match="over the limit"):
        decode_json_doc(b'"' + b"x" * 100 + b'"', max_bytes=50)


# -- the tensor header is checked in full before safetensors parses it --------------
def _blob_with(entries: dict[str, object], data: bytes = b"") -> bytes:
    from tests.codec.hostile import blob_with_tensor_header, tensor_header

    return blob_with_tensor_header(tensor_header(entries), data)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}, r"dtype \['F32'\] is not allowed"),
        ({"dtype": {"F32": 1}, "shape": [2], "data_offsets": [0, 8]}, "is not allowed"),
        ({"dtype": "F32", "shape": [1] * 17, "data_offsets": [0, 4]}, "17 dimensions, over the limit of 16"),
        ({"dtype": "F32", "shape": [2**13, 2**13, 2], "data_offsets": [0, 2**29]}, "over the limit of 67108864"),
        ({"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}, "bad shape"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 2**64]}, "bad data offsets"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}, "bytes do not fit"),
        ({"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}, "bad shape"),
    ],
)
def test_hostile_tensor_entries_are_refused_by_name(entry: dict[str, object], message: str) -> None:
    with pytest.raises(BlobFormatError, match=message):
        decode_blob(_blob_with({"w": entry}, b"\x00" * 8))


def test_a_tensor_name_over_the_limit_is_refused() -> None:
    with pytest.raises(BlobFormatError, match="must be 1 to 256 characters"):
        decode_blob(_blob_with({"w" * 257: {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}))


def test_a_tensor_header_length_that_lies_is_refused() -> None:
    from tests.codec.hostile import header_bytes, raw_blob, tensor_section, update_header

    head = header_bytes(update_header())
    with pytest.raises(BlobFormatError, match="tensor header of 1000 bytes, 2 available"):
        decode_blob(raw_blob(head, tensor_section(b"{}", length=1000)))
    with pytest.raises(BlobFormatError, match="truncated inside its header"):
        decode_blob(raw_blob(head, tensor_section(b"{}"), head_len=len(head) + 100))


def test_a_nested_blob_header_is_refused_before_it_is_parsed() -> None:
    from tests.codec.hostile import raw_blob

    head = b'{"extras":' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    with pytest.raises(BlobFormatError, match=r"blob header is nested more than 2 levels deep \(limit 2\)"):
        decode_blob(raw_blob(head, b""))

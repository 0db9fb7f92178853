"""The CID builder on its own: layout, incremental feeding, parsing. No node needed
(tests/storage/test_cid_node.py compares it with the real node)."""

from __future__ import annotations

import hashlib
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import StorageError
from fedchain.storage.cid import (
    CHUNK_SIZE,
    CODEC_DAG_PB,
    CODEC_RAW,
    CidBuilder,
    cid_to_string,
    compute_cid,
    compute_cid_of_chunks,
    parse_cid,
)

# The CID every IPFS implementation gives the empty file with raw leaves (sha256 of b"").
EMPTY_RAW_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_empty_blob_is_the_raw_block_of_nothing() -> None:
    assert compute_cid(b"") == EMPTY_RAW_CID


def test_single_chunk_is_a_raw_block_addressed_by_its_sha256() -> None:
    data = bytes(range(256)) * 4
    parsed = parse_cid(compute_cid(data))
    assert parsed.codec == CODEC_RAW
    assert parsed.digest == hashlib.sha256(data).digest()


def test_exactly_one_chunk_stays_raw_and_one_byte_more_becomes_dag_pb() -> None:
    assert parse_cid(compute_cid(b"\x01" * CHUNK_SIZE)).codec == CODEC_RAW
    assert parse_cid(compute_cid(b"\x01" * (CHUNK_SIZE + 1))).codec == CODEC_DAG_PB


def test_cid_changes_when_one_byte_changes() -> None:
    data = bytearray(b"\x00" * (3 * CHUNK_SIZE))
    before = compute_cid(data)
    data[2 * CHUNK_SIZE + 7] = 1
    assert compute_cid(data) != before


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=3 * CHUNK_SIZE + 10),
    cuts=st.lists(st.integers(min_value=0, max_value=3 * CHUNK_SIZE + 10), max_size=6),
)
def test_feeding_in_any_slicing_gives_the_same_cid(size: int, cuts: list[int]) -> None:
    data = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
    data = data[:size]
    bounds = sorted({0, size, *(c for c in cuts if c <= size)})
    pieces = [memoryview(data)[a:b] for a, b in pairwise(bounds)]
    assert compute_cid_of_chunks(pieces) == compute_cid(data)


def test_builder_reports_size_and_can_be_asked_twice() -> None:
    builder = CidBuilder()
    builder.update(b"abc" * 100_000)
    first = builder.cid()
    assert builder.size == 300_000
    assert builder.cid() == first


def test_parse_round_trips_what_the_builder_makes() -> None:
    cid = compute_cid(b"x" * (CHUNK_SIZE * 2))
    assert cid_to_string(parse_cid(cid).binary) == cid


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "not a CID"),
        ("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn", "must start with 'b'"),
        ("BAFKREIHDWDCEFGH4DQKJV67UZCMW7OJEE6XEDZDETOJUZJEVTENXQUVYKU", "must start with 'b'"),
        ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk", "not valid base32"),
        (cid_to_string(parse_cid(EMPTY_RAW_CID).binary[:-1]), "digest has 31 bytes"),
        (cid_to_string(b"\x00" + parse_cid(EMPTY_RAW_CID).binary[1:]), "version 0"),
        ("b!!!!", "not valid base32"),
        ("bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "codec 0x71"),
    ],
)
def test_parse_rejects_what_is_not_a_supported_cid(text: str, fragment: str) -> None:
    with pytest.raises(StorageError, match=fragment):
        parse_cid(text)

"""The RLP encoder, against pyrlp (the encoder eth-account signs with) and the Ethereum wiki's examples."""

from __future__ import annotations

from typing import Any

import pytest
import rlp as pyrlp
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.codec.rlp import encode, encode_int
from fedchain.errors import AbiEncodingError

leaves = st.one_of(st.binary(max_size=80), st.integers(min_value=0, max_value=2**300))
items = st.recursive(leaves, lambda children: st.lists(children, max_size=6), max_leaves=40)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (b"dog", "83646f67"),
        ([b"cat", b"dog"], "c88363617483646f67"),
        (b"", "80"),
        ([], "c0"),
        (0, "80"),
        (b"\x00", "00"),
        (15, "0f"),
        (1024, "820400"),
        ([[], [[]], [[], [[]]]], "c7c0c1c0c3c0c1c0"),
        (b"Lorem ipsum dolor sit amet, consectetur adipisicing elit",
         "b8384c6f72656d20697073756d20646f6c6f722073697420616d65742c20636f6e7365637465747572206164697069736963696e6720656c6974"),
    ],
)
def test_the_wiki_examples(item: Any, expected: str) -> None:
    assert encode(item).hex() == expected


@settings(max_examples=300, deadline=None)
@given(item=items)
def test_encoding_is_pyrlps(item: Any) -> None:
    assert encode(item) == pyrlp.encode(item)


def test_long_lists_and_strings_take_a_length_of_length() -> None:
    assert encode(b"\x01" * 1024) == pyrlp.encode(b"\x01" * 1024)
    assert encode([b"\x01" * 60] * 20) == pyrlp.encode([b"\x01" * 60] * 20)


@pytest.mark.parametrize(("item", "where"), [(-1, "item"), ("dog", "item"), (True, "item"), ([b"a", [None]], r"item\[1\]\[0\]"),
                                             (1.5, "item")])
def test_what_is_not_an_item_is_refused_naming_where(item: Any, where: str) -> None:
    with pytest.raises(AbiEncodingError, match=where):
        encode(item)


def test_encode_int_is_minimal() -> None:
    assert encode_int(0) == b""
    assert encode_int(255) == b"\xff"
    assert encode_int(256) == b"\x01\x00"
    with pytest.raises(AbiEncodingError):
        encode_int(-1)

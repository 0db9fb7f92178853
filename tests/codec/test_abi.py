"""The in-house ABI codec and address helpers, with eth_abi / eth_utils as the oracle."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import eth_abi
import eth_utils
import pytest
from eth_hash.auto import keccak as oracle_keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedchain.codec.abi import (
    AbiError,
    DecodingError,
    EncodingError,
    decode,
    encode,
    is_address,
    is_checksum_address,
    is_hex_address,
    keccak,
    to_canonical_address,
    to_checksum_address,
)

# ------------------------------------------------------------------------------- type trees and values

Tree = tuple[Any, ...]  # ("leaf", name) | ("dyn", item) | ("fixed", item, k) | ("tuple", [components])

INT_BITS = st.sampled_from(range(8, 257, 8))
LEAVES: st.SearchStrategy[Tree] = st.one_of(
    INT_BITS.map(lambda b: ("leaf", f"uint{b}")),
    INT_BITS.map(lambda b: ("leaf", f"int{b}")),
    st.sampled_from(["address", "bool", "bytes", "string", "uint", "int"]).map(lambda n: ("leaf", n)),
    st.integers(1, 32).map(lambda n: ("leaf", f"bytes{n}")),
)
TREES: st.SearchStrategy[Tree] = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        children.map(lambda t: ("dyn", t)),
        st.tuples(children, st.integers(1, 3)).map(lambda p: ("fixed", p[0], p[1])),
        st.lists(children, min_size=1, max_size=4).map(lambda cs: ("tuple", cs)),
    ),
    max_leaves=8,
)


def render(tree: Tree) -> str:
    """The ABI type string of ``tree``."""
    if tree[0] == "leaf":
        return str(tree[1])
    if tree[0] == "dyn":
        return render(tree[1]) + "[]"
    if tree[0] == "fixed":
        return f"{render(tree[1])}[{tree[2]}]"
    return "(" + ",".join(render(c) for c in tree[1]) + ")"


ADDRESS_BYTES = st.binary(min_size=20, max_size=20)
ADDRESSES = st.one_of(
    ADDRESS_BYTES,
    ADDRESS_BYTES.map(lambda b: "0x" + b.hex()),
    ADDRESS_BYTES.map(lambda b: "0x" + b.hex().upper()),
    ADDRESS_BYTES.map(lambda b: b.hex()),
    ADDRESS_BYTES.map(lambda b: str(eth_utils.to_checksum_address(b))),
)


def values(tree: Tree) -> st.SearchStrategy[Any]:
    """Values that eth_abi encodes as ``tree``."""
    kind = tree[0]
    if kind == "dyn":
        return st.lists(values(tree[1]), max_size=3).flatmap(lambda xs: st.sampled_from([xs, tuple(xs)]))
    if kind == "fixed":
        return st.lists(values(tree[1]), min_size=tree[2], max_size=tree[2])
    if kind == "tuple":
        return st.tuples(*(values(c) for c in tree[1]))
    name = str(tree[1])
    if name.startswith("uint"):
        bits = int(name[4:] or 256)
        return st.one_of(st.integers(0, 2**bits - 1), st.sampled_from([0, 2**bits - 1]))
    if name.startswith("int"):
        bits = int(name[3:] or 256)
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return st.one_of(st.integers(low, high), st.sampled_from([low, high, -1, 0]))
    if name == "address":
        return ADDRESSES
    if name == "bool":
        return st.booleans()
    if name == "bytes":
        return st.one_of(st.binary(max_size=70), st.binary(max_size=70).map(bytearray))
    if name == "string":
        return st.text(max_size=40)
    size = int(name[5:])
    return st.binary(max_size=size)


@st.composite
def typed_values(draw: st.DrawFn) -> tuple[list[str], list[Any]]:
    """A list of type strings and values of those types."""
    trees = draw(st.lists(TREES, min_size=1, max_size=4))
    return [render(t) for t in trees], [draw(values(t)) for t in trees]


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def oracle_decode(types: list[str], data: bytes) -> tuple[bool, Any]:
    """eth_abi's answer: (True, values) or (False, the exception)."""
    try:
        return True, eth_abi.decode(types, data)
    except Exception as err:  # noqa: BLE001 - any refusal by the oracle counts as a refusal
        return False, err


def assert_decodes_like_oracle(types: list[str], data: bytes) -> None:
    """``decode`` returns what eth_abi returns, or raises DecodingError where eth_abi raises."""
    ok, expected = oracle_decode(types, data)
    if ok:
        assert decode(types, data) == expected
    else:
        with pytest.raises(DecodingError):
            decode(types, data)


# ------------------------------------------------------------------------------------ properties


@FUZZ
@given(typed_values())
def test_encode_matches_eth_abi_byte_for_byte(case: tuple[list[str], list[Any]]) -> None:
    types, vals = case
    assert encode(types, vals) == eth_abi.encode(types, vals)


@FUZZ
@given(typed_values())
def test_decode_of_encode_matches_eth_abi(case: tuple[list[str], list[Any]]) -> None:
    types, vals = case
    data = encode(types, vals)
    assert decode(types, data) == eth_abi.decode(types, data)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[list[str], bytes]:
    """A valid encoding with a few words or bytes overwritten, cut short or extended."""
    types, vals = draw(typed_values())
    data = bytearray(encode(types, vals))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["byte", "word", "truncate", "append"]))
        if op == "byte" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif op == "word" and len(data) >= 32:
            at = 32 * draw(st.integers(0, len(data) // 32 - 1))
            number = draw(st.sampled_from([0, 1, 2, 31, 32, 33, 64, 96, 2**64, 2**255, 2**256 - 1, len(data)]))
            data[at : at + 32] = number.to_bytes(32, "big")
        elif op == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        else:
            data += draw(st.binary(max_size=40))
    return types, bytes(data)


@FUZZ
@given(mutated())
def test_decode_of_mutated_data_agrees_with_eth_abi(case: tuple[list[str], bytes]) -> None:
    types, data = case
    assert_decodes_like_oracle(types, data)


SMALL_WORDS = st.lists(st.sampled_from([0, 1, 2, 3, 32, 64, 96, 128, 2**160 - 1, 2**256 - 1]), max_size=12).map(
    lambda ns: b"".join(n.to_bytes(32, "big") for n in ns)
)


@FUZZ
@given(st.lists(TREES, min_size=1, max_size=3).map(lambda ts: [render(t) for t in ts]),
       st.one_of(st.binary(max_size=300), SMALL_WORDS))
def test_decode_of_random_bytes_agrees_with_eth_abi(types: list[str], data: bytes) -> None:
    assert_decodes_like_oracle(types, data)


@FUZZ
@given(st.binary(max_size=64))
def test_keccak_matches_eth_hash(data: bytes) -> None:
    assert keccak(data) == oracle_keccak(data)


@FUZZ
@given(st.one_of(ADDRESSES, st.text(max_size=44), st.binary(max_size=22), st.integers()))
def test_address_helpers_match_eth_utils(value: Any) -> None:
    assert is_address(value) == eth_utils.is_address(value)
    assert is_hex_address(value) == eth_utils.is_hex_address(value)
    assert is_checksum_address(value) == eth_utils.is_checksum_address(value)
    if eth_utils.is_address(value):
        assert to_checksum_address(value) == eth_utils.to_checksum_address(value)
        assert to_canonical_address(value) == eth_utils.to_canonical_address(value)
    elif isinstance(value, (str, bytes)):
        with pytest.raises(ValueError):
            to_checksum_address(value)
        with pytest.raises(ValueError):
            to_canonical_address(value)


# --------------------------------------------------------------------------- known vectors (ABI spec)


def words(*hexes: str) -> bytes:
    """Concatenated 32-byte words written as hex."""
    return b"".join(bytes.fromhex(h.rjust(64, "0")) for h in hexes)


def right(text: bytes) -> str:
    """``text`` right-padded to a word, as hex."""
    return text.ljust(32, b"\x00").hex()


SPEC_VECTORS: list[tuple[list[str], list[Any], bytes]] = [
    (["uint32", "bool"], [69, True], words("45", "1")),
    (["bytes3[2]"], [[b"abc", b"def"]], words(right(b"abc"), right(b"def"))),
    (
        ["bytes", "bool", "uint256[]"],
        [b"dave", True, [1, 2, 3]],
        words("60", "1", "a0", "4", right(b"dave"), "3", "1", "2", "3"),
    ),
    (
        ["uint256", "uint32[]", "bytes10", "bytes"],
        [0x123, [0x456, 0x789], b"1234567890", b"Hello, world!"],
        words("123", "80", right(b"1234567890"), "e0", "2", "456", "789", "d", right(b"Hello, world!")),
    ),
    (
        ["uint256[][]", "string[]"],
        [[[1, 2], [3]], ["one", "two", "three"]],
        words("40", "140", "2", "40", "a0", "2", "1", "2", "1", "3",
              "3", "60", "a0", "e0", "3", right(b"one"), "3", right(b"two"), "5", right(b"three")),
    ),
    (["int8", "int256"], [-1, -2], words("f" * 64, "f" * 63 + "e")),
]


@pytest.mark.parametrize(("types", "vals", "expected"), SPEC_VECTORS)
def test_spec_vectors_encode(types: list[str], vals: list[Any], expected: bytes) -> None:
    assert encode(types, vals) == expected == eth_abi.encode(types, vals)


@pytest.mark.parametrize(("types", "vals", "expected"), SPEC_VECTORS)
def test_spec_vectors_decode(types: list[str], vals: list[Any], expected: bytes) -> None:
    assert decode(types, expected) == eth_abi.decode(types, expected)


def test_keccak_known_values() -> None:
    assert keccak(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak(b"Error(string)")[:4].hex() == "08c379a0"
    assert keccak(b"Panic(uint256)")[:4].hex() == "4e487b71"


def test_decoded_address_is_lowercase_hex_like_eth_abi() -> None:
    data = encode(["address"], ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"])
    assert decode(["address"], data) == ("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",) == eth_abi.decode(["address"], data)


def test_bytes_n_is_right_padded() -> None:
    assert encode(["bytes4"], [b"ab"]) == b"ab" + b"\x00" * 30


# ------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("uint8", 256),
        ("uint8", -1),
        ("int8", 128),
        ("int8", -129),
        ("uint256", 2**256),
        ("uint256", True),
        ("uint256", 1.0),
        ("uint256", "1"),
        ("bool", 1),
        ("bool", None),
        ("address", "0x" + "ab" * 19),
        ("address", b"\x01" * 19),
        ("address", "0x" + "zz" * 20),
        ("address", 5),
        ("bytes4", b"abcde"),
        ("bytes4", "0x1234"),
        ("bytes", "0x12"),
        ("string", b"ab"),
        ("string", "\ud800"),
        ("uint256[2]", [1]),
        ("uint256[]", "ab"),
        ("uint256[]", b"ab"),
        ("(uint256,bool)", [1]),
        ("(uint256,bool)", 1),
    ],
)
def test_refusals_are_encoding_errors_like_eth_abi(kind: str, value: Any) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the oracle refuses too, with its own exception
        eth_abi.encode([kind], [value])
    with pytest.raises(EncodingError, match=kind.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        encode([kind], [value])


def test_wrong_number_of_values_is_refused() -> None:
    with pytest.raises(EncodingError, match="1 values for 2 types"):
        encode(["uint256", "bool"], [1])


@pytest.mark.parametrize("kind", ["uint7", "uint0", "uint264", "uint08", "bytes0", "bytes33", "()", "uint256[0]",
                                  "uint256[01]", "fixed128x18", "byte", "(uint256", "uint256]", "(uint256,)", ""])
def test_unsupported_types_are_refused(kind: str) -> None:
    with pytest.raises(AbiError):
        encode([kind], [0])
    with pytest.raises(AbiError):
        decode([kind], b"\x00" * 64)


def test_mis_checksummed_address_encodes_as_eth_abi_does_but_is_no_checksum_address() -> None:
    wrong = "0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # first letter's case flipped
    assert encode(["address"], [wrong]) == eth_abi.encode(["address"], [wrong])
    assert not is_checksum_address(wrong)


# ---------------------------------------------------------------------------------- hostile decoding

HUGE = 2**255


@pytest.mark.parametrize(
    ("types", "data", "message"),
    [
        (["uint256"], b"\x00" * 31, "tried to read 32 bytes"),
        (["bytes"], words("20", hex(HUGE)[2:]), "only 0 bytes follow"),
        (["string"], words("20", hex(HUGE)[2:]), "only 0 bytes follow"),
        (["uint256[]"], words("20", hex(HUGE)[2:]), "do not fit"),
        (["bytes[]"], words("20", hex(HUGE)[2:]), "do not fit"),
        (["uint256[][]"], words("20", "1", hex(HUGE)[2:]), "invalid pointer"),
        (["bytes"], words(hex(HUGE)[2:]), "invalid pointer"),
        (["bytes"], words("40"), "invalid pointer"),
        (["bytes"], words("0"), "invalid pointer"),
        (["bytes"], words("20", "3") + b"abc", "padding is cut off"),
        (["bytes"], words("20", "3") + b"abc" + b"\x00" * 28 + b"\x01", "non-empty padding"),
        (["string"], words("20", "2") + b"\xff\xfe" + b"\x00" * 30, "not valid UTF-8"),
        (["uint8"], words("100"), "non-empty padding"),
        (["int8"], words("80"), "non-empty padding"),
        (["address"], words("1" + "ab" * 20), "non-empty padding"),
        (["bool"], words("2"), "bool must be 0 or 1"),
        (["bool"], words("1" + "0" * 61 + "01"), "non-empty padding"),
        (["bytes2"], b"ab" + b"\x00" * 29 + b"\x01", "non-empty padding"),
    ],
)
def test_hostile_data_is_a_decoding_error_where_eth_abi_refuses_too(types: list[str], data: bytes, message: str) -> None:
    ok, _ = oracle_decode(types, data)
    assert not ok
    with pytest.raises(DecodingError, match=message):
        decode(types, data)


def test_aliased_offsets_cannot_blow_up_the_result() -> None:
    # bytes[][][]: each of the three arrays holds 8 pointers to the same next array (the offset 0x100 is
    # right past its 9 words), so 8**3 aliased copies of one 8 KiB value would come out of 9 KiB of data
    array = words("8", *["100"] * 8)
    data = words("20") + array * 3 + words(hex(8192)[2:]) + b"\x01" * 8192
    with pytest.raises(DecodingError, match="aliased"):
        decode(["bytes[][][]"], data)


def test_pointer_check_uses_eth_abis_head_length() -> None:
    # eth_abi counts the static tuple as one head word, so an offset into the tuple's head is accepted
    data = words("1", "0", "40") + b"\x07" * 64
    assert decode(["(uint256,uint256)", "bytes"], data) == ((1, 0), b"\x07" * 64) == eth_abi.decode(
        ["(uint256,uint256)", "bytes"], data
    )


def test_decode_refuses_non_bytes() -> None:
    with pytest.raises(TypeError):
        decode(["uint256"], "00" * 32)  # type: ignore[arg-type]


def test_trailing_bytes_are_ignored_like_eth_abi() -> None:
    data = words("1") + b"\x01\x02"
    assert decode(["uint256"], data) == (1,) == eth_abi.decode(["uint256"], data)


# ------------------------------------------------------------------------------------------ addresses

EIP55 = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", EIP55)
def test_eip55_vectors(address: str) -> None:
    assert to_checksum_address(address.lower()) == address
    assert to_checksum_address(bytes.fromhex(address[2:])) == address
    assert is_checksum_address(address)
    assert to_canonical_address(address) == bytes.fromhex(address[2:])


@pytest.mark.parametrize("value", ["0xzz", "0x" + "ab" * 19, "0x" + "ab" * 21, "", "0x", b"\x01" * 19, 5])
def test_invalid_addresses_raise_value_error_naming_the_value(value: Any) -> None:
    with pytest.raises(ValueError, match="Unknown format"):
        to_checksum_address(value)
    with pytest.raises(ValueError, match="Unknown format"):
        to_canonical_address(value)


def test_non_address_types_raise_type_error() -> None:
    with pytest.raises(TypeError):
        to_checksum_address(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ import cost


def test_import_pulls_in_no_eth_library() -> None:
    script = (
        "import sys, time; t = time.perf_counter(); import fedchain.codec.abi; "
        "print(time.perf_counter() - t); "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'eth_abi', 'eth_utils', 'eth_hash', 'pydantic', 'hexbytes', 'web3'})))"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout.splitlines()
    print(f"import fedchain.codec.abi: {float(out[0]) * 1000:.1f} ms")
    assert out[1:] == [""]

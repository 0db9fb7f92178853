"""The bounded JSON parser: exact measures, every bound refused by name, no recursion."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import tracemalloc
from typing import Any

import eth_account  # noqa: F401 - imported for its effect: py_ecc raises the recursion limit to 100,000
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.codec.blob import DOCUMENT_LIMITS, decode_blob, decode_json_doc
from fedchain.codec.bounded_json import JsonLimits, parse_json, scan_json
from fedchain.errors import BlobFormatError
from tests.codec.hostile import blob_with_tensor_header, deep_array, deep_object, many_empty_tensors

WIDE = JsonLimits(max_bytes=1 << 30, max_depth=10_000, max_members=10**9, max_values=10**9)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
    | st.sampled_from(['"', "\\", "[", "]", "{", "}", ",", ":", '\\"[', "x\"y]"]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4) | st.sampled_from(["[", '"', "{}"]),
                                                                 inner, max_size=5),
    max_leaves=40,
)


def _measure(value: Any, depth: int = 0) -> tuple[int, int, int]:
    """(depth, largest container, values) of a value, computed the obvious recursive way."""
    if isinstance(value, list):
        children = [_measure(v, depth + 1) for v in value]
        own = len(value)
    elif isinstance(value, dict):
        children = [_measure(v, depth + 1) for v in value.values()]
        own = len(value)
    else:
        return depth, 0, 1
    return (
        max([depth + 1] + [c[0] for c in children]),
        max([own] + [c[1] for c in children]),
        1 + sum(c[2] for c in children),
    )


@settings(max_examples=150, deadline=None)
@given(json_values, st.sampled_from([None, 0, 2]), st.sampled_from([(",", ":"), (", ", ": ")]))
def test_scan_measures_exactly_what_json_parses(value: Any, indent: int | None, separators: tuple[str, str]) -> None:
    text = json.dumps(value, indent=indent, separators=separators, ensure_ascii=False).encode("utf-8")

    shape = scan_json(text, WIDE, "doc")

    assert (shape.depth, shape.members, shape.values) == _measure(value)
    assert parse_json(text, WIDE, "doc") == json.loads(text)


@pytest.mark.parametrize(
    ("text", "limits", "message"),
    [
        (b"[" * 5 + b"]" * 5, JsonLimits(100, 4, 100, 100), "nested more than 4 levels deep (limit 4)"),
        (b'{"a":{"b":{"c":{}}}}', JsonLimits(100, 3, 100, 100), "nested more than 3 levels deep (limit 3)"),
        (b"[1,2,3,4]", JsonLimits(100, 4, 3, 100), "array of more than 3 entries (limit 3)"),
        (b'{"a":1,"b":2,"c":3}', JsonLimits(100, 4, 2, 100), "object of more than 2 entries (limit 2)"),
        (b"[[1,2],[3,4]]", JsonLimits(100, 4, 100, 6), "more than 6 JSON values (limit 6)"),
        (b'"' + b"x" * 100 + b'"', JsonLimits(100, 4, 100, 100), "is 102 bytes, over the limit of 100 bytes"),
        (b'["abc', WIDE, "a string opened at byte 1 never ends"),
        (b'["a\\"]', WIDE, "never ends"),
        (b'{"a":1,"a":2}', WIDE, "duplicate key 'a'"),
        (b"[NaN]", WIDE, "NaN is not allowed"),
        (b"[-Infinity]", WIDE, "-Infinity is not allowed"),
        (b'["\xff"]', WIDE, "not valid UTF-8"),
        ('\ufeff[1]'.encode(), WIDE, "byte-order mark"),
        (b"[1,]", WIDE, "not valid JSON"),
        (b"[1]]", WIDE, "not valid JSON"),
        (b"", WIDE, "not valid JSON"),
    ],
)
def test_out_of_bounds_or_invalid_text_is_refused_by_name(text: bytes, limits: JsonLimits, message: str) -> None:
    with pytest.raises(BlobFormatError, match="^doc ") as err:
        parse_json(text, limits, "doc")
    assert message in str(err.value)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"k[{": ["]]]]", "[[[[\\\"[[", '{"a":['], "x": "}"}).encode()

    shape = scan_json(text, JsonLimits(1000, 2, 3, 6), "doc")

    assert (shape.depth, shape.members, shape.values) == (2, 3, 6)


def test_a_string_that_never_ends_is_refused_in_linear_time() -> None:
    text = b'"' + b'\\"' * 1_000_000  # every later quote is escaped: a naive scan restarts at each one

    start = time.perf_counter()
    with pytest.raises(BlobFormatError, match="never ends"):
        scan_json(text, WIDE, "doc")

    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("depth", [200_000])
def test_deep_nesting_is_refused_at_once_under_the_raised_recursion_limit(depth: int) -> None:
    assert sys.getrecursionlimit() >= 100_000  # eth_account's py_ecc raised it: RecursionError is no guard
    for text in (deep_array(depth), deep_object(depth)):
        start = time.perf_counter()
        with pytest.raises(BlobFormatError, match=r"nested more than 32 levels deep \(limit 32\)"):
            parse_json(text, DOCUMENT_LIMITS, "document")
        assert time.perf_counter() - start < 0.5


_SUBPROCESS = textwrap.dedent(
    """
    import json, sys
    import eth_account  # raises the recursion limit to 100,000
    from fedchain.codec.blob import decode_blob, decode_json_doc
    from fedchain.errors import BlobFormatError
    from tests.codec.hostile import blob_with_tensor_header, deep_array, deep_object
    assert sys.getrecursionlimit() >= 100_000
    cases = {
        "tensor header": lambda: decode_blob(blob_with_tensor_header(deep_array(200_000))),
        "tensor header object": lambda: decode_blob(blob_with_tensor_header(deep_object(200_000))),
        "document": lambda: decode_json_doc(b'{"format":"fedchain.evidence/1","included":' + deep_array(200_000) + b"}"),
    }
    out = {}
    for name, case in cases.items():
        try:
            case()
            out[name] = "accepted"
        except BlobFormatError as err:
            out[name] = str(err)
    print(json.dumps(out))
    """
)


def test_deep_nesting_does_not_crash_the_interpreter() -> None:
    # In a child process: before the bounded parser, each of these killed the interpreter (SIGSEGV).
    proc = subprocess.run([sys.executable, "-c", _SUBPROCESS], capture_output=True, text=True, timeout=120)

    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout)
    assert out["tensor header"] == "tensor header is nested more than 3 levels deep (limit 3)"
    assert out["tensor header object"] == "tensor header is nested more than 3 levels deep (limit 3)"
    assert out["document"] == "document is nested more than 32 levels deep (limit 32)"


def test_half_a_million_empty_tensors_are_refused_fast_and_small() -> None:
    blob = blob_with_tensor_header(many_empty_tensors(500_000))
    assert len(blob) > 30_000_000

    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(BlobFormatError, match="tensor header length 3[0-9]{7} is over the limit of 4194304 bytes"):
            decode_blob(blob)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert elapsed < 0.5
    assert peak < 1_000_000  # nothing of the 31 MB header is copied or parsed


def test_a_tensor_header_within_its_byte_bound_is_still_bounded_in_tensors() -> None:
    blob = blob_with_tensor_header(many_empty_tensors(60_000))  # 3.7 MB: under the 4 MiB header bound

    start = time.perf_counter()
    with pytest.raises(BlobFormatError, match=r"object of more than 10000 entries \(limit 10000\)"):
        decode_blob(blob)

    assert time.perf_counter() - start < 2.0


def test_documents_are_bounded_in_entries_and_values() -> None:
    wide = json.dumps({"a": [0] * 100_001}, separators=(",", ":")).encode()
    many = json.dumps({"a": [[0] * 90_000 for _ in range(6)]}, separators=(",", ":")).encode()

    with pytest.raises(BlobFormatError, match=r"array of more than 100000 entries \(limit 100000\)"):
        decode_json_doc(wide)
    with pytest.raises(BlobFormatError, match=r"more than 500000 JSON values \(limit 500000\)"):
        decode_json_doc(many)


@pytest.mark.parametrize("text", [b"[1e400]", b"[-1e999]", b'{"a":' + b"9" * 400 + b".0}"])
def test_a_number_beyond_a_double_is_refused(text: bytes) -> None:
    with pytest.raises(BlobFormatError, match="out of the range of a double"):
        parse_json(text, WIDE, "doc")

"""Hostile blobs and documents thrown at the aggregator's screening and aggregation and at the
auditor's decoders, all in this one process with ``eth_account`` imported (its ``py_ecc`` raises
the recursion limit to 100,000, the limit a real aggregator and auditor run under).

Whatever a participant publishes, :func:`~fedchain.protocol.rounds.aggregate` returns a round
in which that update is rejected (or, when it is in fact a well-formed update of the task's
model, included); whatever an aggregator or a task author publishes, the decoders return a
record or raise the documented error - never a crash, a hang, or any other exception.
"""

from __future__ import annotations

import eth_account  # noqa: F401 - first: its py_ecc raises the recursion limit to 100,000

# isort: split
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save as st_save

from fedchain.codec.blob import BlobHeader, BlobKind, encode_json_doc
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import BlobFormatError, ConfigError, DataSchemaError
from fedchain.fl.records import ClientUpdate, Rejection, RobustConfig, StrategyConfig
from fedchain.ports import UpdateCommitment
from fedchain.protocol.blobs import decode_global, decode_update, encode_update, initial_global, metadata_digest
from fedchain.protocol.evidence import Evidence, IncludedUpdate
from fedchain.protocol.rounds import FetchOutcome, RoundAggregate, aggregate, fetch_committed, structure_problems
from fedchain.protocol.task import TaskDocument
from fedchain.storage.cid import compute_cid
from fedchain.storage.local import LocalStore
from fedchain.types import Address, Cid, Digest, RoundId
from tests.codec.hostile import (
    blob_with_tensor_header,
    deep_array,
    deep_object,
    header_bytes,
    many_empty_tensors,
    raw_blob,
    tensor_section,
)
from tests.protocol.harness import TaskFiles

ROUND = RoundId(5)
BASE_DIGEST = Digest(b"\x42" * 32)
HONEST = (Address("0x" + "11" * 20), Address("0x" + "22" * 20))
HOSTILE = Address("0x" + "33" * 20)
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=3_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _raised_recursion_limit() -> None:
    assert sys.getrecursionlimit() >= 100_000  # RecursionError cannot stand in for a depth bound here


# --- the round every example is played in --------------------------------------------------------
class Round:
    """The task's real model as the round's base, two honest updates, and the strategies to try."""

    def __init__(self, doc: TaskDocument) -> None:
        self.doc = doc
        self.base = decode_global(initial_global(doc.spec(), doc.seed))
        self.shapes = {name: tuple(value.shape) for name, value in self.base.weights.items()}
        rng = np.random.default_rng(5)
        self.honest = [
            committed(ClientUpdate(who, ROUND, 40 + i, {n: rng.normal(0, 0.01, s).astype(np.float32)
                                                        for n, s in self.shapes.items()}, BASE_DIGEST), block=10 + i)
            for i, who in enumerate(HONEST)
        ]
        self.configs = [
            doc.strategy_config(),  # the task's own: FedAvg with the default update-norm bound
            StrategyConfig("fedavg", {"min_updates": 1}),  # no robust rule at all
            StrategyConfig("fedavg", {"min_updates": 1}, (RobustConfig("trimmed_mean", {"beta": 0.2}),)),
        ]


def committed(update: ClientUpdate, *, block: int) -> FetchOutcome:
    """``update`` committed honestly at ``block``."""
    blob = encode_update(update)
    c = UpdateCommitment(ROUND, update.participant, sha256_digest(blob), compute_cid(blob), update.num_samples,
                         metadata_digest(update), block, f"0x{block:064x}", 0)
    return FetchOutcome(c, blob, None, None)


def hostile_outcome(blob: bytes, *, num_samples: int | None = None, honest_digest: bool = True,
                    cid: str | None = None) -> FetchOutcome:
    """The hostile participant's commitment to ``blob``: its true digest (so the bytes reach the
    decoder), its CID, and - when the blob decodes - its true sample count and metadata digest, so
    a well-formed blob reaches the strategy."""
    meta = Digest(b"\x07" * 32)
    samples = 10
    try:
        decoded = decode_update(blob)
        samples = decoded.num_samples
        meta = metadata_digest(decoded)
    except (BlobFormatError, ConfigError):
        pass
    c = UpdateCommitment(
        ROUND, HOSTILE, sha256_digest(blob) if honest_digest else Digest(b"\x01" * 32),
        Cid(cid if cid is not None else compute_cid(blob)), samples if num_samples is None else num_samples,
        meta, 30, "0x" + "ab" * 32, 0,
    )
    return FetchOutcome(c, blob, None, None)


def well_formed(blob: bytes, shapes: dict[str, tuple[int, ...]]) -> bool:
    """Whether ``blob`` is an update of the task's model (float32, its tensors and shapes, finite)."""
    try:
        update = decode_update(blob)
    except (BlobFormatError, ConfigError):
        return False
    tensors = update.tensors
    return (
        update.participant.lower() == HOSTILE.lower() and int(update.round_id) == ROUND
        and bytes(update.base_model_digest) == BASE_DIGEST and set(tensors) == set(shapes)
        and all(t.dtype == np.float32 and tuple(t.shape) == shapes[n] and np.isfinite(t).all() for n, t in tensors.items())
    )


def play(rnd: Round, outcome: FetchOutcome) -> list[RoundAggregate]:
    """The aggregator's verdict on a round with ``outcome`` among honest updates, under each config:
    the hostile update is rejected or (only if well-formed) included, the honest ones stay in, the
    model decodes; no exception escapes."""
    results = []
    assert outcome.data is not None
    for config in rnd.configs:
        result = aggregate(config, rnd.base, ROUND, BASE_DIGEST, [*rnd.honest, outcome], 1)
        rejected = {r.participant for r in result.rejections}
        assert all(isinstance(r, Rejection) and r.rule and isinstance(r.reason, str) for r in result.rejections)
        if HOSTILE in result.included:
            assert well_formed(outcome.data, rnd.shapes), result.rejections
        elif result.model_blob is not None:
            assert HOSTILE in rejected, (result.included, result.rejections)
        if config.robust == ():
            assert set(HONEST) <= set(result.included)
        if result.model_blob is not None:
            model = decode_global(result.model_blob)
            assert all(np.isfinite(v).all() for v in model.weights.values())
            assert structure_problems(model, rnd.shapes, ()) == []
        results.append(result)
    return results


@pytest.fixture(scope="module")
def rnd(task_files: TaskFiles) -> Round:
    return Round(task_files.doc)


# --- generated hostile blobs ---------------------------------------------------------------------
json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20)
hostile_fields = st.sampled_from([
    None, True, -1, 0, 1, 2**63, 2**64, 2**70, 1.5, "", "F32", "F64", "I64", "F16", "BF16", "I32", "U8", "BOOL",
    "f32", [], [0], [2], [1] * 17, [2**40], [-1], [True], [0, 0], [0, 8], [8, 0], [0, 2**64], {}, {"F32": 1},
])


@st.composite
def tensor_sections(draw: st.DrawFn, shapes: dict[str, tuple[int, ...]]) -> bytes:
    """A safetensors section: the model's tensors with hostile contents, hand-written entries with
    hostile field values, any JSON as the header, or bytes."""
    variant = draw(st.sampled_from(["contents", "contents", "contents", "entries", "json", "bytes"]))
    if variant == "contents":
        tensors: dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            what = draw(st.sampled_from(["ok", "ok", "nan", "inf", "huge", "f64", "i64", "shape", "drop", "empty"]))
            value = np.full(shape, draw(st.floats(-1.0, 1.0, width=32)), np.float32)
            if what == "nan" and value.size:
                value.flat[draw(st.integers(0, value.size - 1))] = np.nan
            elif what == "inf" and value.size:
                value.flat[0] = draw(st.sampled_from([np.inf, -np.inf]))
            elif what == "huge":
                value[...] = draw(st.sampled_from([1e30, -3.4e38, 3.4028235e38]))
            elif what == "f64":
                value = value.astype(np.float64)
            elif what == "i64":
                value = value.astype(np.int64)
            elif what == "shape":
                value = np.zeros((*shape, 2), np.float32)
            elif what == "empty":
                value = np.zeros((0,), np.float32)
            if what != "drop":
                tensors[name] = value
        for extra in draw(st.lists(st.sampled_from(["extra", "server/x", "control/w", "a" * 300]), max_size=2)):
            tensors[extra] = np.zeros(2, np.float32)
        metadata = draw(st.none() | st.just({"k": "v"}))
        return bytes(st_save(tensors, metadata=metadata))
    if variant == "entries":
        entries = draw(st.dictionaries(
            st.text(max_size=4) | st.sampled_from(list(shapes) + ["__metadata__"]),
            st.fixed_dictionaries({"dtype": hostile_fields, "shape": hostile_fields, "data_offsets": hostile_fields})
            | hostile_fields, max_size=4))
        head = json.dumps(entries, separators=(",", ":")).encode()
        return tensor_section(head, draw(st.binary(max_size=64)), length=draw(st.none() | st.integers(0, 2**64 - 1)))
    if variant == "json":
        return tensor_section(json.dumps(draw(json_values)).encode(), draw(st.binary(max_size=16)))
    return draw(st.binary(max_size=96))


@st.composite
def outer_headers(draw: st.DrawFn) -> bytes:
    """The blob's outer header: the round's own (with hostile extras or sample counts), one with a
    field that does not match the round, hostile JSON, or bytes."""
    variant = draw(st.sampled_from(["valid", "valid", "valid", "mismatch", "json", "bytes"]))
    if variant == "bytes":
        return draw(st.binary(max_size=64))
    extras = {"update_kind": draw(st.sampled_from(["delta", "delta", "weights", "normalized_delta", "bogus"]))}
    if draw(st.booleans()):
        extras["x." + draw(st.sampled_from(["loss", "tau", "norm"]))] = draw(st.sampled_from(
            ["1", "0.5", '"s"', "1e400", "NaN", "[1]", '{"a":1}', "[" * 2000 + "]" * 2000, "true", "", "1 2"]))
    header = {
        "base_model_digest": "0x" + BASE_DIGEST.hex(), "extras": extras, "format": 1, "kind": "update",
        # sample counts up to 2^62: a count near 2^63 would push the round's total past the global blob's
        # 64-bit field, and the round would close without a model (rounds.py does not bound the total)
        "num_samples": draw(st.sampled_from([1, 40, 10**12, 2**62])), "participant": HOSTILE, "round": int(ROUND),
    }
    if variant == "mismatch":
        header[draw(st.sampled_from(sorted(header)))] = draw(hostile_fields | json_values)
    elif variant == "json":
        return json.dumps(draw(json_values)).encode()
    return header_bytes(header)


@st.composite
def hostile_blobs(draw: st.DrawFn, shapes: dict[str, tuple[int, ...]]) -> bytes:
    head = draw(outer_headers())
    body = draw(tensor_sections(shapes))
    head_len = draw(st.none() | st.none() | st.integers(0, 2**32 - 1))
    blob = raw_blob(head, body, head_len=head_len) if draw(st.integers(0, 9)) else draw(st.binary(max_size=32))
    edit = draw(st.sampled_from(["none", "none", "none", "flip", "cut", "append"]))
    if edit == "flip" and blob:
        at = draw(st.integers(0, len(blob) - 1))
        blob = blob[:at] + bytes([blob[at] ^ draw(st.integers(1, 255))]) + blob[at + 1:]
    elif edit == "cut":
        blob = blob[: draw(st.integers(0, len(blob)))]
    elif edit == "append":
        blob += draw(st.binary(min_size=1, max_size=8))
    return blob


@FAST
@given(data=st.data())
def test_the_aggregator_rejects_or_includes_every_generated_blob_and_never_crashes(rnd: Round, data: st.DataObject) -> None:
    blob = data.draw(hostile_blobs(rnd.shapes))
    play(rnd, hostile_outcome(blob, honest_digest=data.draw(st.integers(0, 9)) > 0))


@pytest.mark.slow
@SLOW
@given(data=st.data())
def test_the_aggregator_survives_many_more_generated_blobs(rnd: Round, data: st.DataObject) -> None:
    blob = data.draw(hostile_blobs(rnd.shapes))
    play(rnd, hostile_outcome(blob, honest_digest=data.draw(st.integers(0, 9)) > 0))


@FAST
@given(data=st.data())
def test_the_auditor_decodes_every_generated_model_blob_or_refuses_it(rnd: Round, data: st.DataObject) -> None:
    blob = data.draw(hostile_blobs(rnd.shapes))
    if data.draw(st.booleans()):  # as a global model
        blob = blob.replace(b'"kind":"update"', b'"kind":"global"').replace(b'"participant":"' + HOSTILE.encode() + b'"',
                                                                             b'"participant":""')
    try:
        model = decode_global(blob)
    except BlobFormatError:
        return
    assert isinstance(structure_problems(model, rnd.shapes, ("server/m/",)), list)


# --- hand-built worst cases ----------------------------------------------------------------------
def _valid_head(**fields: Any) -> bytes:
    header = BlobHeader(kind=BlobKind.UPDATE, round=int(ROUND), participant=HOSTILE, base_model_digest=BASE_DIGEST,
                        num_samples=10, extras={"update_kind": "delta"})
    return header_bytes({**header.to_json(), **fields})


def _model_section(shapes: dict[str, tuple[int, ...]], fill: float = 0.5, dtype: Any = np.float32) -> bytes:
    return bytes(st_save({n: np.full(s, fill, dtype) for n, s in shapes.items()}))


def _worst_cases(shapes: dict[str, tuple[int, ...]]) -> dict[str, bytes]:
    head = _valid_head()
    section = _model_section(shapes)
    entry = b'{"w":{"dtype":"F32","shape":[%d],"data_offsets":[0,%d]}}'
    cases = {
        "tensor header nested 200,000 deep (array)": blob_with_tensor_header(deep_array(200_000)),
        "tensor header nested 200,000 deep (object)": blob_with_tensor_header(deep_object(200_000)),
        "500,000 zero-size tensors": blob_with_tensor_header(many_empty_tensors(500_000)),
        "60,000 zero-size tensors within 4 MiB": blob_with_tensor_header(many_empty_tensors(60_000)),
        "a 2^40-element tensor with a lying offset": blob_with_tensor_header(entry % (2**40, 2**42)),
        "a 2^40-element tensor with honest offsets": blob_with_tensor_header(entry % (2**40, 2**42), b"\x00" * 64),
        "header length past the end": raw_blob(head, section, head_len=len(head) + len(section) + 1),
        "header length 2^32-1": raw_blob(head, section, head_len=2**32 - 1),
        "tensor header length past the end": raw_blob(head, tensor_section(b"{}", length=10**6)),
        "tensor header length 2^64-1": raw_blob(head, tensor_section(b"{}", length=2**64 - 1)),
        "NaN in a weight": raw_blob(head, _model_section(shapes, float("nan"))),
        "infinity in a weight": raw_blob(head, _model_section(shapes, float("inf"))),
        "float64 weights": raw_blob(head, _model_section(shapes, 0.5, np.float64)),
        "int64 weights": raw_blob(head, _model_section(shapes, 1, np.int64)),
        "float16 weights": raw_blob(head, _model_section(shapes, 0.5, np.float16)),
        "every value 1e30": raw_blob(head, _model_section(shapes, 1e30)),
        "every value the largest float32": raw_blob(head, _model_section(shapes, 3.4028235e38)),
        "10^12 samples claimed": raw_blob(_valid_head(num_samples=10**12), section),
        "non-UTF-8 tensor header": blob_with_tensor_header(b'{"\xff\xfe":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'),
        "non-ASCII outer header": raw_blob(_valid_head(participant="0x\u00e9"), section),
        "duplicate key in the outer header": raw_blob(head[:-1] + b',"round":6}', section),
        "duplicate tensor in the tensor header": blob_with_tensor_header(
            b'{"w":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"w":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'),
        "extra nested 2,000 deep": raw_blob(_valid_head(extras={"update_kind": "delta", "x.loss": "[" * 2000 + "]" * 2000}),
                                            section),
        "extra 1e400": raw_blob(_valid_head(extras={"update_kind": "delta", "x.loss": "1e400"}), section),
        "safetensors metadata": raw_blob(head, bytes(st_save({n: np.zeros(s, np.float32) for n, s in shapes.items()},
                                                             metadata={"a": "b"}))),
        "empty": b"",
        "magic only": b"FEDCBLOB",
    }
    valid = raw_blob(head, section)
    for i in range(1, 8):
        cases[f"truncated at {i}/8"] = valid[: len(valid) * i // 8]
    return cases


@pytest.fixture(scope="module")
def worst_cases(rnd: Round) -> dict[str, bytes]:
    return _worst_cases(rnd.shapes)


def test_every_worst_case_blob_is_rejected_fast_under_every_strategy(rnd: Round, worst_cases: dict[str, bytes]) -> None:
    for name, blob in worst_cases.items():
        start = time.perf_counter()
        results = play(rnd, hostile_outcome(blob))
        elapsed = time.perf_counter() - start

        if name != "10^12 samples claimed":  # a well-formed update: the contract bounds the count it commits
            assert HOSTILE not in results[0].included, name  # the task's own rules: the update-norm bound
        assert all(set(HONEST) <= set(r.included) for r in results), name
        assert elapsed < 2.0, (name, elapsed)


def test_worst_cases_through_the_store_and_the_fetch(rnd: Round, worst_cases: dict[str, bytes], tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "blobs")
    outcomes = []
    for name, blob in worst_cases.items():
        cid = store.put(blob)
        fetched = fetch_committed(store, hostile_outcome(blob, cid=cid).commitment, retry_window_s=0)
        assert fetched.data == blob, name
        outcomes.append(fetched)
    for text in ["this-is-not-a-cid", "", "b" + "a" * 100_000, "bafy\u00e9", "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"]:
        fetched = fetch_committed(store, replace(outcomes[0].commitment, cid=Cid(text)), retry_window_s=0)
        assert fetched.data is None and fetched.error_rule == "invalid_cid", text
        result = aggregate(rnd.doc.strategy_config(), rnd.base, ROUND, BASE_DIGEST, [*rnd.honest, fetched], 1)
        assert [(r.participant, r.rule) for r in result.rejections] == [(HOSTILE, "invalid_cid")]
        assert result.included == HONEST


# --- documents for the auditor -------------------------------------------------------------------
def _evidence() -> Evidence:
    return Evidence(
        round_id=ROUND, base_model_digest=BASE_DIGEST, model_digest=Digest(b"\x01" * 32),
        aggregation_digest=Digest(b"\x02" * 32), merkle_root=Digest(b"\x03" * 32),
        included=tuple(IncludedUpdate(a, Digest(b"\x04" * 32), Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregkymsck7ebd2mdbnm4"),
                                      40, Digest(b"\x05" * 32)) for a in HONEST),
        rejected=(Rejection(HOSTILE, "blob_format", "not a blob"),),
    )


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        out.append(prefix + (key,))
        out += _paths(value, prefix + (key,))
    return out


DEEP = object()  # stands for a value nested deeper than any document may be
# What TaskDocument.from_bytes documents: BlobFormatError for the JSON, a ConfigError for the task,
# and the error of the typed spec a field fails to build (DataSchemaError for the data schema).
TASK_ERRORS = (BlobFormatError, ConfigError, DataSchemaError)


@st.composite
def hostile_documents(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """A valid document with one field (at any depth) replaced, dropped or duplicated, written
    canonically or not, perhaps cut short or with bytes that are not UTF-8."""
    doc = json.loads(json.dumps(valid))
    path = draw(st.sampled_from(_paths(doc)))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "replace", "drop", "keep"]))
    value: Any = draw(hostile_fields | json_values | st.just(DEEP))
    if action == "replace":
        parent[path[-1]] = "__DEEP__" if value is DEEP else value
    elif action == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    depth = draw(st.sampled_from([33, 5_000, 200_000]))
    try:
        text = encode_json_doc(doc)
    except BlobFormatError:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    text = text.replace(b'"__DEEP__"', deep_array(depth))
    encoding = draw(st.sampled_from(["canonical", "canonical", "spaced", "duplicate", "cut", "not-utf8"]))
    if encoding == "spaced":
        text = json.dumps(json.loads(text) if depth < 1000 else doc, indent=1).encode()
    elif encoding == "duplicate":
        text = text[:-1] + b',"format":"x"}'
    elif encoding == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif encoding == "not-utf8":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + b"\xff\xc0" + text[at:]
    return text


def _decodes_or_refuses(decode: Callable[[bytes], Any], text: bytes, errors: tuple[type[Exception], ...]) -> None:
    start = time.perf_counter()
    try:
        decode(text)
    except errors:
        pass
    assert time.perf_counter() - start < 2.0


@FAST
@given(data=st.data())
def test_the_auditor_reads_or_refuses_every_generated_evidence_document(data: st.DataObject) -> None:
    text = data.draw(hostile_documents(_evidence().to_json()))
    _decodes_or_refuses(Evidence.from_bytes, text, (BlobFormatError,))


@FAST
@given(data=st.data())
def test_the_auditor_reads_or_refuses_every_generated_task_document(rnd: Round, data: st.DataObject) -> None:
    text = data.draw(hostile_documents(rnd.doc.to_json()))
    _decodes_or_refuses(TaskDocument.from_bytes, text, TASK_ERRORS)


@pytest.mark.slow
@SLOW
@given(data=st.data())
def test_the_auditor_survives_many_more_generated_documents(rnd: Round, data: st.DataObject) -> None:
    _decodes_or_refuses(Evidence.from_bytes, data.draw(hostile_documents(_evidence().to_json())), (BlobFormatError,))
    _decodes_or_refuses(TaskDocument.from_bytes, data.draw(hostile_documents(rnd.doc.to_json())), TASK_ERRORS)


def test_worst_case_documents_are_refused_by_name(rnd: Round) -> None:
    evidence = _evidence().to_bytes()
    deep = b'{"format":"fedchain.evidence/1","included":' + deep_array(200_000) + b"}"
    cases: dict[bytes, str] = {
        deep: "nested more than 32 levels deep",
        b'{"format":"fedchain.task/1","extras":' + deep_object(200_000) + b"}": "nested more than 32 levels deep",
        evidence[:-1] + b',"round":1}': "duplicate key 'round'",
        b"\xff" + evidence: "not valid UTF-8",
        evidence[: len(evidence) // 2]: "not valid JSON",
        evidence.replace(b'"round":5', b'"round":5.0'): "round is a number, expected",  # 5.0: not an integer
        evidence.replace(b'"round":5', b'"round":1e400'): "out of the range of a double",
        evidence.replace(b'"num_samples":40', b'"num_samples":-40'): "num_samples -40 is not",
        evidence.replace(b'"merkle_root":"0x', b'"merkle_root":"0y'): "merkle_root",
        evidence.replace(b'"reason":"not a blob"', b'"reason":7'): "reason is a number, expected a string",
        encode_json_doc({**_evidence().to_json(), "included": [1]}): "included[0] is a number, not an object",
        encode_json_doc({**_evidence().to_json(), "extra": 1}): "unknown field(s) extra",
        encode_json_doc({k: v for k, v in _evidence().to_json().items() if k != "rejected"}): "lacks rejected",
        encode_json_doc({**_evidence().to_json(), "included": [{}] * 100_001}): "more than 100000 entries",
    }
    for text, message in cases.items():
        start = time.perf_counter()
        with pytest.raises(BlobFormatError) as err:
            if text.startswith(b'{"format":"fedchain.task/1"'):
                TaskDocument.from_bytes(text)
            else:
                Evidence.from_bytes(text)
        assert message in str(err.value), (message, str(err.value)[:300])
        assert time.perf_counter() - start < 2.0, message
    assert Evidence.from_bytes(evidence) == _evidence()


def test_every_structural_bound_is_refused_without_a_deep_parse() -> None:
    # 200,000 levels in 400 KB: refused before json.loads (whose C recursion the raised limit no
    # longer stops) or safetensors (which parses the header again in Rust) ever sees it
    for blob in (blob_with_tensor_header(deep_array(200_000)), raw_blob(b"[" * 30_000, b"")):
        with pytest.raises(BlobFormatError, match="nested more than"):
            decode_global(blob)

"""Hostile evidence, task documents, model blobs and CIDs never crash the audit: each becomes a
finding that names whoever published it (in one process with web3 and eth_account imported, so
the recursion limit is the one a real audit runs under)."""

from __future__ import annotations

import json
import random
import struct
import sys
import time
from collections.abc import Iterator
from typing import Any

import eth_account  # noqa: F401 - imported for its effect on the recursion limit (py_ecc raises it)
import numpy as np

from fedchain.audit.findings import AuditFinding
from fedchain.codec.blob import encode_json_doc
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import ExitCode
from fedchain.fl.records import ClientUpdate
from fedchain.protocol.blobs import encode_update
from fedchain.protocol.rounds import inclusion_root
from fedchain.storage.cid import compute_cid
from fedchain.storage.ipfs import IpfsStore
from fedchain.types import Cid, RoundId
from tests.protocol.harness import Fed

JUNK_UPDATE = b"junk, not an update blob"


def _junk_round_open(fed: Fed) -> RoundId:
    """Open a round on the current model without fetching it (the base of the first round, or the
    model of the last finalised one)."""
    latest = fed.reader.latest_round_id()
    finalized = [fed.reader.round(RoundId(r)) for r in range(1, latest + 1)]
    finalized = [r for r in finalized if r.model_cid is not None]
    if not finalized:
        base = fed.reader.round(RoundId(1)) if latest else None
        if base is None:
            return fed.open_round()
        report = fed.aggregator.ledger.open_round(base.base_model_digest, base.base_model_cid, 600, 2)
    else:
        last = finalized[-1]
        assert last.model_cid is not None
        report = fed.aggregator.ledger.open_round(last.model_digest, last.model_cid, 600, 2)
    return RoundId(int(report.round_id or latest + 1))


def _junk_round(fed: Fed) -> RoundId:
    """A round on the current model (opened without fetching it) in which every participant
    commits the same junk (stored, digest correct)."""
    rid = _junk_round_open(fed)
    cid = fed.store.put(JUNK_UPDATE)
    for i, p in enumerate(fed.participants):
        p.ledger.commit_update(rid, sha256_digest(JUNK_UPDATE), cid, fed.clients[i].num_samples, b"\x07" * 32)
    return rid


def _finalize_with(fed: Fed, rid: RoundId, *, evidence: bytes | None = None, evidence_cid: str | None = None,
                   model: bytes | None = None, model_cid: str | None = None) -> None:
    """Finalise ``rid`` claiming two included updates, with the given evidence and model bytes (or
    CIDs recorded as they are); by default the round's base model is republished as the model."""
    rnd = fed.reader.round(rid)
    commitments = fed.reader.commitments(rid)
    model_bytes = model if model is not None else fed.store.get(rnd.base_model_cid)
    ev = evidence if evidence is not None else b"{}"
    fed.aggregator.ledger.finalize_round(
        rid, sha256_digest(model_bytes), Cid(model_cid or fed.store.put(model_bytes)),
        inclusion_root(commitments, [c.participant for c in commitments[:2]]), fed.doc.strategy_digest(),
        sha256_digest(ev), Cid(evidence_cid or fed.store.put(ev)), 2)


def _valid_evidence_json(fed: Fed, rid: RoundId) -> dict[str, Any]:
    commitments = fed.reader.commitments(rid)
    return {
        "format": "fedchain.evidence/1", "round": int(rid),
        "base_model_digest": "0x" + bytes(fed.reader.round(rid).base_model_digest).hex(),
        "model_digest": "0x" + "11" * 32, "aggregation_digest": "0x" + bytes(fed.doc.strategy_digest()).hex(),
        "merkle_root": "0x" + "22" * 32,
        "included": [{"participant": c.participant, "update_digest": "0x" + bytes(c.update_digest).hex(), "cid": c.cid,
                      "num_samples": c.num_samples, "leaf": "0x" + "33" * 32} for c in commitments[:2]],
        "rejected": [{"participant": commitments[2].participant, "rule": "blob_format", "reason": "x"}],
    }


def _hostile_values(rng: random.Random) -> Iterator[Any]:
    """JSON values of every shape a document field should not have."""
    yield from (None, True, -1, 0, 2**70, -(2**70), 1e308, "", "0x", "0x" + "zz" * 32, "x" * 10_000, [], {}, [[[]]],
                {"a": {"b": {"c": []}}}, [None] * 50, "\u0000\ud7ff", rng.random())


def _mutations(doc: dict[str, Any], rng: random.Random, count: int) -> Iterator[dict[str, Any]]:
    """``count`` copies of ``doc``, each with one field (at any depth) dropped or replaced by a hostile value."""
    values = list(_hostile_values(rng))

    def paths(node: Any, prefix: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        if isinstance(node, dict):
            for k, v in node.items():
                yield prefix + (k,)
                yield from paths(v, prefix + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield prefix + (i,)
                yield from paths(v, prefix + (i,))

    every = list(paths(doc, ()))
    for _ in range(count):
        mutated = json.loads(json.dumps(doc))
        path = rng.choice(every)
        parent = mutated
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.2:
            del parent[path[-1]]
        else:
            parent[path[-1]] = rng.choice(values)
        yield mutated


def _no_anonymous_failure(findings: tuple[AuditFinding, ...]) -> None:
    assert all(f.kind.value != "replay_failed" or f.responsible.value != "infrastructure" for f in findings), findings


def test_hostile_evidence_documents_are_findings_against_the_aggregator(fed: Fed) -> None:
    rng = random.Random(9)
    first = _junk_round(fed)
    documents: list[bytes] = [
        b"\xff\xfe not even text",
        b"[" * 5_000 + b"]" * 5_000,
        b'{"format": "fedchain.evidence/1"}',
        json.dumps(_valid_evidence_json(fed, first)).encode() + b" trailing",
    ]
    documents += [encode_json_doc(m) for m in _mutations(_valid_evidence_json(fed, first), rng, 12)]
    _finalize_with(fed, first, evidence=documents[0])
    rounds = {int(first): documents[0]}
    for doc in documents[1:]:
        rid = _junk_round(fed)
        _finalize_with(fed, rid, evidence=doc)
        rounds[int(rid)] = doc
    odd_cid = _junk_round(fed)
    _finalize_with(fed, odd_cid, evidence_cid="this-is-not-a-cid")

    report = fed.auditor().audit()

    assert report.rounds_checked == tuple(range(1, len(documents) + 2))
    _no_anonymous_failure(report.findings)
    aggregator = fed.env.accounts.aggregator.address
    for rid in range(1, len(documents) + 2):
        evidence = [f for f in report.findings if f.round == rid and f.kind.value.startswith("evidence_")]
        assert evidence, (rid, rounds.get(rid, b"")[:200], [f.kind.value for f in report.findings if f.round == rid])
        assert {(f.responsible.value, f.responsible_address) for f in evidence} == {("aggregator", aggregator)}
        junk = [f for f in report.findings if f.round == rid and f.kind.value == "blob_format"]
        assert len(junk) == 3 and {f.responsible.value for f in junk} == {"participant"}, rid
    assert any("'this-is-not-a-cid'" in f.detail for f in report.findings
               if f.round == int(odd_cid) and f.kind.value == "evidence_missing")
    assert report.exit_code == ExitCode.AUDIT_FINDINGS


def test_hostile_task_documents_are_findings_against_governance(fed: Fed) -> None:
    rng = random.Random(10)
    doc = fed.doc
    valid = doc.to_json()
    hostile = [b"", b"\x00" * 64, b"[" * 5_000 + b"]" * 5_000, b'{"format": "fedchain.task/1"}']
    hostile += [encode_json_doc(m) for m in _mutations(valid, rng, 16)]
    cids = [fed.store.put(h) for h in hostile] + ["this-is-not-a-cid"]
    for cid in cids:
        fed.admin.configure_task(doc.model_spec_digest(), doc.strategy_digest(), doc.data_schema_digest(), Cid(cid), 86_400)

    report = fed.auditor().audit()

    _no_anonymous_failure(report.findings)
    admin = fed.env.accounts.admin.address
    by_version = {int(f.detail.split()[1][1:]): f for f in report.findings if f.kind.value.startswith("task_config_")}
    # a mutation may leave the document valid and matching (an extra 'extras' key, say): then it is no finding
    flagged = set(by_version)
    assert flagged <= set(range(2, len(cids) + 2)) and len(flagged) >= len(cids) - 4, sorted(flagged)
    assert {2, 3, 4, 5, len(cids) + 1} <= flagged
    assert {(f.round, f.responsible.value, f.responsible_address) for f in by_version.values()} == {(0, "governance", admin)}
    odd = by_version[len(cids) + 1]
    assert "'this-is-not-a-cid'" in odd.detail and odd.kind.value == "task_config_missing"


def test_hostile_model_blob_is_a_finding_against_the_aggregator(fed: Fed) -> None:
    rid = _junk_round(fed)
    _finalize_with(fed, rid, model=b"\x00" * 4096)
    second = _junk_round(fed)
    _finalize_with(fed, second, model_cid="this-is-not-a-cid")

    report = fed.auditor().audit()

    _no_anonymous_failure(report.findings)
    model_findings = {(f.round, f.kind.value) for f in report.findings if f.kind.value.startswith("model_")}
    assert (int(rid), "model_malformed") in model_findings
    assert (int(second), "model_missing") in model_findings
    assert {f.responsible.value for f in report.findings if f.kind.value.startswith("model_")} == {"aggregator"}


def test_recursion_limit_is_the_one_web3_sets() -> None:
    # the hostile-input tests above run under it: py_ecc raises it so far that deep JSON would
    # overflow the C stack instead of raising RecursionError
    assert sys.getrecursionlimit() >= 10_000


def test_unavailable_blobs_are_fetched_concurrently(fed: Fed, ipfs_api_url: str) -> None:
    rid = fed.open_round()
    for i, p in enumerate(fed.participants):
        never = f"never stored {i}".encode()
        p.ledger.commit_update(rid, sha256_digest(never), compute_cid(never), fed.clients[i].num_samples, b"\x07" * 32)
    fed.aggregator.ledger.close_round(rid, "no blob is available")
    timeout = 2.0
    store = IpfsStore(ipfs_api_url, cat_timeout_s=timeout, retries=0)
    from fedchain.audit.replay import Auditor

    start = time.perf_counter()
    report = Auditor(fed.reader, store).audit()
    elapsed = time.perf_counter() - start

    assert [f.kind.value for f in report.findings] == ["blob_missing"] * 3
    assert {(f.responsible.value, f.severity.value) for f in report.findings} == {("participant", "handled")}
    assert elapsed < 2 * timeout, f"3 unavailable blobs took {elapsed:.1f}s with a {timeout}s store timeout each"


def test_a_rounds_blobs_get_one_overall_deadline(fed: Fed, ipfs_api_url: str) -> None:
    rid = fed.open_round()
    for i, p in enumerate(fed.participants):
        never = f"never stored either {i}".encode()
        p.ledger.commit_update(rid, sha256_digest(never), compute_cid(never), fed.clients[i].num_samples, b"\x07" * 32)
    fed.aggregator.ledger.close_round(rid, "no blob is available")
    store = IpfsStore(ipfs_api_url, cat_timeout_s=5.0, retries=0)
    from fedchain.audit.replay import Auditor

    start = time.perf_counter()
    report = Auditor(fed.reader, store, fetch_deadline_s=0.5).audit()
    elapsed = time.perf_counter() - start

    assert elapsed < 2.5
    missing = [f for f in report.findings if f.kind.value == "blob_missing"]
    assert len(missing) == 3 and all("deadline of 0.5s" in f.detail for f in missing)


def _hostile_updates(good: bytes, rng: random.Random) -> list[bytes]:
    """Update blobs built from an honest one: truncated, with a mutated header or tensor header,
    with 20,000 zero-size tensors, with a header length past the end, flipped bytes, random bytes."""
    (head_len,) = struct.unpack(">I", good[8:12])
    head = json.loads(good[12:12 + head_len])
    body = good[12 + head_len:]
    (n,) = struct.unpack("<Q", body[:8])
    meta = json.loads(body[8:8 + n])
    data = body[8 + n:]

    def blob(header: Any, tensors: Any = None, payload: bytes | None = None) -> bytes:
        hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        mb = json.dumps(meta if tensors is None else tensors, separators=(",", ":")).encode()
        tail = data if payload is None else payload
        return b"FEDCBLOB" + struct.pack(">I", len(hb)) + hb + struct.pack("<Q", len(mb)) + mb + tail

    out = [good[:k] for k in (0, 7, 12, 12 + head_len // 2, 12 + head_len + 4, len(good) - 1)]
    out += [blob(m) for m in _mutations(head, rng, 8)]
    out += [blob(head, m) for m in _mutations(meta, rng, 8)]
    out.append(blob(head, {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(20_000)}, b""))
    out.append(b"FEDCBLOB" + struct.pack(">I", 2**31) + b"{}")
    for _ in range(4):
        flipped = bytearray(good)
        for _ in range(8):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        out.append(bytes(flipped))
    out.append(rng.randbytes(4096))
    return out


def test_hostile_update_blobs_are_findings_against_their_committers(fed: Fed) -> None:
    from tests.audit.test_audit import _honest_blob

    rng = random.Random(11)
    first = fed.open_round()
    blobs = _hostile_updates(_honest_blob(fed, 2, first), rng)
    committed: dict[tuple[int, str], bytes] = {}
    rid = first
    for start in range(0, len(blobs), 3):
        if start:
            rid = _junk_round_open(fed)
        for i, p in enumerate(fed.participants):
            data = blobs[(start + i) % len(blobs)]
            p.ledger.commit_update(rid, sha256_digest(data), fed.store.put(data), fed.clients[i].num_samples, b"\x07" * 32)
            committed[(int(rid), p.address)] = data
        fed.aggregator.ledger.close_round(rid, "hostile updates only")

    report = fed.auditor().audit()

    _no_anonymous_failure(report.findings)
    assert {f.responsible.value for f in report.findings} == {"participant"}, \
        [(f.round, f.kind.value, f.detail) for f in report.findings if f.responsible.value != "participant"]
    blamed = {(f.round, f.responsible_address) for f in report.findings}
    assert set(committed) <= blamed, sorted(set(committed) - blamed)
    assert report.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT


DEPTH = 200_000


def _nested(depth: int = DEPTH) -> bytes:
    return b"[" * depth + b"]" * depth


def test_deeply_nested_evidence_and_task_documents_are_findings_not_a_crash(fed: Fed) -> None:
    rid = _junk_round(fed)
    _finalize_with(fed, rid, evidence=_nested())
    doc = fed.doc
    fed.admin.configure_task(doc.model_spec_digest(), doc.strategy_digest(), doc.data_schema_digest(),
                             fed.store.put(_nested()), 86_400)

    report = fed.auditor().audit()

    assert [(f.round, f.responsible.value) for f in report.findings if f.kind.value == "evidence_malformed"] == [
        (int(rid), "aggregator")
    ]
    assert [(f.round, f.responsible.value) for f in report.findings if f.kind.value == "task_config_malformed"] == [
        (0, "governance")
    ]


def test_update_blobs_with_deeply_nested_headers_are_findings_against_their_committers(fed: Fed) -> None:
    rid = fed.open_round()
    header = b"[" * 30_000 + b"]" * 30_000  # within the 64 KiB header cap
    valid = encode_update(ClientUpdate(fed.participants[1].address, rid, fed.clients[1].num_samples,
                                       {"w": np.zeros(1, dtype=np.float32)}, fed.reader.round(rid).base_model_digest))
    (head_len,) = struct.unpack(">I", valid[8:12])
    blobs = [
        b"FEDCBLOB" + struct.pack(">I", len(header)) + header,
        valid[:12 + head_len] + struct.pack("<Q", 2 * DEPTH) + _nested(),  # a valid header, then 400 KB of nesting
        JUNK_UPDATE,
    ]
    for i, (p, data) in enumerate(zip(fed.participants, blobs, strict=True)):
        p.ledger.commit_update(rid, sha256_digest(data), fed.store.put(data), fed.clients[i].num_samples, b"\x07" * 32)
    fed.aggregator.ledger.close_round(rid, "hostile updates only")

    report = fed.auditor().audit()

    assert sorted((f.kind.value, f.responsible_address) for f in report.findings) == sorted(
        ("blob_format", p.address) for p in fed.participants
    )

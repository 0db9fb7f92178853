"""Screening a round's commitments: a committed string that is no CID and a copied update are
rejections of that update, reproduced by the auditor - never an abort, never a free ride.

The pure tests build commitments and blobs by hand; the last one plays the copy attack on the
real devnet and IPFS node."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fedchain.codec.blob import BlobHeader, BlobKind, encode_blob
from fedchain.codec.canonical import sha256_digest
from fedchain.codec.cid import cid_problem
from fedchain.errors import AggregationError, StorageError
from fedchain.fl.records import ClientUpdate, StrategyConfig, UpdateKind
from fedchain.ports import UpdateCommitment
from fedchain.protocol.blobs import GlobalModel, decode_update, encode_update, metadata_digest
from fedchain.protocol.rounds import (
    RULE_DUPLICATE_UPDATE,
    RULE_INVALID_CID,
    SCREEN_RULES,
    FetchOutcome,
    aggregate,
    aggregate_screened,
    fetch_committed,
    screen,
    update_payload_digest,
)
from fedchain.storage.cid import compute_cid
from fedchain.storage.local import LocalStore
from fedchain.types import ZERO_DIGEST, Address, Cid, Digest, RoundId
from tests.protocol.harness import Fed

ROUND = RoundId(3)
BASE_DIGEST = Digest(b"\x42" * 32)
BASE = GlobalModel(RoundId(2), ZERO_DIGEST, {"w": np.zeros(3, np.float32)}, {}, 30)
FEDAVG = StrategyConfig("fedavg", {"min_updates": 1})


def addr(i: int) -> Address:
    return Address(f"0x{i:040x}")


def update(who: Address, values: list[float], n: int = 10, **extras: float) -> ClientUpdate:
    return ClientUpdate(who, ROUND, n, {"w": np.array(values, np.float32)}, BASE_DIGEST, extras=extras)


def committed(u: ClientUpdate, block: int, log: int = 0, *, cid: str | None = None,
              meta: bytes | None = None) -> FetchOutcome:
    """``u`` committed at (block, log) with its honest digest, CID and metadata digest unless told otherwise."""
    blob = encode_update(u)
    c = UpdateCommitment(ROUND, u.participant, sha256_digest(blob), Cid(cid or compute_cid(blob)), u.num_samples,
                         Digest(meta if meta is not None else metadata_digest(u)), block, f"0x{block:064x}", log)
    return FetchOutcome(c, blob, None, None)


def copy_of(victim: ClientUpdate, copier: Address, n: int = 7) -> ClientUpdate:
    """What a copier commits: the victim's tensors under its own header."""
    return replace(victim, participant=copier, num_samples=n)


def rejected(outcomes: list[FetchOutcome]) -> list[tuple[Address, str]]:
    return [(r.participant, r.rule) for r in screen(outcomes, ROUND, BASE_DIGEST).rejections]


# --- invalid_cid ----------------------------------------------------------------------------------

NOT_CIDS = [
    "this-is-not-a-cid",
    "",
    "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",  # CIDv0
    "BAFKREIGH2AKISCAILDCQABSYG3DFR6CHU3FGPREGKYMSCK7EBD2MDBNM7E",  # upper case
    "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregkymsck7ebd2mdbnm7",  # truncated
    "b" + "a" * 100_000,
    "bafyb4ifrcmbzqfzk2xe2x3rbj5t2rlmcgzzxlhsvq2i4ia5qo7k5hcfdg4",  # a blake2b multihash
]


@pytest.mark.parametrize("text", NOT_CIDS)
def test_a_committed_string_that_is_not_a_cid_is_a_rejection_not_a_store_error(tmp_path: Path, text: str) -> None:
    store = LocalStore(tmp_path)
    commitment = replace(committed(update(addr(1), [1.0, 2.0, 3.0]), 5).commitment, cid=Cid(text))

    out = fetch_committed(store, commitment, retry_window_s=60, sleep=lambda s: pytest.fail("no retry expected"))

    assert (out.data, out.error_rule) == (None, RULE_INVALID_CID) and RULE_INVALID_CID in SCREEN_RULES
    assert out.error is not None and "not a CID" in out.error and len(out.error) < 300
    with pytest.raises(StorageError):  # what the round used to die of
        store.get(Cid(text))


def test_every_cid_the_stores_compute_is_a_cid() -> None:
    for size in (0, 1, 256 * 1024, 256 * 1024 + 1, 3 * 1024 * 1024):
        assert cid_problem(compute_cid(b"\x01" * size)) is None


def test_an_invalid_cid_leaves_the_rest_of_the_round_to_aggregate(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    good = [committed(update(addr(i), [float(i)] * 3), 10, i) for i in (1, 2)]
    for out in good:
        assert out.data is not None
        store.put(out.data)
    bad = committed(update(addr(3), [9.0] * 3), 10, 2)
    bad_commitment = replace(bad.commitment, cid=Cid("this-is-not-a-cid"))
    outcomes = [fetch_committed(store, o.commitment, retry_window_s=0) for o in good]
    outcomes.append(fetch_committed(store, bad_commitment, retry_window_s=0))

    result = aggregate(FEDAVG, BASE, ROUND, BASE_DIGEST, outcomes, 1)

    assert result.model is not None and result.included == (addr(1), addr(2))
    assert [(r.participant, r.rule) for r in result.rejections] == [(addr(3), RULE_INVALID_CID)]
    np.testing.assert_array_equal(result.model.weights["w"], np.full(3, 1.5, np.float32))


@pytest.mark.parametrize("extra", ["1e400", "-1e999", "NaN", "Infinity"])
def test_a_scalar_extra_with_no_canonical_form_is_a_blob_format_rejection_not_a_crash(extra: str) -> None:
    who = addr(0xE)
    blob = encode_blob(BlobHeader(kind=BlobKind.UPDATE, round=int(ROUND), participant=who, base_model_digest=BASE_DIGEST,
                                  num_samples=3, extras={"update_kind": "delta", "x.loss": extra}),
                       {"w": np.zeros(3, np.float32)})
    c = UpdateCommitment(ROUND, who, sha256_digest(blob), compute_cid(blob), 3, Digest(b"\x02" * 32), 9, "0x", 0)
    good = committed(update(addr(1), [1.0, 1.0, 1.0]), 8)

    result = aggregate(FEDAVG, BASE, ROUND, BASE_DIGEST, [good, FetchOutcome(c, blob, None, None)], 1)

    assert result.included == (addr(1),)
    assert [(r.participant, r.rule) for r in result.rejections] == [(who, "blob_format")]


# --- duplicate_update -----------------------------------------------------------------------------


def test_update_payload_digest_sees_the_tensors_and_nothing_else() -> None:
    victim = update(addr(1), [0.5, -1.0, 2.0], tau=3.0)
    assert update_payload_digest(encode_update(victim)) == update_payload_digest(
        encode_update(replace(copy_of(victim, addr(2)), extras={"tau": 4.0})))
    nudged = update(addr(1), [0.5, -1.0, float(np.nextafter(np.float32(2.0), np.float32(3.0)))], tau=3.0)
    assert update_payload_digest(encode_update(nudged)) != update_payload_digest(encode_update(victim))


def test_a_copy_is_rejected_for_the_later_committer_and_names_the_earlier() -> None:
    victim = update(addr(0xB), [0.25, 0.5, -0.75], n=40)
    honest = update(addr(0xC), [0.1, 0.2, 0.3], n=20)
    outcomes = [committed(victim, 10), committed(copy_of(victim, addr(0xA)), 11), committed(honest, 11, 1)]

    screened = screen(outcomes, ROUND, BASE_DIGEST)

    assert [u.participant for u in screened.updates] == [addr(0xB), addr(0xC)]
    (rejection,) = screened.rejections
    assert (rejection.participant, rejection.rule) == (addr(0xA), RULE_DUPLICATE_UPDATE) and RULE_DUPLICATE_UPDATE in SCREEN_RULES
    assert addr(0xB) in rejection.reason and "block 10, log 0" in rejection.reason


@pytest.mark.parametrize(("victim_at", "copier_at"), [((7, 3), (7, 4)), ((7, 9), (8, 0))])
def test_earlier_means_block_then_log_index_whatever_the_addresses(victim_at: tuple[int, int],
                                                                    copier_at: tuple[int, int]) -> None:
    victim = update(addr(0xF), [1.0, 2.0, 3.0])
    outcomes = [committed(copy_of(victim, addr(0x1)), *copier_at), committed(victim, *victim_at)]

    assert rejected(outcomes) == [(addr(0x1), RULE_DUPLICATE_UPDATE)]
    assert rejected([committed(victim, *copier_at), committed(copy_of(victim, addr(0x1)), *victim_at)]) == [
        (addr(0xF), RULE_DUPLICATE_UPDATE)
    ]


def test_every_copy_names_the_first_committer() -> None:
    victim = update(addr(5), [3.0, 2.0, 1.0])
    outcomes = [committed(copy_of(victim, addr(9)), 4, 1), committed(victim, 3), committed(copy_of(victim, addr(1)), 4)]

    screened = screen(outcomes, ROUND, BASE_DIGEST)

    assert [u.participant for u in screened.updates] == [addr(5)]
    assert [(r.participant, r.rule) for r in screened.rejections] == [(addr(1), RULE_DUPLICATE_UPDATE),
                                                                      (addr(9), RULE_DUPLICATE_UPDATE)]
    assert all(addr(5) in r.reason for r in screened.rejections)


def test_copying_a_blob_its_author_spoiled_is_still_a_copy() -> None:
    victim = update(addr(2), [0.5, 0.5, 0.5])
    outcomes = [committed(victim, 3, meta=b"\x07" * 32), committed(copy_of(victim, addr(3)), 4)]

    assert rejected(outcomes) == [(addr(2), "metadata_mismatch"), (addr(3), RULE_DUPLICATE_UPDATE)]


def test_different_payloads_are_not_duplicates_and_screening_is_order_independent() -> None:
    victim = update(addr(0xA1), [1.0, 1.0, 1.0], n=30)
    outcomes = [committed(update(addr(i), [float(i), 0.0, 1.0], n=5 + i), 20, i) for i in range(1, 6)]
    outcomes += [committed(victim, 19), committed(copy_of(victim, addr(0xA2)), 21)]
    assert rejected(outcomes) == [(addr(0xA2), RULE_DUPLICATE_UPDATE)]

    first = aggregate(FEDAVG, BASE, ROUND, BASE_DIGEST, outcomes, 1)
    for seed in range(5):
        shuffled = list(outcomes)
        random.Random(seed).shuffle(shuffled)
        again = aggregate(FEDAVG, BASE, ROUND, BASE_DIGEST, shuffled, 1)
        assert again.model_digest == first.model_digest and again.rejections == first.rejections
        assert again.model_blob == first.model_blob


# --- the copy attack on the ledger ----------------------------------------------------------------


def test_a_participant_committing_a_copy_of_anothers_blob_is_rejected_and_the_audit_stays_clean(fed: Fed) -> None:
    victim, copier, honest = fed.participants
    rid = fed.open_round()
    victim.submit(rid)
    (seen,) = fed.reader.commitments(rid)
    stolen = decode_update(fed.store.get(seen.cid))  # anyone can fetch a committed blob in the commit phase
    mine = replace(stolen, participant=copier.address, num_samples=fed.clients[1].num_samples)
    blob = encode_update(mine)
    copier.ledger.commit_update(rid, sha256_digest(blob), fed.store.put(blob), mine.num_samples, metadata_digest(mine))
    honest.submit(rid)

    out = fed.aggregator.finalize(rid)

    assert out.finalized and set(out.included) == {victim.address, honest.address}
    (rejection,) = out.rejected
    assert (rejection.participant, rejection.rule) == (copier.address, RULE_DUPLICATE_UPDATE)
    assert victim.address in rejection.reason
    report = fed.auditor().audit()
    assert report.ok, report.findings
    assert all(f.severity.value == "handled" and f.responsible_address == copier.address for f in report.findings), \
        report.findings


def test_a_commitment_whose_cid_is_not_a_cid_is_rejected_and_the_round_finalises(fed: Fed) -> None:
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    junk = fed.participants[2]
    junk.ledger.commit_update(rid, b"\x01" * 32, "this-is-not-a-cid", fed.clients[2].num_samples, b"\x02" * 32)

    out = fed.aggregator.finalize(rid)

    assert out.finalized and len(out.included) == 2
    assert [(r.participant, r.rule) for r in out.rejected] == [(junk.address, RULE_INVALID_CID)]
    report = fed.auditor().audit()
    assert report.ok, report.findings
    assert all(f.severity.value == "handled" and f.responsible_address == junk.address for f in report.findings), \
        report.findings


# --- updates that defeat the arithmetic -----------------------------------------------------------


def nova(who: Address, tau: float) -> ClientUpdate:
    return ClientUpdate(who, ROUND, 5, {"w": np.ones(3, np.float32)}, BASE_DIGEST, kind=UpdateKind.NORMALIZED_DELTA,
                        extras={"tau": tau})


def test_an_update_whose_values_overflow_the_model_is_rejected_and_the_round_goes_on() -> None:
    big_base = replace(BASE, weights={"w": np.full(3, 3e38, np.float32)})
    ups = [update(addr(1), [1.0, 1.0, 1.0]), update(addr(2), [3e38, 3e38, 3e38]), update(addr(3), [2.0, 2.0, 2.0])]

    result = aggregate_screened(FEDAVG, big_base, ROUND, BASE_DIGEST, ups, (), 1)

    assert result.included == (addr(1), addr(3)) and result.model is not None
    (rejection,) = result.rejections
    assert (rejection.participant, rejection.rule) == (addr(2), "blob_format")
    assert "makes the aggregation fail" in rejection.reason and "not finite" in rejection.reason
    again = aggregate_screened(FEDAVG, big_base, ROUND, BASE_DIGEST, list(reversed(ups)), (), 1)
    assert again.model_blob == result.model_blob and again.rejections == result.rejections


def test_a_fednova_tau_that_overflows_the_step_is_rejected() -> None:
    strategy = StrategyConfig("fednova", {"min_updates": 1})

    result = aggregate_screened(strategy, BASE, ROUND, BASE_DIGEST, [nova(addr(1), 3.0), nova(addr(2), 1e300)], (), 1)

    assert result.included == (addr(1),)
    assert [(r.participant, r.rule) for r in result.rejections] == [(addr(2), "blob_format")]


def test_when_every_update_defeats_the_arithmetic_there_is_no_model_and_a_reason() -> None:
    strategy = StrategyConfig("fednova", {"min_updates": 1})

    result = aggregate_screened(strategy, BASE, ROUND, BASE_DIGEST, [nova(addr(1), 1e300), nova(addr(2), 1e300)], (), 1)

    assert result.model_blob is None and result.too_few_reason == "too few valid updates: 0 < minimum 1"
    assert [r.participant for r in result.rejections] == [addr(1), addr(2)]


def test_a_base_model_with_a_malformed_server_state_is_the_aggregators_error_not_a_participants() -> None:
    broken = replace(BASE, server_state={"c/w": np.zeros(5, np.float32)})

    with pytest.raises(AggregationError, match="base model is malformed"):
        aggregate_screened(StrategyConfig("scaffold"), broken, ROUND, BASE_DIGEST, [update(addr(1), [1.0, 1.0, 1.0])],
                           (), 1)

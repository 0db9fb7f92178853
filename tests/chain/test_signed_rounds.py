"""ChainLedger on signed rounds against the real devnet: opening, the posted commitment set, forced commitments in
the escape window (inclusive) and refused after it, the end of the round with and without a set, the typed events
(index and rescan alike), RoundRecord's signed-round fields, and every refusal as its decoded custom error."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_hash.auto import keccak

from fedchain.chain.federation import FederationContract
from fedchain.chain.ledger import ChainLedger
from fedchain.codec.secp256k1 import recover_address
from fedchain.errors import ChainError, ContractRevertError
from fedchain.ports import (
    CommitmentSetPosted,
    RoundOpened,
    RoundStatus,
    SignedLedger,
    SignedRoundOpened,
    UpdateCommitment,
    is_secure_ledger,
    is_signed_ledger,
)
from fedchain.reverts import (
    FederationCommitmentSetPosted,
    FederationCommitmentSetTooLate,
    FederationCommitPhaseActive,
    FederationCommitWindowTooLong,
    FederationDuplicateCommit,
    FederationEscapeWindowClosed,
    FederationEscapeWindowNotOpen,
    FederationInvalidIncludedCount,
    FederationInvalidResult,
    FederationInvalidRound,
    FederationInvalidSetCount,
    FederationNotPrivateRound,
    FederationNotSignedRound,
    FederationPrivateSignedRound,
)
from fedchain.types import ZERO_DIGEST, Address, Cid, Digest, RoundId
from tests.chain.test_ledger import assert_same_answers, rescan_ledger
from tests.fixtures_devnet import TASK_DIGESTS, TASK_MAX_COMMIT_DURATION, DevnetEnv

BASE = Digest(keccak(b"base"))
COMMIT, ESCAPE = 600, 300
ROOT, SET = Digest(keccak(b"set root")), Digest(keccak(b"set blob"))
SET_CID = Cid("bafyset")
SPEC, STRATEGY, SCHEMA = (Digest(d) for d in TASK_DIGESTS)


def _open(env: DevnetEnv, min_updates: int = 1) -> tuple[ChainLedger, RoundId]:
    agg = env.ledger(env.accounts.aggregator)
    report = agg.open_signed_round(BASE, Cid("bafybase"), COMMIT, min_updates, ESCAPE)
    assert report.round_id is not None
    return agg, RoundId(report.round_id)


def _commit(agg: ChainLedger, env: DevnetEnv, i: int, rid: RoundId) -> None:
    agg.with_account(env.admitted[i]).commit_update(
        rid, Digest(keccak(b"forced%d" % i)), Cid(f"bafyf{i}"), 10 + i, Digest(keccak(b"m"))
    )


def _finalize(agg: ChainLedger, rid: RoundId, included: int) -> None:
    agg.finalize_round(rid, Digest(keccak(b"g")), Cid("bafyg"), ROOT, BASE, BASE, Cid("bafye"), included)


def _past(env: DevnetEnv, advance_time: Callable[[int], int], deadline: int) -> None:
    """Move the chain clock past ``deadline`` (the next block's timestamp is after it)."""
    advance_time(max(deadline - env.conn.block_timestamp() + 1, 1))


def test_chain_ledger_is_a_signed_ledger(federation_env: DevnetEnv) -> None:
    ledger: SignedLedger = federation_env.ledger()

    assert isinstance(ledger, SignedLedger) and is_signed_ledger(ledger) and is_secure_ledger(ledger)
    assert not is_signed_ledger(object())


def test_signed_round_runs_from_opening_to_finalisation(
    federation_env: DevnetEnv, advance_time: Callable[[int], int]
) -> None:
    env = federation_env
    start = env.conn.block_number() + 1
    agg, rid = _open(env)
    opened_at = env.conn.block_timestamp()

    record = agg.round(rid)
    assert record.signed and not record.secure and not record.commit_reveal and not record.private
    assert (record.deadline, record.escape_duration, record.escape_deadline) == (opened_at + COMMIT, ESCAPE, 0)
    assert (record.set_count, record.set_root, record.set_digest, record.set_cid) == (0, ZERO_DIGEST, ZERO_DIGEST, None)
    assert agg.commitment_set(rid) is None
    opened, signed = agg.history(start)
    assert isinstance(opened, RoundOpened) and opened.deadline == record.deadline
    assert signed == SignedRoundOpened(rid, Address(env.accounts.aggregator.address), record.deadline, ESCAPE,
                                       opened.block_number, opened.tx_hash, opened.log_index + 1)

    _past(env, advance_time, record.deadline)
    assert not agg.commit_phase_over(rid)  # the deadline passed, but no set yet
    posted_report = agg.post_commitment_set(rid, ROOT, 2, SET, SET_CID)
    posted_at = env.conn.block_timestamp()
    _commit(agg, env, 2, rid)  # the participant left out forces its commitment in the window

    record = agg.round(rid)
    assert (record.escape_deadline, record.set_count, record.set_root, record.set_digest, record.set_cid) == (
        posted_at + ESCAPE, 2, ROOT, SET, SET_CID
    )
    assert record.commit_count == 3  # the set's count + one forced commitment
    posted = agg.commitment_set(rid)
    assert posted == CommitmentSetPosted(rid, Address(env.accounts.aggregator.address), ROOT, 2, SET, SET_CID,
                                         posted_at + ESCAPE, posted_report.block_number, posted_report.tx_hash,
                                         posted.log_index if posted else -1)
    forced = agg.commitments(rid)
    assert [(c.participant, c.cid) for c in forced] == [(Address(env.admitted[2].address), Cid("bafyf2"))]
    assert isinstance(forced[0], UpdateCommitment)
    assert posted in agg.history(start) and forced[0] in agg.history(start)
    assert not agg.commit_phase_over(rid)

    _past(env, advance_time, record.escape_deadline)
    assert agg.commit_phase_over(rid) and agg.reveal_phase_over(rid)
    rescan = rescan_ledger(env)
    assert rescan.commitment_set(rid) == posted and rescan.round(rid) == agg.round(rid)
    assert_same_answers(agg, rescan, env)
    _finalize(agg, rid, 3)
    assert agg.round(rid).status == RoundStatus.FINALIZED and agg.round(rid).included_count == 3


def test_escape_window_is_inclusive_and_then_closed(
    federation_env: DevnetEnv, advance_time: Callable[[int], int]
) -> None:
    env = federation_env
    agg, rid = _open(env)
    _past(env, advance_time, agg.round(rid).deadline)
    agg.post_commitment_set(rid, ROOT, 1, SET, SET_CID)
    escape_deadline = agg.round(rid).escape_deadline
    _commit(agg, env, 0, rid)
    with pytest.raises(FederationDuplicateCommit) as twice:
        _commit(agg, env, 0, rid)
    env.conn.request("evm_setNextBlockTimestamp", [escape_deadline])  # the commit lands in the window's last second
    _commit(agg, env, 1, rid)
    assert env.conn.block_timestamp() == escape_deadline
    advance_time(1)
    before = agg.history()

    with pytest.raises(FederationEscapeWindowClosed) as late:
        _commit(agg, env, 2, rid)

    assert (twice.value.round_id, twice.value.participant) == (rid, env.admitted[0].address)
    assert (late.value.round_id, late.value.escape_deadline) == (rid, escape_deadline)
    assert isinstance(late.value, ContractRevertError) and late.value.error_name == "FederationEscapeWindowClosed"
    assert late.value.error_args == {"roundId": rid, "escapeDeadline": escape_deadline}
    assert agg.history() == before and agg.round(rid).commit_count == 3  # the set's one + two forced


def test_refusals_before_the_set_are_typed(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    env = federation_env
    agg, rid = _open(env)
    deadline = agg.round(rid).deadline
    before = agg.history()

    with pytest.raises(FederationEscapeWindowNotOpen) as not_open:
        _commit(agg, env, 0, rid)
    with pytest.raises(FederationNotPrivateRound) as private:
        agg.with_account(env.admitted[0]).commit_private_update(
            rid, Digest(keccak(b"u")), Cid("bafyu"), 10, Digest(keccak(b"m")), 1, Digest(keccak(b"acc"))
        )
    with pytest.raises(FederationCommitPhaseActive) as early:
        agg.post_commitment_set(rid, ROOT, 2, SET, SET_CID)  # 2 of 3 signed, before the deadline
    with pytest.raises(FederationCommitPhaseActive) as unended:
        agg.close_round(rid, "too early")

    assert not_open.value.round_id == rid and private.value.round_id == rid
    assert (early.value.round_id, early.value.deadline) == (rid, deadline)
    assert (unended.value.round_id, unended.value.deadline) == (rid, deadline + ESCAPE)
    assert agg.history() == before


def test_post_commitment_set_refusals_are_typed(
    federation_env: DevnetEnv, advance_time: Callable[[int], int]
) -> None:
    env = federation_env
    agg, rid = _open(env)
    _past(env, advance_time, agg.round(rid).deadline)
    before = agg.history()

    with pytest.raises(FederationInvalidSetCount) as too_many:
        agg.post_commitment_set(rid, ROOT, 4, SET, SET_CID)
    with pytest.raises(FederationInvalidResult) as rootless:
        agg.post_commitment_set(rid, ZERO_DIGEST, 1, SET, SET_CID)
    with pytest.raises(FederationInvalidResult) as rooted_empty:
        agg.post_commitment_set(rid, ROOT, 0, SET, SET_CID)
    with pytest.raises(FederationInvalidResult) as digestless:
        agg.post_commitment_set(rid, ROOT, 1, ZERO_DIGEST, SET_CID)
    with pytest.raises(FederationInvalidResult) as cidless:
        agg.post_commitment_set(rid, ROOT, 1, SET, Cid(""))

    assert (too_many.value.round_id, too_many.value.count, too_many.value.eligible_count) == (rid, 4, 3)
    assert [e.value.field for e in (rootless, rooted_empty, digestless, cidless)] == [
        "setRoot", "setRoot", "setDigest", "setCid"
    ]
    assert agg.history() == before
    agg.post_commitment_set(rid, ZERO_DIGEST, 0, SET, SET_CID)  # an empty set has a zero root
    with pytest.raises(FederationCommitmentSetPosted) as twice:
        agg.post_commitment_set(rid, ZERO_DIGEST, 0, SET, SET_CID)
    assert twice.value.round_id == rid


def test_a_round_without_a_set_is_closed_after_the_deadline_plus_the_escape_duration(
    federation_env: DevnetEnv, advance_time: Callable[[int], int]
) -> None:
    env = federation_env
    agg, rid = _open(env)
    last_post = agg.round(rid).deadline + ESCAPE
    _past(env, advance_time, last_post)

    with pytest.raises(FederationCommitmentSetTooLate) as late:
        agg.post_commitment_set(rid, ROOT, 1, SET, SET_CID)
    with pytest.raises(FederationInvalidIncludedCount) as empty:
        _finalize(agg, rid, 1)
    assert agg.commit_phase_over(rid)
    agg.close_round(rid, "no commitment set")

    assert (late.value.round_id, late.value.last_post_time) == (rid, last_post)
    assert (empty.value.included_count, empty.value.commit_count) == (1, 0)
    record = agg.round(rid)
    assert record.status == RoundStatus.CLOSED and record.close_reason == "no commitment set"
    assert record.signed and record.escape_deadline == 0 and record.set_cid is None


def test_a_full_set_posted_early_still_leaves_the_escape_window(federation_env: DevnetEnv, advance_time) -> None:
    env = federation_env
    agg, rid = _open(env, min_updates=3)

    agg.post_commitment_set(rid, ROOT, 3, SET, SET_CID)  # before the deadline: as many entries as eligible

    record = agg.round(rid)
    assert record.escape_deadline == record.deadline + ESCAPE  # from the deadline: posting early does not shorten it
    assert not agg.commit_phase_over(rid)  # its entries may be invalid: the window runs for whoever is left out
    _past(env, advance_time, record.escape_deadline)
    assert agg.commit_phase_over(rid)
    _finalize(agg, rid, 3)
    assert agg.round(rid).status == RoundStatus.FINALIZED


def test_open_signed_round_refusals_are_typed(federation_env: DevnetEnv) -> None:
    env = federation_env
    agg = env.ledger(env.accounts.aggregator)

    with pytest.raises(FederationInvalidRound) as zero:
        agg.open_signed_round(BASE, Cid("bafybase"), COMMIT, 1, 0)
    with pytest.raises(FederationCommitWindowTooLong) as long:
        agg.open_signed_round(BASE, Cid("bafybase"), COMMIT, 1, TASK_MAX_COMMIT_DURATION + 1)
    env.ledger().configure_private_task(SPEC, STRATEGY, SCHEMA, Cid("bafyprivate"), TASK_MAX_COMMIT_DURATION,
                                        Digest(keccak(b"policy")), 3_000_000)
    with pytest.raises(FederationPrivateSignedRound) as private:
        agg.open_signed_round(BASE, Cid("bafybase"), COMMIT, 1, ESCAPE)

    assert (zero.value.field, zero.value.value) == ("escapeDuration", 0)
    assert (long.value.commit_duration, long.value.max_commit_duration) == (
        TASK_MAX_COMMIT_DURATION + 1, TASK_MAX_COMMIT_DURATION
    )
    assert private.value.epsilon_budget == 3_000_000
    assert agg.latest_round_id() == 0


def test_plain_rounds_have_no_signed_record(federation_env: DevnetEnv) -> None:
    env = federation_env
    agg = env.ledger(env.accounts.aggregator)
    rid = RoundId(agg.open_round(BASE, Cid("bafybase"), COMMIT, 1).round_id or 0)

    with pytest.raises(FederationNotSignedRound) as plain:
        agg.post_commitment_set(rid, ROOT, 1, SET, SET_CID)
    _commit(agg, env, 0, rid)

    assert plain.value.round_id == rid
    record = agg.round(rid)
    assert not record.signed and record.escape_duration == 0 and record.set_cid is None and record.commit_count == 1
    assert agg.commitment_set(rid) is None
    assert env.federation().signed_round(rid).signed is False


def test_sign_digest_signs_as_the_ledger_account(federation_env: DevnetEnv) -> None:
    env = federation_env
    digest = keccak(b"an EIP-712 commitment")
    ledger = env.ledger(env.admitted[0])

    signature = ledger.sign_digest(digest)

    assert len(signature) == 65 and recover_address(digest, signature) == env.admitted[0].address
    with pytest.raises(ChainError, match="no signing account"):
        ChainLedger(FederationContract(env.conn, env.deployment.address)).sign_digest(digest)  # read-only

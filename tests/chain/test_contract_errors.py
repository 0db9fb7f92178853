"""Every custom error of Federation, decoded as its generated class with its exact arguments, and the actor
named by every event a role holder causes, against the real devnet."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from eth_hash.auto import keccak

from fedchain.chain.abi import FunctionCodec, RevertDecoder
from fedchain.chain.compiler import load_artifact
from fedchain.chain.federation import ADMIN_ROLE, AGGREGATOR_ROLE
from fedchain.errors import ContractRevertError, ExitCode, TransactionFailedError
from fedchain.ports import (
    ParticipantAdmitted,
    ParticipantRegistered,
    ParticipantStatus,
    RoundClosed,
    RoundFinalized,
    RoundOpened,
    RoundStatus,
    TaskConfigured,
    update_seal,
)
from fedchain.reverts import (
    REVERTS,
    AccessControlBadConfirmation,
    AccessControlUnauthorizedAccount,
    FederationAdvertisePhaseActive,
    FederationAdvertiseTooLate,
    FederationAlreadyAttested,
    FederationAlreadyContested,
    FederationAlreadyRegistered,
    FederationAttestationModelMismatch,
    FederationAttestationQuorumNotMet,
    FederationBaseModelMismatch,
    FederationCommitmentSetPosted,
    FederationCommitmentSetTooLate,
    FederationCommitPhaseActive,
    FederationCommitRevealRound,
    FederationCommitTooLate,
    FederationCommitWindowTooLong,
    FederationContestAnswered,
    FederationContestWindowClosed,
    FederationDuplicateAdvertisement,
    FederationDuplicateCommit,
    FederationDuplicateUnmaskingShares,
    FederationEscapeWindowClosed,
    FederationEscapeWindowNotOpen,
    FederationInvalidAttestation,
    FederationInvalidCommitment,
    FederationInvalidContest,
    FederationInvalidDispute,
    FederationInvalidIncludedCount,
    FederationInvalidPolicy,
    FederationInvalidRegistration,
    FederationInvalidResult,
    FederationInvalidRound,
    FederationInvalidSetCount,
    FederationInvalidStatus,
    FederationInvalidTask,
    FederationNoContest,
    FederationNotActive,
    FederationNotAdvertised,
    FederationNotCommitRevealRound,
    FederationNotCommitted,
    FederationNotIncluded,
    FederationNotPrivateRound,
    FederationNotRegistered,
    FederationNotSealed,
    FederationNotSecureRound,
    FederationNotSignedRound,
    FederationPrivacyBudgetExceeded,
    FederationPrivacyClaimDecreased,
    FederationPrivacyClaimRequired,
    FederationPrivateSignedRound,
    FederationRevealPhaseActive,
    FederationRevealTooLate,
    FederationRevealWindowTooLong,
    FederationRoundInProgress,
    FederationRoundNotFinalized,
    FederationRoundNotOpen,
    FederationSealMismatch,
    FederationTaskNotConfigured,
    FederationTooFewUpdates,
    FederationTooManySamples,
    FederationUnknownRound,
    FederationUnmaskPhaseActive,
    FederationUnmaskTooLate,
    MembershipAlreadyMember,
    MembershipNotMember,
    MembershipNotTransferable,
    MembershipUnauthorized,
    TypedRevertError,
)
from fedchain.types import Address, Cid, Digest, RoundId
from tests.chain.rounds import finalized_round
from tests.fixtures_devnet import DECLARED_SAMPLES, TASK_MAX_COMMIT_DURATION, DevnetEnv

ZERO = b"\x00" * 32
BASE = keccak(b"base-model")
UPD = keccak(b"update")
META = keccak(b"meta")

E = TypeVar("E", bound=TypedRevertError)


@contextmanager
def reverts(cls: type[E], **args: Any) -> Iterator[pytest.ExceptionInfo[E]]:
    """The block reverts with exactly ``cls`` (not a parent, not a sibling) and exactly ``args``: as the
    ABI-named ``error_args`` and as the typed attributes."""
    with pytest.raises(cls) as info:
        yield info
    err = info.value
    assert type(err) is cls, f"{type(err).__name__}: {err}"
    assert isinstance(err, ContractRevertError) and err.exit_code == ExitCode.CONTRACT_REVERT
    assert (err.error_name, err.error_args) == (cls.__name__, args)
    assert {attr: getattr(err, attr) for _, attr in cls.PARAMS} == {attr: args[name] for name, attr in cls.PARAMS}


def open_round(env: DevnetEnv, duration: int = 3600, min_updates: int = 1, base: bytes = BASE) -> int:
    report = env.federation(env.accounts.aggregator).open_round(base, "bafybase", duration, min_updates)
    assert report.round_id is not None
    return report.round_id


def finalize(env: DevnetEnv, round_id: int, included: int = 1, model: bytes = keccak(b"model")) -> None:
    env.federation(env.accounts.aggregator).finalize_round(
        round_id, model, "bafymodel", keccak(b"root"), keccak(b"agg"), keccak(b"ev"), "bafyev", included
    )


# --- roles -----------------------------------------------------------------------------


def test_admit_needs_admin_role(chain_env: DevnetEnv) -> None:
    p = chain_env.accounts.participants[0]
    chain_env.federation(p).register("org", "health", b"", 100)
    with reverts(AccessControlUnauthorizedAccount, account=p.address, neededRole=ADMIN_ROLE):
        chain_env.federation(p).admit(p.address)


def test_open_round_needs_aggregator_role(federation_env: DevnetEnv) -> None:
    admin = federation_env.accounts.admin
    with reverts(AccessControlUnauthorizedAccount, account=admin.address, neededRole=AGGREGATOR_ROLE):
        federation_env.federation(admin).open_round(BASE, "bafy", 60, 1)


def test_renounce_role_for_another_account(chain_env: DevnetEnv) -> None:
    admin = chain_env.federation()
    data = admin.codec.encode_call("renounceRole", ADMIN_ROLE, chain_env.accounts.aggregator.address)
    tx = {"to": admin.address, "data": data, "from": chain_env.accounts.admin.address}
    with reverts(AccessControlBadConfirmation):
        chain_env.conn.call(tx, decoder=admin.errors, function="renounceRole")


# --- participants --------------------------------------------------------------------


def test_register_twice(chain_env: DevnetEnv) -> None:
    p = chain_env.accounts.participants[0]
    chain_env.federation(p).register("org", "health", b"", 100)
    with reverts(FederationAlreadyRegistered, participant=p.address):
        chain_env.federation(p).register("org", "health", b"", 100)


def test_register_without_organisation(chain_env: DevnetEnv) -> None:
    with reverts(FederationInvalidRegistration, field="organisation") as info:
        chain_env.federation(chain_env.accounts.participants[0]).register("", "health", b"", 100)
    assert info.value.field == "organisation"


def test_register_without_declared_samples(chain_env: DevnetEnv) -> None:
    p = chain_env.accounts.participants[0]
    with reverts(FederationInvalidRegistration, field="declaredSamples"):
        chain_env.federation(p).register("org", "health", b"", 0)
    assert chain_env.federation().participant(p.address).status == ParticipantStatus.NONE


def test_admit_unregistered(chain_env: DevnetEnv) -> None:
    who = chain_env.accounts.outsider.address
    with reverts(FederationInvalidStatus, participant=who, status=ParticipantStatus.NONE):
        chain_env.federation().admit(who)


def test_admit_twice(federation_env: DevnetEnv) -> None:
    who = federation_env.admitted[0].address
    with reverts(FederationInvalidStatus, participant=who, status=ParticipantStatus.ACTIVE) as info:
        federation_env.federation().admit(who)
    assert ParticipantStatus(info.value.status) is ParticipantStatus.ACTIVE


def test_admit_during_open_round(federation_env: DevnetEnv) -> None:
    newcomer = federation_env.accounts.participants[5]
    federation_env.federation(newcomer).register("late", "x", b"", 100)
    rid = open_round(federation_env)
    with reverts(FederationRoundInProgress, roundId=rid):
        federation_env.federation().admit(newcomer.address)
    assert federation_env.federation().participant(newcomer.address).status == ParticipantStatus.PENDING


def test_remove_removed(federation_env: DevnetEnv) -> None:
    who = federation_env.admitted[0].address
    federation_env.federation().remove(who, "left")
    with reverts(FederationInvalidStatus, participant=who, status=ParticipantStatus.REMOVED):
        federation_env.federation().remove(who, "again")


# --- task ------------------------------------------------------------------------------

TASK_FIELDS = ["modelSpecDigest", "strategyDigest", "dataSchemaDigest"]
MAX_WINDOW = TASK_MAX_COMMIT_DURATION


@pytest.mark.parametrize("field", [*TASK_FIELDS, "configCid", "maxCommitDuration"])
def test_invalid_task_names_the_field(chain_env: DevnetEnv, field: str) -> None:
    spec, strategy, schema = (ZERO if field == k else keccak(k.encode()) for k in TASK_FIELDS)
    cid = "" if field == "configCid" else "bafycfg"
    with reverts(FederationInvalidTask, field=field):
        chain_env.federation().configure_task(spec, strategy, schema, cid, 0 if field == "maxCommitDuration" else 60)


def test_invalid_task_names_the_first_offending_field(chain_env: DevnetEnv) -> None:
    with reverts(FederationInvalidTask, field="strategyDigest"):
        chain_env.federation().configure_task(keccak(b"spec"), ZERO, ZERO, "", 0)


def test_configure_task_during_open_round(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    with reverts(FederationRoundInProgress, roundId=rid):
        federation_env.federation().configure_task(keccak(b"a"), keccak(b"b"), keccak(b"c"), "bafy2", MAX_WINDOW)


# --- opening rounds --------------------------------------------------------------------


def test_open_round_before_task(chain_env: DevnetEnv) -> None:
    with reverts(FederationTaskNotConfigured):
        open_round(chain_env)


def test_open_round_while_open(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    with reverts(FederationRoundInProgress, roundId=rid):
        open_round(federation_env)


@pytest.mark.parametrize(
    ("args", "field", "value"),
    [
        ((ZERO, "bafy", 60, 1), "baseModelDigest", 0),
        ((BASE, "", 60, 1), "baseModelCid", 0),
        ((BASE, "bafy", 0, 1), "commitDuration", 0),
        ((BASE, "bafy", 2**64 - 1, 1), "commitDuration", 2**64 - 1),
        ((BASE, "bafy", 60, 0), "minUpdates", 0),
        ((ZERO, "", 0, 0), "baseModelDigest", 0),
    ],
    ids=["zero-digest", "empty-cid", "zero-duration", "deadline-overflow", "zero-min", "first-of-several"],
)
def test_invalid_round_names_the_field_and_value(
    federation_env: DevnetEnv, args: tuple[bytes, str, int, int], field: str, value: int
) -> None:
    with reverts(FederationInvalidRound, field=field, value=value) as info:
        federation_env.federation(federation_env.accounts.aggregator).open_round(*args)
    assert (info.value.field, info.value.value) == (field, value)


def test_commit_window_longer_than_the_task_allows(federation_env: DevnetEnv) -> None:
    agg = federation_env.federation(federation_env.accounts.aggregator)
    with reverts(FederationCommitWindowTooLong, commitDuration=MAX_WINDOW + 1, maxCommitDuration=MAX_WINDOW) as info:
        agg.open_round(BASE, "bafybase", MAX_WINDOW + 1, 1)
    assert (info.value.commit_duration, info.value.max_commit_duration) == (MAX_WINDOW + 1, MAX_WINDOW)
    assert agg.latest_round_id() == 0
    assert agg.open_round(BASE, "bafybase", MAX_WINDOW, 1).round_id == 1  # the maximum itself is allowed


def test_longest_round_is_closed_by_the_aggregator_once_its_deadline_passed(
    federation_env: DevnetEnv, advance_time: Callable[[int], int]
) -> None:
    """A round opened with the longest window the task allows, with a commit missing, cannot be held open past
    its deadline: the aggregator closes it (RoundClosed names it) and the admin may change the task again."""
    agg = federation_env.ledger(federation_env.accounts.aggregator)
    rid = RoundId(open_round(federation_env, duration=MAX_WINDOW, min_updates=3))
    federation_env.ledger(federation_env.admitted[0]).commit_update(rid, Digest(UPD), Cid("bafyu"), 10, Digest(META))
    deadline = agg.round(rid).deadline
    with reverts(FederationCommitPhaseActive, roundId=rid, deadline=deadline):
        agg.close_round(rid, "too early")
    advance_time(MAX_WINDOW + 1)
    report = agg.close_round(rid, "deadline passed with 1 of 3 commits")
    closed = [e for e in agg.history(report.block_number) if isinstance(e, RoundClosed)]
    assert [(e.round_id, e.closed_by, e.commit_count, e.reason) for e in closed] == [
        (rid, Address(federation_env.accounts.aggregator.address), 1, "deadline passed with 1 of 3 commits")
    ]
    assert agg.round(rid).status == RoundStatus.CLOSED
    federation_env.ledger().configure_task(Digest(keccak(b"a")), Digest(keccak(b"b")), Digest(keccak(b"c")),
                                           Cid("bafy2"), MAX_WINDOW)


def test_base_model_mismatch_after_finalize(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    for p in federation_env.admitted:  # every active participant committed: the commit phase is over
        federation_env.federation(p).commit_update(rid, UPD, "bafyu", 10, META)
    model = keccak(b"model-1")
    finalize(federation_env, rid, 3, model)
    with reverts(FederationBaseModelMismatch, expected=model, given=BASE):
        open_round(federation_env, base=BASE)


# --- commits ---------------------------------------------------------------------------


def test_commit_by_unregistered(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    who = federation_env.accounts.outsider
    with reverts(FederationNotRegistered, participant=who.address):
        federation_env.federation(who).commit_update(rid, UPD, "bafyu", 10, META)


def test_commit_by_pending(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    who = federation_env.accounts.participants[5]
    federation_env.federation(who).register("late", "x", b"", 100)
    with reverts(FederationNotActive, participant=who.address, status=ParticipantStatus.PENDING):
        federation_env.federation(who).commit_update(rid, UPD, "bafyu", 10, META)


def test_commit_by_removed(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    who = federation_env.admitted[1]
    federation_env.federation().remove(who.address, "misbehaved")
    with reverts(FederationNotActive, participant=who.address, status=ParticipantStatus.REMOVED):
        federation_env.federation(who).commit_update(rid, UPD, "bafyu", 10, META)


def test_commit_unknown_round(federation_env: DevnetEnv) -> None:
    with reverts(FederationUnknownRound, roundId=42):
        federation_env.federation(federation_env.admitted[0]).commit_update(42, UPD, "bafyu", 10, META)


def test_commit_to_finalized_round(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    rid = open_round(federation_env, duration=60)
    federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)
    advance_time(61)
    finalize(federation_env, rid)
    with reverts(FederationRoundNotOpen, roundId=rid, status=RoundStatus.FINALIZED):
        federation_env.federation(federation_env.admitted[1]).commit_update(rid, UPD, "bafyu", 10, META)


def test_commit_too_late(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    rid = open_round(federation_env, duration=60)
    deadline = federation_env.federation().get_round(rid).deadline
    advance_time(61)
    with reverts(FederationCommitTooLate, roundId=rid, deadline=deadline) as info:
        federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)
    assert (info.value.round_id, info.value.deadline) == (rid, deadline)


def test_commit_more_samples_than_approved(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    p = federation_env.admitted[0]
    with reverts(FederationTooManySamples, participant=p.address, numSamples=DECLARED_SAMPLES + 1,
                 approvedSamples=DECLARED_SAMPLES) as info:
        federation_env.federation(p).commit_update(rid, UPD, "bafyu", DECLARED_SAMPLES + 1, META)
    assert (info.value.num_samples, info.value.approved_samples) == (DECLARED_SAMPLES + 1, DECLARED_SAMPLES)
    with reverts(FederationTooManySamples, participant=p.address, numSamples=10**12, approvedSamples=DECLARED_SAMPLES):
        federation_env.federation(p).commit_update(rid, UPD, "bafyu", 10**12, META)
    assert federation_env.federation().get_round(rid).commit_count == 0
    federation_env.federation(p).commit_update(rid, UPD, "bafyu", DECLARED_SAMPLES, META)  # the approved size itself
    assert [c.num_samples for c in federation_env.ledger().commitments(RoundId(rid))] == [DECLARED_SAMPLES]


def test_commit_twice(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    p = federation_env.admitted[0]
    federation_env.federation(p).commit_update(rid, UPD, "bafyu", 10, META)
    with reverts(FederationDuplicateCommit, roundId=rid, participant=p.address):
        federation_env.federation(p).commit_update(rid, keccak(b"other"), "bafyo", 10, META)


@pytest.mark.parametrize(
    ("digest", "cid", "samples", "field"),
    [
        (ZERO, "bafyu", 1, "updateDigest"),
        (UPD, "", 1, "cid"),
        (UPD, "bafyu", 0, "numSamples"),
        (ZERO, "", 0, "updateDigest"),
    ],
    ids=["zero-digest", "empty-cid", "zero-samples", "first-of-several"],
)
def test_invalid_commitment_names_the_field(
    federation_env: DevnetEnv, digest: bytes, cid: str, samples: int, field: str
) -> None:
    rid = open_round(federation_env)
    with reverts(FederationInvalidCommitment, field=field):
        federation_env.federation(federation_env.admitted[0]).commit_update(rid, digest, cid, samples, META)
    assert federation_env.federation().get_round(rid).commit_count == 0


def test_revert_of_a_mined_transaction_is_decoded(federation_env: DevnetEnv) -> None:
    """With an explicit gas limit the failing transaction is mined (status 0) and then decoded."""
    rid = open_round(federation_env)
    p = federation_env.admitted[0]
    federation_env.federation(p).commit_update(rid, UPD, "bafyu", 10, META)
    block_before = federation_env.conn.block_number()
    with reverts(FederationDuplicateCommit, roundId=rid, participant=p.address):
        federation_env.federation(p).commit_update(rid, UPD, "bafyu", 10, META, gas=200_000)
    assert federation_env.conn.block_number() == block_before + 1  # it was mined
    assert federation_env.federation().get_round(rid).commit_count == 1


def test_commit_estimated_in_the_block_past_the_deadline_is_refused_unsent(federation_env: DevnetEnv) -> None:
    """The gas estimate runs in the pending block, the one the commit would be mined in: when that block is the first
    one past the deadline the estimate already reverts with FederationCommitTooLate, and nothing is sent (the latest
    block is still in time)."""
    rid = open_round(federation_env, duration=60)
    deadline = federation_env.federation().get_round(rid).deadline
    federation_env.conn.request("evm_setNextBlockTimestamp", [deadline + 1])
    block_before = federation_env.conn.block_number()
    assert federation_env.conn.block_timestamp() <= deadline
    with reverts(FederationCommitTooLate, roundId=rid, deadline=deadline):
        federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)
    assert federation_env.conn.block_number() == block_before  # refused by the estimate: nothing was mined
    assert federation_env.federation().get_round(rid).commit_count == 0


def test_commit_sent_without_estimate_after_the_deadline_is_a_typed_revert(federation_env: DevnetEnv) -> None:
    """With a fixed gas limit nothing is estimated: the late commit is mined (status 0) in the first block past the
    deadline (the block before it was still in time) and decoded by the replay at its own block."""
    rid = open_round(federation_env, duration=60)
    deadline = federation_env.federation().get_round(rid).deadline
    federation_env.conn.request("evm_setNextBlockTimestamp", [deadline + 1])
    with reverts(FederationCommitTooLate, roundId=rid, deadline=deadline):
        federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META, gas=200_000)
    block = federation_env.conn.block("latest")
    assert len(block.transactions) == 1 and block.timestamp == deadline + 1


def test_a_mined_transaction_that_ran_out_of_gas_says_so(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    with pytest.raises(TransactionFailedError, match=r"gas used 30000 of 30000; it ran out of gas") as info:
        federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META, gas=30_000)
    assert not isinstance(info.value, ContractRevertError)
    assert federation_env.federation().get_round(rid).commit_count == 0


# --- commit-reveal rounds --------------------------------------------------------------

REVEAL = 300
SALT = keccak(b"a secret salt")


def open_commit_reveal(env: DevnetEnv, duration: int = 60, reveal: int = REVEAL) -> int:
    report = env.federation(env.accounts.aggregator).open_round(BASE, "bafybase", duration, 1, reveal)
    assert report.round_id is not None
    return report.round_id


def seal_of(rid: int, who: str, samples: int = 10, salt: bytes = SALT) -> Digest:
    return update_seal(rid, who, UPD, "bafyu", samples, META, salt)


def test_commit_in_a_commit_reveal_round(federation_env: DevnetEnv) -> None:
    rid = open_commit_reveal(federation_env)
    with reverts(FederationCommitRevealRound, roundId=rid):
        federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)


def test_seal_and_reveal_in_a_plain_round(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    p = federation_env.admitted[0]
    with reverts(FederationNotCommitRevealRound, roundId=rid):
        federation_env.federation(p).seal_update(rid, seal_of(rid, p.address))
    with reverts(FederationNotCommitRevealRound, roundId=rid):
        federation_env.federation(p).reveal_update(rid, UPD, "bafyu", 10, META, SALT)


def test_reveal_window_longer_than_the_task_allows(federation_env: DevnetEnv) -> None:
    with reverts(FederationRevealWindowTooLong, revealDuration=MAX_WINDOW + 1, maxCommitDuration=MAX_WINDOW):
        open_commit_reveal(federation_env, reveal=MAX_WINDOW + 1)


def test_reveal_without_a_seal_too_late_and_mismatched(
    federation_env: DevnetEnv, advance_time: Callable[[int], int]
) -> None:
    rid = open_commit_reveal(federation_env)
    sealer, idle = federation_env.admitted[0], federation_env.admitted[1]
    seal = seal_of(rid, sealer.address)
    federation_env.federation(sealer).seal_update(rid, seal)
    round_info = federation_env.federation().get_round(rid)
    with reverts(FederationCommitPhaseActive, roundId=rid, deadline=round_info.deadline):
        federation_env.federation(sealer).reveal_update(rid, UPD, "bafyu", 10, META, SALT)
    advance_time(61)
    with reverts(FederationNotSealed, roundId=rid, participant=idle.address):
        federation_env.federation(idle).reveal_update(rid, UPD, "bafyu", 10, META, SALT)
    wrong = keccak(b"a guess")
    with reverts(FederationSealMismatch, roundId=rid, participant=sealer.address, seal=seal,
                 revealed=seal_of(rid, sealer.address, salt=wrong)):
        federation_env.federation(sealer).reveal_update(rid, UPD, "bafyu", 10, META, wrong)
    with reverts(FederationRevealPhaseActive, roundId=rid, revealDeadline=round_info.reveal_deadline):
        finalize(federation_env, rid, included=0)
    advance_time(REVEAL)
    with reverts(FederationRevealTooLate, roundId=rid, revealDeadline=round_info.reveal_deadline):
        federation_env.federation(sealer).reveal_update(rid, UPD, "bafyu", 10, META, SALT)


def test_seal_then_reveal_records_an_ordinary_commitment(
    federation_env: DevnetEnv, advance_time: Callable[[int], int]
) -> None:
    """The whole commit-reveal round on chain: seals (UpdateSealed, no update visible), reveals after the commit
    phase (UpdateCommitted, as in a plain round), the round finalised once every seal was revealed."""
    agg = federation_env.ledger(federation_env.accounts.aggregator)
    rid = RoundId(open_commit_reveal(federation_env))
    sealers = federation_env.admitted[:2]
    for p in sealers:
        seal = seal_of(rid, p.address)
        assert federation_env.federation().update_seal(rid, p.address, UPD, "bafyu", 10, META, SALT) == seal
        federation_env.ledger(p).seal_update(rid, seal)
        assert federation_env.federation().seal_of(rid, p.address) == seal
    assert [(s.participant, s.seal) for s in agg.seals(rid)] == [(Address(p.address), seal_of(rid, p.address))
                                                                  for p in sealers]
    assert agg.commitments(rid) == []
    record = agg.round(rid)
    assert record.commit_reveal and (record.seal_count, record.commit_count) == (2, 0)
    assert record.reveal_deadline == record.deadline + REVEAL
    assert not agg.commit_phase_over(rid)
    advance_time(61)
    assert agg.commit_phase_over(rid) and not agg.reveal_phase_over(rid)
    for p in sealers:
        federation_env.ledger(p).reveal_update(rid, Digest(UPD), Cid("bafyu"), 10, Digest(META), SALT)
    assert [c.participant for c in agg.commitments(rid)] == [Address(p.address) for p in sealers]
    assert federation_env.federation().seal_of(rid, sealers[0].address) == ZERO
    assert agg.reveal_phase_over(rid) and agg.round(rid).commit_count == 2
    opened = [e for e in agg.history() if isinstance(e, RoundOpened) and e.round_id == rid]
    assert [e.reveal_deadline for e in opened] == [record.reveal_deadline]
    finalize(federation_env, rid, included=2)
    assert agg.round(rid).status == RoundStatus.FINALIZED


# --- ending rounds ---------------------------------------------------------------------


def test_finalize_during_commit_phase(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    deadline = federation_env.federation().get_round(rid).deadline
    federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)
    with reverts(FederationCommitPhaseActive, roundId=rid, deadline=deadline):
        finalize(federation_env, rid)
    with reverts(FederationCommitPhaseActive, roundId=rid, deadline=deadline):
        federation_env.federation(federation_env.accounts.aggregator).close_round(rid, "too early")


def test_finalize_more_than_committed(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    rid = open_round(federation_env, duration=60)
    federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)
    advance_time(61)
    with reverts(FederationInvalidIncludedCount, includedCount=2, commitCount=1):
        finalize(federation_env, rid, included=2)


def test_finalize_too_few(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    rid = open_round(federation_env, duration=60, min_updates=2)
    federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)
    advance_time(61)
    with reverts(FederationTooFewUpdates, roundId=rid, includedCount=1, minUpdates=2):
        finalize(federation_env, rid, included=1)


RESULT_FIELDS = ["modelDigest", "modelCid", "merkleRoot", "aggregationDigest", "evidenceDigest", "evidenceCid"]


@pytest.mark.parametrize("fields", [[f] for f in RESULT_FIELDS] + [RESULT_FIELDS[2:]], ids=[*RESULT_FIELDS, "several"])
def test_invalid_result_names_the_first_offending_field(
    federation_env: DevnetEnv, advance_time: Callable[[int], int], fields: list[str]
) -> None:
    rid = open_round(federation_env, duration=60)
    federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)
    advance_time(61)

    def digest(name: str) -> bytes:
        return ZERO if name in fields else keccak(name.encode())

    def cid(name: str) -> str:
        return "" if name in fields else "bafy" + name.lower()

    with reverts(FederationInvalidResult, field=fields[0]):
        federation_env.federation(federation_env.accounts.aggregator).finalize_round(
            rid,
            digest("modelDigest"),
            cid("modelCid"),
            digest("merkleRoot"),
            digest("aggregationDigest"),
            digest("evidenceDigest"),
            cid("evidenceCid"),
            1,
        )
    assert federation_env.federation().get_round(rid).status == RoundStatus.OPEN


def test_commit_phase_over_of_unknown_round(federation_env: DevnetEnv) -> None:
    with reverts(FederationUnknownRound, roundId=3):
        federation_env.federation().commit_phase_over(3)


def test_finalize_unknown_and_closed_round(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    agg = federation_env.federation(federation_env.accounts.aggregator)
    with reverts(FederationUnknownRound, roundId=7):
        agg.close_round(7, "nothing")
    rid = open_round(federation_env, duration=60)
    advance_time(61)
    agg.close_round(rid, "no updates")
    with reverts(FederationRoundNotOpen, roundId=rid, status=RoundStatus.CLOSED):
        finalize(federation_env, rid)


# --- verification policy, attestations ----------------------------------------------------

FINDINGS = Digest(keccak(b"findings"))
FINDINGS_CID = Cid("bafkreifindings")


def test_policy_above_100_percent(chain_env: DevnetEnv) -> None:
    with reverts(FederationInvalidPolicy, quorumPercent=101):
        chain_env.ledger().set_verification_policy(101)
    assert chain_env.ledger().verification_policy() == 0


def test_attestation_of_a_round_not_finalized(federation_env: DevnetEnv) -> None:
    done = finalized_round(federation_env, federation_env.admitted, federation_env.admitted[:2], keccak(b"model"))
    inclusion = done.inclusion(federation_env.admitted[0].address)
    ledger = federation_env.ledger(federation_env.admitted[0])
    with reverts(FederationRoundNotFinalized, roundId=9, status=RoundStatus.NONE):
        ledger.attest_round(RoundId(9), done.model, True, Digest(ZERO), Cid(""), inclusion)
    rid = open_round(federation_env, base=done.model)
    with reverts(FederationRoundNotFinalized, roundId=rid, status=RoundStatus.OPEN):
        ledger.attest_round(RoundId(rid), done.model, True, Digest(ZERO), Cid(""), inclusion)
    assert ledger.attestation_of(RoundId(rid), ledger.sender) == 0


def test_attestation_by_a_participant_not_included(federation_env: DevnetEnv) -> None:
    alice, bob, carol = federation_env.admitted
    done = finalized_round(federation_env, [alice, bob, carol], [alice, bob], keccak(b"model"))
    with reverts(FederationNotIncluded, roundId=done.round_id, participant=carol.address):
        federation_env.ledger(carol).attest_round(
            done.round_id, done.model, True, Digest(ZERO), Cid(""), done.inclusion(carol.address)
        )
    with reverts(FederationNotIncluded, roundId=done.round_id, participant=carol.address):  # with alice's proof
        federation_env.ledger(carol).attest_round(
            done.round_id, done.model, True, Digest(ZERO), Cid(""), done.inclusion(alice.address)
        )
    assert federation_env.ledger().attestation_counts(done.round_id) == (0, 0)


def test_attestation_twice_and_with_wrong_values(federation_env: DevnetEnv) -> None:
    alice, bob, _ = federation_env.admitted
    done = finalized_round(federation_env, [alice, bob], [alice, bob], keccak(b"model"))
    ledger = federation_env.ledger(alice)
    inclusion = done.inclusion(alice.address)
    with reverts(FederationAttestationModelMismatch, roundId=done.round_id, expected=done.model, given=BASE):
        ledger.attest_round(done.round_id, Digest(BASE), True, Digest(ZERO), Cid(""), inclusion)
    with reverts(FederationInvalidAttestation, field="findingsDigest"):
        ledger.attest_round(done.round_id, Digest(BASE), False, Digest(ZERO), FINDINGS_CID, inclusion)
    with reverts(FederationInvalidAttestation, field="findingsCid"):
        ledger.attest_round(done.round_id, Digest(BASE), False, FINDINGS, Cid(""), inclusion)
    ledger.attest_round(done.round_id, done.model, True, Digest(ZERO), Cid(""), inclusion)
    with reverts(FederationAlreadyAttested, roundId=done.round_id, participant=alice.address):
        ledger.attest_round(done.round_id, Digest(BASE), False, FINDINGS, FINDINGS_CID, inclusion)
    assert ledger.attestation_counts(done.round_id) == (1, 0)


def test_open_round_without_the_attestation_quorum(federation_env: DevnetEnv) -> None:
    alice, bob, _ = federation_env.admitted
    done = finalized_round(federation_env, [alice, bob], [alice, bob], keccak(b"model"))
    federation_env.ledger().set_verification_policy(100)
    federation_env.ledger(alice).attest_round(
        done.round_id, done.model, True, Digest(ZERO), Cid(""), done.inclusion(alice.address)
    )
    with reverts(FederationAttestationQuorumNotMet, roundId=done.round_id, attestations=1, required=2):
        open_round(federation_env, base=done.model)
    assert federation_env.ledger().latest_round_id() == done.round_id


# --- disputes and exclusion contests ----------------------------------------------------


def test_dispute_of_a_round_not_finalized_or_without_findings(federation_env: DevnetEnv) -> None:
    admin = federation_env.ledger()
    agg = federation_env.accounts.aggregator.address
    with reverts(FederationRoundNotFinalized, roundId=1, status=RoundStatus.NONE):
        admin.dispute_round(RoundId(1), Address(agg), FINDINGS, FINDINGS_CID, "x")
    done = finalized_round(federation_env, federation_env.admitted, federation_env.admitted, keccak(b"model"))
    with reverts(FederationInvalidDispute, field="findingsDigest"):
        admin.dispute_round(done.round_id, Address(agg), Digest(ZERO), FINDINGS_CID, "x")
    with reverts(FederationInvalidDispute, field="findingsCid"):
        admin.dispute_round(done.round_id, Address(agg), FINDINGS, Cid(""), "x")
    with reverts(AccessControlUnauthorizedAccount, account=agg, neededRole=ADMIN_ROLE):
        federation_env.ledger(federation_env.accounts.aggregator).dispute_round(
            done.round_id, Address(agg), FINDINGS, FINDINGS_CID, "x"
        )
    assert admin.round(done.round_id).status == RoundStatus.FINALIZED
    assert admin.current_model_digest() == done.model


def test_contest_refusals(federation_env: DevnetEnv) -> None:
    alice, bob, carol = federation_env.admitted
    done = finalized_round(federation_env, [alice, bob, carol], [alice, bob], keccak(b"model"))
    ledger = federation_env.ledger(carol)
    update = done.commitments[carol.address]
    with reverts(FederationInvalidContest, field="updateDigest"):
        ledger.contest_exclusion(done.round_id, Digest(ZERO), update.cid)
    with reverts(FederationInvalidContest, field="cid"):
        ledger.contest_exclusion(done.round_id, update.update_digest, Cid(""))
    ledger.contest_exclusion(done.round_id, update.update_digest, update.cid)
    with reverts(FederationAlreadyContested, roundId=done.round_id, participant=carol.address):
        ledger.contest_exclusion(done.round_id, update.update_digest, update.cid)
    agg = federation_env.ledger(federation_env.accounts.aggregator)
    with reverts(FederationNoContest, roundId=done.round_id, participant=bob.address):
        agg.answer_contest(done.round_id, Address(bob.address), True)
    agg.answer_contest(done.round_id, Address(carol.address), False)
    with reverts(FederationContestAnswered, roundId=done.round_id, participant=carol.address):
        agg.answer_contest(done.round_id, Address(carol.address), True)
    assert agg.contest_of(done.round_id, Address(carol.address)) == 3


def test_contest_after_its_window(federation_env: DevnetEnv) -> None:
    alice, bob, carol = federation_env.admitted
    done = finalized_round(federation_env, [alice, bob, carol], [alice, bob], keccak(b"model"))
    nxt = finalized_round(federation_env, [alice, bob, carol], [alice, bob], keccak(b"model 2"))
    later = open_round(federation_env, base=nxt.model)
    update = done.commitments[carol.address]
    with reverts(FederationContestWindowClosed, roundId=done.round_id, latestRoundId=later):
        federation_env.ledger(carol).contest_exclusion(done.round_id, update.update_digest, update.cid)


# --- private tasks and rounds --------------------------------------------------------------

POLICY = keccak(b"privacy-policy")
ACCOUNTANT = keccak(b"accountant-inputs")
BUDGET = 3_000_000  # micro-epsilon: epsilon 3


def private_task(env: DevnetEnv, budget: int = BUDGET) -> None:
    env.federation().configure_private_task(
        keccak(b"spec"), keccak(b"strategy"), keccak(b"schema"), "bafyprivate", MAX_WINDOW, POLICY, budget
    )


@pytest.mark.parametrize("field", ["privacyPolicyDigest", "epsilonBudget"])
def test_invalid_private_task_names_the_field(federation_env: DevnetEnv, field: str) -> None:
    policy = ZERO if field == "privacyPolicyDigest" else POLICY
    budget = 0 if field == "epsilonBudget" else BUDGET
    with reverts(FederationInvalidTask, field=field):
        federation_env.federation().configure_private_task(
            keccak(b"spec"), keccak(b"strategy"), keccak(b"schema"), "bafyprivate", MAX_WINDOW, policy, budget
        )
    assert federation_env.federation().task().version == 1
    assert federation_env.federation().privacy_policy().epsilon_budget == 0


def test_private_round_cannot_be_commit_reveal(federation_env: DevnetEnv) -> None:
    private_task(federation_env)
    with reverts(FederationInvalidRound, field="revealDuration", value=60):
        federation_env.federation(federation_env.accounts.aggregator).open_round(BASE, "bafybase", 600, 1, 60)


def test_plain_commit_in_a_private_round(federation_env: DevnetEnv) -> None:
    private_task(federation_env)
    rid = open_round(federation_env)
    with reverts(FederationPrivacyClaimRequired, roundId=rid):
        federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 1, META)
    assert federation_env.federation().get_round(rid).commit_count == 0


def test_private_commit_in_a_plain_round(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    with reverts(FederationNotPrivateRound, roundId=rid):
        federation_env.federation(federation_env.admitted[0]).commit_private_update(
            rid, UPD, "bafyu", 1, META, 1, ACCOUNTANT
        )


def test_private_commit_without_accountant_digest(federation_env: DevnetEnv) -> None:
    private_task(federation_env)
    rid = open_round(federation_env)
    with reverts(FederationInvalidCommitment, field="accountantDigest"):
        federation_env.federation(federation_env.admitted[0]).commit_private_update(rid, UPD, "bafyu", 1, META, 1, ZERO)


def test_privacy_claims_past_the_budget_or_decreasing(federation_env: DevnetEnv, advance_time: Any) -> None:
    private_task(federation_env)
    alice = federation_env.admitted[0]
    fed = federation_env.federation(alice)
    rid = open_round(federation_env, duration=60)
    fed.commit_private_update(rid, UPD, "bafyu", 1, META, 2_000_000, ACCOUNTANT)
    advance_time(61)
    finalize(federation_env, rid)
    rid2 = open_round(federation_env, base=keccak(b"model"))
    with reverts(FederationPrivacyBudgetExceeded, participant=alice.address, spent=2_000_000, claimed=BUDGET + 1,
                 budget=BUDGET) as info:
        fed.commit_private_update(rid2, UPD, "bafyu", 1, META, BUDGET + 1, ACCOUNTANT)
    assert (info.value.spent, info.value.claimed, info.value.budget) == (2_000_000, BUDGET + 1, BUDGET)
    with reverts(FederationPrivacyClaimDecreased, participant=alice.address, spent=2_000_000, claimed=1_999_999):
        fed.commit_private_update(rid2, UPD, "bafyu", 1, META, 1_999_999, ACCOUNTANT)
    assert fed.epsilon_spent(alice.address) == 2_000_000
    assert fed.get_round(rid2).commit_count == 0


# --- the membership token -----------------------------------------------------------------


def _membership_call(env: DevnetEnv, sender: str, function: str, *args: Any) -> None:
    """``function`` of the Federation's membership token called (eth_call) by ``sender``."""
    abi = load_artifact("FederationMembership")["abi"]
    codec = FunctionCodec(abi, skip_overloads=True)
    tx = {"to": env.federation().membership(), "from": sender, "data": codec.encode_call(function, *args)}
    env.conn.call(tx, decoder=RevertDecoder(abi), function=function)


def test_membership_token_refusals(federation_env: DevnetEnv) -> None:
    alice, bob, _ = federation_env.admitted
    token_id = int(alice.address, 16)
    federation = federation_env.deployment.address
    with reverts(MembershipNotTransferable, tokenId=token_id, **{"from": alice.address}, to=bob.address):
        _membership_call(federation_env, alice.address, "transferFrom", alice.address, bob.address, token_id)
    with reverts(MembershipNotTransferable, tokenId=0, **{"from": alice.address}, to=bob.address):
        _membership_call(federation_env, alice.address, "setApprovalForAll", bob.address, True)
    with reverts(MembershipUnauthorized, caller=alice.address):
        _membership_call(federation_env, alice.address, "mint", bob.address)
    with reverts(MembershipAlreadyMember, member=alice.address):
        _membership_call(federation_env, federation, "mint", alice.address)
    outsider = federation_env.accounts.outsider.address
    with reverts(MembershipNotMember, member=outsider):
        _membership_call(federation_env, federation, "burn", outsider)


# --- secure-aggregation rounds -----------------------------------------------------------

ADVERTISE, UNMASK = 300, 400


def open_secure(env: DevnetEnv, commit: int = 600) -> tuple[int, int, int, int]:
    """A secure round: its id, advertise deadline, commit deadline and unmask deadline."""
    fed = env.federation(env.accounts.aggregator)
    rid = fed.open_secure_round(BASE, "bafybase", ADVERTISE, commit, 1, UNMASK).round_id
    assert rid is not None
    info = fed.get_round(rid)
    return rid, info.advertise_deadline, info.deadline, info.unmask_deadline


def test_advertisement_refusals(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    env = federation_env
    plain = open_round(env, duration=60)
    alice, bob, _ = (env.federation(p) for p in env.admitted)
    with reverts(FederationNotSecureRound, roundId=plain):
        alice.post_advertisement(plain, UPD, "bafyad")
    advance_time(61)
    env.federation(env.accounts.aggregator).close_round(plain, "no advertisement in a plain round")
    rid, advertise_deadline, _, _ = open_secure(env)
    alice.post_advertisement(rid, UPD, "bafyad")
    with reverts(FederationDuplicateAdvertisement, roundId=rid, participant=env.admitted[0].address):
        alice.post_advertisement(rid, UPD, "bafyad")
    with reverts(FederationInvalidCommitment, field="digest"):
        bob.post_advertisement(rid, ZERO, "bafyad")
    with reverts(FederationInvalidCommitment, field="cid"):
        bob.post_advertisement(rid, UPD, "")
    with reverts(FederationAdvertisePhaseActive, roundId=rid, advertiseDeadline=advertise_deadline):
        alice.commit_update(rid, UPD, "bafyu", 10, META)
    advance_time(ADVERTISE + 1)
    with reverts(FederationAdvertiseTooLate, roundId=rid, advertiseDeadline=advertise_deadline):
        bob.post_advertisement(rid, UPD, "bafyad")
    with reverts(FederationNotAdvertised, roundId=rid, participant=env.admitted[1].address):
        bob.commit_update(rid, UPD, "bafyu", 10, META)


def test_unmasking_refusals(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    env = federation_env
    alice, bob, _ = (env.federation(p) for p in env.admitted)
    rid, _, deadline, unmask_deadline = open_secure(env)
    alice.post_advertisement(rid, UPD, "bafyad")
    bob.post_advertisement(rid, UPD, "bafyad")
    advance_time(ADVERTISE + 1)
    alice.commit_update(rid, UPD, "bafyu", 10, META)
    with reverts(FederationCommitPhaseActive, roundId=rid, deadline=deadline):
        alice.post_unmasking_shares(rid, UPD, "bafysh")
    bob.commit_update(rid, keccak(b"bob"), "bafyu2", 10, META)
    with reverts(FederationNotCommitted, roundId=rid, participant=env.admitted[2].address):
        env.federation(env.admitted[2]).post_unmasking_shares(rid, UPD, "bafysh")
    alice.post_unmasking_shares(rid, UPD, "bafysh")
    with reverts(FederationDuplicateUnmaskingShares, roundId=rid, participant=env.admitted[0].address):
        alice.post_unmasking_shares(rid, UPD, "bafysh")
    aggregator = env.federation(env.accounts.aggregator)
    with reverts(FederationUnmaskPhaseActive, roundId=rid, unmaskDeadline=unmask_deadline):
        aggregator.close_round(rid, "bob's shares are missing")
    advance_time(unmask_deadline - env.conn.block_timestamp() + 1)
    with reverts(FederationUnmaskTooLate, roundId=rid, unmaskDeadline=unmask_deadline):
        bob.post_unmasking_shares(rid, UPD, "bafysh")
    aggregator.close_round(rid, "bob dropped out")


def test_secure_round_durations_are_checked(federation_env: DevnetEnv) -> None:
    fed = federation_env.federation(federation_env.accounts.aggregator)
    with reverts(FederationInvalidRound, field="advertiseDuration", value=0):
        fed.open_secure_round(BASE, "bafybase", 0, 600, 1, UNMASK)
    with reverts(FederationInvalidRound, field="unmaskDuration", value=0):
        fed.open_secure_round(BASE, "bafybase", ADVERTISE, 600, 1, 0)
    with reverts(FederationCommitWindowTooLong, commitDuration=MAX_WINDOW + 1, maxCommitDuration=MAX_WINDOW):
        fed.open_secure_round(BASE, "bafybase", MAX_WINDOW + 1, 600, 1, UNMASK)


def test_signed_round_refusals(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    env = federation_env
    aggregator = env.federation(env.accounts.aggregator)
    alice = env.federation(env.admitted[0])
    root, digest = keccak(b"set root"), keccak(b"set blob")
    with reverts(FederationNotSignedRound, roundId=1):
        rid = open_round(env, duration=600)
        advance_time(601)
        aggregator.post_commitment_set(rid, root, 1, digest, "bafyset")
    aggregator.close_round(rid, "plain")
    report = aggregator.open_signed_round(BASE, "bafybase", 600, 1, 300)
    signed = report.round_id
    assert signed is not None
    deadline = aggregator.get_round(signed).deadline
    with reverts(FederationEscapeWindowNotOpen, roundId=signed):
        alice.commit_update(signed, UPD, "bafyu", 10, META)
    with reverts(FederationInvalidSetCount, roundId=signed, count=4, eligibleCount=3):
        aggregator.post_commitment_set(signed, root, 4, digest, "bafyset")
    advance_time(deadline - env.conn.block_timestamp() + 301)
    with reverts(FederationCommitmentSetTooLate, roundId=signed, lastPostTime=deadline + 300):
        aggregator.post_commitment_set(signed, root, 1, digest, "bafyset")
    aggregator.close_round(signed, "no set")
    signed = aggregator.open_signed_round(BASE, "bafybase", 600, 1, 300).round_id
    assert signed is not None
    aggregator.post_commitment_set(signed, root, 3, digest, "bafyset")  # everyone signed: no need to wait
    escape_deadline = aggregator.signed_round(signed).escape_deadline
    with reverts(FederationCommitmentSetPosted, roundId=signed):
        aggregator.post_commitment_set(signed, root, 3, digest, "bafyset")
    advance_time(escape_deadline - env.conn.block_timestamp() + 1)
    with reverts(FederationEscapeWindowClosed, roundId=signed, escapeDeadline=escape_deadline):
        alice.commit_update(signed, UPD, "bafyu", 10, META)
    aggregator.close_round(signed, "done")
    env.federation(env.accounts.admin).configure_private_task(
        keccak(b"spec"), keccak(b"strategy"), keccak(b"schema"), "bafyp", TASK_MAX_COMMIT_DURATION, keccak(b"p"), 7
    )
    with reverts(FederationPrivateSignedRound, epsilonBudget=7):
        aggregator.open_signed_round(BASE, "bafybase", 600, 1, 300)


def test_every_generated_class_has_a_test_here() -> None:
    """Each class of fedchain.reverts for an error of the Federation's own interfaces (IFederation,
    IFederationMembership) or its access control is expected (``with reverts(Class, ...)``) by a test of this
    module; the OpenZeppelin governance errors the governance client maps are tested in test_governance.py."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    expected = {
        node.args[0].id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "reverts"
        and node.args and isinstance(node.args[0], ast.Name)
    }
    ours = {name for name in REVERTS if name.startswith(("Federation", "Membership", "AccessControl"))}
    assert len(ours) == 67  # 61 of IFederation, 4 of IFederationMembership, 2 of AccessControl
    assert sorted(ours - expected) == []


# --- actors in events ------------------------------------------------------------------


def test_task_configured_names_the_admin_who_configured_it(chain_env: DevnetEnv) -> None:
    second_admin = chain_env.accounts.participants[6]
    chain_env.federation().grant_role(ADMIN_ROLE, second_admin.address)
    ledger = chain_env.ledger(second_admin)
    report = ledger.configure_task(Digest(keccak(b"s")), Digest(keccak(b"t")), Digest(keccak(b"d")), Cid("bafycfg"), 7200)
    events = [e for e in ledger.history(report.block_number) if isinstance(e, TaskConfigured)]
    assert [(e.version, e.configured_by, e.max_commit_duration) for e in events] == [
        (1, Address(second_admin.address), 7200)
    ]


def test_registration_and_admission_events_carry_the_dataset_size(chain_env: DevnetEnv) -> None:
    p = chain_env.accounts.participants[0]
    registered = chain_env.ledger(p).register("Clinic", "health", b"\x02", 4321)
    admitted = chain_env.ledger().admit(Address(p.address))
    events = chain_env.ledger().history(registered.block_number)
    assert [(type(e).__name__, e.participant, getattr(e, "declared_samples", None), getattr(e, "approved_samples", None))
            for e in events if isinstance(e, (ParticipantRegistered, ParticipantAdmitted))] == [
        ("ParticipantRegistered", Address(p.address), 4321, None),
        ("ParticipantAdmitted", Address(p.address), None, 4321),
    ]
    admitted_by = [e.admitted_by for e in events if isinstance(e, ParticipantAdmitted)]
    assert admitted_by == [Address(chain_env.accounts.admin.address)] and admitted.block_number > registered.block_number
    assert chain_env.ledger().participant(Address(p.address)).declared_samples == 4321


def test_round_events_name_the_aggregator_who_acted(
    federation_env: DevnetEnv, advance_time: Callable[[int], int]
) -> None:
    opener, closer = federation_env.accounts.aggregator, federation_env.accounts.participants[7]
    by_opener, by_closer = Address(opener.address), Address(closer.address)
    federation_env.federation().grant_role(AGGREGATOR_ROLE, closer.address)
    start = federation_env.conn.block_number()
    first = federation_env.ledger(opener).open_round(Digest(BASE), Cid("bafybase"), 60, 1).round_id
    assert first is not None
    federation_env.ledger(federation_env.admitted[0]).commit_update(first, Digest(UPD), Cid("bafyu"), 1, Digest(META))
    advance_time(61)
    federation_env.ledger(closer).finalize_round(
        first, Digest(keccak(b"m")), Cid("bafym"), Digest(keccak(b"r")), Digest(keccak(b"a")),
        Digest(keccak(b"e")), Cid("bafye"), 1,
    )
    second = federation_env.ledger(closer).open_round(Digest(keccak(b"m")), Cid("bafym"), 60, 1).round_id
    assert second is not None
    advance_time(61)
    federation_env.ledger(opener).close_round(second, "nothing committed")
    actors = [(type(e).__name__, e.round_id, _actor(e)) for e in federation_env.ledger().history(start)
              if isinstance(e, (RoundOpened, RoundFinalized, RoundClosed))]
    assert actors == [
        ("RoundOpened", first, by_opener),
        ("RoundFinalized", first, by_closer),
        ("RoundOpened", second, by_closer),
        ("RoundClosed", second, by_opener),
    ]


def _actor(event: RoundOpened | RoundFinalized | RoundClosed) -> Address:
    if isinstance(event, RoundOpened):
        return event.opened_by
    if isinstance(event, RoundFinalized):
        return event.finalized_by
    return event.closed_by

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

from fedchain.chain.federation import ADMIN_ROLE, AGGREGATOR_ROLE
from fedchain.errors import ContractRevertError, ExitCode
from fedchain.ports import (
    ParticipantStatus,
    RoundClosed,
    RoundFinalized,
    RoundOpened,
    RoundStatus,
    TaskConfigured,
)
from fedchain.reverts import (
    REVERTS,
    AccessControlBadConfirmation,
    AccessControlUnauthorizedAccount,
    FederationAlreadyRegistered,
    FederationBaseModelMismatch,
    FederationCommitPhaseActive,
    FederationCommitTooLate,
    FederationDuplicateCommit,
    FederationInvalidCommitment,
    FederationInvalidIncludedCount,
    FederationInvalidRegistration,
    FederationInvalidResult,
    FederationInvalidRound,
    FederationInvalidStatus,
    FederationInvalidTask,
    FederationNotActive,
    FederationNotRegistered,
    FederationRoundInProgress,
    FederationRoundNotOpen,
    FederationTaskNotConfigured,
    FederationTooFewUpdates,
    FederationUnknownRound,
    TypedRevertError,
)
from fedchain.types import Address, Cid, Digest
from tests.fixtures_devnet import DevnetEnv

pytestmark = pytest.mark.devnet

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
    chain_env.federation(p).register("org", "health", b"")
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
    chain_env.federation(p).register("org", "health", b"")
    with reverts(FederationAlreadyRegistered, participant=p.address):
        chain_env.federation(p).register("org", "health", b"")


def test_register_without_organisation(chain_env: DevnetEnv) -> None:
    with reverts(FederationInvalidRegistration, field="organisation") as info:
        chain_env.federation(chain_env.accounts.participants[0]).register("", "health", b"")
    assert info.value.field == "organisation"


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
    federation_env.federation(newcomer).register("late", "x", b"")
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


@pytest.mark.parametrize("field", [*TASK_FIELDS, "configCid"])
def test_invalid_task_names_the_field(chain_env: DevnetEnv, field: str) -> None:
    spec, strategy, schema = (ZERO if field == k else keccak(k.encode()) for k in TASK_FIELDS)
    with reverts(FederationInvalidTask, field=field):
        chain_env.federation().configure_task(spec, strategy, schema, "" if field == "configCid" else "bafycfg")


def test_invalid_task_names_the_first_offending_field(chain_env: DevnetEnv) -> None:
    with reverts(FederationInvalidTask, field="strategyDigest"):
        chain_env.federation().configure_task(keccak(b"spec"), ZERO, ZERO, "")


def test_configure_task_during_open_round(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    with reverts(FederationRoundInProgress, roundId=rid):
        federation_env.federation().configure_task(keccak(b"a"), keccak(b"b"), keccak(b"c"), "bafy2")


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
    federation_env.federation(who).register("late", "x", b"")
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


def test_every_generated_class_has_a_test_here() -> None:
    """Each class of fedchain.reverts is expected (``with reverts(Class, ...)``) by a test of this module."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    expected = {
        node.args[0].id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "reverts"
        and node.args and isinstance(node.args[0], ast.Name)
    }
    assert sorted(set(REVERTS) - expected) == []


# --- actors in events ------------------------------------------------------------------


def test_task_configured_names_the_admin_who_configured_it(chain_env: DevnetEnv) -> None:
    second_admin = chain_env.accounts.participants[6]
    chain_env.federation().grant_role(ADMIN_ROLE, second_admin.address)
    ledger = chain_env.ledger(second_admin)
    report = ledger.configure_task(Digest(keccak(b"s")), Digest(keccak(b"t")), Digest(keccak(b"d")), Cid("bafycfg"))
    events = [e for e in ledger.history(report.block_number) if isinstance(e, TaskConfigured)]
    assert [(e.version, e.configured_by) for e in events] == [(1, Address(second_admin.address))]


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

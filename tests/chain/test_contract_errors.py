"""Every custom error of Federation, decoded with its exact arguments, against the real devnet."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pytest
from eth_hash.auto import keccak

from fedchain.chain.federation import ADMIN_ROLE, AGGREGATOR_ROLE
from fedchain.errors import ContractRevertError
from fedchain.ports import ParticipantStatus, RoundStatus
from tests.fixtures_devnet import DevnetEnv

pytestmark = pytest.mark.devnet

ZERO = b"\x00" * 32
BASE = keccak(b"base-model")
UPD = keccak(b"update")
META = keccak(b"meta")


@contextmanager
def reverts(name: str, **args: Any) -> Iterator[None]:
    with pytest.raises(ContractRevertError) as info:
        yield
    assert info.value.error_name == name
    assert info.value.error_args == args


def open_round(env: DevnetEnv, duration: int = 3600, min_updates: int = 1, base: bytes = BASE) -> int:
    report = env.federation(env.accounts.aggregator).open_round(base, "bafybase", duration, min_updates)
    assert report.round_id is not None
    return report.round_id


def finalize(env: DevnetEnv, round_id: int, included: int = 1, model: bytes = keccak(b"model")) -> None:
    env.federation(env.accounts.aggregator).finalize_round(
        round_id, model, "bafymodel", keccak(b"root"), keccak(b"agg"), keccak(b"ev"), "bafyev", included
    )


# --- participants --------------------------------------------------------------------


def test_register_twice(chain_env: DevnetEnv) -> None:
    p = chain_env.accounts.participants[0]
    chain_env.federation(p).register("org", "health", b"")
    with reverts("FederationAlreadyRegistered", participant=p.address):
        chain_env.federation(p).register("org", "health", b"")


def test_register_without_organisation(chain_env: DevnetEnv) -> None:
    with reverts("FederationInvalidRegistration"):
        chain_env.federation(chain_env.accounts.participants[0]).register("", "health", b"")


def test_admit_unregistered(chain_env: DevnetEnv) -> None:
    who = chain_env.accounts.outsider.address
    with reverts("FederationInvalidStatus", participant=who, status=ParticipantStatus.NONE):
        chain_env.federation().admit(who)


def test_admit_twice(federation_env: DevnetEnv) -> None:
    who = federation_env.admitted[0].address
    with reverts("FederationInvalidStatus", participant=who, status=ParticipantStatus.ACTIVE):
        federation_env.federation().admit(who)


def test_admit_during_open_round(federation_env: DevnetEnv) -> None:
    newcomer = federation_env.accounts.participants[5]
    federation_env.federation(newcomer).register("late", "x", b"")
    rid = open_round(federation_env)
    with reverts("FederationRoundInProgress", roundId=rid):
        federation_env.federation().admit(newcomer.address)
    assert federation_env.federation().participant(newcomer.address).status == ParticipantStatus.PENDING


def test_remove_removed(federation_env: DevnetEnv) -> None:
    who = federation_env.admitted[0].address
    federation_env.federation().remove(who, "left")
    with reverts("FederationInvalidStatus", participant=who, status=ParticipantStatus.REMOVED):
        federation_env.federation().remove(who, "again")


def test_admit_needs_admin_role(chain_env: DevnetEnv) -> None:
    p = chain_env.accounts.participants[0]
    chain_env.federation(p).register("org", "health", b"")
    with reverts("AccessControlUnauthorizedAccount", account=p.address, neededRole=ADMIN_ROLE):
        chain_env.federation(p).admit(p.address)


# --- task ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["spec", "strategy", "schema", "cid"])
def test_invalid_task(chain_env: DevnetEnv, bad: str) -> None:
    digests = [ZERO if bad == k else keccak(k.encode()) for k in ("spec", "strategy", "schema")]
    with reverts("FederationInvalidTask"):
        chain_env.federation().configure_task(*digests, "" if bad == "cid" else "bafycfg")


def test_configure_task_during_open_round(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    with reverts("FederationRoundInProgress", roundId=rid):
        federation_env.federation().configure_task(keccak(b"a"), keccak(b"b"), keccak(b"c"), "bafy2")


# --- rounds ----------------------------------------------------------------------------


def test_open_round_before_task(chain_env: DevnetEnv) -> None:
    with reverts("FederationTaskNotConfigured"):
        open_round(chain_env)


def test_open_round_while_open(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    with reverts("FederationRoundInProgress", roundId=rid):
        open_round(federation_env)


@pytest.mark.parametrize(
    "args",
    [(ZERO, "bafy", 60, 1), (BASE, "", 60, 1), (BASE, "bafy", 0, 1), (BASE, "bafy", 60, 0)],
    ids=["zero-digest", "empty-cid", "zero-duration", "zero-min"],
)
def test_invalid_round(federation_env: DevnetEnv, args: tuple[bytes, str, int, int]) -> None:
    with reverts("FederationInvalidRound"):
        federation_env.federation(federation_env.accounts.aggregator).open_round(*args)


def test_open_round_needs_aggregator_role(federation_env: DevnetEnv) -> None:
    admin = federation_env.accounts.admin
    with reverts("AccessControlUnauthorizedAccount", account=admin.address, neededRole=AGGREGATOR_ROLE):
        federation_env.federation(admin).open_round(BASE, "bafy", 60, 1)


def test_base_model_mismatch_after_finalize(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    for p in federation_env.admitted:  # every active participant committed: the commit phase is over
        federation_env.federation(p).commit_update(rid, UPD, "bafyu", 10, META)
    model = keccak(b"model-1")
    finalize(federation_env, rid, 3, model)
    with reverts("FederationBaseModelMismatch", expected=model, given=BASE):
        open_round(federation_env, base=BASE)


def test_commit_by_unregistered(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    who = federation_env.accounts.outsider
    with reverts("FederationNotRegistered", participant=who.address):
        federation_env.federation(who).commit_update(rid, UPD, "bafyu", 10, META)


def test_commit_by_pending(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    who = federation_env.accounts.participants[5]
    federation_env.federation(who).register("late", "x", b"")
    with reverts("FederationNotActive", participant=who.address, status=ParticipantStatus.PENDING):
        federation_env.federation(who).commit_update(rid, UPD, "bafyu", 10, META)


def test_commit_by_removed(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    who = federation_env.admitted[1]
    federation_env.federation().remove(who.address, "misbehaved")
    with reverts("FederationNotActive", participant=who.address, status=ParticipantStatus.REMOVED):
        federation_env.federation(who).commit_update(rid, UPD, "bafyu", 10, META)


def test_commit_unknown_round(federation_env: DevnetEnv) -> None:
    with reverts("FederationUnknownRound", roundId=42):
        federation_env.federation(federation_env.admitted[0]).commit_update(42, UPD, "bafyu", 10, META)


def test_commit_to_finalized_round(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    rid = open_round(federation_env, duration=60)
    federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)
    advance_time(61)
    finalize(federation_env, rid)
    with reverts("FederationRoundNotOpen", roundId=rid, status=RoundStatus.FINALIZED):
        federation_env.federation(federation_env.admitted[1]).commit_update(rid, UPD, "bafyu", 10, META)


def test_commit_too_late(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    rid = open_round(federation_env, duration=60)
    deadline = federation_env.federation().get_round(rid).deadline
    advance_time(61)
    with reverts("FederationCommitTooLate", roundId=rid, deadline=deadline):
        federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)


def test_commit_twice(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    p = federation_env.admitted[0]
    federation_env.federation(p).commit_update(rid, UPD, "bafyu", 10, META)
    with reverts("FederationDuplicateCommit", roundId=rid, participant=p.address):
        federation_env.federation(p).commit_update(rid, keccak(b"other"), "bafyo", 10, META)


@pytest.mark.parametrize("bad", ["digest", "cid", "samples"])
def test_invalid_commitment(federation_env: DevnetEnv, bad: str) -> None:
    rid = open_round(federation_env)
    with reverts("FederationInvalidCommitment"):
        federation_env.federation(federation_env.admitted[0]).commit_update(
            rid, ZERO if bad == "digest" else UPD, "" if bad == "cid" else "bafyu", 0 if bad == "samples" else 1, META
        )


def test_finalize_during_commit_phase(federation_env: DevnetEnv) -> None:
    rid = open_round(federation_env)
    deadline = federation_env.federation().get_round(rid).deadline
    federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)
    with reverts("FederationCommitPhaseActive", roundId=rid, deadline=deadline):
        finalize(federation_env, rid)
    with reverts("FederationCommitPhaseActive", roundId=rid, deadline=deadline):
        federation_env.federation(federation_env.accounts.aggregator).close_round(rid, "too early")


def test_finalize_more_than_committed(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    rid = open_round(federation_env, duration=60)
    federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)
    advance_time(61)
    with reverts("FederationInvalidIncludedCount", includedCount=2, commitCount=1):
        finalize(federation_env, rid, included=2)


def test_finalize_too_few(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    rid = open_round(federation_env, duration=60, min_updates=2)
    federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)
    advance_time(61)
    with reverts("FederationTooFewUpdates", roundId=rid, includedCount=1, minUpdates=2):
        finalize(federation_env, rid, included=1)


@pytest.mark.parametrize("bad", ["model", "root", "cid", "evidence-digest", "evidence-cid"])
def test_invalid_result(federation_env: DevnetEnv, advance_time: Callable[[int], int], bad: str) -> None:
    rid = open_round(federation_env, duration=60)
    federation_env.federation(federation_env.admitted[0]).commit_update(rid, UPD, "bafyu", 10, META)
    advance_time(61)
    with reverts("FederationInvalidResult"):
        federation_env.federation(federation_env.accounts.aggregator).finalize_round(
            rid,
            ZERO if bad == "model" else keccak(b"m"),
            "" if bad == "cid" else "bafym",
            ZERO if bad == "root" else keccak(b"r"),
            ZERO,
            ZERO if bad == "evidence-digest" else keccak(b"ev"),
            "" if bad == "evidence-cid" else "bafyev",
            1,
        )
    assert federation_env.federation().get_round(rid).status == RoundStatus.OPEN


def test_commit_phase_over_of_unknown_round(federation_env: DevnetEnv) -> None:
    with reverts("FederationUnknownRound", roundId=3):
        federation_env.federation().commit_phase_over(3)


def test_finalize_unknown_and_closed_round(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    agg = federation_env.federation(federation_env.accounts.aggregator)
    with reverts("FederationUnknownRound", roundId=7):
        agg.close_round(7, "nothing")
    rid = open_round(federation_env, duration=60)
    advance_time(61)
    agg.close_round(rid, "no updates")
    with reverts("FederationRoundNotOpen", roundId=rid, status=RoundStatus.CLOSED):
        finalize(federation_env, rid)


def test_revert_of_a_mined_transaction_is_decoded(federation_env: DevnetEnv) -> None:
    """With an explicit gas limit the failing transaction is mined (status 0) and then decoded."""
    rid = open_round(federation_env)
    p = federation_env.admitted[0]
    federation_env.federation(p).commit_update(rid, UPD, "bafyu", 10, META)
    block_before = federation_env.conn.block_number()
    with reverts("FederationDuplicateCommit", roundId=rid, participant=p.address):
        federation_env.federation(p).commit_update(rid, UPD, "bafyu", 10, META, gas=200_000)
    assert federation_env.conn.block_number() == block_before + 1  # it was mined
    assert federation_env.federation().get_round(rid).commit_count == 1

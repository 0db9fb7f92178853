"""ChainLedger on a private task against the real devnet: the privacy policy in task(), private rounds, privacy
claims joined into their commitments (index and rescan alike, reorganisations undone), the epsilon ledger and the
typed refusals of a claim past the budget, with nothing stored."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_hash.auto import keccak

from fedchain.chain.events import join_privacy_claims
from fedchain.chain.ledger import ChainLedger
from fedchain.ports import LedgerEvent, PrivacyPolicySet, PrivacySpent, TaskConfigured, UpdateCommitment
from fedchain.reverts import FederationPrivacyBudgetExceeded, FederationPrivacyClaimRequired
from fedchain.types import ZERO_DIGEST, Address, Cid, Digest, RoundId
from tests.chain.test_ledger import assert_same_answers, rescan_ledger
from tests.fixtures_devnet import TASK_CID, TASK_DIGESTS, TASK_MAX_COMMIT_DURATION, DevnetEnv

BASE = Digest(keccak(b"base"))
POLICY = Digest(keccak(b"privacy-policy"))
ACCOUNTANT = Digest(keccak(b"accountant-inputs"))
BUDGET = 3_000_000  # micro-epsilon
SPEC, STRATEGY, SCHEMA = (Digest(d) for d in TASK_DIGESTS)


@pytest.fixture()
def private_env(federation_env: DevnetEnv) -> DevnetEnv:
    """federation_env with task version 2 configured with a privacy policy."""
    federation_env.ledger().configure_private_task(
        SPEC, STRATEGY, SCHEMA, Cid("bafyprivate"), TASK_MAX_COMMIT_DURATION, POLICY, BUDGET
    )
    return federation_env


def _open(env: DevnetEnv, duration: int = 600) -> tuple[ChainLedger, RoundId]:
    agg = env.ledger(env.accounts.aggregator)
    current = agg.current_model_digest()
    rid = agg.open_round(current if any(current) else BASE, Cid("bafybase"), duration, 1).round_id
    assert rid is not None
    return agg, RoundId(rid)


def _commit(agg: ChainLedger, env: DevnetEnv, i: int, rid: RoundId, claim: int) -> None:
    agg.with_account(env.admitted[i]).commit_private_update(
        rid, Digest(keccak(b"u%d" % i)), Cid(f"bafyu{i}"), 10 + i, Digest(keccak(b"m")), claim, ACCOUNTANT
    )


def test_task_carries_the_privacy_policy(private_env: DevnetEnv) -> None:
    task = private_env.ledger().task()

    assert task is not None and task.version == 2 and task.config_cid == "bafyprivate"
    assert (task.privacy_policy_digest, task.epsilon_budget, task.private) == (POLICY, BUDGET, True)
    assert private_env.ledger().events.privacy_policies(2) == rescan_ledger(private_env).events.privacy_policies(2)
    assert private_env.ledger().events.privacy_policies(1) == []


def test_a_plain_task_after_a_private_one_has_no_policy(private_env: DevnetEnv) -> None:
    ledger = private_env.ledger()
    ledger.configure_task(SPEC, STRATEGY, SCHEMA, Cid(TASK_CID), TASK_MAX_COMMIT_DURATION)

    task = ledger.task()

    assert task is not None and task.version == 3
    assert (task.privacy_policy_digest, task.epsilon_budget, task.private) == (ZERO_DIGEST, 0, False)
    _, rid = _open(private_env)
    assert not ledger.round(rid).private


def test_private_commitment_carries_its_claim_everywhere(private_env: DevnetEnv) -> None:
    env = private_env
    start = env.conn.block_number() + 1
    agg, rid = _open(env)

    report = agg.with_account(env.admitted[0]).commit_private_update(
        rid, Digest(keccak(b"u0")), Cid("bafyu0"), 10, Digest(keccak(b"m")), 1_250_000, ACCOUNTANT
    )

    assert agg.round(rid).private and not agg.round(rid).commit_reveal
    (commitment,) = agg.commitments(rid)
    assert (commitment.epsilon_spent, commitment.accountant_digest) == (1_250_000, ACCOUNTANT)
    assert commitment.tx_hash == report.tx_hash
    assert agg.epsilon_spent(Address(env.admitted[0].address)) == 1_250_000
    assert agg.epsilon_spent(Address(env.admitted[1].address)) == 0
    events = agg.history(start)
    spent = [e for e in events if isinstance(e, PrivacySpent)]
    assert spent == [PrivacySpent(rid, Address(env.admitted[0].address), 1_250_000, ACCOUNTANT, report.block_number,
                                  report.tx_hash, commitment.log_index + 1)]
    assert [e for e in events if isinstance(e, UpdateCommitment)] == [commitment]
    assert rescan_ledger(env).commitments(rid) == [commitment]
    mine = agg.events.participant_events(env.admitted[0].address)
    assert commitment in mine and spent[0] in mine
    assert_same_answers(agg, rescan_ledger(env), env)


def test_history_has_the_privacy_policy_event_after_the_task_event(federation_env: DevnetEnv) -> None:
    ledger = federation_env.ledger()
    start = federation_env.conn.block_number() + 1

    report = ledger.configure_private_task(
        SPEC, STRATEGY, SCHEMA, Cid("bafyprivate"), TASK_MAX_COMMIT_DURATION, POLICY, BUDGET
    )

    configured, policy = ledger.history(start)
    assert isinstance(configured, TaskConfigured) and configured.version == 2
    assert policy == PrivacyPolicySet(2, Address(federation_env.accounts.admin.address), POLICY, BUDGET,
                                      report.block_number, report.tx_hash, configured.log_index + 1)


def test_a_claim_past_the_budget_is_refused_and_nothing_is_stored(
    private_env: DevnetEnv, advance_time: Callable[[int], int]
) -> None:
    env = private_env
    agg, rid = _open(env, duration=60)
    _commit(agg, env, 0, rid, 2_000_000)
    advance_time(61)
    agg.finalize_round(rid, Digest(keccak(b"g1")), Cid("bafyg"), BASE, BASE, BASE, Cid("bafye"), 1)
    _, rid2 = _open(env)
    alice = agg.with_account(env.admitted[0])
    before = agg.history()

    with pytest.raises(FederationPrivacyBudgetExceeded) as info:
        _commit(agg, env, 0, rid2, BUDGET + 1)

    err = info.value
    assert (err.participant, err.spent, err.claimed, err.budget) == (env.admitted[0].address, 2_000_000, BUDGET + 1,
                                                                     BUDGET)
    assert alice.epsilon_spent(Address(env.admitted[0].address)) == 2_000_000
    assert agg.round(rid2).commit_count == 0 and agg.commitments(rid2) == []
    assert agg.history() == before
    _commit(agg, env, 0, rid2, BUDGET)  # the whole budget, exactly, is allowed
    assert alice.epsilon_spent(Address(env.admitted[0].address)) == BUDGET


def test_a_plain_commit_is_refused_in_a_private_round(private_env: DevnetEnv) -> None:
    agg, rid = _open(private_env)

    with pytest.raises(FederationPrivacyClaimRequired) as info:
        agg.with_account(private_env.admitted[0]).commit_update(rid, BASE, Cid("bafyu"), 1, BASE)

    assert info.value.round_id == rid
    assert agg.round(rid).commit_count == 0


def test_a_reverted_private_commit_leaves_the_index_with_its_claim(private_env: DevnetEnv) -> None:
    env = private_env
    agg, rid = _open(env)
    snapshot = env.conn.request("evm_snapshot")
    _commit(agg, env, 0, rid, 1_000_000)
    assert [c.epsilon_spent for c in agg.commitments(rid)] == [1_000_000]

    env.conn.request("evm_revert", [snapshot])
    _commit(agg, env, 1, rid, 500_000)  # the same height, another transaction

    (commitment,) = agg.commitments(rid)
    bob = Address(env.admitted[1].address)
    assert (commitment.participant, commitment.epsilon_spent) == (bob, 500_000)
    assert [e.participant for e in agg.history() if isinstance(e, PrivacySpent)] == [bob]
    gone = agg.events.participant_events(env.admitted[0].address)
    assert not any(isinstance(e, (UpdateCommitment, PrivacySpent)) for e in gone)
    assert_same_answers(agg, rescan_ledger(env), env)


def test_join_leaves_commitments_of_other_transactions_alone() -> None:
    alice, bob = Address("0x" + "11" * 20), Address("0x" + "22" * 20)
    plain = UpdateCommitment(RoundId(1), bob, BASE, Cid("bafyb"), 1, BASE, 7, "0xbb", 0)
    mine = UpdateCommitment(RoundId(1), alice, BASE, Cid("bafya"), 1, BASE, 7, "0xaa", 1)
    claim = PrivacySpent(RoundId(1), alice, 42, ACCOUNTANT, 7, "0xaa", 2)
    other_round = PrivacySpent(RoundId(2), bob, 9, ACCOUNTANT, 7, "0xbb", 3)

    records: list[LedgerEvent] = [plain, mine, claim, other_round]
    joined = join_privacy_claims(records)

    assert joined[0] == plain and joined[2:] == [claim, other_round]
    assert isinstance(joined[1], UpdateCommitment)
    assert (joined[1].epsilon_spent, joined[1].accountant_digest) == (42, ACCOUNTANT)

"""ChainLedger on secure-aggregation rounds against the real devnet: the three phases in round(), the typed
advertisement, unmasking-shares and opening events (index and rescan alike, reorganisations undone), their early
ends, the typed refusals with nothing stored, and secure rounds that are private too."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_hash.auto import keccak

from fedchain.chain.ledger import ChainLedger
from fedchain.ports import (
    AdvertisementPosted,
    RoundOpened,
    RoundStatus,
    SecureLedger,
    SecureRoundOpened,
    UnmaskingSharesPosted,
    UpdateCommitment,
)
from fedchain.reverts import (
    FederationAdvertisePhaseActive,
    FederationCommitWindowTooLong,
    FederationDuplicateAdvertisement,
    FederationNotAdvertised,
    FederationNotCommitted,
    FederationNotSecureRound,
    FederationUnmaskPhaseActive,
)
from fedchain.types import Address, Cid, Digest, RoundId
from tests.chain.test_ledger import assert_same_answers, rescan_ledger
from tests.fixtures_devnet import TASK_DIGESTS, TASK_MAX_COMMIT_DURATION, DevnetEnv

BASE = Digest(keccak(b"base"))
ADVERTISE, COMMIT, UNMASK = 300, 600, 400
SPEC, STRATEGY, SCHEMA = (Digest(d) for d in TASK_DIGESTS)


def _open(env: DevnetEnv) -> tuple[ChainLedger, RoundId]:
    agg = env.ledger(env.accounts.aggregator)
    report = agg.open_secure_round(BASE, Cid("bafybase"), ADVERTISE, COMMIT, 1, UNMASK)
    assert report.round_id is not None
    return agg, RoundId(report.round_id)


def _advertise(agg: ChainLedger, env: DevnetEnv, i: int, rid: RoundId) -> None:
    agg.with_account(env.admitted[i]).post_advertisement(rid, Digest(keccak(b"ad%d" % i)), Cid(f"bafyad{i}"))


def _commit(agg: ChainLedger, env: DevnetEnv, i: int, rid: RoundId) -> None:
    agg.with_account(env.admitted[i]).commit_update(
        rid, Digest(keccak(b"masked%d" % i)), Cid(f"bafym{i}"), 10 + i, Digest(keccak(b"m"))
    )


def _unmask(agg: ChainLedger, env: DevnetEnv, i: int, rid: RoundId) -> None:
    agg.with_account(env.admitted[i]).post_unmasking_shares(rid, Digest(keccak(b"sh%d" % i)), Cid(f"bafysh{i}"))


def test_chain_ledger_is_a_secure_ledger(federation_env: DevnetEnv) -> None:
    ledger: SecureLedger = federation_env.ledger()

    assert isinstance(ledger, SecureLedger)


def test_secure_round_runs_its_three_phases(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    env = federation_env
    start = env.conn.block_number() + 1
    agg, rid = _open(env)
    opened_at = env.conn.block_timestamp()

    record = agg.round(rid)
    assert record.secure and not record.commit_reveal and not record.private
    assert (record.advertise_deadline, record.deadline, record.unmask_deadline) == (
        opened_at + ADVERTISE, opened_at + ADVERTISE + COMMIT, opened_at + ADVERTISE + COMMIT + UNMASK
    )
    opened, secure = agg.history(start)
    assert isinstance(opened, RoundOpened) and opened.deadline == record.deadline and opened.reveal_deadline == 0
    assert secure == SecureRoundOpened(rid, Address(env.accounts.aggregator.address), record.advertise_deadline,
                                       record.deadline, record.unmask_deadline, opened.block_number, opened.tx_hash,
                                       opened.log_index + 1)
    for i in range(3):
        assert not agg.advertise_phase_over(rid)
        _advertise(agg, env, i, rid)
    assert agg.advertise_phase_over(rid)  # everyone advertised: the phase ends early
    _commit(agg, env, 0, rid)
    _commit(agg, env, 1, rid)
    assert not agg.commit_phase_over(rid)  # the third advertiser may still commit
    advance_time(ADVERTISE + COMMIT + 1)
    assert agg.commit_phase_over(rid) and not agg.reveal_phase_over(rid)
    _unmask(agg, env, 0, rid)
    assert not agg.reveal_phase_over(rid)
    _unmask(agg, env, 1, rid)
    assert agg.reveal_phase_over(rid)  # every committer posted its shares: the round may end

    ads = agg.advertisements(rid)
    assert [(a.participant, a.digest, a.cid) for a in ads] == [
        (Address(env.admitted[i].address), Digest(keccak(b"ad%d" % i)), Cid(f"bafyad{i}")) for i in range(3)
    ]
    shares = agg.unmasking_shares(rid)
    assert [(s.participant, s.cid) for s in shares] == [
        (Address(env.admitted[i].address), Cid(f"bafysh{i}")) for i in range(2)
    ]
    assert all(isinstance(e, AdvertisementPosted) for e in ads) and all(
        isinstance(e, UnmaskingSharesPosted) for e in shares
    )
    record = agg.round(rid)
    assert (record.advertisement_count, record.commit_count, record.unmasking_count) == (3, 2, 2)
    fed = env.federation()
    assert fed.secure_participation(rid, env.admitted[1].address) == (True, True)
    assert fed.secure_participation(rid, env.admitted[2].address) == (True, False)
    mine = agg.events.participant_events(env.admitted[0].address)
    assert ads[0] in mine and shares[0] in mine
    rescan = rescan_ledger(env)
    assert rescan.advertisements(rid) == ads and rescan.unmasking_shares(rid) == shares
    assert_same_answers(agg, rescan, env)
    agg.finalize_round(rid, Digest(keccak(b"g")), Cid("bafyg"), BASE, BASE, BASE, Cid("bafye"), 2)
    assert agg.round(rid).status == RoundStatus.FINALIZED


def test_refusals_are_typed_and_store_nothing(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    env = federation_env
    agg, rid = _open(env)
    _advertise(agg, env, 0, rid)
    before = agg.history()

    with pytest.raises(FederationAdvertisePhaseActive) as early:
        _commit(agg, env, 0, rid)
    with pytest.raises(FederationDuplicateAdvertisement) as twice:
        _advertise(agg, env, 0, rid)
    advance_time(ADVERTISE + 1)
    with pytest.raises(FederationNotAdvertised) as silent:
        _commit(agg, env, 1, rid)

    assert (early.value.round_id, early.value.advertise_deadline) == (rid, agg.round(rid).advertise_deadline)
    assert (twice.value.round_id, twice.value.participant) == (rid, env.admitted[0].address)
    assert (silent.value.round_id, silent.value.participant) == (rid, env.admitted[1].address)
    assert agg.history() == before and agg.round(rid).commit_count == 0
    _commit(agg, env, 0, rid)
    with pytest.raises(FederationNotCommitted) as absent:
        _unmask(agg, env, 1, rid)  # the commit phase ended early (its only advertiser committed)
    with pytest.raises(FederationUnmaskPhaseActive) as waiting:
        agg.close_round(rid, "too early")
    assert (absent.value.round_id, absent.value.participant) == (rid, env.admitted[1].address)
    assert (waiting.value.round_id, waiting.value.unmask_deadline) == (rid, agg.round(rid).unmask_deadline)
    assert agg.unmasking_shares(rid) == [] and agg.round(rid).status == RoundStatus.OPEN


def test_open_secure_round_refuses_a_window_past_the_task_maximum(federation_env: DevnetEnv) -> None:
    agg = federation_env.ledger(federation_env.accounts.aggregator)

    with pytest.raises(FederationCommitWindowTooLong) as info:
        agg.open_secure_round(BASE, Cid("bafybase"), ADVERTISE, COMMIT, 1, TASK_MAX_COMMIT_DURATION + 1)

    assert (info.value.commit_duration, info.value.max_commit_duration) == (
        TASK_MAX_COMMIT_DURATION + 1, TASK_MAX_COMMIT_DURATION
    )
    assert agg.latest_round_id() == 0


def test_a_plain_round_takes_no_advertisement(federation_env: DevnetEnv) -> None:
    agg = federation_env.ledger(federation_env.accounts.aggregator)
    rid = RoundId(agg.open_round(BASE, Cid("bafybase"), 600, 1).round_id or 0)

    with pytest.raises(FederationNotSecureRound) as info:
        _advertise(agg, federation_env, 0, rid)

    assert info.value.round_id == rid
    assert not agg.round(rid).secure and agg.round(rid).advertise_deadline == 0
    assert agg.advertisements(rid) == []


def test_a_reverted_advertisement_leaves_the_index(federation_env: DevnetEnv) -> None:
    env = federation_env
    agg, rid = _open(env)
    snapshot = env.conn.request("evm_snapshot")
    _advertise(agg, env, 0, rid)
    assert [a.participant for a in agg.advertisements(rid)] == [Address(env.admitted[0].address)]

    env.conn.request("evm_revert", [snapshot])
    _advertise(agg, env, 1, rid)  # the same height, another transaction

    bob = Address(env.admitted[1].address)
    assert [a.participant for a in agg.advertisements(rid)] == [bob]
    assert [e.participant for e in agg.history() if isinstance(e, AdvertisementPosted)] == [bob]
    gone = agg.events.participant_events(env.admitted[0].address)
    assert not any(isinstance(e, AdvertisementPosted) for e in gone)
    assert_same_answers(agg, rescan_ledger(env), env)


def test_a_secure_private_round_takes_private_masked_inputs(
    federation_env: DevnetEnv, advance_time: Callable[[int], int]
) -> None:
    env = federation_env
    policy, accountant = Digest(keccak(b"policy")), Digest(keccak(b"accountant"))
    env.ledger().configure_private_task(SPEC, STRATEGY, SCHEMA, Cid("bafyprivate"), TASK_MAX_COMMIT_DURATION, policy,
                                        3_000_000)
    agg, rid = _open(env)
    _advertise(agg, env, 0, rid)
    advance_time(ADVERTISE + 1)

    agg.with_account(env.admitted[0]).commit_private_update(
        rid, Digest(keccak(b"masked")), Cid("bafym"), 10, Digest(keccak(b"m")), 1_000_000, accountant
    )

    record = agg.round(rid)
    assert record.secure and record.private
    (commitment,) = agg.commitments(rid)
    assert isinstance(commitment, UpdateCommitment)
    assert (commitment.epsilon_spent, commitment.accountant_digest) == (1_000_000, accountant)
    assert agg.commit_phase_over(rid)  # its only advertiser committed
    _unmask(agg, env, 0, rid)
    assert agg.reveal_phase_over(rid)


def test_bench_gas_reports_a_secure_round(federation_env: DevnetEnv) -> None:
    env = federation_env
    spec = importlib.util.spec_from_file_location("bench_gas", Path(__file__).resolve().parents[2] / "scripts" / "bench_gas.py")
    assert spec is not None and spec.loader is not None
    bench_gas = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_gas)
    bench = bench_gas.Bench(env.conn, env.federation(), env.accounts.admin, env.accounts.aggregator)

    gas = bench_gas.secure_gas(bench, env.admitted[:2])  # the third participant never advertises

    assert set(gas) == {"open_secure_gas", "advertise_gas", "commit_secure_gas", "unmask_gas", "finalize_secure_gas"}
    assert all(30_000 < value < 200_000 for value in gas.values()), gas
    record = env.ledger().round(RoundId(1))
    assert record.secure and record.status == RoundStatus.FINALIZED
    assert (record.advertisement_count, record.commit_count, record.unmasking_count) == (2, 2, 2)

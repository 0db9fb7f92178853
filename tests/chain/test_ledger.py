"""ChainLedger: events emitted (or not), typed history, merged round records, Merkle cross-check;
the incremental event index (same answers as a rescan, only new blocks read, reorganisations
undone) and waiting for blocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_hash.auto import keccak

from fedchain.chain.connection import Connection
from fedchain.chain.events import BlockWatcher, EventIndex
from fedchain.chain.ledger import ChainLedger, RescanEvents, read_history, to_record
from fedchain.codec.merkle import MerkleTree, commitment_leaf
from fedchain.errors import ChainError, ContractRevertError, RpcUnavailableError
from fedchain.ports import (
    Ledger,
    ParticipantAdmitted,
    ParticipantRegistered,
    ParticipantRemoved,
    ParticipantStatus,
    RoleChanged,
    RoundClosed,
    RoundFinalized,
    RoundOpened,
    RoundStatus,
    TaskConfigured,
    UpdateCommitment,
    event_position,
    update_seal,
)
from fedchain.types import Cid, Digest, RoundId
from tests.fixtures_devnet import TASK_CID, TASK_DIGESTS, TASK_MAX_COMMIT_DURATION, DevnetEnv

BASE = Digest(keccak(b"base"))


def commit_all(env: DevnetEnv, rid: RoundId) -> list[UpdateCommitment]:
    for i, p in enumerate(env.admitted):
        env.ledger(p).commit_update(rid, Digest(keccak(b"u%d" % i)), Cid(f"bafyu{i}"), 10 + i, Digest(keccak(b"m%d" % i)))
    return env.ledger().commitments(rid)


def test_chain_ledger_satisfies_the_protocol(chain_env: DevnetEnv) -> None:
    assert isinstance(chain_env.ledger(), Ledger)


def test_deployment_grants_roles_in_history(chain_env: DevnetEnv) -> None:
    events = chain_env.ledger().history()
    grants = [e for e in events if isinstance(e, RoleChanged)]
    assert {(e.account, e.granted) for e in grants} == {
        (chain_env.accounts.admin.address, True),
        (chain_env.accounts.aggregator.address, True),
    }
    assert len(grants) == 3  # DEFAULT_ADMIN_ROLE + ADMIN_ROLE to admin, AGGREGATOR_ROLE to aggregator


def test_participant_lifecycle_events_and_record(chain_env: DevnetEnv) -> None:
    p = chain_env.accounts.participants[0]
    ledger = chain_env.ledger(p)
    start = chain_env.conn.block_number() + 1
    reg = ledger.register("Acme Hospital", "health", b"\x02" * 33, 2_500)
    assert chain_env.ledger().participant(ledger.sender).declared_samples == 2_500
    adm = chain_env.ledger().admit(ledger.sender)
    rem = chain_env.ledger().remove(ledger.sender, "left the consortium")
    events = chain_env.ledger().history(start)
    assert events == [
        ParticipantRegistered(p.address, "Acme Hospital", "health", b"\x02" * 33, 2_500, reg.block_number, reg.tx_hash, 0),
        ParticipantAdmitted(p.address, chain_env.accounts.admin.address, 2_500, adm.block_number, adm.tx_hash, 0),
        ParticipantRemoved(
            p.address, chain_env.accounts.admin.address, "left the consortium", rem.block_number, rem.tx_hash, 0
        ),
    ]
    record = chain_env.ledger().participant(ledger.sender)
    assert record.status == ParticipantStatus.REMOVED
    assert (record.organisation, record.industry, record.public_key) == ("Acme Hospital", "health", b"\x02" * 33)
    assert (record.registered_block, record.status_changed_block) == (reg.block_number, rem.block_number)
    assert record.declared_samples == 2_500
    assert chain_env.ledger().active_count() == 0


def test_a_reverted_call_emits_nothing(chain_env: DevnetEnv) -> None:
    before = chain_env.ledger().history()
    block = chain_env.conn.block_number()
    with pytest.raises(ContractRevertError):
        chain_env.ledger(chain_env.accounts.participants[0]).register("", "x", b"", 1)
    assert chain_env.conn.block_number() == block  # refused at estimation: nothing was sent
    assert chain_env.ledger().history() == before


def test_task_read_back_with_cid(federation_env: DevnetEnv) -> None:
    task = federation_env.ledger().task()
    assert task is not None
    assert (task.version, task.config_cid, task.max_commit_duration) == (1, TASK_CID, TASK_MAX_COMMIT_DURATION)
    assert (task.model_spec_digest, task.strategy_digest, task.data_schema_digest) == TASK_DIGESTS
    report = federation_env.ledger().configure_task(
        Digest(keccak(b"s2")), Digest(keccak(b"t2")), Digest(keccak(b"d2")), Cid("bafycfg2"), 900
    )
    task2 = federation_env.ledger().task()
    assert task2 is not None and (task2.version, task2.config_cid, task2.max_commit_duration) == (2, "bafycfg2", 900)
    configured = [e for e in federation_env.ledger().history(report.block_number) if isinstance(e, TaskConfigured)]
    assert [(e.version, e.max_commit_duration) for e in configured] == [(2, 900)]


def test_no_task_reads_none(chain_env: DevnetEnv) -> None:
    assert chain_env.ledger().task() is None


def test_round_finalized_end_to_end(federation_env: DevnetEnv) -> None:
    agg = federation_env.ledger(federation_env.accounts.aggregator)
    opened = agg.open_round(BASE, Cid("bafybase"), 600, 2)
    rid = opened.round_id
    assert rid == 1 and agg.latest_round_id() == 1
    commitments = commit_all(federation_env, rid)
    assert [c.participant for c in commitments] == [p.address for p in federation_env.admitted]
    assert [c.num_samples for c in commitments] == [10, 11, 12]
    assert commitments == sorted(commitments, key=event_position)

    leaves = [
        commitment_leaf(c.round_id, c.participant, c.update_digest, c.cid, c.num_samples, c.metadata_digest)
        for c in commitments
    ]
    tree = MerkleTree.build(leaves)
    model = Digest(keccak(b"global-1"))
    fin = agg.finalize_round(
        rid, model, Cid("bafymodel"), tree.root, Digest(keccak(b"agg")), Digest(keccak(b"ev")), Cid("bafyev"), 3
    )
    assert fin.round_id == rid and fin.gas_used > 0 and fin.effective_gas_price > 0

    record = agg.round(rid)
    assert record.status == RoundStatus.FINALIZED
    assert (record.base_model_digest, record.base_model_cid) == (BASE, "bafybase")
    assert (record.model_digest, record.model_cid, record.merkle_root) == (model, "bafymodel", tree.root)
    assert (record.evidence_cid, record.included_count, record.commit_count, record.min_updates) == ("bafyev", 3, 3, 2)
    assert record.eligible_count == 3
    assert (record.opened_block, record.closed_block, record.close_reason) == (opened.block_number, fin.block_number, None)
    assert record.task_version == 1
    assert agg.current_model_digest() == model

    contract = federation_env.federation()
    for c, leaf in zip(commitments, leaves, strict=True):
        assert contract.commitment_leaf(
            c.round_id, c.participant, c.update_digest, c.cid, c.num_samples, c.metadata_digest
        ) == leaf
        assert contract.verify_inclusion(rid, leaf, tree.proof(leaf))
    outsider_leaf = commitment_leaf(rid, federation_env.accounts.outsider.address, keccak(b"x"), "bafyx", 1, keccak(b"y"))
    assert not contract.verify_inclusion(rid, outsider_leaf, tree.proof(leaves[0]))

    kinds = [type(e) for e in agg.history(opened.block_number)]
    assert kinds == [RoundOpened, UpdateCommitment, UpdateCommitment, UpdateCommitment, RoundFinalized]


@pytest.mark.parametrize("n_leaves", [1, 2, 5])
def test_merkle_proofs_verify_on_chain(
    federation_env: DevnetEnv, advance_time: Callable[[int], int], n_leaves: int
) -> None:
    leaves = [keccak(b"leaf-%d" % i) for i in range(n_leaves)]
    tree = MerkleTree.build(leaves)
    agg = federation_env.ledger(federation_env.accounts.aggregator)
    rid = agg.open_round(BASE, Cid("bafybase"), 60, 1).round_id
    participant = federation_env.ledger(federation_env.admitted[0])
    participant.commit_update(rid, Digest(keccak(b"u")), Cid("bafyu"), 1, Digest(keccak(b"m")))
    advance_time(61)
    agg.finalize_round(rid, Digest(keccak(b"g")), Cid("bafyg"), tree.root, BASE, BASE, Cid("bafye"), 1)
    contract = federation_env.federation()
    for leaf in leaves:
        proof = tree.proof(leaf)
        assert contract.verify_inclusion(rid, leaf, proof)
        assert not contract.verify_inclusion(rid, keccak(leaf), proof)


def test_round_closed_record(federation_env: DevnetEnv, advance_time: Callable[[int], int]) -> None:
    agg = federation_env.ledger(federation_env.accounts.aggregator)
    rid = agg.open_round(BASE, Cid("bafybase"), 60, 3).round_id
    participant = federation_env.ledger(federation_env.admitted[0])
    participant.commit_update(rid, Digest(keccak(b"u")), Cid("bafyu"), 1, Digest(keccak(b"m")))
    advance_time(61)
    closed = agg.close_round(rid, "below the minimum")
    record = agg.round(rid)
    assert (record.status, record.close_reason, record.closed_block) == (
        RoundStatus.CLOSED, "below the minimum", closed.block_number
    )
    assert (record.model_cid, record.evidence_cid, record.commit_count) == (None, None, 1)
    assert agg.current_model_digest() == b"\x00" * 32
    events = [e for e in agg.history(closed.block_number) if isinstance(e, RoundClosed)]
    assert [(e.round_id, e.commit_count, e.reason, e.block_number, e.tx_hash, e.log_index) for e in events] == [
        (rid, 1, "below the minimum", closed.block_number, closed.tx_hash, 0)
    ]


def test_removal_during_round_keeps_commit_phase_open(
    federation_env: DevnetEnv, advance_time: Callable[[int], int]
) -> None:
    admin = federation_env.ledger()
    agg = federation_env.ledger(federation_env.accounts.aggregator)
    rid = agg.open_round(BASE, Cid("bafybase"), 600, 1).round_id
    first, second, third = federation_env.admitted
    for p in (first, second):
        federation_env.ledger(p).commit_update(rid, Digest(keccak(p.key)), Cid("bafyu"), 1, Digest(keccak(b"m")))
    admin.remove(third.address, "left")
    record = agg.round(rid)
    assert (record.commit_count, record.eligible_count, admin.active_count()) == (2, 3, 2)
    assert not agg.commit_phase_over(rid)
    with pytest.raises(ContractRevertError) as info:
        agg.close_round(rid, "too early")
    assert info.value.error_name == "FederationCommitPhaseActive"
    advance_time(601)
    assert agg.commit_phase_over(rid)
    agg.close_round(rid, "deadline passed")
    assert agg.commit_phase_over(rid)


def test_removal_after_every_commit_lets_the_round_end(federation_env: DevnetEnv) -> None:
    agg = federation_env.ledger(federation_env.accounts.aggregator)
    rid = agg.open_round(BASE, Cid("bafybase"), 600, 1).round_id
    commit_all(federation_env, rid)
    federation_env.ledger().remove(federation_env.admitted[0].address, "left")
    assert agg.commit_phase_over(rid)
    closed = agg.close_round(rid, "every eligible participant committed")
    assert agg.round(rid).closed_block == closed.block_number


def test_unknown_round_is_a_clear_error(chain_env: DevnetEnv) -> None:
    with pytest.raises(ChainError, match="round 9 does not exist"):
        chain_env.ledger().round(RoundId(9))


def test_history_is_chunked_and_ordered(federation_env: DevnetEnv) -> None:
    contract = federation_env.federation()
    whole = read_history(contract)
    chunked = read_history(contract, chunk_blocks=2)
    assert chunked == whole
    assert [event_position(e) for e in whole] == sorted(event_position(e) for e in whole)
    assert len(whole) == 3 + 1 + 3 * 2  # role grants, task, 3 x (registered, admitted)


def test_bad_digest_is_refused_before_sending(federation_env: DevnetEnv) -> None:
    agg = federation_env.ledger(federation_env.accounts.aggregator)
    with pytest.raises(ChainError, match="base_model_digest must be 32 bytes, got 31"):
        agg.open_round(Digest(b"\x01" * 31), Cid("bafy"), 60, 1)


# --- the event index ---------------------------------------------------------------------


def rescan_ledger(env: DevnetEnv) -> ChainLedger:
    """A ledger on the old path: every lookup rescans the log from the deployment block."""
    contract = env.federation()
    return ChainLedger(contract, RescanEvents(contract))


def record_log_ranges(index: EventIndex, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The block ranges of the ``eth_getLogs`` requests ``index`` makes from now on."""
    ranges: list[tuple[int, int]] = []
    real = index.contract.logs

    def logs(from_block: int, to_block: int, *, topics: list[Any] | None = None) -> list[dict[str, Any]]:
        ranges.append((from_block, to_block))
        return real(from_block, to_block, topics=topics)

    monkeypatch.setattr(index.contract, "logs", logs)
    return ranges


def assert_same_answers(indexed: ChainLedger, rescan: ChainLedger, env: DevnetEnv) -> None:
    for rid in range(1, int(rescan.latest_round_id()) + 1):
        assert indexed.round(RoundId(rid)) == rescan.round(RoundId(rid))
        assert indexed.commitments(RoundId(rid)) == rescan.commitments(RoundId(rid))
        assert indexed.seals(RoundId(rid)) == rescan.seals(RoundId(rid))
        assert indexed.advertisements(RoundId(rid)) == rescan.advertisements(RoundId(rid))
        assert indexed.unmasking_shares(RoundId(rid)) == rescan.unmasking_shares(RoundId(rid))
    for account in env.accounts.participants:
        assert indexed.participant(account.address) == rescan.participant(account.address)
        assert indexed.events.participant_events(account.address) == rescan.events.participant_events(account.address)
    assert indexed.task() == rescan.task()
    for version in (1, 2, 3):
        assert indexed.events.task_configs(version) == rescan.events.task_configs(version)
        assert indexed.events.privacy_policies(version) == rescan.events.privacy_policies(version)
    head = env.conn.block_number()
    start = env.deployment.block_number
    middle = (start + head) // 2
    for lo, hi in ((0, None), (start, middle), (middle + 1, head), (head, head), (head + 1, head)):
        assert indexed.history(lo, hi) == rescan.history(lo, hi)


def open_commit_finalize(agg: ChainLedger, participants: list[Any], *, check: Callable[[], None]) -> RoundId:
    current = agg.current_model_digest()
    rid = agg.open_round(current if any(current) else BASE, Cid("bafybase"), 600, 1).round_id
    assert rid is not None
    check()
    for i, p in enumerate(participants):
        agg.with_account(p).commit_update(rid, Digest(keccak(b"u%d" % i)), Cid(f"bafyu{i}"), 10 + i, Digest(keccak(b"m")))
        check()
    leaves = [
        commitment_leaf(c.round_id, c.participant, c.update_digest, c.cid, c.num_samples, c.metadata_digest)
        for c in agg.commitments(rid)
    ]
    agg.finalize_round(rid, Digest(keccak(b"g%d" % rid)), Cid("bafyg"), MerkleTree.build(leaves).root, BASE, BASE,
                       Cid("bafye"), len(leaves))
    check()
    return rid


def test_the_index_answers_as_a_rescan_after_interleaved_writes_and_reads(
    federation_env: DevnetEnv, advance_time: Callable[[int], int]
) -> None:
    env = federation_env
    indexed = env.ledger(env.accounts.aggregator)
    rescan = rescan_ledger(env)
    admin = indexed.with_account(env.accounts.admin)

    def check() -> None:
        assert_same_answers(indexed, rescan, env)

    check()
    open_commit_finalize(indexed, env.admitted, check=check)
    newcomer = env.accounts.participants[3]
    indexed.with_account(newcomer).register("Newcomer", "retail", b"\x03" * 33, 50)
    check()
    admin.admit(newcomer.address)
    check()
    rid = indexed.open_round(indexed.current_model_digest(), Cid("bafybase2"), 60, 3).round_id
    assert rid is not None
    indexed.with_account(newcomer).commit_update(rid, Digest(keccak(b"n")), Cid("bafyn"), 5, Digest(keccak(b"m")))
    check()
    advance_time(61)
    indexed.close_round(rid, "too few updates")
    check()
    admin.remove(env.admitted[1].address, "left")
    admin.configure_task(Digest(keccak(b"s2")), Digest(keccak(b"t2")), Digest(keccak(b"d2")), Cid("bafycfg2"), 600)
    check()
    open_commit_finalize(indexed, [env.admitted[0], env.admitted[2], newcomer], check=check)
    assert indexed.with_account(newcomer).events is indexed.events  # one index for all the accounts
    # a commit-reveal round: seals, then reveals
    rid = indexed.open_round(indexed.current_model_digest(), Cid("bafybase3"), 60, 1, 120).round_id
    assert rid is not None
    salt = keccak(b"salt")
    for p in (env.admitted[0], newcomer):
        update = Digest(keccak(p.address.encode()))
        indexed.with_account(p).seal_update(rid, update_seal(rid, p.address, update, "bafyr", 3, BASE, salt))
        check()
    assert len(indexed.seals(rid)) == 2 and indexed.commitments(rid) == []
    advance_time(61)
    indexed.with_account(newcomer).reveal_update(rid, Digest(keccak(newcomer.address.encode())), Cid("bafyr"), 3, BASE,
                                                 salt)
    check()
    assert [c.participant for c in indexed.commitments(rid)] == [newcomer.address]


def test_a_second_read_fetches_only_the_new_blocks(federation_env: DevnetEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    contract = federation_env.federation(federation_env.accounts.aggregator)
    index = EventIndex(contract, to_record)
    ledger = ChainLedger(contract, index)
    ranges = record_log_ranges(index, monkeypatch)
    ledger.history()
    head = federation_env.conn.block_number()
    assert ranges == [(federation_env.deployment.block_number, head)]
    ranges.clear()

    assert ledger.task() is not None and ledger.commitments(RoundId(1)) == []
    assert ranges == []  # no new block: nothing to fetch
    opened = ledger.open_round(BASE, Cid("bafybase"), 600, 1)
    assert ledger.round(RoundId(1)).opened_block == opened.block_number
    assert ledger.commitments(RoundId(1)) == []
    assert ranges == [(head + 1, opened.block_number)]


def test_a_long_catch_up_is_read_in_chunks(federation_env: DevnetEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    contract = federation_env.federation()
    index = EventIndex(contract, to_record, chunk_blocks=2)
    ranges = record_log_ranges(index, monkeypatch)
    events = index.events()
    head = federation_env.conn.block_number()
    assert events == read_history(federation_env.federation())
    assert all(hi - lo < 2 for lo, hi in ranges)
    assert [lo for lo, _ in ranges] == list(range(federation_env.deployment.block_number, head + 1, 2))
    assert ranges[-1][1] == head


def test_a_range_before_the_indexed_blocks_is_read_directly(federation_env: DevnetEnv) -> None:
    contract = federation_env.federation()
    start = federation_env.deployment.block_number
    index = EventIndex(contract, to_record, start_block=start + 3)
    assert index.events(start) == read_history(contract, start)
    assert index.events(start, start + 1) == read_history(contract, start, start + 1)


def test_events_of_reverted_blocks_leave_the_index(federation_env: DevnetEnv) -> None:
    env = federation_env
    agg = env.ledger(env.accounts.aggregator)
    rid = RoundId(agg.open_round(BASE, Cid("bafybase"), 600, 1).round_id or 0)
    snapshot = env.conn.request("evm_snapshot")
    agg.with_account(env.admitted[0]).commit_update(rid, Digest(keccak(b"u")), Cid("bafyu"), 1, Digest(keccak(b"m")))
    assert [c.participant for c in agg.commitments(rid)] == [env.admitted[0].address]

    env.conn.request("evm_revert", [snapshot])  # the commit's block is gone; the chain is shorter

    assert agg.commitments(rid) == []
    assert agg.history() == rescan_ledger(env).history()


def test_a_block_replaced_at_the_same_height_is_read_again(federation_env: DevnetEnv) -> None:
    env = federation_env
    agg = env.ledger(env.accounts.aggregator)
    rid = RoundId(agg.open_round(BASE, Cid("bafybase"), 600, 1).round_id or 0)
    snapshot = env.conn.request("evm_snapshot")
    first = agg.with_account(env.admitted[0]).commit_update(rid, Digest(keccak(b"u0")), Cid("bafyu0"), 1, Digest(keccak(b"m")))
    assert len(agg.commitments(rid)) == 1
    env.conn.request("evm_revert", [snapshot])

    second = agg.with_account(env.admitted[1]).commit_update(rid, Digest(keccak(b"u1")), Cid("bafyu1"), 2, Digest(keccak(b"m")))

    assert second.block_number == first.block_number and second.tx_hash != first.tx_hash
    assert [(c.participant, c.tx_hash) for c in agg.commitments(rid)] == [(env.admitted[1].address, second.tx_hash)]
    assert_same_answers(agg, rescan_ledger(env), env)


def test_anvil_reorg_drops_the_events_of_the_replaced_blocks(federation_env: DevnetEnv) -> None:
    env = federation_env
    agg = env.ledger(env.accounts.aggregator)
    rid = RoundId(agg.open_round(BASE, Cid("bafybase"), 600, 1).round_id or 0)
    for i, p in enumerate(env.admitted[:2]):
        agg.with_account(p).commit_update(rid, Digest(keccak(b"u%d" % i)), Cid(f"bafyu{i}"), 1, Digest(keccak(b"m")))
    assert len(agg.commitments(rid)) == 2
    head = env.conn.block_number()
    code = env.conn.code_at(env.deployment.address)

    env.conn.request("anvil_reorg", [2, []])  # the two commit blocks become two empty ones
    # anvil (1.7) rebuilds the fork point's state from its block-state history. Late in a long session that
    # history keeps only the newest few states in memory; the blocks of a test repeat those of the test before it
    # (evm_revert resets anvil's clock, so the same transactions give the same block hashes), a repeated hash
    # evicts the fork point's state to anvil's disk cache, and a state read back from there keeps every
    # account's storage but no contract's code: from then on every eth_call answers empty data (no waiting
    # brings the code back). The index never reads the contract's state, the reference rescan and the views do:
    # put the code anvil dropped back (a no-op when it kept it).
    env.conn.request("anvil_setCode", [env.deployment.address, "0x" + code.hex()])

    assert env.conn.block_number() == head
    assert agg.commitments(rid) == []
    assert_same_answers(agg, rescan_ledger(env), env)


def test_a_read_from_a_state_without_the_contracts_code_is_an_outage_not_empty_data(federation_env: DevnetEnv) -> None:
    env = federation_env
    agg = env.ledger(env.accounts.aggregator)
    rid = RoundId(agg.open_round(BASE, Cid("bafybase"), 600, 1).round_id or 0)
    # the node answers from a state without the contract's code, as anvil does after a reorganisation that lost it
    env.conn.request("anvil_setCode", [env.deployment.address, "0x"])

    with pytest.raises(RpcUnavailableError, match=f"latestRoundId: .*empty data from {env.deployment.address}"):
        agg.latest_round_id()
    with pytest.raises(RpcUnavailableError, match="getRound: .*has no code"):
        agg.round(rid)


def test_a_function_without_return_values_answers_empty_data(federation_env: DevnetEnv) -> None:
    contract = federation_env.federation(federation_env.accounts.outsider)
    data = contract.codec.encode_call("register", "Outsider", "retail", b"\x02" * 33, 10)
    tx = {"to": contract.address, "from": federation_env.accounts.outsider.address, "data": data}

    assert federation_env.conn.call(tx, decoder=contract.errors, function="register") == b""


def test_a_reorg_deeper_than_the_remembered_blocks_reads_the_log_again(
    federation_env: DevnetEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = federation_env
    contract = env.federation(env.accounts.aggregator)
    index = EventIndex(contract, to_record, reorg_depth=2)
    agg = ChainLedger(contract, index)
    rid = RoundId(agg.open_round(BASE, Cid("bafybase"), 600, 1).round_id or 0)
    snapshot = env.conn.request("evm_snapshot")
    for i, p in enumerate(env.admitted):
        agg.with_account(p).commit_update(rid, Digest(keccak(b"u%d" % i)), Cid(f"bafyu{i}"), 1, Digest(keccak(b"m")))
        assert len(agg.commitments(rid)) == i + 1
    env.conn.request("evm_revert", [snapshot])
    agg.with_account(env.admitted[2]).commit_update(rid, Digest(keccak(b"x")), Cid("bafyx"), 1, Digest(keccak(b"m")))
    ranges = record_log_ranges(index, monkeypatch)

    assert [c.cid for c in agg.commitments(rid)] == ["bafyx"]
    assert ranges == [(env.deployment.block_number, env.conn.block_number())]
    assert_same_answers(agg, rescan_ledger(env), env)


# --- waiting for blocks ------------------------------------------------------------------


def recording(conn: Connection, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The JSON-RPC methods ``conn.request`` is asked for from now on."""
    methods: list[str] = []
    real = conn.request

    def request(method: str, params: list[Any] | None = None) -> Any:
        methods.append(method)
        return real(method, params)

    monkeypatch.setattr(conn, "request", request)
    return methods


def mining_sleep(conn: Connection) -> Callable[[float], None]:
    """A ``sleep`` for the watcher that mines one block instead of waiting."""
    return lambda _seconds: conn.request("evm_mine")


def test_wait_for_block_returns_the_new_block(chain_env: DevnetEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = Connection(chain_env.url)
    methods = recording(conn, monkeypatch)
    watcher = BlockWatcher(conn, sleep=mining_sleep(chain_env.conn))
    ledger = ChainLedger(chain_env.federation(), watcher=watcher)
    head = ledger.block_number()

    assert ledger.wait_for_block(head, timeout_s=30) == head + 1
    assert methods == ["eth_newBlockFilter", "eth_getFilterChanges"]
    assert watcher.filter_id is not None and not watcher.polling


def test_wait_for_block_returns_at_once_when_a_later_block_exists(chain_env: DevnetEnv) -> None:
    def no_sleep(_seconds: float) -> None:
        raise AssertionError("waited although a later block exists")

    ledger = ChainLedger(chain_env.federation(), watcher=BlockWatcher(chain_env.conn, sleep=no_sleep))
    head = ledger.block_number()
    assert ledger.wait_for_block(head - 1, timeout_s=30) == head


def test_wait_for_block_times_out_on_a_quiet_devnet(chain_env: DevnetEnv) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    watcher = BlockWatcher(chain_env.conn, sleep=sleep, clock=lambda: now[0])
    ledger = ChainLedger(chain_env.federation(), watcher=watcher)
    head = ledger.block_number()

    assert ledger.wait_for_block(head, timeout_s=2.0) == head
    assert now[0] == pytest.approx(2.0)


def test_a_filter_the_node_forgot_is_created_again(chain_env: DevnetEnv) -> None:
    watcher = BlockWatcher(chain_env.conn, sleep=mining_sleep(chain_env.conn))
    head = chain_env.conn.block_number()
    assert watcher.wait_for_block(head, timeout_s=0) == head
    forgotten = watcher.filter_id
    assert chain_env.conn.request("eth_uninstallFilter", [forgotten]) is True

    assert watcher.wait_for_block(head, timeout_s=30) == head + 1
    assert watcher.filter_id not in (None, forgotten)


class _NoFilters(Connection):
    """A node that refuses filters (as some hosted RPC endpoints do)."""

    def request(self, method: str, params: list[Any] | None = None) -> Any:
        if method == "eth_newBlockFilter":
            raise ChainError(f"{method} failed on {self.url}: {{'code': -32601, 'message': 'method not found'}}")
        return super().request(method, params)


def test_wait_for_block_polls_the_block_number_when_the_node_refuses_filters(chain_env: DevnetEnv) -> None:
    watcher = BlockWatcher(_NoFilters(chain_env.url), sleep=mining_sleep(chain_env.conn))
    head = chain_env.conn.block_number()

    assert watcher.wait_for_block(head, timeout_s=30) == head + 1
    assert watcher.polling and watcher.filter_id is None


def test_threads_waiting_on_one_watcher_share_its_requests(chain_env: DevnetEnv) -> None:
    import threading

    conn = Connection(chain_env.url)
    watcher = BlockWatcher(conn)
    head = conn.block_number()
    watcher.wait_for_block(head, timeout_s=0)  # the filter exists
    before = conn.rpc.counts.copy()
    results: list[int] = []
    waiters = [threading.Thread(target=lambda: results.append(watcher.wait_for_block(head, timeout_s=30)))
               for _ in range(20)]
    for w in waiters:
        w.start()
    threading.Event().wait(0.5)  # twenty threads wait through ten poll intervals
    chain_env.conn.request("evm_mine")
    for w in waiters:
        w.join(timeout=30)

    sent = conn.rpc.counts - before
    assert results == [head + 1] * 20
    # one poll per interval (about 10 before the block, a few after) and one block-number read per
    # poll that saw blocks, not twenty of each
    assert sent["eth_getFilterChanges"] <= 20, sent
    assert sent["eth_blockNumber"] <= 3, sent

"""ChainLedger: events emitted (or not), typed history, merged round records, Merkle cross-check."""

from __future__ import annotations

from typing import Callable

import pytest
from eth_hash.auto import keccak

from fedchain.chain.ledger import read_history
from fedchain.errors import ChainError, ContractRevertError
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
)
from fedchain.codec.merkle import MerkleTree, commitment_leaf
from fedchain.types import Cid, Digest, RoundId
from tests.fixtures_devnet import TASK_CID, TASK_DIGESTS, DevnetEnv

pytestmark = pytest.mark.devnet

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
    reg = ledger.register("Acme Hospital", "health", b"\x02" * 33)
    adm = chain_env.ledger().admit(ledger.sender)
    rem = chain_env.ledger().remove(ledger.sender, "left the consortium")
    events = chain_env.ledger().history(start)
    assert events == [
        ParticipantRegistered(p.address, "Acme Hospital", "health", b"\x02" * 33, reg.block_number, reg.tx_hash, 0),
        ParticipantAdmitted(p.address, chain_env.accounts.admin.address, adm.block_number, adm.tx_hash, 0),
        ParticipantRemoved(
            p.address, chain_env.accounts.admin.address, "left the consortium", rem.block_number, rem.tx_hash, 0
        ),
    ]
    record = chain_env.ledger().participant(ledger.sender)
    assert record.status == ParticipantStatus.REMOVED
    assert (record.organisation, record.industry, record.public_key) == ("Acme Hospital", "health", b"\x02" * 33)
    assert (record.registered_block, record.status_changed_block) == (reg.block_number, rem.block_number)
    assert chain_env.ledger().active_count() == 0


def test_a_reverted_call_emits_nothing(chain_env: DevnetEnv) -> None:
    before = chain_env.ledger().history()
    block = chain_env.conn.block_number()
    with pytest.raises(ContractRevertError):
        chain_env.ledger(chain_env.accounts.participants[0]).register("", "x", b"")
    assert chain_env.conn.block_number() == block  # refused at estimation: nothing was sent
    assert chain_env.ledger().history() == before


def test_task_read_back_with_cid(federation_env: DevnetEnv) -> None:
    task = federation_env.ledger().task()
    assert task is not None
    assert (task.version, task.config_cid) == (1, TASK_CID)
    assert (task.model_spec_digest, task.strategy_digest, task.data_schema_digest) == TASK_DIGESTS
    report = federation_env.ledger().configure_task(
        Digest(keccak(b"s2")), Digest(keccak(b"t2")), Digest(keccak(b"d2")), Cid("bafycfg2")
    )
    task2 = federation_env.ledger().task()
    assert task2 is not None and (task2.version, task2.config_cid) == (2, "bafycfg2")
    configured = [e for e in federation_env.ledger().history(report.block_number) if isinstance(e, TaskConfigured)]
    assert [e.version for e in configured] == [2]


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
    for c, leaf in zip(commitments, leaves):
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
    federation_env.ledger(federation_env.admitted[0]).commit_update(rid, Digest(keccak(b"u")), Cid("bafyu"), 1, Digest(keccak(b"m")))
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
    federation_env.ledger(federation_env.admitted[0]).commit_update(rid, Digest(keccak(b"u")), Cid("bafyu"), 1, Digest(keccak(b"m")))
    advance_time(61)
    closed = agg.close_round(rid, "below the minimum")
    record = agg.round(rid)
    assert (record.status, record.close_reason, record.closed_block) == (RoundStatus.CLOSED, "below the minimum", closed.block_number)
    assert (record.model_cid, record.evidence_cid, record.commit_count) == (None, None, 1)
    assert agg.current_model_digest() == b"\x00" * 32
    events = [e for e in agg.history(closed.block_number) if isinstance(e, RoundClosed)]
    assert events == [RoundClosed(rid, 1, "below the minimum", closed.block_number, closed.tx_hash, 0)]


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

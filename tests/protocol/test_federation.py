"""The federation loop on the real devnet and IPFS node, with in-process agents."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedchain import reverts
from fedchain.codec.canonical import sha256_digest
from fedchain.codec.merkle import MerkleTree
from fedchain.errors import AggregationError, ContractRevertError, DataSchemaError, IntegrityError, ParticipantError
from fedchain.fl.attacks import AttackSpec
from fedchain.ports import RoundStatus
from fedchain.protocol.participant import ParticipantAgent
from fedchain.protocol.rounds import leaf_of
from fedchain.types import RoundId
from tests.protocol.harness import Fed, make_fed, make_task_files


def test_three_clean_rounds_chain_models_and_audit_clean(fed: Fed) -> None:
    outcomes = [fed.run_round() for _ in range(3)]

    assert [o.finalized for o in outcomes] == [True, True, True]
    assert all(len(o.included) == 3 and not o.rejected for o in outcomes)
    for prev, rid in zip(outcomes, (2, 3), strict=False):
        assert fed.reader.round(RoundId(rid)).base_model_digest == prev.model_digest
    assert fed.reader.current_model_digest() == outcomes[-1].model_digest
    report = fed.auditor().audit()
    assert report.ok, report.findings
    assert report.rounds_checked == (1, 2, 3)


def test_inclusion_proof_of_a_commitment_verifies_on_chain(fed: Fed) -> None:
    fed.run_round()
    commitments = fed.reader.commitments(RoundId(1))
    tree = MerkleTree.build(leaf_of(c) for c in commitments)
    leaf = leaf_of(commitments[0])

    assert fed.reader.round(RoundId(1)).merkle_root == tree.root
    assert fed.reader.contract.verify_inclusion(1, leaf, tree.proof(leaf))


def test_submitting_twice_commits_once(fed: Fed) -> None:
    rid = fed.open_round()
    first = fed.participants[0].submit(rid)
    second = fed.participants[0].submit(rid)

    assert not first.already_committed and second.already_committed
    assert second.cid == first.cid
    assert len(fed.reader.commitments(rid)) == 1


def test_replayed_commit_is_refused_by_the_contract(fed: Fed) -> None:
    rid = fed.open_round()
    fed.participants[0].submit(rid)
    c = fed.reader.commitments(rid)[0]

    with pytest.raises(ContractRevertError) as info:
        fed.participants[0].ledger.commit_update(rid, c.update_digest, c.cid, c.num_samples, c.metadata_digest)
    assert isinstance(info.value, reverts.FederationDuplicateCommit)
    assert len(fed.reader.commitments(rid)) == 1


def test_removed_participant_cannot_commit_and_round_completes_without_it(fed: Fed) -> None:
    removed = fed.participants[2]
    fed.admin.remove(removed.address, "left the consortium")
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)

    with pytest.raises(ParticipantError, match="not admitted"):
        removed.submit(rid)
    with pytest.raises(ContractRevertError) as info:
        removed.ledger.commit_update(rid, b"\x01" * 32, "bafkreiexample", 10, b"\x02" * 32)
    assert isinstance(info.value, reverts.FederationNotActive)
    out = fed.aggregator.finalize(rid)
    assert out.finalized and len(out.included) == 2
    assert fed.auditor().audit().ok


def test_participant_not_yet_admitted_is_refused(chain_env, ipfs_store, task_files, tmp_path: Path) -> None:
    fed = make_fed(chain_env, ipfs_store, task_files, tmp_path)
    newcomer = chain_env.accounts.participants[5]
    ledger = chain_env.ledger(newcomer)
    ledger.register("newcomer", "healthcare", b"\x02" + bytes(32), 1_000)
    rid = fed.open_round()
    agent = ParticipantAgent(ledger, ipfs_store, task_files.clients[0].path, tmp_path / "newcomer")

    with pytest.raises(ParticipantError, match="pending"):
        agent.submit(rid)
    assert fed.reader.commitments(rid) == []


def test_data_not_matching_the_schema_is_refused_before_anything_is_committed(fed: Fed, tmp_path: Path) -> None:
    other = make_task_files(tmp_path / "other", dataset="german_credit")
    rid = fed.open_round()
    agent = ParticipantAgent(fed.participants[0].ledger, fed.store, other.clients[0].path, tmp_path / "p0")

    with pytest.raises(DataSchemaError):
        agent.submit(rid)
    assert fed.reader.commitments(rid) == []


def test_corrupt_global_model_is_refused_before_anything_is_committed(fed: Fed) -> None:
    good = fed.store.put(b"some other bytes than the recorded model")
    agg = fed.aggregator.ledger
    rid = agg.open_round(sha256_digest(b"the model the chain records"), good, 600, 2).round_id

    with pytest.raises(IntegrityError, match="global model"):
        fed.participants[0].submit(RoundId(rid))
    assert fed.reader.commitments(RoundId(rid)) == []


def test_round_below_minimum_is_closed_on_chain_with_a_reason(fed: Fed, advance_time) -> None:
    rid = fed.open_round()
    fed.participants[0].submit(rid)
    advance_time(fed.doc.commit_duration + 1)

    out = fed.aggregator.finalize(rid)

    rnd = fed.reader.round(rid)
    assert not out.finalized and rnd.status == RoundStatus.CLOSED
    assert "too few valid updates: 1 < minimum 2" in (rnd.close_reason or "")
    assert fed.reader.current_model_digest() == bytes(32)
    assert fed.auditor().audit().ok


def test_attacker_is_rejected_by_the_recorded_rule_and_the_audit_reproduces_it(chain_env, ipfs_store, tmp_path: Path) -> None:
    files = make_task_files(tmp_path, robust="norm_clip:max_norm=1,reject=true")
    fed = make_fed(chain_env, ipfs_store, files, tmp_path, attacks={2: AttackSpec("scaling")})

    out = fed.run_round()

    assert [(r.participant, r.rule) for r in out.rejected] == [(fed.participants[2].address, "norm_clip")]
    assert len(out.included) == 2
    report = fed.auditor().audit()
    assert report.ok, report.findings


def test_stateful_strategy_carries_server_and_client_state_and_audits_clean(chain_env, ipfs_store, tmp_path: Path) -> None:
    files = make_task_files(tmp_path, strategy="scaffold")
    fed = make_fed(chain_env, ipfs_store, files, tmp_path)

    fed.run_round()
    fed.run_round()

    from fedchain.protocol.blobs import decode_global

    model = decode_global(fed.store.get(fed.outcomes[-1].model_cid or ""))
    assert model.server_state and all(name.startswith("c/") for name in model.server_state)
    assert all((tmp_path / f"p{i}" / "client_state.npz").is_file() for i in range(3))
    report = fed.auditor().audit()
    assert report.ok, report.findings


def test_scaffold_participant_rejected_by_a_robust_rule_keeps_its_client_state(chain_env, ipfs_store,
                                                                            tmp_path: Path) -> None:
    """c = mean(c_i) over the included participants holds on the ledger too: a participant whose
    update was rejected discards the control variate that update carried."""
    import numpy as np

    from fedchain.protocol.blobs import decode_global
    from fedchain.protocol.training import load_client_state

    files = make_task_files(tmp_path, strategy="scaffold", robust="norm_clip:max_norm=1,reject=true")
    fed = make_fed(chain_env, ipfs_store, files, tmp_path, attacks={2: AttackSpec("scaling", 50.0)})

    first = fed.run_round()
    fed.run_round()  # each participant settles round 1's client state before training round 2

    assert [r.participant for r in first.rejected] == [fed.participants[2].address]
    states = [load_client_state(tmp_path / f"p{i}" / "client_state.npz") for i in range(3)]
    assert states[0].control and states[1].control and states[2].control is None
    model = decode_global(fed.store.get(first.model_cid or ""))
    for name, value in model.server_state.items():
        mean = np.mean([np.asarray(s.control[name.removeprefix("c/")], np.float64) for s in states[:2]], axis=0)  # type: ignore[index]
        np.testing.assert_allclose(value, mean, rtol=1e-4, atol=1e-6)
    assert fed.auditor().audit().ok


def test_participant_missing_the_deadline_is_skipped(fed: Fed, advance_time) -> None:
    from fedchain.errors import ContractRevertError

    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    advance_time(fed.doc.commit_duration + 1)

    with pytest.raises(ContractRevertError) as info:
        fed.participants[2].submit(rid)
    out = fed.aggregator.finalize(rid)

    assert isinstance(info.value, reverts.FederationCommitTooLate)
    assert out.finalized and set(out.included) == {p.address for p in fed.participants[:2]}
    with pytest.raises(ParticipantError, match="not open"):
        fed.participants[2].submit(rid)
    assert fed.auditor().audit().ok


class _RacedLedger:
    """The participant's real ledger, except that its first commit is beaten on chain by an
    identical commit of the same account (another instance of the agent winning the race)."""

    def __init__(self, ledger) -> None:
        self._ledger = ledger
        self._raced = False

    def __getattr__(self, name: str):
        return getattr(self._ledger, name)

    def commit_update(self, *args, **kwargs):
        if not self._raced:
            self._raced = True
            self._ledger.commit_update(*args, **kwargs)
        return self._ledger.commit_update(*args, **kwargs)


def test_duplicate_commit_revert_is_taken_as_already_committed(fed: Fed, tmp_path: Path) -> None:
    rid = fed.open_round()
    p = fed.participants[0]
    agent = ParticipantAgent(_RacedLedger(p.ledger), fed.store, p.data_path, tmp_path / "raced")

    res = agent.submit(rid)

    mine = fed.reader.commitments(rid)
    assert res.already_committed and len(mine) == 1 and res.cid == mine[0].cid
    # the round is still open: its client state waits aside until the round ends
    assert [f.name for f in (tmp_path / "raced").glob("client_state*")] == [f"client_state.pending-{rid}.npz"]


def test_pending_client_state_is_promoted_only_for_an_included_update(fed: Fed, tmp_path: Path) -> None:
    import numpy as np

    from fedchain.fl.records import ClientState
    from fedchain.protocol.training import load_client_state, save_client_state

    p = fed.participants[0]
    fed.run_round()
    fed.open_round()
    work = tmp_path / "restart"
    work.mkdir()
    save_client_state(work / "client_state.pending-1.npz", ClientState(control={"w": np.ones(2, np.float32)}))
    save_client_state(work / "client_state.pending-2.npz", ClientState(control={"w": np.zeros(2, np.float32)}))
    agent = ParticipantAgent(p.ledger, fed.store, p.data_path, work)

    agent.settle_state()

    # round 1 was finalised with its update included; it has no commitment in round 2
    assert sorted(f.name for f in work.iterdir()) == ["client_state.npz"]
    assert np.array_equal(load_client_state(work / "client_state.npz").control["w"], np.ones(2, np.float32))


class _StoreDownFor:
    """The real blob store, unreachable for the first ``n`` uploads."""

    def __init__(self, store, n: int) -> None:
        self._store = store
        self.failures_left = n

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def put(self, data: bytes):
        from fedchain.errors import StorageUnavailableError

        if self.failures_left:
            self.failures_left -= 1
            raise StorageUnavailableError("blob store unreachable")
        return self._store.put(data)


def test_participant_agent_rides_out_a_store_outage(fed: Fed, tmp_path: Path) -> None:
    rid = fed.open_round()
    p = fed.participants[0]
    store = _StoreDownFor(fed.store, 2)
    agent = ParticipantAgent(p.ledger, store, p.data_path, tmp_path / "outage", poll_interval_s=0.01)

    results = agent.run(until_round=int(rid))

    assert store.failures_left == 0
    assert [r.already_committed for r in results] == [False]
    assert [c.cid for c in fed.reader.commitments(rid)] == [results[0].cid]


class _LedgerDownFor:
    """The real ledger, unreachable for the first ``n`` reads of a participant record (the agent's start-up check)."""

    def __init__(self, ledger, n: int) -> None:
        self._ledger = ledger
        self.failures_left = n

    def __getattr__(self, name: str):
        return getattr(self._ledger, name)

    def participant(self, address):
        from fedchain.errors import RpcUnavailableError

        if self.failures_left:
            self.failures_left -= 1
            raise RpcUnavailableError("cannot reach the Ethereum node: connection reset by peer")
        return self._ledger.participant(address)


def test_participant_agent_start_up_rides_out_an_unreachable_node(fed: Fed, tmp_path: Path) -> None:
    rid = fed.open_round()
    p = fed.participants[0]
    ledger = _LedgerDownFor(p.ledger, 3)
    agent = ParticipantAgent(ledger, fed.store, p.data_path, tmp_path / "startup", poll_interval_s=0.01)
    ready: list[bool] = []

    results = agent.run(until_round=int(rid), on_ready=lambda: ready.append(True))

    assert ledger.failures_left == 0 and ready == [True]
    assert [c.cid for c in fed.reader.commitments(rid)] == [results[0].cid]


def test_participant_agent_gives_up_after_a_long_outage(fed: Fed, tmp_path: Path) -> None:
    from fedchain.errors import StorageUnavailableError

    fed.open_round()
    p = fed.participants[0]
    agent = ParticipantAgent(p.ledger, _StoreDownFor(fed.store, 10**6), p.data_path, tmp_path / "outage",
                             poll_interval_s=0.01, max_outage_s=0.05)

    with pytest.raises(StorageUnavailableError):
        agent.run(until_round=1)


def test_aggregator_waits_for_every_eligible_participant_not_the_active_count(fed: Fed, advance_time) -> None:
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    fed.admin.remove(fed.participants[2].address, "left mid-round")

    assert not fed.aggregator.commit_phase_over(rid)
    with pytest.raises(AggregationError, match="commit phase open"):
        fed.aggregator.finalize(rid, commit_timeout_s=0.3)
    advance_time(fed.doc.commit_duration + 1)

    assert fed.aggregator.commit_phase_over(rid)
    out = fed.aggregator.finalize(rid)
    assert out.finalized and len(out.included) == 2


def test_aggregator_pins_every_committed_blob_it_relies_on(fed: Fed) -> None:
    import httpx

    rid = fed.open_round()
    for p in fed.participants:
        p.submit(rid)
    cids = [c.cid for c in fed.reader.commitments(rid)]
    for cid in cids:  # as if each participant's node had dropped its pin
        httpx.post(f"{fed.store.api_url}/api/v0/pin/rm", params={"arg": cid}, timeout=10).raise_for_status()
    assert not any(fed.store.has(cid) for cid in cids)

    fed.aggregator.finalize(rid)

    assert all(fed.store.has(cid) for cid in cids)


def _journal(agent: ParticipantAgent) -> list[tuple[str, int]]:
    return [(e.event, int(e.round_id)) for e in agent.journal.entries()]


def test_participant_journals_its_commit_before_and_after_sending_it(fed: Fed) -> None:
    rid = fed.open_round()
    p = fed.participants[0]

    res = p.submit(rid)

    assert _journal(p) == [("intent", rid), ("committed", rid)]
    intent, committed = p.journal.entries()
    assert intent.cid == committed.cid == res.cid and intent.tx_hash is None
    assert committed.tx_hash == res.tx_hash == fed.reader.commitments(rid)[0].tx_hash
    assert committed.base_model_digest == fed.reader.round(rid).base_model_digest
    assert p.journal.path.name == "results.jsonl" and p.journal.path.stat().st_mode & 0o077 == 0


def test_a_restarted_participant_journals_the_commit_it_finds_on_chain_once(fed: Fed, tmp_path: Path) -> None:
    rid = fed.open_round()
    p = fed.participants[0]
    p.submit(rid)
    restarted = ParticipantAgent(p.ledger, fed.store, p.data_path, tmp_path / "elsewhere")

    restarted.submit(rid)
    restarted.submit(rid)

    assert _journal(restarted) == [("committed", rid)]
    assert restarted.journal.entries()[0].tx_hash == fed.reader.commitments(rid)[0].tx_hash


def test_a_commit_lost_by_a_rewound_chain_is_committed_again_loudly(
    fed: Fed, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    rid = fed.open_round()
    before_commit = fed.env.conn.request("evm_snapshot")
    p = fed.participants[0]
    first = p.submit(rid)
    fed.env.conn.request("evm_revert", [before_commit])  # the devnet restarts from an older state
    assert fed.reader.commitments(rid) == [] and fed.reader.round(rid).status == RoundStatus.OPEN
    caplog.set_level(logging.WARNING, logger="fedchain")

    again = p.submit(rid)

    assert f"journaled commit tx {first.tx_hash}" in caplog.text and "missing from the chain" in caplog.text
    assert not again.already_committed and again.cid == first.cid
    assert [(c.cid, c.tx_hash) for c in fed.reader.commitments(rid)] == [(first.cid, again.tx_hash)]
    assert _journal(p) == [("intent", rid), ("committed", rid), ("recommitted", rid)]
    for other in fed.participants[1:]:
        other.submit(rid)
    out = fed.aggregator.finalize(rid)
    assert out.finalized and len(out.included) == 3
    assert fed.auditor().audit().ok


def test_a_running_participant_commits_again_when_the_chain_rewinds_under_it(
    fed: Fed, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import threading
    import time

    rid = fed.open_round()
    before_commit = fed.env.conn.request("evm_snapshot")
    p = fed.participants[0]
    p.block_wait_s = 0.2
    caplog.set_level(logging.WARNING, logger="fedchain")
    results: list = []
    agent = threading.Thread(target=lambda: results.extend(p.run(until_round=int(rid), wait_for_end=True)))
    agent.start()
    try:
        deadline = time.monotonic() + 120
        # rewind once the agent has its receipt and journaled the commit (a rewind while it still waits for the
        # receipt is another case: the transaction is gone before the agent knew it was mined)
        while int(rid) not in p.journal.commits() and agent.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        lost = fed.reader.commitments(rid)[0]
        fed.env.conn.request("evm_revert", [before_commit])
        while not fed.reader.commitments(rid) and agent.is_alive() and time.monotonic() < deadline:
            fed.env.conn.request("evm_mine")  # the devnet's interval miner
            time.sleep(0.2)
        assert agent.is_alive()  # the round is open: the agent waits for its end
        for other in fed.participants[1:]:
            other.submit(rid)
        fed.aggregator.finalize(rid)
    finally:
        agent.join(timeout=60)

    assert not agent.is_alive()
    assert [r.already_committed for r in results] == [False, False]
    assert f"journaled commit tx {lost.tx_hash}" in caplog.text
    mine = [c for c in fed.reader.commitments(rid) if c.participant == p.address]
    assert [c.cid for c in mine] == [lost.cid] and mine[0].tx_hash == results[1].tx_hash
    assert fed.auditor().audit().ok


def test_a_journaled_commit_does_not_replay_into_a_round_reopened_on_another_model(
    fed: Fed, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    first_round = fed.open_round()
    for p in fed.participants:
        p.submit(first_round)
    before_finalize = fed.env.conn.request("evm_snapshot")
    fed.aggregator.finalize(first_round)
    rid = fed.open_round()
    p = fed.participants[0]
    first = p.submit(rid)
    fed.env.conn.request("evm_revert", [before_finalize])  # round 1's finalisation and round 2 are gone
    fed.aggregator.dishonest = "shift-model"  # round 1 ends on another model this time
    fed.aggregator.finalize(first_round)
    fed.aggregator.dishonest = None
    assert fed.open_round() == rid
    caplog.set_level(logging.WARNING, logger="fedchain")

    again = p.submit(rid)

    assert "round now starts from model" in caplog.text and "taking part anew" in caplog.text
    assert again.cid != first.cid and not again.already_committed
    assert [c.cid for c in fed.reader.commitments(rid)] == [again.cid]


def _open_on_another_model(fed: Fed) -> RoundId:
    """A round opened (directly on the ledger) on a well-formed model that is not the task's
    initial one: the contract accepts any base model until a first round is finalised."""
    from fedchain.protocol.blobs import initial_global

    other = initial_global(fed.doc.spec(), fed.doc.seed + 1)
    return RoundId(fed.aggregator.ledger.open_round(sha256_digest(other), fed.store.put(other), 600, 2).round_id)


def test_participant_refuses_a_first_round_that_does_not_start_from_the_initial_model(fed: Fed) -> None:
    rid = _open_on_another_model(fed)

    with pytest.raises(IntegrityError, match=f"round {rid} starts from model .* not the task's initial model"):
        fed.participants[0].submit(rid)
    assert fed.reader.commitments(rid) == []


def test_aggregator_refuses_to_attach_to_a_first_round_on_another_model(fed: Fed) -> None:
    rid = _open_on_another_model(fed)

    with pytest.raises(IntegrityError, match="not the task's initial model"):
        fed.aggregator.transport.attach(rid)


def test_a_round_after_rounds_closed_without_a_model_must_still_start_from_the_initial_model(
    fed: Fed, advance_time
) -> None:
    first = fed.open_round()
    advance_time(fed.doc.commit_duration + 1)
    assert not fed.aggregator.finalize(first).finalized  # closed: nobody committed
    rid = _open_on_another_model(fed)

    with pytest.raises(IntegrityError, match=f"round {rid} starts from model"):
        fed.participants[0].submit(rid)

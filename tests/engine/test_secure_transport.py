"""LedgerTransport on secure-aggregation rounds against the devnet and the store: the round opened with
openSecureRound, finalised with the unmasked mean of the survivors' deltas (within the quantisation bound) and the
unmasking in the evidence, dropouts after advertising and after committing recovered, a round below the threshold
closed with the reason; and the in-memory transport running the protocol in process (plain FedAvg within the
quantisation bound, dropouts recovered, below the threshold closed)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedchain.chain.incentives import Incentives, deploy_incentives, set_budget_call
from fedchain.codec.canonical import sha256_digest
from fedchain.engine.loop import run_round
from fedchain.engine.memory import InMemoryTransport, MemoryParticipant
from fedchain.errors import ConfigError
from fedchain.fl.privacy import PrivacyPolicy
from fedchain.ports import RoundStatus
from fedchain.protocol.blobs import decode_global
from fedchain.protocol.evidence import Evidence
from fedchain.protocol.rounds import inclusion_root
from fedchain.sim.config import partition_clients
from fedchain.sim.memory import participant_address
from fedchain.types import Address, RoundId
from tests.engine.secure_helpers import SecureRound, make_secure_fed, secure_task_files
from tests.protocol.harness import Fed, make_fed
from tests.protocol.test_rewards_claims import BUDGET, Rewarded, _admin_send, rewarded_fed


def _published(fed: Fed, rid: RoundId) -> tuple[dict[str, np.ndarray], Evidence]:
    rnd = fed.reader.round(rid)
    assert rnd.status == RoundStatus.FINALIZED and rnd.model_cid is not None and rnd.evidence_cid is not None
    model = decode_global(fed.store.get(rnd.model_cid))
    evidence = Evidence.from_bytes(fed.store.get(rnd.evidence_cid))
    return dict(model.weights), evidence


def _close_to(got: dict[str, np.ndarray], want: dict[str, np.ndarray], bound: float) -> float:
    assert sorted(got) == sorted(want)
    worst = max(float(np.max(np.abs(np.asarray(got[n], np.float64) - want[n]))) for n in want)
    assert worst <= bound + 1e-6, (worst, bound)
    return worst


def test_an_honest_secure_round_is_finalised_with_the_mean_delta(chain_env: Any, ipfs_store: Any,
                                                                 tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, ipfs_store, tmp_path, 4)
    opened = fed.aggregator.transport.open_round()
    rnd = fed.reader.round(opened.round_id)
    assert rnd.secure and rnd.advertise_deadline < rnd.deadline < rnd.unmask_deadline
    sr = SecureRound.attach(fed, opened.round_id)
    everyone = range(4)
    sr.advertise(everyone)
    sr.commit(everyone)
    sr.unmask(everyone)  # every phase ends early: nothing waits for a deadline

    report = fed.aggregator.finalize(opened.round_id)

    assert report.finalized and report.commit_count == 4
    addresses = sorted((Address(a.address) for a in chain_env.accounts.participants[:4]), key=str.lower)
    assert list(report.included) == addresses and report.rejected == ()
    assert report.metrics["secagg_survivors"] == 4 and report.metrics["secagg_dropped"] == 0
    weights, evidence = _published(fed, opened.round_id)
    assert fed.doc.secagg is not None
    _close_to(weights, sr.expected(list(everyone)), fed.doc.secagg.quantiser().mean_error_bound())
    commitments = fed.reader.commitments(opened.round_id)
    assert bytes(fed.reader.round(opened.round_id).merkle_root) == bytes(inclusion_root(commitments, report.included))
    secure = evidence.secagg
    assert secure is not None and secure.members == 4 and secure.threshold == 3
    assert list(secure.survivors) == [m.address for m in sr.ctx.members] and secure.dropped == ()
    assert len(secure.revealers) == 4 and secure.findings == ()
    assert [r.digest for r in secure.masked_inputs] == [c.update_digest for c in commitments]
    assert Evidence.from_bytes(evidence.to_bytes()) == evidence
    assert bytes(secure.context_digest) == bytes(sr.ctx.digest)
    for c in commitments:  # the aggregator keeps the records on its node
        assert sha256_digest(fed.store.get(c.cid)) == bytes(c.update_digest)


def test_dropouts_after_advertising_and_after_committing_are_recovered(
        chain_env: Any, ipfs_store: Any, tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, ipfs_store, tmp_path, 5)
    opened = fed.aggregator.transport.open_round()
    sr = SecureRound.attach(fed, opened.round_id)
    sr.advertise(range(5))
    sr.commit([0, 1, 2, 3])  # 4 advertised and never committed
    sr.pass_deadline("deadline")  # the commit deadline passes in a block
    sr.unmask([0, 1, 2])  # 3 committed and never posted its shares
    sr.pass_deadline("unmask_deadline")

    report = fed.aggregator.finalize(opened.round_id)

    assert report.finalized and report.commit_count == 4
    survivors = [0, 1, 2, 3]
    assert sorted(report.included, key=str.lower) == list(report.included)
    assert {a.lower() for a in report.included} == {
        chain_env.accounts.participants[i].address.lower() for i in survivors}
    weights, evidence = _published(fed, opened.round_id)
    assert fed.doc.secagg is not None
    _close_to(weights, sr.expected(survivors), fed.doc.secagg.quantiser().mean_error_bound())
    secure = evidence.secagg
    assert secure is not None
    assert [a.lower() for a in secure.dropped] == [chain_env.accounts.participants[4].address.lower()]
    assert {a.lower() for a in secure.revealers} == {chain_env.accounts.participants[i].address.lower() for i in (0, 1, 2)}
    assert report.metrics["secagg_dropped"] == 1 and report.metrics["secagg_revealers"] == 3


def test_a_round_below_the_threshold_is_closed_with_the_reason(
        chain_env: Any, ipfs_store: Any, tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, ipfs_store, tmp_path, 4)
    opened = fed.aggregator.transport.open_round()
    sr = SecureRound.attach(fed, opened.round_id)
    sr.advertise(range(4))
    sr.commit(range(4))
    sr.unmask([0, 1])  # 2 of the 4 survivors reveal: below the threshold of 3
    sr.pass_deadline("unmask_deadline")

    report = fed.aggregator.finalize(opened.round_id)

    assert not report.finalized and report.model_digest is None
    assert report.close_reason is not None and "cannot be unmasked" in report.close_reason
    assert "threshold is 3" in report.close_reason
    rnd = fed.reader.round(opened.round_id)
    assert rnd.status == RoundStatus.CLOSED and rnd.close_reason == report.close_reason


def _memory(tmp_path: Path, n: int, secure: bool, **kw: Any) -> InMemoryTransport:
    files = secure_task_files(tmp_path, n)
    doc = files.doc if secure else dataclasses.replace(files.doc, secagg=None)
    participants = [MemoryParticipant(participant_address(i, 0), p.x, p.y)
                    for i, p in enumerate(partition_clients(files.cfg, files.dataset))]
    return InMemoryTransport(doc, participants, **kw)


def test_an_in_memory_secure_round_is_plain_fedavg_within_the_quantisation_bound(tmp_path: Path) -> None:
    plain_transport = _memory(tmp_path / "plain", 4, False)
    plain = run_round(plain_transport)
    secure_transport = _memory(tmp_path / "secure", 4, True)

    secure = run_round(secure_transport)

    assert secure.finalized and secure.included == plain.included and secure.num_samples == plain.num_samples
    assert secure.metrics["secagg_survivors"] == 4 and plain.model_digest != secure.model_digest
    assert secure_transport.doc.secagg is not None
    bound = secure_transport.doc.secagg.quantiser().mean_error_bound()
    want = {n: np.asarray(w, np.float64) for n, w in plain_transport.model.weights.items()}
    _close_to(dict(secure_transport.model.weights), want, bound)


def test_in_memory_secure_rounds_recover_dropouts_and_close_below_the_threshold(tmp_path: Path) -> None:
    addresses = [participant_address(i, 0) for i in range(5)]
    drops = {1: ([addresses[0]], [addresses[1]]), 2: ([addresses[0], addresses[1]], [addresses[2]])}
    transport = _memory(tmp_path, 5, True, secagg_dropouts=lambda rid: drops[int(rid)])

    first, second = (run_round(transport) for _ in range(2))

    assert first.finalized and first.metrics["secagg_dropped"] == 1 and first.metrics["secagg_revealers"] == 3
    assert {a.lower() for a in first.included} == {a.lower() for a in addresses[1:]}
    assert not second.finalized and second.close_reason is not None and "threshold is 3" in second.close_reason


def test_in_memory_secure_rounds_under_client_dp_need_the_policys_min_clients(tmp_path: Path) -> None:
    files = secure_task_files(tmp_path, 4, min_updates=4)
    policy = PrivacyPolicy("client", clip=1.0, noise_multiplier=1.0, sample_rate=1.0, delta=1e-5, accountant="rdp",
                           epsilon_budget=100.0, min_clients=4)
    participants = [MemoryParticipant(participant_address(i, 0), p.x, p.y)
                    for i, p in enumerate(partition_clients(files.cfg, files.dataset))]
    drops = {1: ((), ()), 2: ((participants[0].address,), ())}
    transport = InMemoryTransport(dataclasses.replace(files.doc, privacy=policy), participants,
                                  secagg_dropouts=lambda rid: drops[int(rid)])

    first, second = (run_round(transport) for _ in range(2))

    assert first.finalized and len(first.included) == 4
    assert not second.finalized and second.close_reason is not None and "min_updates = 4" in second.close_reason


def test_the_in_memory_transport_refuses_a_secure_task_of_one(tmp_path: Path) -> None:
    files = secure_task_files(tmp_path, 2)
    with pytest.raises(ConfigError, match="secagg"):
        InMemoryTransport(files.doc, [MemoryParticipant(Address("0x" + "11" * 20), np.zeros((1, 30)), np.zeros(1))])


def test_a_secure_round_publishes_no_rewards_and_the_next_round_opens(chain_env: Any, ipfs_store: Any,
                                                                      tmp_path: Path, caplog: Any) -> None:
    files = secure_task_files(tmp_path, 4)
    with pytest.raises(ConfigError, match="rewards"):  # a secure task carries no rewards rule ...
        rewarded_fed(chain_env, ipfs_store, files, tmp_path)
    # ... and on a federation whose incentives contract has a budget, its rounds publish none
    _, deployment, _ = deploy_incentives(chain_env.conn, chain_env.accounts.admin, chain_env.deployment, supply=10**24)
    assert deployment.incentives is not None and deployment.reward_token is not None
    _admin_send(chain_env, set_budget_call(deployment.incentives, BUDGET))
    fed = make_fed(chain_env, ipfs_store, files, tmp_path)
    fed.aggregator.transport.incentives = Incentives(chain_env.conn, deployment, chain_env.accounts.aggregator)
    r = Rewarded(fed, deployment, Incentives(chain_env.conn, deployment))
    sr = SecureRound.attach(fed, fed.aggregator.transport.open_round().round_id)
    sr.advertise(range(4))
    sr.commit(range(4))
    sr.unmask(range(4))

    with caplog.at_level(logging.WARNING, logger="fedchain.engine.ledger"):
        assert fed.aggregator.finalize(sr.round_id).finalized
        following = fed.aggregator.transport.open_round()  # no missed rewards to publish for a secure round

    assert r.reader.round_rewards(sr.round_id) is None and fed.aggregator.transport.rewards == {}
    assert not any("rewards not published" in m for m in caplog.messages)
    assert int(following.round_id) == int(sr.round_id) + 1

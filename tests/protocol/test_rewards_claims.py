"""Rewards on the real devnet and IPFS node: the aggregator publishes a round's reward root after
finalising it, every participant claims its amount, the audit recomputes the root; a root paying one
participant double is refused at claim time once the budget is reached and flagged by the audit; a
slash citing a finding that does not name the slashed participant is flagged."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from fedchain.audit.findings import AuditFindings, FindingKind, Party
from fedchain.audit.replay import Auditor
from fedchain.chain.federation import Deployment
from fedchain.chain.incentives import (
    Incentives,
    deploy_incentives,
    fund_pool_call,
    set_budget_call,
    set_deposit_policy_call,
    slash_call,
)
from fedchain.codec.canonical import sha256_digest
from fedchain.fl.attacks import AttackSpec
from fedchain.protocol.rewards import build_rewards_doc, reward_leaf
from fedchain.protocol.task import RewardsConfig
from fedchain.types import RoundId
from tests.protocol.harness import Fed, TaskFiles, make_fed, make_task_files
from tests.protocol.test_rewards_round import validation_npz

pytestmark = pytest.mark.devnet
BUDGET = 1000
DEPOSIT = 10**16


@dataclass
class Rewarded:
    fed: Fed
    deployment: Deployment
    reader: Incentives


def _admin_send(env: Any, call: Any) -> None:
    env.conn.send_transaction(env.accounts.admin, to=call.target, data=call.calldata, value=call.value)


def rewarded_fed(env: Any, store: Any, files: TaskFiles, work: Path, *, publish: bool = True,
                 config: RewardsConfig | None = None, attacks: dict[int, AttackSpec] | None = None) -> Rewarded:
    _, deployment, _ = deploy_incentives(env.conn, env.accounts.admin, env.deployment, supply=10**24)
    assert deployment.incentives is not None and deployment.reward_token is not None
    _admin_send(env, set_budget_call(deployment.incentives, BUDGET))
    _admin_send(env, fund_pool_call(deployment.reward_token, deployment.incentives, 10 * BUDGET))
    rewards = config if config is not None else RewardsConfig("samples")
    fed = make_fed(env, store, replace(files, doc=replace(files.doc, rewards=rewards)), work, attacks=attacks)
    if publish:
        fed.aggregator.transport.incentives = Incentives(env.conn, deployment, env.accounts.aggregator)
    for i, agent in enumerate(fed.participants):
        agent.incentives = Incentives(env.conn, deployment, env.accounts.participants[i])
    return Rewarded(fed, deployment, Incentives(env.conn, deployment))


def auditor(r: Rewarded) -> Auditor:
    fed = r.fed
    return Auditor(fed.reader, fed.store, contract=fed.env.deployment.address, chain_id=fed.env.conn.chain_id,
                   incentives=r.reader)


def test_rewards_published_claimed_by_every_participant_and_audited_clean(
        chain_env, ipfs_store, task_files, tmp_path) -> None:
    r = rewarded_fed(chain_env, ipfs_store, task_files, tmp_path)
    rid = RoundId(r.fed.run_round().round_id)
    doc = r.fed.aggregator.transport.rewards[rid]
    published = r.reader.round_rewards(rid)
    assert published is not None and published.root == bytes(doc.root) and published.total == BUDGET == doc.total
    first = doc.entries[0]
    assert r.reader.reward_leaf(rid, first.participant, first.amount) == bytes(reward_leaf(rid, first.participant,
                                                                                          first.amount))

    assert r.fed.aggregator.transport.publish_rewards(rid) is None  # published once

    claimed = [agent.claim_rewards() for agent in r.fed.participants]
    again = [agent.claim_rewards() for agent in r.fed.participants]

    assert [[(e.event, e.amount) for e in entries] for entries in claimed] == [
        [("claimed", doc.entry(a.address).amount)] for a in r.fed.participants]  # type: ignore[union-attr]
    assert again == [[], [], []]
    for agent in r.fed.participants:
        assert r.reader.token_balance(agent.address) == doc.entry(agent.address).amount  # type: ignore[union-attr]
        assert r.reader.has_claimed(rid, agent.address)
    rounds = r.reader.round_rewards(rid)
    assert rounds is not None and rounds.claimed == BUDGET
    report = auditor(r).audit()
    assert report.ok, report.findings
    assert report.incentives is not None and report.incentives.rounds[0].recomputed is True
    assert all(line["claimed"] for p in report.incentives.participants for line in p.rounds)


def test_shapley_rewards_on_the_validation_set_are_claimed_and_recomputed_by_the_audit(
        chain_env, ipfs_store, task_files, tmp_path) -> None:
    data = validation_npz(task_files)
    config = RewardsConfig("shapley", {}, sha256_digest(data), ipfs_store.put(data), BUDGET)
    r = rewarded_fed(chain_env, ipfs_store, task_files, tmp_path, config=config)
    rid = RoundId(r.fed.run_round().round_id)
    doc = r.fed.aggregator.transport.rewards[rid]

    entries = [e for agent in r.fed.participants for e in agent.claim_rewards()]

    assert doc.rule == "shapley" and doc.validation_digest == sha256_digest(data) and doc.error_bound is None
    assert sum(e.amount or 0 for e in entries if e.event == "claimed") == doc.total
    report = auditor(r).audit()
    assert report.ok, report.findings
    assert report.incentives is not None and report.incentives.rounds[0].recomputed is True


def test_a_rejected_update_is_owed_nothing_and_its_participant_claims_nothing(chain_env, ipfs_store, tmp_path) -> None:
    files = make_task_files(tmp_path, robust="norm_clip:max_norm=1,reject=true")
    r = rewarded_fed(chain_env, ipfs_store, files, tmp_path, attacks={2: AttackSpec("scaling")})
    rid = RoundId(r.fed.run_round().round_id)
    doc = r.fed.aggregator.transport.rewards[rid]
    attacker = r.fed.participants[2]

    entries = [agent.claim_rewards() for agent in r.fed.participants]

    mine = doc.entry(attacker.address)
    assert mine is not None and (mine.score, mine.amount) == (0, 0)
    assert [(e.event, e.amount) for e in entries[2]] == [("unrewarded", 0)]
    assert "nothing owed" in (entries[2][0].reason or "")
    assert [e.event for e in entries[0] + entries[1]] == ["claimed", "claimed"]
    assert sum(e.amount or 0 for e in entries[0] + entries[1]) == BUDGET
    assert not r.reader.has_claimed(rid, attacker.address)
    assert auditor(r).audit().ok


def test_rewards_left_unpublished_are_published_before_the_next_round(chain_env, ipfs_store, task_files, tmp_path) -> None:
    r = rewarded_fed(chain_env, ipfs_store, task_files, tmp_path, publish=False)
    rid = RoundId(r.fed.run_round().round_id)
    assert r.reader.round_rewards(rid) is None
    transport = r.fed.aggregator.transport
    transport.incentives = Incentives(chain_env.conn, r.deployment, chain_env.accounts.aggregator)

    r.fed.open_round()

    published = r.reader.round_rewards(rid)
    assert published is not None and published.root == bytes(transport.rewards[rid].root)


def test_no_rewards_are_published_while_the_budget_is_zero(chain_env, ipfs_store, task_files, tmp_path) -> None:
    r = rewarded_fed(chain_env, ipfs_store, task_files, tmp_path)
    assert r.deployment.incentives is not None
    _admin_send(chain_env, set_budget_call(r.deployment.incentives, 0))

    rid = RoundId(r.fed.run_round().round_id)

    assert r.fed.reader.round(rid).status.name == "FINALIZED"
    assert r.reader.round_rewards(rid) is None and r.fed.aggregator.transport.rewards == {}
    assert [agent.claim_rewards() for agent in r.fed.participants] == [[], [], []]


def test_a_root_paying_one_participant_double_is_refused_at_the_budget_and_flagged(
        chain_env, ipfs_store, task_files, tmp_path) -> None:
    r = rewarded_fed(chain_env, ipfs_store, task_files, tmp_path, publish=False)
    rid = RoundId(r.fed.run_round().round_id)
    fed = r.fed
    honest = fed.aggregator.transport
    honest.incentives = Incentives(fed.env.conn, r.deployment, fed.env.accounts.aggregator)
    from fedchain.protocol.rewards import compute_round_rewards

    true = compute_round_rewards(fed.reader, fed.store, rid, BUDGET)
    greedy = max(true.entries, key=lambda e: e.amount)
    amounts = {e.participant: e.amount for e in true.entries}
    amounts[greedy.participant] *= 2
    scores = {e.participant: e.score for e in true.entries}
    doubled = build_rewards_doc(rid, "samples", {}, BUDGET + greedy.amount, None, scores, amounts)
    data = doubled.to_bytes()
    assert honest.incentives is not None
    honest.incentives.publish_rewards(rid, bytes(doubled.root), BUDGET, bytes(sha256_digest(data)), fed.store.put(data))
    order = sorted(fed.participants, key=lambda a: a.address != greedy.participant)  # the greedy one claims first

    outcomes = [agent.claim_rewards()[0] for agent in order]

    assert (outcomes[0].event, outcomes[0].amount) == ("claimed", 2 * greedy.amount)
    refused = [e for e in outcomes if e.event == "unrewarded"]
    assert refused and all("exceeds what is left of round" in (e.reason or "") for e in refused)
    assert [agent.claim_rewards() for agent in order] == [[], [], []]  # journaled: not asked again
    rounds = r.reader.round_rewards(rid)
    assert rounds is not None and rounds.claimed <= BUDGET
    report = auditor(r).audit()
    mismatch = [f for f in report.findings if f.kind is FindingKind.REWARDS_MISMATCH]
    assert mismatch and all(f.responsible is Party.AGGREGATOR for f in mismatch)
    assert all(f.responsible_address == fed.env.accounts.aggregator.address for f in mismatch)
    assert any(f"{greedy.participant} is listed with {2 * greedy.amount}" in f.detail for f in mismatch)
    assert any(f.kind is FindingKind.CLAIM_UNEXPLAINED and f.participant == greedy.participant for f in report.findings)
    assert not report.ok


def test_a_slash_citing_a_finding_that_does_not_name_the_participant_is_flagged(
        chain_env, ipfs_store, task_files, tmp_path) -> None:
    r = rewarded_fed(chain_env, ipfs_store, task_files, tmp_path)
    env, fed = chain_env, r.fed
    assert r.deployment.incentives is not None
    _admin_send(env, set_deposit_policy_call(r.deployment.incentives, DEPOSIT, 60, env.accounts.admin.address))
    for agent in fed.participants:
        assert agent.incentives is not None
        agent.incentives.deposit()  # type: ignore[attr-defined]
    victim, culprit = fed.participants[0].address, fed.participants[1].address
    blob = AuditFindings(1, "0x" + "11" * 32, None, Party.PARTICIPANT, culprit, (), "").to_bytes()
    cid = fed.store.put(blob)
    _admin_send(env, slash_call(r.deployment.incentives, victim, DEPOSIT // 2, bytes(sha256_digest(blob)), cid))
    _admin_send(env, slash_call(r.deployment.incentives, culprit, DEPOSIT // 2, bytes(sha256_digest(blob)), cid))

    report = auditor(r).audit()

    assert report.incentives is not None
    assert [(s.participant, s.justified) for s in report.incentives.slashes] == [(victim, False), (culprit, True)]
    flagged = [f for f in report.findings if f.kind is FindingKind.SLASH_UNJUSTIFIED]
    assert [f.participant for f in flagged] == [victim]
    assert flagged[0].responsible is Party.GOVERNANCE and "does not name" in flagged[0].detail
    history = {p.participant: [d["event"] for d in p.deposit_history] for p in report.incentives.participants}
    assert history[victim] == ["Deposited", "Slashed"]

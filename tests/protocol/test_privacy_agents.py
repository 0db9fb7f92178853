"""Private rounds on the real devnet and IPFS node: participants train with DP-SGD, commit their
cumulative epsilon, stop by themselves before a round they cannot afford, and the chain refuses an
agent that tries anyway - nothing of it is stored. The audit of the rounds is clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fedchain.errors import PrivacyBudgetError
from fedchain.fl.privacy import epsilon, epsilon_fixed
from fedchain.ports import RoundStatus
from fedchain.reverts import FederationPrivacyBudgetExceeded, FederationPrivacyClaimRequired
from fedchain.sim.config import PrivacyRequest
from fedchain.types import RoundId
from tests.protocol.harness import make_fed, make_task_files

pytestmark = [pytest.mark.devnet, pytest.mark.ipfs]


@pytest.fixture(scope="module")
def private_files(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # the noise is calibrated so that exactly two rounds fit the budget of 3
    return make_task_files(tmp_path_factory.mktemp("private"), rounds=2, robust="none",
                           privacy=PrivacyRequest("dpsgd", 3.0))


def test_participants_spend_their_budget_and_stop_before_a_round_they_cannot_afford(
    chain_env: Any, ipfs_store: Any, private_files: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = make_fed(chain_env, ipfs_store, private_files, tmp_path)
    policy = fed.doc.privacy
    assert policy is not None
    task = fed.reader.task()
    assert task is not None and task.epsilon_budget == policy.budget_fixed() == 3_000_000
    assert bytes(task.privacy_policy_digest) == bytes(policy.digest())
    one = policy.round_inputs(1)
    for r in (1, 2):
        report = fed.run_round()
        assert report.finalized and len(report.included) == 3, report
        claims = {c.participant: c for c in fed.reader.commitments(RoundId(r))}
        for c in claims.values():
            assert c.epsilon_spent == epsilon_fixed(epsilon([one] * r))
            assert bytes(c.accountant_digest) == bytes(one.digest())
    who = fed.participants[0].address
    assert fed.reader.epsilon_spent(who) == epsilon_fixed(epsilon([one] * 2)) <= policy.budget_fixed()

    # round 3 would cost more than the budget: the agent refuses before it trains or stores anything
    rid = fed.open_round()
    trained: list[int] = []
    monkeypatch.setattr(fed.participants[0], "_train", lambda *a: trained.append(1))
    with pytest.raises(PrivacyBudgetError, match="past the task's budget of 3"):
        fed.participants[0].submit(rid)
    assert trained == []  # it stopped before training
    monkeypatch.undo()

    # an agent that skips its own check is stopped by the chain, which records nothing
    agent = fed.participants[1]
    monkeypatch.setattr(agent, "require_privacy_budget", lambda doc, r: agent.privacy_history(before=r))
    spent = fed.reader.epsilon_spent(agent.address)
    with pytest.raises(FederationPrivacyBudgetExceeded) as refused:
        agent.submit(rid)
    assert (refused.value.spent, refused.value.budget) == (spent, 3_000_000) and refused.value.claimed > 3_000_000
    assert fed.reader.epsilon_spent(agent.address) == spent
    assert fed.reader.round(rid).commit_count == 0 and fed.reader.round(rid).status == RoundStatus.OPEN

    # a plain commit in a private round is refused too
    with pytest.raises(FederationPrivacyClaimRequired):
        agent.ledger.commit_update(rid, b"\x01" * 32, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", 1,
                                   b"\x02" * 32)

    audit = fed.auditor().audit()
    assert audit.ok, audit.findings
    assert not [f for f in audit.findings if "privacy" in f.kind.value or "epsilon" in f.kind.value]

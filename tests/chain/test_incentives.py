"""Incentives on the real devnet through the Python client: deposits, withdrawals before and after the delay, slashes,
reward publication and Merkle claims within the round's budget; every refusal a typed IncentivesError carrying the
decoded revert, with nothing changed on chain; and one governed flow in which proposals set the deposit policy and
the budget, fund the pool and slash a participant."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak

from fedchain.chain.federation import Deployment, FederationContract, read_deployment, write_deployment
from fedchain.chain.governance import (
    Governance,
    GovernanceParams,
    ProposalCall,
    Support,
    admit_call,
    advance,
    configure_task_call,
    deploy_governed,
)
from fedchain.chain.incentives import (
    Deposited,
    DepositPolicySet,
    Incentives,
    RewardBudgetSet,
    RewardClaimed,
    RewardsPublished,
    Slashed,
    SlashedFundsWithdrawn,
    WithdrawalRequested,
    Withdrawn,
    deploy_incentives,
    fund_pool_call,
    set_budget_call,
    set_deposit_policy_call,
    slash_call,
)
from fedchain.codec.merkle import MerkleTree
from fedchain.errors import ClaimError, DepositError, ExitCode, IncentivesError, NoIncentivesError
from fedchain.ports import ParticipantRemoved, ParticipantStatus
from fedchain.reverts import (
    ERC20InsufficientBalance,
    FederationInvalidStatus,
    IncentivesAlreadyClaimed,
    IncentivesAlreadyDeposited,
    IncentivesBudgetExceeded,
    IncentivesInvalidProof,
    IncentivesInvalidSlash,
    IncentivesNoRewards,
    IncentivesNotRegistered,
    IncentivesOverBudget,
    IncentivesRoundNotFinalized,
    IncentivesSlashTooLarge,
    IncentivesStillParticipating,
    IncentivesUnauthorized,
    IncentivesWithdrawalDelay,
    IncentivesWithdrawalNotRequested,
    IncentivesWrongDeposit,
)
from fedchain.types import Address, Cid, Digest, RoundId
from tests.chain.rounds import finalized_round
from tests.fixtures_devnet import DECLARED_SAMPLES, TASK_CID, TASK_DIGESTS, TASK_MAX_COMMIT_DURATION, DevnetEnv

DEPOSIT = 10**17  # 0.1 ETH
DELAY = 3_600
BUDGET = 1_000 * 10**18
SUPPLY = 10**24
POOL = 10 * BUDGET
FINDING = Digest(keccak(b"finding blob"))
FINDING_CID = Cid("bafkreifindingblob")
SCORES = Digest(keccak(b"scores blob"))
SCORES_CID = Cid("bafkreiscoresblob")


@dataclass
class IncEnv:
    """The test devnet's Federation (admin: an EOA) with its incentives; a policy, a budget and a funded pool."""

    env: DevnetEnv
    deployment: Deployment

    def inc(self, account: LocalAccount | None = None) -> Incentives:
        return Incentives(self.env.conn, self.deployment, account)

    def admin_sends(self, call: ProposalCall) -> None:
        """What a proposal would make the timelock do, done by the EOA admin."""
        self.env.conn.send_transaction(self.env.accounts.admin, to=call.target, data=call.calldata)

    @property
    def alice(self) -> LocalAccount:
        return self.env.admitted[0]

    @property
    def bob(self) -> LocalAccount:
        return self.env.admitted[1]

    @property
    def carol(self) -> LocalAccount:
        return self.env.admitted[2]


@pytest.fixture
def inc_env(federation_env: DevnetEnv, tmp_path: Path) -> IncEnv:
    write_deployment(tmp_path, federation_env.deployment)
    _, deployment, reports = deploy_incentives(
        federation_env.conn, federation_env.accounts.admin, federation_env.deployment, supply=SUPPLY, state_dir=tmp_path
    )
    assert len(reports) == 2 and read_deployment(tmp_path, deployment.chain_id) == deployment
    e = IncEnv(federation_env, deployment)
    assert deployment.incentives is not None and deployment.reward_token is not None
    e.admin_sends(set_deposit_policy_call(deployment.incentives, DEPOSIT, DELAY, federation_env.accounts.admin.address))
    e.admin_sends(set_budget_call(deployment.incentives, BUDGET))
    e.admin_sends(fund_pool_call(deployment.reward_token, deployment.incentives, POOL))
    return e


@contextmanager
def unchanged(e: IncEnv) -> Iterator[None]:
    """Nothing was mined and no incentives event was emitted inside the block."""
    block = e.env.conn.block_number()
    events = len(e.inc().history())
    yield
    assert e.env.conn.block_number() == block, "a transaction was mined"
    assert len(e.inc().history()) == events


def _leaf(e: IncEnv, rid: int, who: str, amount: int) -> bytes:
    return e.inc().reward_leaf(rid, who, amount)


def _published(e: IncEnv, rid: RoundId, payouts: Sequence[tuple[str, int]], total: int) -> MerkleTree:
    tree = MerkleTree.build(_leaf(e, rid, who, amount) for who, amount in payouts)
    e.inc(e.env.accounts.aggregator).publish_rewards(rid, tree.root, total, SCORES, SCORES_CID)
    return tree


# --- deployment --------------------------------------------------------------------------


def test_deploy_incentives_records_the_contracts_and_an_old_record_reads_without_them(
    inc_env: IncEnv, tmp_path: Path
) -> None:
    d = inc_env.deployment
    record = json.loads((tmp_path / "deployments" / f"{d.chain_id}.json").read_text(encoding="utf-8"))
    assert record["incentives"] == d.incentives and record["reward_token"] == d.reward_token
    for key in ("incentives", "reward_token", "incentives_block"):
        del record[key]
    (tmp_path / "deployments" / f"{d.chain_id}.json").write_text(json.dumps(record), encoding="utf-8")
    old = read_deployment(tmp_path, d.chain_id)
    assert (old.incentives, old.reward_token, old.has_incentives) == (None, None, False)
    with pytest.raises(NoIncentivesError, match="has no incentives contract") as info:
        Incentives(inc_env.env.conn, old)
    assert info.value.exit_code == ExitCode.INCENTIVES
    assert inc_env.inc().token_balance(inc_env.env.accounts.admin.address) == SUPPLY - POOL
    assert inc_env.inc().token_balance(str(d.incentives)) == POOL
    policy = inc_env.inc().deposit_policy()
    treasury = Address(inc_env.env.accounts.admin.address)
    assert (policy.amount, policy.withdrawal_delay_s, policy.treasury) == (DEPOSIT, DELAY, treasury)
    assert inc_env.inc().reward_budget() == BUDGET
    kinds = [type(ev) for ev in inc_env.inc().history()]
    assert kinds == [DepositPolicySet, RewardBudgetSet]


def test_a_second_deployment_of_incentives_is_refused(inc_env: IncEnv) -> None:
    with pytest.raises(Exception, match="has incentives already"):
        deploy_incentives(inc_env.env.conn, inc_env.env.accounts.admin, inc_env.deployment, supply=1)


# --- deposits ----------------------------------------------------------------------------


def test_deposit_locks_the_policy_amount(inc_env: IncEnv) -> None:
    before = inc_env.env.conn.balance(str(inc_env.deployment.incentives))
    report = inc_env.inc(inc_env.alice).deposit()
    assert inc_env.inc().deposit_of(inc_env.alice.address).held == DEPOSIT
    assert inc_env.env.conn.balance(str(inc_env.deployment.incentives)) - before == DEPOSIT
    last = inc_env.inc().history()[-1]
    assert isinstance(last, Deposited)
    assert (last.participant, last.amount, last.tx_hash) == (Address(inc_env.alice.address), DEPOSIT, report.tx_hash)


def test_a_deposit_of_the_wrong_amount_is_refused(inc_env: IncEnv) -> None:
    with unchanged(inc_env), pytest.raises(DepositError, match="exactly 100000000000000000 wei") as info:
        inc_env.inc(inc_env.alice).deposit(DEPOSIT - 1)
    assert isinstance(info.value.revert, IncentivesWrongDeposit)
    assert (info.value.revert.sent, info.value.revert.required) == (DEPOSIT - 1, DEPOSIT)
    assert info.value.exit_code == ExitCode.INCENTIVES
    assert inc_env.inc().deposit_of(inc_env.alice.address).held == 0


def test_a_second_deposit_is_refused(inc_env: IncEnv) -> None:
    inc_env.inc(inc_env.alice).deposit()
    with unchanged(inc_env), pytest.raises(DepositError, match="deposited already") as info:
        inc_env.inc(inc_env.alice).deposit()
    assert isinstance(info.value.revert, IncentivesAlreadyDeposited) and info.value.revert.held == DEPOSIT


def test_a_deposit_by_an_unregistered_account_is_refused(inc_env: IncEnv) -> None:
    outsider = inc_env.env.accounts.outsider
    with unchanged(inc_env), pytest.raises(DepositError, match="not a registered") as info:
        inc_env.inc(outsider).deposit()
    assert isinstance(info.value.revert, IncentivesNotRegistered)
    assert info.value.revert.participant == outsider.address


# --- leaving and withdrawing -------------------------------------------------------------


def test_a_withdrawal_before_leaving_is_refused(inc_env: IncEnv) -> None:
    inc_env.inc(inc_env.alice).deposit()
    with unchanged(inc_env), pytest.raises(DepositError, match="has not left the Federation") as info:
        inc_env.inc(inc_env.alice).request_withdrawal()
    assert isinstance(info.value.revert, IncentivesStillParticipating) and info.value.revert.status == 2
    with unchanged(inc_env), pytest.raises(DepositError, match="has not asked") as not_requested:
        inc_env.inc(inc_env.alice).withdraw()
    assert isinstance(not_requested.value.revert, IncentivesWithdrawalNotRequested)


def test_leave_removes_the_signer_and_names_it_as_the_actor(inc_env: IncEnv) -> None:
    alice = inc_env.alice
    report = FederationContract.from_deployment(inc_env.env.conn, inc_env.deployment, alice).leave("moving on")
    removed = [ev for ev in inc_env.env.ledger().history() if isinstance(ev, ParticipantRemoved)]
    assert [(ev.participant, ev.removed_by, ev.reason, ev.tx_hash) for ev in removed] == [
        (Address(alice.address), Address(alice.address), "moving on", report.tx_hash)
    ]
    assert inc_env.env.federation().participant(alice.address).status == ParticipantStatus.REMOVED
    outsider = inc_env.env.accounts.outsider
    with pytest.raises(FederationInvalidStatus) as info:
        FederationContract.from_deployment(inc_env.env.conn, inc_env.deployment, outsider).leave("never joined")
    assert (info.value.participant, info.value.status) == (outsider.address, 0)


def test_a_withdrawal_is_refused_during_the_delay_and_paid_after_it(inc_env: IncEnv) -> None:
    alice = inc_env.alice
    inc_env.inc(alice).deposit()
    FederationContract.from_deployment(inc_env.env.conn, inc_env.deployment, alice).leave("moving on")
    inc_env.inc(alice).request_withdrawal()
    record = inc_env.inc().deposit_of(alice.address)
    assert record.requested and record.available_at == inc_env.env.conn.block_timestamp() + DELAY
    requested = inc_env.inc().history()[-1]
    assert isinstance(requested, WithdrawalRequested) and requested.available_at == record.available_at

    with unchanged(inc_env), pytest.raises(DepositError, match=f"runs until chain time {record.available_at}") as info:
        inc_env.inc(alice).withdraw()
    assert isinstance(info.value.revert, IncentivesWithdrawalDelay)
    assert inc_env.inc().deposit_of(alice.address).held == DEPOSIT

    inc_env.env.conn.request("evm_increaseTime", [DELAY])
    inc_env.env.conn.request("evm_mine")
    before = inc_env.env.conn.balance(alice.address)
    report = inc_env.inc(alice).withdraw()
    assert inc_env.env.conn.balance(alice.address) - before == DEPOSIT - report.fee_wei
    assert inc_env.inc().deposit_of(alice.address).held == 0
    last = inc_env.inc().history()[-1]
    assert isinstance(last, Withdrawn) and last.amount == DEPOSIT


# --- slashes -----------------------------------------------------------------------------


def test_a_slash_moves_the_amount_to_the_treasury_which_pulls_it(inc_env: IncEnv) -> None:
    inc_env.inc(inc_env.alice).deposit()
    incentives = str(inc_env.deployment.incentives)
    inc_env.admin_sends(slash_call(incentives, inc_env.alice.address, DEPOSIT // 4, FINDING, FINDING_CID))
    assert inc_env.inc().deposit_of(inc_env.alice.address).held == DEPOSIT - DEPOSIT // 4
    admin = inc_env.env.accounts.admin
    assert inc_env.inc().owed_to(admin.address) == DEPOSIT // 4
    slashed = inc_env.inc().history()[-1]
    assert isinstance(slashed, Slashed)
    assert (slashed.participant, slashed.slashed_by, slashed.finding_digest, slashed.finding_cid, slashed.treasury) == (
        Address(inc_env.alice.address), Address(admin.address), FINDING, FINDING_CID, Address(admin.address)
    )
    before = inc_env.env.conn.balance(admin.address)
    report = inc_env.inc(admin).claim_slashed()
    assert inc_env.env.conn.balance(admin.address) - before == DEPOSIT // 4 - report.fee_wei
    assert isinstance(inc_env.inc().history()[-1], SlashedFundsWithdrawn)
    with unchanged(inc_env), pytest.raises(DepositError, match="nothing is owed"):
        inc_env.inc(admin).claim_slashed()


def test_a_slash_larger_than_the_deposit_is_refused(inc_env: IncEnv) -> None:
    inc_env.inc(inc_env.alice).deposit()
    call = slash_call(str(inc_env.deployment.incentives), inc_env.alice.address, DEPOSIT + 1, FINDING, FINDING_CID)
    with unchanged(inc_env), pytest.raises(DepositError, match="exceeds the 100000000000000000 wei") as info:
        _as_admin(inc_env, call)
    assert isinstance(info.value.revert, IncentivesSlashTooLarge) and info.value.revert.amount == DEPOSIT + 1


def test_an_invalid_slash_is_refused_by_the_builder_and_by_the_contract(inc_env: IncEnv) -> None:
    inc_env.inc(inc_env.alice).deposit()
    incentives = str(inc_env.deployment.incentives)
    with pytest.raises(DepositError, match="finding digest is zero"):
        slash_call(incentives, inc_env.alice.address, 1, bytes(32), FINDING_CID)
    with pytest.raises(DepositError, match="finding CID is empty"):
        slash_call(incentives, inc_env.alice.address, 1, FINDING, "")
    raw = ProposalCall(
        Address(incentives), 0,
        inc_env.inc().codec.encode_call("slash", inc_env.alice.address, 1, FINDING, ""),
    )
    with unchanged(inc_env), pytest.raises(DepositError, match="findingCid is refused") as info:
        _as_admin(inc_env, raw)
    assert isinstance(info.value.revert, IncentivesInvalidSlash) and info.value.revert.field == "findingCid"
    assert inc_env.inc().deposit_of(inc_env.alice.address).held == DEPOSIT


def test_only_the_admin_slashes(inc_env: IncEnv) -> None:
    inc_env.inc(inc_env.alice).deposit()
    call = slash_call(str(inc_env.deployment.incentives), inc_env.alice.address, 1, FINDING, FINDING_CID)
    with unchanged(inc_env), pytest.raises(IncentivesError) as info:
        _as(inc_env, inc_env.bob, call)
    assert isinstance(info.value.revert, IncentivesUnauthorized) and info.value.revert.caller == inc_env.bob.address


def _as(e: IncEnv, account: LocalAccount, call: ProposalCall) -> None:
    """Send ``call`` signed by ``account`` through the client's refusal translation."""
    client = e.inc(account)
    function = client.codec.decode_call(call.calldata)
    assert function is not None
    client._send("slash", function.function, *function.args.values())  # noqa: SLF001


def _as_admin(e: IncEnv, call: ProposalCall) -> None:
    _as(e, e.env.accounts.admin, call)


# --- rewards -----------------------------------------------------------------------------


def test_claims_pay_once_and_refuse_a_bad_proof_another_address_and_another_round(inc_env: IncEnv) -> None:
    e = inc_env
    r1 = finalized_round(e.env, [e.alice, e.bob, e.carol], [e.alice, e.bob, e.carol], keccak(b"model-1"))
    payouts = [(e.alice.address, 500 * 10**18), (e.bob.address, 300 * 10**18), (e.carol.address, 200 * 10**18)]
    tree = _published(e, r1.round_id, payouts, BUDGET)
    published = e.inc().history()[-1]
    assert isinstance(published, RewardsPublished)
    assert (published.root, published.total, published.budget, published.scores_cid) == (
        tree.root, BUDGET, BUDGET, SCORES_CID
    )
    alice_proof = tree.proof(_leaf(e, r1.round_id, e.alice.address, payouts[0][1]))

    e.inc(e.alice).claim(r1.round_id, payouts[0][1], alice_proof)
    assert e.inc().token_balance(e.alice.address) == payouts[0][1]
    assert e.inc().has_claimed(r1.round_id, e.alice.address)
    claimed = e.inc().history()[-1]
    assert isinstance(claimed, RewardClaimed) and claimed.amount == payouts[0][1]

    with unchanged(e), pytest.raises(ClaimError, match="claimed its reward of round") as double:
        e.inc(e.alice).claim(r1.round_id, payouts[0][1], alice_proof)
    assert isinstance(double.value.revert, IncentivesAlreadyClaimed)
    with unchanged(e), pytest.raises(ClaimError, match="does not show") as other_address:
        e.inc(e.bob).claim(r1.round_id, payouts[0][1], alice_proof)  # alice's leaf, claimed by bob
    assert isinstance(other_address.value.revert, IncentivesInvalidProof)
    assert other_address.value.revert.participant == e.bob.address
    bob_proof = tree.proof(_leaf(e, r1.round_id, e.bob.address, payouts[1][1]))
    with unchanged(e), pytest.raises(ClaimError, match="does not show") as bad:
        e.inc(e.bob).claim(r1.round_id, payouts[1][1] + 1, bob_proof)  # more than its leaf says
    assert isinstance(bad.value.revert, IncentivesInvalidProof)

    r2 = finalized_round(e.env, [e.alice], [e.alice], keccak(b"model-2"))
    with unchanged(e), pytest.raises(ClaimError, match=f"no rewards were published for round {r2.round_id}") as none:
        e.inc(e.bob).claim(r2.round_id, payouts[1][1], bob_proof)
    assert isinstance(none.value.revert, IncentivesNoRewards)
    _published(e, r2.round_id, [(e.alice.address, 1)], 1)
    with unchanged(e), pytest.raises(ClaimError, match="does not show") as other_round:
        e.inc(e.bob).claim(r2.round_id, payouts[1][1], bob_proof)  # round 1's proof against round 2's root
    assert isinstance(other_round.value.revert, IncentivesInvalidProof)

    e.inc(e.bob).claim(r1.round_id, payouts[1][1], bob_proof)
    rewards = e.inc().round_rewards(r1.round_id)
    assert rewards is not None and rewards.claimed == 800 * 10**18 and rewards.remaining == 200 * 10**18


def test_a_root_that_pays_one_participant_double_is_refused_once_the_budget_is_reached(inc_env: IncEnv) -> None:
    e = inc_env
    r = finalized_round(e.env, [e.alice, e.bob], [e.alice, e.bob], keccak(b"model-double"))
    # the root pays alice 600 and bob 800: 1400 against a budget of 1000 (the declared total fits)
    payouts = [(e.alice.address, 600 * 10**18), (e.bob.address, 800 * 10**18)]
    tree = _published(e, r.round_id, payouts, BUDGET)
    e.inc(e.alice).claim(r.round_id, payouts[0][1], tree.proof(_leaf(e, r.round_id, *payouts[0])))
    pool = e.inc().token_balance(str(e.deployment.incentives))
    with unchanged(e), pytest.raises(ClaimError, match=r"exceeds what is left of round .*'s budget") as info:
        e.inc(e.bob).claim(r.round_id, payouts[1][1], tree.proof(_leaf(e, r.round_id, *payouts[1])))
    assert isinstance(info.value.revert, IncentivesBudgetExceeded)
    assert (info.value.revert.amount, info.value.revert.remaining) == (800 * 10**18, 400 * 10**18)
    assert e.inc().token_balance(str(e.deployment.incentives)) == pool
    assert e.inc().token_balance(e.bob.address) == 0


def test_publication_is_refused_for_an_open_round_and_over_the_budget(inc_env: IncEnv) -> None:
    e = inc_env
    agg = e.inc(e.env.accounts.aggregator)
    opened = e.env.federation(e.env.accounts.aggregator).open_round(keccak(b"base"), "bafybase", 600, 1)
    rid = RoundId(opened.round_id or 0)
    with unchanged(e), pytest.raises(ClaimError, match=f"round {rid} is not finalised \\(it is Open\\)") as info:
        agg.publish_rewards(rid, keccak(b"root"), 1, SCORES, SCORES_CID)
    assert isinstance(info.value.revert, IncentivesRoundNotFinalized)
    e.env.conn.request("evm_increaseTime", [601])
    e.env.conn.request("evm_mine")
    e.env.federation(e.env.accounts.aggregator).close_round(rid, "nobody came")
    r = finalized_round(e.env, [e.alice], [e.alice], keccak(b"model-over"))
    with unchanged(e), pytest.raises(ClaimError, match="exceeds the budget per round") as over:
        agg.publish_rewards(r.round_id, keccak(b"root"), BUDGET + 1, SCORES, SCORES_CID)
    assert isinstance(over.value.revert, IncentivesOverBudget)
    with unchanged(e), pytest.raises(IncentivesError) as unauthorised:
        e.inc(e.alice).publish_rewards(r.round_id, keccak(b"root"), 1, SCORES, SCORES_CID)
    assert isinstance(unauthorised.value.revert, IncentivesUnauthorized)
    assert e.inc().round_rewards(r.round_id) is None


def test_an_unfunded_pool_refuses_the_claim(federation_env: DevnetEnv) -> None:
    _, deployment, _ = deploy_incentives(
        federation_env.conn, federation_env.accounts.admin, federation_env.deployment, supply=SUPPLY
    )
    e = IncEnv(federation_env, deployment)
    e.admin_sends(set_budget_call(str(deployment.incentives), BUDGET))
    r = finalized_round(e.env, [e.alice], [e.alice], keccak(b"model-unfunded"))
    tree = _published(e, r.round_id, [(e.alice.address, 5)], 5)
    with unchanged(e), pytest.raises(ClaimError, match="the reward pool holds 0 tokens, 5 are needed") as info:
        e.inc(e.alice).claim(r.round_id, 5, tree.proof(_leaf(e, r.round_id, e.alice.address, 5)))
    assert isinstance(info.value.revert, ERC20InsufficientBalance)
    assert not e.inc().has_claimed(r.round_id, e.alice.address)


# --- under governance --------------------------------------------------------------------

PARAMS = GovernanceParams(voting_delay=1, voting_period=5, quorum_percent=50, timelock_delay_s=60)


def _pass(conn_env: DevnetEnv, deployment: Deployment, founders: Sequence[LocalAccount],
          calls: Sequence[ProposalCall], description: str) -> int:
    gov = Governance.from_deployment(conn_env.conn, deployment, founders[0])
    proposal_id, _ = gov.propose(calls, description)
    snapshot = gov.proposal(proposal_id).snapshot_block
    advance(conn_env.conn, blocks=max(0, snapshot - conn_env.conn.block_number()))
    for founder in founders[:2]:
        Governance.from_deployment(conn_env.conn, deployment, founder).vote(proposal_id, Support.FOR)
    deadline = gov.proposal(proposal_id).deadline_block
    advance(conn_env.conn, blocks=max(0, deadline - conn_env.conn.block_number()))
    gov.queue(proposal_id)
    advance(conn_env.conn, seconds=PARAMS.timelock_delay_s)
    gov.execute(proposal_id)
    return proposal_id


def test_governed_proposals_set_the_policy_and_budget_fund_the_pool_and_slash(
    chain_env: DevnetEnv, tmp_path: Path
) -> None:
    founders = chain_env.accounts.participants[:3]
    fed, deployment, reports = deploy_governed(
        chain_env.conn, chain_env.accounts.admin, chain_env.accounts.aggregator.address,
        [f.address for f in founders], PARAMS, state_dir=tmp_path, incentives=True, reward_supply=SUPPLY,
    )
    assert len(reports) == 5 and deployment.has_incentives
    assert read_deployment(tmp_path, deployment.chain_id) == deployment
    timelock = str(deployment.timelock)
    inc = Incentives(chain_env.conn, deployment)
    assert inc.token_balance(timelock) == SUPPLY
    newcomer = chain_env.accounts.participants[3]
    incentives, token = str(deployment.incentives), str(deployment.reward_token)

    fed.with_account(newcomer).register("org-new", "health", b"\x02", DECLARED_SAMPLES)
    spec, strategy, schema = (Digest(d) for d in TASK_DIGESTS)
    _pass(chain_env, deployment, founders, [
        configure_task_call(fed, spec, strategy, schema, Cid(TASK_CID), TASK_MAX_COMMIT_DURATION),
        admit_call(fed, newcomer.address),
        set_deposit_policy_call(incentives, DEPOSIT, DELAY, timelock),
        set_budget_call(incentives, BUDGET),
        fund_pool_call(token, incentives, POOL),
    ], "configure the task, admit a newcomer, ask for deposits, set the budget and fund the pool")
    assert inc.deposit_policy().amount == DEPOSIT and inc.reward_budget() == BUDGET
    assert inc.token_balance(incentives) == POOL and inc.token_balance(timelock) == SUPPLY - POOL
    policy_set = [ev for ev in inc.history() if isinstance(ev, DepositPolicySet)]
    assert [ev.set_by for ev in policy_set] == [deployment.timelock]

    with pytest.raises(IncentivesError) as info:  # the deployer kept no power over the incentives
        _as(IncEnv(chain_env, deployment), chain_env.accounts.admin,
            slash_call(incentives, newcomer.address, 1, FINDING, FINDING_CID))
    assert isinstance(info.value.revert, IncentivesUnauthorized)

    inc.with_account(newcomer).deposit()
    _pass(chain_env, deployment, founders,
          [slash_call(incentives, newcomer.address, DEPOSIT // 2, FINDING, FINDING_CID)],
          "slash the newcomer for the rejected update the finding blob records")
    assert inc.deposit_of(newcomer.address).held == DEPOSIT - DEPOSIT // 2
    assert inc.owed_to(timelock) == DEPOSIT // 2
    slashed = [ev for ev in inc.history() if isinstance(ev, Slashed)]
    assert len(slashed) == 1
    assert (slashed[0].participant, slashed[0].slashed_by, slashed[0].treasury, slashed[0].finding_digest) == (
        Address(newcomer.address), deployment.timelock, deployment.timelock, FINDING
    )

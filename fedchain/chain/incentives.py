"""Incentives of a federation on chain: native-ETH deposits, slashes that cite a finding, and ERC-20 rewards by
Merkle claim (``FederationIncentives`` and ``FederationRewardToken``).

:func:`deploy_incentives` deploys the reward token (its whole supply minted to the treasury: the timelock of a
governed deployment, else the admin) and the incentives contract for a recorded Federation, and records them with
the deployment (:func:`fedchain.chain.governance.deploy_governed` does the same with ``incentives=True``).

:class:`Incentives` signs and reads: a participant's ``deposit``, ``request_withdrawal``, ``withdraw`` and
``claim``; the aggregator's ``publish_rewards``; the treasury's ``claim_slashed``; the views as typed records
(:class:`DepositRecord`, :class:`DepositPolicy`, :class:`RoundRewards`); and :meth:`Incentives.history`, every event
of the contract as a typed record (:data:`IncentiveEvent`) with its block, transaction and log index, read by the
reorg-safe incremental :class:`fedchain.chain.events.EventIndex`. The admin's actions (deposit policy, budget, pool
funding, slash) are governance proposal calls built by :func:`set_deposit_policy_call`, :func:`set_budget_call`,
:func:`fund_pool_call` and :func:`slash_call`.

A refusal - by the chain, decoded through the generated typed reverts of :mod:`fedchain.reverts`, or by the client
before it sends anything - is a :class:`fedchain.errors.IncentivesError` (:class:`~fedchain.errors.DepositError`
for deposits, withdrawals and slashes, :class:`~fedchain.errors.ClaimError` for publications and claims) with one
clear line and the typed revert in ``revert``; nothing was sent, or the transaction changed nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain.chain.abi import DecodedLog, FunctionCodec, RevertDecoder
from fedchain.chain.compiler import load_artifact
from fedchain.chain.connection import Connection
from fedchain.chain.events import EventIndex
from fedchain.chain.federation import (
    INCENTIVES_CONTRACT,
    REWARD_TOKEN_CONTRACT,
    Deployment,
    _address,
    _digest,
    _uint,
    deploy_incentive_contracts,
    load_federation_artifact,
    write_deployment,
)
from fedchain.chain.governance import ProposalCall, _GovernanceLogs
from fedchain.codec.abi import to_checksum_address
from fedchain.errors import ClaimError, ContractRevertError, DepositError, IncentivesError, NoIncentivesError
from fedchain.ports import TxReport
from fedchain.types import Address, Cid, Digest, RoundId

if TYPE_CHECKING:  # only to name the type: signing imports no eth-account
    from fedchain.chain.signer import Signer

__all__ = [
    "INCENTIVES_CONTRACT",
    "REWARD_TOKEN_CONTRACT",
    "DepositPolicy",
    "DepositPolicySet",
    "DepositRecord",
    "Deposited",
    "IncentiveEvent",
    "Incentives",
    "RewardBudgetSet",
    "RewardClaimed",
    "RewardsPublished",
    "RoundRewards",
    "Slashed",
    "SlashedFundsWithdrawn",
    "WithdrawalRequested",
    "Withdrawn",
    "deploy_incentives",
    "fund_pool_call",
    "incentives_abi",
    "reward_token_abi",
    "set_budget_call",
    "set_deposit_policy_call",
    "slash_call",
]

log = logging.getLogger(__name__)

_DEPOSIT_ERRORS = frozenset({
    "IncentivesDepositsDisabled", "IncentivesWrongDeposit", "IncentivesNotRegistered", "IncentivesAlreadyDeposited",
    "IncentivesStillParticipating", "IncentivesNoDeposit", "IncentivesWithdrawalAlreadyRequested",
    "IncentivesWithdrawalNotRequested", "IncentivesWithdrawalDelay", "IncentivesSlashTooLarge",
    "IncentivesInvalidSlash", "IncentivesNothingOwed", "IncentivesInvalidPolicy",
})
_CLAIM_ERRORS = frozenset({
    "IncentivesRoundNotFinalized", "IncentivesAlreadyPublished", "IncentivesOverBudget", "IncentivesInvalidRewards",
    "IncentivesNoRewards", "IncentivesInvalidProof", "IncentivesAlreadyClaimed", "IncentivesBudgetExceeded",
    "ERC20InsufficientBalance",
})
_PARTICIPANT_STATUS = ("None", "Pending", "Active", "Removed")
_ROUND_STATUS = ("None", "Open", "Finalized", "Closed", "Disputed")


def incentives_abi() -> list[dict[str, Any]]:
    """The ABI of the committed ``FederationIncentives`` artifact."""
    return list(load_artifact(INCENTIVES_CONTRACT)["abi"])


def reward_token_abi() -> list[dict[str, Any]]:
    """The ABI of the committed ``FederationRewardToken`` artifact."""
    return list(load_artifact(REWARD_TOKEN_CONTRACT)["abi"])


# ---------------------------------------------------------------- views


@dataclass(frozen=True)
class DepositPolicy:
    """The deposit policy: the deposit (wei; 0: none asked for), the withdrawal delay and the treasury."""

    amount: int
    withdrawal_delay_s: int
    treasury: Address

    @property
    def enabled(self) -> bool:
        """Whether participants are asked for a deposit."""
        return self.amount > 0


@dataclass(frozen=True)
class DepositRecord:
    """A participant's deposit: what it holds (wei), when it can withdraw (0 before it asked) and whether it asked."""

    participant: Address
    held: int
    available_at: int
    requested: bool


@dataclass(frozen=True)
class RoundRewards:
    """A round's published rewards: the Merkle root, the total published, the budget recorded with it and what the
    claims took so far."""

    round_id: RoundId
    root: bytes
    total: int
    budget: int
    claimed: int

    @property
    def remaining(self) -> int:
        """What is left of the round's budget."""
        return self.budget - self.claimed


# ---------------------------------------------------------------- events (the incentives audit trail)


@dataclass(frozen=True)
class DepositPolicySet:
    """``DepositPolicySet``: the admin set the deposit policy."""

    set_by: Address
    amount: int
    withdrawal_delay_s: int
    treasury: Address
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class Deposited:
    """``Deposited``: a participant locked its deposit."""

    participant: Address
    amount: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class WithdrawalRequested:
    """``WithdrawalRequested``: a participant that left asked for its deposit back."""

    participant: Address
    amount: int
    available_at: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class Withdrawn:
    """``Withdrawn``: a participant withdrew its deposit."""

    participant: Address
    amount: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class Slashed:
    """``Slashed``: the admin (an executed proposal) slashed a deposit citing a finding blob."""

    participant: Address
    slashed_by: Address
    amount: int
    finding_digest: Digest
    finding_cid: Cid
    treasury: Address
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class SlashedFundsWithdrawn:
    """``SlashedFundsWithdrawn``: the treasury pulled the slashed funds owed to it."""

    treasury: Address
    amount: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class RewardBudgetSet:
    """``RewardBudgetSet``: the admin set the reward budget per round."""

    set_by: Address
    per_round: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class RewardsPublished:
    """``RewardsPublished``: the aggregator published a finalised round's reward root and scores blob."""

    round_id: RoundId
    published_by: Address
    root: bytes
    total: int
    budget: int
    scores_digest: Digest
    scores_cid: Cid
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class RewardClaimed:
    """``RewardClaimed``: a participant claimed its reward of a round."""

    round_id: RoundId
    participant: Address
    amount: int
    block_number: int
    tx_hash: str
    log_index: int


IncentiveEvent = (
    DepositPolicySet | Deposited | WithdrawalRequested | Withdrawn | Slashed | SlashedFundsWithdrawn | RewardBudgetSet
    | RewardsPublished | RewardClaimed
)
"""Every event of ``FederationIncentives`` as its typed record."""


def _to_record(entry: DecodedLog) -> IncentiveEvent | None:
    a = entry.args
    pos: dict[str, Any] = {"block_number": entry.block_number, "tx_hash": entry.tx_hash, "log_index": entry.log_index}
    name = entry.event
    if name == "DepositPolicySet":
        return DepositPolicySet(Address(a["setBy"]), int(a["amount"]), int(a["withdrawalDelay"]),
                                Address(a["treasury"]), **pos)
    if name == "Deposited":
        return Deposited(Address(a["participant"]), int(a["amount"]), **pos)
    if name == "WithdrawalRequested":
        return WithdrawalRequested(Address(a["participant"]), int(a["amount"]), int(a["availableAt"]), **pos)
    if name == "Withdrawn":
        return Withdrawn(Address(a["participant"]), int(a["amount"]), **pos)
    if name == "Slashed":
        return Slashed(Address(a["participant"]), Address(a["slashedBy"]), int(a["amount"]),
                       Digest(bytes(a["findingDigest"])), Cid(str(a["findingCid"])), Address(a["treasury"]), **pos)
    if name == "SlashedFundsWithdrawn":
        return SlashedFundsWithdrawn(Address(a["treasury"]), int(a["amount"]), **pos)
    if name == "RewardBudgetSet":
        return RewardBudgetSet(Address(a["setBy"]), int(a["perRound"]), **pos)
    if name == "RewardsPublished":
        return RewardsPublished(RoundId(int(a["roundId"])), Address(a["publishedBy"]), bytes(a["root"]),
                                int(a["total"]), int(a["budget"]), Digest(bytes(a["scoresDigest"])),
                                Cid(str(a["scoresCid"])), **pos)
    if name == "RewardClaimed":
        return RewardClaimed(RoundId(int(a["roundId"])), Address(a["participant"]), int(a["amount"]), **pos)
    return None


# ---------------------------------------------------------------- the client


def _reason(err: ContractRevertError) -> str:
    """One clear line for a decoded refusal of the incentives contract or its token."""
    a = err.error_args
    name = err.error_name
    if name == "IncentivesWrongDeposit":
        return f"{a['participant']} sent {a['sent']} wei, the deposit policy asks for exactly {a['required']} wei"
    if name == "IncentivesDepositsDisabled":
        return "no deposit is asked for: the deposit policy's amount is 0"
    if name == "IncentivesNotRegistered":
        return f"{a['participant']} is not a registered (pending or active) participant of the Federation"
    if name == "IncentivesAlreadyDeposited":
        return f"{a['participant']} has deposited already (it holds {a['held']} wei; a participant deposits once)"
    if name == "IncentivesStillParticipating":
        status = _PARTICIPANT_STATUS[a["status"]] if a["status"] < len(_PARTICIPANT_STATUS) else a["status"]
        return f"{a['participant']} has not left the Federation (it is {status}); leave first"
    if name == "IncentivesNoDeposit":
        return f"{a['participant']} holds no deposit"
    if name == "IncentivesWithdrawalAlreadyRequested":
        return f"{a['participant']} asked for its withdrawal already; it can withdraw at chain time {a['availableAt']}"
    if name == "IncentivesWithdrawalNotRequested":
        return f"{a['participant']} has not asked for its withdrawal (request it first)"
    if name == "IncentivesWithdrawalDelay":
        return f"the withdrawal delay of {a['participant']} runs until chain time {a['availableAt']}"
    if name == "IncentivesSlashTooLarge":
        return f"a slash of {a['amount']} wei exceeds the {a['held']} wei {a['participant']} holds"
    if name in ("IncentivesInvalidSlash", "IncentivesInvalidRewards", "IncentivesInvalidPolicy"):
        return f"{a['field']} is refused (zero or empty)"
    if name == "IncentivesNothingOwed":
        return f"nothing is owed to {a['account']}"
    if name == "IncentivesRoundNotFinalized":
        status = _ROUND_STATUS[a["status"]] if a["status"] < len(_ROUND_STATUS) else a["status"]
        return f"round {a['roundId']} is not finalised (it is {status})"
    if name == "IncentivesAlreadyPublished":
        return f"the rewards of round {a['roundId']} are published already"
    if name == "IncentivesOverBudget":
        return f"the total {a['total']} of round {a['roundId']} exceeds the budget per round {a['budget']}"
    if name == "IncentivesNoRewards":
        return f"no rewards were published for round {a['roundId']}"
    if name == "IncentivesInvalidProof":
        return (f"the proof does not show ({a['participant']}, {a['amount']}) among the rewards of round "
                f"{a['roundId']}")
    if name == "IncentivesAlreadyClaimed":
        return f"{a['participant']} claimed its reward of round {a['roundId']} already"
    if name == "IncentivesBudgetExceeded":
        return (f"a claim of {a['amount']} exceeds what is left of round {a['roundId']}'s budget "
                f"({a['remaining']})")
    if name == "IncentivesUnauthorized":
        return f"{a['caller']} lacks the Federation role 0x{bytes(a['role']).hex()} this needs"
    if name == "ERC20InsufficientBalance":
        return f"the reward pool holds {a['balance']} tokens, {a['needed']} are needed (fund the pool)"
    return str(err)


class Incentives:
    """One federation's incentives contract and reward token; writes signed by ``account``."""

    def __init__(self, conn: Connection, deployment: Deployment, account: Signer | None = None, *,
                 index: EventIndex[IncentiveEvent] | None = None) -> None:
        if deployment.incentives is None or deployment.reward_token is None:
            raise NoIncentivesError(
                f"the Federation at {deployment.address} on chain {deployment.chain_id} has no incentives contract "
                "(deployed without incentives)"
            )
        self.conn = conn
        self.deployment = deployment
        self.account = account
        self.address = Address(to_checksum_address(deployment.incentives))
        self.token = Address(to_checksum_address(deployment.reward_token))
        inc_abi, token_abi = incentives_abi(), reward_token_abi()
        self.codec = FunctionCodec(inc_abi)
        self.token_codec = FunctionCodec(token_abi)
        self.errors = RevertDecoder([*inc_abi, *token_abi, *load_federation_artifact()["abi"]])
        if index is None:
            start = deployment.incentives_block if deployment.incentives_block is not None else deployment.block_number
            index = EventIndex(_GovernanceLogs(conn, [self.address], inc_abi, start), _to_record)  # one contract's logs
        self._index = index

    def with_account(self, account: Signer) -> Incentives:
        """The same client (and event index), writes signed by ``account``."""
        return Incentives(self.conn, self.deployment, account, index=self._index)

    @property
    def sender(self) -> Address:
        """The signing account; IncentivesError for a read-only client."""
        if self.account is None:
            raise IncentivesError("this incentives client has no signing account")
        return Address(to_checksum_address(self.account.address))

    # --- plumbing ------------------------------------------------------------------

    def _call(self, function: str, *args: Any, token: bool = False) -> tuple[Any, ...]:
        codec = self.token_codec if token else self.codec
        tx: dict[str, Any] = {"to": self.token if token else self.address, "data": codec.encode_call(function, *args)}
        raw = self.conn.call(tx, decoder=self.errors, function=function)
        return codec.decode_result(function, raw)

    def _send(self, action: str, function: str, *args: Any, value: int = 0,
              round_id: int | None = None) -> TxReport:
        if self.account is None:
            raise IncentivesError(f"cannot {action}: no signing account for writes to {self.address}")
        try:
            report, _ = self.conn.send_transaction(
                self.account, to=self.address, data=self.codec.encode_call(function, *args), value=value,
                function=function, decoder=self.errors,
                round_id=RoundId(round_id) if round_id is not None else None,
            )
        except ContractRevertError as err:
            family = (DepositError if err.error_name in _DEPOSIT_ERRORS
                      else ClaimError if err.error_name in _CLAIM_ERRORS else IncentivesError)
            raise family(f"cannot {action}: {_reason(err)}", revert=err) from err
        return report

    # --- deposits ------------------------------------------------------------------

    def deposit(self, amount: int | None = None) -> TxReport:
        """Lock the signer's deposit: ``amount`` wei (default: the policy's, the only amount accepted)."""
        value = self.deposit_policy().amount if amount is None else _uint(amount, 256, "amount", "deposit")
        return self._send("deposit", "deposit", value=value)

    def request_withdrawal(self) -> TxReport:
        """Ask for the signer's deposit back (it must have left the Federation); withdrawable after the delay."""
        return self._send("request the withdrawal", "requestWithdrawal")

    def withdraw(self) -> TxReport:
        """Withdraw what the signer still holds of its deposit, once the withdrawal delay has passed."""
        return self._send("withdraw the deposit", "withdraw")

    def claim_slashed(self) -> TxReport:
        """Pull the slashed funds owed to the signer (the treasury)."""
        return self._send("claim the slashed funds", "claimSlashed")

    # --- rewards -------------------------------------------------------------------

    def publish_rewards(self, round_id: int, root: bytes, total: int, scores_digest: bytes,
                        scores_cid: str) -> TxReport:
        """Publish a finalised round's reward root, total and scores blob (the aggregator, once per round)."""
        f = "publish_rewards"
        rid = _uint(round_id, 256, "round_id", f)
        return self._send(
            f"publish the rewards of round {rid}", "publishRewards", rid, _digest(root, "root", f),
            _uint(total, 256, "total", f), _digest(scores_digest, "scores_digest", f), str(scores_cid), round_id=rid,
        )

    def claim(self, round_id: int, amount: int, proof: Sequence[bytes]) -> TxReport:
        """Claim the signer's reward ``amount`` of ``round_id`` with the Merkle proof of its leaf."""
        f = "claim"
        rid = _uint(round_id, 256, "round_id", f)
        hashes = [_digest(p, "proof element", f) for p in proof]
        return self._send(f"claim the reward of round {rid}", "claim", rid, _uint(amount, 256, "amount", f), hashes,
                          round_id=rid)

    # --- views ---------------------------------------------------------------------

    def deposit_of(self, address: str) -> DepositRecord:
        """``depositOf``: what ``address`` holds, when it can withdraw and whether it asked to."""
        checked = _address(address, "address", "deposit_of")
        held, available_at, requested = self._call("depositOf", checked)
        return DepositRecord(Address(checked), int(held), int(available_at), bool(requested))

    def deposit_policy(self) -> DepositPolicy:
        """``depositPolicy``: the deposit, the withdrawal delay and the treasury."""
        amount, delay, treasury = self._call("depositPolicy")
        return DepositPolicy(int(amount), int(delay), Address(to_checksum_address(treasury)))

    def reward_budget(self) -> int:
        """``rewardBudget``: the budget per round (reward token units)."""
        return int(self._call("rewardBudget")[0])

    def round_rewards(self, round_id: int) -> RoundRewards | None:
        """``roundRewards``: a round's published rewards; None when none were published."""
        rid = _uint(round_id, 256, "round_id", "round_rewards")
        root, total, budget, claimed = self._call("roundRewards", rid)
        if bytes(root) == bytes(32):
            return None
        return RoundRewards(RoundId(rid), bytes(root), int(total), int(budget), int(claimed))

    def has_claimed(self, round_id: int, address: str) -> bool:
        """``hasClaimed``: whether ``address`` claimed its reward of ``round_id``."""
        f = "has_claimed"
        return bool(self._call("hasClaimed", _uint(round_id, 256, "round_id", f), _address(address, "address", f))[0])

    def owed_to(self, address: str) -> int:
        """``owedTo``: the slashed funds owed to ``address`` (wei)."""
        return int(self._call("owedTo", _address(address, "address", "owed_to"))[0])

    def reward_leaf(self, round_id: int, address: str, amount: int) -> bytes:
        """``rewardLeaf``: the contract's Merkle leaf of ``(round_id, address, amount)``."""
        f = "reward_leaf"
        return bytes(self._call("rewardLeaf", _uint(round_id, 256, "round_id", f), _address(address, "address", f),
                                _uint(amount, 256, "amount", f))[0])

    def token_balance(self, address: str) -> int:
        """The reward token balance of ``address`` (the pool: the incentives contract's own)."""
        return int(self._call("balanceOf", _address(address, "address", "token_balance"), token=True)[0])

    def history(self, from_block: int | None = None, to_block: int | None = None) -> list[IncentiveEvent]:
        """Every incentives event (policy, deposits, withdrawal requests, withdrawals, slashes, treasury pulls,
        budgets, publications, claims) in ``[from_block, to_block]``, in chain order."""
        return self._index.events(from_block, to_block)


# ---------------------------------------------------------------- deployment


def deploy_incentives(
    conn: Connection,
    deployer: Signer,
    deployment: Deployment,
    *,
    supply: int,
    treasury: str | None = None,
    state_dir: Path | None = None,
) -> tuple[Incentives, Deployment, list[TxReport]]:
    """Deploy the reward token (``supply`` minted to ``treasury``: default the timelock of a governed deployment,
    else its admin) and the incentives contract for ``deployment``'s Federation, signed by ``deployer``; record the
    updated deployment under ``state_dir`` (when given) only once both are deployed and checked. Returns the client
    (signed by ``deployer``), the updated deployment and the two reports (token, incentives)."""
    updated, reports = deploy_incentive_contracts(conn, deployer, deployment, supply=supply, treasury=treasury)
    if state_dir is not None:
        path = write_deployment(state_dir, updated)
        log.info("deployed incentives at %s (reward token %s); recorded in %s", updated.incentives,
                 updated.reward_token, path)
    return Incentives(conn, updated, deployer), updated, reports


# ---------------------------------------------------------------- proposal builders (pure)


def _incentives_call(incentives: str, function: str, *args: Any) -> ProposalCall:
    address = Address(_address(incentives, "incentives", function))
    return ProposalCall(target=address, value=0, calldata=FunctionCodec(incentives_abi()).encode_call(function, *args))


def set_deposit_policy_call(incentives: str, amount_wei: int, withdrawal_delay_s: int, treasury: str) -> ProposalCall:
    """``setDepositPolicy(amount, withdrawalDelay, treasury)`` on ``incentives``: the deposit (wei; 0: none), the
    withdrawal delay (seconds) and where slashed deposits go."""
    f = "set_deposit_policy_call"
    return _incentives_call(incentives, "setDepositPolicy", _uint(amount_wei, 128, "amount_wei", f),
                            _uint(withdrawal_delay_s, 64, "withdrawal_delay_s", f), _address(treasury, "treasury", f))


def set_budget_call(incentives: str, per_round: int) -> ProposalCall:
    """``setRewardBudget(perRound)`` on ``incentives``: the reward budget per round (token units)."""
    return _incentives_call(incentives, "setRewardBudget", _uint(per_round, 256, "per_round", "set_budget_call"))


def slash_call(incentives: str, participant: str, amount_wei: int, finding_digest: bytes,
               finding_cid: str) -> ProposalCall:
    """``slash(participant, amount, findingDigest, findingCid)`` on ``incentives``: take ``amount_wei`` of the
    participant's deposit, citing the finding blob (digest and CID) that names it as responsible."""
    f = "slash_call"
    if not isinstance(finding_cid, str) or not finding_cid:
        raise DepositError(f"{f}: the finding CID is empty")
    amount = _uint(amount_wei, 256, "amount_wei", f)
    if amount == 0:
        raise DepositError(f"{f}: a slash of 0 wei is refused")
    digest = _digest(finding_digest, "finding_digest", f)
    if digest == bytes(32):
        raise DepositError(f"{f}: the finding digest is zero")
    return _incentives_call(incentives, "slash", _address(participant, "participant", f), amount, digest, finding_cid)


def fund_pool_call(token: str, incentives: str, amount: int) -> ProposalCall:
    """``transfer(incentives, amount)`` on the reward ``token``: the timelock funds the reward pool."""
    f = "fund_pool_call"
    target = Address(_address(token, "token", f))
    data = FunctionCodec(reward_token_abi()).encode_call(
        "transfer", _address(incentives, "incentives", f), _uint(amount, 256, "amount", f)
    )
    return ProposalCall(target=target, value=0, calldata=data)

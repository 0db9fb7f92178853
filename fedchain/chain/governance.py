"""Governance of a federation on chain: the OpenZeppelin Governor, its timelock and the membership token.

:func:`deploy_governed` deploys the three contracts and the Federation with no admin window: the
addresses are predicted from the deployer's next nonces (the timelock at ``n`` with the Governor at
``n + 2`` as its only proposer and canceller, anyone as executor and no admin; the Federation at
``n + 1`` with the timelock as its admin and the founders' membership tokens; the Governor at ``n + 2``
over the Federation's membership token, itself created by the Federation at its nonce 1), and once
deployed every address, every contract's code and every role is checked: the deployer keeps no admin
power anywhere. Only then is the deployment recorded.

:class:`Governance` signs and reads proposals: ``propose`` (calls built by the pure builders
:func:`admit_call`, :func:`remove_call`, :func:`configure_task_call`, :func:`grant_aggregator_call`,
:func:`revoke_aggregator_call`, :func:`dispute_call`, :func:`set_verification_call`), ``vote``,
``queue``, ``execute``, ``cancel``, ``delegate``; :meth:`Governance.proposal` assembles a
:class:`Proposal` from the Governor's views and its event log, and :meth:`Governance.history` is the
governance audit trail (typed records, :data:`GovernanceEvent`), read by a reorg-safe incremental
:class:`fedchain.chain.events.EventIndex` over the three contracts' logs.

A refusal - by the chain, decoded through the generated typed reverts, or by the client before it sends
anything - is a :class:`fedchain.errors.GovernanceError` with one clear line: an unknown proposal, a
proposal not in the state the action needs (a vote on a pending or closed proposal, an execution before
the timelock delay or a second one), a second vote, a proposer or voter without a vote.

:func:`advance` moves a devnet's chain on (blocks, seconds) so that a demonstration need not wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain.chain.abi import DecodedLog, EventDecoder, FunctionCodec, RevertDecoder, to_bytes
from fedchain.chain.compiler import load_artifact
from fedchain.chain.connection import BlockIdentifier, Connection
from fedchain.chain.events import EventIndex
from fedchain.chain.federation import (
    ADMIN_ROLE,
    AGGREGATOR_ROLE,
    CONTRACT_NAME,
    DEFAULT_ADMIN_ROLE,
    INCENTIVES_CONTRACT,
    REWARD_TOKEN_CONTRACT,
    Deployment,
    FederationContract,
    GovernanceParams,
    _address,
    _digest,
    _uint,
    check_founders,
    create_address,
    deploy_incentive_contracts,
    load_federation_artifact,
    membership_address,
    verify_contract_code,
    write_deployment,
)
from fedchain.codec.abi import keccak, to_checksum_address
from fedchain.errors import (
    AlreadyVotedError,
    ChainError,
    ContractRevertError,
    GovernanceError,
    NotAMemberError,
    NotGovernedError,
    ProposalStateError,
    UnknownProposalError,
)
from fedchain.ports import TxReport
from fedchain.reverts import (
    GovernorAlreadyCastVote,
    GovernorInsufficientProposerVotes,
    GovernorInvalidProposalLength,
    GovernorNonexistentProposal,
    GovernorUnableToCancel,
    GovernorUnexpectedProposalState,
    TimelockUnexpectedOperationState,
)
from fedchain.types import Address, Cid, Digest, RoundId

if TYPE_CHECKING:  # only to name the type: signing imports no eth-account
    from fedchain.chain.signer import Signer

__all__ = [
    "GOVERNOR_CONTRACT",
    "MEMBERSHIP_CONTRACT",
    "TIMELOCK_CONTRACT",
    "Governance",
    "GovernanceEvent",
    "GovernanceParams",
    "MembershipChanged",
    "Proposal",
    "ProposalCall",
    "ProposalCanceled",
    "ProposalCreated",
    "ProposalExecuted",
    "ProposalQueued",
    "ProposalState",
    "Support",
    "TimelockCallExecuted",
    "TimelockRoleChanged",
    "VoteCast",
    "VoteRecord",
    "admit_call",
    "advance",
    "configure_task_call",
    "configure_private_task_call",
    "deploy_governed",
    "dispute_call",
    "grant_aggregator_call",
    "remove_call",
    "revoke_aggregator_call",
    "set_verification_call",
]

log = logging.getLogger(__name__)

GOVERNOR_CONTRACT = "FederationGovernor"
TIMELOCK_CONTRACT = "FederationTimelock"
MEMBERSHIP_CONTRACT = "FederationMembership"
PROPOSER_ROLE = keccak(b"PROPOSER_ROLE")
EXECUTOR_ROLE = keccak(b"EXECUTOR_ROLE")
CANCELLER_ROLE = keccak(b"CANCELLER_ROLE")
ZERO_ADDRESS = Address("0x0000000000000000000000000000000000000000")
ROLE_NAMES = {
    DEFAULT_ADMIN_ROLE: "DEFAULT_ADMIN_ROLE",
    ADMIN_ROLE: "ADMIN_ROLE",
    AGGREGATOR_ROLE: "AGGREGATOR_ROLE",
    PROPOSER_ROLE: "PROPOSER_ROLE",
    EXECUTOR_ROLE: "EXECUTOR_ROLE",
    CANCELLER_ROLE: "CANCELLER_ROLE",
}
"""The roles of the Federation and the timelock by hash (the timelock's admin role is DEFAULT_ADMIN_ROLE)."""


class Support(IntEnum):
    """A vote (``GovernorCountingSimple``)."""

    AGAINST = 0
    FOR = 1
    ABSTAIN = 2


class ProposalState(IntEnum):
    """``IGovernor.ProposalState``."""

    PENDING = 0
    ACTIVE = 1
    CANCELED = 2
    DEFEATED = 3
    SUCCEEDED = 4
    QUEUED = 5
    EXPIRED = 6
    EXECUTED = 7

    @property
    def label(self) -> str:
        """The state in lower case, as messages and JSON name it (``"pending"``)."""
        return self.name.lower()


class _OperationState(IntEnum):
    """``TimelockController.OperationState``."""

    UNSET = 0
    WAITING = 1
    READY = 2
    DONE = 3


def _states(bitmap: bytes | int, enum: type[IntEnum]) -> tuple[str, ...]:
    """The states a state bitmap (bit i = enum value i, OpenZeppelin's ``_encodeStateBitmap``) names."""
    value = int.from_bytes(bitmap, "big") if isinstance(bitmap, (bytes, bytearray)) else int(bitmap)
    return tuple(member.name.lower() for member in enum if value >> member.value & 1)


# ---------------------------------------------------------------- proposals


@dataclass(frozen=True)
class ProposalCall:
    """One call of a proposal: the timelock calls ``target`` with ``value`` wei and ``calldata``."""

    target: Address
    value: int
    calldata: bytes

    def describe(self, abi: Sequence[Mapping[str, Any]] | None = None) -> str:
        """The call decoded with ``abi`` (default: the Federation's, its incentives' and its reward token's), e.g.
        ``admit(0xAbc...)``; role hashes are named (``grantRole(AGGREGATOR_ROLE, 0x...)``). A call the ABI does not
        know shows its selector."""
        if abi is None:
            abi = [item for name in (CONTRACT_NAME, INCENTIVES_CONTRACT, REWARD_TOKEN_CONTRACT)
                   for item in load_artifact(name)["abi"] if item.get("type") == "function"]
        codec = FunctionCodec(abi, skip_overloads=True)
        decoded = codec.decode_call(self.calldata)
        if decoded is None:
            text = f"call {self.target} with 0x{self.calldata[:4].hex()}... ({len(self.calldata)} bytes)"
        else:
            text = decoded.render(names=ROLE_NAMES)
        return text if self.value == 0 else f"{text} with {self.value} wei"

    def to_json(self, abi: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """The call as JSON: target, value (decimal string: wei), calldata (hex) and its decoding."""
        return {
            "target": self.target,
            "value": str(self.value),
            "calldata": "0x" + self.calldata.hex(),
            "call": self.describe(abi),
        }


@dataclass(frozen=True)
class VoteRecord:
    """One vote cast on a proposal (``VoteCast``): the voter, its support, its weight at the snapshot, why."""

    voter: Address
    support: Support
    weight: int
    reason: str
    block_number: int
    tx_hash: str

    def to_json(self) -> dict[str, Any]:
        """The vote as JSON."""
        return {
            "voter": self.voter,
            "support": self.support.name.lower(),
            "weight": self.weight,
            "reason": self.reason,
            "block_number": self.block_number,
            "tx_hash": self.tx_hash,
        }


@dataclass(frozen=True)
class Proposal:
    """A proposal as the Governor and its event log tell it: its calls, state, tally against the quorum,
    deadlines (blocks; ``eta`` in unix seconds once queued, else 0), and where it was made and executed."""

    proposal_id: int
    proposer: Address
    calls: tuple[ProposalCall, ...]
    description: str
    state: ProposalState
    votes_for: int
    votes_against: int
    votes_abstain: int
    quorum: int  # votes (for + abstain) needed, at the snapshot block (for a pending proposal: now)
    snapshot_block: int
    deadline_block: int
    eta: int
    created_block: int
    created_tx: str
    executed_block: int | None
    executed_tx: str | None
    voters: tuple[VoteRecord, ...]

    @property
    def quorum_reached(self) -> bool:
        """Whether the for and abstain votes reach the quorum (``GovernorCountingSimple``)."""
        return self.votes_for + self.votes_abstain >= self.quorum

    def to_json(self, abi: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """The proposal as JSON (its id as a decimal string: it is a uint256)."""
        return {
            "proposal_id": str(self.proposal_id),
            "proposer": self.proposer,
            "description": self.description,
            "state": self.state.label,
            "calls": [call.to_json(abi) for call in self.calls],
            "votes": {"for": self.votes_for, "against": self.votes_against, "abstain": self.votes_abstain},
            "quorum": self.quorum,
            "quorum_reached": self.quorum_reached,
            "snapshot_block": self.snapshot_block,
            "deadline_block": self.deadline_block,
            "eta": self.eta,
            "created_block": self.created_block,
            "created_tx": self.created_tx,
            "executed_block": self.executed_block,
            "executed_tx": self.executed_tx,
            "voters": [vote.to_json() for vote in self.voters],
        }


# ---------------------------------------------------------------- governance events (the audit trail)


@dataclass(frozen=True)
class ProposalCreated:
    """``ProposalCreated``: a member proposed calls; the vote runs over blocks ``(vote_start, vote_end]``."""

    proposal_id: int
    proposer: Address
    calls: tuple[ProposalCall, ...]
    vote_start: int
    vote_end: int
    description: str
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class VoteCast:
    """``VoteCast`` (or ``VoteCastWithParams``): a vote and its weight (0 for an account without votes)."""

    proposal_id: int
    voter: Address
    support: Support
    weight: int
    reason: str
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class ProposalQueued:
    """``ProposalQueued``: a passed proposal was queued in the timelock, executable from ``eta`` (unix seconds)."""

    proposal_id: int
    eta: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class ProposalExecuted:
    """``ProposalExecuted``: the timelock made the proposal's calls (the same transaction's
    :class:`TimelockCallExecuted` events and the Federation events they caused)."""

    proposal_id: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class ProposalCanceled:
    """``ProposalCanceled``: the proposer withdrew the proposal before its vote started."""

    proposal_id: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class TimelockCallExecuted:
    """The timelock's ``CallExecuted``: call ``index`` of operation ``operation_id`` was made."""

    operation_id: bytes
    index: int
    target: Address
    value: int
    data: bytes
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class TimelockRoleChanged:
    """The timelock's ``RoleGranted`` (granted) or ``RoleRevoked``: who may propose, execute, cancel, administer."""

    role: bytes
    account: Address
    sender: Address
    granted: bool
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class MembershipChanged:
    """A membership token minted (``joined``: a founder at deployment, or an admission) or burned (a removal)."""

    member: Address
    joined: bool
    block_number: int
    tx_hash: str
    log_index: int


GovernanceEvent = (
    ProposalCreated
    | VoteCast
    | ProposalQueued
    | ProposalExecuted
    | ProposalCanceled
    | TimelockCallExecuted
    | TimelockRoleChanged
    | MembershipChanged
)


class _GovernanceLogs:
    """The logs of the Governor, the timelock and the membership token together (a
    :class:`fedchain.chain.events.LogSource`)."""

    def __init__(self, conn: Connection, addresses: Sequence[str], abi: Sequence[Mapping[str, Any]], start: int) -> None:
        self.conn = conn
        self.addresses = [to_checksum_address(a) for a in addresses]
        self.deployment_block = start
        self.events = EventDecoder(abi)

    def logs(self, from_block: int, to_block: int, *, topics: list[Any] | None = None) -> list[dict[str, Any]]:
        """Raw logs of the three contracts in ``[from_block, to_block]``."""
        params: dict[str, Any] = {"address": self.addresses, "fromBlock": from_block, "toBlock": to_block}
        if topics is not None:
            params["topics"] = ["0x" + to_bytes(t).hex() if t is not None else None for t in topics]
        return self.conn.logs(params)


# ---------------------------------------------------------------- deployment


def _artifacts() -> dict[str, dict[str, Any]]:
    return {name: load_artifact(name) for name in (GOVERNOR_CONTRACT, TIMELOCK_CONTRACT, MEMBERSHIP_CONTRACT)}


def _deploy_contract(
    conn: Connection, deployer: Signer, artifact: Mapping[str, Any], expected: str, decoder: RevertDecoder,
    *args: Any,
) -> TxReport:
    name = str(artifact["contractName"])
    data = FunctionCodec(artifact["abi"], skip_overloads=True).encode_constructor(to_bytes(artifact["bytecode"]), *args)
    report, receipt = conn.send_transaction(deployer, to=None, data=data, function=f"deploy {name}", decoder=decoder)
    address = receipt.get("contractAddress")
    if not address or to_checksum_address(address) != expected:
        raise GovernanceError(
            f"deploy_governed: {name} was created at {address}, not at the predicted {expected} "
            f"(did {deployer.address} send another transaction meanwhile?); nothing was recorded"
        )
    log.info("deployed %s at %s (tx %s, gas %d)", name, expected, report.tx_hash, report.gas_used)
    return report


def deploy_governed(
    conn: Connection,
    deployer: Signer,
    aggregator: str,
    founders: Sequence[str],
    params: GovernanceParams | None = None,
    *,
    state_dir: Path | None = None,
    incentives: bool = False,
    reward_supply: int = 0,
) -> tuple[FederationContract, Deployment, list[TxReport]]:
    """Deploy a governed federation signed by ``deployer``: the timelock, the Federation (admin: the timelock;
    the ``founders`` are its first members) and the Governor, at addresses predicted from the deployer's nonces,
    then check every address, code and role (the deployer keeps none but, if it is the aggregator, that role);
    record the deployment under ``state_dir`` (when given) only then. With ``incentives`` the reward token
    (``reward_supply`` minted to the timelock) and FederationIncentives are deployed in the same go, before the
    record is written. Returns the Federation (writes signed by ``deployer``), the deployment and the reports
    (timelock, Federation, Governor, then the token and the incentives contract when deployed)."""
    f = "deploy_governed"
    params = (params or GovernanceParams()).check(f)
    aggregator = _address(aggregator, "aggregator", f)
    founding = check_founders(founders, f)
    if not founding:
        raise GovernanceError(f"{f}: a governed federation needs at least one founding member (nobody could vote)")
    artifacts = _artifacts()
    federation_artifact = load_federation_artifact()
    decoder = RevertDecoder([item for a in (federation_artifact, *artifacts.values()) for item in a["abi"]])
    nonce = conn.transaction_count(deployer.address, "pending")
    timelock = create_address(deployer.address, nonce)
    federation = create_address(deployer.address, nonce + 1)
    governor = create_address(deployer.address, nonce + 2)
    membership = membership_address(federation)
    reports = [
        _deploy_contract(
            conn, deployer, artifacts[TIMELOCK_CONTRACT], timelock, decoder,
            params.timelock_delay_s, [governor], [ZERO_ADDRESS], ZERO_ADDRESS,
        ),
        _deploy_contract(conn, deployer, federation_artifact, federation, decoder, timelock, aggregator, founding),
        _deploy_contract(
            conn, deployer, artifacts[GOVERNOR_CONTRACT], governor, decoder,
            membership, timelock, params.voting_delay, params.voting_period, params.quorum_percent,
        ),
    ]
    fed_report = reports[1]
    deployment = Deployment(
        contract="Federation",
        address=federation,
        chain_id=conn.chain_id,
        block_number=fed_report.block_number,
        tx_hash=fed_report.tx_hash,
        source_hash=str(federation_artifact.get("sourceHash", "")),
        admin=timelock,
        aggregator=Address(aggregator),
        deployed_at=time.time(),
        governor=governor,
        timelock=timelock,
        membership=membership,
        governance=params,
        governance_block=reports[0].block_number,
    )
    governance = Governance.from_deployment(conn, deployment)
    governance.check_deployment(deployer.address, founding)
    if incentives:
        deployment, incentive_reports = deploy_incentive_contracts(
            conn, deployer, deployment, supply=reward_supply, treasury=timelock
        )
        reports.extend(incentive_reports)
    if state_dir is not None:
        path = write_deployment(state_dir, deployment)
        log.info("deployed a governed Federation at %s (governor %s, timelock %s); recorded in %s",
                 federation, governor, timelock, path)
    contract = FederationContract(conn, federation, federation_artifact["abi"], deployer,
                                  deployment_block=fed_report.block_number)
    return contract, deployment, reports


# ---------------------------------------------------------------- the client


class Governance:
    """One governed federation's Governor, timelock and membership token; writes signed by ``account``."""

    def __init__(
        self,
        conn: Connection,
        deployment: Deployment,
        account: Signer | None = None,
        *,
        artifacts: Mapping[str, Mapping[str, Any]] | None = None,
        index: EventIndex[GovernanceEvent] | None = None,
    ) -> None:
        governor, timelock, membership = deployment.governor, deployment.timelock, deployment.membership
        if governor is None or timelock is None or membership is None:
            raise NotGovernedError(
                f"the Federation at {deployment.address} on chain {deployment.chain_id} has no governance: it is "
                f"administered by the account {deployment.admin} (deployed with --admin)"
            )
        self.conn = conn
        self.deployment = deployment
        self.account = account
        self.governor = governor
        self.timelock = timelock
        self.membership = membership
        self.federation = FederationContract(conn, deployment.address, deployment_block=deployment.block_number)
        self._artifacts = dict(artifacts) if artifacts is not None else _artifacts()
        self.governor_codec = FunctionCodec(self._artifacts[GOVERNOR_CONTRACT]["abi"], skip_overloads=True)
        self.timelock_codec = FunctionCodec(self._artifacts[TIMELOCK_CONTRACT]["abi"], skip_overloads=True)
        self.membership_codec = FunctionCodec(self._artifacts[MEMBERSHIP_CONTRACT]["abi"], skip_overloads=True)
        abis = [self.federation.abi, *(a["abi"] for a in self._artifacts.values())]
        self.errors = RevertDecoder([item for abi in abis for item in abi])
        events_abi = [item for a in self._artifacts.values() for item in a["abi"] if item.get("type") == "event"]
        self._events = EventDecoder(events_abi)
        if index is None:
            start = deployment.governance_block if deployment.governance_block is not None else deployment.block_number
            source = _GovernanceLogs(conn, [self.governor, self.timelock, self.membership], events_abi, start)
            index = EventIndex(source, self._to_record)
        self._index = index

    @classmethod
    def from_deployment(
        cls, conn: Connection, deployment: Deployment, account: Signer | None = None
    ) -> Governance:
        """The governance of a recorded deployment, writes signed by ``account`` (None: read-only);
        :class:`NotGovernedError` for a deployment administered by an EOA."""
        return cls(conn, deployment, account)

    def with_account(self, account: Signer) -> Governance:
        """The same governance (and event index), writes signed by ``account``."""
        return Governance(self.conn, self.deployment, account, artifacts=self._artifacts, index=self._index)

    @property
    def sender(self) -> Address:
        """The signing account; GovernanceError for a read-only client."""
        if self.account is None:
            raise GovernanceError("this governance client has no signing account")
        return Address(to_checksum_address(self.account.address))

    # --- plumbing ------------------------------------------------------------------

    def _call(
        self, target: str, codec: FunctionCodec, function: str, *args: Any, block: BlockIdentifier = "latest"
    ) -> tuple[Any, ...]:
        tx: dict[str, Any] = {"to": target, "data": codec.encode_call(function, *args)}
        raw = self.conn.call(tx, decoder=self.errors, function=function, block=block)
        return codec.decode_result(function, raw)

    def _gov(self, function: str, *args: Any, block: BlockIdentifier = "latest") -> tuple[Any, ...]:
        return self._call(self.governor, self.governor_codec, function, *args, block=block)

    def _token(self, function: str, *args: Any) -> tuple[Any, ...]:
        return self._call(self.membership, self.membership_codec, function, *args)

    def _send(self, target: str, codec: FunctionCodec, function: str, *args: Any) -> tuple[TxReport, dict[str, Any]]:
        if self.account is None:
            raise GovernanceError(f"{function}: no signing account for writes to {target}")
        return self.conn.send_transaction(
            self.account, to=target, data=codec.encode_call(function, *args), function=function, decoder=self.errors
        )

    def _translate(self, action: str, proposal_id: int | None, err: ContractRevertError) -> GovernanceError:
        """One clear governance error for a refusal of ``action`` on ``proposal_id``."""
        pid = proposal_id if proposal_id is not None else 0
        if isinstance(err, GovernorNonexistentProposal):
            return UnknownProposalError(err.proposal_id, revert=err)
        if isinstance(err, GovernorUnexpectedProposalState):
            current = ProposalState(err.current).label
            if int.from_bytes(err.expected_states, "big") == 0:
                return GovernanceError(
                    f"cannot {action}: the same proposal (same calls and description) exists already as "
                    f"{err.proposal_id}, {current}",
                    revert=err,
                )
            return ProposalStateError(action, err.proposal_id, current, _states(err.expected_states, ProposalState),
                                      revert=err)
        if isinstance(err, GovernorAlreadyCastVote):
            return AlreadyVotedError(pid, err.voter, revert=err)
        if isinstance(err, GovernorInsufficientProposerVotes):
            return NotAMemberError(action, err.proposer, err.votes, err.threshold, revert=err)
        if isinstance(err, GovernorUnableToCancel):
            state = self.state(err.proposal_id)
            proposer = self._created(err.proposal_id).proposer
            return ProposalStateError(
                action, err.proposal_id, state.label, ("pending",),
                detail=f"only its proposer {proposer} may cancel it, before its vote starts; "
                       f"{err.account} asked",
                revert=err,
            )
        if isinstance(err, GovernorInvalidProposalLength):
            return GovernanceError(
                f"cannot {action}: a proposal needs at least one call, and as many targets, values and calldatas "
                f"(got {err.targets}, {err.values}, {err.calldatas})",
                revert=err,
            )
        if isinstance(err, TimelockUnexpectedOperationState) and proposal_id is not None:
            state = self.state(proposal_id)
            eta = int(self._gov("proposalEta", proposal_id)[0])
            now = self.conn.block_timestamp()
            if state == ProposalState.QUEUED and now < eta:
                detail = f"its timelock delay ends at {eta} (unix seconds), {eta - now} s after the latest block"
            else:
                detail = f"the timelock operation is not {' or '.join(_states(err.expected_states, _OperationState))}"
            return ProposalStateError(action, proposal_id, state.label, ("executable",), detail=detail, revert=err)
        what = f"proposal {proposal_id}" if proposal_id is not None else "it"
        return GovernanceError(f"cannot {action}: the chain refused {what}: {err}", revert=err)

    def _transact(
        self, action: str, proposal_id: int | None, target: str, codec: FunctionCodec, function: str, *args: Any
    ) -> tuple[TxReport, dict[str, Any]]:
        try:
            return self._send(target, codec, function, *args)
        except GovernanceError:
            raise
        except ContractRevertError as err:
            raise self._translate(action, proposal_id, err) from err

    # --- proposals -------------------------------------------------------------------

    def propose(self, calls: Sequence[ProposalCall], description: str) -> tuple[int, TxReport]:
        """Propose ``calls`` (made by the timelock once passed and queued) with a description; the signer must be
        a member with a vote as of the previous block. Returns the proposal id and the report."""
        if isinstance(calls, ProposalCall):
            calls = [calls]
        if not calls:
            raise GovernanceError("cannot propose: a proposal needs at least one call")
        if not isinstance(description, str) or not description.strip():
            raise GovernanceError("cannot propose: the description is empty (it says what the proposal does and why)")
        targets, values, calldatas = self._encoded(calls)
        report, receipt = self._transact(
            "propose", None, self.governor, self.governor_codec, "propose", targets, values, calldatas, description
        )
        for raw in receipt["logs"]:
            decoded = self._events.decode(raw)
            if decoded is not None and decoded.event == "ProposalCreated":
                proposal_id = int(decoded.args["proposalId"])
                log.info("proposal %d created: tx %s", proposal_id, report.tx_hash)
                return proposal_id, report
        raise GovernanceError(f"propose: transaction {report.tx_hash} emitted no ProposalCreated event")

    def vote(self, proposal_id: int, support: Support, reason: str = "") -> TxReport:
        """Vote on an active proposal with the signer's votes at its snapshot; refused before sending for an
        unknown proposal, one not active, or a signer without votes at the snapshot (a vote of weight 0)."""
        support = Support(support)
        state = self.state(proposal_id, pending=True)  # as the vote would be counted: in the next block
        if state != ProposalState.ACTIVE:
            raise ProposalStateError("vote on", proposal_id, state.label, ("active",))
        snapshot = int(self._gov("proposalSnapshot", proposal_id)[0])
        weight = int(self._gov("getVotes", self.sender, snapshot, block="pending")[0])
        if weight == 0:
            raise NotAMemberError(f"vote on proposal {proposal_id}", self.sender, 0, 1)
        if reason:
            args: tuple[Any, ...] = ("castVoteWithReason", proposal_id, int(support), reason)
        else:
            args = ("castVote", proposal_id, int(support))
        report, _ = self._transact("vote on", proposal_id, self.governor, self.governor_codec, *args)
        log.info("voted %s on proposal %d with %d vote(s): tx %s", support.name.lower(), proposal_id, weight,
                 report.tx_hash)
        return report

    def queue(self, proposal_id: int) -> TxReport:
        """Queue a succeeded proposal in the timelock; it is executable once the timelock delay elapsed."""
        return self._lifecycle("queue", proposal_id)

    def execute(self, proposal_id: int) -> TxReport:
        """Execute a queued proposal whose timelock delay elapsed (anyone may)."""
        return self._lifecycle("execute", proposal_id)

    def cancel(self, proposal_id: int) -> TxReport:
        """Withdraw a pending proposal (its proposer only, before the vote starts)."""
        return self._lifecycle("cancel", proposal_id)

    def _lifecycle(self, function: str, proposal_id: int) -> TxReport:
        """``queue``, ``execute`` or ``cancel`` of a proposal: the Governor takes its calls and the
        hash of its description again, as proposed."""
        created = self._created(proposal_id)
        targets, values, calldatas = self._encoded(created.calls)
        report, _ = self._transact(
            function, proposal_id, self.governor, self.governor_codec, function,
            targets, values, calldatas, keccak(created.description.encode("utf-8")),
        )
        return report

    def delegate(self, to: str) -> TxReport:
        """Delegate the signer's vote to ``to`` (itself to take it back)."""
        delegatee = _address(to, "to", "delegate")
        report, _ = self._transact("delegate", None, self.membership, self.membership_codec, "delegate", delegatee)
        return report

    # --- reads -----------------------------------------------------------------------

    def state(self, proposal_id: int, *, pending: bool = False) -> ProposalState:
        """The proposal's state as of the latest block (with ``pending``: in the block a transaction sent now is
        mined in, one block later); :class:`UnknownProposalError` for an id never proposed."""
        proposal_id = _uint(proposal_id, 256, "proposal_id", "state")
        try:
            return ProposalState(int(self._gov("state", proposal_id, block="pending" if pending else "latest")[0]))
        except ContractRevertError as err:
            raise self._translate("read", proposal_id, err) from err

    def proposals(self) -> list[Proposal]:
        """Every proposal, in the order they were made."""
        return [self.proposal(e.proposal_id) for e in self._index.events() if isinstance(e, ProposalCreated)]

    def proposal(self, proposal_id: int) -> Proposal:
        """The proposal with its state, tally, quorum, deadlines, calls, votes and execution."""
        created = self._created(proposal_id)
        state = self.state(proposal_id)
        against, votes_for, abstain = (int(v) for v in self._gov("proposalVotes", proposal_id))
        snapshot = int(self._gov("proposalSnapshot", proposal_id)[0])
        deadline = int(self._gov("proposalDeadline", proposal_id)[0])
        eta = int(self._gov("proposalEta", proposal_id)[0])
        clock = int(self._gov("clock")[0])
        quorum = int(self._gov("quorum", min(snapshot, clock - 1))[0])
        events = [e for e in self._index.events() if getattr(e, "proposal_id", None) == proposal_id]
        executed = next((e for e in events if isinstance(e, ProposalExecuted)), None)
        voters = tuple(
            VoteRecord(e.voter, e.support, e.weight, e.reason, e.block_number, e.tx_hash)
            for e in events
            if isinstance(e, VoteCast)
        )
        return Proposal(
            proposal_id=proposal_id,
            proposer=created.proposer,
            calls=created.calls,
            description=created.description,
            state=state,
            votes_for=votes_for,
            votes_against=against,
            votes_abstain=abstain,
            quorum=quorum,
            snapshot_block=snapshot,
            deadline_block=deadline,
            eta=eta,
            created_block=created.block_number,
            created_tx=created.tx_hash,
            executed_block=executed.block_number if executed else None,
            executed_tx=executed.tx_hash if executed else None,
            voters=voters,
        )

    def history(self, from_block: int | None = None, to_block: int | None = None) -> list[GovernanceEvent]:
        """Every governance event (proposals, votes, queueing, executions, cancellations, the timelock's calls and
        role changes, membership mints and burns) in ``[from_block, to_block]``, in chain order."""
        return self._index.events(from_block, to_block)

    def votes_of(self, address: str) -> int:
        """The votes ``address`` holds now (its own token and any delegated to it)."""
        return int(self._token("getVotes", _address(address, "address", "votes_of"))[0])

    def is_member(self, address: str) -> bool:
        """Whether ``address`` holds its membership token."""
        return bool(self._token("isMember", _address(address, "address", "is_member"))[0])

    def member_count(self) -> int:
        """The number of members (the total voting power)."""
        return int(self._token("memberCount")[0])

    def delegate_of(self, address: str) -> Address:
        """Whom ``address``'s vote is delegated to (itself after admission; the zero address: nobody)."""
        (delegatee,) = self._token("delegates", _address(address, "address", "delegate_of"))
        return Address(to_checksum_address(delegatee))

    def settings(self) -> GovernanceParams:
        """The Governor's and timelock's current settings, read from the chain."""
        # quorumNumerator is overloaded (now, and at a timepoint): call the one without arguments by its selector
        raw = self.conn.call({"to": self.governor, "data": keccak(b"quorumNumerator()")[:4]}, decoder=self.errors,
                             function="quorumNumerator")
        numerator = int.from_bytes(raw[:32], "big")
        denominator = int(self._gov("quorumDenominator")[0])
        return GovernanceParams(
            voting_delay=int(self._gov("votingDelay")[0]),
            voting_period=int(self._gov("votingPeriod")[0]),
            quorum_percent=numerator * 100 // denominator,
            timelock_delay_s=int(self._call(self.timelock, self.timelock_codec, "getMinDelay")[0]),
        )

    def timelock_has_role(self, role: bytes, account: str) -> bool:
        """Whether ``account`` holds ``role`` on the timelock."""
        f = "hasRole"
        found = self._call(self.timelock, self.timelock_codec, f, _digest(role, "role", f), _address(account, "account", f))
        return bool(found[0])

    def check_deployment(self, deployer: str, founders: Sequence[str] = ()) -> None:
        """Check the deployment: each contract's code is this build's, the Governor counts the membership token's
        votes and queues in the timelock, the timelock's only proposer and canceller is the Governor, anyone
        executes, and neither ``deployer`` nor anyone but the timelock administers the timelock or the Federation
        (``deployer`` keeps the aggregator role only if it is the aggregator); the ``founders`` are members."""
        problems: list[str] = []
        federation_artifact = load_federation_artifact()
        for address, artifact in (
            (self.federation.address, federation_artifact),
            (self.governor, self._artifacts[GOVERNOR_CONTRACT]),
            (self.timelock, self._artifacts[TIMELOCK_CONTRACT]),
            (self.membership, self._artifacts[MEMBERSHIP_CONTRACT]),
        ):
            try:
                verify_contract_code(self.conn, address, dict(artifact))
            except ChainError as err:
                problems.append(str(err))
        if problems:
            raise GovernanceError("the governed deployment does not check out: " + "; ".join(problems))
        token = to_checksum_address(self._gov("token")[0])
        timelock = to_checksum_address(self._gov("timelock")[0])
        membership = self.federation.membership()
        owner = to_checksum_address(self._token("federation")[0])
        expect = [
            ("the Federation's membership token", membership, self.membership),
            ("the membership token's Federation", owner, self.federation.address),
            ("the Governor's token", token, self.membership),
            ("the Governor's timelock", timelock, self.timelock),
        ]
        problems += [f"{what} is {got}, expected {want}" for what, got, want in expect if got != want]
        must = [
            (self.timelock_has_role(PROPOSER_ROLE, self.governor), "the Governor is the timelock's proposer"),
            (self.timelock_has_role(CANCELLER_ROLE, self.governor), "the Governor is the timelock's canceller"),
            (self.timelock_has_role(EXECUTOR_ROLE, ZERO_ADDRESS), "anyone executes ready timelock operations"),
            (self.timelock_has_role(DEFAULT_ADMIN_ROLE, self.timelock), "the timelock administers itself"),
            (self.federation.has_role(DEFAULT_ADMIN_ROLE, self.timelock), "the timelock holds DEFAULT_ADMIN_ROLE"),
            (self.federation.has_role(ADMIN_ROLE, self.timelock), "the timelock holds the Federation's ADMIN_ROLE"),
        ]
        problems += [f"not so: {what}" for ok, what in must if not ok]
        deployer = _address(deployer, "deployer", "check_deployment")
        held = [
            f"{ROLE_NAMES[role]} on the timelock" for role in (DEFAULT_ADMIN_ROLE, PROPOSER_ROLE, CANCELLER_ROLE,
                                                                 EXECUTOR_ROLE)
            if self.timelock_has_role(role, deployer)
        ]
        held += [f"{ROLE_NAMES[role]} on the Federation" for role in (DEFAULT_ADMIN_ROLE, ADMIN_ROLE)
                 if self.federation.has_role(role, deployer)]
        if deployer != self.deployment.aggregator and self.federation.has_role(AGGREGATOR_ROLE, deployer):
            held.append("AGGREGATOR_ROLE on the Federation")
        if held:
            problems.append(f"the deployer {deployer} still holds {', '.join(held)}")
        problems += [f"founder {f} holds no membership token" for f in founders if not self.is_member(f)]
        if founders and self.member_count() != len(founders):
            problems.append(f"{self.member_count()} members, expected the {len(founders)} founders")
        if problems:
            raise GovernanceError("the governed deployment does not check out: " + "; ".join(problems))

    # --- internals -------------------------------------------------------------------

    def _encoded(self, calls: Sequence[ProposalCall]) -> tuple[list[str], list[int], list[bytes]]:
        targets = [_address(c.target, f"calls[{i}].target", "propose") for i, c in enumerate(calls)]
        values = [_uint(c.value, 256, f"calls[{i}].value", "propose") for i, c in enumerate(calls)]
        return targets, values, [bytes(c.calldata) for c in calls]

    def _created(self, proposal_id: int) -> ProposalCreated:
        proposal_id = _uint(proposal_id, 256, "proposal_id", "proposal")
        for event in self._index.events():
            if isinstance(event, ProposalCreated) and event.proposal_id == proposal_id:
                return event
        raise UnknownProposalError(proposal_id)

    def _to_record(self, entry: DecodedLog) -> GovernanceEvent | None:
        a = entry.args
        pos: dict[str, Any] = {"block_number": entry.block_number, "tx_hash": entry.tx_hash, "log_index": entry.log_index}
        source = entry.address
        name = entry.event
        if source == self.governor:
            if name == "ProposalCreated":
                calls = tuple(
                    ProposalCall(Address(to_checksum_address(t)), int(v), bytes(d))
                    for t, v, d in zip(a["targets"], a["values"], a["calldatas"], strict=True)
                )
                return ProposalCreated(
                    proposal_id=int(a["proposalId"]), proposer=Address(a["proposer"]), calls=calls,
                    vote_start=int(a["voteStart"]), vote_end=int(a["voteEnd"]), description=str(a["description"]), **pos,
                )
            if name in ("VoteCast", "VoteCastWithParams"):
                return VoteCast(
                    proposal_id=int(a["proposalId"]), voter=Address(a["voter"]), support=Support(int(a["support"])),
                    weight=int(a["weight"]), reason=str(a["reason"]), **pos,
                )
            if name == "ProposalQueued":
                return ProposalQueued(proposal_id=int(a["proposalId"]), eta=int(a["etaSeconds"]), **pos)
            if name == "ProposalExecuted":
                return ProposalExecuted(proposal_id=int(a["proposalId"]), **pos)
            if name == "ProposalCanceled":
                return ProposalCanceled(proposal_id=int(a["proposalId"]), **pos)
        elif source == self.timelock:
            if name == "CallExecuted":
                return TimelockCallExecuted(
                    operation_id=bytes(a["id"]), index=int(a["index"]), target=Address(a["target"]),
                    value=int(a["value"]), data=bytes(a["data"]), **pos,
                )
            if name in ("RoleGranted", "RoleRevoked"):
                return TimelockRoleChanged(
                    role=bytes(a["role"]), account=Address(a["account"]), sender=Address(a["sender"]),
                    granted=name == "RoleGranted", **pos,
                )
        elif source == self.membership and name == "Transfer":
            if a["from"] == ZERO_ADDRESS:
                return MembershipChanged(member=Address(a["to"]), joined=True, **pos)
            if a["to"] == ZERO_ADDRESS:
                return MembershipChanged(member=Address(a["from"]), joined=False, **pos)
        return None


# ---------------------------------------------------------------- proposal builders (pure)


def _call(fed: FederationContract, function: str, *args: Any) -> ProposalCall:
    return ProposalCall(target=fed.address, value=0, calldata=fed.codec.encode_call(function, *args))


def admit_call(fed: FederationContract, address: str) -> ProposalCall:
    """The call that admits a registered participant (and makes it a member)."""
    return _call(fed, "admit", _address(address, "address", "admit"))


def remove_call(fed: FederationContract, address: str, reason: str) -> ProposalCall:
    """The call that removes a participant or member, with the reason."""
    return _call(fed, "remove", _address(address, "address", "remove"), str(reason))


def configure_task_call(
    fed: FederationContract,
    model_spec_digest: Digest,
    strategy_digest: Digest,
    data_schema_digest: Digest,
    config_cid: Cid,
    max_commit_duration: int,
) -> ProposalCall:
    """The call that configures the next task version (strategy, its parameters, model spec: their digests and the
    CID of the task document)."""
    f = "configureTask"
    return _call(
        fed, f,
        _digest(model_spec_digest, "model_spec_digest", f),
        _digest(strategy_digest, "strategy_digest", f),
        _digest(data_schema_digest, "data_schema_digest", f),
        str(config_cid),
        _uint(max_commit_duration, 64, "max_commit_duration", f),
    )


def configure_private_task_call(
    fed: FederationContract,
    model_spec_digest: Digest,
    strategy_digest: Digest,
    data_schema_digest: Digest,
    config_cid: Cid,
    max_commit_duration: int,
    privacy_policy_digest: Digest,
    epsilon_budget: int,
) -> ProposalCall:
    """The call that configures the next task version with a privacy policy (its digest and each participant's
    epsilon budget, in micro-epsilon), which the contract then enforces on every commitment."""
    f = "configurePrivateTask"
    return _call(
        fed, f,
        _digest(model_spec_digest, "model_spec_digest", f),
        _digest(strategy_digest, "strategy_digest", f),
        _digest(data_schema_digest, "data_schema_digest", f),
        str(config_cid),
        _uint(max_commit_duration, 64, "max_commit_duration", f),
        _digest(privacy_policy_digest, "privacy_policy_digest", f),
        _uint(epsilon_budget, 64, "epsilon_budget", f),
    )


def grant_aggregator_call(fed: FederationContract, address: str) -> ProposalCall:
    """The call that grants the aggregator role."""
    return _call(fed, "grantRole", AGGREGATOR_ROLE, _address(address, "address", "grantRole"))


def revoke_aggregator_call(fed: FederationContract, address: str) -> ProposalCall:
    """The call that revokes the aggregator role."""
    return _call(fed, "revokeRole", AGGREGATOR_ROLE, _address(address, "address", "revokeRole"))


def dispute_call(
    fed: FederationContract, round_id: RoundId | int, accused: str, findings_digest: Digest, findings_cid: Cid, reason: str
) -> ProposalCall:
    """The call that marks a finalised round disputed, accusing ``accused`` with the findings blob (a GovernanceError
    for a zero findings digest or an empty CID: such a proposal could never be executed)."""
    f = "disputeRound"
    if bytes(findings_digest) == bytes(32):
        raise GovernanceError(f"{f}: the findings digest is zero; a dispute cites the digest of its findings blob")
    if not str(findings_cid):
        raise GovernanceError(f"{f}: the findings CID is empty; a dispute cites the CID of its findings blob")
    return _call(
        fed, f,
        _uint(int(round_id), 256, "round_id", f),
        _address(accused, "accused", f),
        _digest(findings_digest, "findings_digest", f),
        str(findings_cid),
        str(reason),
    )


def set_verification_call(fed: FederationContract, quorum_percent: int) -> ProposalCall:
    """The call that sets the verification policy (0: none; 1-100: the attestation quorum in percent)."""
    f = "setVerificationPolicy"
    value = _uint(quorum_percent, 8, "quorum_percent", f)
    if value > 100:
        raise ChainError(f"{f}: quorum_percent must be at most 100, got {value}")
    return _call(fed, f, value)


# ---------------------------------------------------------------- devnet helpers


def advance(conn: Connection, blocks: int = 0, seconds: int = 0) -> int:
    """Move a devnet's chain on: its clock by ``seconds`` (``evm_increaseTime``), then ``blocks`` blocks
    (``anvil_mine``; one block when only the clock moves). Returns the latest block number; a ChainError
    naming the node when it is not a devnet that supports this."""
    for name, value in (("blocks", blocks), ("seconds", seconds)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ChainError(f"advance: {name} must be a non-negative integer, got {value!r}")
    try:
        if seconds:
            conn.request("evm_increaseTime", [seconds])
        if blocks:
            conn.request("anvil_mine", [hex(blocks)])
        elif seconds:
            conn.request("evm_mine")
    except ChainError as err:
        raise ChainError(
            f"advance: the node at {conn.url} cannot be moved on (a devnet such as anvil can): {err}"
        ) from err
    return conn.block_number()

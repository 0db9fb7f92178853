"""A simulated consortium governing its federation through the Governor, between rounds.

The members are the participants' own accounts (a simulation holds every key): a proposal is
made by one member, every member with a vote at its snapshot votes for it from its own account,
and on the devnet the chain is moved on past the voting period and the timelock delay
(:func:`fedchain.chain.governance.advance`) so that a run need not wait for them. What the
consortium did (executed proposals, disputed rounds) is a :class:`GovernanceSummary` in the
run's report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedchain.chain.connection import Connection
from fedchain.chain.federation import Deployment, GovernanceParams
from fedchain.chain.governance import Governance, Proposal, ProposalCall, ProposalState, Support, advance
from fedchain.chain.ledger import ChainLedger
from fedchain.chain.signer import Signer
from fedchain.errors import GovernanceError, NotAMemberError
from fedchain.ports import RoundAttested, RoundStatus
from fedchain.types import Address, RoundId

log = logging.getLogger(__name__)

ATTESTATION_WAIT_S = 120.0
"""How long the consortium waits for a finalised round's attestations before judging it."""


@dataclass(frozen=True)
class ExecutedProposal:
    """A proposal the consortium passed and executed during the run."""

    proposal_id: int
    description: str
    calls: tuple[str, ...]
    votes_for: int
    votes_against: int
    votes_abstain: int
    quorum: int
    executed_block: int | None
    after_round: int

    def to_json(self) -> dict[str, Any]:
        """One JSON object (the proposal id as a decimal string: it is a 256-bit number)."""
        return {
            "proposal_id": str(self.proposal_id), "description": self.description, "calls": list(self.calls),
            "votes": {"for": self.votes_for, "against": self.votes_against, "abstain": self.votes_abstain},
            "quorum": self.quorum, "executed_block": self.executed_block, "after_round": self.after_round,
        }


@dataclass(frozen=True)
class AttestationWait:
    """How long a finalised round's attestations took to come in, from when the consortium began
    to wait (right after the round ended): until the quorum was met (None: never) and until every
    included participant had attested."""

    round_id: int
    to_quorum_s: float | None
    to_all_s: float
    ok: int
    negative: int
    required: int

    def to_json(self) -> dict[str, Any]:
        """One JSON object."""
        return {"round": self.round_id, "to_quorum_s": None if self.to_quorum_s is None else round(self.to_quorum_s, 3),
                "to_all_s": round(self.to_all_s, 3), "ok": self.ok, "negative": self.negative,
                "required": self.required}


@dataclass(frozen=True)
class DisputedRound:
    """A round the consortium disputed, from its members' negative attestations."""

    round_id: int
    accused: Address
    findings_cid: str
    negative_attestations: int
    positive_attestations: int
    proposal_id: int
    new_aggregator: Address | None

    def to_json(self) -> dict[str, Any]:
        """One JSON object."""
        return {
            "round": self.round_id, "accused": self.accused, "findings_cid": self.findings_cid,
            "attestations": {"ok": self.positive_attestations, "negative": self.negative_attestations},
            "proposal_id": str(self.proposal_id), "new_aggregator": self.new_aggregator,
        }


@dataclass(frozen=True)
class GovernanceSummary:
    """What the consortium did during a run."""

    governor: Address
    timelock: Address
    membership: Address
    params: GovernanceParams
    verification_quorum_percent: int
    executed: tuple[ExecutedProposal, ...]
    disputed: tuple[DisputedRound, ...]
    members: tuple[Address, ...]
    attestation_waits: tuple[AttestationWait, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The ``governance`` object of ``simulate --json``."""
        return {
            "governor": self.governor, "timelock": self.timelock, "membership": self.membership,
            "voting_delay_blocks": self.params.voting_delay, "voting_period_blocks": self.params.voting_period,
            "quorum_percent": self.params.quorum_percent, "timelock_delay_s": self.params.timelock_delay_s,
            "verification_quorum_percent": self.verification_quorum_percent,
            "members": list(self.members),
            "executed_proposals": [p.to_json() for p in self.executed],
            "disputed_rounds": [d.to_json() for d in self.disputed],
            "attestation_waits": [w.to_json() for w in self.attestation_waits],
        }


class Consortium:
    """The members of a governed federation, passing proposals between rounds."""

    def __init__(self, conn: Connection, deployment: Deployment, members: Mapping[str, Signer],
                 *, on_step: Callable[[str], None] | None = None) -> None:
        if deployment.governance is None:
            raise GovernanceError(f"the Federation at {deployment.address} is not governed")
        self.conn = conn
        self.deployment = deployment
        self.members = dict(members)
        self.params = deployment.governance
        self.governance = Governance.from_deployment(conn, deployment)
        self.executed: list[ExecutedProposal] = []
        self.disputed: list[DisputedRound] = []
        self.on_step = on_step
        self.gas: list[tuple[str, int]] = []  # (what, gas) of every governance transaction the members sent
        self.attestation_waits: list[AttestationWait] = []

    def add_member(self, name: str, account: Signer) -> None:
        """A member that joined (its vote counts in proposals made from the next block on)."""
        self.members[name] = account

    def pass_proposal(self, calls: Sequence[ProposalCall], description: str, *, after_round: int) -> Proposal:
        """Propose ``calls`` (as the first member), vote for them from every member that holds a
        vote at the snapshot, move the devnet past the voting period, queue, move it past the
        timelock delay and execute. GovernanceError if the proposal did not pass."""
        names = list(self.members)
        proposer = self.governance.with_account(self.members[names[0]])
        pid, report = proposer.propose(calls, description)
        self.gas.append(("propose", report.gas_used))
        log.info("proposal %d: %s", pid, description)
        advance(self.conn, blocks=self.params.voting_delay + 1)
        for name in names:
            try:
                vote = self.governance.with_account(self.members[name]).vote(
                    pid, Support.FOR, f"{name} supports: {description}")
            except NotAMemberError:
                log.info("proposal %d: %s held no vote at its snapshot (joined later)", pid, name)
            else:
                self.gas.append(("castVote", vote.gas_used))
        current = proposer.proposal(pid)
        advance(self.conn, blocks=max(1, current.deadline_block - self.conn.block_number() + 1))
        state = proposer.state(pid)
        if state != ProposalState.SUCCEEDED:
            raise GovernanceError(f"proposal {pid} ({description}) did not pass: it is {state.label}")
        self.gas.append(("queue", proposer.queue(pid).gas_used))
        advance(self.conn, seconds=self.params.timelock_delay_s + 1)
        executed = proposer.execute(pid)
        kinds = sorted({c.describe(self.governance.federation.abi).partition("(")[0] for c in calls})
        self.gas.append((f"execute[{'+'.join(kinds)}]", executed.gas_used))
        done = proposer.proposal(pid)
        self.executed.append(ExecutedProposal(
            pid, description, tuple(c.describe(self.governance.federation.abi) for c in done.calls),
            done.votes_for, done.votes_against, done.votes_abstain, done.quorum, done.executed_block, after_round,
        ))
        if self.on_step is not None:
            self.on_step(description)
        log.info("proposal %d executed in block %s: %s", pid, done.executed_block, description)
        return done

    def wait_attestations(self, ledger: ChainLedger, round_id: RoundId, timeout_s: float = ATTESTATION_WAIT_S
                          ) -> list[RoundAttested]:
        """The attestations of a finalised round once every included participant attested (or
        ``timeout_s`` passed)."""
        rnd = ledger.round(round_id)
        if rnd.status != RoundStatus.FINALIZED:
            return []
        start = time.monotonic()
        deadline = start + timeout_s
        required = ledger.attestation_quorum(round_id)
        to_quorum: float | None = None
        seen = ledger.block_number()
        while True:
            ok, negative = ledger.attestation_counts(round_id)
            if to_quorum is None and ok >= required:
                to_quorum = time.monotonic() - start
            if ok + negative >= int(rnd.included_count) or time.monotonic() > deadline:
                self.attestation_waits.append(AttestationWait(int(round_id), to_quorum, time.monotonic() - start,
                                                              ok, negative, required))
                return list(ledger.attestations(round_id))
            seen = ledger.wait_for_block(seen, 0.2)

    def summary(self, verification_quorum_percent: int) -> GovernanceSummary:
        """What the consortium did."""
        gov = self.governance
        return GovernanceSummary(
            Address(gov.governor), Address(gov.timelock), Address(gov.membership), self.params,
            verification_quorum_percent, tuple(self.executed), tuple(self.disputed),
            tuple(Address(a.address) for a in self.members.values()), tuple(self.attestation_waits),
        )

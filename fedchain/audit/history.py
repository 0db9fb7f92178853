"""The ledger's events, organised by participant, task version and round for the audit, and
the contract's current model and verification policy at any point of the history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from fedchain.ports import (
    AdvertisementPosted,
    CommitmentSetPosted,
    ContestAnswered,
    ExclusionContested,
    LedgerEvent,
    ParticipantAdmitted,
    ParticipantRegistered,
    ParticipantRemoved,
    ParticipantStatus,
    PrivacyPolicySet,
    RoundAttested,
    RoundClosed,
    RoundDisputed,
    RoundFinalized,
    RoundOpened,
    SecureRoundOpened,
    SignedRoundOpened,
    TaskConfigured,
    UnmaskingSharesPosted,
    UpdateCommitment,
    UpdateSeal,
    VerificationPolicySet,
    event_position,
)
from fedchain.types import Digest


@dataclass
class RoundEvents:
    """One round's events: its opening, commitments, seals, end, dispute and attestations; for a secure-aggregation
    round (``secure``: its SecureRoundOpened event) its advertisements and unmasking shares; for a signed round
    (``signed``) the event that posted its commitment set (``commitments`` holds only the forced ones until the
    audit resolves the set)."""

    opened: RoundOpened
    commitments: list[UpdateCommitment] = field(default_factory=list)
    seals: list[UpdateSeal] = field(default_factory=list)  # commit-reveal rounds
    finalized: RoundFinalized | None = None
    closed: RoundClosed | None = None
    disputed: RoundDisputed | None = None
    attestations: list[RoundAttested] = field(default_factory=list)
    secure: SecureRoundOpened | None = None
    advertisements: list[AdvertisementPosted] = field(default_factory=list)
    signed: SignedRoundOpened | None = None  # a signed round: its commitments are a posted set and forced ones
    commitment_set: CommitmentSetPosted | None = None
    unmasking: list[UnmaskingSharesPosted] = field(default_factory=list)

    @property
    def aggregator(self) -> str:
        """The account that ended the round (finalised or closed it), or opened it while it is open."""
        if self.finalized is not None:
            return self.finalized.finalized_by
        if self.closed is not None:
            return self.closed.closed_by
        return self.opened.opened_by


@dataclass
class History:
    """The ledger's events, organised for the audit."""

    registered: dict[str, ParticipantRegistered]
    # lower-case address -> [(event position, status from then on)]
    status_changes: dict[str, list[tuple[tuple[int, int], ParticipantStatus]]]
    tasks: dict[int, TaskConfigured]
    rounds: dict[int, RoundEvents]
    # lower-case address -> its admissions, in chain order (each approves a dataset size)
    admissions: dict[str, list[ParticipantAdmitted]] = field(default_factory=dict)
    # (round, lower-case participant) -> its exclusion contest, and the aggregator's answer
    contests: dict[tuple[int, str], ExclusionContested] = field(default_factory=dict)
    answers: dict[tuple[int, str], ContestAnswered] = field(default_factory=dict)
    policies: list[VerificationPolicySet] = field(default_factory=list)  # in chain order
    # task version -> the privacy policy (digest and budget) configurePrivateTask set with it
    privacy: dict[int, PrivacyPolicySet] = field(default_factory=dict)
    # every event in chain order: what the governance audit reads admin actions from
    events: list[LedgerEvent] = field(default_factory=list)
    _changes: list[tuple[tuple[int, int], Digest, int]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_events(cls, events: Iterable[LedgerEvent]) -> History:
        """Organise ``events`` (in chain order) by participant, task version and round."""
        registered: dict[str, ParticipantRegistered] = {}
        changes: dict[str, list[tuple[tuple[int, int], ParticipantStatus]]] = defaultdict(list)
        tasks: dict[int, TaskConfigured] = {}
        rounds: dict[int, RoundEvents] = {}
        admissions: dict[str, list[ParticipantAdmitted]] = defaultdict(list)
        ordered = sorted(events, key=event_position)
        history = cls(registered, changes, tasks, rounds, admissions, events=ordered)
        for ev in ordered:
            if isinstance(ev, ParticipantRegistered):
                registered[ev.participant.lower()] = ev
                changes[ev.participant.lower()].append((event_position(ev), ParticipantStatus.PENDING))
            elif isinstance(ev, ParticipantAdmitted):
                changes[ev.participant.lower()].append((event_position(ev), ParticipantStatus.ACTIVE))
                admissions[ev.participant.lower()].append(ev)
            elif isinstance(ev, ParticipantRemoved):
                changes[ev.participant.lower()].append((event_position(ev), ParticipantStatus.REMOVED))
            elif isinstance(ev, TaskConfigured):
                tasks[int(ev.version)] = ev
            elif isinstance(ev, RoundOpened):
                rounds[int(ev.round_id)] = RoundEvents(opened=ev)
            elif isinstance(ev, UpdateCommitment):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].commitments.append(ev)
            elif isinstance(ev, SecureRoundOpened):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].secure = ev
            elif isinstance(ev, SignedRoundOpened):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].signed = ev
            elif isinstance(ev, CommitmentSetPosted):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].commitment_set = ev
            elif isinstance(ev, AdvertisementPosted):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].advertisements.append(ev)
            elif isinstance(ev, UnmaskingSharesPosted):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].unmasking.append(ev)
            elif isinstance(ev, UpdateSeal):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].seals.append(ev)
            elif isinstance(ev, RoundFinalized):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].finalized = ev
            elif isinstance(ev, RoundClosed):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].closed = ev
            elif isinstance(ev, RoundDisputed):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].disputed = ev
            elif isinstance(ev, RoundAttested):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].attestations.append(ev)
            elif isinstance(ev, ExclusionContested):
                history.contests.setdefault((int(ev.round_id), ev.participant.lower()), ev)
            elif isinstance(ev, ContestAnswered):
                history.answers.setdefault((int(ev.round_id), ev.participant.lower()), ev)
            elif isinstance(ev, VerificationPolicySet):
                history.policies.append(ev)
            elif isinstance(ev, PrivacyPolicySet):
                history.privacy[int(ev.version)] = ev
        history.status_changes, history.admissions = dict(changes), dict(admissions)
        return history

    def model_changes(self) -> list[tuple[tuple[int, int], Digest, int]]:
        """How the contract's current model moved, in chain order: (event position, model digest,
        the round it came from, 0 for a fallback). A finalisation makes its model current; a
        dispute of the current model falls back to the disputed round's base model."""
        if self._changes is not None:
            return self._changes
        changes: list[tuple[tuple[int, int], Digest, int]] = []
        current: bytes | None = None
        marks: list[tuple[tuple[int, int], int, bool]] = []
        for rid, rev in self.rounds.items():
            if rev.finalized is not None:
                marks.append((event_position(rev.finalized), rid, False))
            if rev.disputed is not None:
                marks.append((event_position(rev.disputed), rid, True))
        for pos, rid, dispute in sorted(marks):
            rev = self.rounds[rid]
            assert rev.finalized is not None or dispute
            if not dispute and rev.finalized is not None:
                current = bytes(rev.finalized.model_digest)
                changes.append((pos, Digest(current), rid))
            elif rev.finalized is not None and current == bytes(rev.finalized.model_digest):
                current = bytes(rev.opened.base_model_digest)
                changes.append((pos, Digest(current), 0))
        self._changes = changes
        return changes

    def model_at(self, position: tuple[int, int]) -> tuple[Digest, int] | None:
        """The contract's current model just before ``position`` and the round it came from (0:
        a fallback after a dispute); None while no round was finalised (the initial model)."""
        found: tuple[Digest, int] | None = None
        for pos, digest, rid in self.model_changes():
            if pos < position:
                found = (digest, rid)
        return found

    def policy_at(self, position: tuple[int, int]) -> int:
        """The verification policy (a percentage; 0: none) in force just before ``position``."""
        policy = 0
        for ev in self.policies:
            if event_position(ev) < position:
                policy = int(ev.quorum_percent)
        return policy

    def status_at(self, address: str, position: tuple[int, int]) -> ParticipantStatus:
        """The participant's status just before the event at ``position`` (block number, log index)."""
        status = ParticipantStatus.NONE
        for pos, st in self.status_changes.get(address.lower(), []):
            if pos < position:
                status = st
        return status

    def approved_samples_at(self, address: str, position: tuple[int, int]) -> int | None:
        """The dataset size the participant's latest admission before ``position`` approved (None: none)."""
        approved: int | None = None
        for ev in self.admissions.get(address.lower(), []):
            if event_position(ev) < position:
                approved = int(ev.approved_samples)
        return approved


__all__ = ["History", "RoundEvents"]

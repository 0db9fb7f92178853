"""The ports: the :class:`Ledger` and :class:`BlobStore` protocols and the typed ledger records.

The federation loop, the aggregator and the auditor speak to the ledger only through
these records and the :class:`Ledger` protocol; :mod:`fedchain.chain.ledger` implements
it on top of the ``Federation`` contract. This module imports no web3.

Digests are raw 32-byte values (:data:`fedchain.types.Digest`); addresses are EIP-55
checksummed strings; amounts are integers (wei), never floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Protocol, TypeGuard, runtime_checkable

from fedchain.codec.abi import encode as abi_encode
from fedchain.codec.abi import is_address, keccak, to_canonical_address
from fedchain.errors import ChainError
from fedchain.types import DIGEST_SIZE, ZERO_DIGEST, Address, Cid, Digest, RoundId


class ParticipantStatus(IntEnum):
    """Mirror of ``Federation.ParticipantStatus``."""

    NONE = 0
    PENDING = 1
    ACTIVE = 2
    REMOVED = 3


class RoundStatus(IntEnum):
    """Mirror of ``Federation.RoundStatus``."""

    NONE = 0
    OPEN = 1
    FINALIZED = 2
    CLOSED = 3
    DISPUTED = 4  # a finalised round the members refuted by an executed proposal: its model is not built on


@dataclass(frozen=True)
class ParticipantRecord:
    """A participant as the contract stores it, plus its registration details from the event log."""

    address: Address
    status: ParticipantStatus
    last_committed_round: RoundId
    registered_block: int
    status_changed_block: int
    declared_samples: int  # dataset size declared at registration; the approved size once admitted
    organisation: str = ""
    industry: str = ""
    public_key: bytes = b""


@dataclass(frozen=True)
class TaskConfig:
    """The learning task the federation currently trains (version 1, 2, ...)."""

    version: int
    model_spec_digest: Digest
    strategy_digest: Digest
    data_schema_digest: Digest
    config_cid: Cid
    max_commit_duration: int  # seconds: the longest commit window a round of this version may be opened with
    privacy_policy_digest: Digest = ZERO_DIGEST  # the digest of the task's privacy policy; zero: none
    epsilon_budget: int = 0  # micro-epsilon (ceil(epsilon * 1e6)) per participant; 0: no privacy policy

    @property
    def private(self) -> bool:
        """Whether the task has a privacy policy, so that its rounds are private (commits carry privacy claims)."""
        return self.epsilon_budget != 0


@dataclass(frozen=True)
class RoundRecord:
    """One round: the contract's view merged with the CIDs and reasons of its events."""

    round_id: RoundId
    status: RoundStatus
    base_model_digest: Digest
    base_model_cid: Cid
    deadline: int  # unix seconds (block timestamp)
    min_updates: int
    commit_count: int
    eligible_count: int  # participants active when the round opened; admission waits for the next round
    task_version: int
    included_count: int
    model_digest: Digest
    model_cid: Cid | None
    merkle_root: Digest
    aggregation_digest: Digest
    evidence_digest: Digest
    evidence_cid: Cid | None
    close_reason: str | None
    opened_block: int
    closed_block: int | None  # block of RoundFinalized or RoundClosed
    reveal_deadline: int = 0  # a commit-reveal round's last second of reveals (unix seconds); 0: no commit-reveal
    seal_count: int = 0  # participants who sealed an update (commit-reveal rounds; reveals are commit_count)
    private: bool = False  # opened while the task had a privacy budget: its commitments carry privacy claims
    secure: bool = False  # a secure-aggregation round: advertise, masked inputs, unmasking shares
    advertise_deadline: int = 0  # last second of a secure round's advertise phase (unix seconds); 0: not secure
    unmask_deadline: int = 0  # last second of a secure round's unmask phase (unix seconds); 0: not secure
    advertisement_count: int = 0  # participants who advertised their keys (secure rounds)
    unmasking_count: int = 0  # committers who posted their unmasking shares (secure rounds)
    signed: bool = False  # a signed round: commitments signed off chain, one set posted, then an escape window
    escape_duration: int = 0  # seconds of a signed round's escape window; 0: not signed
    escape_deadline: int = 0  # last second of a signed round's escape window (unix seconds); 0 until its set is posted
    set_count: int = 0  # signed commitments in the posted set (signed rounds)
    set_root: Digest = ZERO_DIGEST  # Merkle root of the posted set (zero for an empty set or none posted)
    set_digest: Digest = ZERO_DIGEST  # digest of the posted set blob (zero before it is posted)
    set_cid: Cid | None = None  # CID of the posted set blob (None before it is posted)

    @property
    def commit_reveal(self) -> bool:
        """Whether participants seal their updates in the commit phase and reveal them after it."""
        return self.reveal_deadline != 0


@dataclass(frozen=True)
class UpdateCommitment:
    """One ``UpdateCommitted`` event: a participant's commitment to an update blob; in a private round joined with
    the ``PrivacySpent`` event of the same transaction (its privacy claim)."""

    round_id: RoundId
    participant: Address
    update_digest: Digest
    cid: Cid
    num_samples: int
    metadata_digest: Digest
    block_number: int
    tx_hash: str
    log_index: int
    epsilon_spent: int = 0  # the participant's cumulative epsilon after this round (micro-epsilon); 0: no claim
    accountant_digest: Digest = ZERO_DIGEST  # digest of the round's accountant inputs; zero: no privacy claim


@dataclass(frozen=True)
class TxReport:
    """What a mined, successful transaction cost."""

    function: str
    tx_hash: str
    gas_used: int
    block_number: int
    effective_gas_price: int  # wei per gas
    round_id: RoundId | None = None  # the round the transaction concerns, when there is one

    @property
    def fee_wei(self) -> int:
        """What the transaction paid: gas used times the effective gas price, in wei."""
        return self.gas_used * self.effective_gas_price


# --- event records (the audit trail), ordered by (block_number, log_index) ----------


@dataclass(frozen=True)
class ParticipantRegistered:
    """One ``ParticipantRegistered`` event: an organisation asked to join, with its industry, public key and the
    size of its training dataset."""

    participant: Address
    organisation: str
    industry: str
    public_key: bytes
    declared_samples: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class ParticipantAdmitted:
    """One ``ParticipantAdmitted`` event: the admin who admitted the participant, and the dataset size approved
    (the declared one): no commitment of the participant may claim more samples."""

    participant: Address
    admitted_by: Address
    approved_samples: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class ParticipantRemoved:
    """One ``ParticipantRemoved`` event: the admin who removed the participant, and why."""

    participant: Address
    removed_by: Address
    reason: str
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class TaskConfigured:
    """One ``TaskConfigured`` event: a new task version, its three digests, the CID of its document and the
    longest commit window its rounds may be opened with."""

    version: int
    configured_by: Address  # the admin who configured the task
    model_spec_digest: Digest
    strategy_digest: Digest
    data_schema_digest: Digest
    config_cid: Cid
    max_commit_duration: int  # seconds
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class PrivacyPolicySet:
    """One ``PrivacyPolicySet`` event: the task version configured in the same transaction has a privacy policy
    (its digest) and an epsilon budget per participant."""

    version: int
    actor: Address  # the admin who configured the task
    policy_digest: Digest
    epsilon_budget: int  # micro-epsilon
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class PrivacySpent:
    """One ``PrivacySpent`` event: the privacy claim of a commitment in a private round (its ``UpdateCommitted``
    event precedes it in the same transaction)."""

    round_id: RoundId
    participant: Address
    epsilon_spent: int  # cumulative, micro-epsilon
    accountant_digest: Digest
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class RoundOpened:
    """One ``RoundOpened`` event: the base model, the commit deadline and the minimum of updates."""

    round_id: RoundId
    opened_by: Address  # the aggregator who opened the round
    base_model_digest: Digest
    base_model_cid: Cid
    deadline: int
    min_updates: int
    task_version: int
    reveal_deadline: int  # last second of the reveal phase of a commit-reveal round; 0 without one
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class SecureRoundOpened:
    """One ``SecureRoundOpened`` event: the three deadlines of a secure-aggregation round (its
    :class:`RoundOpened` precedes it in the same transaction, with ``deadline`` as its commit deadline)."""

    round_id: RoundId
    opened_by: Address  # the aggregator who opened the round
    advertise_deadline: int  # last second of the advertise phase
    deadline: int  # last second of the commit phase (masked inputs)
    unmask_deadline: int  # last second of the unmask phase
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class SignedRoundOpened:
    """One ``SignedRoundOpened`` event: a signed round (its :class:`RoundOpened` precedes it in the same
    transaction): commitments are signed off chain until ``deadline``, then the aggregator posts their set and an
    escape window of ``escape_duration`` seconds opens for forced commitments."""

    round_id: RoundId
    opened_by: Address  # the aggregator who opened the round
    deadline: int  # last second of the signing (commit) phase
    escape_duration: int  # seconds of the escape window, counted from the posting of the set
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class CommitmentSetPosted:
    """One ``CommitmentSetPosted`` event: the set of signed commitments the aggregator collected for a signed
    round (the Merkle root and count on chain, the set itself in the blob); forced commitments may follow until
    ``escape_deadline``."""

    round_id: RoundId
    posted_by: Address  # the aggregator who posted the set
    set_root: Digest  # Merkle root of the signed commitments (zero for an empty set)
    count: int
    set_digest: Digest
    set_cid: Cid
    escape_deadline: int  # last second of the escape window
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class AdvertisementPosted:
    """One ``AdvertisementPosted`` event: a participant's advertisement blob (its key-agreement public keys for
    the round) in a secure round."""

    round_id: RoundId
    participant: Address
    digest: Digest
    cid: Cid
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class UnmaskingSharesPosted:
    """One ``UnmaskingSharesPosted`` event: a committer's unmasking-shares blob in a secure round."""

    round_id: RoundId
    participant: Address
    digest: Digest
    cid: Cid
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class UpdateSeal:
    """One ``UpdateSealed`` event: a participant's seal of its update in a commit-reveal round
    (:func:`update_seal`); the update itself appears as an :class:`UpdateCommitment` once revealed."""

    round_id: RoundId
    participant: Address
    seal: Digest
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class RoundFinalized:
    """One ``RoundFinalized`` event: the new model, the Merkle root of the included updates and the evidence."""

    round_id: RoundId
    finalized_by: Address  # the aggregator who finalised the round
    model_digest: Digest
    model_cid: Cid
    merkle_root: Digest
    aggregation_digest: Digest
    evidence_digest: Digest
    evidence_cid: Cid
    included_count: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class RoundClosed:
    """One ``RoundClosed`` event: a round ended without a model, with the number of commits and the reason."""

    round_id: RoundId
    closed_by: Address  # the aggregator who closed the round
    commit_count: int
    reason: str
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class VerificationPolicySet:
    """One ``VerificationPolicySet`` event: the percentage of a round's included participants whose positive
    attestations the next round needs to open (0: no verification policy)."""

    set_by: Address  # the admin (under governance: the timelock)
    quorum_percent: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class RoundAttested:
    """One ``RoundAttested`` event: an included participant's verdict on a finalised round after replaying it.
    A negative attestation (``ok`` False) names the digest its replay computed (zero if none) and the findings
    blob; a positive one the round's model digest."""

    round_id: RoundId
    participant: Address
    ok: bool
    model_digest: Digest
    findings_digest: Digest  # zero for a positive attestation
    findings_cid: Cid  # empty for a positive attestation
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class RoundDisputed:
    """One ``RoundDisputed`` event: a finalised round marked disputed (by the admin: under governance, an executed
    proposal), the party the findings accuse, and the model the federation falls back to (zero when the current
    model did not change)."""

    round_id: RoundId
    disputed_by: Address
    accused: Address
    findings_digest: Digest
    findings_cid: Cid
    fallback_model_digest: Digest
    reason: str
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class ExclusionContested:
    """One ``ExclusionContested`` event: a participant excluded from a finalised round announces that its update
    blob is available under this digest and CID."""

    round_id: RoundId
    participant: Address
    update_digest: Digest
    cid: Cid
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class ContestAnswered:
    """One ``ContestAnswered`` event: the aggregator's answer to an exclusion contest (whether the blob could be
    fetched this time)."""

    round_id: RoundId
    participant: Address
    answered_by: Address
    available: bool
    block_number: int
    tx_hash: str
    log_index: int


class Attestation(IntEnum):
    """A participant's attestation of a round (``Federation.attestationOf``)."""

    NONE = 0
    OK = 1
    NEGATIVE = 2


class Contest(IntEnum):
    """A participant's exclusion contest of a round (``Federation.contestOf``)."""

    NONE = 0
    OPEN = 1
    AVAILABLE = 2  # answered: the aggregator fetched the blob
    UNAVAILABLE = 3  # answered: the aggregator says it still could not fetch it


@dataclass(frozen=True)
class Inclusion:
    """The proof that a participant's commitment is among a finalised round's included updates: the values of
    its :class:`UpdateCommitment` and the Merkle proof of its leaf (:func:`fedchain.codec.merkle.commitment_leaf`)
    against the round's root (``MerkleTree.proof``). The chain layer hashes the CID."""

    update_digest: Digest
    cid: Cid
    num_samples: int
    metadata_digest: Digest
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class RoleChanged:
    """OpenZeppelin AccessControl ``RoleGranted`` (granted=True) or ``RoleRevoked``."""

    role: bytes
    account: Address
    sender: Address
    granted: bool
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class RoleAdminChanged:
    """OpenZeppelin AccessControl ``RoleAdminChanged``."""

    role: bytes
    previous_admin_role: bytes
    new_admin_role: bytes
    block_number: int
    tx_hash: str
    log_index: int


LedgerEvent = (
    ParticipantRegistered
    | ParticipantAdmitted
    | ParticipantRemoved
    | TaskConfigured
    | PrivacyPolicySet
    | RoundOpened
    | SecureRoundOpened
    | SignedRoundOpened
    | CommitmentSetPosted
    | AdvertisementPosted
    | UnmaskingSharesPosted
    | UpdateCommitment
    | PrivacySpent
    | UpdateSeal
    | RoundFinalized
    | RoundClosed
    | RoleChanged
    | RoleAdminChanged
    | VerificationPolicySet
    | RoundAttested
    | RoundDisputed
    | ExclusionContested
    | ContestAnswered
)


def event_position(event: LedgerEvent) -> tuple[int, int]:
    """Sort key of an event: (block number, log index)."""
    return (event.block_number, event.log_index)


SALT_SIZE = 32
"""Bytes of the secret salt of a seal (a bytes32 on chain)."""


def update_seal(
    round_id: int,
    participant: str,
    update_digest: bytes,
    cid: str,
    num_samples: int,
    metadata_digest: bytes,
    salt: bytes,
) -> Digest:
    """The seal of an update in a commit-reveal round, as ``Federation.updateSeal`` computes it:
    ``keccak256(abi.encode(roundId, participant, updateDigest, keccak256(bytes(cid)), numSamples,
    metadataDigest, salt))``. ``salt`` must be 32 secret random bytes, kept until the reveal."""
    if not 0 <= round_id < 2**256:
        raise ChainError(f"update_seal: round id out of uint256 range: {round_id}")
    if not 0 <= num_samples < 2**64:
        raise ChainError(f"update_seal: num_samples out of uint64 range: {num_samples}")
    if not isinstance(participant, str) or not is_address(participant):
        raise ChainError(f"update_seal: participant is not an address: {participant!r}")
    for name, value, size in (("update_digest", update_digest, DIGEST_SIZE), ("metadata_digest", metadata_digest,
                              DIGEST_SIZE), ("salt", salt, SALT_SIZE)):
        if not isinstance(value, (bytes, bytearray)) or len(value) != size:
            raise ChainError(f"update_seal: {name} must be {size} bytes")
    encoded = abi_encode(
        ["uint256", "address", "bytes32", "bytes32", "uint64", "bytes32", "bytes32"],
        [round_id, to_canonical_address(participant), bytes(update_digest), keccak(cid.encode("utf-8")), num_samples,
         bytes(metadata_digest), bytes(salt)],
    )
    return Digest(keccak(encoded))


@runtime_checkable
class Ledger(Protocol):
    """What the federation loop needs from the ledger. Every write returns a :class:`TxReport`
    once the transaction is mined and successful, and raises a
    :class:`fedchain.errors.ChainError` (``ContractRevertError`` for a custom error) otherwise."""

    @property
    def sender(self) -> Address:
        """The account that signs this ledger's writes."""
        ...

    # reads
    def participant(self, address: Address) -> ParticipantRecord:
        """The participant's record (status, last committed round, registration details)."""
        ...

    def active_count(self) -> int:
        """The number of active participants."""
        ...

    def task(self) -> TaskConfig | None:
        """The current task, or None before the admin configured one."""
        ...

    def latest_round_id(self) -> RoundId:
        """The id of the latest round opened (0 before the first)."""
        ...

    def round(self, round_id: RoundId) -> RoundRecord:
        """One round; ChainError for a round that does not exist."""
        ...

    def current_model_digest(self) -> Digest:
        """The digest of the current global model."""
        ...

    def commit_phase_over(self, round_id: RoundId) -> bool:
        """Whether the round's commit phase is over: its deadline passed (as of the latest block) or at
        least ``eligible_count`` participants committed (in a commit-reveal round: sealed, and reveals may
        begin); true for a round already ended. For a round without commit-reveal, whether it may be ended."""
        ...

    def reveal_phase_over(self, round_id: RoundId) -> bool:
        """Whether the round may be ended (finalised or closed): for a round without commit-reveal,
        :meth:`commit_phase_over`; for a commit-reveal round, once its reveal deadline passed, or its commit
        phase is over and every sealed update was revealed; true for a round already ended."""
        ...

    def seals(self, round_id: RoundId) -> list[UpdateSeal]:
        """The round's ``UpdateSealed`` events (commit-reveal rounds) in chain order."""
        ...

    def commitments(self, round_id: RoundId) -> list[UpdateCommitment]:
        """The round's commitments in chain order."""
        ...

    def history(self, from_block: int = 0, to_block: int | None = None) -> list[LedgerEvent]:
        """Every event in ``[from_block, to_block]`` (default: to the latest block) in chain order."""
        ...

    def block_number(self) -> int:
        """The latest block number."""
        ...

    def block_timestamp(self) -> int:
        """The latest block's timestamp (unix seconds)."""
        ...

    def wait_for_block(self, after: int, timeout_s: float) -> int:
        """Wait until the latest block number is greater than ``after`` and return it; once
        ``timeout_s`` seconds have passed, return the current one (possibly still ``after``).
        What an agent calls between two looks at the ledger instead of sleeping: nothing on the
        ledger changes without a new block."""
        ...

    # writes
    def register(self, organisation: str, industry: str, public_key: bytes, declared_samples: int) -> TxReport:
        """Ask to join the federation as the sender, with the organisation, its industry, a public key and the
        size of its training dataset (``declared_samples`` > 0; admission approves it, and the contract refuses
        any commitment claiming more samples)."""
        ...

    def admit(self, participant: Address) -> TxReport:
        """Activate a registered participant (admin)."""
        ...

    def remove(self, participant: Address, reason: str) -> TxReport:
        """Remove a participant, with the reason (admin)."""
        ...

    def configure_task(
        self,
        model_spec_digest: Digest,
        strategy_digest: Digest,
        data_schema_digest: Digest,
        config_cid: Cid,
        max_commit_duration: int,
    ) -> TxReport:
        """Configure the next task version: its three digests, the CID of its document and the longest commit
        window (``max_commit_duration`` seconds, > 0) a round may be opened with (admin)."""
        ...

    def configure_private_task(
        self,
        model_spec_digest: Digest,
        strategy_digest: Digest,
        data_schema_digest: Digest,
        config_cid: Cid,
        max_commit_duration: int,
        privacy_policy_digest: Digest,
        epsilon_budget: int,
    ) -> TxReport:
        """Configure the next task version as :meth:`configure_task` does, with a privacy policy: its digest
        (non-zero) and the epsilon budget per participant (micro-epsilon, > 0); its rounds are private (admin)."""
        ...

    def open_round(
        self,
        base_model_digest: Digest,
        base_model_cid: Cid,
        commit_duration: int,
        min_updates: int,
        reveal_duration: int = 0,
    ) -> TxReport:
        """Open the next round on the base model (aggregator); the report carries the new round id. With
        ``reveal_duration`` > 0 it is a commit-reveal round: seals during the commit phase, reveals during the
        ``reveal_duration`` seconds after it."""
        ...

    def commit_update(
        self,
        round_id: RoundId,
        update_digest: Digest,
        cid: Cid,
        num_samples: int,
        metadata_digest: Digest,
    ) -> TxReport:
        """Commit an update to an open round as the sender (refused in a commit-reveal round and in a private
        round)."""
        ...

    def commit_private_update(
        self,
        round_id: RoundId,
        update_digest: Digest,
        cid: Cid,
        num_samples: int,
        metadata_digest: Digest,
        epsilon_spent: int,
        accountant_digest: Digest,
    ) -> TxReport:
        """Commit an update to an open private round as the sender, with its privacy claim: the sender's cumulative
        epsilon after this round (micro-epsilon; not below its recorded one, not above the task's budget) and the
        digest of the round's accountant inputs (non-zero)."""
        ...

    def epsilon_spent(self, participant: Address) -> int:
        """The participant's recorded cumulative epsilon (micro-epsilon; 0 before any private commitment)."""
        ...

    def seal_update(self, round_id: RoundId, seal: Digest) -> TxReport:
        """Seal an update in an open commit-reveal round, during its commit phase, as the sender; ``seal`` is
        :func:`update_seal` of the update and a secret salt."""
        ...

    def reveal_update(
        self,
        round_id: RoundId,
        update_digest: Digest,
        cid: Cid,
        num_samples: int,
        metadata_digest: Digest,
        salt: bytes,
    ) -> TxReport:
        """Reveal the sender's sealed update after the commit phase, up to the reveal deadline; the chain checks
        it against the seal and records it as an :class:`UpdateCommitment`."""
        ...

    def finalize_round(
        self,
        round_id: RoundId,
        model_digest: Digest,
        model_cid: Cid,
        merkle_root: Digest,
        aggregation_digest: Digest,
        evidence_digest: Digest,
        evidence_cid: Cid,
        included_count: int,
    ) -> TxReport:
        """Finalise a round with its new model, the Merkle root of the included updates and the evidence
        (aggregator)."""
        ...

    def close_round(self, round_id: RoundId, reason: str) -> TxReport:
        """Close a round without a model, with the reason (aggregator)."""
        ...

    # verification, disputes and exclusion contests
    def verification_policy(self) -> int:
        """The percentage of a round's included participants whose positive attestations the next round needs
        to open (0: no verification policy)."""
        ...

    def current_model_round(self) -> RoundId:
        """The finalised round the current model comes from; 0 for the initial model or a fallback after a
        dispute."""
        ...

    def attestation_counts(self, round_id: RoundId) -> tuple[int, int]:
        """The round's (positive, negative) attestations."""
        ...

    def attestation_of(self, round_id: RoundId, participant: Address) -> int:
        """The participant's attestation of the round (:class:`Attestation`: 0 none, 1 positive, 2 negative)."""
        ...

    def attestation_quorum(self, round_id: RoundId) -> int:
        """The positive attestations the round needs under the current policy before the next round opens
        (ceil(policy * included / 100); 0 under no policy)."""
        ...

    def contest_of(self, round_id: RoundId, participant: Address) -> int:
        """The participant's exclusion contest of the round (:class:`Contest`: 0 none, 1 open, 2 answered
        available, 3 answered unavailable)."""
        ...

    def attest_round(
        self,
        round_id: RoundId,
        model_digest: Digest,
        ok: bool,
        findings_digest: Digest,
        findings_cid: Cid,
        inclusion: Inclusion,
    ) -> TxReport:
        """Attest a finalised round the sender was included in, once: positively (``ok``, ``model_digest`` the
        round's) or negatively (the digest the replay computed, zero if none, and a findings blob)."""
        ...

    def contest_exclusion(self, round_id: RoundId, update_digest: Digest, cid: Cid) -> TxReport:
        """Contest the sender's exclusion from a finalised round, announcing its update blob as available; open
        until the round after the next one opens."""
        ...

    def answer_contest(self, round_id: RoundId, participant: Address, available: bool) -> TxReport:
        """Answer a participant's exclusion contest, once: whether its blob could be fetched (aggregator)."""
        ...

    def set_verification_policy(self, quorum_percent: int) -> TxReport:
        """Set the verification policy, 0 to 100 percent (admin)."""
        ...

    def dispute_round(
        self, round_id: RoundId, accused: Address, findings_digest: Digest, findings_cid: Cid, reason: str
    ) -> TxReport:
        """Mark a finalised round disputed, accusing ``accused`` with the findings blob (admin); when its model is
        the current one, the federation falls back to the round's base model."""
        ...


@runtime_checkable
class SecureLedger(Ledger, Protocol):
    """A :class:`Ledger` that also runs secure-aggregation rounds (:class:`fedchain.chain.ledger.ChainLedger`)."""

    def open_secure_round(
        self,
        base_model_digest: Digest,
        base_model_cid: Cid,
        advertise_duration: int,
        commit_duration: int,
        min_updates: int,
        unmask_duration: int,
    ) -> TxReport:
        """Open the next round as a secure-aggregation round (aggregator): advertise for ``advertise_duration``
        seconds, commit masked inputs for ``commit_duration``, post unmasking shares for ``unmask_duration``; the
        report carries the new round id."""
        ...

    def post_advertisement(self, round_id: RoundId, digest: Digest, cid: Cid) -> TxReport:
        """Advertise the sender's keys for a secure round (the advertisement blob), once, in its advertise phase."""
        ...

    def post_unmasking_shares(self, round_id: RoundId, digest: Digest, cid: Cid) -> TxReport:
        """Post the sender's unmasking shares (the shares blob) for a secure round it committed in, once, in its
        unmask phase."""
        ...

    def secure_participation(self, round_id: RoundId, participant: Address) -> tuple[bool, bool]:
        """Whether ``participant`` advertised, and posted its unmasking shares, in secure round ``round_id``."""
        ...

    def federation_id(self) -> tuple[int, Address]:
        """(chain id, contract address): what a secure round's keys and shares are bound to."""
        ...

    def advertise_phase_over(self, round_id: RoundId) -> bool:
        """Whether a secure round's advertise phase is over (masked inputs may be committed)."""
        ...

    def advertisements(self, round_id: RoundId) -> list[AdvertisementPosted]:
        """The round's ``AdvertisementPosted`` events, in chain order."""
        ...

    def unmasking_shares(self, round_id: RoundId) -> list[UnmaskingSharesPosted]:
        """The round's ``UnmaskingSharesPosted`` events, in chain order."""
        ...



def is_secure_ledger(ledger: object) -> TypeGuard[SecureLedger]:
    """Whether ``ledger`` runs secure-aggregation rounds (:class:`SecureLedger`). Looks at its class only:
    ``isinstance`` on a runtime-checkable protocol reads every attribute of the instance, and a ledger without
    a signing account raises on ``sender``."""
    kind = type(ledger)
    return all(callable(getattr(kind, name, None)) for name in _SECURE_METHODS)


_SECURE_METHODS = (
    "open_secure_round", "post_advertisement", "post_unmasking_shares", "secure_participation", "federation_id",
    "advertise_phase_over", "advertisements", "unmasking_shares",
)


@runtime_checkable
class SignedLedger(Ledger, Protocol):
    """A :class:`Ledger` that also runs signed rounds (:class:`fedchain.chain.ledger.ChainLedger`): commitments
    signed off chain, one commitment set posted by the aggregator, forced commitments (``commit_update``) in the
    escape window after it."""

    def open_signed_round(
        self,
        base_model_digest: Digest,
        base_model_cid: Cid,
        commit_duration: int,
        min_updates: int,
        escape_duration: int,
    ) -> TxReport:
        """Open the next round as a signed round (aggregator): signatures collected for ``commit_duration`` seconds,
        then an escape window of ``escape_duration`` seconds once the set is posted; the report carries the round id."""
        ...

    def post_commitment_set(
        self, round_id: RoundId, set_root: Digest, count: int, set_digest: Digest, set_cid: Cid
    ) -> TxReport:
        """Post the set of signed commitments of a signed round (aggregator), once, after its deadline (or before it
        when every eligible participant signed): its Merkle root, count and blob."""
        ...

    def commitment_set(self, round_id: RoundId) -> CommitmentSetPosted | None:
        """The round's ``CommitmentSetPosted`` event (None before the set is posted)."""
        ...

    def federation_id(self) -> tuple[int, Address]:
        """(chain id, contract address): what a signed commitment is bound to."""
        ...

    def sign_digest(self, digest: bytes) -> bytes:
        """The 65-byte signature ``r || s || v`` of a 32-byte digest (an EIP-712 commitment) by the sender."""
        ...


def is_signed_ledger(ledger: object) -> TypeGuard[SignedLedger]:
    """Whether ``ledger`` runs signed rounds (:class:`SignedLedger`). Looks at its class only, as
    :func:`is_secure_ledger` does."""
    kind = type(ledger)
    return all(callable(getattr(kind, name, None)) for name in _SIGNED_METHODS)


_SIGNED_METHODS = ("open_signed_round", "post_commitment_set", "commitment_set", "federation_id", "sign_digest")


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed blob storage.

    ``get`` and ``get_file`` return bytes only after checking them against the CID; a
    mismatch raises :class:`~fedchain.errors.IntegrityError`, a missing blob
    :class:`~fedchain.errors.BlobNotFoundError`, an unreachable backend
    :class:`~fedchain.errors.StorageUnavailableError`.
    """

    def put(self, data: bytes) -> Cid:
        """Store ``data`` (pinned) and return its CID."""
        ...

    def get(self, cid: Cid) -> bytes:
        """The bytes filed under ``cid``, verified against it."""
        ...

    def pin(self, cid: Cid) -> None:
        """Keep ``cid`` from garbage collection; it must be available."""
        ...

    def has(self, cid: Cid) -> bool:
        """Whether the store holds ``cid`` (pinned)."""
        ...

    def put_file(self, path: Path) -> Cid:
        """Stream a file into the store (pinned) and return its CID, without reading it whole."""
        ...

    def get_file(self, cid: Cid, dest: Path) -> int:
        """Stream ``cid`` into ``dest`` (atomically, only once verified); return its size."""
        ...

    def describe(self) -> str:
        """A one-line description for logs and CLI output (``ipfs http://...``, ``local DIR``)."""
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...

    def __enter__(self) -> BlobStore:
        ...

    def __exit__(self, *exc: object) -> None:
        """Calls :meth:`close`."""
        ...

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
from typing import Protocol, Union, runtime_checkable

from fedchain.types import Address, Cid, Digest, RoundId


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


@dataclass(frozen=True)
class ParticipantRecord:
    """A participant as the contract stores it, plus its registration details from the event log."""

    address: Address
    status: ParticipantStatus
    last_committed_round: RoundId
    registered_block: int
    status_changed_block: int
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


@dataclass(frozen=True)
class UpdateCommitment:
    """One ``UpdateCommitted`` event: a participant's commitment to an update blob."""

    round_id: RoundId
    participant: Address
    update_digest: Digest
    cid: Cid
    num_samples: int
    metadata_digest: Digest
    block_number: int
    tx_hash: str
    log_index: int


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
        return self.gas_used * self.effective_gas_price


# --- event records (the audit trail), ordered by (block_number, log_index) ----------


@dataclass(frozen=True)
class ParticipantRegistered:
    participant: Address
    organisation: str
    industry: str
    public_key: bytes
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class ParticipantAdmitted:
    participant: Address
    admitted_by: Address
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class ParticipantRemoved:
    participant: Address
    removed_by: Address
    reason: str
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class TaskConfigured:
    version: int
    configured_by: Address  # the admin who configured the task
    model_spec_digest: Digest
    strategy_digest: Digest
    data_schema_digest: Digest
    config_cid: Cid
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class RoundOpened:
    round_id: RoundId
    opened_by: Address  # the aggregator who opened the round
    base_model_digest: Digest
    base_model_cid: Cid
    deadline: int
    min_updates: int
    task_version: int
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class RoundFinalized:
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
    round_id: RoundId
    closed_by: Address  # the aggregator who closed the round
    commit_count: int
    reason: str
    block_number: int
    tx_hash: str
    log_index: int


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


LedgerEvent = Union[
    ParticipantRegistered,
    ParticipantAdmitted,
    ParticipantRemoved,
    TaskConfigured,
    RoundOpened,
    UpdateCommitment,
    RoundFinalized,
    RoundClosed,
    RoleChanged,
    RoleAdminChanged,
]


def event_position(event: LedgerEvent) -> tuple[int, int]:
    """Sort key of an event: (block number, log index)."""
    return (event.block_number, event.log_index)


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
    def participant(self, address: Address) -> ParticipantRecord: ...

    def active_count(self) -> int: ...

    def task(self) -> TaskConfig | None: ...

    def latest_round_id(self) -> RoundId: ...

    def round(self, round_id: RoundId) -> RoundRecord: ...

    def current_model_digest(self) -> Digest: ...

    def commit_phase_over(self, round_id: RoundId) -> bool:
        """Whether the round may be ended: its deadline passed (as of the latest block) or at least
        ``eligible_count`` participants committed; true for a round already ended."""
        ...

    def commitments(self, round_id: RoundId) -> list[UpdateCommitment]: ...

    def history(self, from_block: int = 0, to_block: int | None = None) -> list[LedgerEvent]: ...

    def block_number(self) -> int: ...

    def block_timestamp(self) -> int: ...

    def wait_for_block(self, after: int, timeout_s: float) -> int:
        """Wait until the latest block number is greater than ``after`` and return it; once
        ``timeout_s`` seconds have passed, return the current one (possibly still ``after``).
        What an agent calls between two looks at the ledger instead of sleeping: nothing on the
        ledger changes without a new block."""
        ...

    # writes
    def register(self, organisation: str, industry: str, public_key: bytes) -> TxReport: ...

    def admit(self, participant: Address) -> TxReport: ...

    def remove(self, participant: Address, reason: str) -> TxReport: ...

    def configure_task(
        self, model_spec_digest: Digest, strategy_digest: Digest, data_schema_digest: Digest, config_cid: Cid
    ) -> TxReport: ...

    def open_round(
        self, base_model_digest: Digest, base_model_cid: Cid, commit_duration: int, min_updates: int
    ) -> TxReport: ...

    def commit_update(
        self,
        round_id: RoundId,
        update_digest: Digest,
        cid: Cid,
        num_samples: int,
        metadata_digest: Digest,
    ) -> TxReport: ...

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
    ) -> TxReport: ...

    def close_round(self, round_id: RoundId, reason: str) -> TxReport: ...


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

    def __enter__(self) -> "BlobStore":
        ...

    def __exit__(self, *exc: object) -> None:
        """Calls :meth:`close`."""
        ...

"""The :class:`fedchain.ports.Ledger` protocol on top of the ``Federation`` contract.

Reads combine the contract's views with its event log (CIDs, reasons and registration
details live only in events). A :class:`ChainLedger` finds events in an
:class:`fedchain.chain.events.EventIndex`, which reads only the blocks mined since its previous
read and follows reorganisations; ledgers made with :meth:`ChainLedger.with_account` share it.
:func:`read_history` returns every event of the contract in a block range, fetched in chunks of
:data:`LOG_CHUNK_BLOCKS` blocks, decoded into the typed records of :mod:`fedchain.ports` and
ordered by (block number, log index); :class:`RescanEvents` answers every lookup with such a
filtered rescan (no state, O(history) per read).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain.chain.abi import DecodedLog
from fedchain.chain.connection import Connection
from fedchain.chain.events import (
    LOG_CHUNK_BLOCKS,
    BlockWatcher,
    EventIndex,
    EventSource,
    RoundEvent,
    fetch_events,
)
from fedchain.chain.federation import FederationContract, load_deployment
from fedchain.codec import secp256k1
from fedchain.codec.abi import encode as abi_encode
from fedchain.errors import ChainError
from fedchain.ports import (
    AdvertisementPosted,
    CommitmentSetPosted,
    ContestAnswered,
    ExclusionContested,
    Inclusion,
    LedgerEvent,
    ParticipantAdmitted,
    ParticipantRecord,
    ParticipantRegistered,
    ParticipantRemoved,
    PrivacyPolicySet,
    PrivacySpent,
    RoleAdminChanged,
    RoleChanged,
    RoundAttested,
    RoundClosed,
    RoundDisputed,
    RoundFinalized,
    RoundOpened,
    RoundRecord,
    RoundStatus,
    SecureRoundOpened,
    SignedRoundOpened,
    TaskConfig,
    TaskConfigured,
    TxReport,
    UnmaskingSharesPosted,
    UpdateCommitment,
    UpdateSeal,
    VerificationPolicySet,
    event_position,
)
from fedchain.types import Address, Cid, Digest, RoundId

if TYPE_CHECKING:  # eth-account is imported by whoever signs, not by every reader
    from fedchain.chain.signer import Signer

log = logging.getLogger(__name__)


def _topic_uint(value: int) -> bytes:
    return abi_encode(["uint256"], [value])


def _topic_address(value: str) -> bytes:
    return abi_encode(["address"], [value])


def to_record(entry: DecodedLog) -> LedgerEvent | None:
    """A decoded log as its typed ledger record (None for an event this module does not know)."""
    a = entry.args
    pos: dict[str, Any] = {"block_number": entry.block_number, "tx_hash": entry.tx_hash, "log_index": entry.log_index}
    name = entry.event
    if name == "ParticipantRegistered":
        return ParticipantRegistered(
            participant=Address(a["participant"]),
            organisation=a["organisation"],
            industry=a["industry"],
            public_key=bytes(a["publicKey"]),
            declared_samples=int(a["declaredSamples"]),
            **pos,
        )
    if name == "ParticipantAdmitted":
        return ParticipantAdmitted(
            participant=Address(a["participant"]),
            admitted_by=Address(a["admittedBy"]),
            approved_samples=int(a["approvedSamples"]),
            **pos,
        )
    if name == "ParticipantRemoved":
        return ParticipantRemoved(
            participant=Address(a["participant"]), removed_by=Address(a["removedBy"]), reason=a["reason"], **pos
        )
    if name == "TaskConfigured":
        return TaskConfigured(
            version=int(a["version"]),
            configured_by=Address(a["configuredBy"]),
            model_spec_digest=Digest(a["modelSpecDigest"]),
            strategy_digest=Digest(a["strategyDigest"]),
            data_schema_digest=Digest(a["dataSchemaDigest"]),
            config_cid=Cid(a["configCid"]),
            max_commit_duration=int(a["maxCommitDuration"]),
            **pos,
        )
    if name == "PrivacyPolicySet":
        return PrivacyPolicySet(
            version=int(a["version"]),
            actor=Address(a["actor"]),
            policy_digest=Digest(a["policyDigest"]),
            epsilon_budget=int(a["epsilonBudget"]),
            **pos,
        )
    if name == "PrivacySpent":
        return PrivacySpent(
            round_id=RoundId(int(a["roundId"])),
            participant=Address(a["participant"]),
            epsilon_spent=int(a["epsilonSpent"]),
            accountant_digest=Digest(a["accountantDigest"]),
            **pos,
        )
    if name == "RoundOpened":
        return RoundOpened(
            round_id=RoundId(int(a["roundId"])),
            opened_by=Address(a["openedBy"]),
            base_model_digest=Digest(a["baseModelDigest"]),
            base_model_cid=Cid(a["baseModelCid"]),
            deadline=int(a["deadline"]),
            min_updates=int(a["minUpdates"]),
            task_version=int(a["taskVersion"]),
            reveal_deadline=int(a["revealDeadline"]),
            **pos,
        )
    if name == "SecureRoundOpened":
        return SecureRoundOpened(
            round_id=RoundId(int(a["roundId"])),
            opened_by=Address(a["openedBy"]),
            advertise_deadline=int(a["advertiseDeadline"]),
            deadline=int(a["deadline"]),
            unmask_deadline=int(a["unmaskDeadline"]),
            **pos,
        )
    if name == "SignedRoundOpened":
        return SignedRoundOpened(
            round_id=RoundId(int(a["roundId"])),
            opened_by=Address(a["openedBy"]),
            deadline=int(a["deadline"]),
            escape_duration=int(a["escapeDuration"]),
            **pos,
        )
    if name == "CommitmentSetPosted":
        return CommitmentSetPosted(
            round_id=RoundId(int(a["roundId"])),
            posted_by=Address(a["postedBy"]),
            set_root=Digest(a["setRoot"]),
            count=int(a["count"]),
            set_digest=Digest(a["setDigest"]),
            set_cid=Cid(a["setCid"]),
            escape_deadline=int(a["escapeDeadline"]),
            **pos,
        )
    if name in ("AdvertisementPosted", "UnmaskingSharesPosted"):
        kind = AdvertisementPosted if name == "AdvertisementPosted" else UnmaskingSharesPosted
        return kind(
            round_id=RoundId(int(a["roundId"])),
            participant=Address(a["participant"]),
            digest=Digest(a["digest"]),
            cid=Cid(a["cid"]),
            **pos,
        )
    if name == "UpdateSealed":
        return UpdateSeal(
            round_id=RoundId(int(a["roundId"])), participant=Address(a["participant"]), seal=Digest(a["seal"]), **pos
        )
    if name == "UpdateCommitted":
        return UpdateCommitment(
            round_id=RoundId(int(a["roundId"])),
            participant=Address(a["participant"]),
            update_digest=Digest(a["updateDigest"]),
            cid=Cid(a["cid"]),
            num_samples=int(a["numSamples"]),
            metadata_digest=Digest(a["metadataDigest"]),
            **pos,
        )
    if name == "RoundFinalized":
        return RoundFinalized(
            round_id=RoundId(int(a["roundId"])),
            finalized_by=Address(a["finalizedBy"]),
            model_digest=Digest(a["modelDigest"]),
            model_cid=Cid(a["modelCid"]),
            merkle_root=Digest(a["merkleRoot"]),
            aggregation_digest=Digest(a["aggregationDigest"]),
            evidence_digest=Digest(a["evidenceDigest"]),
            evidence_cid=Cid(a["evidenceCid"]),
            included_count=int(a["includedCount"]),
            **pos,
        )
    if name == "RoundClosed":
        return RoundClosed(
            round_id=RoundId(int(a["roundId"])),
            closed_by=Address(a["closedBy"]),
            commit_count=int(a["commitCount"]),
            reason=a["reason"],
            **pos,
        )
    if name in ("RoleGranted", "RoleRevoked"):
        return RoleChanged(
            role=bytes(a["role"]),
            account=Address(a["account"]),
            sender=Address(a["sender"]),
            granted=name == "RoleGranted",
            **pos,
        )
    if name == "RoleAdminChanged":
        return RoleAdminChanged(
            role=bytes(a["role"]),
            previous_admin_role=bytes(a["previousAdminRole"]),
            new_admin_role=bytes(a["newAdminRole"]),
            **pos,
        )
    if name == "VerificationPolicySet":
        return VerificationPolicySet(set_by=Address(a["setBy"]), quorum_percent=int(a["quorumPercent"]), **pos)
    if name == "RoundAttested":
        return RoundAttested(
            round_id=RoundId(int(a["roundId"])),
            participant=Address(a["participant"]),
            ok=bool(a["ok"]),
            model_digest=Digest(a["modelDigest"]),
            findings_digest=Digest(a["findingsDigest"]),
            findings_cid=Cid(a["findingsCid"]),
            **pos,
        )
    if name == "RoundDisputed":
        return RoundDisputed(
            round_id=RoundId(int(a["roundId"])),
            disputed_by=Address(a["disputedBy"]),
            accused=Address(a["accused"]),
            findings_digest=Digest(a["findingsDigest"]),
            findings_cid=Cid(a["findingsCid"]),
            fallback_model_digest=Digest(a["fallbackModelDigest"]),
            reason=a["reason"],
            **pos,
        )
    if name == "ExclusionContested":
        return ExclusionContested(
            round_id=RoundId(int(a["roundId"])),
            participant=Address(a["participant"]),
            update_digest=Digest(a["updateDigest"]),
            cid=Cid(a["cid"]),
            **pos,
        )
    if name == "ContestAnswered":
        return ContestAnswered(
            round_id=RoundId(int(a["roundId"])),
            participant=Address(a["participant"]),
            answered_by=Address(a["answeredBy"]),
            available=bool(a["available"]),
            **pos,
        )
    log.debug("ignoring unknown event %s in tx %s", name, entry.tx_hash)
    return None


def read_history(
    contract: FederationContract,
    from_block: int | None = None,
    to_block: int | None = None,
    *,
    topics: Sequence[Any] | None = None,
    chunk_blocks: int = LOG_CHUNK_BLOCKS,
) -> list[LedgerEvent]:
    """Every (matching) event of ``contract`` in ``[from_block, to_block]`` as typed records,
    ordered by (block, log index). Defaults: the deployment block to the latest block."""
    start = contract.deployment_block if from_block is None else from_block
    end = contract.conn.block_number() if to_block is None else to_block
    return fetch_events(contract, to_record, start, end, topics=topics, chunk_blocks=chunk_blocks)


class RescanEvents:
    """An :class:`fedchain.chain.events.EventSource` without state: every lookup rescans the log
    from the deployment block with :func:`read_history`, filtered by topics on the node. Costs
    O(history) per read; the reference the index is checked against, and enough for one read."""

    def __init__(self, contract: FederationContract, *, chunk_blocks: int = LOG_CHUNK_BLOCKS) -> None:
        self.contract = contract
        self.chunk_blocks = chunk_blocks

    def _find(self, *topics: Any) -> list[LedgerEvent]:
        return read_history(self.contract, topics=list(topics), chunk_blocks=self.chunk_blocks)

    def _topic(self, *events: str) -> list[bytes] | bytes:
        found = [self.contract.events.topic(e) for e in events]
        return found[0] if len(found) == 1 else found

    def events(self, from_block: int | None = None, to_block: int | None = None) -> list[LedgerEvent]:
        """Every event in ``[from_block, to_block]``, read from the node."""
        return read_history(self.contract, from_block, to_block, chunk_blocks=self.chunk_blocks)

    def round_events(self, round_id: int) -> list[RoundEvent]:
        """The round's opened, finalized and closed events, filtered on the node by round id."""
        found = self._find(self._topic("RoundOpened", "RoundFinalized", "RoundClosed"), _topic_uint(round_id))
        return [e for e in found if isinstance(e, (RoundOpened, RoundFinalized, RoundClosed))]

    def commitments(self, round_id: int) -> list[UpdateCommitment]:
        """The round's commitments (with their privacy claims), filtered on the node by round id."""
        found = self._find(self._topic("UpdateCommitted", "PrivacySpent"), _topic_uint(round_id))
        return [e for e in found if isinstance(e, UpdateCommitment)]

    def seals(self, round_id: int) -> list[UpdateSeal]:
        """The round's seals (commit-reveal rounds), filtered on the node by round id."""
        found = self._find(self._topic("UpdateSealed"), _topic_uint(round_id))
        return [e for e in found if isinstance(e, UpdateSeal)]

    def advertisements(self, round_id: int) -> list[AdvertisementPosted]:
        """The round's advertisements (secure rounds), filtered on the node by round id."""
        found = self._find(self._topic("AdvertisementPosted"), _topic_uint(round_id))
        return [e for e in found if isinstance(e, AdvertisementPosted)]

    def unmasking_shares(self, round_id: int) -> list[UnmaskingSharesPosted]:
        """The round's unmasking shares (secure rounds), filtered on the node by round id."""
        found = self._find(self._topic("UnmaskingSharesPosted"), _topic_uint(round_id))
        return [e for e in found if isinstance(e, UnmaskingSharesPosted)]

    def registrations(self, address: str) -> list[ParticipantRegistered]:
        """The participant's registrations, filtered on the node by address."""
        found = self._find(self._topic("ParticipantRegistered"), _topic_address(address))
        return [e for e in found if isinstance(e, ParticipantRegistered)]

    def participant_events(self, address: str) -> list[LedgerEvent]:
        """The participant's membership events and commitments, filtered on the node by address."""
        membership = self._find(
            self._topic("ParticipantRegistered", "ParticipantAdmitted", "ParticipantRemoved"), _topic_address(address)
        )
        commits = self._find(
            self._topic(
                "UpdateCommitted", "PrivacySpent", "UpdateSealed", "AdvertisementPosted", "UnmaskingSharesPosted",
                "RoundAttested", "ExclusionContested", "ContestAnswered",
            ),
            None,
            _topic_address(address),
        )
        return sorted(membership + commits, key=event_position)

    def attestations(self, round_id: int) -> list[RoundAttested]:
        """The round's attestations, filtered on the node by round id."""
        found = self._find(self._topic("RoundAttested"), _topic_uint(round_id))
        return [e for e in found if isinstance(e, RoundAttested)]

    def disputes(self, round_id: int) -> list[RoundDisputed]:
        """The round's ``RoundDisputed`` event (at most one), filtered on the node by round id."""
        found = self._find(self._topic("RoundDisputed"), _topic_uint(round_id))
        return [e for e in found if isinstance(e, RoundDisputed)]

    def contests(self, round_id: int) -> list[ExclusionContested | ContestAnswered]:
        """The round's exclusion contests and their answers, filtered on the node by round id."""
        found = self._find(self._topic("ExclusionContested", "ContestAnswered"), _topic_uint(round_id))
        return [e for e in found if isinstance(e, (ExclusionContested, ContestAnswered))]

    def task_configs(self, version: int) -> list[TaskConfigured]:
        """The ``TaskConfigured`` events of task ``version``, filtered on the node."""
        found = self._find(self._topic("TaskConfigured"), _topic_uint(version))
        return [e for e in found if isinstance(e, TaskConfigured)]

    def privacy_policies(self, version: int) -> list[PrivacyPolicySet]:
        """The ``PrivacyPolicySet`` events of task ``version``, filtered on the node."""
        found = self._find(self._topic("PrivacyPolicySet"), _topic_uint(version))
        return [e for e in found if isinstance(e, PrivacyPolicySet)]


class ChainLedger:
    """:class:`fedchain.ports.Ledger` backed by a deployed ``Federation``.

    ``events`` is where event lookups go (default: a new :class:`EventIndex` of the contract);
    ``watcher`` waits for blocks (default: a new :class:`BlockWatcher` on its connection).
    :meth:`with_account` shares both."""

    def __init__(
        self, contract: FederationContract, events: EventSource | None = None, watcher: BlockWatcher | None = None
    ) -> None:
        self.contract = contract
        self.events: EventSource = events if events is not None else EventIndex(contract, to_record)
        self.watcher = watcher if watcher is not None else BlockWatcher(contract.conn)

    @classmethod
    def connect(
        cls, rpc_url: str, state_dir: Path, account: Signer | None = None, *, expected_chain_id: int | None = None
    ) -> ChainLedger:
        """Connect to ``rpc_url`` and the Federation recorded under ``state_dir`` for its chain."""
        conn = Connection(rpc_url, expected_chain_id=expected_chain_id)
        deployment = load_deployment(state_dir, conn)
        return cls(FederationContract.from_deployment(conn, deployment, account))

    def with_account(self, account: Signer) -> ChainLedger:
        """The same ledger (the same event index and block watcher), writes signed by ``account``."""
        return ChainLedger(self.contract.with_account(account), self.events, self.watcher)

    @property
    def sender(self) -> Address:
        """The account that signs this ledger's writes; ChainError for a read-only ledger."""
        if self.contract.account is None:
            raise ChainError("this ledger has no signing account")
        return Address(self.contract.account.address)

    @property
    def conn(self) -> Connection:
        """The contract's connection to the node."""
        return self.contract.conn

    # --- reads -----------------------------------------------------------------------

    def participant(self, address: Address) -> ParticipantRecord:
        """The contract's record of ``address`` with the organisation, industry and key of its latest registration."""
        record = self.contract.participant(address)
        registrations = self.events.registrations(record.address)
        if not registrations:
            return record
        reg = registrations[-1]
        return ParticipantRecord(
            address=record.address,
            status=record.status,
            last_committed_round=record.last_committed_round,
            registered_block=record.registered_block,
            status_changed_block=record.status_changed_block,
            declared_samples=record.declared_samples,
            organisation=reg.organisation,
            industry=reg.industry,
            public_key=reg.public_key,
        )

    def active_count(self) -> int:
        """The number of active participants."""
        return self.contract.active_count()

    def task(self) -> TaskConfig | None:
        """The current task with the config CID of its ``TaskConfigured`` event and its privacy policy (digest and
        epsilon budget, zero without one); None before the first task."""
        view = self.contract.task()
        if view.version == 0:
            return None
        configured = self.events.task_configs(view.version)
        if not configured:
            raise ChainError(f"task version {view.version} has no TaskConfigured event (log range pruned?)")
        policy = self.contract.privacy_policy()
        return TaskConfig(
            version=view.version,
            model_spec_digest=view.model_spec_digest,
            strategy_digest=view.strategy_digest,
            data_schema_digest=view.data_schema_digest,
            config_cid=configured[-1].config_cid,
            max_commit_duration=view.max_commit_duration,
            privacy_policy_digest=policy.policy_digest,
            epsilon_budget=policy.epsilon_budget,
        )

    def epsilon_spent(self, participant: Address) -> int:
        """The participant's recorded cumulative epsilon (micro-epsilon; 0 before any private commitment)."""
        return self.contract.epsilon_spent(participant)

    def latest_round_id(self) -> RoundId:
        """The id of the latest round opened (0 before the first)."""
        return self.contract.latest_round_id()

    def current_model_digest(self) -> Digest:
        """The digest of the current global model."""
        return self.contract.current_model_digest()

    def round(self, round_id: RoundId) -> RoundRecord:
        """The contract's storage of the round merged with the CIDs, reason and blocks of its events."""
        info = self.contract.get_round(round_id)
        if info.status == RoundStatus.NONE:
            raise ChainError(f"round {round_id} does not exist (latest is {self.latest_round_id()})")
        events = self.events.round_events(round_id)
        opened = next((e for e in events if isinstance(e, RoundOpened)), None)
        if opened is None:
            raise ChainError(f"round {round_id} has no RoundOpened event (log range pruned?)")
        finalized = next((e for e in events if isinstance(e, RoundFinalized)), None)
        closed = next((e for e in events if isinstance(e, RoundClosed)), None)
        ended = finalized or closed
        signed: dict[str, Any] = {}
        if info.signed_round:
            view = self.contract.signed_round(round_id)
            posted = self._commitment_set(round_id, opened.block_number) if view.escape_deadline else None
            if view.escape_deadline and posted is None:
                raise ChainError(f"round {round_id} has no CommitmentSetPosted event (log range pruned?)")
            signed = {
                "signed": True,
                "escape_duration": view.escape_duration,
                "escape_deadline": view.escape_deadline,
                "set_count": view.set_count,
                "set_root": view.set_root,
                "set_digest": view.set_digest,
                "set_cid": posted.set_cid if posted is not None else None,
            }
        return RoundRecord(
            round_id=RoundId(round_id),
            status=info.status,
            base_model_digest=info.base_model_digest,
            base_model_cid=opened.base_model_cid,
            deadline=info.deadline,
            min_updates=info.min_updates,
            commit_count=info.commit_count,
            eligible_count=info.eligible_count,
            task_version=info.task_version,
            included_count=info.included_count,
            model_digest=info.model_digest,
            model_cid=finalized.model_cid if finalized else None,
            merkle_root=info.merkle_root,
            aggregation_digest=info.aggregation_digest,
            evidence_digest=info.evidence_digest,
            evidence_cid=finalized.evidence_cid if finalized else None,
            close_reason=closed.reason if closed else None,
            opened_block=opened.block_number,
            closed_block=ended.block_number if ended else None,
            reveal_deadline=info.reveal_deadline,
            seal_count=info.seal_count,
            private=info.private_round,
            secure=info.secure_round,
            advertise_deadline=info.advertise_deadline,
            unmask_deadline=info.unmask_deadline,
            advertisement_count=info.advertisement_count,
            unmasking_count=info.unmasking_count,
            **signed,
        )

    def commit_phase_over(self, round_id: RoundId) -> bool:
        """The contract's ``commitPhaseOver`` for the round (a signed round's: its set was posted and its escape
        window is over or every eligible participant signed, or no set can come any more)."""
        return self.contract.commit_phase_over(round_id)

    def reveal_phase_over(self, round_id: RoundId) -> bool:
        """The contract's ``revealPhaseOver`` for the round: whether it may be ended."""
        return self.contract.reveal_phase_over(round_id)

    def seals(self, round_id: RoundId) -> list[UpdateSeal]:
        """The round's ``UpdateSealed`` events in chain order."""
        return self.events.seals(round_id)

    def advertise_phase_over(self, round_id: RoundId) -> bool:
        """The contract's ``advertisePhaseOver`` for a secure round: whether masked inputs may be committed."""
        return self.contract.advertise_phase_over(round_id)

    def secure_participation(self, round_id: RoundId, participant: Address) -> tuple[bool, bool]:
        """Whether ``participant`` advertised its keys, and posted its unmasking shares, in secure round ``round_id``."""
        return self.contract.secure_participation(round_id, participant)

    def federation_id(self) -> tuple[int, Address]:
        """(chain id, contract address): what a secure round's keys and shares, and a signed round's signed
        commitments, are bound to."""
        return int(self.contract.conn.chain_id), Address(self.contract.address)

    def commitment_set(self, round_id: RoundId) -> CommitmentSetPosted | None:
        """The ``CommitmentSetPosted`` event of signed round ``round_id`` (None before its set is posted, and for
        any other round); ChainError for a round never opened."""
        opened = next((e for e in self.events.round_events(round_id) if isinstance(e, RoundOpened)), None)
        if opened is None:
            raise ChainError(f"round {round_id} has no RoundOpened event (latest is {self.latest_round_id()})")
        return self._commitment_set(round_id, opened.block_number)

    def _commitment_set(self, round_id: RoundId, opened_block: int) -> CommitmentSetPosted | None:
        """The round's ``CommitmentSetPosted`` event, among the events since the block it opened in."""
        found = [
            e for e in self.events.events(opened_block)
            if isinstance(e, CommitmentSetPosted) and int(e.round_id) == int(round_id)
        ]
        return found[0] if found else None

    def sign_digest(self, digest: bytes) -> bytes:
        """The 65-byte signature ``r || s || v`` of a 32-byte digest (a signed round's EIP-712 commitment) by the
        signing account; ChainError for a read-only ledger."""
        account = self.contract.account
        if account is None:
            raise ChainError("this ledger has no signing account")
        return secp256k1.sign_digest(bytes(account.key), digest)

    def advertisements(self, round_id: RoundId) -> list[AdvertisementPosted]:
        """The round's ``AdvertisementPosted`` events in chain order (secure rounds)."""
        return self.events.advertisements(round_id)

    def unmasking_shares(self, round_id: RoundId) -> list[UnmaskingSharesPosted]:
        """The round's ``UnmaskingSharesPosted`` events in chain order (secure rounds)."""
        return self.events.unmasking_shares(round_id)

    def commitments(self, round_id: RoundId) -> list[UpdateCommitment]:
        """The round's ``UpdateCommitted`` events in chain order, each with its privacy claim (the ``PrivacySpent``
        event of its transaction) in a private round."""
        return self.events.commitments(round_id)

    def history(self, from_block: int = 0, to_block: int | None = None) -> list[LedgerEvent]:
        """Every event from ``from_block`` (not before the deployment block) to ``to_block``."""
        return self.events.events(max(from_block, self.contract.deployment_block), to_block)

    def block_number(self) -> int:
        """The latest block number."""
        return self.conn.block_number()

    def wait_for_block(self, after: int, timeout_s: float) -> int:
        """Wait until the latest block number is greater than ``after`` and return it; after
        ``timeout_s`` seconds return the current one. Uses a block filter (``eth_newBlockFilter``
        + ``eth_getFilterChanges``), or polls ``eth_blockNumber`` where the node refuses filters.

        An agent waits on the chain instead of sleeping between two looks at it::

            seen = ledger.block_number()
            while not done():
                look_at_the_ledger()
                seen = ledger.wait_for_block(seen, timeout_s=5.0)
        """
        return self.watcher.wait_for_block(after, timeout_s)

    def block_timestamp(self) -> int:
        """The latest block's timestamp (unix seconds)."""
        return self.conn.block_timestamp()

    # --- writes ----------------------------------------------------------------------

    def register(self, organisation: str, industry: str, public_key: bytes, declared_samples: int) -> TxReport:
        """Ask to join the federation as the signing account, declaring a dataset of ``declared_samples``."""
        return self.contract.register(organisation, industry, public_key, declared_samples)

    def admit(self, participant: Address) -> TxReport:
        """Activate a registered participant (admin)."""
        return self.contract.admit(participant)

    def remove(self, participant: Address, reason: str) -> TxReport:
        """Remove a participant, with a reason (admin)."""
        return self.contract.remove(participant, reason)

    def configure_task(
        self,
        model_spec_digest: Digest,
        strategy_digest: Digest,
        data_schema_digest: Digest,
        config_cid: Cid,
        max_commit_duration: int,
    ) -> TxReport:
        """Configure the next task version, whose rounds' commit windows last at most ``max_commit_duration``
        seconds (admin)."""
        return self.contract.configure_task(
            model_spec_digest, strategy_digest, data_schema_digest, config_cid, max_commit_duration
        )

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
        """Configure the next task version with a privacy policy (its digest) and an epsilon budget per participant
        (micro-epsilon); its rounds are private (admin)."""
        return self.contract.configure_private_task(
            model_spec_digest, strategy_digest, data_schema_digest, config_cid, max_commit_duration,
            privacy_policy_digest, epsilon_budget,
        )

    def open_round(
        self,
        base_model_digest: Digest,
        base_model_cid: Cid,
        commit_duration: int,
        min_updates: int,
        reveal_duration: int = 0,
    ) -> TxReport:
        """Open the next round (aggregator), a commit-reveal one when ``reveal_duration`` > 0; the report
        carries its round id."""
        return self.contract.open_round(base_model_digest, base_model_cid, commit_duration, min_updates, reveal_duration)

    def open_secure_round(
        self,
        base_model_digest: Digest,
        base_model_cid: Cid,
        advertise_duration: int,
        commit_duration: int,
        min_updates: int,
        unmask_duration: int,
    ) -> TxReport:
        """Open the next round as a secure-aggregation round (aggregator): advertise, masked inputs and unmasking
        phases of the given durations; the report carries its round id."""
        return self.contract.open_secure_round(
            base_model_digest, base_model_cid, advertise_duration, commit_duration, min_updates, unmask_duration
        )

    def open_signed_round(
        self,
        base_model_digest: Digest,
        base_model_cid: Cid,
        commit_duration: int,
        min_updates: int,
        escape_duration: int,
    ) -> TxReport:
        """Open the next round as a signed round (aggregator): commitments signed off chain for ``commit_duration``
        seconds, then one set posted and an escape window of ``escape_duration`` seconds; the report carries its
        round id."""
        return self.contract.open_signed_round(
            base_model_digest, base_model_cid, commit_duration, min_updates, escape_duration
        )

    def post_commitment_set(
        self, round_id: RoundId, set_root: Digest, count: int, set_digest: Digest, set_cid: Cid
    ) -> TxReport:
        """Post the set of signed commitments of a signed round (aggregator): its Merkle root, count and blob."""
        return self.contract.post_commitment_set(round_id, set_root, count, set_digest, set_cid)

    def post_advertisement(self, round_id: RoundId, digest: Digest, cid: Cid) -> TxReport:
        """Advertise the signing account's keys for a secure round (the advertisement blob's digest and CID)."""
        return self.contract.post_advertisement(round_id, digest, cid)

    def post_unmasking_shares(self, round_id: RoundId, digest: Digest, cid: Cid) -> TxReport:
        """Post the signing account's unmasking shares for a secure round (the shares blob's digest and CID)."""
        return self.contract.post_unmasking_shares(round_id, digest, cid)

    def commit_update(
        self, round_id: RoundId, update_digest: Digest, cid: Cid, num_samples: int, metadata_digest: Digest
    ) -> TxReport:
        """Commit an update to an open round as the signing account."""
        return self.contract.commit_update(round_id, update_digest, cid, num_samples, metadata_digest)

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
        """Commit an update to an open private round as the signing account, with its cumulative epsilon
        (micro-epsilon) and the digest of the round's accountant inputs."""
        return self.contract.commit_private_update(
            round_id, update_digest, cid, num_samples, metadata_digest, epsilon_spent, accountant_digest
        )

    def seal_update(self, round_id: RoundId, seal: Digest) -> TxReport:
        """Seal an update in a commit-reveal round's commit phase as the signing account."""
        return self.contract.seal_update(round_id, seal)

    def reveal_update(
        self,
        round_id: RoundId,
        update_digest: Digest,
        cid: Cid,
        num_samples: int,
        metadata_digest: Digest,
        salt: bytes,
    ) -> TxReport:
        """Reveal the signing account's sealed update after the commit phase."""
        return self.contract.reveal_update(round_id, update_digest, cid, num_samples, metadata_digest, salt)

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
        """Finalise a round with its new model, Merkle root and evidence (aggregator)."""
        return self.contract.finalize_round(
            round_id, model_digest, model_cid, merkle_root, aggregation_digest, evidence_digest, evidence_cid, included_count
        )

    def close_round(self, round_id: RoundId, reason: str) -> TxReport:
        """Close a round without a model, with a reason (aggregator)."""
        return self.contract.close_round(round_id, reason)

    # --- verification, disputes and exclusion contests ---------------------------------

    def verification_policy(self) -> int:
        """The attestation quorum in percent of a round's included participants (0: no policy)."""
        return self.contract.verification_policy()

    def current_model_round(self) -> RoundId:
        """The finalised round the current model comes from (0: the initial model or a fallback after a dispute)."""
        return self.contract.current_model_round()

    def attestation_counts(self, round_id: RoundId) -> tuple[int, int]:
        """The round's (positive, negative) attestations."""
        return self.contract.attestation_counts(round_id)

    def attestation_of(self, round_id: RoundId, participant: Address) -> int:
        """The participant's attestation of the round (0 none, 1 positive, 2 negative)."""
        return self.contract.attestation_of(round_id, participant)

    def attestation_quorum(self, round_id: RoundId) -> int:
        """The positive attestations the round needs under the current policy before the next round opens."""
        return self.contract.attestation_quorum(round_id)

    def contest_of(self, round_id: RoundId, participant: Address) -> int:
        """The participant's exclusion contest of the round (0 none, 1 open, 2 available, 3 unavailable)."""
        return self.contract.contest_of(round_id, participant)

    def attestations(self, round_id: RoundId) -> list[RoundAttested]:
        """The round's ``RoundAttested`` events in chain order."""
        return self.events.attestations(round_id)

    def disputes(self, round_id: RoundId) -> list[RoundDisputed]:
        """The round's ``RoundDisputed`` event, if it was disputed."""
        return self.events.disputes(round_id)

    def contests(self, round_id: RoundId) -> list[ExclusionContested | ContestAnswered]:
        """The round's exclusion contests and their answers in chain order."""
        return self.events.contests(round_id)

    def membership(self) -> Address:
        """The address of the Federation's membership token (one vote per member)."""
        return self.contract.membership()

    def attest_round(
        self,
        round_id: RoundId,
        model_digest: Digest,
        ok: bool,
        findings_digest: Digest,
        findings_cid: Cid,
        inclusion: Inclusion,
    ) -> TxReport:
        """Attest a finalised round the signing account was included in (with the proof of its inclusion)."""
        return self.contract.attest_round(round_id, model_digest, ok, findings_digest, findings_cid, inclusion)

    def contest_exclusion(self, round_id: RoundId, update_digest: Digest, cid: Cid) -> TxReport:
        """Contest the signing account's exclusion from a finalised round, announcing its blob as available."""
        return self.contract.contest_exclusion(round_id, update_digest, cid)

    def answer_contest(self, round_id: RoundId, participant: Address, available: bool) -> TxReport:
        """Answer an exclusion contest: whether the blob could be fetched this time (aggregator)."""
        return self.contract.answer_contest(round_id, participant, available)

    def set_verification_policy(self, quorum_percent: int) -> TxReport:
        """Set the verification policy, 0 to 100 percent (admin)."""
        return self.contract.set_verification_policy(quorum_percent)

    def dispute_round(
        self, round_id: RoundId, accused: Address, findings_digest: Digest, findings_cid: Cid, reason: str
    ) -> TxReport:
        """Mark a finalised round disputed (admin; under governance, through an executed proposal)."""
        return self.contract.dispute_round(round_id, accused, findings_digest, findings_cid, reason)

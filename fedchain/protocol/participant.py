"""The participant agent: one organisation, its keystore and its private data.

It talks to nobody but the ledger and the blob store. For a round it: checks it is an active
participant, fetches the task document and verifies its digests against the chain, fetches
the round's base model and verifies its digest, validates its data against the task's schema,
trains with the task's algorithm, stores the canonical update blob, and commits on chain.
It is idempotent: if its commitment for the round is already on chain it does nothing, and
anything failing before the commit leaves no commitment behind.

In a secure-aggregation round it takes three steps instead (:meth:`ParticipantAgent.secure_step`):
advertise its keys for the round, commit its masked input, post its unmasking shares; each is
driven by the chain's state and a private per-round file written before anything leaves the
machine (:class:`SecureRoundState`), so a restart repeats exactly what was sent, never more.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fedchain.codec.canonical import sha256_digest
from fedchain.codec.eip712 import commitment_digest
from fedchain.config import private_dir
from fedchain.errors import (
    BlobFormatError,
    BlobNotFoundError,
    ClaimError,
    ConfigError,
    FedchainError,
    InboxRefusedError,
    InboxUnavailableError,
    IntegrityError,
    ParticipantError,
    PrivacyBudgetError,
    PrivacyError,
    RoundNotOpenError,
    RpcUnavailableError,
    SecAggError,
    StorageUnavailableError,
    TaskNotConfiguredError,
)
from fedchain.ports import (
    SALT_SIZE,
    Ledger,
    ParticipantStatus,
    PrivacySpent,
    RoundRecord,
    RoundStatus,
    SecureLedger,
    SignedLedger,
    TxReport,
    UpdateCommitment,
    UpdateSeal,
    is_secure_ledger,
    is_signed_ledger,
    update_seal,
)
from fedchain.protocol.blobs import decode_global, decode_update, encode_update, metadata_digest
from fedchain.protocol.evidence import Evidence
from fedchain.protocol.outage import OutageClock
from fedchain.protocol.rewards import RewardsLedger, RoundRewardsDoc, RoundRewardsView, score_text, scores_publication
from fedchain.protocol.rounds import RULE_BLOB_UNAVAILABLE
from fedchain.protocol.secure import (
    fetch_round_records,
    index_of,
    masked_metadata_digest,
    model_dimension,
    quantise_delta,
    round_context,
    round_members,
)
from fedchain.protocol.signed import SignedCommitment, commitment_set_root, send_commitment
from fedchain.protocol.signed_rounds import fetch_commitment_set
from fedchain.protocol.task import TaskDocument, load_model_source, load_task_document, task_version
from fedchain.protocol.training import training_seed
from fedchain.reverts import (
    FederationAdvertisePhaseActive,
    FederationAdvertiseTooLate,
    FederationAlreadyAttested,
    FederationAlreadyContested,
    FederationCommitPhaseActive,
    FederationCommitTooLate,
    FederationContestWindowClosed,
    FederationDuplicateAdvertisement,
    FederationDuplicateCommit,
    FederationDuplicateUnmaskingShares,
    FederationEscapeWindowClosed,
    FederationNotAdvertised,
    FederationNotCommitted,
    FederationNotSealed,
    FederationRevealTooLate,
    FederationRoundNotOpen,
    FederationUnmaskTooLate,
)
from fedchain.secagg.messages import UnmaskingShares
from fedchain.secagg.protocol import Roster, RoundSecrets, accept_advertisements, advertise, mask_input, unmask_shares
from fedchain.types import Address, Cid, Digest, RoundId, digest_hex

if TYPE_CHECKING:
    from fedchain.fl.attacks import AttackSpec
    from fedchain.fl.privacy import AccountantInputs
    from fedchain.fl.records import ClientState, ClientUpdate
    from fedchain.fl.schema import DataSchema
    from fedchain.ports import BlobStore
    from fedchain.protocol.blobs import GlobalModel
    from fedchain.secagg.context import RoundContext

log = logging.getLogger(__name__)

READY_FILE = "ready"  # written to the work dir once the agent is admitted, loaded and watching
JOURNAL_FILE = "results.jsonl"  # the agent's transaction journal in its work dir (see TxJournal)
# Reverts that mean "this round is no longer for us", not "something is broken".
_MISSED_ROUND_ERRORS = (FederationCommitTooLate, FederationRoundNotOpen, FederationRevealTooLate, FederationNotSealed)
VERIFY_ATTEMPTS = 3  # looks at a finalised round whose verification fails before the agent gives up on it
# Outages the agent rides out (with bounded backoff) instead of exiting.
_TRANSIENT_ERRORS = (RpcUnavailableError, StorageUnavailableError)
# Reverts that end this participant's part in a secure round (a phase it was too late for, a chain that lost its
# advertisement or commitment), and those that only mean "too early: look again at the next block".
_MISSED_SECURE_ERRORS = (FederationAdvertiseTooLate, FederationCommitTooLate, FederationUnmaskTooLate,
                         FederationRoundNotOpen, FederationNotAdvertised, FederationNotCommitted)
_EARLY_SECURE_ERRORS = (FederationAdvertisePhaseActive, FederationCommitPhaseActive)
SEND_ATTEMPTS = 4  # tries to hand a signed commitment to the inbox (0.5, 1, 2 s apart) before relying on the escape
SECAGG_DIR = "secagg"  # under the state dir: each secure round's private file (secrets, records) and masked input
SECAGG_RECORD_WINDOW_S = 10.0  # how long a peer's advertisement blob missing from the store is waited for
DROPOUT_STAGES = ("before_advertising", "after_advertising", "after_committing")

# Test-only: the name of a point in ``submit`` at which the process kills itself with SIGKILL
# ("after_put": the update blob is stored, nothing is on chain; "after_send": the commit
# transaction is mined, the client state is not promoted yet; in a secure round
# "secagg_advertisement_saved": the secrets and advertisement are in the round file, nothing is
# stored or posted; "secagg_masked_stored": the masked input is stored, not committed;
# "secagg_unmasking_saved": the unmasking shares are in the round file, not posted). Lets the
# tests crash the agent exactly there and check that a restart acts once. Never set it in production.
TEST_CRASH_ENV = "FEDCHAIN_TEST_CRASH_AT"
_PENDING_STATE = re.compile(r"^client_state\.pending-(\d+)\.npz$")


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, owner-only (0600), fsynced."""
    private_dir(path.parent)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def _test_crash_point(name: str) -> None:
    if os.environ.get(TEST_CRASH_ENV) == name:
        log.warning("%s=%s: killing this process (test only)", TEST_CRASH_ENV, name)
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class SubmitResult:
    """What the participant did for one round."""

    round_id: RoundId
    participant: Address
    update_digest: Digest
    cid: Cid
    num_samples: int
    already_committed: bool
    gas_used: int
    tx_hash: str | None
    train_loss: float | None
    bytes_uploaded: int
    train_seconds: float
    bytes_downloaded: int = 0
    # the contract function of the transaction: commitUpdate (commitPrivateUpdate in a private round), or in a
    # commit-reveal round sealUpdate
    # (sealed in the commit phase; the update is revealed later) and revealUpdate
    function: str = "commitUpdate"

    @property
    def sealed_only(self) -> bool:
        """Whether this is the seal of a commit-reveal round: the update is still to be revealed."""
        return self.function == "sealUpdate"

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON object, as ``fedchain participant`` prints it."""
        return {
            "function": self.function,
            "round": int(self.round_id),
            "participant": self.participant,
            "update_digest": digest_hex(self.update_digest),
            "cid": self.cid,
            "num_samples": self.num_samples,
            "already_committed": self.already_committed,
            "gas_used": self.gas_used,
            "tx_hash": self.tx_hash,
            "train_loss": self.train_loss,
            "bytes_uploaded": self.bytes_uploaded,
            "bytes_downloaded": self.bytes_downloaded,
            "train_seconds": round(self.train_seconds, 3),
        }


JOURNAL_EVENTS = ("intent", "committed", "recommitted", "skipped", "seal_intent", "sealed", "verified", "contested",
                  "excluded", "claimed", "unrewarded", "advertised", "unmasked", "dropped", "signed", "in_set")


@dataclass(frozen=True)
class JournalEntry:
    """One line of the participant's transaction journal.

    ``intent``: an update is stored and its commit is about to be sent; ``committed``: the
    commit is on chain (``tx_hash``, ``block_number``; ``already_committed`` when an earlier
    attempt's commit was found there); ``recommitted``: a journaled commit that the chain had
    lost (a rewound chain) was sent again; ``skipped``: the round no longer took commits
    (``reason``). In a commit-reveal round: ``seal_intent`` (the update, its secret ``salt`` and
    ``seal``, before ``sealUpdate`` is sent) and ``sealed`` (mined); the reveal is journaled as
    ``intent`` and ``committed``. The journal is the only copy of the salt: it is the owner's only.
    Once a round it committed in is finalised: ``verified`` (included; the verifier hook ran, so
    a restart does not attest again), ``contested`` (left out as unavailable; the exclusion was
    contested on chain, ``tx_hash``) or ``excluded`` (left out, nothing to contest: ``reason``).
    Once the round's rewards are published: ``claimed`` (the reward ``amount`` claimed, ``tx_hash``;
    none when an earlier claim was found on chain) or ``unrewarded`` (nothing owed: ``reason``).
    In a secure-aggregation round: ``advertised`` (the advertisement blob posted, its digest and CID),
    the masked input's ``intent`` and ``committed``, ``unmasked`` (the unmasking-shares blob posted),
    ``dropped`` (a simulated dropout: ``reason`` names the stage) or ``skipped`` (``reason``). The
    round's secrets are not journaled: they are in the round's private file (:data:`SECAGG_DIR`).
    In a signed round: ``signed`` (the commitment and its EIP-712 ``signature``, before it is sent to the
    aggregator's inbox; ``reason`` when the inbox refused it or could not be reached), ``in_set`` (the posted set
    holds it) and, when it was left out, the forced on-chain commit's ``intent`` and ``committed``."""

    event: str
    round_id: RoundId
    participant: Address
    update_digest: Digest | None = None
    cid: Cid | None = None
    num_samples: int | None = None
    metadata_digest: Digest | None = None
    base_model_digest: Digest | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    reason: str | None = None
    result: SubmitResult | None = None
    salt: bytes | None = None
    seal: Digest | None = None
    amount: int | None = None  # a claimed reward, in the reward token's base units
    epsilon_spent: int | None = None  # a private round's commit: the cumulative epsilon claimed (micro-epsilon)
    accountant_digest: Digest | None = None  # ... and the digest of that round's accountant inputs
    signature: bytes | None = None  # a signed round's commitment: its EIP-712 signature (65 bytes)

    def to_json(self) -> dict[str, Any]:
        """One JSON object (one journal line): the result's fields, if any, and the entry's own."""
        out: dict[str, Any] = self.result.to_json() if self.result is not None else {}
        out.update({
            "event": self.event,
            "round": int(self.round_id),
            "participant": self.participant,
            "update_digest": digest_hex(self.update_digest) if self.update_digest is not None else None,
            "cid": self.cid,
            "num_samples": self.num_samples,
            "metadata_digest": digest_hex(self.metadata_digest) if self.metadata_digest is not None else None,
            "base_model_digest": digest_hex(self.base_model_digest) if self.base_model_digest is not None else None,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "reason": self.reason,
            "time": round(time.time(), 3),
        })
        if self.salt is not None:
            out["salt"] = "0x" + bytes(self.salt).hex()
        if self.seal is not None:
            out["seal"] = digest_hex(self.seal)
        if self.amount is not None:
            out["amount"] = str(self.amount)
        if self.epsilon_spent is not None:
            out["epsilon_spent"] = int(self.epsilon_spent)
        if self.accountant_digest is not None:
            out["accountant_digest"] = digest_hex(self.accountant_digest)
        if self.signature is not None:
            out["signature"] = "0x" + bytes(self.signature).hex()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JournalEntry:
        """An entry read back from a journal line (KeyError/ValueError/TypeError when malformed)."""
        def digest(key: str) -> Digest | None:
            value = data.get(key)
            return Digest(bytes.fromhex(str(value).removeprefix("0x"))) if value else None

        event = str(data["event"])
        if event not in JOURNAL_EVENTS:
            raise ValueError(f"unknown journal event {event!r}")
        return cls(
            event=event, round_id=RoundId(int(data["round"])), participant=Address(str(data["participant"])),
            update_digest=digest("update_digest"), cid=Cid(data["cid"]) if data.get("cid") else None,
            num_samples=int(data["num_samples"]) if data.get("num_samples") is not None else None,
            metadata_digest=digest("metadata_digest"), base_model_digest=digest("base_model_digest"),
            tx_hash=data.get("tx_hash"), block_number=data.get("block_number"), reason=data.get("reason"),
            salt=bytes.fromhex(str(data["salt"]).removeprefix("0x")) if data.get("salt") else None,
            seal=digest("seal"),
            amount=int(data["amount"]) if data.get("amount") is not None else None,
            epsilon_spent=int(data["epsilon_spent"]) if data.get("epsilon_spent") is not None else None,
            accountant_digest=digest("accountant_digest"),
            signature=bytes.fromhex(str(data["signature"]).removeprefix("0x")) if data.get("signature") else None,
        )


def _signed_commitment(entry: JournalEntry) -> SignedCommitment:
    """The signed commitment a ``signed`` journal entry holds."""
    assert entry.update_digest is not None and entry.cid is not None and entry.num_samples is not None
    assert entry.metadata_digest is not None and entry.signature is not None
    return SignedCommitment(entry.round_id, entry.participant, entry.update_digest, entry.cid, entry.num_samples,
                            entry.metadata_digest, entry.signature)


class TxJournal:
    """The participant's append-only journal of its transactions (JSON lines), each line
    flushed and fsynced before the agent goes on: an ``intent`` before a commit is sent, a
    ``committed`` once it is mined. What lets a restarted agent notice that the chain lost a
    commit it had made (a devnet restored from an older state)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, entry: JournalEntry) -> None:
        """Append ``entry`` and fsync the file (and, when it was just created, its directory)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(entry.to_json(), sort_keys=True) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def entries(self) -> list[JournalEntry]:
        """Every readable entry, oldest first; a torn or foreign line is skipped with a warning."""
        if not self.path.is_file():
            return []
        out: list[JournalEntry] = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                out.append(JournalEntry.from_json(data))
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                log.warning("journal %s line %d is unreadable, skipped: %s", self.path, number, err)
        return out

    def commits(self) -> dict[int, JournalEntry]:
        """The latest ``committed`` or ``recommitted`` entry of each round."""
        return {int(e.round_id): e for e in self.entries() if e.event in ("committed", "recommitted")}

    def seals(self) -> dict[int, JournalEntry]:
        """The latest ``seal_intent`` or ``sealed`` entry of each commit-reveal round."""
        return {int(e.round_id): e for e in self.entries() if e.event in ("seal_intent", "sealed")}

    def settled(self) -> set[int]:
        """The rounds whose outcome the agent has dealt with: verified, contested or excluded."""
        return {int(e.round_id) for e in self.entries() if e.event in ("verified", "contested", "excluded")}

    def signed(self) -> dict[int, JournalEntry]:
        """The first ``signed`` entry of each signed round (the one commitment the participant stands by)."""
        out: dict[int, JournalEntry] = {}
        for e in self.entries():
            if e.event == "signed" and e.signature is not None:
                out.setdefault(int(e.round_id), e)
        return out

    def in_set(self) -> set[int]:
        """The signed rounds whose posted set the agent found its commitment in."""
        return {int(e.round_id) for e in self.entries() if e.event == "in_set"}

    def rewarded(self) -> set[int]:
        """The rounds whose reward the agent has dealt with: claimed, or nothing owed."""
        return {int(e.round_id) for e in self.entries() if e.event in ("claimed", "unrewarded")}


@dataclass(frozen=True)
class SecureRoundState:
    """What a participant keeps to itself about one secure round, in ``<state dir>/secagg/round-<r>.json``
    (0600), each part written before it leaves the machine: the round's secrets and its advertisement blob (a
    restart posts exactly these bytes and never draws new secrets), the masked input's commitment (its blob next
    to the file), and the unmasking-shares blob (a restart posts it again, never a different one). The secrets
    are erased (empty) as the unmasking shares are saved: with the public records they would unmask our input."""

    round_id: RoundId
    context: bytes  # the round context's digest (chain id, contract, round)
    base_model_digest: Digest
    index: int  # this participant's member index
    mask_private: bytes
    self_seed: bytes
    advertisement: bytes
    masked_digest: Digest | None = None
    num_samples: int | None = None
    metadata_digest: Digest | None = None
    epsilon_spent: int | None = None  # a private round's claim (micro-epsilon) ...
    accountant_digest: Digest | None = None  # ... and its accountant digest
    unmasking: bytes | None = None

    @property
    def secrets(self) -> RoundSecrets:
        """The round's secrets as the protocol takes them."""
        return RoundSecrets(self.index, self.mask_private, self.self_seed)

    @property
    def erased(self) -> bool:
        """Whether the secrets were erased (once the unmasking shares were computed)."""
        return not self.mask_private or not self.self_seed

    def claim(self) -> tuple[int, Digest] | None:
        """The masked input's privacy claim, if the round is private."""
        if self.epsilon_spent is None or self.accountant_digest is None:
            return None
        return int(self.epsilon_spent), self.accountant_digest

    def to_json(self) -> dict[str, Any]:
        """The file's JSON object (bytes as hex)."""
        def hexed(value: bytes | None) -> str | None:
            return None if value is None else bytes(value).hex()

        return {
            "round": int(self.round_id), "context": hexed(self.context), "base_model_digest": hexed(self.base_model_digest),
            "index": self.index, "mask_private": hexed(self.mask_private), "self_seed": hexed(self.self_seed),
            "advertisement": hexed(self.advertisement), "masked_digest": hexed(self.masked_digest),
            "num_samples": self.num_samples, "metadata_digest": hexed(self.metadata_digest),
            "epsilon_spent": self.epsilon_spent, "accountant_digest": hexed(self.accountant_digest),
            "unmasking": hexed(self.unmasking),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SecureRoundState:
        """Read back (KeyError/ValueError/TypeError when malformed)."""
        def raw(key: str) -> bytes | None:
            value = data.get(key)
            return None if value is None else bytes.fromhex(str(value))

        def need(key: str) -> bytes:
            value = raw(key)
            if value is None:
                raise KeyError(key)
            return value

        masked, meta, acct = raw("masked_digest"), raw("metadata_digest"), raw("accountant_digest")
        return cls(
            RoundId(int(data["round"])), need("context"), Digest(need("base_model_digest")), int(data["index"]),
            need("mask_private"), need("self_seed"), need("advertisement"),
            None if masked is None else Digest(masked),
            None if data.get("num_samples") is None else int(data["num_samples"]),
            None if meta is None else Digest(meta),
            None if data.get("epsilon_spent") is None else int(data["epsilon_spent"]),
            None if acct is None else Digest(acct),
            raw("unmasking"),
        )


def dropout_stage(rate: float, seed: int, round_id: int, address: str) -> str | None:
    """Where a simulated dropout takes ``address`` out of secure round ``round_id`` (one of
    :data:`DROPOUT_STAGES`), or None when it stays: with probability ``rate``, deterministic in (seed, round,
    address), so a restarted agent drops at the same stage."""
    if rate <= 0.0:
        return None
    h = hashlib.sha256(f"fedchain/secagg/dropout/{int(seed)}/{int(round_id)}/{address.lower()}".encode()).digest()
    if int.from_bytes(h[:8], "big") / 2.0**64 >= rate:
        return None
    return DROPOUT_STAGES[h[8] % len(DROPOUT_STAGES)]


class ParticipantAgent:
    """One participant. ``ledger`` signs as the participant; ``store`` is the shared blob store."""

    def __init__(
        self,
        ledger: Ledger,
        store: BlobStore,
        data_path: Path,
        state_dir: Path,
        *,
        attack: AttackSpec | None = None,
        poll_interval_s: float = 0.2,
        max_outage_s: float = 300.0,
        block_wait_s: float = 2.0,
        on_outage: Callable[[], None] | None = None,
        cid_of: Callable[[bytes], Cid] | None = None,
        verifier: Callable[[RoundRecord], None] | None = None,
        verify_now: Callable[[], bool] | None = None,
        incentives: RewardsLedger | None = None,
        secagg_key: bytes | None = None,
        dropout_rate: float = 0.0,
        dropout_seed: int = 0,
    ) -> None:
        self.ledger = ledger
        # the long-term X25519 private key whose public half this participant registered
        # (fedchain.secagg.keys.long_term_private_key of its account key); None: it cannot take part in
        # secure-aggregation rounds
        self.secagg_key = secagg_key
        # digests of the model source files (a task's custom model) this participant agreed to run
        # (``--trust-model``); a task whose model file is not among them is refused before it runs
        self.trusted_models: frozenset[str] | None = frozenset()
        self.store = store
        self.data_path = Path(data_path)
        self.state_dir = Path(state_dir)
        self.attack = attack
        self.poll_interval_s = poll_interval_s  # the first pause of the backoff during an outage
        self.block_wait_s = block_wait_s  # the longest wait for a new block between two looks
        self.max_outage_s = max_outage_s  # how long an unreachable chain or store is ridden out
        self._last_progress = time.monotonic()
        self._data: tuple[np.ndarray, np.ndarray] | None = None
        self._tasks: dict[tuple[int, str], TaskDocument] = {}  # verified documents by (version, CID)
        self._privacy_inputs: dict[int, AccountantInputs] = {}  # a private task's rounds: this one's inputs
        self.journal = TxJournal(self.state_dir / JOURNAL_FILE)
        self._commits = self.journal.commits()  # the journaled commit of each round, kept in step with the file
        self._seals = self.journal.seals()  # the journaled seal of each commit-reveal round
        self._signed = self.journal.signed()  # the journaled signed commitment of each signed round
        self._in_set = self.journal.in_set()  # the signed rounds whose set holds our commitment
        # called after each failed attempt during an outage, before the next: where the services'
        # URLs are read again (an agent started from the state dir follows a node that moved)
        self.on_outage = on_outage
        # the store's CID of a blob, computed here: a commit-reveal round seals an update before
        # uploading it (the CLI passes fedchain.storage.cid.compute_cid)
        self.cid_of = cid_of
        # called once per finalised round this participant was included in, before it trains on
        # that round's model: the members' live verification (the CLI passes
        # fedchain.audit.live.LiveVerifier, which replays the round and attests it on chain)
        self.verifier = verifier
        # whether the verifier is to run now (None: always); while it says no, the latest round
        # to verify waits for it (the CLI's default: while the chain has no verification policy)
        self.verify_now = verify_now
        self._settled = self.journal.settled()  # rounds verified, contested or left out (journaled), or done here
        self._deferred: int | None = None  # the latest included round whose verification waits for verify_now
        self._verify_failures: dict[int, int] = {}
        # the incentives contract, signing as this participant: rewards of the rounds it was
        # included in are claimed once published (:meth:`claim_rewards`); None: no claims
        self.incentives = incentives
        self._rewarded = self.journal.rewarded()  # rounds claimed or owed nothing (journaled)
        self._no_rewards: set[int] = set()  # rounds whose task has no rewards config (not journaled)
        # simulated dropouts (``simulate --secagg --dropout``): in each secure round this participant drops out with
        # probability ``dropout_rate`` at one of DROPOUT_STAGES, drawn from (dropout_seed, round, address)
        self.dropout_rate = dropout_rate
        self.dropout_seed = dropout_seed
        self.record_window_s = SECAGG_RECORD_WINDOW_S  # how long a peer's missing advertisement blob is waited for
        self._secure_done: set[int] = set()  # secure rounds in which this participant has nothing more to do
        self._secure_ctx: dict[int, tuple[bytes, RoundContext, TaskDocument, GlobalModel, int]] = {}
        self._rosters: dict[int, Roster] = {}  # the U1 each secure round's masked input was made with

    @property
    def address(self) -> Address:
        """The participant's address: the ledger's signing account."""
        return self.ledger.sender

    # --- checks --------------------------------------------------------------------------
    def require_active(self) -> None:
        """Raise ParticipantError unless the ledger records this participant as active."""
        rec = self.ledger.participant(self.address)
        if rec.status != ParticipantStatus.ACTIVE:
            state = ParticipantStatus(rec.status).name.lower()
            raise ParticipantError(f"participant {self.address} is not admitted (status: {state})")

    def load_data(self, schema: DataSchema | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The participant's data, checked against ``schema`` (its digest and value ranges)."""
        from fedchain.fl.schema import load_client_data

        if not self.data_path.is_file():
            from fedchain.errors import DataSchemaError

            raise DataSchemaError(f"participant data file {self.data_path} does not exist")
        if self._data is None or schema is not None:
            self._data = load_client_data(self.data_path, schema)
        return self._data

    # --- one round -------------------------------------------------------------------------
    def own_commitment(self, round_id: RoundId) -> UpdateCommitment | None:
        """This participant's commitment to ``round_id``, or None when it has not committed."""
        for c in self.ledger.commitments(round_id):
            if c.participant.lower() == self.address.lower():
                return c
        return None

    def submit(self, round_id: RoundId | None = None) -> SubmitResult:
        """Take part in ``round_id`` (default: the latest round) once; idempotent."""
        rid = RoundId(int(round_id if round_id is not None else self.ledger.latest_round_id()))
        if rid < 1:
            raise ParticipantError("no round has been opened yet")
        rnd = self.ledger.round(rid)
        self.require_active()
        again = self.recommit_lost(rnd)  # before settling: that round's client state is still pending
        if again is not None:
            return again
        self.settle_state()
        if self.check_finalised_rounds(rnd):  # verify the model we are about to train on, contest an exclusion
            rnd = self.ledger.round(rid)
        if rnd.secure:
            return self._submit_secure(rnd)
        existing = self.own_commitment(rid) if self.ledger.participant(self.address).last_committed_round == rid else None
        if existing is not None:
            log.info("round %d: already committed %s (tx %s); nothing to do", rid, existing.cid, existing.tx_hash)
            return self._found_on_chain(rnd, existing, None, 0.0)
        if rnd.status != RoundStatus.OPEN:
            raise RoundNotOpenError(f"round {rid} is not open (status: {RoundStatus(rnd.status).name.lower()})")
        if rnd.commit_reveal:
            sealed = self._already_sealed(rnd)
            if sealed is not None:
                return sealed
        if rnd.signed and int(rid) in self._signed:  # one commitment per signed round: the journaled one again
            return self._send_signed(rnd, self._signed[int(rid)], None, 0.0, 0, 0)
        doc = self.task_document(int(rnd.task_version))
        base, base_size = self._fetch_base(rnd)
        verify_round_base(self.ledger, rnd, doc)
        x, y = self.load_data(doc.schema())
        history = self.require_privacy_budget(doc, rid)
        t0 = time.perf_counter()
        update, new_state, loss = self._train(doc, rnd, base, x, y)
        train_s = time.perf_counter() - t0
        claim = self._privacy_claim(doc, rid, history, update)
        blob = encode_update(update)
        if rnd.commit_reveal:
            return self._seal(rnd, blob, update, new_state, loss, train_s, base_size + len(doc.to_bytes()))
        cid = self.store.put(blob)
        log.info("round %d: stored update %s", rid, cid)
        _test_crash_point("after_put")
        digest = sha256_digest(blob)
        self._save_pending_state(rid, new_state)
        samples, meta = int(update.num_samples), metadata_digest(update)
        if rnd.signed:
            return self._sign(rnd, digest, cid, samples, meta, loss, train_s, len(blob), base_size + len(doc.to_bytes()))
        report = self._journaled_commit(rnd, digest, cid, samples, meta, claim)
        if isinstance(report, UpdateCommitment):
            return self._found_on_chain(rnd, report, loss, train_s)
        result = SubmitResult(
            rid, self.address, digest, cid, samples, False,
            report.gas_used, report.tx_hash, loss, len(blob), train_s, base_size + len(doc.to_bytes()),
            function="commitUpdate" if claim is None else "commitPrivateUpdate",
        )
        self._journal_commit(JournalEntry("committed", rid, self.address, digest, cid, samples, meta,
                                          rnd.base_model_digest, report.tx_hash, report.block_number, result=result,
                                          epsilon_spent=claim[0] if claim else None,
                                          accountant_digest=claim[1] if claim else None))
        _test_crash_point("after_send")
        log.info("round %d: committed %s gas=%d tx=%s", rid, cid, report.gas_used, report.tx_hash)
        return result

    # --- signed rounds ---------------------------------------------------------------------
    def _signed_ledger(self) -> SignedLedger:
        if not is_signed_ledger(self.ledger):
            raise ParticipantError(f"signed rounds need a ledger that signs commitments; {type(self.ledger).__name__} "
                                   "does not")
        return self.ledger

    def _sign(self, rnd: RoundRecord, digest: Digest, cid: Cid, samples: int, meta: Digest, loss: float | None,
              train_s: float, uploaded: int, downloaded: int) -> SubmitResult:
        """Sign the commitment of a signed round (EIP-712, bound to this chain and contract), journal it, send it."""
        ledger = self._signed_ledger()
        chain_id, contract = ledger.federation_id()
        typed = commitment_digest(chain_id, contract, int(rnd.round_id), self.address, digest, cid, samples, meta)
        entry = JournalEntry("signed", rnd.round_id, self.address, digest, cid, samples, meta, rnd.base_model_digest,
                             signature=ledger.sign_digest(typed))
        self.journal.append(entry)
        self._signed[int(rnd.round_id)] = entry
        return self._send_signed(rnd, entry, loss, train_s, uploaded, downloaded)

    def _send_signed(self, rnd: RoundRecord, entry: JournalEntry, loss: float | None, train_s: float, uploaded: int,
                     downloaded: int) -> SubmitResult:
        """Send the journaled signed commitment to the aggregator's inbox (the task names it). A refusal or an
        unreachable inbox is logged, not raised: once the set is posted, a commitment left out is forced on chain
        (:meth:`check_signed_inclusion`)."""
        sc = _signed_commitment(entry)
        doc = self.task_document(int(rnd.task_version))
        if doc.signed_commits is None:
            raise ParticipantError(f"round {rnd.round_id} is a signed round but task version {rnd.task_version} "
                                   "names no commitment inbox")
        for attempt in range(SEND_ATTEMPTS):
            try:
                send_commitment(doc.signed_commits.inbox, sc, timeout_s=10.0)
                log.info("round %d: signed commitment of %s sent to %s", rnd.round_id, sc.cid, doc.signed_commits.inbox)
                break
            except (InboxRefusedError, InboxUnavailableError) as err:
                # an inbox not yet listening, or not yet open for the round, may be in a moment: try again
                transient = isinstance(err, InboxUnavailableError) or (err.status in (409, 503) and "different" not in str(err))
                if transient and attempt + 1 < SEND_ATTEMPTS:
                    time.sleep(0.5 * 2 ** attempt)
                    continue
                log.warning("round %d: the inbox did not take our signed commitment (%s); if the posted set leaves it "
                            "out it is forced on chain", rnd.round_id, err)
                break
        return SubmitResult(rnd.round_id, self.address, sc.update_digest, sc.cid, sc.num_samples, False, 0, None,
                            loss, uploaded, train_s, downloaded, function="signCommitment")

    def _pending_set_check(self, round_id: int) -> bool:
        """Whether a signed round we signed in still waits for its set to be checked for our commitment."""
        return round_id in self._signed and round_id not in self._in_set and round_id not in self._commits

    def check_signed_inclusion(self, rnd: RoundRecord) -> SubmitResult | None:
        """Once the set of a signed round we signed in is posted: journal ``in_set`` when it holds our commitment
        (the very one we signed), otherwise force our commitment on chain within the escape window (the set is
        unavailable, malformed, or leaves us out). None while the set is not posted, or when nothing was forced."""
        rid = int(rnd.round_id)
        entry = self._signed.get(rid)
        if entry is None or not self._pending_set_check(rid) or not rnd.signed:
            return None
        ledger = self._signed_ledger()
        posted = ledger.commitment_set(rnd.round_id)
        if posted is None:
            if rnd.status != RoundStatus.OPEN:  # closed before any set: nothing to force
                self._in_set.add(rid)
            return None
        mine = _signed_commitment(entry)
        chain_id, contract = ledger.federation_id()
        cset, why = fetch_commitment_set(self.store, posted, max_entries=max(1, int(rnd.eligible_count)))
        found = cset.find(self.address) if cset is not None else None
        # in the set exactly as signed (the signature too: the aggregation drops an entry whose signature fails), in
        # a set of this round and deployment whose root is the one posted
        if (cset is not None and found == mine and int(cset.chain_id) == int(chain_id)
                and str(cset.contract).lower() == str(contract).lower() and int(cset.round_id) == rid
                and bytes(posted.set_root) == bytes(commitment_set_root(cset))):
            self.journal.append(JournalEntry("in_set", rnd.round_id, self.address, entry.update_digest, entry.cid,
                                             tx_hash=posted.tx_hash, block_number=posted.block_number))
            self._in_set.add(rid)
            log.info("round %d: our signed commitment is in the posted set (tx %s)", rid, posted.tx_hash)
            return None
        reason = why or ("the set leaves our commitment out" if found is None
                         else "the set holds our commitment otherwise than we signed it" if found != mine
                         else "the set is not this round's, or its root is not the one posted")
        log.warning("round %d: %s; forcing our commitment on chain before the escape deadline %d", rid, reason,
                    posted.escape_deadline)
        assert entry.update_digest is not None and entry.cid is not None and entry.metadata_digest is not None
        assert entry.num_samples is not None
        try:
            report = self._journaled_commit(rnd, entry.update_digest, entry.cid, entry.num_samples,
                                            entry.metadata_digest, None)
        except (FederationEscapeWindowClosed, FederationRoundNotOpen) as err:
            log.warning("round %d: too late to force our commitment: %s", rid, err)
            self.journal.append(JournalEntry("skipped", rnd.round_id, self.address, reason=f"{reason}; {err}"))
            self._in_set.add(rid)  # nothing more to do for this round
            return None
        if isinstance(report, UpdateCommitment):
            return self._found_on_chain(rnd, report, None, 0.0)
        result = SubmitResult(rnd.round_id, self.address, entry.update_digest, entry.cid, entry.num_samples, False,
                              report.gas_used, report.tx_hash, None, 0, 0.0)
        self._journal_commit(JournalEntry("committed", rnd.round_id, self.address, entry.update_digest, entry.cid,
                                          entry.num_samples, entry.metadata_digest, rnd.base_model_digest,
                                          report.tx_hash, report.block_number, result=result))
        log.info("round %d: forced our commitment on chain gas=%d tx=%s", rid, report.gas_used, report.tx_hash)
        return result

    # --- commit-reveal rounds ------------------------------------------------------------
    def own_seal(self, round_id: RoundId) -> UpdateSeal | None:
        """This participant's seal in a commit-reveal round, or None."""
        for s in self.ledger.seals(round_id):
            if s.participant.lower() == self.address.lower():
                return s
        return None

    def _sealed_blob(self, round_id: RoundId) -> Path:
        return self.state_dir / f"sealed-update-{int(round_id)}.blob"

    def _seal(self, rnd: RoundRecord, blob: bytes, update: ClientUpdate, new_state: ClientState, loss: float | None,
              train_s: float, downloaded: int) -> SubmitResult:
        """Seal ``blob`` in the commit phase of a commit-reveal round: nothing is uploaded (so
        nobody can copy it); the blob and the secret salt stay here until :meth:`reveal`."""
        rid = RoundId(int(rnd.round_id))
        if self.cid_of is None:
            raise ConfigError(f"round {rid} is a commit-reveal round: the participant agent needs cid_of (the store's "
                              "CID of a blob, fedchain.storage.cid.compute_cid) to seal an update before uploading it")
        digest, cid = sha256_digest(blob), self.cid_of(blob)
        samples, meta = int(update.num_samples), metadata_digest(update)
        self._save_pending_state(rid, new_state)
        _write_private(self._sealed_blob(rid), blob)
        salt = secrets.token_bytes(SALT_SIZE)
        entry = JournalEntry("seal_intent", rid, self.address, digest, cid, samples, meta, rnd.base_model_digest,
                             salt=salt, seal=update_seal(int(rid), self.address, digest, cid, samples, meta, salt))
        self._journal_seal(entry)
        return self._send_seal(entry, loss, train_s, downloaded)

    def _send_seal(self, entry: JournalEntry, loss: float | None, train_s: float, downloaded: int) -> SubmitResult:
        assert entry.seal is not None and entry.update_digest is not None and entry.cid is not None
        rid = entry.round_id
        try:
            report = self.ledger.seal_update(rid, entry.seal)
        except FederationDuplicateCommit:
            mine = self.own_seal(rid)
            if mine is None or bytes(mine.seal) != bytes(entry.seal):
                raise
            return self._seal_result(entry, mine.tx_hash, 0, True)
        result = self._seal_result(entry, report.tx_hash, report.gas_used, False, loss, train_s, downloaded)
        self._journal_seal(replace(entry, event="sealed", tx_hash=report.tx_hash, block_number=report.block_number,
                                   result=result))
        log.info("round %d: sealed update %s (seal %s, tx %s); it is revealed after the commit phase", rid, entry.cid,
                 digest_hex(entry.seal), report.tx_hash)
        return result

    def _seal_result(self, entry: JournalEntry, tx_hash: str | None, gas: int, already: bool, loss: float | None = None,
                     train_s: float = 0.0, downloaded: int = 0) -> SubmitResult:
        assert entry.update_digest is not None and entry.cid is not None and entry.num_samples is not None
        return SubmitResult(entry.round_id, self.address, entry.update_digest, entry.cid, entry.num_samples, already,
                            gas, tx_hash, loss, 0, train_s, downloaded, function="sealUpdate")

    def _journal_seal(self, entry: JournalEntry) -> None:
        self.journal.append(entry)
        self._seals[int(entry.round_id)] = entry

    def _usable_seal(self, rnd: RoundRecord) -> JournalEntry | None:
        """The journaled seal of ``rnd`` if it applies to it (same base model, blob kept here)."""
        entry = self._seals.get(int(rnd.round_id))
        if entry is None or entry.salt is None or entry.seal is None:
            return None
        if entry.base_model_digest is None or bytes(entry.base_model_digest) != bytes(rnd.base_model_digest):
            return None
        return entry if self._sealed_blob(rnd.round_id).is_file() else None

    def _already_sealed(self, rnd: RoundRecord) -> SubmitResult | None:
        """The result of an earlier seal of this commit-reveal round (on chain, or journaled and
        lost by a rewound chain: sealed again, loudly); None when there is none to reuse."""
        rid = RoundId(int(rnd.round_id))
        mine = self.own_seal(rid)
        entry = self._usable_seal(rnd)
        if mine is not None:
            if entry is None or bytes(entry.seal or b"") != bytes(mine.seal):
                raise ParticipantError(
                    f"round {rid}: this account sealed an update (tx {mine.tx_hash}) whose salt and blob are not in "
                    f"the journal {self.journal.path}; it cannot be revealed"
                )
            log.info("round %d: already sealed %s (tx %s)", rid, entry.cid, mine.tx_hash)
            return self._seal_result(entry, mine.tx_hash, 0, True)
        if entry is None:
            return None
        if not self.ledger.commit_phase_over(rid):
            if entry.event == "sealed":
                log.warning("round %d: journaled seal tx %s is missing from the chain (the chain was rewound?); "
                            "sealing it again", rid, entry.tx_hash)
            return self._send_seal(entry, None, 0.0, 0)
        return None

    def _pending_reveal(self, round_id: int) -> bool:
        return round_id in self._seals and round_id not in self._commits

    def reveal(self, round_id: RoundId) -> SubmitResult | None:
        """Upload and reveal this participant's sealed update once the commit phase of the
        commit-reveal round is over; None while it is not over yet (or nothing is to reveal).

        Raises the contract's typed revert when the reveal comes too late
        (``FederationRevealTooLate``) or finds no seal."""
        rid = RoundId(int(round_id))
        rnd = self.ledger.round(rid)
        if not rnd.commit_reveal or rnd.status != RoundStatus.OPEN:
            return None
        existing = self.own_commitment(rid)
        if existing is not None:
            return self._found_on_chain(rnd, existing, None, 0.0)
        entry = self._usable_seal(rnd)
        if entry is None or not self.ledger.commit_phase_over(rid):
            return None
        if self.own_seal(rid) is None:
            raise ParticipantError(f"round {rid}: the chain holds no seal of ours to reveal (journaled seal tx "
                                   f"{entry.tx_hash}); the commit phase is over, so it cannot be sealed again")
        assert entry.update_digest is not None and entry.cid is not None and entry.salt is not None
        assert entry.num_samples is not None and entry.metadata_digest is not None
        blob = self._sealed_blob(rid).read_bytes()
        if sha256_digest(blob) != bytes(entry.update_digest):
            raise IntegrityError(f"round {rid}: the sealed blob {self._sealed_blob(rid)} no longer has the digest "
                                 f"{digest_hex(entry.update_digest)} it was sealed with")
        cid = self.store.put(blob)
        if cid != entry.cid:
            raise IntegrityError(f"round {rid}: the store filed the sealed blob as {cid}, not {entry.cid}")
        log.info("round %d: stored update %s for its reveal", rid, cid)
        self.journal.append(replace(entry, event="intent", tx_hash=None, block_number=None, result=None))
        try:
            report = self.ledger.reveal_update(rid, entry.update_digest, cid, entry.num_samples, entry.metadata_digest,
                                               entry.salt)
        except FederationDuplicateCommit:
            existing = self.own_commitment(rid)
            if existing is None:
                raise
            return self._found_on_chain(rnd, existing, None, 0.0)
        result = SubmitResult(rid, self.address, entry.update_digest, cid, entry.num_samples, False, report.gas_used,
                              report.tx_hash, None, len(blob), 0.0, function="revealUpdate")
        self._journal_commit(replace(entry, event="committed", tx_hash=report.tx_hash, block_number=report.block_number,
                                     result=result, salt=None, seal=None))
        log.info("round %d: revealed %s gas=%d tx=%s", rid, cid, report.gas_used, report.tx_hash)
        return result

    # --- secure-aggregation rounds ---------------------------------------------------------
    def _secure_ledger(self) -> SecureLedger:
        if not is_secure_ledger(self.ledger):
            raise ParticipantError("a secure-aggregation round is open, and this agent's ledger cannot run one")
        return self.ledger

    def _secure_file(self, round_id: int) -> Path:
        return self.state_dir / SECAGG_DIR / f"round-{int(round_id)}.json"

    def _masked_file(self, round_id: int) -> Path:
        return self.state_dir / SECAGG_DIR / f"round-{int(round_id)}.masked"

    def secure_state(self, round_id: RoundId) -> SecureRoundState | None:
        """This participant's private file of secure round ``round_id`` (None: it never advertised there)."""
        path = self._secure_file(round_id)
        if not path.is_file():
            return None
        try:
            return SecureRoundState.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as err:
            raise ParticipantError(f"round {round_id}: the secure-round file {path} is unreadable: {err}") from err

    def _save_secure(self, state: SecureRoundState) -> None:
        _write_private(self._secure_file(state.round_id), json.dumps(state.to_json(), sort_keys=True).encode("utf-8"))

    def _secure_context(self, rnd: RoundRecord) -> tuple[RoundContext, TaskDocument, GlobalModel, int]:
        """The round's context, its task document, its base model and the bytes fetched for them."""
        rid = int(rnd.round_id)
        cached = self._secure_ctx.get(rid)
        if cached is not None and cached[0] == bytes(rnd.base_model_digest):
            return cached[1], cached[2], cached[3], cached[4]
        doc = self.task_document(int(rnd.task_version))
        if doc.secagg is None:
            raise ParticipantError(f"round {rid} is a secure-aggregation round, but its task (version "
                                   f"{rnd.task_version}) has no secagg configuration")
        base, base_size = self._fetch_base(rnd)
        verify_round_base(self.ledger, rnd, doc)
        members = round_members(self.ledger.history(to_block=rnd.opened_block), rnd)
        chain_id, contract = self._secure_ledger().federation_id()
        ctx = round_context(chain_id, contract, rnd, members, doc.secagg, model_dimension(base))
        size = base_size + len(doc.to_bytes())
        self._secure_ctx[rid] = (bytes(rnd.base_model_digest), ctx, doc, base, size)
        return ctx, doc, base, size

    def _secure_roster(self, ctx: RoundContext, rid: RoundId) -> Roster:
        """U1 from the chain: every posted advertisement whose blob checks out; the others are logged and left out
        (a hostile peer's blob never stops the round)."""
        events = self._secure_ledger().advertisements(rid)
        records = fetch_round_records(self.store, ctx, events, [], [], window_s=self.record_window_s)
        for problem in records.problems:
            log.warning("round %d: leaving out the advertisement of %s: %s", rid, problem.participant, problem.reason)
        roster = accept_advertisements(ctx, records.advertisements)
        for finding in roster.findings:
            log.warning("round %d: leaving out the advertisement of participant %d: %s (%s)", rid, finding.offender,
                        finding.detail, finding.kind.value)
        return roster

    def _secure_finish(self, rid: RoundId, event: str | None = None, reason: str | None = None) -> None:
        """Nothing more to do in secure round ``rid``; journaled (``skipped``, ``dropped``) with a warning."""
        if event is not None:
            log.warning("round %d: %s", rid, reason)
            self.journal.append(JournalEntry(event, rid, self.address, reason=reason))
        self._secure_done.add(int(rid))

    def _submit_secure(self, rnd: RoundRecord) -> SubmitResult:
        """:meth:`submit` in a secure round: what :meth:`secure_step` did now (the last step), else what this
        participant did in the round before (its commitment, its advertisement)."""
        rid = RoundId(int(rnd.round_id))
        if rnd.status != RoundStatus.OPEN:
            raise RoundNotOpenError(f"round {rid} is not open (status: {RoundStatus(rnd.status).name.lower()})")
        done = self.secure_step(rid)
        if done:
            return done[-1]
        existing = self.own_commitment(rid)
        if existing is not None:
            return self._found_on_chain(rnd, existing, None, 0.0)
        state = self.secure_state(rid)
        if state is not None and self._secure_ledger().secure_participation(rid, self.address)[0]:
            digest = sha256_digest(state.advertisement)
            ours = [a for a in self._secure_ledger().advertisements(rid) if a.participant.lower() == self.address.lower()]
            return SubmitResult(rid, self.address, digest, ours[-1].cid if ours else Cid(""), 0, True, 0,
                                ours[-1].tx_hash if ours else None, None, 0, 0.0, function="postAdvertisement")
        raise ParticipantError(f"round {rid}: this participant takes no part in the secure-aggregation round (see its "
                               f"journal {self.journal.path})")

    def _secure_pending(self, round_id: int) -> bool:
        """Whether this participant still has something to do in secure round ``round_id``."""
        return int(round_id) not in self._secure_done

    def secure_step(self, round_id: RoundId) -> list[SubmitResult]:
        """Do what secure round ``round_id`` asks of this participant now, each phase once, driven by the chain
        and the round's private file: advertise (in the advertise phase), commit the masked input (once that phase
        is over, in the commit phase), post the unmasking shares (once the commit phase is over). Returns what was
        done (empty: nothing is due now). A phase it is too late for, a round it is not a member of, a simulated
        dropout or a protocol refusal (below the threshold, a double reveal) ends its part in the round, journaled."""
        rid = RoundId(int(round_id))
        out: list[SubmitResult] = []
        while self._secure_pending(rid):
            try:
                res = self._secure_action(rid)
            except _MISSED_SECURE_ERRORS as err:
                self._secure_finish(rid, "skipped", f"skipped, the round no longer takes this step: {err}")
                break
            except _EARLY_SECURE_ERRORS as err:
                log.info("round %d: too early (%s); trying again at the next block", rid, err)
                break
            except SecAggError as err:
                self._secure_finish(rid, "skipped", f"skipped, the secure-aggregation protocol refuses: {err}")
                break
            if res is None:
                break
            out.append(res)
        return out

    def _secure_action(self, rid: RoundId) -> SubmitResult | None:
        ledger = self._secure_ledger()
        rnd = self.ledger.round(rid)
        if rnd.status != RoundStatus.OPEN:
            self._secure_finish(rid)
            return None
        advertised, unmasked = ledger.secure_participation(rid, self.address)
        if unmasked:
            self._secure_finish(rid)
            return None
        state = self.secure_state(rid)
        drop = dropout_stage(self.dropout_rate, self.dropout_seed, int(rid), self.address)
        if not advertised:
            if ledger.advertise_phase_over(rid):
                self._secure_finish(rid, "skipped", "skipped: the advertise phase ended before this participant "
                                                    "advertised")
                return None
            if drop == "before_advertising":
                self._secure_finish(rid, "dropped", "dropping out before advertising (simulated)")
                return None
            return self._advertise(rnd, state)
        if state is None or bytes(state.base_model_digest) != bytes(rnd.base_model_digest):
            self._secure_finish(rid, "skipped", f"skipped: this account advertised, but the round's secrets are not "
                                                f"in {self._secure_file(rid)}; it cannot go on")
            return None
        if drop == "after_advertising":
            self._secure_finish(rid, "dropped", "dropping out after advertising (simulated)")
            return None
        mine = self.own_commitment(rid)
        if mine is None:
            if not ledger.advertise_phase_over(rid):
                return None
            if ledger.commit_phase_over(rid):
                self._secure_finish(rid, "skipped", "skipped: the commit phase ended before our masked input was "
                                                    "committed")
                return None
            return self._commit_masked(rnd, state)
        if drop == "after_committing":
            if not state.erased:  # the survivors reveal our self seed: our mask key must not outlive the round
                self._save_secure(replace(state, mask_private=b"", self_seed=b""))
            self._secure_finish(rid, "dropped", "dropping out after committing (simulated)")
            return None
        if not ledger.commit_phase_over(rid):
            return None
        return self._post_unmasking(rnd, state)

    def _advertise(self, rnd: RoundRecord, state: SecureRoundState | None) -> SubmitResult | None:
        """Advertise in secure round ``rnd``: the advertisement and secrets of the round file when it has them
        (a restart), else fresh ones, written there before the blob is stored or posted."""
        rid = RoundId(int(rnd.round_id))
        ledger = self._secure_ledger()
        try:
            ctx, _doc, _base, downloaded = self._secure_context(rnd)
        except SecAggError as err:
            self._secure_finish(rid, "skipped", f"skipped: the round cannot run secure aggregation: {err}")
            return None
        index = index_of(ctx, self.address)
        if index is None:
            self._secure_finish(rid, "skipped", "skipped: this participant is not a member of the secure round (not "
                                                "active when it opened, or no valid X25519 key registered)")
            return None
        if self.secagg_key is None:
            self._secure_finish(rid, "skipped", "skipped: this agent holds no X25519 private key (secagg_key) for "
                                                "secure-aggregation rounds")
            return None
        if (state is None or state.context != ctx.digest or state.index != index
                or bytes(state.base_model_digest) != bytes(rnd.base_model_digest)):
            if state is not None:
                log.warning("round %d: the secure-round file %s is of another opening of the round (the chain was "
                            "rewound?); advertising anew", rid, self._secure_file(rid))
            ad, secrets_ = advertise(ctx, index, self.secagg_key)
            state = SecureRoundState(rid, ctx.digest, rnd.base_model_digest, index, secrets_.mask_private,
                                     secrets_.self_seed, ad.to_bytes())
            self._save_secure(state)
        else:
            log.info("round %d: posting the advertisement kept in %s", rid, self._secure_file(rid))
        _test_crash_point("secagg_advertisement_saved")
        blob = state.advertisement
        digest = sha256_digest(blob)
        cid = self.store.put(blob)
        try:
            report = ledger.post_advertisement(rid, digest, cid)
        except FederationDuplicateAdvertisement:
            ours = [a for a in ledger.advertisements(rid) if a.participant.lower() == self.address.lower()]
            if not ours or bytes(ours[-1].digest) != bytes(digest):
                raise
            log.info("round %d: already advertised %s (tx %s)", rid, cid, ours[-1].tx_hash)
            return SubmitResult(rid, self.address, digest, cid, 0, True, 0, ours[-1].tx_hash, None, 0, 0.0,
                                function="postAdvertisement")
        self.journal.append(JournalEntry("advertised", rid, self.address, digest, cid, None, None, rnd.base_model_digest,
                                         report.tx_hash, report.block_number))
        log.info("round %d: advertised %s as participant %d gas=%d tx=%s", rid, cid, index, report.gas_used,
                 report.tx_hash)
        return SubmitResult(rid, self.address, digest, cid, 0, False, report.gas_used, report.tx_hash, None, len(blob),
                            0.0, downloaded, function="postAdvertisement")

    def _commit_masked(self, rnd: RoundRecord, state: SecureRoundState) -> SubmitResult | None:
        """Train, quantise, mask with the pairwise masks of U1 and commit the masked input, once: the masked
        blob and its commitment go to the round file before the blob is stored (a restart commits those)."""
        rid = RoundId(int(rnd.round_id))
        ctx, doc, base, _size = self._secure_context(rnd)
        assert doc.secagg is not None
        path = self._masked_file(rid)
        blob = path.read_bytes() if state.masked_digest is not None and path.is_file() else None
        loss, train_s = None, 0.0
        if blob is not None and sha256_digest(blob) == bytes(state.masked_digest or b""):
            log.info("round %d: committing the masked input kept in %s", rid, path)
            downloaded = 0
        elif state.erased:
            self._secure_finish(rid, "skipped", f"skipped: the masked input {path} is gone and the round's secrets "
                                                "were erased; it cannot be made again")
            return None
        else:
            roster = self._secure_roster(ctx, rid)
            downloaded = sum(len(ad.to_bytes()) for ad in roster.advertisements.values())
            if state.index not in roster.advertisements:
                self._secure_finish(rid, "skipped", "skipped: our own advertisement is not among the round's accepted "
                                                    "advertisements")
                return None
            x, y = self.load_data(doc.schema())
            history = self.require_privacy_budget(doc, rid)
            t0 = time.perf_counter()
            update, new_state, loss = self._train(doc, rnd, base, x, y)
            train_s = time.perf_counter() - t0
            claim = self._privacy_claim(doc, rid, history, update)
            ring = quantise_delta(update.model_tensors, doc.secagg, clip=doc.privacy is None)
            blob = mask_input(ctx, state.secrets, roster, ring).to_bytes()
            digest, samples = sha256_digest(blob), int(update.num_samples)
            _write_private(path, blob)
            state = replace(state, masked_digest=digest, num_samples=samples,
                            metadata_digest=masked_metadata_digest(rid, rnd.base_model_digest, digest, samples),
                            epsilon_spent=claim[0] if claim else None, accountant_digest=claim[1] if claim else None)
            self._save_secure(state)
            self._save_pending_state(rid, new_state)
            self._rosters[int(rid)] = roster
        assert state.masked_digest is not None and state.num_samples is not None and state.metadata_digest is not None
        digest, samples, meta, claim = state.masked_digest, state.num_samples, state.metadata_digest, state.claim()
        cid = self.store.put(blob)
        log.info("round %d: stored masked input %s", rid, cid)
        _test_crash_point("secagg_masked_stored")
        report = self._journaled_commit(rnd, digest, cid, samples, meta, claim)
        if isinstance(report, UpdateCommitment):
            return self._found_on_chain(rnd, report, loss, train_s)
        result = SubmitResult(rid, self.address, digest, cid, samples, False, report.gas_used, report.tx_hash, loss,
                              len(blob), train_s, downloaded,
                              function="commitUpdate" if claim is None else "commitPrivateUpdate")
        self._journal_commit(JournalEntry("committed", rid, self.address, digest, cid, samples, meta,
                                          rnd.base_model_digest, report.tx_hash, report.block_number, result=result,
                                          epsilon_spent=claim[0] if claim else None,
                                          accountant_digest=claim[1] if claim else None))
        log.info("round %d: committed masked input %s gas=%d tx=%s", rid, cid, report.gas_used, report.tx_hash)
        return result

    def _post_unmasking(self, rnd: RoundRecord, state: SecureRoundState) -> SubmitResult | None:
        """Post the unmasking shares once the commit phase is over: the self-seed share of each committer this
        participant holds shares of, the mask-key share of each advertiser that did not commit. Computed once and
        written to the round file before it is stored or posted; a restart posts those bytes again."""
        rid = RoundId(int(rnd.round_id))
        ledger = self._secure_ledger()
        ctx, _doc, _base, _size = self._secure_context(rnd)
        if state.unmasking is not None:
            blob = state.unmasking
            log.info("round %d: posting the unmasking shares kept in %s", rid, self._secure_file(rid))
        else:
            if self.secagg_key is None:
                self._secure_finish(rid, "skipped", "skipped: this agent holds no X25519 private key (secagg_key) to "
                                                    "open its shares with")
                return None
            roster = self._rosters.get(int(rid)) or self._secure_roster(ctx, rid)
            survivors = sorted(i for i in (index_of(ctx, c.participant) for c in self.ledger.commitments(rid))
                               if i is not None)
            record = unmask_shares(ctx, state.secrets, self.secagg_key, roster, survivors)
            blob = record.to_bytes()
            # the masked input and this record are all the round still needs: the secrets that unmask our input
            # (with the public records) are erased as the record is saved
            self._save_secure(replace(state, unmasking=blob, mask_private=b"", self_seed=b""))
        _test_crash_point("secagg_unmasking_saved")
        digest = sha256_digest(blob)
        cid = self.store.put(blob)
        try:
            report = ledger.post_unmasking_shares(rid, digest, cid)
        except FederationDuplicateUnmaskingShares:
            self._secure_finish(rid)
            return None
        self.journal.append(JournalEntry("unmasked", rid, self.address, digest, cid, None, None, rnd.base_model_digest,
                                         report.tx_hash, report.block_number))
        log.info("round %d: posted unmasking shares %s (%d reveal(s)) gas=%d tx=%s", rid, cid,
                 len(UnmaskingShares.from_bytes(blob).reveals), report.gas_used, report.tx_hash)
        self._secure_finish(rid)
        return SubmitResult(rid, self.address, digest, cid, 0, False, report.gas_used, report.tx_hash, None, len(blob),
                            0.0, function="postUnmaskingShares")

    # --- the journal and a rewound chain -------------------------------------------------
    def _journal_commit(self, entry: JournalEntry) -> None:
        self.journal.append(entry)
        self._commits[int(entry.round_id)] = entry

    def _found_on_chain(self, rnd: RoundRecord, existing: UpdateCommitment, loss: float | None,
                        train_s: float) -> SubmitResult:
        """The result of a round whose commitment an earlier attempt made; journaled once."""
        result = SubmitResult(
            rnd.round_id, self.address, existing.update_digest, existing.cid, existing.num_samples,
            True, 0, existing.tx_hash, loss, 0, train_s,
        )
        known = self._commits.get(int(rnd.round_id))
        if known is None or known.tx_hash != existing.tx_hash:
            self._journal_commit(JournalEntry(
                "committed", rnd.round_id, self.address, existing.update_digest, existing.cid, existing.num_samples,
                existing.metadata_digest, rnd.base_model_digest, existing.tx_hash, existing.block_number, result=result,
            ))
        return result

    def recommit_lost(self, rnd: RoundRecord) -> SubmitResult | None:
        """Commit again, loudly, a journaled commitment that the chain no longer has while its
        round is still open (the chain was rewound: a devnet restored from an older state).

        The same update is committed when the round still starts from the model the journal
        names and the store still holds the blob; otherwise the journaled commit is dropped
        (with a warning) and the agent takes part in the round anew. None when there is
        nothing to commit again."""
        rid = RoundId(int(rnd.round_id))
        entry = self._commits.get(int(rid))
        if entry is None or rnd.status != RoundStatus.OPEN or rnd.signed or self.own_commitment(rid) is not None:
            return None  # a signed round's forced commit is made once, within its escape window
        if rnd.secure:  # the masked input (and the advertisement before it) is committed again from the round file
            log.warning("round %d: journaled masked-input commit tx %s is missing from the chain (the chain was "
                        "rewound?); the secure round's steps are taken again from %s", rid, entry.tx_hash,
                        self._secure_file(rid))
            del self._commits[int(rid)]
            self._secure_done.discard(int(rid))
            return None
        if rnd.commit_reveal:  # the reveal was lost: reveal (or seal) again from the journaled seal
            log.warning("round %d: journaled reveal tx %s is missing from the chain (the chain was rewound?); "
                        "revealing it again", rid, entry.tx_hash)
            del self._commits[int(rid)]
            return self._already_sealed(rnd) or self.reveal(rid)
        if (entry.update_digest is None or entry.cid is None or entry.num_samples is None
                or entry.metadata_digest is None or entry.base_model_digest is None):
            log.warning("round %d: journaled commit tx %s is missing from the chain and the journal lacks its "
                        "details; taking part anew", rid, entry.tx_hash)
            del self._commits[int(rid)]
            return None
        if bytes(entry.base_model_digest) != bytes(rnd.base_model_digest):
            log.warning("round %d: journaled commit tx %s is missing from the chain, and the round now starts from "
                        "model %s, not %s (the chain was rewound and the round opened again); taking part anew",
                        rid, entry.tx_hash, digest_hex(rnd.base_model_digest), digest_hex(entry.base_model_digest))
            del self._commits[int(rid)]
            return None
        if not self.store.has(entry.cid):
            log.warning("round %d: journaled commit tx %s is missing from the chain and its blob %s is not in the "
                        "store any more; taking part anew", rid, entry.tx_hash, entry.cid)
            del self._commits[int(rid)]
            return None
        log.warning("round %d: journaled commit tx %s (update %s) is missing from the chain (the chain was "
                    "rewound?); committing it again", rid, entry.tx_hash, entry.cid)
        claim = (None if entry.epsilon_spent is None or entry.accountant_digest is None
                 else (int(entry.epsilon_spent), entry.accountant_digest))
        try:
            report = self._commit(rid, entry.update_digest, entry.cid, entry.num_samples, entry.metadata_digest, claim)
        except FederationDuplicateCommit:
            existing = self.own_commitment(rid)
            if existing is None:
                raise
            return self._found_on_chain(rnd, existing, None, 0.0)
        result = SubmitResult(rid, self.address, entry.update_digest, entry.cid, entry.num_samples, False,
                              report.gas_used, report.tx_hash, None, 0, 0.0,
                              function="commitUpdate" if claim is None else "commitPrivateUpdate")
        self._journal_commit(JournalEntry(
            "recommitted", rid, self.address, entry.update_digest, entry.cid, entry.num_samples, entry.metadata_digest,
            entry.base_model_digest, report.tx_hash, report.block_number,
            reason=f"journaled commit tx {entry.tx_hash} was missing from the chain", result=result,
            epsilon_spent=entry.epsilon_spent, accountant_digest=entry.accountant_digest,
        ))
        log.warning("round %d: committed %s again in tx %s%s", rid, entry.cid, report.tx_hash,
                    " (the lost transaction, sent again)" if report.tx_hash == entry.tx_hash else "")
        return result

    # --- differential privacy ----------------------------------------------------------------
    def _journaled_commit(self, rnd: RoundRecord, digest: Digest, cid: Cid, samples: int, meta: Digest,
                          claim: tuple[int, Digest] | None) -> TxReport | UpdateCommitment:
        """Journal the intent, then commit; the commitment already on chain when an earlier attempt (a lost
        receipt, a restart) made it: that commitment stands."""
        rid = RoundId(int(rnd.round_id))
        self.journal.append(JournalEntry("intent", rid, self.address, digest, cid, samples, meta,
                                         rnd.base_model_digest, epsilon_spent=claim[0] if claim else None,
                                         accountant_digest=claim[1] if claim else None))
        try:
            return self._commit(rid, digest, cid, samples, meta, claim)
        except FederationDuplicateCommit:
            existing = self.own_commitment(rid)
            if existing is None:
                raise
            log.info("round %d: already committed %s (tx %s)", rid, existing.cid, existing.tx_hash)
            return existing

    def _commit(self, rid: RoundId, digest: Digest, cid: Cid, samples: int, meta: Digest,
                claim: tuple[int, Digest] | None) -> TxReport:
        """``commitUpdate``, or ``commitPrivateUpdate`` with the privacy claim of a private task's round."""
        if claim is None:
            return self.ledger.commit_update(rid, digest, cid, samples, meta)
        return self.ledger.commit_private_update(rid, digest, cid, samples, meta, claim[0], claim[1])

    def privacy_history(self, before: RoundId | None = None) -> list[AccountantInputs]:
        """The accountant inputs of this participant's private commitments so far (before round ``before``),
        oldest first, from the chain: each round's inputs are those of the policy of the round's task version,
        checked against the accountant digest the commitment carries (the update's extras otherwise)."""

        out: list[AccountantInputs] = []
        mine = self.address.lower()
        for event in self.ledger.history():
            if not isinstance(event, PrivacySpent) or event.participant.lower() != mine:
                continue
            if before is not None and int(event.round_id) >= int(before):
                continue
            cached = self._privacy_inputs.get(int(event.round_id))
            if cached is None:
                cached = self._round_inputs(RoundId(int(event.round_id)), event.accountant_digest)
                self._privacy_inputs[int(event.round_id)] = cached
            out.append(cached)
        return out

    def _round_inputs(self, rid: RoundId, accountant_digest: Digest) -> AccountantInputs:
        from fedchain.fl.privacy import AccountantInputs

        rnd = self.ledger.round(rid)
        doc = self.task_document(int(rnd.task_version))
        if doc.privacy is not None:
            inputs = doc.privacy.round_inputs(doc.local_epochs())
            if bytes(inputs.digest()) == bytes(accountant_digest):
                return inputs
        mine = self.own_commitment(rid) if not rnd.secure else None  # a masked input is not a ClientUpdate
        if mine is not None:
            from_blob = AccountantInputs.from_extras(decode_update(self.store.get(mine.cid)).extras)
            if from_blob is not None and bytes(from_blob.digest()) == bytes(accountant_digest):
                return from_blob
        raise PrivacyError(
            f"round {rid}: this participant's commitment carries accountant digest {digest_hex(accountant_digest)}, "
            f"which neither the task's policy nor the committed update's inputs give"
        )

    def require_privacy_budget(self, doc: TaskDocument, rid: RoundId) -> list[AccountantInputs] | None:
        """Under a privacy policy: this participant's history before round ``rid``; PrivacyBudgetError when one
        more round would take its cumulative epsilon past the budget (the agent stops before training it).
        None without a policy."""
        from fedchain.fl.privacy import epsilon, epsilon_fixed

        policy = doc.privacy
        if policy is None:
            return None
        history = self.privacy_history(before=rid)
        spent = epsilon(history)
        after = epsilon(history + [policy.round_inputs(doc.local_epochs())])
        if epsilon_fixed(after) > policy.budget_fixed():
            raise PrivacyBudgetError(
                f"round {rid}: taking part would take this participant's epsilon from {spent:.4f} to {after:.4f}, "
                f"past the task's budget of {policy.epsilon_budget:g} (delta {policy.delta:g}); it stops here"
            )
        return history

    def _privacy_claim(self, doc: TaskDocument, rid: RoundId, history: list[AccountantInputs] | None,
                       update: ClientUpdate) -> tuple[int, Digest] | None:
        """The (cumulative epsilon, accountant digest) to commit with the update of a private round."""
        from fedchain.fl.privacy import AccountantInputs, epsilon, epsilon_fixed

        if doc.privacy is None or history is None:
            return None
        inputs = AccountantInputs.from_extras(update.extras)
        if inputs is None:
            raise PrivacyError(f"round {rid}: the private task's training produced an update without accountant inputs")
        claim = max(epsilon_fixed(epsilon([*history, inputs])), int(self.ledger.epsilon_spent(self.address)))
        self._privacy_inputs[int(rid)] = inputs
        return claim, inputs.digest()

    def task_document(self, version: int | None = None) -> TaskDocument:
        """The task document of ``version`` (default: current), verified against the chain once."""
        task = self.ledger.task()
        if task is None:
            raise TaskNotConfiguredError("no task is configured on the federation contract yet "
                                         "(fedchain admin configure-task)")
        if version is not None and int(task.version) != int(version):
            task = task_version(self.ledger, version)
        key = (int(task.version), str(task.config_cid))
        if key not in self._tasks:
            doc = load_task_document(self.ledger, self.store, int(task.version))[1]
            # a model defined in a Python file runs only when its digest is one this participant trusts
            load_model_source(doc, self.store, self.trusted_models)
            self._tasks[key] = doc
        return self._tasks[key]

    def _fetch_base(self, rnd: RoundRecord) -> tuple[GlobalModel, int]:
        data = self.store.get(rnd.base_model_cid)
        from fedchain.codec.canonical import sha256_digest

        actual = sha256_digest(data)
        if actual != bytes(rnd.base_model_digest):
            raise IntegrityError(
                f"round {rnd.round_id}: global model {rnd.base_model_cid} has digest {digest_hex(actual)}, "
                f"the chain records {digest_hex(rnd.base_model_digest)}"
            )
        return decode_global(data), len(data)

    def _train(self, doc: TaskDocument, rnd: RoundRecord, base: GlobalModel, x: np.ndarray,
               y: np.ndarray) -> tuple[ClientUpdate, ClientState, float | None]:
        from fedchain.protocol.training import train_participant

        seed = training_seed(doc.seed, int(rnd.round_id), self.address)
        update, new_state, metrics = train_participant(
            doc,
            round_id=RoundId(int(rnd.round_id)),
            participant=self.address,
            base=base,
            base_model_digest=rnd.base_model_digest,
            x=x,
            y=y,
            seed=seed,
            client_state=self._load_state(),
            attack=self.attack,
        )
        loss = metrics.get("loss") if isinstance(metrics, dict) else None
        return update, new_state, (float(loss) if loss is not None else None)

    # --- client state (SCAFFOLD c_i) ------------------------------------------------------
    def _state_file(self, suffix: str) -> Path:
        return self.state_dir / f"client_state{suffix}.npz"

    def _load_state(self) -> ClientState:
        from fedchain.protocol.training import load_client_state

        return load_client_state(self._state_file(""))

    def _save_pending_state(self, round_id: RoundId, state: ClientState) -> None:
        from fedchain.protocol.training import save_client_state

        private_dir(self.state_dir)  # participant data: the owner's only (0700)
        save_client_state(self._state_file(f".pending-{int(round_id)}"), state)

    def settle_state(self) -> None:
        """Settle the client state of rounds that are over.

        The client state a round's training produced (SCAFFOLD's c_i) is kept aside as
        ``.pending-N`` until round N ends: it becomes the current state only when the round was
        finalised with this participant's update included (so the server's c stays the mean of
        the included clients' c_i); it is discarded when the update was left out, when the round
        closed without a model, or when this participant never committed in round N (an
        interrupted attempt). A pending state of a round still open with our commitment is kept.
        Rounds are settled in order, so the latest included round wins."""
        if not self.state_dir.is_dir():
            return
        pending = sorted(
            (int(m.group(1)), path)
            for path in self.state_dir.iterdir()
            if (m := _PENDING_STATE.match(path.name)) is not None
        )
        for round_id, path in pending:
            rid = RoundId(round_id)
            if round_id not in self._signed and self.own_commitment(rid) is None:  # signed: no on-chain commitment
                if (round_id in self._commits or round_id in self._seals) and self._open(rid):
                    continue  # a commit the chain lost (recommit_lost), or a sealed update still to reveal
                log.info("round %d: discarding the client state of an uncommitted update", round_id)
                path.unlink()
                continue
            rnd = self.ledger.round(rid)
            if rnd.status == RoundStatus.OPEN:
                continue
            if rnd.status == RoundStatus.FINALIZED and self._included(rnd):
                log.info("round %d: our update was included; adopting its client state", round_id)
                path.replace(self._state_file(""))
            else:
                log.info("round %d: our update was not included; keeping the previous client state", round_id)
                path.unlink()

    def _open(self, round_id: RoundId) -> bool:
        if int(self.ledger.latest_round_id()) < int(round_id):
            return False
        return self.ledger.round(round_id).status == RoundStatus.OPEN

    def _included(self, rnd: RoundRecord) -> bool:
        """Whether the round's evidence document lists this participant as included. Evidence
        that does not match the digest on chain counts as not included (the audit reports it)."""
        evidence = self._evidence(rnd)
        return evidence is not None and any(u.participant.lower() == self.address.lower() for u in evidence.included)

    # --- finalised rounds: live verification and exclusion contests ------------------------
    def check_finalised_rounds(self, known: RoundRecord | None = None) -> bool:
        """Deal once with every round this participant committed in that has ended: when it was
        finalised with our update included, call the verifier hook (the members' live
        verification, before we train on its model); when it was finalised without our update
        because the aggregator could not fetch the blob, contest the exclusion on chain
        (:meth:`contest_exclusion`). Each outcome is journaled, so a restart does not attest or
        contest again. While ``verify_now`` says no (the CLI's default: no verification policy
        on chain), the latest such round waits, unjournaled, and is verified once it says yes (a
        policy set by a vote holds the next round until the current model's round is attested).
        A verifier that fails for another reason than an outage is logged and tried again at the
        next look, :data:`VERIFY_ATTEMPTS` times in all.

        ``known``: a round just read (the caller's look at the latest round), used instead of
        reading it again, so that an agent waiting in an open round reads nothing here. True
        when a round was dealt with (the caller's ``known`` may be out of date)."""
        acted = False
        if self._deferred is not None and (self.verify_now is None or self.verify_now()):
            self._settled.discard(self._deferred)
            self._deferred = None
        for round_id in sorted(self._commits):
            if round_id in self._settled:
                continue
            rid = RoundId(round_id)
            rnd = known if known is not None and int(known.round_id) == round_id else self.ledger.round(rid)
            if rnd.status == RoundStatus.OPEN:
                continue
            acted = True
            mine = self.own_commitment(rid) if rnd.status == RoundStatus.FINALIZED else None
            if mine is None:
                self._settle(JournalEntry("excluded", rid, self.address,
                                          reason=f"round {RoundStatus(rnd.status).name.lower()} without our update"))
                continue
            evidence = self._evidence(rnd)
            if evidence is not None and any(u.participant.lower() == self.address.lower() for u in evidence.included):
                self._verify(rnd, mine)
                continue
            if rnd.secure:  # the aggregator never sees a masked input alone: there is no exclusion to contest
                why = ("the secure round's evidence does not list us among the survivors whose inputs were unmasked"
                       if evidence is not None else "the evidence cannot be read")
                log.warning("round %d was finalised without our masked input %s: %s", rid, mine.cid, why)
                self._settle(JournalEntry("excluded", rid, self.address, mine.update_digest, mine.cid, reason=why))
                continue
            self.contest_exclusion(rnd, mine, evidence)
        return acted

    def _verify(self, rnd: RoundRecord, mine: UpdateCommitment) -> None:
        """Call the verifier hook on a finalised round we were included in, once."""
        rid = int(rnd.round_id)
        if self.verifier is None:
            self._settled.add(rid)  # nothing to do, nothing to journal
            return
        if self.verify_now is not None and not self.verify_now():
            if self._deferred is not None and self._deferred < rid:
                self._settled.add(self._deferred)  # only the latest waits: older models are not built on
            self._deferred = rid
            self._settled.add(rid)
            return
        try:
            self.task_document(int(rnd.task_version))  # the replay builds the round's model: only a trusted one
            self.verifier(rnd)
        except FederationAlreadyAttested:
            log.info("round %d: already attested", rid)
        except _TRANSIENT_ERRORS:
            raise
        except FedchainError as err:
            self._verify_failures[rid] = self._verify_failures.get(rid, 0) + 1
            if self._verify_failures[rid] < VERIFY_ATTEMPTS:
                log.warning("round %d: live verification failed (attempt %d of %d): %s", rid,
                            self._verify_failures[rid], VERIFY_ATTEMPTS, err)
                return
            log.error("round %d: live verification failed %d times; giving up on it: %s", rid, VERIFY_ATTEMPTS, err)
            self._settle(JournalEntry("verified", RoundId(rid), self.address, mine.update_digest, mine.cid,
                                      reason=f"verification failed: {err}"))
            return
        self._settle(JournalEntry("verified", RoundId(rid), self.address, mine.update_digest, mine.cid,
                                  reason="verifier called"))

    # --- rewards ------------------------------------------------------------------------------
    def claim_outstanding_rewards(self, timeout_s: float = 60.0) -> list[JournalEntry]:
        """Claim (:meth:`claim_rewards`) until every finalised round this participant committed in
        is dealt with, waiting on new blocks for rewards the aggregator publishes just after a
        round ends (an agent that stops with the last round would otherwise leave its last reward
        unclaimed), for at most ``timeout_s`` seconds. Returns the entries journaled."""
        if self.incentives is None or int(self.incentives.reward_budget()) == 0:
            return self.claim_rewards()  # without a budget nothing more gets published
        deadline = time.monotonic() + timeout_s
        out: list[JournalEntry] = []
        seen = self.ledger.block_number()
        while True:
            out += self.claim_rewards()
            waiting = [r for r in sorted(self._commits) if r not in self._rewarded and r not in self._no_rewards]
            if not waiting:
                return out
            if time.monotonic() > deadline:
                log.warning("rewards of round(s) %s not published within %.0f s; not claimed",
                            ", ".join(map(str, waiting)), timeout_s)
                return out
            seen = self.ledger.wait_for_block(seen, min(1.0, max(0.0, deadline - time.monotonic())))

    def claim_rewards(self) -> list[JournalEntry]:
        """Claim the reward of every finalised round this participant committed in whose rewards
        are published and not yet dealt with: the scores blob is fetched and checked against
        the digest and root on chain, and the amount it owes us is claimed with its Merkle
        proof. Each outcome is journaled (``claimed``, or ``unrewarded`` with a warning when the
        blob owes us nothing, or with an error when the contract refuses the claim: the round's
        budget is spent, say), so a restart claims nothing twice; a claim already on chain is
        journaled without a transaction. Returns the entries journaled now."""
        if self.incentives is None:
            return []
        out: list[JournalEntry] = []
        for round_id in sorted(self._commits):
            if round_id in self._rewarded or round_id in self._no_rewards:
                continue
            rid = RoundId(round_id)
            rnd = self.ledger.round(rid)
            if rnd.status != RoundStatus.FINALIZED:
                if rnd.status != RoundStatus.OPEN:
                    self._no_rewards.add(round_id)  # closed or disputed: no rewards
                continue
            if self.task_document(rnd.task_version).rewards is None:
                self._no_rewards.add(round_id)
                continue
            published = self.incentives.round_rewards(round_id)
            if published is None:
                continue  # not yet published
            entry = self._claim(rid, published)
            if entry is not None:
                self.journal.append(entry)
                self._rewarded.add(round_id)
                out.append(entry)
        return out

    def _claim(self, rid: RoundId, published: RoundRewardsView) -> JournalEntry | None:
        assert self.incentives is not None
        found = scores_publication(self.incentives, rid)
        if found is None:
            log.warning("round %d: rewards are published but their scores blob is not in the history yet", rid)
            return None
        digest, cid = found
        data = self.store.get(cid)
        if bytes(sha256_digest(data)) != bytes(digest):
            log.error("round %d: scores blob %s does not match its digest on chain; not claiming", rid, cid)
            return None
        try:
            doc = RoundRewardsDoc.from_bytes(data)
        except BlobFormatError as err:
            log.error("round %d: scores blob %s is malformed (%s); not claiming", rid, cid, err)
            return None
        if bytes(doc.root) != bytes(published.root) or int(doc.round_id) != int(rid):
            log.error("round %d: scores blob %s is not the one whose root is on chain; not claiming", rid, cid)
            return None
        mine = doc.entry(self.address)
        if mine is None or mine.amount == 0:
            why = "not listed" if mine is None else f"score {score_text(mine.score)}"
            log.warning("round %d: the scores blob %s owes %s nothing (%s)", rid, cid, self.address, why)
            return JournalEntry("unrewarded", rid, self.address, cid=cid, amount=0, reason=f"nothing owed: {why}")
        if self.incentives.has_claimed(int(rid), self.address):
            log.info("round %d: reward of %d already claimed", rid, mine.amount)
            return JournalEntry("claimed", rid, self.address, cid=cid, amount=mine.amount, reason="already claimed")
        try:
            report = self.incentives.claim(int(rid), mine.amount, doc.proof(self.address))
        except ClaimError as err:  # the contract's verdict (the round's budget spent, say): asking again changes nothing
            log.error("round %d: the claim of %d was refused: %s", rid, mine.amount, err)
            return JournalEntry("unrewarded", rid, self.address, cid=cid, amount=0, reason=f"claim refused: {err}")
        log.info("round %d: claimed a reward of %d (tx %s, gas %d)", rid, mine.amount, report.tx_hash, report.gas_used)
        return JournalEntry("claimed", rid, self.address, cid=cid, tx_hash=report.tx_hash,
                            block_number=report.block_number, amount=mine.amount)

    def _settle(self, entry: JournalEntry) -> None:
        self.journal.append(entry)
        self._settled.add(int(entry.round_id))

    def _evidence(self, rnd: RoundRecord) -> Evidence | None:
        """The round's evidence document, checked against its digest on chain (None, logged,
        when it does not match or does not decode: the audit reports it)."""
        if rnd.evidence_cid is None:
            return None
        data = self.store.get(rnd.evidence_cid)
        if sha256_digest(data) != bytes(rnd.evidence_digest):
            log.warning("round %d: evidence %s does not match its digest on chain", rnd.round_id, rnd.evidence_cid)
            return None
        try:
            return Evidence.from_bytes(data)
        except BlobFormatError as err:
            log.warning("round %d: evidence %s is malformed: %s", rnd.round_id, rnd.evidence_cid, err)
            return None

    def contest_exclusion(self, rnd: RoundRecord, mine: UpdateCommitment, evidence: Evidence | None) -> TxReport | None:
        """Contest our exclusion from finalised round ``rnd`` when its evidence gives
        ``blob_unavailable`` as the reason: re-pin the committed blob (it must still hash to the
        committed digest) and announce it on chain, within the window (until the round after
        next opens). Journaled as ``contested``, or ``excluded`` with the reason when there is
        nothing to contest or it cannot be. Returns the contest's transaction, if one was sent."""
        rid = RoundId(int(rnd.round_id))
        rejected = [r for r in (evidence.rejected if evidence is not None else ()) if r.participant.lower()
                    == self.address.lower()]
        unavailable = next((r for r in rejected if r.rule == RULE_BLOB_UNAVAILABLE), None)
        if unavailable is None:
            why = (f"rejected by {', '.join(sorted({r.rule for r in rejected}))}" if rejected
                   else "the evidence neither includes nor rejects our update" if evidence is not None
                   else "the evidence cannot be read")
            log.warning("round %d was finalised without our update %s: %s", rid, mine.cid, why)
            self._settle(JournalEntry("excluded", rid, self.address, mine.update_digest, mine.cid, reason=why))
            return None
        latest = int(self.ledger.latest_round_id())
        if latest > int(rid) + 1:
            why = f"left out as unavailable ({unavailable.reason}); too late to contest: round {latest} is open"
            log.warning("round %d: %s", rid, why)
            self._settle(JournalEntry("excluded", rid, self.address, mine.update_digest, mine.cid, reason=why))
            return None
        if self.ledger.contest_of(rid, self.address) != 0:
            self._settle(JournalEntry("contested", rid, self.address, mine.update_digest, mine.cid,
                                      reason="contested already (found on chain)"))
            return None
        try:
            self.store.pin(mine.cid)
            intact = sha256_digest(self.store.get(mine.cid)) == bytes(mine.update_digest)
        except (BlobNotFoundError, IntegrityError) as err:
            intact, detail = False, str(err)
        else:
            detail = "its bytes do not hash to the committed digest"
        if not intact:
            why = f"left out as unavailable ({unavailable.reason}), and our store cannot serve the blob now: {detail}"
            log.warning("round %d: %s", rid, why)
            self._settle(JournalEntry("excluded", rid, self.address, mine.update_digest, mine.cid, reason=why))
            return None
        try:
            report = self.ledger.contest_exclusion(rid, mine.update_digest, mine.cid)
        except FederationAlreadyContested:
            report = None
        except FederationContestWindowClosed as err:
            log.warning("round %d: too late to contest our exclusion: %s", rid, err)
            self._settle(JournalEntry("excluded", rid, self.address, mine.update_digest, mine.cid, reason=str(err)))
            return None
        log.warning("round %d: the aggregator left our update out as unavailable (%s); re-pinned %s and contested "
                    "the exclusion on chain%s", rid, unavailable.reason, mine.cid,
                    f" (tx {report.tx_hash})" if report is not None else " (already contested)")
        self._settle(JournalEntry("contested", rid, self.address, mine.update_digest, mine.cid,
                                  tx_hash=report.tx_hash if report is not None else None,
                                  block_number=report.block_number if report is not None else None,
                                  reason=unavailable.reason))
        return report

    # --- agent loop ------------------------------------------------------------------------
    def run(
        self,
        *,
        until_round: int | None = None,
        max_idle_s: float | None = None,
        on_result: Callable[[SubmitResult], None] | None = None,
        on_ready: Callable[[], None] | None = None,
        wait_for_end: bool = False,
    ) -> list[SubmitResult]:
        """Watch the ledger and take part in every open round.

        Checks first that it is admitted and, when a task is configured, that its data matches
        the task's schema (failing fast, before any round); then calls ``on_ready``. Returns
        after taking part in (or seeing the end of) ``until_round`` - with ``wait_for_end``,
        only once that round has ended, so that a commit the chain loses meanwhile is made
        again - or after ``max_idle_s`` seconds without anything to do.

        Every commit is journaled (:class:`TxJournal`); while a round it committed in is open,
        the agent checks that the chain still holds the commit and commits it again, loudly,
        when it does not (:meth:`recommit_lost`). A late commit skips the round with one
        warning. An unreachable chain or store is ridden out with bounded backoff for up to
        ``max_outage_s`` seconds, calling ``on_outage`` before each retry.
        """
        outage = OutageClock(self.poll_interval_s, self.max_outage_s)
        while True:  # the start-up checks ride out an unreachable chain or store as the rounds do
            try:
                self._check_ready()
                break
            except _TRANSIENT_ERRORS as err:
                outage.failed(err)
                self._outage_hook()
        outage.recovered()
        if on_ready is not None:
            on_ready()
        results: list[SubmitResult] = []
        done: set[int] = set()
        idle_since = time.monotonic()
        seen = -1
        while True:
            try:
                if seen < 0:
                    seen = self.ledger.block_number()
                finished = self._step(until_round, done, results, on_result, wait_for_end)
                if not finished:
                    idle_since = max(idle_since, self._last_progress)
                    if max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                        return results
                    # nothing on the ledger changes without a new block: wait for one, not a timer
                    wait = self.block_wait_s if max_idle_s is None else max(0.0, min(self.block_wait_s, max_idle_s))
                    seen = self.ledger.wait_for_block(seen, wait)
            except _TRANSIENT_ERRORS as err:
                outage.failed(err)
                seen = -1  # a restarted chain may be lower than the block seen before
                self._outage_hook()
                continue
            outage.recovered()
            if finished:
                return results

    def _check_ready(self) -> None:
        """What :meth:`run` checks before it watches: admitted, its state settled, and, when a task is configured,
        its data against the task's schema (one dry training step)."""
        self.require_active()
        self.settle_state()
        if self.ledger.task() is not None:
            doc = self.task_document()
            x, y = self.load_data(doc.schema())
            _dry_run(doc, x, y, self.address)
        else:
            self.load_data()

    def _outage_hook(self) -> None:
        if self.on_outage is None:
            return
        try:
            self.on_outage()
        except FedchainError as err:
            log.warning("could not look the services up again: %s", err)

    def _step(self, until_round: int | None, done: set[int], results: list[SubmitResult],
              on_result: Callable[[SubmitResult], None] | None, wait_for_end: bool = False) -> bool:
        """One look at the ledger: take part in the latest round if it is open and new to us,
        and, while a round we committed in is open, check that the chain still holds our commit
        (:meth:`recommit_lost`). Returns True when the agent is done: ``until_round`` taken
        part in (and, with ``wait_for_end``, ended) or over."""
        latest = int(self.ledger.latest_round_id())
        if until_round is not None and latest > until_round:
            return True
        if latest < 1:
            return False
        rid = RoundId(latest)
        latest_round = self.ledger.round(rid)
        acted = self.check_finalised_rounds(latest_round)  # verify a finalised round before training on its model
        if self.incentives is not None:
            acted = bool(self.claim_rewards()) or acted
        if acted:  # time has passed: look again
            latest_round = self.ledger.round(rid)
        if latest_round.secure:
            return self._secure_watch(latest_round, until_round, done, results, on_result, wait_for_end)
        if latest not in done:
            rnd = latest_round
            if rnd.status == RoundStatus.OPEN:
                try:
                    res = self.submit(rid)
                except _MISSED_ROUND_ERRORS as err:
                    # the contract's verdict: the commit phase ended before our commit; not a failure
                    log.warning("round %d: skipped, the round no longer takes commits: %s", latest, err)
                    self.journal.append(JournalEntry("skipped", rid, self.address, reason=str(err)))
                except RoundNotOpenError as err:
                    log.warning("round %d: skipped: %s", latest, err)
                    self.journal.append(JournalEntry("skipped", rid, self.address, reason=str(err)))
                else:
                    self._report(res, results, on_result)
                done.add(latest)
                self._last_progress = time.monotonic()
            elif until_round is not None and latest >= until_round:
                return True
            return (until_round is not None and latest == until_round and latest in done and not wait_for_end
                    and not self._pending_reveal(latest) and not self._pending_set_check(latest))
        if self._pending_set_check(latest):  # a signed round we signed in: does the posted set hold our commitment?
            forced = self.check_signed_inclusion(self.ledger.round(rid))
            if forced is not None:
                self._report(forced, results, on_result)
                self._last_progress = time.monotonic()
            return (until_round is not None and latest == until_round and not wait_for_end
                    and not self._pending_set_check(latest))
        if self._pending_reveal(latest):  # a commit-reveal round we sealed in: reveal once the commit phase is over
            rnd = self.ledger.round(rid)
            if rnd.status == RoundStatus.OPEN:
                try:
                    revealed = self.reveal(rid)
                except (*_MISSED_ROUND_ERRORS, ParticipantError) as err:
                    log.warning("round %d: skipped, our sealed update cannot be revealed: %s", latest, err)
                    self.journal.append(JournalEntry("skipped", rid, self.address, reason=str(err)))
                    del self._seals[latest]
                else:
                    if revealed is not None:
                        self._report(revealed, results, on_result)
                        self._last_progress = time.monotonic()
            else:
                log.warning("round %d ended (%s) before our sealed update was revealed", latest,
                            RoundStatus(rnd.status).name.lower())
                del self._seals[latest]
            return (until_round is not None and latest == until_round and not wait_for_end
                    and not self._pending_reveal(latest))
        if latest in self._commits:  # we committed in the latest round: does the chain still hold it?
            rnd = latest_round
            if rnd.status == RoundStatus.OPEN:
                again = self.recommit_lost(rnd)
                if again is not None:
                    self._report(again, results, on_result)
                    self._last_progress = time.monotonic()
                elif latest not in self._commits and not self._pending_reveal(latest):
                    done.discard(latest)  # the journaled commit does not apply any more: take part anew
                    return False
            elif until_round is not None and latest == until_round:
                return True
            return until_round is not None and latest == until_round and not wait_for_end
        if until_round is not None and latest == until_round:
            return not wait_for_end or self.ledger.round(rid).status != RoundStatus.OPEN
        return False

    def _secure_watch(self, rnd: RoundRecord, until_round: int | None, done: set[int], results: list[SubmitResult],
                      on_result: Callable[[SubmitResult], None] | None, wait_for_end: bool) -> bool:
        """:meth:`_step` in a secure round: take the steps due now (:meth:`secure_step`). Done with
        ``until_round`` once it ended, or (without ``wait_for_end``) once this participant has nothing more to
        do in it: its unmasking shares posted, or its part over (skipped, dropped out)."""
        latest = int(rnd.round_id)
        if rnd.status == RoundStatus.OPEN and not self._secure_pending(latest) and latest in self._commits:
            self.recommit_lost(rnd)  # a chain that lost our masked input: the round's steps are taken again
        if rnd.status == RoundStatus.OPEN and self._secure_pending(latest):
            acted = self.secure_step(rnd.round_id)
            for res in acted:
                self._report(res, results, on_result)
            if acted:
                self._last_progress = time.monotonic()
            done.add(latest)
        if until_round is None or latest != until_round:
            return False
        if rnd.status != RoundStatus.OPEN:
            return True
        return not wait_for_end and not self._secure_pending(latest)

    @staticmethod
    def _report(res: SubmitResult, results: list[SubmitResult], on_result: Callable[[SubmitResult], None] | None) -> None:
        results.append(res)
        if on_result is not None:
            on_result(res)


def verify_round_base(ledger: Ledger, rnd: RoundRecord, doc: TaskDocument) -> None:
    """Check where a round starts from: the model of the latest finalised round before it; the
    base model of the latest disputed round before it (the fallback the federation fell back
    to), never a disputed model; or, when there is neither (round 1, or rounds that all closed
    without a model), the task's initial model ``initial_global(doc.spec(), doc.seed)``. The
    contract accepts any base model until a first round is finalised, so both agents check it.
    Raises IntegrityError naming both digests."""
    from fedchain.protocol.blobs import initial_global

    rid = int(rnd.round_id)
    base = bytes(rnd.base_model_digest)
    for earlier in range(rid - 1, 0, -1):
        prior = ledger.round(RoundId(earlier))
        if prior.status == RoundStatus.FINALIZED:
            if bytes(prior.model_digest) != base:
                raise IntegrityError(
                    f"round {rid} starts from model {digest_hex(base)}, but round {earlier} was finalised on "
                    f"{digest_hex(prior.model_digest)}"
                )
            return
        if prior.status == RoundStatus.DISPUTED:
            if bytes(prior.base_model_digest) == base:
                return  # the fallback after the dispute
            if bytes(prior.model_digest) == base:
                raise IntegrityError(
                    f"round {rid} starts from model {digest_hex(base)}, round {earlier}'s model, which the federation "
                    f"disputed; refusing to take part (the fallback is {digest_hex(prior.base_model_digest)})"
                )
            raise IntegrityError(
                f"round {rid} starts from model {digest_hex(base)}, but round {earlier} was disputed and the federation "
                f"fell back to {digest_hex(prior.base_model_digest)}"
            )
    initial = sha256_digest(initial_global(doc.spec(), doc.seed))
    if initial != base:
        raise IntegrityError(
            f"round {rid} starts from model {digest_hex(base)} ({rnd.base_model_cid}), not the task's initial model "
            f"{digest_hex(initial)} (initial_global of its model spec with seed {doc.seed}); no earlier round was "
            "finalised, so it must start from the initial model: refusing to take part"
        )


def _dry_run(doc: TaskDocument, x: np.ndarray, y: np.ndarray, participant: Address) -> None:
    """Train the task's initial model briefly on a few local samples and throw the result away:
    proves the data fits the model and the algorithm before any round, and warms the framework
    up (the first backward pass costs ~10x a later one) so that round one is not the slow one."""
    from fedchain.fl.client import train_local
    from fedchain.fl.models import build_model, get_weights
    from fedchain.fl.strategies import strategy_from_config
    from fedchain.types import ZERO_DIGEST

    strategy = strategy_from_config(doc.strategy_config())
    weights = get_weights(build_model(doc.spec(), doc.seed))
    config = strategy.configure_round(RoundId(0), weights, strategy.initial_state(weights))
    n = min(len(y), 32)
    dpsgd = doc.privacy if doc.privacy is not None and doc.privacy.mechanism == "dpsgd" else None
    train_local(doc.spec(), weights, x[:n], y[:n], config, seed=0, client_state=None, participant=participant,
                round_id=RoundId(0), base_model_digest=ZERO_DIGEST, privacy=dpsgd, noise_seed=0)


__all__ = [
    "ParticipantAgent",
    "verify_round_base",
    "SubmitResult",
    "JOURNAL_FILE",
    "JournalEntry",
    "TxJournal",
    "metadata_digest",
]

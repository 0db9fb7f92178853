"""The single error hierarchy of fedchain.

Every error raised on purpose by the library derives from :class:`FedchainError`, and every
error class is defined here (the one exception: :mod:`fedchain.reverts`, generated from the
contract's ABI, refines :class:`ContractRevertError`). Each family carries an :class:`ExitCode`;
the CLI maps an uncaught error to exactly one line on stderr and that exit code. Codes are
listed once and never reused; a refinement that declares no code of its own exits with its
family's.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes. Never renumber or reuse a value; each code's family and one-line meaning are in
    :mod:`fedchain.cli.exit_codes` (``fedchain --help-exit-codes``, the README's table)."""

    OK = 0
    GENERIC = 1
    USAGE = 2  # click's own code for bad command-line usage
    CONFIG = 10
    TASK_NOT_CONFIGURED = 11  # the federation has no task yet (was 70, the participant family, before)
    CHAIN = 20
    RPC_UNAVAILABLE = 21
    CHAIN_ID_MISMATCH = 22
    DEPLOYMENT_NOT_FOUND = 23
    CONTRACT_REVERT = 24
    INSUFFICIENT_FUNDS = 25
    KEYSTORE = 26
    TRANSACTION_FAILED = 27
    CHAIN_STALLED = 28  # no block past a deadline arrives: the chain mines nothing
    GOVERNANCE = 29  # a governance action refused: unknown proposal, wrong proposal state, double vote, no votes
    STORAGE = 30
    STORAGE_UNAVAILABLE = 31
    INTEGRITY = 32
    BLOB_FORMAT = 33
    BLOB_NOT_FOUND = 34
    AGGREGATION = 40
    UPDATE_REJECTED = 41
    TOO_FEW_UPDATES = 42
    DATA_SCHEMA = 43
    TRAINING = 44
    AUDIT = 50
    AUDIT_FINDINGS = 51  # the audit found an error (aggregator, ledger, infrastructure, governance)
    AUDIT_PARTICIPANT_MISCONDUCT = 52  # the only findings: participant misconduct the aggregator handled
    SERVICE = 60
    PARTICIPANT = 70
    INCENTIVES = 80  # a deposit, withdrawal, slash, reward publication or claim refused
    PRIVACY = 90  # a privacy policy, an accountant's inputs or a privacy claim is invalid
    PRIVACY_BUDGET = 91  # the next round would take the participant past its privacy budget
    SECAGG = 95  # a secure-aggregation message, share, key or unmasking is invalid or below threshold
    INTERRUPTED = 130  # interrupted (Ctrl-C, SIGINT): 128 + the signal number, as shells report it


class FedchainError(Exception):
    """Root of all fedchain errors."""

    exit_code: ExitCode = ExitCode.GENERIC


# --- configuration -----------------------------------------------------------
class ConfigError(FedchainError):
    """Invalid or missing configuration (flags, env, fedchain.toml)."""

    exit_code = ExitCode.CONFIG


class TaskNotConfiguredError(ConfigError):
    """The federation contract has no task configured yet (``fedchain admin configure-task`` sets one)."""

    exit_code = ExitCode.TASK_NOT_CONFIGURED


class ModelTrustError(ConfigError):
    """The task's model is defined in a Python file this process does not trust: its digest is neither
    named by ``--trust-model`` (or ``trusted_models`` in fedchain.toml) nor registered by whoever configured
    the task; nothing of it was run. A ConfigError (exit 10): the remedy is this participant's configuration."""

    def __init__(self, digest: str, cid: str) -> None:
        where = f"fedchain store get {cid} -o model.py" if cid else "it is not stored yet"
        super().__init__(
            f"the task's model {digest} is defined in a Python file that is not one you trust, so it was not run; "
            f"review its source ({where}) and pass --trust-model {digest} (or list it in trusted_models in "
            "fedchain.toml)"
        )
        self.digest = digest
        self.cid = cid


class ToolchainNotFoundError(ConfigError):
    """No toolchain is configured and fedchain does not run from a checkout with ``hardhat-local/``."""


# --- contract sources and artifacts (a ConfigError: the checkout or installation is not set up) --
class CompilerError(ConfigError):
    """The contracts could not be compiled (solc error, missing import, missing toolchain)."""


class NoSourcesError(CompilerError):
    """There are no contract sources to compile or check (an installed fedchain, not a checkout)."""


class RevertGenerationError(CompilerError):
    """The artifact's ABI cannot be turned into typed reverts (duplicate names, unsupported types)."""


class StaleArtifactError(ConfigError):
    """Committed contract artifacts do not match the current sources, compiler or settings."""

    def __init__(self, stale: dict[str, str]) -> None:
        self.stale = dict(stale)
        listed = "; ".join(f"{path}: {why}" for path, why in sorted(self.stale.items()))
        super().__init__(f"stale contract artifacts ({listed}); run 'fedchain contracts build'")


class ArtifactNotFoundError(ConfigError):
    """No committed artifact for the requested contract."""


# --- chain --------------------------------------------------------------------
class ChainError(FedchainError):
    """Anything that went wrong talking to the Ethereum node."""

    exit_code = ExitCode.CHAIN


class RpcUnavailableError(ChainError):
    """The RPC endpoint cannot be reached."""

    exit_code = ExitCode.RPC_UNAVAILABLE


class RpcTransportError(RpcUnavailableError):
    """The JSON-RPC client's own failure: the node could not be reached, or its answer broke off (``broken``:
    headers came, a whole body did not). :class:`fedchain.chain.connection.Connection` words it for the user."""

    def __init__(self, reason: str, *, broken: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.broken = broken


class RpcError(ChainError):
    """A JSON-RPC error object the node answered to ``method``: its code, message and data (revert data, say);
    translated by :class:`fedchain.chain.connection.Connection` into the chain family's errors."""

    def __init__(self, method: str, code: int | None, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class AbiError(ChainError, ValueError):
    """An ABI type string, value or encoding that :mod:`fedchain.codec.abi` cannot handle."""


class AbiEncodingError(AbiError):
    """A value that cannot be encoded as its ABI type (wrong Python type, out of range, wrong length)."""


class AbiDecodingError(AbiError):
    """Bytes that are not a valid ABI encoding of the requested types."""


class DevnetNotRunningError(RpcUnavailableError):
    """No RPC URL is given and no managed devnet runs for the state directory: there is no chain to talk to."""


class ChainIdMismatchError(ChainError):
    """The node reports another chain id than the deployment or config expects."""

    exit_code = ExitCode.CHAIN_ID_MISMATCH

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"chain id mismatch: expected {expected}, node reports {actual}")
        self.expected = expected
        self.actual = actual


class DeploymentNotFoundError(ChainError):
    """No deployment record, or no contract code at the recorded address."""

    exit_code = ExitCode.DEPLOYMENT_NOT_FOUND


class ModelNotAvailableError(ChainError):
    """The chain records no usable global model for the round asked for (not finalised, disputed, none yet)."""


class ContractRevertError(ChainError):
    """A call or transaction reverted with a decoded custom error."""

    exit_code = ExitCode.CONTRACT_REVERT

    def __init__(self, error_name: str, args: dict[str, Any] | None = None, *, function: str = "") -> None:
        self.error_name = error_name
        self.error_args: dict[str, Any] = dict(args or {})
        self.function = function
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in self.error_args.items())
        where = f"{function}: " if function else ""
        super().__init__(f"{where}contract reverted with {error_name}({rendered})")


class InsufficientFundsError(ChainError):
    """The sending account cannot pay for gas."""

    exit_code = ExitCode.INSUFFICIENT_FUNDS


class KeystoreError(ChainError):
    """A keystore is missing, malformed, or its password is wrong."""

    exit_code = ExitCode.KEYSTORE


class TransactionFailedError(ChainError):
    """A transaction was mined but failed without a decodable reason, or timed out."""

    exit_code = ExitCode.TRANSACTION_FAILED


class ChainStalledError(ChainError):
    """The chain mined no block past a deadline within the bounded wait (a quiet chain that
    mines only on transactions, and nobody sends one)."""

    exit_code = ExitCode.CHAIN_STALLED


# --- governance (the Governor, its timelock and the membership token) ------------------
class GovernanceError(ChainError):
    """A governance action the Governor, its timelock or the membership token refuses, or that the client
    refuses before sending it; ``revert`` is the decoded custom error when the chain refused it."""

    exit_code = ExitCode.GOVERNANCE

    def __init__(self, message: str, *, revert: ContractRevertError | None = None) -> None:
        super().__init__(message)
        self.revert = revert


class NotGovernedError(GovernanceError):
    """The deployment is administered by an EOA (``--admin``): it has no Governor, timelock or membership token."""


class UnknownProposalError(GovernanceError):
    """No proposal with that id was ever made."""

    def __init__(self, proposal_id: int, *, revert: ContractRevertError | None = None) -> None:
        super().__init__(f"there is no proposal {proposal_id}", revert=revert)
        self.proposal_id = proposal_id


class ProposalStateError(GovernanceError):
    """The proposal is not in a state the action needs (a vote on a pending or closed proposal, a queue before
    it succeeded, an execution before its timelock delay elapsed or a second one)."""

    def __init__(
        self,
        action: str,
        proposal_id: int,
        state: str,
        expected: tuple[str, ...],
        *,
        detail: str = "",
        revert: ContractRevertError | None = None,
    ) -> None:
        wanted = " or ".join(expected) if expected else "another state"
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"cannot {action} proposal {proposal_id}: it is {state}, it must be {wanted}{extra}", revert=revert
        )
        self.action = action
        self.proposal_id = proposal_id
        self.state = state
        self.expected = expected


class AlreadyVotedError(GovernanceError):
    """The account already voted on the proposal."""

    def __init__(self, proposal_id: int, voter: str, *, revert: ContractRevertError | None = None) -> None:
        super().__init__(f"{voter} already voted on proposal {proposal_id}", revert=revert)
        self.proposal_id = proposal_id
        self.voter = voter


class NotAMemberError(GovernanceError):
    """The account holds no vote where the action needs one (proposing, or voting with a zero weight)."""

    def __init__(
        self, action: str, account: str, votes: int, needed: int, *, revert: ContractRevertError | None = None
    ) -> None:
        super().__init__(
            f"cannot {action}: {account} is not a member with a vote (it has {votes} vote(s), {needed} needed)",
            revert=revert,
        )
        self.action = action
        self.account = account
        self.votes = votes
        self.needed = needed


# --- incentives (deposits, slashes and reward claims) ---------------------------------
class IncentivesError(ChainError):
    """A deposit, withdrawal, slash, reward publication or claim that FederationIncentives refuses, or that the client
    refuses before sending it; ``revert`` is the decoded custom error (a :mod:`fedchain.reverts` class) when the
    chain refused it. Nothing was changed."""

    exit_code = ExitCode.INCENTIVES

    def __init__(self, message: str, *, revert: ContractRevertError | None = None) -> None:
        super().__init__(message)
        self.revert = revert


class NoIncentivesError(IncentivesError):
    """The deployment has no FederationIncentives (deployed without incentives, or recorded before them)."""


class DepositError(IncentivesError):
    """A deposit, withdrawal request, withdrawal or slash refused (wrong amount, twice, not registered, still
    participating, during the withdrawal delay, more than held, an invalid finding)."""


class ClaimError(IncentivesError):
    """A reward publication or claim refused (no rewards, a bad proof, claimed already, over the round's budget)."""


# --- storage ------------------------------------------------------------------
class StorageError(FedchainError):
    """Blob storage failure."""

    exit_code = ExitCode.STORAGE


class StorageUnavailableError(StorageError):
    """The IPFS node (or other backend) cannot be reached."""

    exit_code = ExitCode.STORAGE_UNAVAILABLE


class InboxUnavailableError(StorageUnavailableError):
    """The aggregator's commitment inbox cannot be reached, breaks off, answers a server error or an oversized or
    malformed answer (:func:`fedchain.protocol.signed.send_commitment`): retry, or commit on chain within the
    round's escape window."""


class IntegrityError(StorageError):
    """Bytes do not match the CID or digest they are filed under."""

    exit_code = ExitCode.INTEGRITY


class SignatureError(IntegrityError):
    """A secp256k1 signature that is malformed (not 65 bytes r || s || v, v not 27 or 28, r or s zero or not
    below the group order, a high s) or that recovers no public key (:mod:`fedchain.codec.secp256k1`)."""


class BlobFormatError(StorageError):
    """A blob is not a valid canonical fedchain blob."""

    exit_code = ExitCode.BLOB_FORMAT


class BlobNotFoundError(StorageError):
    """No blob with that CID is available."""

    exit_code = ExitCode.BLOB_NOT_FOUND


# --- learning -----------------------------------------------------------------
class AggregationError(FedchainError):
    """Aggregation could not produce a model."""

    exit_code = ExitCode.AGGREGATION


class UpdateRejectedError(AggregationError):
    """One participant's update is malformed (shape, dtype, NaN/Inf, base model)."""

    exit_code = ExitCode.UPDATE_REJECTED

    def __init__(self, participant: str, reason: str) -> None:
        super().__init__(f"update from {participant} rejected: {reason}")
        self.participant = participant
        self.reason = reason


class InboxRefusedError(UpdateRejectedError):
    """The aggregator's commitment inbox refused a signed commitment: ``status`` is its HTTP status (400 malformed,
    403 bad signature or not eligible, 409 another round open or a different commitment sent before, 410 the round's
    set is sealed: commit on chain instead) and ``reason`` the inbox's own words."""

    def __init__(self, participant: str, status: int, reason: str) -> None:
        super().__init__(participant, f"the commitment inbox answered HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


class TooFewUpdatesError(AggregationError):
    """Fewer valid updates than the round's minimum."""

    exit_code = ExitCode.TOO_FEW_UPDATES

    def __init__(self, valid: int, minimum: int) -> None:
        super().__init__(f"only {valid} valid update(s), the round needs at least {minimum}")
        self.valid = valid
        self.minimum = minimum


class MerkleError(AggregationError):
    """A Merkle tree or proof cannot be built from the given input."""


class CommitPhaseStillOpen(AggregationError):
    """The ledger still holds the commit phase open: collect again and retry."""


class DataSchemaError(FedchainError):
    """A participant's data does not match the task's data schema."""

    exit_code = ExitCode.DATA_SCHEMA


class TrainingError(FedchainError):
    """Local training failed."""

    exit_code = ExitCode.TRAINING


# --- privacy ------------------------------------------------------------------
class PrivacyError(FedchainError):
    """A privacy policy, an accountant's inputs or a privacy claim is invalid."""

    exit_code = ExitCode.PRIVACY


class PrivacyBudgetError(PrivacyError):
    """The next round would take the participant past the task's privacy budget."""

    exit_code = ExitCode.PRIVACY_BUDGET


# --- secure aggregation -------------------------------------------------------
class SecAggError(FedchainError):
    """A secure-aggregation round cannot go on: a malformed message, share or key, or too few shares."""

    exit_code = ExitCode.SECAGG


class SecAggFormatError(SecAggError):
    """Bytes are not a valid canonical secure-aggregation record (or a record's fields are out of range)."""


class SecAggContextError(SecAggError):
    """A record or share belongs to another round or federation than the one being run."""


class ShamirError(SecAggError):
    """Shamir shares cannot be split or combined: too few, duplicate x-coordinates, malformed values."""


class SecAggKeyError(SecAggError):
    """An X25519 public key is malformed: not 32 bytes, or a low-order point (all-zero shared secret)."""

    def __init__(self, owner: str, reason: str) -> None:
        super().__init__(f"X25519 public key of {owner} rejected: {reason}")
        self.owner = owner
        self.reason = reason


class ShareAuthenticationError(SecAggError):
    """An encrypted share fails authentication for its recipient (tampered, another round or federation,
    another sender or recipient)."""

    def __init__(self, sender: int, recipient: int) -> None:
        super().__init__(f"the share from participant {sender} to participant {recipient} fails authentication")
        self.sender = sender
        self.recipient = recipient


class DoubleRevealError(SecAggError):
    """A survivor is asked to reveal both the self-mask seed share and the mask-key share of the same participant
    (which would unmask that participant's input)."""

    def __init__(self, revealer: int, owners: tuple[int, ...]) -> None:
        listed = ", ".join(str(o) for o in owners)
        super().__init__(
            f"participant {revealer} refuses to reveal both the self-mask seed share and the mask-key share of "
            f"participant(s) {listed}"
        )
        self.revealer = revealer
        self.owners = owners


class BelowThresholdError(SecAggError):
    """Fewer participants or consistent shares than the threshold t: the round is refused."""

    def __init__(self, what: str, have: int, threshold: int) -> None:
        super().__init__(f"{what}: {have} available, the threshold is {threshold}")
        self.what = what
        self.have = have
        self.threshold = threshold


class UnrecoverableSecretError(SecAggError):
    """No t of the revealed shares of a participant's secret reconstruct what its advertisement commits to: it
    dealt bad shares, or more than (shares - t) of their holders lie. The round is refused."""

    def __init__(self, owner: int, what: str, shares: int, threshold: int) -> None:
        super().__init__(
            f"no {threshold} of the {shares} revealed shares of participant {owner}'s {what} reconstruct the secret its "
            f"advertisement commits to (participant {owner} dealt bad shares, or more than {shares - threshold} holders lie)"
        )
        self.owner = owner
        self.what = what
        self.shares = shares
        self.threshold = threshold


# --- audit --------------------------------------------------------------------
class AuditError(FedchainError):
    """The audit itself could not run (not: the audit found problems)."""

    exit_code = ExitCode.AUDIT


class AuditFindingsError(AuditError):
    """The audit ran and found problems."""

    exit_code = ExitCode.AUDIT_FINDINGS


# --- services and roles -----------------------------------------------------
class ServiceError(FedchainError):
    """A managed local service (devnet, IPFS node) failed to start, stop or answer."""

    exit_code = ExitCode.SERVICE


class AnvilDown(ServiceError):
    """anvil did not answer the devnet supervisor: it died (or is being restarted). ``delivered``
    is False when the request certainly never reached it (the connection was refused)."""

    def __init__(self, message: str, *, delivered: bool = True) -> None:
        super().__init__(message)
        self.delivered = delivered


class ParticipantError(FedchainError):
    """A participant may not act (not admitted, removed, ...)."""

    exit_code = ExitCode.PARTICIPANT


class RoundNotOpenError(ParticipantError):
    """The round a participant was asked to take part in has already ended (finalised or closed)."""


def _render(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return str(value)

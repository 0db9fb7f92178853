"""The ``Federation`` contract: deployment records and a typed wrapper.

:func:`deploy` sends the creation transaction and, only once its receipt succeeded, writes
``<state_dir>/deployments/<chain_id>.json`` (address, chain id, block, tx hash and the
artifact's ``sourceHash``). :func:`load_deployment` reads it back and checks that the code at
the address is the committed artifact's runtime code (:func:`verify_federation_code`, also for
an address given directly). :class:`FederationContract` has one method per contract function; writes
return a :class:`fedchain.ports.TxReport`, reverts raise
:class:`fedchain.errors.ContractRevertError` with the decoded custom error and its
arguments, both when the gas estimate fails and when a mined transaction failed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain.chain.abi import EventDecoder, FunctionCodec, RevertDecoder, to_bytes
from fedchain.chain.connection import Connection
from fedchain.codec.abi import is_address, keccak, to_checksum_address
from fedchain.codec.merkle import commitment_leaf, verify
from fedchain.errors import ChainError, DeploymentNotFoundError
from fedchain.ports import Inclusion, ParticipantRecord, ParticipantStatus, RoundStatus, TxReport, update_seal
from fedchain.types import DIGEST_SIZE, ZERO_DIGEST, Address, Digest, RoundId

if TYPE_CHECKING:  # eth-account is imported by whoever signs, not by every reader
    from fedchain.chain.signer import Signer

log = logging.getLogger(__name__)

CONTRACT_NAME = "Federation"
ADMIN_ROLE = keccak(b"ADMIN_ROLE")
AGGREGATOR_ROLE = keccak(b"AGGREGATOR_ROLE")
DEFAULT_ADMIN_ROLE = b"\x00" * 32


def load_federation_artifact() -> dict[str, Any]:
    """The committed ``Federation`` artifact (abi, bytecode, sourceHash, ...)."""
    from fedchain.chain.compiler import load_artifact

    return load_artifact(CONTRACT_NAME)


@dataclass(frozen=True)
class GovernanceParams:
    """The settings of a governed deployment: the Governor's voting delay and period (blocks), its quorum
    (percent of the members at the proposal's snapshot) and the timelock's delay (seconds)."""

    voting_delay: int = 1
    voting_period: int = 20
    quorum_percent: int = 50
    timelock_delay_s: int = 60

    def check(self, function: str = "governance") -> GovernanceParams:
        """These parameters, or a ChainError naming the first one out of range."""
        for name, value, low, high in (
            ("voting_delay", self.voting_delay, 0, 2**48 - 1),
            ("voting_period", self.voting_period, 1, 2**32 - 1),
            ("quorum_percent", self.quorum_percent, 0, 100),
            ("timelock_delay_s", self.timelock_delay_s, 0, 2**256 - 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ChainError(f"{function}: {name} must be an integer in [{low}, {high}], got {value!r}")
        return self


@dataclass(frozen=True)
class Deployment:
    """Where the Federation contract lives on one chain; under governance, also its Governor, timelock and
    membership token (None for a deployment administered by an EOA, and in records written before them)."""

    contract: str
    address: Address
    chain_id: int
    block_number: int
    tx_hash: str
    source_hash: str
    admin: Address
    aggregator: Address
    deployed_at: float
    governor: Address | None = None
    timelock: Address | None = None
    membership: Address | None = None
    governance: GovernanceParams | None = None
    governance_block: int | None = None  # the block of the first governance contract (the timelock): its log starts there
    incentives: Address | None = None  # FederationIncentives (deposits, slashes, reward claims), when deployed
    reward_token: Address | None = None  # its FederationRewardToken
    incentives_block: int | None = None  # the block FederationIncentives was deployed in: its log starts there

    @property
    def governed(self) -> bool:
        """Whether the Federation is administered by a timelock under a Governor (not by an EOA)."""
        return self.governor is not None and self.timelock is not None

    @property
    def has_incentives(self) -> bool:
        """Whether FederationIncentives and its reward token are deployed for this Federation."""
        return self.incentives is not None and self.reward_token is not None


def create_address(sender: str, nonce: int) -> Address:
    """The address of the contract that ``sender`` creates with its transaction (or CREATE) number ``nonce``:
    the last 20 bytes of keccak256(rlp([sender, nonce]))."""
    if not isinstance(nonce, int) or nonce < 0:
        raise ChainError(f"create_address: nonce must be a non-negative integer, got {nonce!r}")
    if nonce == 0:
        encoded_nonce = b"\x80"
    elif nonce < 0x80:
        encoded_nonce = bytes([nonce])
    else:
        raw = nonce.to_bytes((nonce.bit_length() + 7) // 8, "big")
        encoded_nonce = bytes([0x80 + len(raw)]) + raw
    payload = b"\x94" + bytes.fromhex(_address(sender, "sender", "create_address")[2:]) + encoded_nonce
    return Address(to_checksum_address(keccak(bytes([0xC0 + len(payload)]) + payload)[12:]))


def membership_address(federation: str) -> Address:
    """The address of a Federation's membership token: the contract its constructor creates (its nonce 1)."""
    return create_address(federation, 1)


def check_founders(founders: Sequence[str], function: str) -> list[str]:
    """The founding members as checksummed addresses, or a ChainError naming a bad or repeated one."""
    if isinstance(founders, str):
        raise ChainError(f"{function}: founders must be a sequence of addresses, not one string")
    checked: list[str] = []
    for i, founder in enumerate(founders):
        address = _address(founder, f"founders[{i}]", function)
        if address in checked:
            raise ChainError(f"{function}: founder {address} is listed twice")
        checked.append(address)
    return checked


def deployment_path(state_dir: Path, chain_id: int) -> Path:
    """Where the deployment record of chain ``chain_id`` lives in ``state_dir``."""
    return Path(state_dir) / "deployments" / f"{chain_id}.json"


def write_deployment(state_dir: Path, deployment: Deployment) -> Path:
    """Write ``deployment``'s record atomically (replacing an older one); return its path."""
    path = deployment_path(state_dir, deployment.chain_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(deployment), indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _optional_address(value: Any) -> Address | None:
    return None if value is None else Address(to_checksum_address(value))


def read_deployment(state_dir: Path, chain_id: int) -> Deployment:
    """The deployment record for ``chain_id``; DeploymentNotFoundError if missing or unreadable. A record written
    before governance existed (without its fields) reads as a deployment without governance, one written before the
    incentives as a deployment without them."""
    path = deployment_path(state_dir, chain_id)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        governance = data.get("governance")
        return Deployment(
            contract=str(data["contract"]),
            address=Address(to_checksum_address(data["address"])),
            chain_id=int(data["chain_id"]),
            block_number=int(data["block_number"]),
            tx_hash=str(data["tx_hash"]),
            source_hash=str(data["source_hash"]),
            admin=Address(to_checksum_address(data["admin"])),
            aggregator=Address(to_checksum_address(data["aggregator"])),
            deployed_at=float(data["deployed_at"]),
            governor=_optional_address(data.get("governor")),
            timelock=_optional_address(data.get("timelock")),
            membership=_optional_address(data.get("membership")),
            governance_block=None if data.get("governance_block") is None else int(data["governance_block"]),
            incentives=_optional_address(data.get("incentives")),
            reward_token=_optional_address(data.get("reward_token")),
            incentives_block=None if data.get("incentives_block") is None else int(data["incentives_block"]),
            governance=None if governance is None else GovernanceParams(**{
                key: int(governance[key]) for key in ("voting_delay", "voting_period", "quorum_percent", "timelock_delay_s")
            }),
        )
    except FileNotFoundError as err:
        raise DeploymentNotFoundError(
            f"no Federation deployment recorded for chain {chain_id} ({path}); deploy it first"
        ) from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DeploymentNotFoundError(f"deployment record {path} is unreadable: {err}") from err


def verify_federation_code(conn: Connection, address: str, artifact: dict[str, Any] | None = None) -> None:
    """Check that the runtime code at ``address`` is the artifact's ``deployedBytecode``.

    The runtime code of a deployment equals the artifact's ``deployedBytecode`` byte for byte (solc's
    metadata hash at its end included) except in the ranges the constructor fills with immutables (the
    Federation's ``membership`` address), which the artifact records (``immutableReferences``): both are
    hashed with those ranges zeroed and compared. Raises DeploymentNotFoundError when there is no code at
    ``address`` or when it is other code (another contract, or Federation built from other sources)."""
    verify_contract_code(conn, address, artifact or load_federation_artifact())


def verify_contract_code(conn: Connection, address: str, artifact: dict[str, Any]) -> None:
    """Check that the runtime code at ``address`` is ``artifact``'s contract (see :func:`verify_federation_code`)."""
    name = str(artifact.get("contractName", CONTRACT_NAME))
    code = conn.code_at(address)
    if not code:
        raise DeploymentNotFoundError(
            f"no contract code at {address} on chain {conn.chain_id} ({conn.url}); "
            "the chain was reset since the deployment - deploy again"
        )
    ranges = artifact.get("immutableReferences") or []
    found = runtime_code_hash(code, ranges)
    expected = runtime_code_hash(to_bytes(artifact["deployedBytecode"]), ranges)
    if found != expected:
        raise DeploymentNotFoundError(
            f"the code at {address} on chain {conn.chain_id} ({conn.url}) is not the {name} contract of "
            f"this build: runtime code keccak256 0x{found.hex()} ({len(code)} bytes) != artifact deployedBytecode "
            f"keccak256 0x{expected.hex()} (sourceHash {artifact.get('sourceHash', '?')}; immutables masked); "
            "deploy again or point at the right address"
        )


def runtime_code_hash(code: bytes, immutable_ranges: Sequence[Sequence[int]] = ()) -> bytes:
    """keccak256 of runtime ``code`` with its immutable ranges (start, length) zeroed, as solc leaves them in an
    artifact's ``deployedBytecode``: a deployment's code hashes like its artifact's exactly when it is that contract."""
    masked = bytearray(code)
    for start, length in immutable_ranges:
        if start + length <= len(masked):
            masked[start : start + length] = bytes(length)
    return keccak(bytes(masked))


def load_deployment(state_dir: Path, conn: Connection) -> Deployment:
    """The recorded deployment on ``conn``'s chain, checked to hold the committed artifact's runtime code."""
    deployment = read_deployment(state_dir, conn.chain_id)
    verify_federation_code(conn, deployment.address)
    return deployment


def deploy(
    conn: Connection,
    deployer: Signer,
    admin: str,
    aggregator: str,
    *,
    founders: Sequence[str] = (),
    state_dir: Path | None = None,
    artifact: dict[str, Any] | None = None,
) -> tuple[FederationContract, Deployment, TxReport]:
    """Deploy ``Federation(admin, aggregator, founders)`` signed by ``deployer`` (the founders receive their
    membership token at once); record it under ``state_dir`` (when given) only after the receipt succeeded."""
    artifact = artifact or load_federation_artifact()
    for role, value in (("admin", admin), ("aggregator", aggregator)):
        if not is_address(value):
            raise ChainError(f"deploy: {role} is not an address: {value!r}")
    founding = check_founders(founders, "deploy")
    codec = FunctionCodec(artifact["abi"])
    data = codec.encode_constructor(
        to_bytes(artifact["bytecode"]), to_checksum_address(admin), to_checksum_address(aggregator), founding
    )
    report, receipt = conn.send_transaction(
        deployer, to=None, data=data, function="deploy", decoder=RevertDecoder(artifact["abi"])
    )
    address = receipt.get("contractAddress")
    if not address:
        raise ChainError(f"deploy: receipt of {report.tx_hash} has no contract address")
    deployment = Deployment(
        contract=CONTRACT_NAME,
        address=Address(to_checksum_address(address)),
        chain_id=conn.chain_id,
        block_number=report.block_number,
        tx_hash=report.tx_hash,
        source_hash=str(artifact.get("sourceHash", "")),
        admin=Address(to_checksum_address(admin)),
        aggregator=Address(to_checksum_address(aggregator)),
        deployed_at=time.time(),
        membership=membership_address(address),
    )
    if state_dir is not None:
        path = write_deployment(state_dir, deployment)
        log.info("deployed Federation at %s (tx %s); recorded in %s", deployment.address, report.tx_hash, path)
    contract = FederationContract(conn, deployment.address, artifact["abi"], deployer, deployment_block=report.block_number)
    return contract, deployment, report


INCENTIVES_CONTRACT = "FederationIncentives"
REWARD_TOKEN_CONTRACT = "FederationRewardToken"


def deploy_incentive_contracts(
    conn: Connection,
    deployer: Signer,
    deployment: Deployment,
    *,
    supply: int,
    treasury: str | None = None,
) -> tuple[Deployment, list[TxReport]]:
    """Deploy ``FederationRewardToken(treasury, supply)`` and ``FederationIncentives(federation, token)`` for
    ``deployment``'s Federation, signed by ``deployer``, and check both contracts' code. The treasury (which
    receives the whole supply) defaults to the timelock of a governed deployment, else its admin. Returns the
    deployment with ``incentives``/``reward_token``/``incentives_block`` set (not recorded: the caller records it)
    and the two reports (token, incentives). Nothing here writes a record, so a failure leaves none."""
    f = "deploy_incentives"
    if deployment.incentives is not None:
        raise ChainError(f"{f}: the Federation at {deployment.address} has incentives already ({deployment.incentives})")
    supply = _uint(supply, 256, "supply", f)
    holder = treasury if treasury is not None else (deployment.timelock or deployment.admin)
    holder = _address(holder, "treasury", f)
    from fedchain.chain.compiler import load_artifact

    token_artifact, incentives_artifact = load_artifact(REWARD_TOKEN_CONTRACT), load_artifact(INCENTIVES_CONTRACT)
    decoder = RevertDecoder([*token_artifact["abi"], *incentives_artifact["abi"]])

    def create(artifact: dict[str, Any], *args: Any) -> tuple[Address, TxReport]:
        name = str(artifact["contractName"])
        data = FunctionCodec(artifact["abi"]).encode_constructor(to_bytes(artifact["bytecode"]), *args)
        report, receipt = conn.send_transaction(deployer, to=None, data=data, function=f"deploy {name}", decoder=decoder)
        address = receipt.get("contractAddress")
        if not address:
            raise ChainError(f"{f}: receipt of {report.tx_hash} has no contract address")
        verify_contract_code(conn, address, artifact)
        log.info("deployed %s at %s (tx %s, gas %d)", name, address, report.tx_hash, report.gas_used)
        return Address(to_checksum_address(address)), report

    token, token_report = create(token_artifact, holder, supply)
    incentives, incentives_report = create(incentives_artifact, deployment.address, token)
    reports = [token_report, incentives_report]
    addresses = [token, incentives]
    updated = replace(deployment, reward_token=addresses[0], incentives=addresses[1],
                      incentives_block=reports[1].block_number)
    return updated, reports


@dataclass(frozen=True)
class RoundInfo:
    """``Federation.getRound`` as returned by the contract (no CIDs: those are in events)."""

    status: RoundStatus
    deadline: int
    min_updates: int
    commit_count: int
    eligible_count: int  # participants active when the round opened
    task_version: int
    included_count: int
    base_model_digest: Digest
    model_digest: Digest
    merkle_root: Digest
    aggregation_digest: Digest
    evidence_digest: Digest
    commit_reveal: bool = False  # participants seal in the commit phase and reveal after it
    reveal_deadline: int = 0  # last second of the reveal phase of a commit-reveal round (0 without one)
    seal_count: int = 0  # seals of a commit-reveal round (its reveals are commit_count)
    private_round: bool = False  # opened while the task had a privacy budget: commits carry privacy claims
    secure_round: bool = False  # a secure-aggregation round: advertise, masked inputs, unmasking shares
    advertise_deadline: int = 0  # last second of a secure round's advertise phase (0 for any other round)
    unmask_deadline: int = 0  # last second of a secure round's unmask phase (0 for any other round)
    advertisement_count: int = 0  # participants who advertised their keys in a secure round
    unmasking_count: int = 0  # committers who posted their unmasking shares in a secure round
    signed_round: bool = False  # a signed round: commitments signed off chain, one set posted, an escape window


@dataclass(frozen=True)
class SignedRoundView:
    """``Federation.signedRound``: the signed-round record of a round (all zero for any other round)."""

    signed: bool
    escape_duration: int  # seconds of the escape window
    escape_deadline: int  # last second of the escape window; 0 until the commitment set is posted
    set_count: int  # signed commitments in the posted set
    set_root: Digest  # Merkle root of the posted set (zero for an empty set or none posted)
    set_digest: Digest  # digest of the posted set blob (zero before it is posted)


@dataclass(frozen=True)
class TaskView:
    """``Federation.task`` (the config CID is in the ``TaskConfigured`` event)."""

    version: int
    model_spec_digest: Digest
    strategy_digest: Digest
    data_schema_digest: Digest
    max_commit_duration: int  # seconds: the longest commit window a round may be opened with


@dataclass(frozen=True)
class PrivacyPolicyView:
    """``Federation.privacyPolicy``: the privacy policy of the task in force (zero digest and budget: none)."""

    policy_digest: Digest
    epsilon_budget: int  # micro-epsilon per participant


def _digest(value: bytes, name: str, function: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != DIGEST_SIZE:
        got = len(value) if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise ChainError(f"{function}: {name} must be {DIGEST_SIZE} bytes, got {got}")
    return bytes(value)


def _uint(value: int, bits: int, name: str, function: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**bits:
        raise ChainError(f"{function}: {name} must be an integer in [0, 2^{bits}), got {value!r}")
    return value


def _address(value: str, name: str, function: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise ChainError(f"{function}: {name} is not an address: {value!r}")
    return to_checksum_address(value)


class FederationContract:
    """Typed access to one deployed ``Federation``; writes are signed by ``account``."""

    def __init__(
        self,
        conn: Connection,
        address: str,
        abi: Sequence[dict[str, Any]] | None = None,
        account: Signer | None = None,
        *,
        deployment_block: int = 0,
    ) -> None:
        self.conn = conn
        self.address = Address(to_checksum_address(address))
        self.abi = list(abi if abi is not None else load_federation_artifact()["abi"])
        self.account = account
        self.deployment_block = deployment_block
        self.codec = FunctionCodec(self.abi)
        self.errors = RevertDecoder(self.abi)
        self.events = EventDecoder(self.abi)

    @classmethod
    def from_deployment(
        cls, conn: Connection, deployment: Deployment, account: Signer | None = None
    ) -> FederationContract:
        """The contract of a recorded deployment, writes signed by ``account`` (None: read-only)."""
        return cls(conn, deployment.address, None, account, deployment_block=deployment.block_number)

    def with_account(self, account: Signer) -> FederationContract:
        """The same contract, writes signed by ``account``."""
        return FederationContract(self.conn, self.address, self.abi, account, deployment_block=self.deployment_block)

    # --- plumbing ------------------------------------------------------------------

    def _call(self, function: str, *args: Any) -> tuple[Any, ...]:
        data = self.codec.encode_call(function, *args)
        tx: dict[str, Any] = {"to": self.address, "data": data}
        if self.account is not None:
            tx["from"] = self.account.address
        raw = self.conn.call(tx, decoder=self.errors, function=function)
        return self.codec.decode_result(function, raw)

    def _send(self, function: str, *args: Any, round_id: int | None = None, gas: int | None = None) -> TxReport:
        return self._transact(function, *args, round_id=round_id, gas=gas)[0]

    def _transact(
        self, function: str, *args: Any, round_id: int | None = None, gas: int | None = None
    ) -> tuple[TxReport, dict[str, Any]]:
        if self.account is None:
            raise ChainError(f"{function}: no signing account for writes to {self.address}")
        data = self.codec.encode_call(function, *args)
        return self.conn.send_transaction(
            self.account,
            to=self.address,
            data=data,
            gas=gas,
            function=function,
            decoder=self.errors,
            round_id=RoundId(round_id) if round_id is not None else None,
        )

    # --- participants ----------------------------------------------------------------

    def register(
        self, organisation: str, industry: str, public_key: bytes, declared_samples: int, *, gas: int | None = None
    ) -> TxReport:
        """``register``: ask to join, with the organisation, its industry, a public key and the size of its
        training dataset (``declared_samples``, approved with admission: no commitment may claim more)."""
        f = "register"
        return self._send(
            f, organisation, industry, bytes(public_key), _uint(declared_samples, 64, "declared_samples", f), gas=gas
        )

    def admit(self, participant: str, *, gas: int | None = None) -> TxReport:
        """``admit`` (admin): activate a registered participant."""
        return self._send("admit", _address(participant, "participant", "admit"), gas=gas)

    def remove(self, participant: str, reason: str, *, gas: int | None = None) -> TxReport:
        """``remove`` (admin): remove a participant, with the reason recorded in the event."""
        return self._send("remove", _address(participant, "participant", "remove"), reason, gas=gas)

    def leave(self, reason: str, *, gas: int | None = None) -> TxReport:
        """``leave``: the signer (a pending or active participant) removes itself, with the reason recorded in the
        event; its membership token is burned and, under incentives, it can then ask for its deposit back."""
        return self._send("leave", reason, gas=gas)

    # --- task ------------------------------------------------------------------------

    def configure_task(
        self,
        model_spec_digest: bytes,
        strategy_digest: bytes,
        data_schema_digest: bytes,
        config_cid: str,
        max_commit_duration: int,
        *,
        gas: int | None = None,
    ) -> TxReport:
        """``configureTask`` (admin): set the next task version's digests, the CID of its document and the
        longest commit window (``max_commit_duration`` seconds) its rounds may be opened with."""
        f = "configureTask"
        return self._send(
            f,
            _digest(model_spec_digest, "model_spec_digest", f),
            _digest(strategy_digest, "strategy_digest", f),
            _digest(data_schema_digest, "data_schema_digest", f),
            config_cid,
            _uint(max_commit_duration, 64, "max_commit_duration", f),
            gas=gas,
        )

    def configure_private_task(
        self,
        model_spec_digest: bytes,
        strategy_digest: bytes,
        data_schema_digest: bytes,
        config_cid: str,
        max_commit_duration: int,
        privacy_policy_digest: bytes,
        epsilon_budget: int,
        *,
        gas: int | None = None,
    ) -> TxReport:
        """``configurePrivateTask`` (admin): as :meth:`configure_task`, with the digest of the task's privacy policy
        and the epsilon budget per participant (micro-epsilon); the rounds of that version are private."""
        f = "configurePrivateTask"
        return self._send(
            f,
            _digest(model_spec_digest, "model_spec_digest", f),
            _digest(strategy_digest, "strategy_digest", f),
            _digest(data_schema_digest, "data_schema_digest", f),
            config_cid,
            _uint(max_commit_duration, 64, "max_commit_duration", f),
            _digest(privacy_policy_digest, "privacy_policy_digest", f),
            _uint(epsilon_budget, 64, "epsilon_budget", f),
            gas=gas,
        )

    # --- rounds ----------------------------------------------------------------------

    def open_round(
        self,
        base_model_digest: bytes,
        base_model_cid: str,
        commit_duration: int,
        min_updates: int,
        reveal_duration: int = 0,
        *,
        gas: int | None = None,
    ) -> TxReport:
        """``openRound`` (aggregator): the report carries the new round's id, read from ``RoundOpened``. A
        ``reveal_duration`` > 0 opens a commit-reveal round."""
        f = "openRound"
        report, receipt = self._transact(
            f,
            _digest(base_model_digest, "base_model_digest", f),
            base_model_cid,
            _uint(commit_duration, 64, "commit_duration", f),
            _uint(min_updates, 32, "min_updates", f),
            _uint(reveal_duration, 64, "reveal_duration", f),
            gas=gas,
        )
        for raw in receipt["logs"]:
            decoded = self.events.decode(raw)
            if decoded is not None and decoded.event == "RoundOpened":
                round_id = RoundId(int(decoded.args["roundId"]))
                log.info("round %d opened: tx %s", round_id, report.tx_hash)
                return replace(report, round_id=round_id)
        raise ChainError(f"openRound: transaction {report.tx_hash} emitted no RoundOpened event")

    def open_secure_round(
        self,
        base_model_digest: bytes,
        base_model_cid: str,
        advertise_duration: int,
        commit_duration: int,
        min_updates: int,
        unmask_duration: int,
        *,
        gas: int | None = None,
    ) -> TxReport:
        """``openSecureRound`` (aggregator): a secure-aggregation round with an advertise phase of
        ``advertise_duration`` seconds, then a commit phase of ``commit_duration``, then an unmask phase of
        ``unmask_duration``; the report carries the new round's id, read from ``RoundOpened``."""
        f = "openSecureRound"
        report, receipt = self._transact(
            f,
            _digest(base_model_digest, "base_model_digest", f),
            base_model_cid,
            _uint(advertise_duration, 64, "advertise_duration", f),
            _uint(commit_duration, 64, "commit_duration", f),
            _uint(min_updates, 32, "min_updates", f),
            _uint(unmask_duration, 64, "unmask_duration", f),
            gas=gas,
        )
        for raw in receipt["logs"]:
            decoded = self.events.decode(raw)
            if decoded is not None and decoded.event == "SecureRoundOpened":
                round_id = RoundId(int(decoded.args["roundId"]))
                log.info("secure round %d opened: tx %s", round_id, report.tx_hash)
                return replace(report, round_id=round_id)
        raise ChainError(f"openSecureRound: transaction {report.tx_hash} emitted no SecureRoundOpened event")

    def open_signed_round(
        self,
        base_model_digest: bytes,
        base_model_cid: str,
        commit_duration: int,
        min_updates: int,
        escape_duration: int,
        *,
        gas: int | None = None,
    ) -> TxReport:
        """``openSignedRound`` (aggregator): a signed round whose commitments are signed off chain for
        ``commit_duration`` seconds, then posted as one set, followed by an escape window of ``escape_duration``
        seconds; the report carries the new round's id, read from ``SignedRoundOpened``."""
        f = "openSignedRound"
        report, receipt = self._transact(
            f,
            _digest(base_model_digest, "base_model_digest", f),
            base_model_cid,
            _uint(commit_duration, 64, "commit_duration", f),
            _uint(min_updates, 32, "min_updates", f),
            _uint(escape_duration, 64, "escape_duration", f),
            gas=gas,
        )
        for raw in receipt["logs"]:
            decoded = self.events.decode(raw)
            if decoded is not None and decoded.event == "SignedRoundOpened":
                round_id = RoundId(int(decoded.args["roundId"]))
                log.info("signed round %d opened: tx %s", round_id, report.tx_hash)
                return replace(report, round_id=round_id)
        raise ChainError(f"openSignedRound: transaction {report.tx_hash} emitted no SignedRoundOpened event")

    def post_commitment_set(
        self, round_id: int, set_root: bytes, count: int, set_digest: bytes, set_cid: str, *, gas: int | None = None
    ) -> TxReport:
        """``postCommitmentSet`` (aggregator): the Merkle root, count, digest and CID of the set of signed
        commitments of a signed round, once; its escape window opens."""
        f = "postCommitmentSet"
        return self._send(
            f,
            _uint(round_id, 256, "round_id", f),
            _digest(set_root, "set_root", f),
            _uint(count, 32, "count", f),
            _digest(set_digest, "set_digest", f),
            set_cid,
            round_id=round_id,
            gas=gas,
        )

    def post_advertisement(self, round_id: int, digest: bytes, cid: str, *, gas: int | None = None) -> TxReport:
        """``postAdvertisement``: advertise the signer's keys for a secure round (the advertisement blob's digest
        and CID), once, in its advertise phase."""
        f = "postAdvertisement"
        return self._send(
            f, _uint(round_id, 256, "round_id", f), _digest(digest, "digest", f), cid, round_id=round_id, gas=gas
        )

    def post_unmasking_shares(self, round_id: int, digest: bytes, cid: str, *, gas: int | None = None) -> TxReport:
        """``postUnmaskingShares``: post the signer's unmasking shares for a secure round it committed in (the
        shares blob's digest and CID), once, after the commit phase and up to the unmask deadline."""
        f = "postUnmaskingShares"
        return self._send(
            f, _uint(round_id, 256, "round_id", f), _digest(digest, "digest", f), cid, round_id=round_id, gas=gas
        )

    def commit_update(
        self,
        round_id: int,
        update_digest: bytes,
        cid: str,
        num_samples: int,
        metadata_digest: bytes,
        *,
        gas: int | None = None,
    ) -> TxReport:
        """``commitUpdate``: commit an update to an open round (digest, CID, sample count, metadata digest)."""
        f = "commitUpdate"
        return self._send(
            f,
            _uint(round_id, 256, "round_id", f),
            _digest(update_digest, "update_digest", f),
            cid,
            _uint(num_samples, 64, "num_samples", f),
            _digest(metadata_digest, "metadata_digest", f),
            round_id=round_id,
            gas=gas,
        )

    def commit_private_update(
        self,
        round_id: int,
        update_digest: bytes,
        cid: str,
        num_samples: int,
        metadata_digest: bytes,
        epsilon_spent: int,
        accountant_digest: bytes,
        *,
        gas: int | None = None,
    ) -> TxReport:
        """``commitPrivateUpdate``: commit an update to an open private round with the signer's cumulative epsilon
        (micro-epsilon) and the digest of the round's accountant inputs."""
        f = "commitPrivateUpdate"
        return self._send(
            f,
            _uint(round_id, 256, "round_id", f),
            _digest(update_digest, "update_digest", f),
            cid,
            _uint(num_samples, 64, "num_samples", f),
            _digest(metadata_digest, "metadata_digest", f),
            _uint(epsilon_spent, 64, "epsilon_spent", f),
            _digest(accountant_digest, "accountant_digest", f),
            round_id=round_id,
            gas=gas,
        )

    def seal_update(self, round_id: int, seal: bytes, *, gas: int | None = None) -> TxReport:
        """``sealUpdate``: seal an update in a commit-reveal round's commit phase (see
        :func:`fedchain.ports.update_seal`)."""
        f = "sealUpdate"
        return self._send(f, _uint(round_id, 256, "round_id", f), _digest(seal, "seal", f), round_id=round_id, gas=gas)

    def reveal_update(
        self,
        round_id: int,
        update_digest: bytes,
        cid: str,
        num_samples: int,
        metadata_digest: bytes,
        salt: bytes,
        *,
        gas: int | None = None,
    ) -> TxReport:
        """``revealUpdate``: reveal the sealed update after the commit phase (emits ``UpdateCommitted``)."""
        f = "revealUpdate"
        return self._send(
            f,
            _uint(round_id, 256, "round_id", f),
            _digest(update_digest, "update_digest", f),
            cid,
            _uint(num_samples, 64, "num_samples", f),
            _digest(metadata_digest, "metadata_digest", f),
            _digest(salt, "salt", f),
            round_id=round_id,
            gas=gas,
        )

    def finalize_round(
        self,
        round_id: int,
        model_digest: bytes,
        model_cid: str,
        merkle_root: bytes,
        aggregation_digest: bytes,
        evidence_digest: bytes,
        evidence_cid: str,
        included_count: int,
        *,
        gas: int | None = None,
    ) -> TxReport:
        """``finalizeRound`` (aggregator): record the new model, the Merkle root of the included updates and
        the evidence."""
        f = "finalizeRound"
        return self._send(
            f,
            _uint(round_id, 256, "round_id", f),
            _digest(model_digest, "model_digest", f),
            model_cid,
            _digest(merkle_root, "merkle_root", f),
            _digest(aggregation_digest, "aggregation_digest", f),
            _digest(evidence_digest, "evidence_digest", f),
            evidence_cid,
            _uint(included_count, 32, "included_count", f),
            round_id=round_id,
            gas=gas,
        )

    def close_round(self, round_id: int, reason: str, *, gas: int | None = None) -> TxReport:
        """``closeRound`` (aggregator): end a round without a model, with the reason."""
        f = "closeRound"
        return self._send(f, _uint(round_id, 256, "round_id", f), reason, round_id=round_id, gas=gas)

    # --- verification, disputes and exclusion contests ---------------------------------

    def set_verification_policy(self, quorum_percent: int, *, gas: int | None = None) -> TxReport:
        """``setVerificationPolicy`` (admin): the percentage (0-100) of a round's included participants whose
        positive attestations the next round needs to open; 0 for none."""
        f = "setVerificationPolicy"
        return self._send(f, _uint(quorum_percent, 8, "quorum_percent", f), gas=gas)

    def attest_round(
        self,
        round_id: int,
        model_digest: bytes,
        ok: bool,
        findings_digest: bytes,
        findings_cid: str,
        inclusion: Inclusion,
        *,
        gas: int | None = None,
    ) -> TxReport:
        """``attestRound``: the signer's verdict on a finalised round it was included in, with the proof of its
        inclusion (the CID is hashed here, as the contract's leaf takes it)."""
        f = "attestRound"
        if not isinstance(ok, bool):
            raise ChainError(f"{f}: ok must be a bool, got {ok!r}")
        proof = [_digest(p, f"inclusion.proof[{i}]", f) for i, p in enumerate(inclusion.proof)]
        encoded = (
            _digest(inclusion.update_digest, "inclusion.update_digest", f),
            keccak(str(inclusion.cid).encode("utf-8")),
            _uint(inclusion.num_samples, 64, "inclusion.num_samples", f),
            _digest(inclusion.metadata_digest, "inclusion.metadata_digest", f),
            proof,
        )
        return self._send(
            f,
            _uint(round_id, 256, "round_id", f),
            _digest(model_digest, "model_digest", f),
            ok,
            _digest(findings_digest, "findings_digest", f),
            str(findings_cid),
            encoded,
            round_id=round_id,
            gas=gas,
        )

    def dispute_round(
        self,
        round_id: int,
        accused: str,
        findings_digest: bytes,
        findings_cid: str,
        reason: str,
        *,
        gas: int | None = None,
    ) -> TxReport:
        """``disputeRound`` (admin): mark a finalised round disputed, accusing ``accused`` with the findings blob."""
        f = "disputeRound"
        return self._send(
            f,
            _uint(round_id, 256, "round_id", f),
            _address(accused, "accused", f),
            _digest(findings_digest, "findings_digest", f),
            str(findings_cid),
            reason,
            round_id=round_id,
            gas=gas,
        )

    def contest_exclusion(self, round_id: int, update_digest: bytes, cid: str, *, gas: int | None = None) -> TxReport:
        """``contestExclusion``: the signer announces its update blob of a finalised round as available."""
        f = "contestExclusion"
        return self._send(
            f, _uint(round_id, 256, "round_id", f), _digest(update_digest, "update_digest", f), str(cid),
            round_id=round_id, gas=gas,
        )

    def answer_contest(self, round_id: int, participant: str, available: bool, *, gas: int | None = None) -> TxReport:
        """``answerContest`` (aggregator): whether the contested blob could be fetched this time."""
        f = "answerContest"
        if not isinstance(available, bool):
            raise ChainError(f"{f}: available must be a bool, got {available!r}")
        return self._send(
            f, _uint(round_id, 256, "round_id", f), _address(participant, "participant", f), available,
            round_id=round_id, gas=gas,
        )

    def verification_policy(self) -> int:
        """``verificationPolicy``: the attestation quorum in percent (0: none)."""
        return int(self._call("verificationPolicy")[0])

    def current_model_round(self) -> RoundId:
        """``currentModelRound``: the round the current model comes from (0: initial model or a fallback)."""
        return RoundId(int(self._call("currentModelRound")[0]))

    def attestation_counts(self, round_id: int) -> tuple[int, int]:
        """``attestationCounts``: the round's (positive, negative) attestations."""
        f = "attestationCounts"
        ok, negative = self._call(f, _uint(round_id, 256, "round_id", f))
        return int(ok), int(negative)

    def attestation_of(self, round_id: int, participant: str) -> int:
        """``attestationOf``: 0 none, 1 positive, 2 negative."""
        f = "attestationOf"
        return int(self._call(f, _uint(round_id, 256, "round_id", f), _address(participant, "participant", f))[0])

    def attestation_quorum(self, round_id: int) -> int:
        """``attestationQuorum``: the positive attestations the round needs under the current policy."""
        f = "attestationQuorum"
        return int(self._call(f, _uint(round_id, 256, "round_id", f))[0])

    def contest_of(self, round_id: int, participant: str) -> int:
        """``contestOf``: 0 none, 1 open, 2 answered available, 3 answered unavailable."""
        f = "contestOf"
        return int(self._call(f, _uint(round_id, 256, "round_id", f), _address(participant, "participant", f))[0])

    def membership(self) -> Address:
        """``membership``: the address of the Federation's membership token."""
        return Address(to_checksum_address(self._call("membership")[0]))

    # --- roles -----------------------------------------------------------------------

    def grant_role(self, role: bytes, account: str) -> TxReport:
        """``grantRole``: give ``account`` the role (the role's admin only)."""
        return self._send("grantRole", _digest(role, "role", "grantRole"), _address(account, "account", "grantRole"))

    def revoke_role(self, role: bytes, account: str) -> TxReport:
        """``revokeRole``: take the role from ``account`` (the role's admin only)."""
        return self._send("revokeRole", _digest(role, "role", "revokeRole"), _address(account, "account", "revokeRole"))

    def has_role(self, role: bytes, account: str) -> bool:
        """``hasRole``: whether ``account`` holds the role."""
        return bool(self._call("hasRole", _digest(role, "role", "hasRole"), _address(account, "account", "hasRole"))[0])

    # --- views -----------------------------------------------------------------------

    def participant(self, address: str) -> ParticipantRecord:
        """``participant``: the contract's record of ``address`` (without the registration details of the events)."""
        checksummed = _address(address, "participant", "participant")
        status, last_round, registered, changed, declared = self._call("participant", checksummed)
        return ParticipantRecord(
            address=Address(checksummed),
            status=ParticipantStatus(status),
            last_committed_round=RoundId(int(last_round)),
            registered_block=int(registered),
            status_changed_block=int(changed),
            declared_samples=int(declared),
        )

    def active_count(self) -> int:
        """``activeCount``: the number of active participants."""
        return int(self._call("activeCount")[0])

    def latest_round_id(self) -> RoundId:
        """``latestRoundId``: the id of the latest round opened (0 before the first)."""
        return RoundId(int(self._call("latestRoundId")[0]))

    def current_model_digest(self) -> Digest:
        """``currentModelDigest``: the digest of the current global model."""
        return Digest(bytes(self._call("currentModelDigest")[0]))

    def task(self) -> TaskView:
        """``task``: the current task version and its three digests."""
        version, spec, strategy, schema, max_commit_duration = self._call("task")
        return TaskView(int(version), Digest(spec), Digest(strategy), Digest(schema), int(max_commit_duration))

    def privacy_policy(self) -> PrivacyPolicyView:
        """``privacyPolicy``: the privacy policy digest and epsilon budget of the task in force (zeros: none)."""
        digest, budget = self._call("privacyPolicy")
        return PrivacyPolicyView(Digest(bytes(digest)), int(budget))

    def epsilon_spent(self, participant: str) -> int:
        """``epsilonSpent``: the participant's recorded cumulative epsilon (micro-epsilon)."""
        f = "epsilonSpent"
        return int(self._call(f, _address(participant, "participant", f))[0])

    def is_private_round(self, round_id: int) -> bool:
        """Whether the round was opened while the task had a privacy budget (``getRound().privateRound``; the
        contract's ``isPrivateRound`` view gave way to signed rounds: the dispatch of ``commitUpdate`` stays as
        short as before them)."""
        return self.get_round(_uint(round_id, 256, "round_id", "is_private_round")).private_round

    def get_round(self, round_id: int) -> RoundInfo:
        """``getRound``: the contract's storage of round ``round_id``."""
        (values,) = self._call("getRound", _uint(round_id, 256, "round_id", "getRound"))
        (status, deadline, min_updates, commits, eligible, version, included, commit_reveal, private_round,
         secure_round, signed_round, base, model, root, agg, evidence, reveal_deadline, seals, advertise_deadline,
         unmask_deadline, advertisements, unmaskings) = values
        return RoundInfo(
            status=RoundStatus(status),
            deadline=int(deadline),
            min_updates=int(min_updates),
            commit_count=int(commits),
            eligible_count=int(eligible),
            task_version=int(version),
            included_count=int(included),
            base_model_digest=Digest(base),
            model_digest=Digest(model),
            merkle_root=Digest(root),
            aggregation_digest=Digest(agg),
            evidence_digest=Digest(evidence),
            commit_reveal=bool(commit_reveal),
            reveal_deadline=int(reveal_deadline),
            seal_count=int(seals),
            private_round=bool(private_round),
            secure_round=bool(secure_round),
            advertise_deadline=int(advertise_deadline),
            unmask_deadline=int(unmask_deadline),
            advertisement_count=int(advertisements),
            unmasking_count=int(unmaskings),
            signed_round=bool(signed_round),
        )

    def signed_round(self, round_id: int) -> SignedRoundView:
        """``signedRound``: the signed-round record of round ``round_id`` (all zero for any other round)."""
        f = "signedRound"
        signed, escape_duration, escape_deadline, set_count, set_root, set_digest = self._call(
            f, _uint(round_id, 256, "round_id", f)
        )
        return SignedRoundView(
            signed=bool(signed),
            escape_duration=int(escape_duration),
            escape_deadline=int(escape_deadline),
            set_count=int(set_count),
            set_root=Digest(bytes(set_root)),
            set_digest=Digest(bytes(set_digest)),
        )

    def advertise_phase_over(self, round_id: int) -> bool:
        """``Federation.advertisePhaseOver``: a secure round's advertise phase is over (its deadline passed as of
        the latest block, or every eligible participant advertised), so masked inputs may be committed, or the round
        already ended; refused (``FederationNotSecureRound``) for any other round."""
        f = "advertisePhaseOver"
        return bool(self._call(f, _uint(round_id, 256, "round_id", f))[0])

    def secure_participation(self, round_id: int, participant: str) -> tuple[bool, bool]:
        """``secureParticipation``: whether the participant advertised in the secure round, and whether it posted
        its unmasking shares."""
        f = "secureParticipation"
        advertised, unmasked = self._call(f, _uint(round_id, 256, "round_id", f), _address(participant, "participant", f))
        return bool(advertised), bool(unmasked)

    def commit_phase_over(self, round_id: int) -> bool:
        """``Federation.commitPhaseOver``: the commit phase is over (deadline passed as of the latest
        block, or as many commits - seals, in a commit-reveal round - as participants eligible at opening)
        or the round already ended. For a round without commit-reveal: the round may be ended."""
        f = "commitPhaseOver"
        return bool(self._call(f, _uint(round_id, 256, "round_id", f))[0])

    def reveal_phase_over(self, round_id: int) -> bool:
        """``Federation.revealPhaseOver``: the round may be ended (for a commit-reveal round: its reveal
        deadline passed, or its commit phase is over and every seal was revealed; for a secure round: its unmask
        deadline passed, or its commit phase is over and every committer posted its unmasking shares) or already
        was."""
        f = "revealPhaseOver"
        return bool(self._call(f, _uint(round_id, 256, "round_id", f))[0])

    def seal_of(self, round_id: int, participant: str) -> Digest:
        """``sealOf``: the participant's seal in the round, not yet revealed (zero if none)."""
        f = "sealOf"
        (seal,) = self._call(f, _uint(round_id, 256, "round_id", f), _address(participant, "participant", f))
        return Digest(bytes(seal))

    def update_seal(
        self,
        round_id: int,
        participant: str,
        update_digest: bytes,
        cid: str,
        num_samples: int,
        metadata_digest: bytes,
        salt: bytes,
    ) -> Digest:
        """The seal ``sealUpdate`` takes and ``revealUpdate`` checks (:func:`fedchain.ports.update_seal`; the
        contract no longer has a view of it: its runtime code has no room)."""
        f = "update_seal"
        return update_seal(
            _uint(round_id, 256, "round_id", f),
            _address(participant, "participant", f),
            _digest(update_digest, "update_digest", f),
            cid,
            _uint(num_samples, 64, "num_samples", f),
            _digest(metadata_digest, "metadata_digest", f),
            _digest(salt, "salt", f),
        )

    def commitment_leaf(
        self, round_id: int, participant: str, update_digest: bytes, cid: str, num_samples: int, metadata_digest: bytes
    ) -> Digest:
        """The Merkle leaf ``attestRound`` checks for a commitment (:func:`fedchain.codec.merkle.commitment_leaf`)."""
        f = "commitment_leaf"
        return commitment_leaf(
            _uint(round_id, 256, "round_id", f),
            _address(participant, "participant", f),
            _digest(update_digest, "update_digest", f),
            cid,
            _uint(num_samples, 64, "num_samples", f),
            _digest(metadata_digest, "metadata_digest", f),
        )

    def verify_inclusion(self, round_id: int, leaf: bytes, proof: Sequence[bytes]) -> bool:
        """Whether ``proof`` shows ``leaf`` under the round's recorded Merkle root (``getRound``; False while the round
        has none), as ``attestRound`` checks it (OpenZeppelin ``MerkleProof``, sorted pairs)."""
        f = "verify_inclusion"
        checked_leaf = _digest(leaf, "leaf", f)
        checked_proof = [_digest(p, f"proof[{i}]", f) for i, p in enumerate(proof)]
        root = self.get_round(_uint(round_id, 256, "round_id", f)).merkle_root
        return root != ZERO_DIGEST and verify(checked_proof, root, checked_leaf)

    # --- raw logs --------------------------------------------------------------------

    def logs(self, from_block: int, to_block: int, *, topics: list[Any] | None = None) -> list[dict[str, Any]]:
        """Raw logs of this contract in ``[from_block, to_block]``."""
        params: dict[str, Any] = {"address": self.address, "fromBlock": from_block, "toBlock": to_block}
        if topics is not None:
            params["topics"] = [_hex_topic(t) for t in topics]
        return self.conn.logs(params)


def _hex_topic(topic: Any) -> Any:
    if topic is None:
        return None
    if isinstance(topic, (list, tuple)):
        return [_hex_topic(t) for t in topic]
    return "0x" + to_bytes(topic).hex()

"""Signed rounds: commitments signed off chain, collected by the aggregator's inbox, posted as one set.

In a signed round a participant does not send ``commitUpdate`` itself. It signs its commitment (round,
participant, update digest, CID, sample count, metadata digest) as EIP-712 typed data bound to the chain id and
the federation contract (:func:`fedchain.codec.eip712.commitment_digest`) and posts it to the aggregator's
:class:`CommitmentInbox`. When the commit phase ends the aggregator seals the round's commitments, stores them as
one canonical :class:`CommitmentSet` blob and posts its Merkle root, entry count, digest and CID on chain. A
participant left out of the set forces its commitment on chain (an ordinary ``commitUpdate``) within the escape
window; :func:`inclusion_proof` lets it check its own inclusion against the posted root first.

Everyone who reads a posted set runs :func:`check_commitment_set`: every entry's signature must recover to the
participant it names, that participant must be eligible (registered and active), every entry must belong to the
round and the set to this deployment, and the posted root, count and digest must be those of the blob. Each fault
is a :class:`SetProblem` naming its culprit: the aggregator for the set as a whole and for an entry it cannot have
received from its inbox (a signature the named participant never made, an entry of another round); the signer
itself for a valid signature by a key that is not eligible.

The set's Merkle leaves are :func:`fedchain.codec.merkle.commitment_leaf`, the same leaves the round's final
Merkle root is built from, so a signed commitment and its on-chain twin are one leaf. The set's root is the
OpenZeppelin-standard root over every entry of the blob (:data:`~fedchain.types.ZERO_DIGEST` for an empty set).

Formats (all hex lower case, ``0x``-prefixed; addresses in their EIP-55 checksummed case):

- a signed commitment is the JSON object ``{"round", "participant", "update_digest", "cid", "num_samples",
  "metadata_digest", "signature"}`` (the signature 65 bytes ``r || s || v``, ``v`` 27 or 28);
- a set blob is the canonical JSON document ``{"format": "fedchain.commitment-set/1", "chain_id", "contract",
  "round", "commitments": [...]}``, its commitments strictly sorted by participant address (one per participant).

Every decoder treats its input as hostile: sizes and entry counts are bounded before anything is parsed
(:mod:`fedchain.codec.bounded_json`), every field is checked, and the error names the field and the entry.

The inbox speaks HTTP/1.0 on the aggregator's host::

    POST /v1/rounds/<round>/commitments             a signed commitment (at most 4 KiB)
         200 {"leaf": "0x.."}  accepted, or the same commitment again (idempotent)
         400 not JSON, a field missing, unknown or malformed, the body's round is not the path's
         403 the signature does not recover to the participant, or the participant is not eligible
         409 the round is not the open one, or the participant already sent a different commitment
             (the first one stays: equivocation is refused and logged)
         410 the round's set is sealed: too late, force the commitment on chain
         408 the body did not arrive within the socket timeout
         411 no Content-Length        413 a body over 4 KiB
         503 as many connections are being served as the inbox allows: retry
    GET  /v1/rounds/<round>/commitments/<address>   200 the stored commitment, 404 none

Every error answer is ``{"error": "<reason>"}``. Each connection has a socket timeout and the body an overall
deadline, and every connection is served by its own thread, so a slow or silent client stalls only itself.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

from fedchain.codec.abi import is_checksum_address
from fedchain.codec.blob import encode_json_doc
from fedchain.codec.bounded_json import JsonLimits, parse_json
from fedchain.codec.canonical import canonical_json, sha256_digest
from fedchain.codec.eip712 import commitment_digest
from fedchain.codec.merkle import MerkleTree, commitment_leaf
from fedchain.codec.secp256k1 import SIGNATURE_LENGTH, address_of_key, recover_address, sign_digest
from fedchain.errors import (
    AbiEncodingError,
    AggregationError,
    BlobFormatError,
    InboxRefusedError,
    InboxUnavailableError,
    IntegrityError,
    SignatureError,
)
from fedchain.ports import UpdateCommitment
from fedchain.protocol.evidence import _fields, _json_type  # the documents' field checks, shared
from fedchain.types import DIGEST_SIZE, ZERO_DIGEST, Address, Cid, Digest, RoundId, digest_hex

__all__ = [
    "AGGREGATOR",
    "DEFAULT_MAX_SET_ENTRIES",
    "set_bytes_bound",
    "MAX_BODY_BYTES",
    "MAX_CID_LENGTH",
    "SET_FORMAT",
    "CommitmentInbox",
    "CommitmentSet",
    "SetProblem",
    "SetProblemKind",
    "SignedCommitment",
    "check_commitment_set",
    "commitment_set_digest",
    "commitment_set_root",
    "decode_commitment_set",
    "encode_commitment_set",
    "inclusion_proof",
    "send_commitment",
    "sign_commitment",
    "verify_commitment",
]

log = logging.getLogger(__name__)

SET_KIND = "fedchain.commitment-set"
SET_VERSION = 1
SET_FORMAT = f"{SET_KIND}/{SET_VERSION}"
"""The ``format`` of a commitment-set blob: its kind and version."""
DEFAULT_MAX_SET_ENTRIES = 10_000
"""How many commitments :func:`decode_commitment_set` accepts unless told otherwise."""
MAX_CID_LENGTH = 128
"""The longest CID string a signed commitment may carry (every CID fedchain writes has 59 characters)."""
MAX_BODY_BYTES = 4096
"""The largest request body the inbox reads: one signed commitment is about 500 bytes."""
MAX_ANSWER_BYTES = 4096
"""The largest answer :func:`send_commitment` reads from an inbox."""
MAX_ENTRY_BYTES = 1024
"""A bound on one commitment's JSON inside a set blob (the blob's byte bound is this times its entries)."""
AGGREGATOR = "aggregator"
"""The culprit of a :class:`SetProblem` that is the aggregator's."""
DEFAULT_SOCKET_TIMEOUT_S = 10.0
_MAX_DRAINED = 64 * 1024  # an oversized body up to this size is read before the 413, a larger one is not
_SEALED_KEPT = 16
DEFAULT_MAX_CONNECTIONS = 64
_TURN_AWAY_S = 0.1  # how long a connection beyond max_connections is read from after its 503
_BUSY_BODY = b'{"error":"the inbox is serving as many connections as it can; retry"}'
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
         % len(_BUSY_BODY)) + _BUSY_BODY  # sealed rounds whose commitments the inbox still serves (and answers 410 for)
_MAX_UINT64 = 2**64

_COMMITMENT_FIELDS = frozenset(
    {"round", "participant", "update_digest", "cid", "num_samples", "metadata_digest", "signature"}
)
_SET_FIELDS = frozenset({"format", "chain_id", "contract", "round", "commitments"})
_COMMITMENT_LIMITS = JsonLimits(max_bytes=MAX_BODY_BYTES, max_depth=1, max_members=8, max_values=9)
_ANSWER_LIMITS = JsonLimits(max_bytes=MAX_ANSWER_BYTES, max_depth=1, max_members=4, max_values=5)
_HEX = re.compile(r"0x[0-9a-f]*")


# --- signed commitments ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignedCommitment:
    """A participant's commitment to its update for one round, signed off chain (EIP-712).

    The fields are those of ``commitUpdate``; ``signature`` is 65 bytes ``r || s || v`` over
    :meth:`digest` by the key of ``participant`` (a checksummed address)."""

    round_id: RoundId
    participant: Address
    update_digest: Digest
    cid: Cid
    num_samples: int
    metadata_digest: Digest
    signature: bytes

    def digest(self, chain_id: int, contract: Address | str) -> bytes:
        """The EIP-712 digest signed for this commitment on the deployment ``(chain_id, contract)``;
        :class:`~fedchain.errors.AbiEncodingError` when a field is out of range."""
        return commitment_digest(
            chain_id,
            contract,
            int(self.round_id),
            self.participant,
            bytes(self.update_digest),
            str(self.cid),
            int(self.num_samples),
            bytes(self.metadata_digest),
        )

    def leaf(self) -> Digest:
        """The commitment's Merkle leaf (:func:`~fedchain.codec.merkle.commitment_leaf`), the same leaf the
        round's final Merkle root uses for it."""
        return commitment_leaf(
            int(self.round_id),
            self.participant,
            bytes(self.update_digest),
            str(self.cid),
            int(self.num_samples),
            bytes(self.metadata_digest),
        )

    def signer(self, chain_id: int, contract: Address | str) -> Address:
        """The address the signature recovers to on ``(chain_id, contract)``; SignatureError when it is malformed
        or a field cannot be signed."""
        try:
            digest = self.digest(chain_id, contract)
        except AbiEncodingError as err:
            raise SignatureError(f"the commitment of {self.participant} cannot be signed as EIP-712: {err}") from err
        return recover_address(digest, self.signature)

    def to_json(self) -> dict[str, Any]:
        """The commitment as a JSON object (hex strings, the address checksummed)."""
        return {
            "round": int(self.round_id),
            "participant": str(self.participant),
            "update_digest": digest_hex(self.update_digest),
            "cid": str(self.cid),
            "num_samples": int(self.num_samples),
            "metadata_digest": digest_hex(self.metadata_digest),
            "signature": "0x" + bytes(self.signature).hex(),
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes of :meth:`to_json` (the inbox's request body)."""
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, data: Any, *, where: str = "signed commitment") -> SignedCommitment:
        """A commitment from its JSON object; :class:`~fedchain.errors.BlobFormatError` naming ``where`` and the
        first field that is missing, unknown or malformed (a wrong length, upper-case or unprefixed hex, an address
        not in its checksummed case, a sample count that is not a positive 64-bit integer, an empty CID)."""
        _fields(data, _COMMITMENT_FIELDS, where)
        participant = data["participant"]
        if not isinstance(participant, str) or not is_checksum_address(participant) or not participant.startswith("0x"):
            raise BlobFormatError(f"{where}: participant {_shown(participant)} is not a checksummed 0x address")
        cid = data["cid"]
        if not isinstance(cid, str) or not cid:
            raise BlobFormatError(f"{where}: cid {_shown(cid)} is not a non-empty string")
        if len(cid) > MAX_CID_LENGTH:
            raise BlobFormatError(f"{where}: cid is {len(cid)} characters, more than {MAX_CID_LENGTH}")
        update_digest = _hex(data, "update_digest", DIGEST_SIZE, where)
        if update_digest == ZERO_DIGEST:
            raise BlobFormatError(f"{where}: update_digest is zero")
        return cls(
            round_id=RoundId(_uint64(data, "round", where)),
            participant=Address(participant),
            update_digest=Digest(update_digest),
            cid=Cid(cid),
            num_samples=_uint64(data, "num_samples", where, minimum=1),
            metadata_digest=Digest(_hex(data, "metadata_digest", DIGEST_SIZE, where)),
            signature=_hex(data, "signature", SIGNATURE_LENGTH, where),
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = "signed commitment") -> SignedCommitment:
        """A commitment from at most :data:`MAX_BODY_BYTES` of strict JSON (not necessarily canonical);
        BlobFormatError otherwise."""
        return cls.from_json(parse_json(data, _COMMITMENT_LIMITS, where), where=where)

    def as_commitment(self, *, index: int = 0, block_number: int = 0, tx_hash: str = "") -> UpdateCommitment:
        """This commitment as an :class:`~fedchain.ports.UpdateCommitment`, which screening and aggregation
        consume like an ``UpdateCommitted`` event.

        An off-chain commitment has no event of its own: ``block_number`` and ``tx_hash`` are those of the
        transaction that posted its set (0 and "" before it is posted) and ``log_index`` is ``index``, its position
        in the set (sorted by participant). Screening orders identical payloads by (block, log index), so every
        commitment of a posted set precedes one forced on chain later, and within the set the lower address comes
        first. A signed commitment carries no privacy claim (epsilon 0, zero accountant digest)."""
        return UpdateCommitment(
            round_id=RoundId(int(self.round_id)),
            participant=self.participant,
            update_digest=Digest(bytes(self.update_digest)),
            cid=Cid(str(self.cid)),
            num_samples=int(self.num_samples),
            metadata_digest=Digest(bytes(self.metadata_digest)),
            block_number=int(block_number),
            tx_hash=tx_hash,
            log_index=int(index),
        )


def sign_commitment(
    private_key: bytes,
    chain_id: int,
    contract: Address | str,
    round_id: int,
    participant: Address | str,
    update_digest: bytes,
    cid: str,
    num_samples: int,
    metadata_digest: bytes,
) -> SignedCommitment:
    """Sign a commitment with the participant's key (deterministic: the same inputs give the same bytes).

    :class:`~fedchain.errors.SignatureError` when ``private_key`` is not the key of ``participant`` (the
    signature would not verify), :class:`~fedchain.errors.AbiEncodingError` for a field out of range,
    :class:`~fedchain.errors.KeystoreError` for a malformed key. The key is neither logged nor kept."""
    signer = address_of_key(private_key)
    if signer.lower() != str(participant).lower():
        raise SignatureError(f"the key given is that of {signer}, not of the participant {participant}")
    digest = commitment_digest(
        chain_id, contract, round_id, participant, update_digest, cid, num_samples, metadata_digest
    )
    return SignedCommitment(
        round_id=RoundId(int(round_id)),
        participant=signer,
        update_digest=Digest(bytes(update_digest)),
        cid=Cid(cid),
        num_samples=int(num_samples),
        metadata_digest=Digest(bytes(metadata_digest)),
        signature=sign_digest(private_key, digest),
    )


def verify_commitment(sc: SignedCommitment, chain_id: int, contract: Address | str) -> None:
    """Return if ``sc``'s signature on ``(chain_id, contract)`` recovers to ``sc.participant``;
    :class:`~fedchain.errors.SignatureError` otherwise (malformed, or made for another round, contract, chain,
    content or by another key: any of these recovers another address)."""
    recovered = sc.signer(chain_id, contract)
    if recovered != sc.participant:
        raise SignatureError(
            f"the signature of the round {sc.round_id} commitment of {sc.participant} recovers {recovered}: it was not "
            f"made by {sc.participant} for this commitment on chain {chain_id}, contract {contract}"
        )


# --- the set blob ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CommitmentSet:
    """The signed commitments an aggregator sealed for one round of one deployment, strictly sorted by participant
    address (one per participant). Construction refuses unsorted or duplicate entries with BlobFormatError naming
    the entry; :meth:`build` sorts."""

    chain_id: int
    contract: Address
    round_id: RoundId
    commitments: tuple[SignedCommitment, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "commitments", tuple(self.commitments))
        previous = ""
        for i, sc in enumerate(self.commitments):
            key = str(sc.participant).lower()
            if key == previous:
                raise BlobFormatError(f"commitment set commitments[{i}]: a second commitment of {sc.participant}")
            if key < previous:
                raise BlobFormatError(
                    f"commitment set commitments[{i}]: {sc.participant} is not sorted after the address before it"
                )
            previous = key

    @classmethod
    def build(
        cls, chain_id: int, contract: Address, round_id: int, commitments: Iterable[SignedCommitment]
    ) -> CommitmentSet:
        """The set of ``commitments``, sorted by participant; BlobFormatError for two of one participant."""
        ordered = sorted(commitments, key=lambda sc: str(sc.participant).lower())
        return cls(int(chain_id), contract, RoundId(int(round_id)), tuple(ordered))

    def leaves(self) -> tuple[Digest, ...]:
        """The entries' Merkle leaves, in the set's order."""
        return tuple(sc.leaf() for sc in self.commitments)

    def find(self, participant: Address | str) -> SignedCommitment | None:
        """The entry of ``participant`` (any letter case), or None."""
        wanted = str(participant).lower()
        return next((sc for sc in self.commitments if str(sc.participant).lower() == wanted), None)

    def as_commitments(self, *, block_number: int = 0, tx_hash: str = "") -> tuple[UpdateCommitment, ...]:
        """Every entry as an UpdateCommitment (see :meth:`SignedCommitment.as_commitment`): ``block_number`` and
        ``tx_hash`` of the transaction that posted the set, the log index an entry's position."""
        return tuple(
            sc.as_commitment(index=i, block_number=block_number, tx_hash=tx_hash) for i, sc in enumerate(self.commitments)
        )


def encode_commitment_set(s: CommitmentSet) -> bytes:
    """The set's canonical blob bytes (sorted keys, no whitespace): the bytes stored, digested and posted."""
    return encode_json_doc(
        {
            "format": SET_FORMAT,
            "chain_id": int(s.chain_id),
            "contract": str(s.contract),
            "round": int(s.round_id),
            "commitments": [sc.to_json() for sc in s.commitments],
        }
    )


def commitment_set_digest(s: CommitmentSet) -> Digest:
    """SHA-256 of the set's blob bytes (the ``set_digest`` posted on chain)."""
    return sha256_digest(encode_commitment_set(s))


def set_bytes_bound(max_entries: int) -> int:
    """The most bytes a set of ``max_entries`` commitments takes in its canonical encoding."""
    return 1024 + max(0, max_entries) * MAX_ENTRY_BYTES


def decode_commitment_set(data: bytes, *, max_entries: int = DEFAULT_MAX_SET_ENTRIES) -> CommitmentSet:
    """A set from its blob bytes, read as hostile input: at most ``max_entries`` commitments and a byte bound
    that follows from it, checked before parsing; only the canonical encoding; every field of every entry checked;
    entries strictly sorted by participant. :class:`~fedchain.errors.BlobFormatError` naming the field and entry
    otherwise. Signatures, eligibility and rounds are not checked here (:func:`check_commitment_set` does)."""
    if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 0:
        raise ValueError(f"max_entries must be a non-negative integer, got {max_entries!r}")
    what = "commitment set"
    limits = JsonLimits(
        max_bytes=set_bytes_bound(max_entries),
        max_depth=3,
        max_members=max(len(_SET_FIELDS), len(_COMMITMENT_FIELDS), max_entries),
        max_values=1 + len(_SET_FIELDS) + max_entries * (1 + len(_COMMITMENT_FIELDS)),
    )
    obj = parse_json(data, limits, what)
    if not isinstance(obj, Mapping):
        raise BlobFormatError(f"{what} is a {_json_type(obj)}, not an object")
    fmt = obj.get("format")
    if not isinstance(fmt, str) or not fmt.startswith(SET_KIND + "/"):
        raise BlobFormatError(f"not a commitment set: its format is {_shown(fmt)}, expected {SET_FORMAT!r}")
    if fmt != SET_FORMAT:
        raise BlobFormatError(f"commitment set version {fmt[len(SET_KIND) + 1 :][:20]!r} is not supported (only {SET_VERSION})")
    _fields(obj, _SET_FIELDS, what)
    if encode_json_doc(obj) != bytes(data):
        raise BlobFormatError(f"{what} is not in canonical JSON form (sorted keys, no whitespace)")
    contract = obj["contract"]
    if not isinstance(contract, str) or not contract.startswith("0x") or not is_checksum_address(contract):
        raise BlobFormatError(f"{what}: contract {_shown(contract)} is not a checksummed 0x address")
    entries = obj["commitments"]
    if not isinstance(entries, list):
        raise BlobFormatError(f"{what}: commitments is a {_json_type(entries)}, not an array")
    if len(entries) > max_entries:
        raise BlobFormatError(f"{what} has {len(entries)} commitments, more than the limit of {max_entries}")
    chain_id = _uint64(obj, "chain_id", what, minimum=1)
    round_id = _uint64(obj, "round", what)
    commitments = tuple(
        SignedCommitment.from_json(e, where=f"{what} commitments[{i}]") for i, e in enumerate(entries)
    )
    return CommitmentSet(chain_id, Address(contract), RoundId(round_id), commitments)


def commitment_set_root(s: CommitmentSet) -> Digest:
    """The Merkle root of the set's leaves (:class:`~fedchain.codec.merkle.MerkleTree`); ZERO_DIGEST when empty."""
    if not s.commitments:
        return ZERO_DIGEST
    return MerkleTree.build(s.leaves()).root


def inclusion_proof(s: CommitmentSet, participant: Address | str) -> list[bytes] | None:
    """The Merkle proof of ``participant``'s entry against :func:`commitment_set_root` (verify it with
    :func:`fedchain.codec.merkle.verify`, or ``MerkleProof.verify`` on chain); None when the set has no entry of
    ``participant``."""
    sc = s.find(participant)
    if sc is None:
        return None
    return MerkleTree.build(s.leaves()).proof(sc.leaf())


class SetProblemKind(StrEnum):
    """What is wrong with a posted commitment set or one of its entries."""

    BAD_SIGNATURE = "bad_signature"  # the entry's signature does not recover to the participant it names
    NOT_ELIGIBLE = "not_eligible"  # a valid signature by a key that is not an eligible participant's
    OTHER_ROUND = "other_round"  # the set, or an entry, is of another round
    OTHER_DEPLOYMENT = "other_deployment"  # the set names another chain or contract
    ROOT_MISMATCH = "root_mismatch"  # the posted root is not the set's
    COUNT_MISMATCH = "count_mismatch"  # the posted count is not the set's
    DIGEST_MISMATCH = "digest_mismatch"  # the posted digest is not that of the set's bytes


@dataclass(frozen=True)
class SetProblem:
    """One fault of a posted set: its kind, the culprit (a participant's address, or :data:`AGGREGATOR`), the
    entry it concerns (None: the set as a whole) and what was found."""

    kind: SetProblemKind
    culprit: str
    detail: str
    participant: Address | None = None


def check_commitment_set(
    s: CommitmentSet,
    *,
    chain_id: int,
    contract: Address | str,
    round_id: int,
    eligible: Collection[Address | str],
    posted_root: bytes,
    posted_count: int,
    set_digest: bytes | None = None,
) -> list[SetProblem]:
    """Every fault of the set ``s`` posted for round ``round_id`` of the deployment ``(chain_id, contract)``, with
    ``posted_root``, ``posted_count`` and (when given) ``set_digest`` as the chain records them; an empty list for
    a sound set. What the auditor and every participant run.

    The set's root, count and digest are those of all its entries, sound or not. Each entry's signature is checked
    against the expected deployment. Culprits: the aggregator for the set as a whole (another deployment or round,
    a root, count or digest that is not the set's) and for an entry whose signature does not recover to the
    participant it names or that belongs to another round (its inbox refuses both, so only the aggregator can have
    put them there); the signer for a valid signature by a key not in ``eligible`` (the aggregator admitted it
    too, which the detail says)."""
    problems: list[SetProblem] = []
    if int(s.chain_id) != int(chain_id) or str(s.contract).lower() != str(contract).lower():
        problems.append(SetProblem(
            SetProblemKind.OTHER_DEPLOYMENT, AGGREGATOR,
            f"the set is for chain {s.chain_id}, contract {s.contract}; this round is on chain {chain_id}, "
            f"contract {contract}",
        ))
    if int(s.round_id) != int(round_id):
        problems.append(SetProblem(
            SetProblemKind.OTHER_ROUND, AGGREGATOR, f"the set is for round {s.round_id}, posted for round {round_id}"
        ))
    if int(posted_count) != len(s.commitments):
        problems.append(SetProblem(
            SetProblemKind.COUNT_MISMATCH, AGGREGATOR,
            f"the chain records {posted_count} commitment(s), the set holds {len(s.commitments)}",
        ))
    root = commitment_set_root(s)
    if bytes(posted_root) != bytes(root):
        problems.append(SetProblem(
            SetProblemKind.ROOT_MISMATCH, AGGREGATOR,
            f"the chain records root {digest_hex(posted_root)}, the set's root is {digest_hex(root)}",
        ))
    if set_digest is not None:
        actual = commitment_set_digest(s)
        if bytes(set_digest) != bytes(actual):
            problems.append(SetProblem(
                SetProblemKind.DIGEST_MISMATCH, AGGREGATOR,
                f"the chain records set digest {digest_hex(set_digest)}, the set's bytes digest to {digest_hex(actual)}",
            ))
    allowed = {str(a).lower() for a in eligible}
    for i, sc in enumerate(s.commitments):
        if int(sc.round_id) != int(round_id):
            problems.append(SetProblem(
                SetProblemKind.OTHER_ROUND, AGGREGATOR,
                f"commitments[{i}] of {sc.participant} is for round {sc.round_id}, not round {round_id}",
                sc.participant,
            ))
        try:
            verify_commitment(sc, chain_id, contract)
        except SignatureError as err:
            problems.append(SetProblem(SetProblemKind.BAD_SIGNATURE, AGGREGATOR, f"commitments[{i}]: {err}", sc.participant))
            continue
        if str(sc.participant).lower() not in allowed:
            problems.append(SetProblem(
                SetProblemKind.NOT_ELIGIBLE, str(sc.participant),
                f"commitments[{i}] is signed by {sc.participant}, which is not an eligible participant of round "
                f"{round_id}; the aggregator sealed it anyway",
                sc.participant,
            ))
    return problems


# --- the inbox ---------------------------------------------------------------------------------------------------
_POST_PATH = re.compile(r"/v1/rounds/([0-9]{1,20})/commitments")
_GET_PATH = re.compile(r"/v1/rounds/([0-9]{1,20})/commitments/(0x[0-9a-fA-F]{40})")


def _refusal(status: int, reason: str, participant: str = "") -> InboxRefusedError:
    """The inbox's refusal of one request: the handler answers ``status`` with ``reason``, the same status and
    reason the sender's :func:`send_commitment` raises again as its InboxRefusedError."""
    return InboxRefusedError(participant or "an unread commitment", status, reason)


@dataclass
class _Round:
    round_id: int
    chain_id: int
    contract: Address
    eligible: frozenset[str]  # lower case
    commitments: dict[str, SignedCommitment] = field(default_factory=dict)  # by lower-case address


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most ``slots`` at once: a connection beyond them is answered 503 at once."""

    daemon_threads = True
    inbox: CommitmentInbox
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            log.warning("inbox: %d connections are being served; %s answered 503", self.inbox.max_connections,
                        client_address[0])
            _turn_away(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def _turn_away(request: socket.socket) -> None:
    """Answer 503 on a connection no thread serves, then read what the client sent for a moment (at most
    ``_TURN_AWAY_S``), so that closing does not reset the connection before the client reads the answer."""
    deadline = time.monotonic() + _TURN_AWAY_S
    try:
        request.settimeout(_TURN_AWAY_S)
        request.sendall(_BUSY)
        request.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            request.settimeout(left)
            if not request.recv(65536):
                break
    except OSError:  # TimeoutError included: the client said nothing more in time
        pass


class _Handler(BaseHTTPRequestHandler):
    server_version = "fedchain-inbox/1"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self._inbox.socket_timeout_s)

    def handle_one_request(self) -> None:
        """One request, which must arrive whole within twice the socket timeout: a client that trickles its
        request line or headers a byte at a time (each read within the socket timeout) would otherwise hold its
        connection slot for ever. Past that deadline the connection is shut down."""
        timer = threading.Timer(2 * self._inbox.socket_timeout_s, self._cut)
        timer.daemon = True
        timer.start()
        try:
            super().handle_one_request()
        finally:
            timer.cancel()

    def _cut(self) -> None:
        log.info("inbox %s: the request did not arrive within %.1f s; dropping the connection", self.address_string(),
                 2 * self._inbox.socket_timeout_s)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # closed meanwhile

    @property
    def _inbox(self) -> CommitmentInbox:
        return cast(_Server, self.server).inbox

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("inbox %s: " + format, self.address_string(), *args)

    def _answer(self, status: int, payload: Mapping[str, Any]) -> None:
        body = canonical_json(dict(payload))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        """Receive one signed commitment."""
        try:
            match = _POST_PATH.fullmatch(self.path)
            if match is None:
                raise _refusal(404, f"no such resource {self.path[:80]!r}")
            body = self._body()
            leaf = self._inbox._receive(int(match.group(1)), body, self.client_address[0])
        except InboxRefusedError as refusal:
            self.close_connection = True
            self._answer(refusal.status, {"error": refusal.reason})
            return
        self._answer(200, {"leaf": digest_hex(leaf)})

    def do_GET(self) -> None:
        """Answer one stored commitment."""
        match = _GET_PATH.fullmatch(self.path)
        if match is None:
            self._answer(404, {"error": f"no such resource {self.path[:80]!r}"})
            return
        sc = self._inbox.stored(int(match.group(1)), match.group(2))
        if sc is None:
            self._answer(404, {"error": f"no commitment of {match.group(2)} for round {match.group(1)}"})
            return
        self._answer(200, sc.to_json())

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding") is not None:
            raise _refusal(411, "send the body with a Content-Length, not a Transfer-Encoding")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise _refusal(411, "a Content-Length is required")
        if not length_text.strip().isdigit() or len(length_text.strip()) > 12:
            raise _refusal(400, f"Content-Length {length_text[:20]!r} is not a byte count")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            if length <= _MAX_DRAINED:  # read it first, so that closing does not reset the connection under the answer
                self._read(length)
            raise _refusal(413, f"the body is {length} bytes, more than {MAX_BODY_BYTES}")
        return self._read(length)

    def _read(self, length: int) -> bytes:
        """Exactly ``length`` body bytes within one socket timeout overall; a 408 or 400 refusal otherwise."""
        deadline = time.monotonic() + self._inbox.socket_timeout_s
        chunks: list[bytes] = []
        remaining = length
        while remaining:
            if time.monotonic() > deadline:
                raise _refusal(408, f"the body did not arrive within {self._inbox.socket_timeout_s} s")
            try:
                chunk = self.rfile.read1(remaining)
            except TimeoutError as err:
                raise _refusal(408, f"the body did not arrive within {self._inbox.socket_timeout_s} s") from err
            if not chunk:
                raise _refusal(400, f"the body ended after {length - remaining} of {length} bytes")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)


class CommitmentInbox:
    """The aggregator's inbox for signed commitments: a threaded HTTP server on ``(host, port)`` (port 0: an
    ephemeral one, :attr:`url` tells which), one round open at a time. Each connection has its own thread and
    ``socket_timeout_s`` (a silent client is dropped with 408 after it); beyond ``max_connections`` at once a
    connection is answered 503 (the sender retries).

    The aggregator :meth:`open_round`\\ s a round with the deployment and the eligible participants, lets
    participants post, :meth:`wait_for` the ones it expects and :meth:`seal`\\ s the round, which fixes the set it
    will post; later posts to that round are answered 410. Thread-safe; logs round ids and addresses, never keys.
    Use it as a context manager or call :meth:`start` and :meth:`close`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        socket_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if not socket_timeout_s > 0:
            raise ValueError(f"socket_timeout_s must be positive, got {socket_timeout_s!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a positive integer, got {max_connections!r}")
        self.host = host
        self.port = port
        self.socket_timeout_s = float(socket_timeout_s)
        self.max_connections = max_connections
        self._cond = threading.Condition()
        self._open: _Round | None = None
        self._sealed: OrderedDict[int, _Round] = OrderedDict()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # lifecycle
    def start(self) -> CommitmentInbox:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.inbox = self
        server.slots = threading.BoundedSemaphore(self.max_connections)
        self._server = server
        self._closed = False
        self._thread = threading.Thread(target=server.serve_forever, name="fedchain-inbox", daemon=True)
        self._thread.start()
        log.info("commitment inbox listening on %s", self.url)
        return self

    @property
    def url(self) -> str:
        """``http://host:port`` of the running inbox."""
        if self._server is None:
            raise AggregationError("the commitment inbox is not started")
        host, port = self._server.server_address[:2]
        shown = str(host)
        return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"

    def close(self) -> None:
        """Stop serving and release the port (connections being served end with their threads); wakes every
        :meth:`wait_for`."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __enter__(self) -> CommitmentInbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # rounds
    def open_round(
        self, round_id: int, chain_id: int, contract: Address, eligible: Collection[Address | str]
    ) -> None:
        """Accept commitments for ``round_id`` of ``(chain_id, contract)`` from ``eligible`` participants; a round
        still open and not sealed is dropped (with a warning). AggregationError for a round already sealed."""
        with self._cond:
            if int(round_id) in self._sealed:
                raise AggregationError(f"round {round_id}'s commitment set is sealed already; it cannot be reopened")
            if self._open is not None and self._open.round_id != int(round_id):
                log.warning("inbox: round %d dropped unsealed (%d commitment(s)) for round %d",
                            self._open.round_id, len(self._open.commitments), round_id)
            if self._open is None or self._open.round_id != int(round_id):
                self._open = _Round(int(round_id), int(chain_id), contract, frozenset(str(a).lower() for a in eligible))
            self._cond.notify_all()
        log.info("inbox: round %d open for %d eligible participant(s)", round_id, len(self._open.eligible))

    def seal(self, round_id: int) -> tuple[SignedCommitment, ...]:
        """Close ``round_id`` to new commitments and return them sorted by participant (the set to post); the same
        tuple again for a round sealed already. AggregationError for a round that was never open."""
        with self._cond:
            if int(round_id) in self._sealed:
                return _sorted(self._sealed[int(round_id)])
            if self._open is None or self._open.round_id != int(round_id):
                raise AggregationError(f"round {round_id} is not open in the commitment inbox")
            sealed, self._open = self._open, None
            self._sealed[sealed.round_id] = sealed
            while len(self._sealed) > _SEALED_KEPT:
                self._sealed.popitem(last=False)
            self._cond.notify_all()
        log.info("inbox: round %d sealed with %d commitment(s)", round_id, len(sealed.commitments))
        return _sorted(sealed)

    def received(self) -> int:
        """How many commitments the open round holds (0: none open)."""
        with self._cond:
            return 0 if self._open is None else len(self._open.commitments)

    def wait_for(self, count: int, timeout_s: float) -> int:
        """Block until the open round holds ``count`` commitments, it is sealed, the inbox is closed or
        ``timeout_s`` passes; return how many it holds (of the round open when called)."""
        with self._cond:
            current = self._open

            def ready() -> bool:
                return self._closed or self._open is not current or current is None or len(current.commitments) >= count

            self._cond.wait_for(ready, timeout=max(0.0, timeout_s))
            return 0 if current is None else len(current.commitments)

    def stored(self, round_id: int, participant: Address | str) -> SignedCommitment | None:
        """The commitment ``participant`` posted for ``round_id`` (open or recently sealed), or None."""
        with self._cond:
            rnd = self._round(int(round_id))
            return None if rnd is None else rnd.commitments.get(str(participant).lower())

    def _round(self, round_id: int) -> _Round | None:
        if self._open is not None and self._open.round_id == round_id:
            return self._open
        return self._sealed.get(round_id)

    def _receive(self, round_id: int, body: bytes, peer: str) -> Digest:
        """Check and store one posted commitment; its leaf, or an InboxRefusedError to answer."""
        try:
            sc = SignedCommitment.from_bytes(body)
        except BlobFormatError as err:
            raise _refusal(400, str(err)) from err
        if int(sc.round_id) != round_id:
            raise _refusal(400, f"the commitment is for round {sc.round_id}, posted to round {round_id}", sc.participant)
        with self._cond:
            rnd = self._deployment_of(round_id)
        try:
            verify_commitment(sc, rnd.chain_id, rnd.contract)
        except SignatureError as err:
            log.info("inbox: round %d: refused a commitment naming %s from %s: %s", round_id, sc.participant, peer, err)
            raise _refusal(403, f"bad signature: {err}", sc.participant) from err
        key = str(sc.participant).lower()
        if key not in rnd.eligible:
            log.info("inbox: round %d: refused %s from %s: not eligible", round_id, sc.participant, peer)
            raise _refusal(403, f"{sc.participant} is not an eligible participant of round {round_id}", sc.participant)
        with self._cond:
            rnd = self._deployment_of(round_id)  # it may have been sealed while the signature was checked
            earlier = rnd.commitments.get(key)
            if earlier is None:
                rnd.commitments[key] = sc
                self._cond.notify_all()
                count = len(rnd.commitments)
            elif earlier != sc:
                log.warning("inbox: round %d: %s equivocated (a second, different commitment; the first %s stays)",
                            round_id, sc.participant, earlier.cid)
                raise _refusal(409, f"{sc.participant} already committed a different update for round {round_id}", sc.participant)
            else:
                count = -1
        if count > 0:
            log.info("inbox: round %d: commitment of %s accepted (%s, %d in)", round_id, sc.participant, sc.cid, count)
        return sc.leaf()

    def _deployment_of(self, round_id: int) -> _Round:
        """The open round ``round_id`` (caller holds the lock), or the refusal: 410 sealed, 409 not open."""
        if round_id in self._sealed:
            raise _refusal(410, f"round {round_id}'s commitment set is sealed: commit on chain within the escape window")
        if self._open is None or self._open.round_id != round_id:
            shown = "no round" if self._open is None else f"round {self._open.round_id}"
            raise _refusal(409, f"round {round_id} is not open in this inbox ({shown} is)")
        return self._open


def _sorted(rnd: _Round) -> tuple[SignedCommitment, ...]:
    return tuple(rnd.commitments[k] for k in sorted(rnd.commitments))


# --- the client --------------------------------------------------------------------------------------------------
def send_commitment(url: str, sc: SignedCommitment, *, timeout_s: float = 10.0) -> Digest:
    """Post ``sc`` to the inbox at ``url`` (``http://host:port``); the leaf it acknowledged.

    :class:`~fedchain.errors.InboxUnavailableError` (a StorageUnavailableError: retry, or commit on chain) when
    the inbox cannot be reached, breaks off, answers a server error or more than :data:`MAX_ANSWER_BYTES`;
    :class:`~fedchain.errors.InboxRefusedError` (an UpdateRejectedError, exit 41) with the HTTP status and the
    inbox's reason when it refuses the commitment (410: the set is sealed, force the commitment on chain);
    :class:`~fedchain.errors.IntegrityError` when it acknowledges another leaf than the commitment's."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InboxUnavailableError(f"the commitment inbox address {url!r} is not an http(s)://host:port URL")
    path = parts.path.rstrip("/") + f"/v1/rounds/{int(sc.round_id)}/commitments"
    body = sc.to_bytes()
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    try:
        conn = cls(parts.hostname, parts.port, timeout=timeout_s)
    except ValueError as err:  # a port that is not a number
        raise InboxUnavailableError(f"the commitment inbox address {url!r} is malformed: {err}") from err
    try:
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            length = response.getheader("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) > MAX_ANSWER_BYTES:
                raise InboxUnavailableError(
                    f"the commitment inbox at {url} answered {length} bytes, more than {MAX_ANSWER_BYTES}"
                )
            data = response.read(MAX_ANSWER_BYTES + 1)
        except (OSError, http.client.HTTPException, ValueError) as err:
            raise InboxUnavailableError(f"the commitment inbox at {url} cannot be reached: {err}") from err
    finally:
        conn.close()
    if len(data) > MAX_ANSWER_BYTES:
        raise InboxUnavailableError(f"the commitment inbox at {url} answered more than {MAX_ANSWER_BYTES} bytes")
    status = response.status
    if status >= 500:
        raise InboxUnavailableError(f"the commitment inbox at {url} answered HTTP {status}: {_reason(data)}")
    if status != 200:
        raise InboxRefusedError(sc.participant, status, _reason(data))
    try:
        answer = parse_json(data, _ANSWER_LIMITS, "the inbox's answer")
    except BlobFormatError as err:
        raise InboxUnavailableError(f"the commitment inbox at {url} answered nonsense: {err}") from err
    leaf_text = answer.get("leaf") if isinstance(answer, Mapping) else None
    expected = sc.leaf()
    if leaf_text != digest_hex(expected):
        raise IntegrityError(
            f"the commitment inbox at {url} acknowledged leaf {_shown(leaf_text)}, the commitment's leaf is "
            f"{digest_hex(expected)}"
        )
    return expected


def _reason(data: bytes) -> str:
    """The ``error`` of an inbox's answer, or its first bytes as text."""
    try:
        answer = parse_json(data, _ANSWER_LIMITS, "the inbox's answer")
    except BlobFormatError:
        return data[:200].decode("utf-8", "replace") or "(no reason given)"
    if isinstance(answer, Mapping) and isinstance(answer.get("error"), str):
        return str(answer["error"])[:500]
    return json.dumps(answer)[:200]


# --- field checks ------------------------------------------------------------------------------------------------
def _uint64(data: Mapping[str, Any], key: str, where: str, *, minimum: int = 0) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise BlobFormatError(f"{where}: {key} is a {_json_type(value)}, not an integer")
    if not minimum <= value < _MAX_UINT64:
        raise BlobFormatError(f"{where}: {key} {value} is not an integer in [{minimum}, 2**64 - 1]")
    return int(value)


def _hex(data: Mapping[str, Any], key: str, size: int, where: str) -> bytes:
    value = data[key]
    if not isinstance(value, str):
        raise BlobFormatError(f"{where}: {key} is a {_json_type(value)}, not a hex string")
    if not _HEX.fullmatch(value):
        raise BlobFormatError(f"{where}: {key} {_shown(value)} is not 0x-prefixed lower-case hex")
    if len(value) != 2 + 2 * size:
        raise BlobFormatError(f"{where}: {key} is {(len(value) - 2) / 2:g} bytes, expected {size}")
    return bytes.fromhex(value[2:])


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

"""A round's rewards: the scores blob, its reward leaves and their Merkle root.

After a round is finalised the aggregator scores the included updates with the task's
contribution rule (:mod:`fedchain.fl.contribution`), splits the round's budget into integer
amounts (``allocate``: largest remainder, ties by address) and publishes the scores blob
(:class:`RoundRewardsDoc`, canonical JSON) in the store and the root of its reward leaves on
chain. A reward leaf is the incentives contract's ``rewardLeaf``::

    keccak256(bytes.concat(keccak256(abi.encode(roundId, account, amount))))

and the tree is OpenZeppelin's sorted-pair tree (:class:`fedchain.codec.merkle.MerkleTree`), so a
participant claims with a plain list of sibling hashes. Anyone holding the round's blobs, the
task document and the validation set recomputes the blob byte for byte (:func:`round_rewards`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from eth_abi import encode as abi_encode
from eth_hash.auto import keccak
from eth_utils import to_canonical_address, to_checksum_address

from fedchain.codec.blob import decode_json_doc, encode_json_doc
from fedchain.codec.merkle import MerkleTree
from fedchain.errors import BlobFormatError, MerkleError
from fedchain.types import Address, Digest, RoundId, digest_hex, parse_digest

REWARDS_FORMAT = "fedchain.rewards/1"
_FIELDS = frozenset({"format", "round", "rule", "params", "budget", "total", "validation_digest",
                     "participants", "root", "error_bound"})
_ENTRY_FIELDS = frozenset({"participant", "score", "amount", "leaf"})


def reward_leaf(round_id: int, account: str, amount: int) -> Digest:
    """``keccak256(bytes.concat(keccak256(abi.encode(roundId, account, amount))))``: the
    contract's ``rewardLeaf``."""
    if not 0 <= int(round_id) < 2**256:
        raise MerkleError(f"round id out of uint256 range: {round_id}")
    if not 0 <= int(amount) < 2**256:
        raise MerkleError(f"amount out of uint256 range: {amount}")
    try:
        address = to_canonical_address(account)
    except ValueError as err:
        raise MerkleError(f"account is not an address: {account!r}") from err
    return Digest(keccak(keccak(abi_encode(["uint256", "address", "uint256"], [int(round_id), address, int(amount)]))))


def score_text(score: int | Fraction) -> str:
    """A score as exact text: ``"12"`` or ``"-3/7"`` (a Fraction in lowest terms)."""
    value = Fraction(score)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def parse_score(text: Any, where: str) -> Fraction:
    """The score written by :func:`score_text`; BlobFormatError naming ``where`` otherwise."""
    if not isinstance(text, str):
        raise BlobFormatError(f"{where}: score must be a string, got {type(text).__name__}")
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError) as err:
        raise BlobFormatError(f"{where}: score {text!r} is not an exact fraction") from err
    if score_text(value) != text:
        raise BlobFormatError(f"{where}: score {text!r} is not in canonical form ({score_text(value)!r})")
    return value


@dataclass(frozen=True)
class RewardEntry:
    """One participant's line in the scores blob."""

    participant: Address
    score: Fraction
    amount: int
    leaf: Digest

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object (score and amount as exact decimal text)."""
        return {"participant": self.participant, "score": score_text(self.score), "amount": str(self.amount),
                "leaf": digest_hex(self.leaf)}


@dataclass(frozen=True)
class RoundRewardsDoc:
    """The scores blob of a round: who scored what, who is owed what, and the root on chain."""

    round_id: RoundId
    rule: str
    params: Mapping[str, Any]
    budget: int
    validation_digest: Digest | None
    entries: tuple[RewardEntry, ...]  # sorted by lower-case address
    root: Digest
    error_bound: str | None = None  # the estimator's stated error bound (exact text), None when exact

    @property
    def total(self) -> int:
        """The sum of the amounts (at most the budget)."""
        return sum(e.amount for e in self.entries)

    def entry(self, account: str) -> RewardEntry | None:
        """The entry of ``account`` (any case), None when it has none."""
        return next((e for e in self.entries if e.participant.lower() == account.lower()), None)

    def tree(self) -> MerkleTree:
        """The Merkle tree over the reward leaves."""
        return MerkleTree.build(e.leaf for e in self.entries)

    def proof(self, account: str) -> list[bytes]:
        """The Merkle proof of ``account``'s leaf; MerkleError when it has no entry."""
        entry = self.entry(account)
        if entry is None:
            raise MerkleError(f"round {self.round_id}: {account} has no reward entry")
        return self.tree().proof(entry.leaf)

    def to_json(self) -> dict[str, Any]:
        """The blob as a JSON object."""
        return {
            "format": REWARDS_FORMAT,
            "round": int(self.round_id),
            "rule": self.rule,
            "params": dict(self.params),
            "budget": str(self.budget),
            "total": str(self.total),
            "validation_digest": None if self.validation_digest is None else digest_hex(self.validation_digest),
            "participants": [e.to_json() for e in self.entries],
            "root": digest_hex(self.root),
            "error_bound": self.error_bound,
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes stored under the blob's CID."""
        return bytes(encode_json_doc(self.to_json()))

    @classmethod
    def from_bytes(cls, data: bytes) -> RoundRewardsDoc:
        """Parse and check a scores blob: every leaf and the root must be the ones its amounts give,
        and the bytes must be canonical; BlobFormatError naming what is wrong."""
        raw = decode_json_doc(data, what="scores blob")
        doc = cls.from_json(raw)
        if doc.to_bytes() != bytes(data):
            raise BlobFormatError(f"scores blob of round {doc.round_id} is not in canonical form")
        return doc

    @classmethod
    def from_json(cls, data: Any) -> RoundRewardsDoc:
        """The blob from its JSON object, its leaves and root checked."""
        if not isinstance(data, Mapping) or data.get("format") != REWARDS_FORMAT:
            raise BlobFormatError("not a scores blob (format is not " + REWARDS_FORMAT + ")")
        if set(data) != _FIELDS:
            raise BlobFormatError(f"scores blob: fields {sorted(set(data) ^ _FIELDS)} missing or unexpected")
        rid = data["round"]
        if isinstance(rid, bool) or not isinstance(rid, int) or rid < 1:
            raise BlobFormatError(f"scores blob: round must be a positive integer, got {rid!r}")
        if not isinstance(data["rule"], str) or not isinstance(data["params"], Mapping):
            raise BlobFormatError("scores blob: rule must be a string and params an object")
        budget = _amount(data["budget"], "scores blob: budget")
        vd = data["validation_digest"]
        try:
            validation = None if vd is None else parse_digest(str(vd))
            root = parse_digest(str(data["root"]))
        except ValueError as err:
            raise BlobFormatError(f"scores blob: {err}") from err
        bound = data["error_bound"]
        if bound is not None and not isinstance(bound, str):
            raise BlobFormatError(f"scores blob: error_bound must be text or null, got {bound!r}")
        if not isinstance(data["participants"], list) or not data["participants"]:
            raise BlobFormatError("scores blob: participants must be a non-empty list")
        entries = tuple(_entry(rid, e, i) for i, e in enumerate(data["participants"]))
        keys = [e.participant.lower() for e in entries]
        if keys != sorted(set(keys)):
            raise BlobFormatError("scores blob: participants must be distinct and sorted by address")
        doc = cls(RoundId(rid), data["rule"], dict(data["params"]), budget, validation, entries, root, bound)
        if _amount(data["total"], "scores blob: total") != doc.total:
            raise BlobFormatError(f"scores blob: total {data['total']} is not the sum of the amounts ({doc.total})")
        if doc.total > budget:
            raise BlobFormatError(f"scores blob: the amounts sum to {doc.total}, over the budget {budget}")
        if bytes(doc.tree().root) != bytes(root):
            raise BlobFormatError(f"scores blob: root {digest_hex(root)} is not the root of its leaves "
                                  f"({digest_hex(doc.tree().root)})")
        return doc


def _amount(value: Any, where: str) -> int:
    if not isinstance(value, str) or not value.isdigit() or (len(value) > 1 and value[0] == "0"):
        raise BlobFormatError(f"{where} must be a decimal string, got {value!r}")
    return int(value)


def _entry(round_id: int, data: Any, index: int) -> RewardEntry:
    where = f"scores blob: participants[{index}]"
    if not isinstance(data, Mapping) or set(data) != _ENTRY_FIELDS:
        raise BlobFormatError(f"{where} must have exactly the fields {sorted(_ENTRY_FIELDS)}")
    try:
        account = Address(to_checksum_address(str(data["participant"])))
        leaf = parse_digest(str(data["leaf"]))
    except ValueError as err:
        raise BlobFormatError(f"{where}: {err}") from err
    if account != data["participant"]:
        raise BlobFormatError(f"{where}: participant {data['participant']!r} is not a checksummed address")
    amount = _amount(data["amount"], f"{where}.amount")
    if bytes(reward_leaf(round_id, account, amount)) != bytes(leaf):
        raise BlobFormatError(f"{where}: leaf {digest_hex(leaf)} is not the reward leaf of ({round_id}, {account}, {amount})")
    return RewardEntry(account, parse_score(data["score"], where), amount, leaf)


def build_rewards_doc(
    round_id: RoundId,
    rule: str,
    params: Mapping[str, Any],
    budget: int,
    validation_digest: Digest | None,
    scores: Mapping[str, int | Fraction],
    amounts: Mapping[str, int],
    error_bound: str | None = None,
) -> RoundRewardsDoc:
    """The scores blob of the given scores and amounts (one entry per scored participant)."""
    if not scores:
        raise MerkleError(f"round {round_id}: no participant to reward")
    lowered = {a.lower(): v for a, v in amounts.items()}
    if set(lowered) - {a.lower() for a in scores}:
        raise MerkleError(f"round {round_id}: amounts for participants without a score")
    entries: list[RewardEntry] = []
    for account in sorted(scores, key=str.lower):
        checksummed = Address(to_checksum_address(account))
        amount = int(lowered.get(account.lower(), 0))
        entries.append(RewardEntry(checksummed, Fraction(scores[account]), amount,
                                   reward_leaf(int(round_id), checksummed, amount)))
    tree = MerkleTree.build(e.leaf for e in entries)
    return RoundRewardsDoc(RoundId(int(round_id)), rule, dict(params), int(budget), validation_digest,
                           tuple(entries), tree.root, error_bound)


def proofs(doc: RoundRewardsDoc) -> dict[Address, list[bytes]]:
    """Every participant's Merkle proof, by address."""
    tree = doc.tree()
    return {e.participant: tree.proof(e.leaf) for e in doc.entries}


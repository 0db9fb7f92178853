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

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

from fedchain.codec.abi import encode as abi_encode
from fedchain.codec.abi import keccak, to_canonical_address, to_checksum_address
from fedchain.codec.blob import decode_json_doc, encode_json_doc
from fedchain.codec.canonical import sha256_digest
from fedchain.codec.merkle import MerkleTree
from fedchain.errors import BlobFormatError, ConfigError, IntegrityError, MerkleError
from fedchain.fl.contribution import ContributionRule, Utility, allocate, compute_scores
from fedchain.fl.records import ClientUpdate
from fedchain.ports import BlobStore, Ledger, RoundStatus, TxReport
from fedchain.protocol.blobs import GlobalModel, decode_global, decode_update
from fedchain.protocol.evidence import Evidence
from fedchain.protocol.task import RewardsConfig, TaskDocument, load_model_source, load_task_document
from fedchain.types import Address, Cid, Digest, RoundId, digest_hex, parse_digest

log = logging.getLogger(__name__)

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
    scores: Mapping[Address, int | Fraction] | Mapping[Address, Fraction],
    amounts: Mapping[Address, int],
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



# --- computing a round's rewards -----------------------------------------------------------


class RoundRewardsView(Protocol):
    """What the incentives contract records of a round's rewards (``roundRewards``)."""

    @property
    def root(self) -> bytes:
        """The published reward root."""
        ...

    @property
    def total(self) -> int:
        """The amounts the published leaves add up to."""
        ...

    @property
    def budget(self) -> int:
        """The budget in force when the rewards were published."""
        ...

    @property
    def claimed(self) -> int:
        """What has been claimed so far."""
        ...


class RewardsLedger(Protocol):
    """The incentives contract as the aggregator and the participants use it (the chain layer's
    ``Incentives`` client has these methods)."""

    def reward_budget(self) -> int:
        """The per-round budget in force."""
        ...

    def round_rewards(self, round_id: int) -> RoundRewardsView | None:
        """A round's published rewards, None before they are published."""
        ...

    def has_claimed(self, round_id: int, account: str) -> bool:
        """Whether ``account`` claimed its reward of the round."""
        ...

    def publish_rewards(self, round_id: int, root: bytes, total: int, scores_digest: bytes, scores_cid: str) -> TxReport:
        """Publish a round's reward root and scores blob (the aggregator)."""
        ...

    def claim(self, round_id: int, amount: int, proof: Sequence[bytes]) -> TxReport:
        """Claim the sender's reward of a round with its Merkle proof."""
        ...

    def history(self) -> Sequence[object]:
        """Every incentives event, oldest first (``RewardsPublished`` carries the scores blob)."""
        ...


def scores_publication(incentives: RewardsLedger, round_id: int) -> tuple[Digest, Cid] | None:
    """The (digest, CID) of the scores blob published for ``round_id`` (its ``RewardsPublished``
    event), None when none is."""
    for ev in incentives.history():
        cid, digest = getattr(ev, "scores_cid", None), getattr(ev, "scores_digest", None)
        if cid is not None and digest is not None and int(getattr(ev, "round_id", -1)) == int(round_id):
            return Digest(bytes(digest)), Cid(str(cid))
    return None


def load_validation_set(store: BlobStore, config: RewardsConfig) -> tuple[np.ndarray, np.ndarray]:
    """The consortium's validation set (``x`` and ``y`` of an ``.npz``), fetched and checked
    against the digest the task records; IntegrityError or BlobFormatError otherwise."""
    if config.validation_cid is None or config.validation_digest is None:
        raise ConfigError(f"rewards rule {config.rule!r}: the task names no validation set")
    data = store.get(config.validation_cid)
    if bytes(sha256_digest(data)) != bytes(config.validation_digest):
        raise IntegrityError(f"validation set {config.validation_cid} does not match the digest the task records "
                             f"({digest_hex(config.validation_digest)})")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            x, y = np.asarray(npz["x"]), np.asarray(npz["y"])
    except (KeyError, ValueError, OSError) as err:
        raise BlobFormatError(f"validation set {config.validation_cid} is not an .npz with arrays x and y: {err}") from err
    return x, y


def score_round(
    round_id: RoundId,
    doc: TaskDocument,
    base: GlobalModel,
    base_digest: Digest,
    included: Sequence[ClientUpdate],
    rejected: Sequence[str],
    budget: int,
    seed: bytes,
    validation: tuple[np.ndarray, np.ndarray] | None,
) -> RoundRewardsDoc:
    """Score a round's included updates with the task's rule, allocate ``budget`` and build the
    scores blob; pure. Rejected participants score 0 and are owed nothing."""
    config = doc.rewards
    if config is None:
        raise ConfigError("the task document has no rewards config")
    rule = ContributionRule(config.rule, dict(config.params))
    utility = None
    if rule.name != "samples":
        if validation is None:
            raise ConfigError(f"rewards rule {rule.name!r} needs the validation set")
        utility = Utility(doc.strategy_config(), doc.spec(), base.weights, included, validation[0], validation[1],
                          round_id=round_id, base_model_digest=base_digest,
                          server_state=dict(base.server_state) or None)
    included_keys = {u.participant.lower() for u in included}
    others = sorted({Address(to_checksum_address(a)) for a in rejected if a.lower() not in included_keys}, key=str.lower)
    scores = compute_scores(rule, included, utility=utility, rejected=others, seed=seed)
    amounts = allocate(dict(scores.scores.items()), int(budget))
    bound = repr(float(scores.error_bound)) if scores.method == "monte_carlo" else None
    return build_rewards_doc(round_id, rule.name, dict(rule.params), int(budget), config.validation_digest,
                             scores.scores, amounts, bound)


def compute_round_rewards(ledger: Ledger, store: BlobStore, round_id: RoundId, budget: int) -> RoundRewardsDoc:
    """The scores blob of a finalised round, recomputed from the chain and the store: the task
    document of the round, its evidence (the included and rejected participants), the included
    update blobs (checked against their commitments), the base model and the validation set.
    The aggregator publishes it; the auditor recomputes it and compares bytes."""
    rnd = ledger.round(round_id)
    if rnd.status != RoundStatus.FINALIZED or rnd.evidence_cid is None:
        raise ConfigError(f"round {round_id} is not finalised: it has no rewards")
    _, doc = load_task_document(ledger, store, rnd.task_version)
    if doc.rewards is None:
        raise ConfigError(f"round {round_id}: task version {rnd.task_version} has no rewards config")
    load_model_source(doc, store, None)  # scoring builds the task's model: a custom one from its checked source
    ev_bytes = store.get(rnd.evidence_cid)
    if bytes(sha256_digest(ev_bytes)) != bytes(rnd.evidence_digest):
        raise IntegrityError(f"round {round_id}: evidence {rnd.evidence_cid} does not match its recorded digest")
    evidence = Evidence.from_bytes(ev_bytes)
    base_bytes = store.get(rnd.base_model_cid)
    if bytes(sha256_digest(base_bytes)) != bytes(rnd.base_model_digest):
        raise IntegrityError(f"round {round_id}: base model {rnd.base_model_cid} does not match its recorded digest")
    base = decode_global(base_bytes)
    commitments = {c.participant.lower(): c for c in ledger.commitments(round_id)}
    updates: list[ClientUpdate] = []
    for inc in evidence.included:
        c = commitments.get(inc.participant.lower())
        if c is None or c.cid != inc.cid:
            raise IntegrityError(f"round {round_id}: included update of {inc.participant} is not its commitment")
        blob = store.get(Cid(c.cid))
        if bytes(sha256_digest(blob)) != bytes(c.update_digest):
            raise IntegrityError(f"round {round_id}: update blob {c.cid} of {c.participant} does not match its digest")
        updates.append(decode_update(blob))
    validation = None if doc.rewards.rule == "samples" else load_validation_set(store, doc.rewards)
    return score_round(round_id, doc, base, rnd.base_model_digest, updates, [r.participant for r in evidence.rejected],
                       budget, bytes(rnd.merkle_root), validation)

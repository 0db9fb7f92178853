"""Round logic shared by the aggregator and the auditor.

Both must reach the same verdict from the same inputs: which committed updates are screened
out (and by which rule), what the strategy aggregates, and the exact bytes of the resulting
global-model blob. Keeping it in one place is what lets the auditor reproduce the aggregator
bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from fedchain.errors import BlobFormatError, BlobNotFoundError, IntegrityError, StorageError, TooFewUpdatesError
from fedchain.fl.canonical import sha256_digest as sha256
from fedchain.federation.blobs import GlobalModel, decode_global, decode_update, encode_global
from fedchain.ledger import UpdateCommitment
from fedchain.merkle import commitment_leaf, merkle_root
from fedchain.types import Digest, RoundId, digest_hex

# Screening rules (stable strings recorded in evidence documents).
RULE_BLOB_UNAVAILABLE = "blob_unavailable"
RULE_BLOB_INTEGRITY = "blob_integrity"
RULE_BLOB_FORMAT = "blob_format"
RULE_HEADER_MISMATCH = "header_mismatch"
SCREEN_RULES = frozenset({RULE_BLOB_UNAVAILABLE, RULE_BLOB_INTEGRITY, RULE_BLOB_FORMAT, RULE_HEADER_MISMATCH})


@dataclass(frozen=True)
class FetchOutcome:
    """A committed blob as fetched from the store: bytes, or the error kind that prevented it."""

    commitment: UpdateCommitment
    data: bytes | None
    error_rule: str | None  # RULE_BLOB_UNAVAILABLE / RULE_BLOB_INTEGRITY when data is None
    error: str | None


def fetch_committed(store: Any, commitment: UpdateCommitment) -> FetchOutcome:
    """Fetch one committed blob; never raises for a participant's fault."""
    try:
        data = store.get(commitment.cid)
    except IntegrityError as err:
        return FetchOutcome(commitment, None, RULE_BLOB_INTEGRITY, f"bytes do not match CID {commitment.cid}: {err}")
    except BlobNotFoundError as err:
        return FetchOutcome(commitment, None, RULE_BLOB_UNAVAILABLE, f"blob {commitment.cid} not found: {err}")
    except StorageError as err:
        # An unreachable store is the aggregator's problem, not the participant's: re-raise.
        from fedchain.errors import StorageUnavailableError

        if isinstance(err, StorageUnavailableError):
            raise
        return FetchOutcome(commitment, None, RULE_BLOB_UNAVAILABLE, f"blob {commitment.cid} unavailable: {err}")
    return FetchOutcome(commitment, bytes(data), None, None)


@dataclass(frozen=True)
class Screened:
    """Committed updates split into those handed to the strategy and those screened out."""

    updates: tuple[Any, ...]  # ClientUpdate, sorted by participant address
    rejections: tuple[Any, ...]  # fedchain.fl.records.Rejection


def screen(outcomes: Sequence[FetchOutcome], round_id: RoundId, base_model_digest: Digest) -> Screened:
    """Apply the screening rules to fetched blobs (pure)."""
    from fedchain.fl.records import Rejection

    updates = []
    rejections = []
    for out in sorted(outcomes, key=lambda o: o.commitment.participant.lower()):
        c = out.commitment
        if out.data is None:
            rejections.append(Rejection(c.participant, out.error_rule or RULE_BLOB_UNAVAILABLE, out.error or ""))
            continue
        actual = sha256(out.data)
        if actual != bytes(c.update_digest):
            rejections.append(
                Rejection(
                    c.participant,
                    RULE_BLOB_INTEGRITY,
                    f"blob digest {digest_hex(actual)} != committed {digest_hex(c.update_digest)}",
                )
            )
            continue
        try:
            update = decode_update(out.data)
        except BlobFormatError as err:
            rejections.append(Rejection(c.participant, RULE_BLOB_FORMAT, str(err)))
            continue
        problems = []
        if update.participant.lower() != c.participant.lower():
            problems.append(f"blob participant {update.participant} != committer")
        if int(update.round_id) != int(round_id):
            problems.append(f"blob round {update.round_id} != {round_id}")
        if bytes(update.base_model_digest) != bytes(base_model_digest):
            problems.append(f"blob base model {digest_hex(update.base_model_digest)} != round base {digest_hex(base_model_digest)}")
        if int(update.num_samples) != int(c.num_samples):
            problems.append(f"blob sample count {update.num_samples} != committed {c.num_samples}")
        if problems:
            rejections.append(Rejection(c.participant, RULE_HEADER_MISMATCH, "; ".join(problems)))
            continue
        updates.append(update)
    return Screened(tuple(updates), tuple(rejections))


@dataclass(frozen=True)
class RoundAggregate:
    """The deterministic result of aggregating one round."""

    model_blob: bytes | None  # None when too few valid updates
    model_digest: Digest | None
    included: tuple[str, ...]  # participant addresses, sorted
    rejections: tuple[Any, ...]  # all Rejection records (screening + strategy)
    num_samples: int
    too_few_reason: str | None
    metrics: Mapping[str, Any]


def aggregate(
    strategy_config: Any,
    base: GlobalModel,
    round_id: RoundId,
    base_model_digest: Digest,
    outcomes: Sequence[FetchOutcome],
    min_updates: int,
) -> RoundAggregate:
    """Screen and aggregate a round's committed updates; pure given the fetched bytes."""
    from fedchain.fl.strategies import strategy_from_config

    screened = screen(outcomes, round_id, base_model_digest)
    strategy = strategy_from_config(strategy_config)
    if len(screened.updates) < min_updates:
        return _too_few(screened.rejections, len(screened.updates), min_updates)
    try:
        result = strategy.aggregate_round(
            dict(base.weights),
            list(screened.updates),
            dict(base.server_state),
            round_id=round_id,
            base_model_digest=base_model_digest,
        )
    except TooFewUpdatesError as err:
        return _too_few(screened.rejections, err.valid, err.minimum)
    rejections = tuple(screened.rejections) + tuple(result.rejected)
    included = tuple(sorted(result.included, key=str.lower))
    if len(included) < min_updates:
        return _too_few(rejections, len(included), min_updates)
    by_addr = {u.participant.lower(): u for u in screened.updates}
    samples = sum(int(by_addr[a.lower()].num_samples) for a in included)
    blob = encode_global(
        round_id=round_id,
        base_model_digest=base_model_digest,
        weights=dict(result.weights),
        server_state=dict(result.server_state),
        num_samples=samples,
    )
    return RoundAggregate(
        model_blob=blob,
        model_digest=sha256(blob),
        included=included,
        rejections=rejections,
        num_samples=samples,
        too_few_reason=None,
        metrics=dict(result.metrics),
    )


def _too_few(rejections: Sequence[Any], valid: int, minimum: int) -> RoundAggregate:
    return RoundAggregate(
        model_blob=None,
        model_digest=None,
        included=(),
        rejections=tuple(rejections),
        num_samples=0,
        too_few_reason=f"too few valid updates: {valid} < minimum {minimum}",
        metrics={},
    )


def leaf_of(c: UpdateCommitment) -> Digest:
    return commitment_leaf(int(c.round_id), c.participant, c.update_digest, c.cid, c.num_samples, c.metadata_digest)


def inclusion_root(commitments: Sequence[UpdateCommitment], included: Sequence[str]) -> Digest:
    """Merkle root over the commitment leaves of the included participants."""
    wanted = {a.lower() for a in included}
    return merkle_root(leaf_of(c) for c in commitments if c.participant.lower() in wanted)


def shift_weights(weights: Mapping[str, np.ndarray], amount: float) -> dict[str, np.ndarray]:
    """Add ``amount`` to every float tensor (used only to demonstrate a dishonest aggregator)."""
    return {k: (v + np.asarray(amount, dtype=v.dtype)) if v.dtype.kind == "f" else v for k, v in weights.items()}


__all__ = [
    "FetchOutcome",
    "GlobalModel",
    "RoundAggregate",
    "Screened",
    "aggregate",
    "decode_global",
    "fetch_committed",
    "inclusion_root",
    "leaf_of",
    "screen",
]

"""Round logic shared by the aggregator and the auditor.

Both must reach the same verdict from the same inputs: which committed updates are screened
out (and by which rule), what the strategy aggregates, and the exact bytes of the resulting
global-model blob. Keeping it in one place is what lets the auditor reproduce the aggregator
bit for bit.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedchain.codec.blob import BLOB_MAGIC
from fedchain.codec.canonical import sha256_digest as sha256
from fedchain.codec.cid import cid_problem
from fedchain.codec.merkle import commitment_leaf, merkle_root
from fedchain.errors import (
    AggregationError,
    BlobFormatError,
    BlobNotFoundError,
    ConfigError,
    IntegrityError,
    TooFewUpdatesError,
)
from fedchain.fl.privacy import AccountantInputs, PrivacyPolicy
from fedchain.fl.records import ClientUpdate, ExtraValue, Rejection, StrategyConfig
from fedchain.fl.strategies import BaseStrategy, strategy_from_config
from fedchain.ports import BlobStore, UpdateCommitment
from fedchain.protocol.blobs import (
    GlobalModel,
    decode_global,
    decode_update,
    encode_global,
    metadata_digest,
)
from fedchain.protocol.evidence import Evidence, IncludedUpdate
from fedchain.types import Address, Digest, RoundId, digest_hex

log = logging.getLogger(__name__)

# Screening rules (stable strings recorded in evidence documents).
RULE_BLOB_UNAVAILABLE = "blob_unavailable"
RULE_BLOB_INTEGRITY = "blob_integrity"
RULE_BLOB_FORMAT = "blob_format"
RULE_HEADER_MISMATCH = "header_mismatch"
RULE_METADATA_MISMATCH = "metadata_mismatch"
RULE_INVALID_CID = "invalid_cid"  # the committed CID string is not a CID (fedchain.codec.cid)
RULE_DUPLICATE_UPDATE = "duplicate_update"  # the same tensor payload as an earlier committer's
RULE_PRIVACY_POLICY = "privacy_policy"  # a private task's update without the policy's accountant inputs
RULE_DP_NOISE = "dp_noise"  # a client-level DP update whose norm shows it lacks its share of the noise
PRIVACY_RULES = frozenset({RULE_PRIVACY_POLICY, RULE_DP_NOISE})
SCREEN_RULES = frozenset(
    {
        RULE_INVALID_CID,
        RULE_BLOB_UNAVAILABLE,
        RULE_BLOB_INTEGRITY,
        RULE_BLOB_FORMAT,
        RULE_HEADER_MISMATCH,
        RULE_METADATA_MISMATCH,
        RULE_DUPLICATE_UPDATE,
    }
)

# How long fetch_committed keeps asking for a committed blob the store cannot find before it
# rejects the update as ``blob_unavailable`` (read at call time), and the first pause between tries.
FETCH_RETRY_WINDOW_S = 15.0
FETCH_BACKOFF_S = 0.25


@dataclass(frozen=True)
class FetchOutcome:
    """A committed blob as fetched from the store: bytes, or the rule that rejects it."""

    commitment: UpdateCommitment
    data: bytes | None
    error_rule: str | None  # RULE_INVALID_CID / RULE_BLOB_UNAVAILABLE / RULE_BLOB_INTEGRITY / RULE_BLOB_FORMAT
    error: str | None


def fetch_committed(
    store: BlobStore,
    commitment: UpdateCommitment,
    *,
    retry_window_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> FetchOutcome:
    """Fetch one committed blob.

    A committed CID that is not a CID (:func:`fedchain.codec.cid.cid_problem`) is rejected as
    ``invalid_cid`` without asking the store. Otherwise only a definitive answer about the
    participant's blob becomes a rejection: bytes that do not
    match the CID (``blob_integrity``), a blob the store refuses as malformed (``blob_format``),
    or a blob still not found after asking again for ``retry_window_s`` seconds (default
    :data:`FETCH_RETRY_WINDOW_S`; 0 asks once) - ``blob_unavailable``. Anything else about the
    store (unreachable: :class:`~fedchain.errors.StorageUnavailableError`; a timeout or a failed
    call: :class:`~fedchain.errors.StorageError`) is raised, so the caller aborts and tries later
    instead of blaming the participant.
    """
    problem = cid_problem(commitment.cid)
    if problem is not None:
        return FetchOutcome(commitment, None, RULE_INVALID_CID, f"committed CID is not a CID: {problem}")
    window = FETCH_RETRY_WINDOW_S if retry_window_s is None else retry_window_s
    start = clock()
    delay = FETCH_BACKOFF_S
    attempts = 0
    while True:
        attempts += 1
        try:
            data = store.get(commitment.cid)
        except IntegrityError as err:
            return FetchOutcome(commitment, None, RULE_BLOB_INTEGRITY, f"bytes do not match CID {commitment.cid}: {err}")
        except BlobFormatError as err:
            return FetchOutcome(commitment, None, RULE_BLOB_FORMAT, f"blob {commitment.cid} refused: {err}")
        except BlobNotFoundError as err:
            remaining = window - (clock() - start)
            if remaining <= 0:
                return FetchOutcome(
                    commitment, None, RULE_BLOB_UNAVAILABLE,
                    f"blob {commitment.cid} not found after {attempts} attempt(s) over {window:g}s: {err}",
                )
            log.info("round %d: blob %s of %s not found yet, asking again in %.2fs",
                     int(commitment.round_id), commitment.cid, commitment.participant, min(delay, remaining))
            sleep(min(delay, remaining))
            delay *= 2
            continue
        return FetchOutcome(commitment, bytes(data), None, None)


@dataclass(frozen=True)
class Screened:
    """Committed updates split into those handed to the strategy and those screened out."""

    updates: tuple[ClientUpdate, ...]  # sorted by participant address
    rejections: tuple[Rejection, ...]


def update_payload_digest(blob: bytes) -> Digest:
    """SHA-256 of an update blob's tensor payload: the safetensors bytes that follow its header
    (everything after the 8-byte magic, the 4-byte big-endian header length and the header). The
    blob format is canonical, so two blobs have the same payload exactly when their tensors (names,
    dtypes, shapes and every bit) are the same, whatever their headers say."""
    (header_len,) = struct.unpack_from(">I", blob, len(BLOB_MAGIC))
    return sha256(memoryview(blob)[len(BLOB_MAGIC) + 4 + header_len :])


def screen(outcomes: Sequence[FetchOutcome], round_id: RoundId, base_model_digest: Digest) -> Screened:
    """Apply the screening rules to fetched blobs (pure).

    Each committed update is checked on its own, in this order, and its first failed rule
    rejects it: ``invalid_cid``, ``blob_unavailable``, ``blob_integrity``, ``blob_format`` (from
    :func:`fetch_committed`, or bytes whose digest is not the committed one, or that do not
    decode as an update, or whose metadata has no canonical JSON form), ``header_mismatch`` (the
    blob's participant, round, base model or sample count is not the commitment's or the
    round's), ``metadata_mismatch``. Then an update that passed all of
    them is rejected as ``duplicate_update`` when its tensor payload (:func:`update_payload_digest`)
    is that of a blob committed earlier - by (block_number, log_index) of the commitments, among
    every committed blob that decoded as an update, whether or not that one passed - and the
    reason names that earlier participant: a payload belongs to whoever committed it first.
    Rejections come out sorted by participant address."""
    updates: list[tuple[UpdateCommitment, ClientUpdate, Digest]] = []
    payloads: list[tuple[UpdateCommitment, Digest]] = []  # of every blob that decoded as an update
    rejections: list[Rejection] = []
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
        payload = update_payload_digest(out.data)
        payloads.append((c, payload))
        problems = []
        if update.participant.lower() != c.participant.lower():
            problems.append(f"blob participant {update.participant} != committer")
        if int(update.round_id) != int(round_id):
            problems.append(f"blob round {update.round_id} != {round_id}")
        if bytes(update.base_model_digest) != bytes(base_model_digest):
            problems.append(
                f"blob base model {digest_hex(update.base_model_digest)} != round base {digest_hex(base_model_digest)}"
            )
        if int(update.num_samples) != int(c.num_samples):
            problems.append(f"blob sample count {update.num_samples} != committed {c.num_samples}")
        if problems:
            rejections.append(Rejection(c.participant, RULE_HEADER_MISMATCH, "; ".join(problems)))
            continue
        try:
            meta = metadata_digest(update)
        except ConfigError as err:  # a scalar extra with no canonical JSON form (a float that overflowed)
            rejections.append(Rejection(c.participant, RULE_BLOB_FORMAT, f"blob metadata has no canonical form: {err}"))
            continue
        if meta != bytes(c.metadata_digest):
            rejections.append(
                Rejection(
                    c.participant,
                    RULE_METADATA_MISMATCH,
                    f"blob metadata digest {digest_hex(meta)} != committed {digest_hex(c.metadata_digest)}",
                )
            )
            continue
        updates.append((c, update, payload))
    first: dict[bytes, UpdateCommitment] = {}  # payload -> its earliest committer
    for c, payload in sorted(payloads, key=lambda p: (p[0].block_number, p[0].log_index, p[0].participant.lower())):
        first.setdefault(bytes(payload), c)
    kept: list[ClientUpdate] = []
    for c, update, payload in updates:
        earlier = first[bytes(payload)]
        if earlier is c:
            kept.append(update)
        else:
            rejections.append(
                Rejection(
                    c.participant,
                    RULE_DUPLICATE_UPDATE,
                    f"tensor payload {digest_hex(payload)} is identical to that of {earlier.participant}, committed "
                    f"earlier (block {earlier.block_number}, log {earlier.log_index}; this one: block {c.block_number}, "
                    f"log {c.log_index})",
                )
            )
    return Screened(tuple(kept), tuple(sorted(rejections, key=lambda r: (r.participant.lower(), r.rule))))


@dataclass(frozen=True, eq=False)
class RoundAggregate:
    """The deterministic result of aggregating one round."""

    model_blob: bytes | None  # None when too few valid updates
    model_digest: Digest | None
    included: tuple[Address, ...]  # participant addresses, sorted
    rejections: tuple[Rejection, ...]  # screening + strategy
    num_samples: int
    too_few_reason: str | None
    metrics: Mapping[str, ExtraValue]
    model: GlobalModel | None = None  # the decoded ``model_blob``


def aggregate(
    strategy_config: StrategyConfig,
    base: GlobalModel,
    round_id: RoundId,
    base_model_digest: Digest,
    outcomes: Sequence[FetchOutcome],
    min_updates: int,
    *,
    privacy: PrivacyPolicy | None = None,
) -> RoundAggregate:
    """Screen and aggregate a round's committed updates; pure given the fetched bytes."""
    screened = screen(outcomes, round_id, base_model_digest)
    return aggregate_screened(
        strategy_config, base, round_id, base_model_digest, screened.updates, screened.rejections, min_updates,
        privacy=privacy,
    )


def privacy_problem(update: ClientUpdate, policy: PrivacyPolicy, local_epochs: int) -> Rejection | None:
    """Why ``update`` breaks the task's privacy policy (None when it does not; pure): it must carry the
    accountant inputs of one round under the policy (``privacy_policy``), and under client-level DP its norm
    must show the noise share the policy asks for (``dp_noise``: :func:`fedchain.fl.privacy.noise_check`,
    whose false-alarm rate the policy states)."""
    from fedchain.errors import PrivacyError

    try:
        inputs = AccountantInputs.from_extras(update.extras)
    except PrivacyError as err:
        return Rejection(update.participant, RULE_PRIVACY_POLICY, str(err))
    if inputs is None:
        return Rejection(update.participant, RULE_PRIVACY_POLICY, "the update carries no accountant inputs")
    wanted = policy.round_inputs(local_epochs)
    if inputs != wanted:
        fields = [
            f"{f.name} {getattr(inputs, f.name)!r} (policy: {getattr(wanted, f.name)!r})"
            for f in dataclasses.fields(AccountantInputs)
            if getattr(inputs, f.name) != getattr(wanted, f.name)
        ]
        return Rejection(update.participant, RULE_PRIVACY_POLICY,
                         "accountant inputs differ from the task's privacy policy: " + "; ".join(fields))
    if policy.mechanism == "client":
        from fedchain.fl.privacy import noise_check

        check = noise_check(update.model_tensors, policy)
        if not check.passed:
            return Rejection(update.participant, RULE_DP_NOISE, check.reason())
    return None


def aggregate_screened(
    strategy_config: StrategyConfig,
    base: GlobalModel,
    round_id: RoundId,
    base_model_digest: Digest,
    updates: Sequence[ClientUpdate],
    screening_rejections: Sequence[Rejection],
    min_updates: int,
    *,
    privacy: PrivacyPolicy | None = None,
) -> RoundAggregate:
    """Aggregate updates that passed screening with the task's strategy, and encode the new
    global model canonically; pure. The round engine and the auditor both come through here.

    Under a privacy policy an update that breaks it is rejected first (:func:`privacy_problem`), and
    under client-level DP a round needs at least the policy's ``min_clients`` included updates.

    Nothing a participant sent makes this raise. Should the aggregation fail on the updates'
    values (a non-finite model, a FedNova ``tau`` or q-FedAvg ``h`` that overflows the step), each
    update is aggregated alone (the strategy with ``min_updates = 1``); every update that fails
    alone is rejected as ``blob_format`` and the rest aggregated again. If none fails alone, or the
    rest fails again, there is no model: ``too_few_reason`` says why and the round is closed.
    A base model whose server state does not fit its weights is the aggregator's fault, not a
    participant's: :class:`~fedchain.errors.AggregationError`."""
    strategy = strategy_from_config(strategy_config)
    updates = sorted(updates, key=lambda u: u.participant.lower())
    if privacy is not None:
        local_epochs = int(strategy_config.params.get("local_epochs", 1))
        problems_of = {u.participant.lower(): privacy_problem(u, privacy, local_epochs) for u in updates}
        refused = [r for r in problems_of.values() if r is not None]
        if refused:
            screening_rejections = tuple(sorted(
                (*screening_rejections, *refused), key=lambda r: (r.participant.lower(), r.rule)))
            updates = [u for u in updates if problems_of[u.participant.lower()] is None]
        if privacy.mechanism == "client":
            min_updates = max(min_updates, privacy.min_clients)
    shapes = {name: tuple(np.shape(value)) for name, value in base.weights.items()}
    problems = structure_problems(base, shapes, strategy.state_prefixes)
    if problems:
        raise AggregationError(f"round {round_id}: the base model is malformed: {'; '.join(problems)}")
    if len(updates) < min_updates:
        return _too_few(screening_rejections, len(updates), min_updates)
    try:
        return _aggregate(strategy, base, round_id, base_model_digest, updates, screening_rejections, min_updates)
    except _UPDATE_FAILURES as err:
        failure = err
    alone = dataclasses.replace(strategy, min_updates=1)
    culprits: dict[str, str] = {}
    for u in updates:
        try:
            _aggregate(alone, base, round_id, base_model_digest, [u], (), 1)
        except _UPDATE_FAILURES as err:
            culprits[u.participant.lower()] = f"the update makes the aggregation fail instead of being rejected: {err}"
    log.warning("round %d: the aggregation failed (%s); %d update(s) fail alone", int(round_id), failure, len(culprits))
    if not culprits:
        return _no_model(screening_rejections, f"the aggregation failed: {failure}")
    rejections = tuple(screening_rejections) + tuple(
        Rejection(u.participant, RULE_BLOB_FORMAT, culprits[u.participant.lower()])
        for u in updates if u.participant.lower() in culprits
    )
    rest = [u for u in updates if u.participant.lower() not in culprits]
    if len(rest) < min_updates:
        return _too_few(rejections, len(rest), min_updates)
    try:
        return _aggregate(strategy, base, round_id, base_model_digest, rest, rejections, min_updates)
    except _UPDATE_FAILURES as err:
        return _no_model(rejections, f"the aggregation failed: {err}")


_UPDATE_FAILURES = (AggregationError, BlobFormatError)
"""What the strategy raises when the updates' values defeat the arithmetic (TooFewUpdatesError,
an AggregationError too, is handled before)."""


def _aggregate(
    strategy: BaseStrategy,
    base: GlobalModel,
    round_id: RoundId,
    base_model_digest: Digest,
    updates: Sequence[ClientUpdate],
    screening_rejections: Sequence[Rejection],
    min_updates: int,
) -> RoundAggregate:
    """One aggregation of ``updates`` (address order); AggregationError for a non-finite model."""
    try:
        result = strategy.aggregate_round(
            dict(base.weights),
            list(updates),
            dict(base.server_state),
            round_id=round_id,
            base_model_digest=base_model_digest,
        )
    except TooFewUpdatesError as err:
        return _too_few(screening_rejections, err.valid, err.minimum)
    rejections = tuple(screening_rejections) + tuple(result.rejected)
    included = tuple(Address(a) for a in sorted(result.included, key=str.lower))
    if len(included) < min_updates:
        return _too_few(rejections, len(included), min_updates)
    by_addr = {u.participant.lower(): u for u in updates}
    samples = sum(int(by_addr[a.lower()].num_samples) for a in included)
    weights = {k: np.asarray(v, dtype=np.float32) for k, v in result.weights.items()}
    server_state = {k: np.asarray(v, dtype=np.float32) for k, v in result.server_state.items()}
    for kind, tensors in (("weight", weights), ("server state", server_state)):
        for name, value in tensors.items():
            if not np.isfinite(value).all():
                raise AggregationError(f"the new model's {kind} {name!r} is not finite")
    blob = encode_global(
        round_id=round_id,
        base_model_digest=base_model_digest,
        weights=weights,
        server_state=server_state,
        num_samples=samples,
    )
    model = GlobalModel(round_id, base_model_digest, weights, server_state, samples)
    return RoundAggregate(
        model_blob=blob,
        model_digest=sha256(blob),
        included=included,
        rejections=rejections,
        num_samples=samples,
        too_few_reason=None,
        metrics=dict(result.metrics),
        model=model,
    )


def _no_model(rejections: Sequence[Rejection], reason: str) -> RoundAggregate:
    return RoundAggregate(
        model_blob=None,
        model_digest=None,
        included=(),
        rejections=tuple(rejections),
        num_samples=0,
        too_few_reason=reason,
        metrics={},
    )


def _too_few(rejections: Sequence[Rejection], valid: int, minimum: int) -> RoundAggregate:
    return _no_model(rejections, f"too few valid updates: {valid} < minimum {minimum}")


def structure_problems(
    model: GlobalModel, expected: Mapping[str, tuple[int, ...]], state_prefixes: Sequence[str]
) -> list[str]:
    """What is wrong with a global model's structure (empty when nothing): its weights must be
    exactly the task model's tensors (``expected``: name -> shape, float32), and its server state
    either empty or one float32 tensor per strategy state prefix and weight, shaped like the weight."""
    problems: list[str] = []

    def check(kind: str, tensors: Mapping[str, np.ndarray], wanted: Mapping[str, tuple[int, ...]]) -> None:
        missing = sorted(set(wanted) - set(tensors))
        extra = sorted(set(tensors) - set(wanted))
        if missing:
            problems.append(f"{kind} lacks {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if extra:
            problems.append(f"{kind} has unexpected {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}")
        for name in sorted(set(wanted) & set(tensors)):
            value = tensors[name]
            if tuple(value.shape) != tuple(wanted[name]) or value.dtype != np.float32:
                problems.append(f"{kind} {name} is {value.dtype}{list(value.shape)}, expected float32{list(wanted[name])}")

    check("weights", model.weights, expected)
    if model.server_state:
        check("server state", model.server_state, {p + n: shape for p in state_prefixes for n, shape in expected.items()})
    return problems


def leaf_of(c: UpdateCommitment) -> Digest:
    """The Merkle leaf of a commitment, as the contract's ``commitmentLeaf`` computes it."""
    return commitment_leaf(int(c.round_id), c.participant, c.update_digest, c.cid, c.num_samples, c.metadata_digest)


def inclusion_root(commitments: Sequence[UpdateCommitment], included: Sequence[str]) -> Digest:
    """Merkle root over the commitment leaves of the included participants."""
    wanted = {a.lower() for a in included}
    return merkle_root(leaf_of(c) for c in commitments if c.participant.lower() in wanted)


def round_evidence(
    round_id: RoundId,
    base_model_digest: Digest,
    result: RoundAggregate,
    commitments: Sequence[UpdateCommitment],
    aggregation_digest: Digest,
) -> Evidence:
    """The evidence document of a finalised round: the included commitments with their Merkle
    leaves, every rejection with its rule and reason, and the digests the chain records."""
    if result.model_digest is None:
        raise AggregationError(f"round {round_id}: a round without a model has no evidence document")
    by_addr = {c.participant.lower(): c for c in commitments}
    return Evidence(
        round_id=round_id,
        base_model_digest=base_model_digest,
        model_digest=result.model_digest,
        aggregation_digest=aggregation_digest,
        merkle_root=inclusion_root(commitments, result.included),
        included=tuple(
            IncludedUpdate(c.participant, c.update_digest, c.cid, c.num_samples, leaf_of(c))
            for c in (by_addr[a.lower()] for a in result.included)
        ),
        rejected=tuple(result.rejections),
    )


def shift_weights(weights: Mapping[str, np.ndarray], amount: float) -> dict[str, np.ndarray]:
    """Add ``amount`` to every float tensor (used only to demonstrate a dishonest aggregator)."""
    return {k: (v + np.asarray(amount, dtype=v.dtype)) if v.dtype.kind == "f" else v for k, v in weights.items()}


__all__ = [
    "FETCH_RETRY_WINDOW_S",
    "FetchOutcome",
    "GlobalModel",
    "RoundAggregate",
    "RULE_DUPLICATE_UPDATE",
    "RULE_INVALID_CID",
    "SCREEN_RULES",
    "PRIVACY_RULES",
    "privacy_problem",
    "Screened",
    "aggregate",
    "aggregate_screened",
    "decode_global",
    "fetch_committed",
    "inclusion_root",
    "leaf_of",
    "round_evidence",
    "screen",
    "structure_problems",
    "update_payload_digest",
]

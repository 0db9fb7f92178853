"""Secure-aggregation rounds on the ledger: the task's configuration, the round context, the records through the
blob store, and the new global model from the unmasked sum.

The aggregator, every participant and the auditor come through here, so they agree on everything a round's
masks depend on:

- **Members** (:func:`round_members`): the participants active when the round opened (admission waits for the
  next round), in address order, indexed 1..n, each with the X25519 key it registered. A registration key that
  is not a valid X25519 public key leaves its owner out of every secure round (it cannot receive shares).
- **Context** (:func:`round_context`): chain id, contract address and round id (the digest every key, share and
  mask is bound to), the members, and the task's parameters (:class:`SecAggConfig`): threshold a strict majority
  of each share set, the SecAgg+ neighbour graph for large federations (seeded with the round's base-model
  digest, fixed before the round opens), and the fixed-point coding of the clipping range.
- **Records** (:func:`fetch_round_records`): each advertisement, masked input (the committed update blob) and
  set of unmasking shares is a blob whose SHA-256 the chain records next to its CID; a blob is used only when its
  bytes match that digest, decode as the record kind, belong to the round and come from the index of the account
  that posted it. Anything else is a :class:`RecordProblem` naming the poster.
- **Aggregation** (:func:`secure_aggregate`): the exact ring sum of the survivors' quantised deltas
  (:func:`fedchain.secagg.protocol.unmask`), dequantised to their mean, applied to the base model with the
  strategy's server learning rate; a round that cannot be unmasked (below the threshold, an unrecoverable secret,
  a committed participant without a usable masked input) has no model and is closed with the reason.

What the aggregator learns is the sum of the survivors' clipped, quantised deltas; what it cannot see is any one
of them: each is masked by a self mask whose seed only t share holders together can rebuild (they reveal it only
for participants that committed) and by pairwise masks that cancel in the sum.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from fedchain.codec.canonical import sha256_digest
from fedchain.errors import ConfigError, SecAggError
from fedchain.fl import aggregate as agg
from fedchain.fl.privacy import PrivacyPolicy
from fedchain.fl.records import Rejection, StrategyConfig
from fedchain.ports import (
    AdvertisementPosted,
    BlobStore,
    LedgerEvent,
    ParticipantAdmitted,
    ParticipantRegistered,
    ParticipantRemoved,
    RoundOpened,
    RoundRecord,
    UnmaskingSharesPosted,
    UpdateCommitment,
)
from fedchain.protocol.blobs import GlobalModel, encode_global
from fedchain.protocol.rounds import RoundAggregate
from fedchain.secagg.context import Member, RoundContext, SecAggParams
from fedchain.secagg.graph import suggested_degree
from fedchain.secagg.keys import check_public_key
from fedchain.secagg.masking import Quantiser, RingVector
from fedchain.secagg.messages import Advertisement, MaskedInput, UnmaskingShares, decode_record
from fedchain.secagg.protocol import SecAggFinding, UnmaskResult, unmask
from fedchain.types import Address, Cid, Digest, RoundId

log = logging.getLogger(__name__)

SECAGG_STRATEGIES = ("fedavg", "fedprox")
"""Strategies a secure round can run: the server needs only the mean of the deltas (no per-update rule, no state)."""

DEFAULT_MAX_SUMMANDS = 1024
DEFAULT_PHASE_DURATION = 60

RULE_SECAGG_RECORD = "secagg_record"  # a record blob unavailable, not matching its digest, malformed, misattributed
RULE_SECAGG = "secagg"  # a finding of the unmasking (fedchain.secagg.protocol.FindingKind in the reason)

R = TypeVar("R", Advertisement, MaskedInput, UnmaskingShares)


@dataclass(frozen=True)
class SecAggConfig:
    """A task's secure-aggregation parameters (the task document's ``secagg`` object).

    ``clip`` bounds the L2 norm of each participant's model delta (participants clip to it), so every coordinate
    lies in [-clip, clip], the range of the fixed-point coding; ``max_summands`` sizes that coding (the ring sum of
    that many inputs never wraps; the coding's step is clip / floor((2^31 - 1) / max_summands)). ``degree``: the
    even degree of the SecAgg+ neighbour graph (None: complete up to 33 members, about 3 log2 n above).
    ``advertise_duration`` and ``unmask_duration``: seconds of a secure round's first and last phase."""

    clip: float
    max_summands: int = DEFAULT_MAX_SUMMANDS
    degree: int | None = None
    advertise_duration: int = DEFAULT_PHASE_DURATION
    unmask_duration: int = DEFAULT_PHASE_DURATION

    def __post_init__(self) -> None:
        if isinstance(self.clip, bool) or not isinstance(self.clip, (int, float)) or not (
            math.isfinite(self.clip) and self.clip > 0
        ):
            raise ConfigError(f"secagg clip must be a positive finite number, got {self.clip!r}")
        object.__setattr__(self, "clip", float(self.clip))
        for name in ("max_summands", "advertise_duration", "unmask_duration"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"secagg {name} must be a positive integer, got {value!r}")
        if self.max_summands > 2**20:
            raise ConfigError(f"secagg max_summands must be at most 2^20 (the 2^32 ring), got {self.max_summands}")
        if self.degree is not None and (
            isinstance(self.degree, bool) or not isinstance(self.degree, int) or self.degree < 2 or self.degree % 2
        ):
            raise ConfigError(f"secagg degree must be an even integer >= 2 (or absent), got {self.degree!r}")
        try:
            self.quantiser()
        except SecAggError as err:
            raise ConfigError(f"secagg clip {self.clip} and max_summands {self.max_summands}: {err}") from err

    def quantiser(self) -> Quantiser:
        """The fixed-point coding of [-clip, clip] for up to ``max_summands`` inputs."""
        return Quantiser.for_ring(self.clip, self.max_summands)

    def params(self, n: int, dimension: int, graph_seed: bytes) -> SecAggParams:
        """The round's parameters for ``n`` members: the graph degree (complete when it reaches n - 1) and the
        threshold t, a strict majority of each share set (the owner and its neighbours)."""
        degree = suggested_degree(n) if self.degree is None else self.degree
        complete = degree >= n - 1
        holders = n if complete else degree + 1
        threshold = max(1, holders // 2 + 1)
        return SecAggParams(threshold, dimension, self.quantiser(), None if complete else degree, graph_seed)

    def to_json(self) -> dict[str, Any]:
        """The ``secagg`` object of the task document."""
        return {
            "clip": self.clip,
            "max_summands": self.max_summands,
            **({} if self.degree is None else {"degree": self.degree}),
            "advertise_duration": self.advertise_duration,
            "unmask_duration": self.unmask_duration,
        }

    @classmethod
    def from_json(cls, data: Any) -> SecAggConfig:
        """From the task document's ``secagg`` object; ConfigError when malformed."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"task document: secagg must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"clip", "max_summands", "degree", "advertise_duration", "unmask_duration"})
        if unknown:
            raise ConfigError(f"task document: unknown secagg field(s) {', '.join(unknown)}")
        if "clip" not in data:
            raise ConfigError("task document: secagg needs a clip (the L2 bound of a participant's delta)")
        return cls(
            clip=data["clip"],
            max_summands=data.get("max_summands", DEFAULT_MAX_SUMMANDS),
            degree=data.get("degree"),
            advertise_duration=data.get("advertise_duration", DEFAULT_PHASE_DURATION),
            unmask_duration=data.get("unmask_duration", DEFAULT_PHASE_DURATION),
        )


def check_secagg_task(
    strategy: StrategyConfig,
    secagg: SecAggConfig,
    *,
    reveal_duration: int,
    max_commit_duration: int,
    privacy_mechanism: str | None,
    min_updates: int,
) -> None:
    """ConfigError unless the task can run secure rounds: FedAvg or FedProx without robust rules (a robust rule
    needs every update in the clear, which secure aggregation hides), uniform weights (the ring holds a mean of
    equally weighted deltas), no commit-reveal, phases within the maximum commit duration, no DP-SGD (its updates
    are screened one by one), and a minimum number of updates the coding can sum."""
    if strategy.robust:
        rules = ", ".join(r.name for r in strategy.robust)
        raise ConfigError(
            f"secure aggregation hides each update from the aggregator, so the robust rule(s) {rules} cannot run "
            "(they inspect individual updates); drop them or drop secagg (participants still clip their deltas)"
        )
    if strategy.name not in SECAGG_STRATEGIES:
        raise ConfigError(
            f"secure aggregation supports the strategies {', '.join(SECAGG_STRATEGIES)}, not {strategy.name!r} "
            "(it needs the per-update extras or server state that masking hides)"
        )
    if int(strategy.params.get("uniform_weights", 0)) != 1:
        raise ConfigError(
            "secure aggregation needs uniform aggregation weights (strategy parameter uniform_weights = 1): the "
            "masked sum is a sum of equally weighted deltas"
        )
    if reveal_duration:
        raise ConfigError("secure aggregation and commit-reveal exclude each other (reveal_duration must be 0)")
    for name in ("advertise_duration", "unmask_duration"):
        if getattr(secagg, name) > max_commit_duration:
            raise ConfigError(
                f"secagg {name} {getattr(secagg, name)} s exceeds the task's max_commit_duration {max_commit_duration} s"
            )
    if privacy_mechanism == "dpsgd":
        raise ConfigError(
            "secure aggregation runs with client-level DP (--dp client: each participant adds its share of the noise "
            "before masking), not DP-SGD"
        )
    if min_updates > secagg.max_summands:
        raise ConfigError(f"min_updates {min_updates} exceeds secagg max_summands {secagg.max_summands}")


# --- members and context ------------------------------------------------------------------------
def round_members(events: Iterable[LedgerEvent], rnd: RoundRecord) -> tuple[Member, ...]:
    """The members of secure round ``rnd``: the participants active just before its ``RoundOpened`` event,
    sorted by address and indexed 1..n, with their latest registered X25519 key; those whose key is not a valid
    X25519 public key are left out (logged)."""
    keys: dict[str, tuple[Address, bytes]] = {}
    active: set[str] = set()
    opened: tuple[int, int] | None = None
    for e in sorted(events, key=lambda ev: (ev.block_number, ev.log_index)):
        if isinstance(e, RoundOpened) and int(e.round_id) == int(rnd.round_id):
            opened = (e.block_number, e.log_index)
            break
        if isinstance(e, ParticipantRegistered):
            keys[e.participant.lower()] = (e.participant, bytes(e.public_key))
        elif isinstance(e, ParticipantAdmitted):
            active.add(e.participant.lower())
        elif isinstance(e, ParticipantRemoved):
            active.discard(e.participant.lower())
    if opened is None:
        raise SecAggError(f"round {rnd.round_id} has no RoundOpened event in the ledger's history")
    out: list[tuple[Address, bytes]] = []
    for addr in sorted(active):
        if addr not in keys:
            continue
        address, key = keys[addr]
        try:
            check_public_key(key, f"participant {address}")
        except SecAggError as err:
            log.warning("round %d: %s; it takes no part in secure rounds", int(rnd.round_id), err)
            continue
        out.append((address, key))
    return tuple(Member(i + 1, a, k) for i, (a, k) in enumerate(out))


def model_dimension(base: GlobalModel) -> int:
    """How many coordinates a delta of ``base`` has (every weight tensor, flattened in name order)."""
    return sum(int(np.asarray(base.weights[n]).size) for n in sorted(base.weights))


def round_context(
    chain_id: int, contract: Address, rnd: RoundRecord, members: Sequence[Member], config: SecAggConfig, dimension: int
) -> RoundContext:
    """The context of secure round ``rnd`` (SecAggError when its members cannot run one: fewer than two, or a
    threshold above the share sets)."""
    if len(members) < 2:
        raise SecAggError(f"round {rnd.round_id}: a secure round needs at least 2 members with X25519 keys, has {len(members)}")
    params = config.params(len(members), dimension, bytes(rnd.base_model_digest))
    return RoundContext(int(chain_id), contract, RoundId(int(rnd.round_id)), tuple(members), params)


# --- deltas ----------------------------------------------------------------------------------------
def flatten(tensors: Mapping[str, np.ndarray], names: Sequence[str]) -> npt.NDArray[np.float64]:
    """The tensors ``names`` (in that order) as one float64 vector."""
    return np.concatenate([np.asarray(tensors[n], dtype=np.float64).ravel() for n in names]) if names else np.zeros(0)


def unflatten(vector: npt.NDArray[np.float64], like: Mapping[str, np.ndarray]) -> dict[str, npt.NDArray[np.float64]]:
    """``vector`` cut back into tensors shaped like ``like`` (name order)."""
    out: dict[str, npt.NDArray[np.float64]] = {}
    at = 0
    for n in sorted(like):
        shape = np.shape(like[n])
        size = int(np.prod(shape, dtype=np.int64))
        out[n] = vector[at : at + size].reshape(shape)
        at += size
    if at != vector.size:
        raise SecAggError(f"a vector of {vector.size} coordinates does not fit a model of {at}")
    return out


def clip_l2(vector: npt.NDArray[np.float64], bound: float) -> tuple[npt.NDArray[np.float64], float]:
    """``vector`` scaled down to L2 norm ``bound`` when longer, and its norm before."""
    norm = float(np.sqrt(np.sum(vector * vector)))
    if norm > bound:
        return vector * (bound / norm), norm
    return vector, norm


def quantise_delta(tensors: Mapping[str, np.ndarray], config: SecAggConfig, clip: bool = True) -> RingVector:
    """A participant's model delta as its ring input: clipped to L2 norm ``config.clip`` (with ``clip``; a client
    DP update is clipped and noised already, and the coding saturates coordinates beyond the range), quantised."""
    names = sorted(tensors)
    vector = flatten(tensors, names)
    if clip:
        vector, _ = clip_l2(vector, config.clip)
    return config.quantiser().quantise(vector).values


# --- records through the store -----------------------------------------------------------------------
@dataclass(frozen=True)
class RecordProblem:
    """Why a posted record is not used: the poster, the record kind and what was wrong."""

    participant: Address
    kind: str  # "advertisement" | "masked input" | "unmasking shares"
    reason: str

    def rejection(self) -> Rejection:
        """As a rejection of the round (rule ``secagg_record``)."""
        return Rejection(self.participant, RULE_SECAGG_RECORD, f"{self.kind}: {self.reason}")


@dataclass(frozen=True, eq=False)
class RoundRecords:
    """A secure round's records as fetched and checked: by member index, with the problems of the rest."""

    advertisements: tuple[Advertisement, ...]
    masked_inputs: tuple[MaskedInput, ...]
    unmasking: tuple[UnmaskingShares, ...]
    committed: tuple[int, ...]  # member indices of the committers (U2 as the chain records it)
    problems: tuple[RecordProblem, ...]


def fetch_blob(store: BlobStore, cid: Cid, window_s: float, sleep: Callable[[float], None] = time.sleep) -> bytes | None:
    """The blob ``cid`` from ``store``, asked again for up to ``window_s`` seconds; None when it stays missing.
    A store that cannot be reached raises (the caller rides the outage out)."""
    from fedchain.errors import BlobNotFoundError

    deadline = time.monotonic() + window_s
    pause = 0.2
    while True:
        try:
            return store.get(cid)
        except BlobNotFoundError:
            if time.monotonic() >= deadline:
                return None
        sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 2.0)


def check_record(
    data: bytes | None, digest: Digest, expected: type[R], ctx: RoundContext, poster: Address, kind: str
) -> R | RecordProblem:
    """The record in ``data`` when it is the one ``poster`` posted for this round; else the problem."""
    if data is None:
        return RecordProblem(poster, kind, "the blob is not available in the store")
    if sha256_digest(data) != bytes(digest):
        return RecordProblem(poster, kind, "the blob does not match the digest on chain")
    try:
        record = decode_record(data)
    except SecAggError as err:
        return RecordProblem(poster, kind, f"malformed: {err}")
    if not isinstance(record, expected):
        return RecordProblem(poster, kind, f"the blob is a {type(record).__name__}, not a {expected.__name__}")
    if record.context != ctx.digest:
        return RecordProblem(poster, kind, "the record belongs to another round or federation")
    index = index_of(ctx, poster)
    if index is None or record.sender != index:
        return RecordProblem(poster, kind, f"the record is signed for participant index {record.sender}, "
                                           f"not the poster's ({index})")
    return record


def index_of(ctx: RoundContext, address: str) -> int | None:
    """The member index of ``address`` in the round (None: not a member)."""
    for m in ctx.members:
        if m.address.lower() == address.lower():
            return m.index
    return None


def fetch_round_records(
    store: BlobStore,
    ctx: RoundContext,
    advertisements: Sequence[AdvertisementPosted],
    commitments: Sequence[UpdateCommitment],
    unmasking: Sequence[UnmaskingSharesPosted],
    *,
    window_s: float = 15.0,
) -> RoundRecords:
    """Fetch and check every record the chain lists for the round (blobs missing after ``window_s`` seconds
    in all are problems of their poster)."""
    deadline = time.monotonic() + window_s
    problems: list[RecordProblem] = []

    def collect(events: Sequence[Any], expected: type[R], kind: str) -> list[R]:
        out: list[R] = []
        for e in events:
            data = fetch_blob(store, e.cid, max(0.0, deadline - time.monotonic()))
            digest = e.update_digest if isinstance(e, UpdateCommitment) else e.digest
            got = check_record(data, digest, expected, ctx, e.participant, kind)
            if isinstance(got, RecordProblem):
                problems.append(got)
            else:
                out.append(got)
        return out

    ads = collect(advertisements, Advertisement, "advertisement")
    masked = collect(commitments, MaskedInput, "masked input")
    shares = collect(unmasking, UnmaskingShares, "unmasking shares")
    committed = sorted(i for i in (index_of(ctx, c.participant) for c in commitments) if i is not None)
    return RoundRecords(tuple(ads), tuple(masked), tuple(shares), tuple(committed), tuple(problems))


# --- aggregation ------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SecureAggregate:
    """A secure round's aggregate and how the unmasking went (``unmasked`` None: it could not be unmasked)."""

    aggregate: RoundAggregate
    unmasked: UnmaskResult | None
    findings: tuple[SecAggFinding, ...]
    failure: str | None  # why the round could not be unmasked


def finding_rejection(ctx: RoundContext, finding: SecAggFinding) -> Rejection:
    """A finding of the unmasking as a rejection naming the offender's address."""
    owner = "" if finding.owner is None else f" (about participant {finding.owner})"
    return Rejection(ctx.member(finding.offender).address if ctx.is_member(finding.offender) else Address(
        f"index {finding.offender}"), RULE_SECAGG, f"{finding.kind.value}: {finding.detail}{owner}")


def secure_aggregate(
    strategy_config: StrategyConfig,
    config: SecAggConfig,
    base: GlobalModel,
    round_id: RoundId,
    base_model_digest: Digest,
    ctx: RoundContext,
    records: RoundRecords,
    commitments: Sequence[UpdateCommitment],
    min_updates: int,
    *,
    privacy: PrivacyPolicy | None = None,
) -> SecureAggregate:
    """The round's new global model from its records; pure given them (the aggregator and the auditor both come
    through here). No model when the round cannot be unmasked or has fewer than ``min_updates`` survivors (under
    client-level DP at least the policy's ``min_clients``: the noise shares of fewer sum to less than its noise)."""
    if privacy is not None and privacy.mechanism == "client":
        min_updates = max(min_updates, privacy.min_clients)
    rejections = [p.rejection() for p in records.problems]
    try:
        result = unmask(ctx, records.advertisements, records.masked_inputs, records.unmasking, records.committed)
    except SecAggError as err:
        reason = f"the round cannot be unmasked: {err}"
        return SecureAggregate(_closed(rejections, reason), None, (), reason)
    rejections += [finding_rejection(ctx, f) for f in result.findings]
    survivors = [ctx.member(i).address for i in result.survivors]
    if len(survivors) < min_updates:
        reason = f"{len(survivors)} masked input(s) unmasked, fewer than min_updates = {min_updates}"
        return SecureAggregate(_closed(rejections, reason), result, result.findings, reason)
    mean = config.quantiser().dequantise_mean(result.total, len(survivors))
    delta = unflatten(mean, base.weights)
    server_lr = float(strategy_config.params.get("server_lr", 1.0))
    weights = {k: np.asarray(v, dtype=np.float32) for k, v in agg.apply_delta(base.weights, delta, server_lr).items()}
    by_addr = {c.participant.lower(): c for c in commitments}
    included = tuple(Address(a) for a in sorted(survivors, key=str.lower))
    samples = sum(int(by_addr[a.lower()].num_samples) for a in included if a.lower() in by_addr)
    blob = encode_global(round_id=round_id, base_model_digest=base_model_digest, weights=weights, server_state={},
                         num_samples=samples)
    model = GlobalModel(round_id, base_model_digest, weights, {}, samples)
    metrics = {
        "secagg_survivors": len(result.survivors),
        "secagg_dropped": len(result.dropped),
        "secagg_revealers": len(result.revealers),
        "secagg_findings": len(result.findings),
    }
    aggregate = RoundAggregate(
        model_blob=blob,
        model_digest=sha256_digest(blob),
        included=included,
        rejections=tuple(sorted(rejections, key=lambda r: (r.participant.lower(), r.rule))),
        num_samples=samples,
        too_few_reason=None,
        metrics=metrics,
        model=model,
    )
    return SecureAggregate(aggregate, result, result.findings, None)


def _closed(rejections: Sequence[Rejection], reason: str) -> RoundAggregate:
    return RoundAggregate(
        model_blob=None,
        model_digest=None,
        included=(),
        rejections=tuple(sorted(rejections, key=lambda r: (r.participant.lower(), r.rule))),
        num_samples=0,
        too_few_reason=reason,
        metrics={},
    )


def masked_metadata_digest(round_id: RoundId, base_model_digest: Digest, masked_digest: Digest, num_samples: int) -> Digest:
    """The metadata digest a participant commits next to its masked input (no extras leave the participant)."""
    return sha256_digest(
        b"fedchain/secagg/v1/masked-input-meta"
        + int(round_id).to_bytes(32, "big")
        + bytes(base_model_digest)
        + bytes(masked_digest)
        + int(num_samples).to_bytes(8, "big")
    )

"""Pure, deterministic aggregation math over numpy arrays.

Every function sorts its inputs by participant address (case-insensitively) before
touching numbers, accumulates in float64 in that fixed order, and casts to float32
once at the end, so the same updates in any order give bit-identical results: the
auditor reproduces the global model hash exactly.

No reduction here goes through BLAS (``np.dot``, ``@``, ``np.linalg.norm``) or numpy's
pairwise SIMD summation (``np.sum``, ``np.mean``): their result depends on the CPU
kernel picked at run time. Reductions over coordinates (norms, distances) are exactly
rounded sums (:func:`math.fsum`) of elementwise float64 products; reductions over
participants accumulate elementwise in address order. Elementwise float64 arithmetic is
correctly rounded IEEE 754 on every CPU, so these give the same bits everywhere.

Update validation lives here too: :func:`validate_update` raises
:class:`~fedchain.errors.UpdateRejectedError`, :func:`screen_updates` turns those
into :class:`~fedchain.fl.records.Rejection` records.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction
from itertools import pairwise
from typing import NamedTuple

import numpy as np

from fedchain.errors import AggregationError, TooFewUpdatesError, UpdateRejectedError
from fedchain.fl.records import CONTROL_PREFIX, WIRE_DTYPE, ClientUpdate, Rejection, UpdateKind, Weights
from fedchain.types import Address, Digest, RoundId

VALIDATION_RULE = "validation"


class Contribution(NamedTuple):
    """One participant's tensors and its aggregation weight (usually its sample count)."""

    participant: Address
    weight: float
    tensors: Mapping[str, np.ndarray]


def address_key(address: str) -> str:
    """The sort key of a participant: its address, case-insensitively."""
    return address.lower()


def sort_contributions(contributions: Sequence[Contribution]) -> list[Contribution]:
    """Contributions in canonical order; duplicate participants are an error."""
    ordered = sorted(contributions, key=lambda c: address_key(c.participant))
    for a, b in pairwise(ordered):
        if address_key(a.participant) == address_key(b.participant):
            raise AggregationError(f"participant {a.participant} contributes more than once")
    return ordered


def _names(contributions: Sequence[Contribution]) -> list[str]:
    if not contributions:
        raise AggregationError("nothing to aggregate: no contributions")
    names = sorted(contributions[0].tensors)
    for c in contributions[1:]:
        if sorted(c.tensors) != names:
            raise AggregationError(f"tensor names of {c.participant} differ from {contributions[0].participant}")
    return names


def _stack(contributions: Sequence[Contribution], name: str) -> np.ndarray:
    return np.stack([np.asarray(c.tensors[name], dtype=np.float64) for c in contributions])


def _to_wire(values: Mapping[str, np.ndarray]) -> Weights:
    # a value beyond float32's range becomes an infinity, quietly: the caller that publishes a
    # model refuses non-finite values (fedchain.protocol.rounds.aggregate_screened)
    with np.errstate(over="ignore"):
        return {name: np.asarray(values[name]).astype(WIRE_DTYPE) for name in sorted(values)}


def weighted_mean(contributions: Sequence[Contribution]) -> Weights:
    """Σ w_i x_i / Σ w_i, accumulated in float64 in address order, cast once to float32."""
    ordered = sort_contributions(contributions)
    names = _names(ordered)
    total = 0.0
    for c in ordered:
        if not (c.weight > 0 and math.isfinite(c.weight)):
            raise AggregationError(f"weight of {c.participant} must be positive and finite, got {c.weight}")
        total += float(c.weight)
    out: dict[str, np.ndarray] = {}
    for name in names:
        acc = np.zeros(np.shape(ordered[0].tensors[name]), dtype=np.float64)
        for c in ordered:
            acc += float(c.weight) * np.asarray(c.tensors[name], dtype=np.float64)
        out[name] = acc / total
    return _to_wire(out)


def cap_weight_shares(contributions: Sequence[Contribution], max_share: float) -> tuple[list[Contribution], int]:
    """Contributions (address order) whose weights are their shares, capped at ``max_share``, and
    how many of them the cap held down (their share is below what their weight alone gave them).

    ``max_share`` = c in (0, 1]; with c = 1 the weights are returned unchanged. Otherwise,
    with n contributions of weights w_i (positive, finite), the weights become shares p_i
    (Σ p_i = 1) such that no p_i exceeds c, what a capped participant loses going to the others
    in proportion to their weights ("water-filling"):

    * if c·n <= 1 the cap cannot be met by anyone without being met by everyone: every p_i = 1/n;
    * else start with no participant capped and repeat: R = 1 - c·|capped|,
      S = Σ w_j over the uncapped j, p_j = R·w_j/S for each uncapped j; if some p_j > c, cap
      every such j (p_j = c) and repeat, else stop.

    Every step is exact rational arithmetic on the exact values of the float64s c and w_i
    (:class:`fractions.Fraction`), and each final share is rounded once to the nearest float64,
    so anyone reproduces the weights bit for bit. The loop runs at most n times."""
    ordered = sort_contributions(contributions)
    if not (0.0 < max_share <= 1.0):
        raise AggregationError(f"max_weight_share must be in (0, 1], got {max_share}")
    for c in ordered:
        if not (c.weight > 0 and math.isfinite(c.weight)):
            raise AggregationError(f"weight of {c.participant} must be positive and finite, got {c.weight}")
    if max_share >= 1.0 or not ordered:
        return ordered, 0
    cap = Fraction(max_share)
    n = len(ordered)
    weights = [Fraction(float(c.weight)) for c in ordered]
    if cap * n <= 1:
        shares = [Fraction(1, n)] * n
    else:
        capped = [False] * n
        while True:
            remaining = 1 - cap * sum(capped)
            free_total = sum((w for w, done in zip(weights, capped, strict=True) if not done), Fraction(0))
            shares = [cap if done else remaining * w / free_total for w, done in zip(weights, capped, strict=True)]
            over = [i for i in range(n) if not capped[i] and shares[i] > cap]
            if not over:
                break
            for i in over:
                capped[i] = True
    total = sum(weights, Fraction(0))
    held_down = sum(1 for w, share in zip(weights, shares, strict=True) if share < w / total)
    return [Contribution(c.participant, float(share), c.tensors) for c, share in zip(ordered, shares, strict=True)], held_down


def _median_rows(stacked: np.ndarray) -> np.ndarray:
    """Median over axis 0: the middle row of the sorted values, or the mean of the two middle rows.

    -0.0 and 0.0 compare equal, so which one a sort puts in the middle depends on the sort
    kernel; adding 0.0 turns -0.0 into 0.0, so the bits do not.
    """
    values = np.sort(stacked, axis=0, kind="stable")
    n = values.shape[0]
    mid = n // 2
    middle: np.ndarray = values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2.0
    return middle + 0.0


def coordinate_median(contributions: Sequence[Contribution]) -> Weights:
    """Coordinate-wise median (weights ignored)."""
    ordered = sort_contributions(contributions)
    names = _names(ordered)
    return _to_wire({name: _median_rows(_stack(ordered, name)) for name in names})


def trim_count(n: int, beta: float) -> int:
    """How many values trimmed mean drops at each end for ``n`` inputs."""
    if not 0.0 <= beta < 0.5:
        raise AggregationError(f"trimmed-mean beta must be in [0, 0.5), got {beta}")
    k = int(math.floor(beta * n))
    if n - 2 * k < 1:
        raise AggregationError(f"trimmed mean with beta={beta} leaves nothing of {n} updates")
    return k


def trimmed_mean(contributions: Sequence[Contribution], beta: float) -> Weights:
    """Coordinate-wise mean after dropping the ``floor(beta*n)`` smallest and largest values."""
    ordered = sort_contributions(contributions)
    names = _names(ordered)
    k = trim_count(len(ordered), beta)
    out: dict[str, np.ndarray] = {}
    for name in names:
        values = np.sort(_stack(ordered, name), axis=0, kind="stable")
        kept = values[k : len(ordered) - k]
        acc = np.zeros(kept.shape[1:], dtype=np.float64)
        for row in kept:
            acc += row
        out[name] = acc / kept.shape[0]
    return _to_wire(out)


def trimmed_fraction(contributions: Sequence[Contribution], beta: float) -> dict[Address, float]:
    """Per participant: the fraction of its coordinates that trimmed mean dropped.

    Ties are broken by address order, so the result is order independent.
    """
    ordered = sort_contributions(contributions)
    names = _names(ordered)
    n = len(ordered)
    k = trim_count(n, beta)
    dropped = np.zeros(n, dtype=np.int64)
    total = 0
    for name in names:
        stacked = _stack(ordered, name).reshape(n, -1)
        rank = np.argsort(stacked, axis=0, kind="stable")
        outside = np.concatenate([rank[:k], rank[n - k :]], axis=0) if k else rank[:0]
        dropped += np.bincount(outside.ravel(), minlength=n)
        total += stacked.shape[1]
    return {c.participant: float(dropped[i]) / total if total else 0.0 for i, c in enumerate(ordered)}


def flatten(tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    """All tensors, name-sorted, as one float64 vector."""
    names = sorted(tensors)
    if not names:
        return np.zeros(0, dtype=np.float64)
    return np.concatenate([np.asarray(tensors[n], dtype=np.float64).ravel() for n in names])


def sum_of_squares(vector: np.ndarray) -> float:
    """Σ v_i², exactly rounded: float64 squares summed with :func:`math.fsum` (no BLAS)."""
    v = np.asarray(vector, dtype=np.float64).ravel()
    return math.fsum((v * v).tolist())


def l2_norm(tensors: Mapping[str, np.ndarray]) -> float:
    """Euclidean norm over all tensors: the square root of the exactly rounded sum of squares."""
    return math.sqrt(sum_of_squares(flatten(tensors)))


def clip_by_norm(tensors: Mapping[str, np.ndarray], max_norm: float) -> tuple[Weights, float, bool]:
    """Scale ``tensors`` down to L2 norm ``max_norm`` if above it: (tensors, original norm, clipped?)."""
    if not (max_norm > 0 and math.isfinite(max_norm)):
        raise AggregationError(f"max_norm must be positive and finite, got {max_norm}")
    norm = l2_norm(tensors)
    if norm <= max_norm:
        return _to_wire(tensors), norm, False
    scale = max_norm / norm
    return _to_wire({n: np.asarray(tensors[n], dtype=np.float64) * scale for n in tensors}), norm, True


def pairwise_sq_distances(contributions: Sequence[Contribution]) -> tuple[list[Contribution], np.ndarray]:
    """Squared Euclidean distances between all pairs (exactly rounded sums), in canonical order."""
    ordered = sort_contributions(contributions)
    _names(ordered)
    vectors = [flatten(c.tensors) for c in ordered]
    n = len(ordered)
    dist = np.zeros((n, n), dtype=np.float64)
    for i in range(n):
        for j in range(i + 1, n):
            dist[i, j] = dist[j, i] = sum_of_squares(vectors[i] - vectors[j])
    return ordered, dist


def krum_scores(contributions: Sequence[Contribution], f: int) -> dict[Address, float]:
    """Krum score of each participant: the sum of squared distances to its n-f-2 nearest others.

    Needs ``n >= 2f + 3`` (Blanchard et al., 2017).
    """
    if f < 0:
        raise AggregationError(f"krum f must be >= 0, got {f}")
    n = len(contributions)
    if n < 2 * f + 3:
        raise TooFewUpdatesError(n, 2 * f + 3)
    ordered, dist = pairwise_sq_distances(contributions)
    neighbours = n - f - 2
    scores: dict[Address, float] = {}
    for i, c in enumerate(ordered):
        others = np.sort(np.delete(dist[i], i))
        acc = 0.0
        for value in others[:neighbours]:
            acc += float(value)
        scores[c.participant] = acc
    return scores


def multi_krum_select(contributions: Sequence[Contribution], f: int, m: int) -> tuple[Address, ...]:
    """The ``m`` participants with the lowest Krum scores (ties: address order), in address order."""
    if m < 1:
        raise AggregationError(f"multi-krum m must be >= 1, got {m}")
    scores = krum_scores(contributions, f)
    if m > len(scores):
        raise AggregationError(f"multi-krum m={m} exceeds the {len(scores)} updates")
    ranked = sorted(scores, key=lambda a: (scores[a], address_key(a)))
    return tuple(sorted(ranked[:m], key=address_key))


def apply_delta(global_weights: Mapping[str, np.ndarray], delta: Mapping[str, np.ndarray], scale: float = 1.0) -> Weights:
    """``global + scale * delta``, computed in float64, cast once to float32."""
    if sorted(global_weights) != sorted(delta):
        raise AggregationError("delta tensor names do not match the global model")
    return _to_wire(
        {
            n: np.asarray(global_weights[n], dtype=np.float64) + scale * np.asarray(delta[n], dtype=np.float64)
            for n in global_weights
        }
    )


def fednova_tau_eff(contributions: Sequence[Contribution], taus: Mapping[Address, float]) -> float:
    """FedNova's effective step count Σ p_i τ_i with p_i = w_i / Σ w (in address order)."""
    ordered = sort_contributions(contributions)
    total = 0.0
    for c in ordered:
        total += float(c.weight)
    tau = 0.0
    for c in ordered:
        tau += float(c.weight) / total * float(taus[c.participant])
    return tau


def fednova_combine(
    global_weights: Mapping[str, np.ndarray], normalized_mean: Mapping[str, np.ndarray], tau_eff: float
) -> Weights:
    """FedNova: ``global + τ_eff * Σ p_i d_i`` where d_i = (local_i - global) / ||a_i||_1."""
    if not (tau_eff > 0 and math.isfinite(tau_eff)):
        raise AggregationError(f"FedNova tau_eff must be positive and finite, got {tau_eff}")
    return apply_delta(global_weights, normalized_mean, tau_eff)


def qfedavg_combine(
    global_weights: Mapping[str, np.ndarray], delta_mean: Mapping[str, np.ndarray], h_mean: float
) -> Weights:
    """q-FedAvg: ``global + Σ Δ_k / Σ h_k`` (given as means over the same k)."""
    if not (h_mean > 0 and math.isfinite(h_mean)):
        raise AggregationError(f"q-FedAvg h must be positive and finite, got {h_mean}")
    return apply_delta(global_weights, delta_mean, 1.0 / h_mean)


def mean_scalar(values: Mapping[Address, float]) -> float:
    """Unweighted mean of per-participant scalars, summed in address order."""
    if not values:
        raise AggregationError("mean of no values")
    acc = 0.0
    for a in sorted(values, key=address_key):
        acc += float(values[a])
    return acc / len(values)


def fedadam_step(
    global_weights: Mapping[str, np.ndarray],
    delta: Mapping[str, np.ndarray],
    m: Mapping[str, np.ndarray],
    v: Mapping[str, np.ndarray],
    *,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.99,
    tau: float = 1e-3,
) -> tuple[Weights, Weights, Weights]:
    """FedAdam (Reddi et al., 2021): one server Adam step on the pseudo-gradient ``-delta``.

    Returns (new global, new first moment, new second moment), all float32.
    """
    names = sorted(global_weights)
    for label, other in (("delta", delta), ("m", m), ("v", v)):
        if sorted(other) != names:
            raise AggregationError(f"FedAdam {label} tensor names do not match the global model")
    new_w: dict[str, np.ndarray] = {}
    new_m: dict[str, np.ndarray] = {}
    new_v: dict[str, np.ndarray] = {}
    for n in names:
        d = np.asarray(delta[n], dtype=np.float64)
        mm = beta1 * np.asarray(m[n], dtype=np.float64) + (1.0 - beta1) * d
        vv = beta2 * np.asarray(v[n], dtype=np.float64) + (1.0 - beta2) * d * d
        new_m[n], new_v[n] = mm, vv
        new_w[n] = np.asarray(global_weights[n], dtype=np.float64) + lr * mm / (np.sqrt(vv) + tau)
    return _to_wire(new_w), _to_wire(new_m), _to_wire(new_v)


# --- validation ---------------------------------------------------------------


def validate_update(
    update: ClientUpdate,
    reference: Mapping[str, np.ndarray],
    *,
    round_id: RoundId,
    base_model_digest: Digest,
    kind: UpdateKind,
    control: bool = False,
) -> None:
    """Raise :class:`UpdateRejectedError` unless ``update`` fits the round.

    ``reference`` holds the global model (names and shapes); ``control`` says whether a
    SCAFFOLD control-variate delta (``cv/`` + every name) must accompany the update.
    """
    who = update.participant

    def reject(reason: str) -> UpdateRejectedError:
        return UpdateRejectedError(who, reason)

    if update.round_id != round_id:
        raise reject(f"round {update.round_id} is not the current round {round_id}")
    if bytes(update.base_model_digest) != bytes(base_model_digest):
        raise reject(
            f"base model digest 0x{bytes(update.base_model_digest).hex()} is not the round's 0x{bytes(base_model_digest).hex()}"
        )
    if update.kind != kind:
        raise reject(f"update kind {update.kind.value!r}, the strategy expects {kind.value!r}")
    if isinstance(update.num_samples, bool) or not isinstance(update.num_samples, int) or update.num_samples <= 0:
        raise reject(f"num_samples must be a positive integer, got {update.num_samples!r}")
    expected = sorted(reference)
    if control:
        expected = sorted(expected + [CONTROL_PREFIX + n for n in reference])
    got = sorted(update.tensors)
    if got != expected:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        raise reject(f"tensor names differ: missing {missing[:5]}, unexpected {extra[:5]}")
    for name in got:
        arr = update.tensors[name]
        ref_name = name[len(CONTROL_PREFIX) :] if name.startswith(CONTROL_PREFIX) else name
        if not isinstance(arr, np.ndarray):
            raise reject(f"tensor {name!r} is not an array")
        if arr.dtype != WIRE_DTYPE:
            raise reject(f"tensor {name!r} has dtype {arr.dtype}, expected float32")
        if arr.shape != np.shape(reference[ref_name]):
            raise reject(f"tensor {name!r} has shape {arr.shape}, expected {np.shape(reference[ref_name])}")
        if not np.isfinite(arr).all():
            raise reject(f"tensor {name!r} contains NaN or Inf")
    for key, value in update.extras.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise reject(f"extra {key!r} is not finite")


def screen_updates(
    updates: Sequence[ClientUpdate],
    reference: Mapping[str, np.ndarray],
    *,
    round_id: RoundId,
    base_model_digest: Digest,
    kind: UpdateKind,
    control: bool = False,
    required_extras: Sequence[str] = (),
) -> tuple[list[ClientUpdate], list[Rejection]]:
    """Split updates into valid ones (address order) and :class:`Rejection` records.

    A participant that sent more than one update has all of them rejected.
    """
    counts = Counter(address_key(u.participant) for u in updates)
    valid: list[ClientUpdate] = []
    rejected: list[Rejection] = []
    seen_dupes: set[str] = set()
    for u in sorted(updates, key=lambda u: address_key(u.participant)):
        key = address_key(u.participant)
        if counts[key] > 1:
            if key not in seen_dupes:
                seen_dupes.add(key)
                rejected.append(Rejection(u.participant, VALIDATION_RULE, f"sent {counts[key]} updates in one round"))
            continue
        try:
            validate_update(u, reference, round_id=round_id, base_model_digest=base_model_digest, kind=kind, control=control)
            for extra in required_extras:
                value = u.extras.get(extra)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                    raise UpdateRejectedError(u.participant, f"extra {extra!r} must be a positive number, got {value!r}")
        except UpdateRejectedError as err:
            rejected.append(Rejection(u.participant, VALIDATION_RULE, err.reason))
            continue
        valid.append(u)
    return valid, rejected


def require_min(valid: int, minimum: int) -> None:
    """Raise :class:`TooFewUpdatesError` when fewer than ``minimum`` updates are valid."""
    if valid < minimum:
        raise TooFewUpdatesError(valid, minimum)

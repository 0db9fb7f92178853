"""Contribution scores that anyone can recompute bit for bit: samples, leave-one-out, Shapley.

The utility of a coalition S of a round's included updates is an integer: the number of
validation samples that the model obtained by aggregating S onto the round's base model (with
the task's strategy, through the same :meth:`~fedchain.fl.strategies.BaseStrategy.aggregate_round`
the engine and the auditor use) classifies correctly. The empty coalition is the base model.
A coalition for which the strategy yields no model (a robust rule that needs more updates than
the coalition holds, values that defeat the arithmetic) is worth what the base model is worth.

The forward pass is this module's own float64 numpy code, not torch's: every dot product and
convolution is accumulated elementwise in a fixed order (no BLAS, no pairwise summation), so
the logits are the same bits under every CPU kernel; the predicted class is the first index of
the largest logit. Utilities are cached per coalition (a bitmask over the players in address
order).

Rules (:class:`ContributionRule`):

* ``samples``: the update's sample count (bounded by the admitted dataset size upstream);
* ``loo``: u(N) - u(N \\ {i});
* ``shapley``: exact (every coalition, :class:`fractions.Fraction` arithmetic on the integer
  utilities) for n <= ``exact_max`` (default 10); above it a truncated Monte-Carlo estimate
  (Ghorbani and Zou, 2019) over permutations drawn from a numpy PCG64 generator whose seed is the
  SHA-256 of caller-given bytes (the round's Merkle root). A permutation stops scanning once
  |u(N) - u(prefix)| <= ``truncation`` * |u(N) - u(empty)| (later players get 0). Stopping rule:
  at least ``min_permutations``, at most ``max_permutations``; after each permutation past the
  minimum, stop when every player's standard error of the running mean is at most
  ``convergence`` * |u(N) - u(empty)| (compared exactly, squared, in rationals). The result
  states the largest standard error and a Hoeffding bound at ``confidence`` for the number of
  permutations drawn (marginals lie in [-V, V], V the validation set size).

Rejected updates are not players and score 0. :func:`allocate` turns scores into integer
amounts summing exactly to a budget; negative scores pay 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import nn

from fedchain.errors import AggregationError, ConfigError, DataSchemaError
from fedchain.fl.aggregate import address_key
from fedchain.fl.client import train_local
from fedchain.fl.datasets import load_dataset
from fedchain.fl.models import ModelSpec, build_model, default_model_spec, get_weights
from fedchain.fl.partition import PartitionSpec, partition
from fedchain.fl.records import ClientUpdate, StrategyConfig
from fedchain.fl.strategies import BaseStrategy, FedAvg, strategy_from_config
from fedchain.types import Address, Digest, RoundId

__all__ = [
    "RULES",
    "ShapleyEstimate",
    "ContributionRule",
    "ContributionScores",
    "Utility",
    "BenchmarkRound",
    "allocate",
    "benchmark_round",
    "compute_scores",
    "exact_copies",
    "exact_shapley",
    "leave_one_out",
    "logits",
    "model_layers",
    "monte_carlo_shapley",
    "permutation_seed",
    "predict",
    "shapley_benchmark",
]

RULES = ("samples", "loo", "shapley")

_SHAPLEY_DEFAULTS: dict[str, int | float] = {
    "exact_max": 10,
    "min_permutations": 20,
    "max_permutations": 400,
    "truncation": 0.01,
    "convergence": 0.01,
    "confidence": 0.95,
}


# --- deterministic forward pass ----------------------------------------------------------


def _linear(h: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    acc = np.repeat(bias[None, :], h.shape[0], axis=0)
    term = np.empty_like(acc)
    for k in range(weight.shape[1]):
        np.multiply(h[:, k : k + 1], weight[None, :, k], out=term)
        acc += term
    return acc


def _conv2d(h: np.ndarray, weight: np.ndarray, bias: np.ndarray, padding: int) -> np.ndarray:
    n, _, height, width = h.shape
    out_c, in_c, kh, kw = weight.shape
    padded = np.pad(h, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_h, out_w = height + 2 * padding - kh + 1, width + 2 * padding - kw + 1
    acc = np.repeat(np.repeat(np.repeat(bias[None, :, None, None], n, 0), out_h, 2), out_w, 3)
    term = np.empty_like(acc)
    for c in range(in_c):
        for i in range(kh):
            for j in range(kw):
                np.multiply(weight[None, :, c, i, j, None, None], padded[:, c : c + 1, i : i + out_h, j : j + out_w], out=term)
                acc += term
    return acc.reshape(n, out_c, out_h, out_w)


def _maxpool2(h: np.ndarray) -> np.ndarray:
    n, c, height, width = h.shape
    h2, w2 = height // 2, width // 2
    return np.asarray(h[:, :, : 2 * h2, : 2 * w2].reshape(n, c, h2, 2, w2, 2).max(axis=(3, 5)))


def model_layers(spec: ModelSpec) -> list[tuple[str, nn.Module]]:
    """The named layers of ``spec``'s model, in order (what :func:`logits` walks)."""
    module = build_model(spec, 0)  # the architecture only; its parameters are never used
    return [(name, layer) for name, layer in module.named_children()]


def logits(
    spec: ModelSpec, layers: Sequence[tuple[str, nn.Module]], weights: Mapping[str, np.ndarray], x: np.ndarray
) -> np.ndarray:
    """Float64 logits of the model ``spec`` (its ``layers``, from :func:`model_layers`) with ``weights``
    on ``x``: the same bits on every CPU (elementwise accumulation in a fixed order, no BLAS)."""
    h = np.asarray(x, dtype=np.float64).reshape((len(x), *spec.input_shape))
    for name, layer in layers:
        if isinstance(layer, nn.Linear):
            h = _linear(h, np.asarray(weights[f"{name}.weight"], np.float64), np.asarray(weights[f"{name}.bias"], np.float64))
        elif isinstance(layer, nn.Conv2d):
            pad = layer.padding[0] if isinstance(layer.padding, tuple) else 0
            h = _conv2d(
                h, np.asarray(weights[f"{name}.weight"], np.float64), np.asarray(weights[f"{name}.bias"], np.float64), int(pad)
            )
        elif isinstance(layer, nn.ReLU):
            h = np.maximum(h, 0.0) + 0.0  # + 0.0: a -0.0 that maximum may keep becomes 0.0
        elif isinstance(layer, nn.MaxPool2d):
            h = _maxpool2(h)
        elif isinstance(layer, nn.Flatten):
            h = h.reshape(len(h), -1)
        else:  # pragma: no cover - ModelSpec builds nothing else
            raise ConfigError(f"no deterministic forward for layer {type(layer).__name__}")
    return h


def predict(
    spec: ModelSpec, layers: Sequence[tuple[str, nn.Module]], weights: Mapping[str, np.ndarray], x: np.ndarray
) -> np.ndarray:
    """Predicted classes (int64) from :func:`logits`; ties between logits go to the lowest class index."""
    return np.asarray(np.argmax(logits(spec, layers, weights, x), axis=1), dtype=np.int64)


# --- utility -------------------------------------------------------------------------------


class Utility:
    """u(S): correct validation predictions of the model aggregated from coalition S; cached.

    ``updates`` are the round's included updates (the players, in address order); a coalition
    is a bitmask over :attr:`players` (bit i = player i) or an iterable of their addresses.
    Aggregation uses the task's strategy with ``min_updates = 1``.
    """

    def __init__(
        self,
        strategy: StrategyConfig | BaseStrategy,
        spec: ModelSpec,
        base_weights: Mapping[str, np.ndarray],
        updates: Sequence[ClientUpdate],
        x: np.ndarray,
        y: np.ndarray,
        *,
        round_id: RoundId,
        base_model_digest: Digest,
        server_state: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        base = strategy_from_config(strategy) if isinstance(strategy, StrategyConfig) else strategy
        self.strategy: BaseStrategy = dataclasses.replace(base, min_updates=1)
        self.spec = spec
        self.base_weights = {k: np.asarray(v) for k, v in sorted(base_weights.items())}
        self.server_state = dict(server_state) if server_state else self.strategy.initial_state(self.base_weights)
        ordered = sorted(updates, key=lambda u: address_key(u.participant))
        keys = [address_key(u.participant) for u in ordered]
        if len(set(keys)) != len(keys):
            raise ConfigError("a participant appears more than once among the updates to score")
        self.updates: tuple[ClientUpdate, ...] = tuple(ordered)
        self.players: tuple[Address, ...] = tuple(u.participant for u in ordered)
        self._index = {k: i for i, k in enumerate(keys)}
        y_arr = np.asarray(y)
        if len(x) != len(y_arr) or len(y_arr) == 0:
            raise DataSchemaError(f"the validation set needs equally many (>0) samples and labels, got {len(x)} and {len(y_arr)}")
        if not np.issubdtype(y_arr.dtype, np.integer) or int(y_arr.min()) < 0 or int(y_arr.max()) >= spec.num_classes:
            raise DataSchemaError(f"validation labels must be integers in 0..{spec.num_classes - 1}")
        self.x = np.asarray(x, dtype=np.float64)
        self.y = y_arr.astype(np.int64)
        self.round_id = round_id
        self.base_model_digest = base_model_digest
        self.layers = model_layers(spec)
        self._cache: dict[int, int] = {}

    @property
    def size(self) -> int:
        """V: the number of validation samples (the utility's upper bound)."""
        return len(self.y)

    @property
    def evaluations(self) -> int:
        """How many distinct coalitions have been evaluated so far."""
        return len(self._cache)

    def mask_of(self, coalition: Iterable[str]) -> int:
        """The bitmask of a coalition given by addresses (ConfigError for a non-player)."""
        mask = 0
        for who in coalition:
            i = self._index.get(address_key(who))
            if i is None:
                raise ConfigError(f"{who} is not a player of this round")
            mask |= 1 << i
        return mask

    def accuracy_of(self, weights: Mapping[str, np.ndarray]) -> int:
        """Correct validation predictions of a model with ``weights``."""
        return int(np.count_nonzero(predict(self.spec, self.layers, weights, self.x) == self.y))

    def model_of(self, mask: int) -> Mapping[str, np.ndarray]:
        """The model the strategy aggregates from coalition ``mask`` (the base model when none)."""
        members = [u for i, u in enumerate(self.updates) if mask >> i & 1]
        if not members:
            return self.base_weights
        try:
            result = self.strategy.aggregate_round(
                dict(self.base_weights),
                members,
                dict(self.server_state),
                round_id=self.round_id,
                base_model_digest=self.base_model_digest,
            )
        except AggregationError:
            return self.base_weights
        if not result.included or not all(np.isfinite(v).all() for v in result.weights.values()):
            return self.base_weights
        return result.weights

    def of_mask(self, mask: int) -> int:
        """u(S) for the coalition with bitmask ``mask``."""
        if not 0 <= mask < 1 << len(self.players):
            raise ConfigError(f"coalition mask {mask} is out of range for {len(self.players)} players")
        value = self._cache.get(mask)
        if value is None:
            value = self.accuracy_of(self.model_of(mask))
            self._cache[mask] = value
        return value

    def __call__(self, coalition: Iterable[str]) -> int:
        """u(S) for the coalition given by addresses."""
        return self.of_mask(self.mask_of(coalition))


# --- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContributionRule:
    """A scoring rule by name (:data:`RULES`) and its parameters (``shapley`` only; see the module docstring)."""

    name: str
    params: Mapping[str, int | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in RULES:
            raise ConfigError(f"unknown contribution rule {self.name!r}; expected one of {', '.join(RULES)}")
        params = dict(sorted(self.params.items()))
        if self.name != "shapley" and params:
            raise ConfigError(f"contribution rule {self.name!r} takes no parameters, got {sorted(params)}")
        unknown = sorted(set(params) - set(_SHAPLEY_DEFAULTS))
        if unknown:
            raise ConfigError(f"contribution rule shapley: unknown parameter(s) {', '.join(unknown)}")
        for key, value in params.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"contribution rule shapley: {key} must be a finite number, got {value!r}")
        merged = {**_SHAPLEY_DEFAULTS, **params}
        for key in ("exact_max", "min_permutations", "max_permutations"):
            if not isinstance(merged[key], int) or merged[key] < 1:
                raise ConfigError(f"contribution rule shapley: {key} must be a positive integer, got {merged[key]!r}")
        if int(merged["exact_max"]) > 20:
            raise ConfigError(f"contribution rule shapley: exact_max {merged['exact_max']} is above 20 (2^n coalitions)")
        if merged["min_permutations"] > merged["max_permutations"]:
            raise ConfigError("contribution rule shapley: min_permutations exceeds max_permutations")
        for key in ("truncation", "convergence"):
            if not 0 <= merged[key] < 1:
                raise ConfigError(f"contribution rule shapley: {key} must be in [0, 1), got {merged[key]!r}")
        if not 0 < merged["confidence"] < 1:
            raise ConfigError(f"contribution rule shapley: confidence must be in (0, 1), got {merged['confidence']!r}")
        object.__setattr__(self, "params", params)

    def param(self, key: str) -> int | float:
        """A parameter of the rule, its default when not given."""
        return self.params.get(key, _SHAPLEY_DEFAULTS[key])

    def to_json(self) -> dict[str, Any]:
        """``{"name", "params"}`` as a task document records it."""
        return {"name": self.name, "params": dict(self.params)}


@dataclass(frozen=True)
class ContributionScores:
    """Scores of one round under one rule, for every participant (rejected ones score 0).

    ``method``: ``samples``, ``loo``, ``exact`` or ``monte_carlo``. For ``monte_carlo``,
    ``permutations`` drawn, ``standard_error`` (the largest over players) and ``error_bound``
    (Hoeffding, per player, at ``confidence``) state the estimate's accuracy; both are 0 for the
    exact methods. ``evaluations``: distinct coalitions evaluated.
    """

    rule: str
    method: str
    scores: Mapping[Address, Fraction]
    utility_full: int | None = None
    utility_empty: int | None = None
    permutations: int = 0
    evaluations: int = 0
    standard_error: float = 0.0
    error_bound: float = 0.0
    confidence: float = 0.0

    def score_text(self, who: Address) -> str:
        """A score as exact text: ``"p"`` or ``"p/q"`` in lowest terms."""
        return str(self.scores[who])

    def to_json(self) -> dict[str, Any]:
        """Everything as JSON-ready values, scores as exact ``p/q`` text, participants in address order."""
        return {
            "rule": self.rule,
            "method": self.method,
            "scores": {a: str(self.scores[a]) for a in sorted(self.scores, key=address_key)},
            "utility_full": self.utility_full,
            "utility_empty": self.utility_empty,
            "permutations": self.permutations,
            "evaluations": self.evaluations,
            "standard_error": self.standard_error,
            "error_bound": self.error_bound,
            "confidence": self.confidence,
        }


def exact_copies(updates: Sequence[ClientUpdate], commit_order: Sequence[str]) -> tuple[Address, ...]:
    """Participants whose model tensors are bit-identical to those of an update committed before
    theirs (``commit_order``: addresses, first committed first): copiers, who are not players.

    Shapley treats an original and its exact copy as symmetric players and splits their worth;
    leaving the later one out gives the copier 0 and the original its due."""
    position = {address_key(a): i for i, a in enumerate(commit_order)}
    missing = sorted(u.participant for u in updates if address_key(u.participant) not in position)
    if missing:
        raise ConfigError(f"no commitment order for {', '.join(missing)}")
    seen: dict[bytes, Address] = {}
    copies: list[Address] = []
    for u in sorted(updates, key=lambda u: position[address_key(u.participant)]):
        h = hashlib.sha256()
        for name, arr in sorted(u.model_tensors.items()):
            a = np.ascontiguousarray(arr)
            h.update(name.encode() + b"\0" + repr((a.dtype.str, a.shape)).encode() + b"\0" + a.tobytes())
        key = h.digest()
        if key in seen:
            copies.append(u.participant)
        else:
            seen[key] = u.participant
    return tuple(sorted(copies, key=address_key))


def permutation_seed(seed: bytes) -> int:
    """The PCG64 seed of the Monte-Carlo permutations: SHA-256 of ``seed`` as a big-endian integer."""
    return int.from_bytes(hashlib.sha256(bytes(seed)).digest(), "big")


def leave_one_out(utility: Utility) -> dict[Address, Fraction]:
    """u(N) - u(N \\ {i}) for every player."""
    n = len(utility.players)
    full = (1 << n) - 1
    top = utility.of_mask(full)
    return {p: Fraction(top - utility.of_mask(full & ~(1 << i))) for i, p in enumerate(utility.players)}


def exact_shapley(value: Utility | Callable[[int], int], n: int | None = None) -> dict[int, Fraction]:
    """Exact Shapley values by player index from every coalition: Σ_S |S|!(n-|S|-1)!/n! (u(S∪i) - u(S)).

    ``value`` is a :class:`Utility` or any callable on bitmasks (with ``n`` players)."""
    of_mask = value.of_mask if isinstance(value, Utility) else value
    count = len(value.players) if isinstance(value, Utility) else int(n if n is not None else 0)
    if count < 1:
        raise ConfigError("exact Shapley needs at least one player")
    values = [int(of_mask(mask)) for mask in range(1 << count)]
    fact = [math.factorial(k) for k in range(count + 1)]
    weight = [Fraction(fact[k] * fact[count - k - 1], fact[count]) for k in range(count)]
    sizes = [mask.bit_count() for mask in range(1 << count)]
    out: dict[int, Fraction] = {}
    for i in range(count):
        bit = 1 << i
        acc: dict[int, int] = {}
        for mask in range(1 << count):
            if not mask & bit:
                k = sizes[mask]
                acc[k] = acc.get(k, 0) + values[mask | bit] - values[mask]
        out[i] = sum((weight[k] * total for k, total in acc.items()), Fraction(0))
    return out


@dataclass(frozen=True)
class ShapleyEstimate:
    """A Monte-Carlo Shapley estimate by player index, the permutations drawn and its accuracy."""

    values: dict[int, Fraction]
    permutations: int
    standard_error: float
    error_bound: float


def monte_carlo_shapley(
    of_mask: Callable[[int], int], n: int, *, seed: bytes, value_range: int, rule: ContributionRule
) -> ShapleyEstimate:
    """Truncated Monte-Carlo Shapley estimate by player index; see the module docstring."""
    rng = np.random.Generator(np.random.PCG64(permutation_seed(seed)))
    full = (1 << n) - 1
    top, bottom = int(of_mask(full)), int(of_mask(0))
    spread = abs(top - bottom)
    truncation = Fraction(str(rule.param("truncation"))) * spread
    convergence = Fraction(str(rule.param("convergence"))) * spread
    lo, hi = int(rule.param("min_permutations")), int(rule.param("max_permutations"))
    sums = [0] * n
    squares = [0] * n
    t = 0
    while t < hi:
        order = rng.permutation(n)
        mask, previous = 0, bottom
        for player in order:
            if abs(top - previous) <= truncation:
                break  # the rest of this permutation adds (about) nothing: marginals 0
            mask |= 1 << int(player)
            current = int(of_mask(mask))
            marginal = current - previous
            sums[int(player)] += marginal
            squares[int(player)] += marginal * marginal
            previous = current
        t += 1
        if t >= max(lo, 2) and all(_variance_of_mean(sums[i], squares[i], t) <= convergence * convergence for i in range(n)):
            break
    values = {i: Fraction(sums[i], t) for i in range(n)}
    worst = max((_variance_of_mean(sums[i], squares[i], t) for i in range(n)), default=Fraction(0)) if t > 1 else Fraction(0)
    delta = 1.0 - float(rule.param("confidence"))
    bound = 2.0 * value_range * math.sqrt(math.log(2.0 / delta) / (2.0 * t))
    return ShapleyEstimate(values, t, math.sqrt(worst), bound)


def _variance_of_mean(total: int, squares: int, t: int) -> Fraction:
    """The squared standard error of a running mean: sample variance / t (exact)."""
    if t < 2:
        return Fraction(0)
    return Fraction(t * squares - total * total, t * t * (t - 1))


def compute_scores(
    rule: ContributionRule,
    included: Sequence[ClientUpdate],
    *,
    utility: Utility | None = None,
    rejected: Iterable[Address] = (),
    seed: bytes = b"",
) -> ContributionScores:
    """Scores of the round's ``included`` updates under ``rule``; ``rejected`` participants score 0.

    ``utility`` (built over exactly ``included``) is required for ``loo`` and ``shapley``;
    ``seed`` (the round's Merkle root) drives the Monte-Carlo permutations."""
    zeros: dict[Address, Fraction] = {Address(a): Fraction(0) for a in rejected}
    included_keys = {address_key(u.participant) for u in included}
    clash = sorted(a for a in zeros if address_key(a) in included_keys)
    if clash:
        raise ConfigError(f"participant(s) both included and rejected: {', '.join(clash)}")
    if rule.name == "samples":
        return ContributionScores(
            "samples", "samples", {**zeros, **{u.participant: Fraction(int(u.num_samples)) for u in included}}
        )
    if utility is None:
        raise ConfigError(f"contribution rule {rule.name!r} needs a validation utility")
    if sorted(address_key(p) for p in utility.players) != sorted(included_keys):
        raise ConfigError("the utility's players are not the round's included updates")
    n = len(utility.players)
    if n == 0:
        return ContributionScores(rule.name, "loo" if rule.name == "loo" else "exact", zeros)
    full = (1 << n) - 1
    if rule.name == "loo":
        scores = leave_one_out(utility)
        return ContributionScores(
            "loo", "loo", {**zeros, **scores}, utility.of_mask(full), utility.of_mask(0), evaluations=utility.evaluations
        )
    if n <= int(rule.param("exact_max")):
        exact = exact_shapley(utility)
        return ContributionScores(
            "shapley",
            "exact",
            {**zeros, **{utility.players[i]: v for i, v in exact.items()}},
            utility.of_mask(full),
            utility.of_mask(0),
            evaluations=utility.evaluations,
        )
    estimate = monte_carlo_shapley(utility.of_mask, n, seed=seed, value_range=utility.size, rule=rule)
    return ContributionScores(
        "shapley",
        "monte_carlo",
        {**zeros, **{utility.players[i]: v for i, v in estimate.values.items()}},
        utility.of_mask(full),
        utility.of_mask(0),
        permutations=estimate.permutations,
        evaluations=utility.evaluations,
        standard_error=estimate.standard_error,
        error_bound=estimate.error_bound,
        confidence=float(rule.param("confidence")),
    )


# --- amounts -------------------------------------------------------------------------------


def allocate(scores: Mapping[Address, int | Fraction], budget: int) -> dict[Address, int]:
    """Integer amounts, proportional to the positive scores, summing exactly to ``budget``.

    Largest-remainder rounding in exact rationals: each participant gets the floor of its quota
    ``budget * s_i / Σ s_j`` (s = max(score, 0)), and the units left go one each to the largest
    remainders, ties by address (lower-case hex ascending). Every amount is 0 when no score is
    positive."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ConfigError(f"the reward budget must be a non-negative integer, got {budget!r}")
    keys = [address_key(a) for a in scores]
    if len(set(keys)) != len(keys):
        raise ConfigError("a participant appears more than once among the scores")
    positive: dict[Address, Fraction] = {}
    for who, score in scores.items():
        if isinstance(score, bool) or not isinstance(score, (int, Fraction)):
            raise ConfigError(f"the score of {who} must be an integer or a Fraction, got {score!r}")
        positive[who] = max(Fraction(score), Fraction(0))
    total = sum(positive.values(), Fraction(0))
    if total == 0 or budget == 0:
        return {who: 0 for who in scores}
    quotas = {who: budget * s / total for who, s in positive.items()}
    amounts = {who: math.floor(q) for who, q in quotas.items()}
    left = budget - sum(amounts.values())
    ranked = sorted(quotas, key=lambda who: (-(quotas[who] - amounts[who]), address_key(who)))
    for who in ranked[:left]:
        amounts[who] += 1
    return amounts


# --- benchmark -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BenchmarkRound:
    """One FedAvg round on breast_cancer: ``n`` honest updates (one local epoch each, IID split)."""

    strategy: BaseStrategy
    spec: ModelSpec
    base: Mapping[str, np.ndarray]
    updates: tuple[ClientUpdate, ...]
    x: np.ndarray
    y: np.ndarray
    round_id: RoundId
    base_model_digest: Digest

    def utility(self, updates: Sequence[ClientUpdate] | None = None) -> Utility:
        """A fresh utility over ``updates`` (default: the round's), on the test split."""
        return Utility(
            self.strategy,
            self.spec,
            self.base,
            self.updates if updates is None else updates,
            self.x,
            self.y,
            round_id=self.round_id,
            base_model_digest=self.base_model_digest,
        )


def benchmark_round(n: int, seed: int = 0) -> BenchmarkRound:
    """A breast_cancer round with ``n`` participants ``0x…01``, ``0x…02``, … trained from a seeded model."""
    torch.set_num_threads(1)
    data = load_dataset("breast_cancer", seed=seed)
    spec = default_model_spec(data)
    base = get_weights(build_model(spec, seed))
    strategy = FedAvg(local_epochs=1, batch_size=16, lr=0.05)
    round_id, digest = RoundId(1), Digest(hashlib.sha256(b"benchmark base model").digest())
    parts = partition(data.y_train, PartitionSpec("iid", n, seed=seed, min_samples=1))
    updates = []
    for i, idx in enumerate(parts):
        update, _, _ = train_local(
            spec, base, data.x_train[idx], data.y_train[idx], strategy.configure_round(round_id, base, {}),
            seed=seed + i, participant=Address(f"0x{i + 1:040x}"), round_id=round_id, base_model_digest=digest,
        )  # fmt: skip
        updates.append(update)
    return BenchmarkRound(strategy, spec, base, tuple(updates), data.x_test, data.y_test, round_id, digest)


def shapley_benchmark(
    n: int, seed: int = 0, *, rule: ContributionRule | None = None, exact: bool | None = None
) -> dict[str, Any]:
    """Truncated Monte-Carlo Shapley against exact Shapley on :func:`benchmark_round` ``(n, seed)``.

    The estimate uses ``rule`` (default: the ``shapley`` defaults with ``exact_max = 1``, so that
    it is always the Monte-Carlo estimate), seeded with ``seed``'s 8 big-endian bytes. Returns
    ``n``, the estimate's wall ``seconds`` (one thread, fresh utility cache), ``permutations``,
    ``evaluations``, its ``standard_error`` and ``error_bound``, ``spread`` = u(N) - u(empty), and
    when ``exact`` (default: n <= 12) ``exact_seconds``, ``mae`` (mean absolute error over
    players), ``max_error`` (the largest) and ``mae_fraction`` = mae / |spread|."""
    bench = benchmark_round(n, seed)
    mc_rule = rule or ContributionRule("shapley", {"exact_max": 1})
    util = bench.utility()
    start = time.perf_counter()
    estimate = compute_scores(mc_rule, bench.updates, utility=util, seed=seed.to_bytes(8, "big"))
    seconds = time.perf_counter() - start
    spread = int(estimate.utility_full or 0) - int(estimate.utility_empty or 0)
    out: dict[str, Any] = {
        "n": n,
        "seconds": seconds,
        "permutations": estimate.permutations,
        "evaluations": estimate.evaluations,
        "standard_error": estimate.standard_error,
        "error_bound": estimate.error_bound,
        "spread": spread,
    }
    if exact if exact is not None else n <= 12:
        ref_util = bench.utility()
        start = time.perf_counter()
        reference = exact_shapley(ref_util)
        out["exact_seconds"] = time.perf_counter() - start
        errors = [abs(estimate.scores[p] - reference[i]) for i, p in enumerate(ref_util.players)]
        mae = sum(errors, Fraction(0)) / n
        out["mae"] = float(mae)
        out["max_error"] = float(max(errors))
        out["mae_fraction"] = float(mae / abs(spread)) if spread else 0.0
    return out

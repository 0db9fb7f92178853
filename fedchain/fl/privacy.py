"""Differential privacy: the task's privacy policy, the accountants, DP-SGD and DP-FedAvg noise.

Two mechanisms, both applied by the participant inside the update it commits (so the auditor
still replays every global model bit for bit; no noise is ever added by the aggregator):

- ``dpsgd``: record-level DP-SGD (Opacus: per-sample clipping to ``clip``, Gaussian noise of
  ``noise_multiplier * clip``, Poisson sampling of records at ``sample_rate``), accounted with
  Opacus's RDP or PRV accountant over the participant's steps.
- ``client``: client-level DP-FedAvg with distributed noise: each client clips its update to
  L2 norm ``clip`` and adds its share N(0, (z C / sqrt(m))^2) of the noise, so that a round with
  at least ``min_clients`` = m included updates carries noise of standard deviation >= z C in
  the sum; accounted with dp-accounting (RDP or PLD) over the rounds the client took part in.

The chain records each participant's cumulative epsilon in fixed point (micro-epsilon, rounded
up: :func:`epsilon_fixed`) next to the digest of the round's :class:`AccountantInputs`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fedchain.errors import ConfigError, PrivacyError
from fedchain.fl.records import WIRE_DTYPE, ClientUpdate, UpdateKind
from fedchain.types import Digest

if TYPE_CHECKING:
    from torch import nn

MECHANISMS = ("dpsgd", "client")
ACCOUNTANTS: Mapping[str, tuple[str, ...]] = {"dpsgd": ("rdp", "prv"), "client": ("rdp", "pld")}
EPSILON_SCALE = 1_000_000
"""Epsilon is recorded on chain in micro-units (``uint64``)."""
MAX_FIXED = 2**64 - 1
POLICY_FORMAT = "fedchain.privacy-policy/1"
INPUTS_FORMAT = "fedchain.accountant-inputs/1"
EXTRA_KEYS = ("dp_mechanism", "dp_accountant", "dp_noise_multiplier", "dp_sample_rate", "dp_steps", "dp_delta", "dp_clip")
"""The update extras that carry a round's accountant inputs (covered by the metadata digest)."""


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"privacy policy: {name} must be a positive finite number, got {value!r}")
    return float(value)


def _unit(name: str, value: Any, *, closed: bool) -> float:
    v = _positive(name, value)
    if v > 1.0 or (not closed and v == 1.0):
        raise ConfigError(f"privacy policy: {name} must be in (0, 1{']' if closed else ')'}, got {value!r}")
    return v


def epsilon_fixed(eps: float) -> int:
    """``eps`` in micro-epsilon, rounded up (a claim is never lower than the accountant's figure)."""
    if not math.isfinite(eps) or eps < 0:
        raise PrivacyError(f"epsilon must be finite and non-negative, got {eps!r}")
    fixed = math.ceil(eps * EPSILON_SCALE)
    if fixed > MAX_FIXED:
        raise PrivacyError(f"epsilon {eps} does not fit the chain's uint64 micro-epsilon")
    return int(fixed)


@dataclass(frozen=True)
class AccountantInputs:
    """What one round of one participant costs: the accountant's inputs for that round."""

    mechanism: str
    accountant: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float
    clip: float

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise PrivacyError(f"accountant inputs: unknown mechanism {self.mechanism!r} (one of {', '.join(MECHANISMS)})")
        if self.accountant not in ACCOUNTANTS[self.mechanism]:
            raise PrivacyError(
                f"accountant inputs: accountant {self.accountant!r} does not account {self.mechanism} "
                f"(one of {', '.join(ACCOUNTANTS[self.mechanism])})"
            )
        try:
            object.__setattr__(self, "noise_multiplier", _positive("noise_multiplier", self.noise_multiplier))
            object.__setattr__(self, "sample_rate", _unit("sample_rate", self.sample_rate, closed=True))
            object.__setattr__(self, "delta", _unit("delta", self.delta, closed=False))
            object.__setattr__(self, "clip", _positive("clip", self.clip))
        except ConfigError as err:
            raise PrivacyError(str(err).replace("privacy policy", "accountant inputs")) from err
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise PrivacyError(f"accountant inputs: steps must be a positive integer, got {self.steps!r}")

    def to_json(self) -> dict[str, Any]:
        """The inputs as a JSON object (with their format)."""
        return {"format": INPUTS_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> AccountantInputs:
        """The inputs from :meth:`to_json`'s object; PrivacyError when malformed."""
        if not isinstance(data, Mapping) or data.get("format") != INPUTS_FORMAT:
            raise PrivacyError("not an accountant-inputs object")
        try:
            return cls(
                mechanism=str(data["mechanism"]),
                accountant=str(data["accountant"]),
                noise_multiplier=data["noise_multiplier"],
                sample_rate=data["sample_rate"],
                steps=data["steps"],
                delta=data["delta"],
                clip=data["clip"],
            )
        except KeyError as err:
            raise PrivacyError(f"accountant inputs lack {err}") from err

    def digest(self) -> Digest:
        """The ``accountantDigest`` committed on chain next to the cumulative epsilon."""
        from fedchain.codec.canonical import canonical_json, sha256_digest

        return sha256_digest(canonical_json(self.to_json()))

    def to_extras(self) -> dict[str, float | int | str]:
        """The inputs as update extras (``dp_*`` keys)."""
        return {
            "dp_mechanism": self.mechanism,
            "dp_accountant": self.accountant,
            "dp_noise_multiplier": self.noise_multiplier,
            "dp_sample_rate": self.sample_rate,
            "dp_steps": self.steps,
            "dp_delta": self.delta,
            "dp_clip": self.clip,
        }

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any]) -> AccountantInputs | None:
        """The inputs an update's extras carry; None when they carry none; PrivacyError when only
        some of the keys are there or a value is malformed."""
        present = [k for k in EXTRA_KEYS if k in extras]
        if not present:
            return None
        missing = [k for k in EXTRA_KEYS if k not in extras]
        if missing:
            raise PrivacyError(f"update extras carry accountant inputs without {', '.join(missing)}")
        steps = extras["dp_steps"]
        if isinstance(steps, float) and steps.is_integer():
            steps = int(steps)
        return cls(
            mechanism=str(extras["dp_mechanism"]),
            accountant=str(extras["dp_accountant"]),
            noise_multiplier=extras["dp_noise_multiplier"],
            sample_rate=extras["dp_sample_rate"],
            steps=steps,
            delta=extras["dp_delta"],
            clip=extras["dp_clip"],
        )


@dataclass(frozen=True)
class PrivacyPolicy:
    """The task's privacy policy: mechanism, clipping, noise, sampling, delta, accountant, budget."""

    mechanism: str
    clip: float
    noise_multiplier: float
    sample_rate: float
    delta: float
    accountant: str
    epsilon_budget: float
    min_clients: int = 1
    noise_check_alpha: float = 1e-6

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ConfigError(f"privacy policy: unknown mechanism {self.mechanism!r} (one of {', '.join(MECHANISMS)})")
        if self.accountant not in ACCOUNTANTS[self.mechanism]:
            raise ConfigError(
                f"privacy policy: accountant {self.accountant!r} does not account {self.mechanism} "
                f"(one of {', '.join(ACCOUNTANTS[self.mechanism])})"
            )
        object.__setattr__(self, "clip", _positive("clip", self.clip))
        object.__setattr__(self, "noise_multiplier", _positive("noise_multiplier", self.noise_multiplier))
        object.__setattr__(self, "sample_rate", _unit("sample_rate", self.sample_rate, closed=True))
        object.__setattr__(self, "delta", _unit("delta", self.delta, closed=False))
        object.__setattr__(self, "epsilon_budget", _positive("epsilon_budget", self.epsilon_budget))
        object.__setattr__(self, "noise_check_alpha", _unit("noise_check_alpha", self.noise_check_alpha, closed=False))
        if isinstance(self.min_clients, bool) or not isinstance(self.min_clients, int) or self.min_clients < 1:
            raise ConfigError(f"privacy policy: min_clients must be a positive integer, got {self.min_clients!r}")
        if self.mechanism == "dpsgd" and self.min_clients != 1:
            raise ConfigError(f"privacy policy: min_clients applies to client-level DP only (dpsgd: 1), got {self.min_clients}")
        if self.budget_fixed() < 1:
            raise ConfigError(f"privacy policy: epsilon_budget {self.epsilon_budget} is below one micro-epsilon")

    def to_json(self) -> dict[str, Any]:
        """The policy as a JSON object (with its format)."""
        return {"format": POLICY_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> PrivacyPolicy:
        """The policy from :meth:`to_json`'s object; ConfigError when malformed."""
        if not isinstance(data, Mapping) or data.get("format") != POLICY_FORMAT:
            raise ConfigError("not a privacy policy object (format fedchain.privacy-policy/1)")
        known = {"format", "mechanism", "clip", "noise_multiplier", "sample_rate", "delta", "accountant",
                 "epsilon_budget", "min_clients", "noise_check_alpha"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"privacy policy: unknown fields {unknown}")
        try:
            return cls(
                mechanism=str(data["mechanism"]),
                clip=data["clip"],
                noise_multiplier=data["noise_multiplier"],
                sample_rate=data["sample_rate"],
                delta=data["delta"],
                accountant=str(data["accountant"]),
                epsilon_budget=data["epsilon_budget"],
                min_clients=data.get("min_clients", 1),
                noise_check_alpha=data.get("noise_check_alpha", 1e-6),
            )
        except KeyError as err:
            raise ConfigError(f"privacy policy lacks {err}") from err

    def digest(self) -> Digest:
        """The policy digest the chain records with the task (``privacyPolicyDigest``)."""
        from fedchain.codec.canonical import canonical_json, sha256_digest

        return sha256_digest(canonical_json(self.to_json()))

    def budget_fixed(self) -> int:
        """The budget in micro-epsilon (rounded down: the chain never allows more than the policy)."""
        return int(math.floor(self.epsilon_budget * EPSILON_SCALE))

    def steps_per_round(self, local_epochs: int) -> int:
        """Noisy steps a participant takes per round: DP-SGD ``local_epochs * ceil(1/q)``; client DP 1."""
        if self.mechanism == "client":
            return 1
        return int(local_epochs) * math.ceil(1.0 / self.sample_rate)

    def round_inputs(self, local_epochs: int) -> AccountantInputs:
        """The accountant inputs of one round under this policy."""
        return AccountantInputs(
            mechanism=self.mechanism,
            accountant=self.accountant,
            noise_multiplier=self.noise_multiplier,
            sample_rate=self.sample_rate,
            steps=self.steps_per_round(local_epochs),
            delta=self.delta,
            clip=self.clip,
        )

    def noise_std(self) -> float:
        """Standard deviation of the noise one participant adds: client DP ``z C / sqrt(m)``; DP-SGD ``z C``
        (per step, on the sum of the clipped per-sample gradients)."""
        if self.mechanism == "client":
            return self.noise_multiplier * self.clip / math.sqrt(self.min_clients)
        return self.noise_multiplier * self.clip


# --- accountants ----------------------------------------------------------------------------------
_SAME_IN_HISTORY = ("mechanism", "accountant", "delta")
_CALIBRATION_RTOL = 1e-4
"""Calibration stops when the bracket ``[lo, hi]`` of the noise multiplier is narrower than this share of ``hi``."""
_MAX_NOISE_MULTIPLIER = 1e6
_MIN_NOISE_MULTIPLIER = 1e-6


def _merged(history: Sequence[AccountantInputs]) -> list[tuple[float, float, int]]:
    """``(noise_multiplier, sample_rate, steps)`` with the steps of equal mechanisms summed, sorted.

    Composition is commutative and ``k`` self-compositions of ``n`` steps are ``k n`` steps, so this is the
    same privacy loss; it makes the figure independent of how the steps were split into rounds (the PRV and
    PLD accountants discretise each entry, and ten entries would cost ten times the work)."""
    steps: dict[tuple[float, float], int] = {}
    for inputs in history:
        key = (inputs.noise_multiplier, inputs.sample_rate)
        steps[key] = steps.get(key, 0) + inputs.steps
    return [(z, q, n) for (z, q), n in sorted(steps.items())]


def _opacus_epsilon(accountant: str, merged: list[tuple[float, float, int]], delta: float) -> float:
    from opacus.accountants import PRVAccountant, RDPAccountant

    acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    acc.history = list(merged)
    return float(acc.get_epsilon(delta=delta))


def _dp_accounting_epsilon(accountant: str, merged: list[tuple[float, float, int]], delta: float) -> float:
    import dp_accounting
    from dp_accounting import pld, rdp

    acc = rdp.RdpAccountant() if accountant == "rdp" else pld.PLDAccountant()
    for z, q, steps in merged:
        event: Any = dp_accounting.GaussianDpEvent(z)
        if q < 1.0:
            event = dp_accounting.PoissonSampledDpEvent(q, event)
        acc.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    return float(acc.get_epsilon(delta))


def epsilon(history: Sequence[AccountantInputs]) -> float:
    """Cumulative epsilon of a participant's composed rounds at their common delta (0.0 for no rounds).

    DP-SGD is accounted by Opacus (``RDPAccountant`` / ``PRVAccountant`` over the history of
    ``(noise_multiplier, sample_rate, steps)``); client-level DP by dp-accounting (``RdpAccountant`` /
    ``PLDAccountant`` composing ``SelfComposed(PoissonSampled(q, Gaussian(z)), steps)`` per round; a
    Gaussian alone when ``q = 1``). Every round must share mechanism, accountant and delta (PrivacyError
    naming the first that differs). Opacus and dp-accounting are imported here, not with the module.
    """
    if not history:
        return 0.0
    first = history[0]
    for index, inputs in enumerate(history):
        if not isinstance(inputs, AccountantInputs):
            raise PrivacyError(f"privacy history: entry {index} is not AccountantInputs, got {type(inputs).__name__}")
        for name in _SAME_IN_HISTORY:
            if getattr(inputs, name) != getattr(first, name):
                raise PrivacyError(
                    f"privacy history: round {index} has {name} {getattr(inputs, name)!r} but round 0 has "
                    f"{getattr(first, name)!r}; one history composes one mechanism under one accountant at one delta"
                )
    merged = _merged(history)
    with warnings.catch_warnings():
        # "optimal order is the largest alpha": the figure is still a valid (if looser) bound.
        warnings.simplefilter("ignore")
        try:
            if first.mechanism == "dpsgd":
                eps = _opacus_epsilon(first.accountant, merged, first.delta)
            else:
                eps = _dp_accounting_epsilon(first.accountant, merged, first.delta)
        except (ValueError, ArithmeticError, RuntimeError) as err:
            raise PrivacyError(f"the {first.accountant} accountant failed for {merged} at delta {first.delta}: {err}") from err
    if math.isnan(eps) or eps < 0:
        raise PrivacyError(f"the {first.accountant} accountant returned epsilon {eps} for {merged}")
    return eps


def _epsilon_at(
    mechanism: str, accountant: str, z: float, sample_rate: float, delta: float, total_steps: int
) -> float:
    inputs = AccountantInputs(
        mechanism=mechanism, accountant=accountant, noise_multiplier=z, sample_rate=sample_rate,
        steps=total_steps, delta=delta, clip=1.0,
    )
    return epsilon([inputs])


def _bisect_noise(
    mechanism: str, accountant: str, sample_rate: float, delta: float, target: float, total_steps: int,
    lo: float, hi: float,
) -> float:
    """The smallest ``z`` in ``(lo, hi]`` (to ``_CALIBRATION_RTOL``) with epsilon <= target; ``hi`` must meet it."""
    while hi - lo > _CALIBRATION_RTOL * hi:
        mid = 0.5 * (lo + hi)
        if _epsilon_at(mechanism, accountant, mid, sample_rate, delta, total_steps) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def calibrate_noise_multiplier(
    mechanism: str, accountant: str, sample_rate: float, delta: float, target_epsilon: float, total_steps: int
) -> float:
    """The smallest noise multiplier ``z`` (to a relative 1e-4) whose epsilon after ``total_steps`` is <= target.

    A bisection over :func:`epsilon` (the same accountants, so the participant's figures match): the
    returned ``z`` meets the target, and ``z * (1 - 1e-4)`` does not (epsilon falls as ``z`` grows). The
    tight accountants (PRV, PLD) are bracketed from below the RDP solution, which they never exceed, so
    the search does not visit tiny multipliers where they are slow. (Opacus's ``get_noise_multiplier``
    stops on an epsilon tolerance instead, which bounds neither how far ``z`` is from the smallest nor, for
    a discretised accountant, the number of steps; the tests compare both.)
    """
    if mechanism not in MECHANISMS:
        raise ConfigError(f"calibration: unknown mechanism {mechanism!r} (one of {', '.join(MECHANISMS)})")
    if accountant not in ACCOUNTANTS[mechanism]:
        raise ConfigError(
            f"calibration: accountant {accountant!r} does not account {mechanism} (one of {', '.join(ACCOUNTANTS[mechanism])})"
        )
    q = _unit("sample_rate", sample_rate, closed=True)
    d = _unit("delta", delta, closed=False)
    target = _positive("target_epsilon", target_epsilon)
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ConfigError(f"calibration: total_steps must be a positive integer, got {total_steps!r}")
    if accountant != "rdp":
        hi = calibrate_noise_multiplier(mechanism, "rdp", q, d, target, total_steps)
    else:
        hi = 1.0
        while _epsilon_at(mechanism, accountant, hi, q, d, total_steps) > target:
            hi *= 2.0
            if hi > _MAX_NOISE_MULTIPLIER:
                raise PrivacyError(f"no noise multiplier up to {_MAX_NOISE_MULTIPLIER:g} reaches epsilon {target}")
    lo = 0.5 * hi
    while _epsilon_at(mechanism, accountant, lo, q, d, total_steps) <= target:
        if lo < _MIN_NOISE_MULTIPLIER:
            raise PrivacyError(f"epsilon {target} is met by any noise multiplier down to {lo:g}: nothing to calibrate")
        hi, lo = lo, 0.5 * lo
    return _bisect_noise(mechanism, accountant, q, d, target, total_steps, lo, hi)


# --- models DP-SGD can train -----------------------------------------------------------------------
def check_private_model(module: nn.Module) -> None:
    """Refuse (ConfigError naming the layers) a model Opacus cannot train with DP-SGD, e.g. BatchNorm.

    Opacus's ``ModuleValidator`` decides; BatchNorm mixes the samples of a batch, so a per-sample gradient
    (and its clipping) would not bound one record's influence. GroupNorm (or LayerNorm / InstanceNorm)
    normalises each sample on its own: :func:`private_variant` swaps them in.
    """
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(module, strict=False)
    if not errors:
        return
    offenders = [
        f"layer {name or '<root>'!r} ({type(sub).__name__})"
        for name, sub in module.named_modules()
        if not any(True for _ in sub.children()) and ModuleValidator.validate(sub, strict=False)
    ]
    reasons = sorted({str(err).split(". ")[0].strip().rstrip(".") for err in errors})
    hint = " BatchNorm: use GroupNorm instead (fedchain.fl.privacy.private_variant swaps it in)." if any(
        "BatchNorm" in r for r in reasons
    ) else ""
    raise ConfigError(
        f"the model cannot be trained with DP-SGD: {', '.join(offenders) or 'the model as a whole'}: "
        f"{'; '.join(reasons)}.{hint}"
    )


def private_variant(module: nn.Module) -> nn.Module:
    """``module`` with the layers DP-SGD cannot train replaced (Opacus ``ModuleValidator.fix``: BatchNorm -> GroupNorm)."""
    from opacus.validators import ModuleValidator

    fixed: nn.Module = ModuleValidator.fix(module)
    check_private_model(fixed)
    return fixed


# --- client-level DP: clip and noise an update ---------------------------------------------------------
_DATA_EXTRAS = ("loss", "loss_at_global")
"""Update extras computed from the participant's data: not released under differential privacy."""


def privatize_update(update: ClientUpdate, policy: PrivacyPolicy, rng: np.random.Generator) -> ClientUpdate:
    """Client-level DP: clip the update's delta jointly to L2 norm ``policy.clip``, add N(0, noise_std^2) per coordinate.

    The noise (in float64, tensors in sorted name order, so the result is a function of ``rng``) is this
    participant's share ``z C / sqrt(m)``; the result is cast back to the wire dtype. The extras gain the
    round's accountant inputs and lose the training loss (a statistic of the data that no noise covers);
    neither the norm before clipping nor the clipping factor is recorded (both would leak).
    """
    if policy.mechanism != "client":
        raise PrivacyError(f"privatize_update is client-level DP; the policy's mechanism is {policy.mechanism!r}")
    if update.kind != UpdateKind.DELTA:
        raise PrivacyError(f"client-level DP clips a model delta; the update is of kind {update.kind.value!r}")
    if update.control_tensors:
        raise PrivacyError(
            f"client-level DP cannot clip control tensors ({', '.join(sorted(update.control_tensors)[:3])}, ...): "
            "use an algorithm whose update is a plain delta (fedavg)"
        )
    names = sorted(update.tensors)
    if not names:
        raise PrivacyError("client-level DP: the update has no tensors")
    delta = {k: np.asarray(update.tensors[k], dtype=np.float64) for k in names}
    if not all(np.isfinite(v).all() for v in delta.values()):
        raise PrivacyError("client-level DP: the update carries non-finite values")
    norm = math.sqrt(sum(float(np.dot(v.ravel(), v.ravel())) for v in delta.values()))
    factor = min(1.0, policy.clip / norm) if norm > 0 else 1.0
    sigma = policy.noise_std()
    tensors = {}
    for k in names:
        noised = delta[k] * factor + rng.normal(0.0, sigma, size=delta[k].shape)
        tensors[k] = noised.astype(WIRE_DTYPE)
    extras = {k: v for k, v in update.extras.items() if k not in _DATA_EXTRAS}
    extras.update(policy.round_inputs(1).to_extras())
    return dataclasses.replace(update, tensors=tensors, extras=extras)


# --- client-level DP: is the noise there? --------------------------------------------------------------
@dataclass(frozen=True)
class NoiseCheck:
    """The noise-presence test of one update: ``||u||^2 / sigma^2`` against the chi-square ``alpha`` quantile."""

    statistic: float
    threshold: float
    dimension: int
    passed: bool
    alpha: float = 0.0
    sigma: float = 0.0

    def reason(self) -> str:
        """A sentence with the figures."""
        if math.isnan(self.statistic):
            return f"the update carries non-finite values over its {self.dimension} coordinates"
        relation = ">=" if self.passed else "<"
        verdict = "carries" if self.passed else "lacks"
        return (
            f"||u||^2 / sigma^2 = {self.statistic:.6g} {relation} {self.threshold:.6g}, the chi-square({self.dimension}) "
            f"quantile at alpha = {self.alpha:g} (sigma = {self.sigma:.6g}): the update {verdict} the noise share "
            "the privacy policy asks for"
        )


def noise_check(tensors: Mapping[str, np.ndarray], policy: PrivacyPolicy) -> NoiseCheck:
    """Test whether the update's model tensors ``u`` carry their noise share; passed = statistic >= threshold.

    Statistic ``T = ||u||^2 / sigma^2`` with ``sigma = policy.noise_std()`` (``z C / sqrt(m)``), ``d`` the
    number of coordinates; threshold ``chi2.ppf(alpha, d)``, ``alpha = policy.noise_check_alpha``.

    Why the false-alarm rate is at most ``alpha``: an honest update is ``u = c + n`` with ``c`` the clipped
    delta (any fixed vector, ``||c|| <= C``) and ``n ~ N(0, sigma^2 I_d)``. Then ``T`` follows the
    noncentral chi-square with ``d`` degrees of freedom and noncentrality ``||c||^2 / sigma^2``, which
    stochastically dominates the central chi-square(d) (the noncentral law is increasing in its
    noncentrality; Anderson's theorem for the symmetric unimodal Gaussian), so
    ``P(T < chi2.ppf(alpha, d)) <= alpha`` whatever the data. (Casting to float32 moves ``T`` by about
    1e-7 of itself, far inside the spread ``sqrt(2/d)`` of ``T / d``.)

    What it catches: an update that left its noise out has ``T = ||c||^2 / sigma^2 <= m / z^2``, and one with
    noise of a fraction ``f`` of sigma has ``T ~ f^2 d``; both fall below the threshold (about
    ``d - 4.75 sqrt(2 d)`` at alpha = 1e-6) once ``d`` is of a model's size. It cannot tell Gaussian noise
    from any other vector of the same norm (e.g. noise the participant can subtract later): it proves
    only that an update has not been sent without its noise. Non-finite values fail the test.
    """
    if policy.mechanism != "client":
        raise PrivacyError(f"the noise check is for client-level DP; the policy's mechanism is {policy.mechanism!r}")
    from scipy.stats import chi2

    arrays = [np.asarray(tensors[k], dtype=np.float64).ravel() for k in sorted(tensors)]
    dimension = int(sum(a.size for a in arrays))
    if dimension == 0:
        raise PrivacyError("the noise check needs at least one coordinate")
    sigma = policy.noise_std()
    alpha = policy.noise_check_alpha
    threshold = float(chi2.ppf(alpha, dimension))
    if not all(np.isfinite(a).all() for a in arrays):
        return NoiseCheck(math.nan, threshold, dimension, False, alpha, sigma)
    statistic = sum(float(np.dot(a, a)) for a in arrays) / (sigma * sigma)
    return NoiseCheck(statistic, threshold, dimension, statistic >= threshold, alpha, sigma)

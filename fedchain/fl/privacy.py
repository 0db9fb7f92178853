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

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from fedchain.errors import ConfigError, PrivacyError
from fedchain.types import Digest

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

"""Composable robust aggregation rules.

A rule has two parts, either of which may be a no-op:

* ``screen``: looks at all contributions of a round and keeps, transforms or rejects
  them; every rejection is a :class:`~fedchain.fl.records.Rejection` naming the rule and
  the reason (the evidence governance can act on);
* ``combine``: replaces the weighted mean with a robust estimator (median, trimmed mean).

Rules run in order (``screen`` of each on what the previous kept); the last rule that
has a ``combine`` decides how the survivors are averaged, otherwise the strategy's
weighted mean is used. Coordinate-wise rules (median, trimmed mean) reject nobody: they
report per participant the share of its coordinates they discarded, in the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fedchain.errors import ConfigError
from fedchain.fl import aggregate as agg
from fedchain.fl.aggregate import Contribution
from fedchain.fl.records import ExtraValue, Rejection, RobustConfig, Weights

Combiner = Callable[[Sequence[Contribution]], Weights]


@dataclass(frozen=True)
class RobustOutcome:
    """What a rule (or a chain of rules) kept, what it rejected and what it measured."""

    kept: tuple[Contribution, ...]
    rejected: tuple[Rejection, ...] = ()
    metrics: Mapping[str, ExtraValue] = field(default_factory=dict)


class RobustRule(Protocol):
    """A robust aggregation rule; see the module docstring."""

    @property
    def name(self) -> str:
        """The rule's name in a task's strategy (``median``, ``multi_krum``, ...)."""
        ...

    def config(self) -> RobustConfig:
        """The rule by name and parameters, as the strategy's configuration records it."""
        ...

    def screen(self, contributions: Sequence[Contribution]) -> RobustOutcome:
        """Split ``contributions`` into the kept and the rejected (with a reason each)."""
        ...

    @property
    def combiner(self) -> Combiner | None:
        """The robust estimator that replaces the weighted mean, or None to keep the mean."""
        ...


@dataclass(frozen=True)
class CoordinateMedian:
    """Coordinate-wise median instead of the mean (Yin et al., 2018)."""

    name: str = field(default="median", init=False)

    def config(self) -> RobustConfig:
        """The rule as recorded in the strategy's configuration (no parameters)."""
        return RobustConfig(self.name, {})

    def screen(self, contributions: Sequence[Contribution]) -> RobustOutcome:
        """Keep every contribution (in canonical order): the median rejects nobody."""
        return RobustOutcome(tuple(agg.sort_contributions(contributions)))

    @property
    def combiner(self) -> Combiner | None:
        """The coordinate-wise median."""
        return agg.coordinate_median


@dataclass(frozen=True)
class TrimmedMean:
    """Coordinate-wise mean without the ``floor(beta*n)`` largest and smallest values."""

    beta: float = 0.1
    name: str = field(default="trimmed_mean", init=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta < 0.5:
            raise ConfigError(f"trimmed_mean beta must be in [0, 0.5), got {self.beta}")

    def config(self) -> RobustConfig:
        """The rule and its ``beta``, as recorded in the strategy's configuration."""
        return RobustConfig(self.name, {"beta": self.beta})

    def screen(self, contributions: Sequence[Contribution]) -> RobustOutcome:
        """Keep every contribution; the metrics give each participant's share of trimmed coordinates."""
        ordered = agg.sort_contributions(contributions)
        fractions = agg.trimmed_fraction(ordered, self.beta) if ordered else {}
        metrics = {f"trimmed_fraction/{a}": round(v, 6) for a, v in fractions.items()}
        return RobustOutcome(tuple(ordered), (), metrics)

    @property
    def combiner(self) -> Combiner | None:
        """The coordinate-wise trimmed mean with this rule's ``beta``."""
        beta = self.beta
        return lambda cs: agg.trimmed_mean(cs, beta)


@dataclass(frozen=True)
class MultiKrum:
    """Keep the ``m`` updates with the lowest Krum scores (Blanchard et al., 2017).

    ``m=1`` is Krum; ``m=None`` keeps ``n - f``. Rejected updates are named with their
    score and rank. The survivors are averaged unweighted (each weighs 1), since a sample
    count is only a claim and Krum's selection did not look at it; ``weighted=True`` keeps
    their weights (sample counts).
    """

    f: int
    m: int | None = None
    weighted: bool = False
    name: str = field(default="multi_krum", init=False)

    def __post_init__(self) -> None:
        if self.f < 0:
            raise ConfigError(f"multi_krum f must be >= 0, got {self.f}")
        if self.m is not None and self.m < 1:
            raise ConfigError(f"multi_krum m must be >= 1, got {self.m}")
        if not isinstance(self.weighted, bool):
            raise ConfigError(f"multi_krum weighted must be true or false, got {self.weighted!r}")

    def config(self) -> RobustConfig:
        """The rule, ``f``, ``m`` and ``weighted``, as recorded in the strategy's configuration."""
        return RobustConfig(self.name, {"f": self.f, "m": self.m, "weighted": self.weighted})

    def screen(self, contributions: Sequence[Contribution]) -> RobustOutcome:
        """Keep the ``m`` contributions with the lowest Krum scores; reject the others with score and rank."""
        ordered = agg.sort_contributions(contributions)
        n = len(ordered)
        m = self.m if self.m is not None else max(n - self.f, 1)
        m = min(m, n)
        scores = agg.krum_scores(ordered, self.f)
        chosen = set(agg.multi_krum_select(ordered, self.f, m))
        ranked = sorted(scores, key=lambda a: (scores[a], agg.address_key(a)))
        rank = {a: i + 1 for i, a in enumerate(ranked)}
        kept = tuple(
            c if self.weighted else Contribution(c.participant, 1.0, c.tensors) for c in ordered if c.participant in chosen
        )
        rejected = tuple(
            Rejection(
                c.participant,
                self.name,
                f"krum score {scores[c.participant]:.6g} ranks {rank[c.participant]} of {n}; f={self.f} keeps {m}",
            )
            for c in ordered
            if c.participant not in chosen
        )
        return RobustOutcome(kept, rejected, {"krum_kept": len(kept)})

    @property
    def combiner(self) -> Combiner | None:
        """None: the kept updates are averaged with the strategy's weighted mean."""
        return None


def Krum(f: int) -> MultiKrum:  # noqa: N802 - reads as the rule's name
    """Krum: keep the single update with the lowest score."""
    return MultiKrum(f=f, m=1)


@dataclass(frozen=True)
class NormClip:
    """Bound every update's L2 norm by ``max_norm``: scale it down, or (``reject=True``) leave it out."""

    max_norm: float
    reject: bool = False
    name: str = field(default="norm_clip", init=False)

    def __post_init__(self) -> None:
        if not (self.max_norm > 0 and math.isfinite(self.max_norm)):
            raise ConfigError(f"norm_clip max_norm must be positive and finite, got {self.max_norm}")

    def config(self) -> RobustConfig:
        """The rule, ``max_norm`` and ``reject``, as recorded in the strategy's configuration."""
        return RobustConfig(self.name, {"max_norm": self.max_norm, "reject": self.reject})

    def screen(self, contributions: Sequence[Contribution]) -> RobustOutcome:
        """Scale every update whose L2 norm exceeds ``max_norm`` down to it, or reject it (``reject=True``)."""
        kept: list[Contribution] = []
        rejected: list[Rejection] = []
        clipped = 0
        for c in agg.sort_contributions(contributions):
            tensors, norm, was_clipped = agg.clip_by_norm(c.tensors, self.max_norm)
            if not was_clipped:
                kept.append(c)
            elif self.reject:
                rejected.append(Rejection(c.participant, self.name, f"update norm {norm:.6g} exceeds {self.max_norm:.6g}"))
            else:
                clipped += 1
                kept.append(Contribution(c.participant, c.weight, tensors))
        return RobustOutcome(tuple(kept), tuple(rejected), {"clipped": clipped})

    @property
    def combiner(self) -> Combiner | None:
        """None: the clipped updates are averaged with the strategy's weighted mean."""
        return None


def apply_rules(rules: Sequence[RobustRule], contributions: Sequence[Contribution]) -> RobustOutcome:
    """Run every rule's ``screen`` in order on what the previous rules kept."""
    kept = tuple(agg.sort_contributions(contributions))
    rejected: list[Rejection] = []
    metrics: dict[str, ExtraValue] = {}
    for rule in rules:
        if not kept:
            break
        outcome = rule.screen(kept)
        kept = outcome.kept
        rejected.extend(outcome.rejected)
        metrics.update({f"{rule.name}/{k}": v for k, v in outcome.metrics.items()})
    return RobustOutcome(kept, tuple(rejected), metrics)


def combine(rules: Sequence[RobustRule], contributions: Sequence[Contribution]) -> Weights:
    """Average ``contributions`` with the last rule's robust estimator, else the weighted mean."""
    for rule in reversed(rules):
        combiner = rule.combiner
        if combiner is not None:
            return combiner(contributions)
    return agg.weighted_mean(contributions)


_RULES: dict[str, Callable[..., RobustRule]] = {
    "median": CoordinateMedian,
    "trimmed_mean": TrimmedMean,
    "krum": Krum,
    "multi_krum": MultiKrum,
    "norm_clip": NormClip,
}

RULE_NAMES: tuple[str, ...] = tuple(sorted(_RULES))


def rule_from_config(config: RobustConfig) -> RobustRule:
    """Build a rule from its config; unknown names or parameters are a :class:`ConfigError`."""
    factory = _RULES.get(config.name)
    if factory is None:
        raise ConfigError(f"unknown robust rule {config.name!r}; expected one of {', '.join(RULE_NAMES)}")
    params: dict[str, Any] = dict(config.params)
    if config.name == "krum":
        params.pop("m", None)
    try:
        return factory(**params)
    except TypeError as err:
        raise ConfigError(f"robust rule {config.name!r}: bad parameters {params}: {err}") from err

"""Server strategies: small classes with two hooks around the pure math in :mod:`aggregate`.

* ``configure_round(round_id, global_weights, server_state) -> ClientConfig``: what each
  participant trains with this round;
* ``aggregate_round(global_weights, updates, server_state, *, round_id,
  base_model_digest) -> AggregationResult``: validate, apply the robust rules, combine.

Every strategy composes with robust rules (:mod:`fedchain.fl.robust`), applied in
order to the updates' model tensors. The round loop itself lives once, in
:mod:`fedchain.fl.simulation` (and in the federation layer for the on-chain flow).

Aggregation weights: each update that the robust rules kept weighs :meth:`weight_of` (its
sample count; 1 for q-FedAvg, and 1 for every Multi-Krum survivor unless the rule says
``weighted``); then no participant's share of the total may exceed ``max_weight_share``
(default 1: no cap), see :func:`fedchain.fl.aggregate.cap_weight_shares`. A participant that
lies about its sample count gains at most that share.

Server state is a flat ``Weights`` mapping with prefixed names: SCAFFOLD keeps its
control variate under ``c/``, FedAdam its moments under ``m/`` and ``v/``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fedchain.errors import AggregationError, ConfigError
from fedchain.fl import aggregate as agg
from fedchain.fl.aggregate import Contribution
from fedchain.fl.records import (
    AggregationResult,
    ClientConfig,
    ClientUpdate,
    ExtraValue,
    Rejection,
    StrategyConfig,
    UpdateKind,
    Weights,
)
from fedchain.fl.robust import RobustRule, apply_rules, combine, rule_from_config
from fedchain.types import Address, Digest, RoundId

SCAFFOLD_STATE_PREFIX = "c/"
ADAM_M_PREFIX = "m/"
ADAM_V_PREFIX = "v/"


def _prefixed(prefix: str, weights: Mapping[str, np.ndarray]) -> Weights:
    return {prefix + n: np.asarray(weights[n]) for n in sorted(weights)}


def _unprefixed(prefix: str, state: Mapping[str, np.ndarray]) -> Weights:
    return {n[len(prefix) :]: np.asarray(state[n]) for n in sorted(state) if n.startswith(prefix)}


def _zeros_like(weights: Mapping[str, np.ndarray]) -> Weights:
    return {n: np.zeros(np.shape(weights[n]), dtype=np.float32) for n in sorted(weights)}


@dataclass(frozen=True)
class _Strategy:
    """Shared parameters and the one aggregation flow; subclasses supply ``_combine``."""

    name: ClassVar[str] = ""
    algorithm: ClassVar[str] = "fedavg"
    kind: ClassVar[UpdateKind] = UpdateKind.DELTA
    uses_control: ClassVar[bool] = False
    required_extras: ClassVar[tuple[str, ...]] = ()
    state_prefixes: ClassVar[tuple[str, ...]] = ()

    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0
    server_lr: float = 1.0
    min_updates: int = 1
    max_weight_share: float = 1.0
    uniform_weights: int = 0  # 1: every update weighs the same (client-level DP); 0: its sample count
    robust: tuple[RobustRule, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "robust", tuple(self.robust))
        if self.min_updates < 1:
            raise ConfigError(f"min_updates must be >= 1, got {self.min_updates}")
        if not (self.server_lr > 0 and math.isfinite(self.server_lr)):
            raise ConfigError(f"server_lr must be positive and finite, got {self.server_lr}")
        if not 0.0 < self.max_weight_share <= 1.0:
            raise ConfigError(f"max_weight_share must be in (0, 1], got {self.max_weight_share}")
        if self.uniform_weights not in (0, 1):
            raise ConfigError(f"uniform_weights must be 0 or 1, got {self.uniform_weights}")
        self._client_config({})  # validates the client-side parameters once

    # --- description ----------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Every parameter (defaults included, but for ``uniform_weights`` = 0, which configs written before it
        existed lack), as recorded in the config digest."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "robust" and not (f.name == "uniform_weights" and self.uniform_weights == 0)
        }

    def config(self) -> StrategyConfig:
        return StrategyConfig(self.name, self.params(), tuple(r.config() for r in self.robust))

    def digest(self) -> Digest:
        """The aggregation config digest (see :meth:`StrategyConfig.digest`)."""
        return self.config().digest()

    # --- hooks ----------------------------------------------------------------
    def initial_state(self, global_weights: Mapping[str, np.ndarray]) -> Weights:
        """The server state before round one (empty unless the strategy keeps state)."""
        return {}

    def configure_round(
        self, round_id: RoundId, global_weights: Mapping[str, np.ndarray], server_state: Mapping[str, np.ndarray]
    ) -> ClientConfig:
        """The local-training configuration every participant uses this round."""
        return self._client_config(server_state)

    def _client_config(self, server_state: Mapping[str, np.ndarray]) -> ClientConfig:
        return ClientConfig(
            algorithm=self.algorithm,
            local_epochs=self.local_epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )

    def weight_of(self, update: ClientUpdate) -> float:
        """Aggregation weight of an update (its sample count unless the algorithm says otherwise; 1 with
        ``uniform_weights``)."""
        return 1.0 if self.uniform_weights else float(update.num_samples)

    def aggregate_round(
        self,
        global_weights: Mapping[str, np.ndarray],
        updates: Sequence[ClientUpdate],
        server_state: Mapping[str, np.ndarray],
        *,
        round_id: RoundId,
        base_model_digest: Digest,
    ) -> AggregationResult:
        """Validate ``updates``, apply the robust rules, combine into the next global model.

        Raises :class:`~fedchain.errors.TooFewUpdatesError` when fewer than ``min_updates``
        survive validation or the robust rules.
        """
        state = dict(server_state) if server_state else self.initial_state(global_weights)
        self._check_state(global_weights, state)
        valid, rejected = agg.screen_updates(
            updates,
            global_weights,
            round_id=round_id,
            base_model_digest=base_model_digest,
            kind=self.kind,
            control=self.uses_control,
            required_extras=self.required_extras,
        )
        agg.require_min(len(valid), self.min_updates)
        contributions = [Contribution(u.participant, self.weight_of(u), u.model_tensors) for u in valid]
        outcome = apply_rules(self.robust, contributions)
        rejections: list[Rejection] = rejected + list(outcome.rejected)
        agg.require_min(len(outcome.kept), self.min_updates)
        kept, held_down = agg.cap_weight_shares(outcome.kept, self.max_weight_share)
        kept_ids = {c.participant for c in kept}
        kept_updates = {u.participant: u for u in valid if u.participant in kept_ids}
        new_weights, new_state, metrics = self._combine(global_weights, kept, kept_updates, state)
        capped = {"num_weight_capped": held_down} if self.max_weight_share < 1.0 else {}
        metrics = {
            **outcome.metrics,
            **metrics,
            **capped,
            "num_updates": len(updates),
            "num_valid": len(valid),
            "num_included": len(outcome.kept),
            "num_rejected": len(rejections),
        }
        return AggregationResult(
            weights=new_weights,
            included=tuple(c.participant for c in outcome.kept),
            rejected=tuple(sorted(rejections, key=lambda r: (agg.address_key(r.participant), r.rule))),
            server_state=new_state,
            metrics=metrics,
        )

    def _check_state(self, global_weights: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]) -> None:
        expected = sorted(p + n for p in self.state_prefixes for n in global_weights)
        if sorted(state) != expected:
            raise AggregationError(f"{self.name}: server state has tensors {sorted(state)[:4]}..., expected {expected[:4]}...")

    def _combine(
        self,
        global_weights: Mapping[str, np.ndarray],
        kept: list[Contribution],
        updates: Mapping[Address, ClientUpdate],
        state: Mapping[str, np.ndarray],
    ) -> tuple[Weights, Weights, dict[str, ExtraValue]]:
        mean = combine(self.robust, kept)
        return agg.apply_delta(global_weights, mean, self.server_lr), dict(state), {}


@dataclass(frozen=True)
class FedAvg(_Strategy):
    """FedAvg (McMahan et al., 2017): sample-weighted mean of ``local - global``."""

    name: ClassVar[str] = "fedavg"


@dataclass(frozen=True)
class FedProx(_Strategy):
    """FedProx (Li et al., 2020): FedAvg with a proximal term ``mu/2 ||w - w_global||^2`` locally."""

    name: ClassVar[str] = "fedprox"
    algorithm: ClassVar[str] = "fedprox"

    mu: float = 0.01

    def _client_config(self, server_state: Mapping[str, np.ndarray]) -> ClientConfig:
        return dataclasses.replace(super()._client_config(server_state), mu=self.mu)


@dataclass(frozen=True)
class FedNova(_Strategy):
    """FedNova (Wang et al., 2020): normalised updates, rescaled by ``tau_eff = Σ p_i ||a_i||_1``."""

    name: ClassVar[str] = "fednova"
    algorithm: ClassVar[str] = "fednova"
    kind: ClassVar[UpdateKind] = UpdateKind.NORMALIZED_DELTA
    required_extras: ClassVar[tuple[str, ...]] = ("tau",)

    def _combine(
        self,
        global_weights: Mapping[str, np.ndarray],
        kept: list[Contribution],
        updates: Mapping[Address, ClientUpdate],
        state: Mapping[str, np.ndarray],
    ) -> tuple[Weights, Weights, dict[str, ExtraValue]]:
        mean = combine(self.robust, kept)
        taus = {a: float(updates[a].extras["tau"]) for a in updates}
        tau_eff = agg.fednova_tau_eff(kept, taus)
        new = agg.fednova_combine(global_weights, mean, self.server_lr * tau_eff)
        return new, dict(state), {"tau_eff": tau_eff}


@dataclass(frozen=True)
class Scaffold(_Strategy):
    """SCAFFOLD (Karimireddy et al., 2020), option II control variates.

    ``x += server_lr * mean(Δy)``; ``c += (|S|/N) * mean(Δc)`` with N = ``num_clients``
    (0: every participant takes part each round, |S|/N = 1). Δc is averaged without
    sample weights, so c stays the mean of the c_i.
    """

    name: ClassVar[str] = "scaffold"
    algorithm: ClassVar[str] = "scaffold"
    uses_control: ClassVar[bool] = True
    state_prefixes: ClassVar[tuple[str, ...]] = (SCAFFOLD_STATE_PREFIX,)

    num_clients: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_clients < 0:
            raise ConfigError(f"scaffold num_clients must be >= 0, got {self.num_clients}")

    def initial_state(self, global_weights: Mapping[str, np.ndarray]) -> Weights:
        """The zero server control variate ``c``."""
        return _prefixed(SCAFFOLD_STATE_PREFIX, _zeros_like(global_weights))

    def _client_config(self, server_state: Mapping[str, np.ndarray]) -> ClientConfig:
        control = _unprefixed(SCAFFOLD_STATE_PREFIX, server_state) if server_state else None
        return dataclasses.replace(super()._client_config(server_state), server_control=control)

    def configure_round(
        self, round_id: RoundId, global_weights: Mapping[str, np.ndarray], server_state: Mapping[str, np.ndarray]
    ) -> ClientConfig:
        """The client configuration with the server control variate (zero before round one)."""
        state = dict(server_state) if server_state else self.initial_state(global_weights)
        return self._client_config(state)

    def _combine(
        self,
        global_weights: Mapping[str, np.ndarray],
        kept: list[Contribution],
        updates: Mapping[Address, ClientUpdate],
        state: Mapping[str, np.ndarray],
    ) -> tuple[Weights, Weights, dict[str, ExtraValue]]:
        mean = combine(self.robust, kept)
        new = agg.apply_delta(global_weights, mean, self.server_lr)
        controls = [Contribution(c.participant, 1.0, updates[c.participant].control_tensors) for c in kept]
        dc = combine(self.robust, controls)
        fraction = 1.0 if self.num_clients == 0 else min(len(kept) / self.num_clients, 1.0)
        c_new = agg.apply_delta(_unprefixed(SCAFFOLD_STATE_PREFIX, state), dc, fraction)
        return new, _prefixed(SCAFFOLD_STATE_PREFIX, c_new), {"control_norm": agg.l2_norm(c_new)}


@dataclass(frozen=True)
class QFedAvg(_Strategy):
    """q-FedAvg (Li et al., 2020, q-FFL): ``global + Σ Δ_k / Σ h_k``, every participant weighted equally.

    With ``q = 0`` this is the unweighted mean of ``local - global``.
    """

    name: ClassVar[str] = "qfedavg"
    algorithm: ClassVar[str] = "qfedavg"
    kind: ClassVar[UpdateKind] = UpdateKind.QFFL
    required_extras: ClassVar[tuple[str, ...]] = ("h",)

    q: float = 0.1

    def _client_config(self, server_state: Mapping[str, np.ndarray]) -> ClientConfig:
        return dataclasses.replace(super()._client_config(server_state), q=self.q)

    def weight_of(self, update: ClientUpdate) -> float:
        """1.0: q-FedAvg weights every participant equally."""
        return 1.0

    def _combine(
        self,
        global_weights: Mapping[str, np.ndarray],
        kept: list[Contribution],
        updates: Mapping[Address, ClientUpdate],
        state: Mapping[str, np.ndarray],
    ) -> tuple[Weights, Weights, dict[str, ExtraValue]]:
        mean = combine(self.robust, kept)
        h_mean = agg.mean_scalar({a: float(updates[a].extras["h"]) for a in updates})
        new = agg.qfedavg_combine(global_weights, mean, h_mean / self.server_lr)
        return new, dict(state), {"h_mean": h_mean}


@dataclass(frozen=True)
class FedAdam(_Strategy):
    """FedAdam (Reddi et al., 2021): clients train like FedAvg; the server takes an Adam step
    on the averaged delta with learning rate ``server_lr``."""

    name: ClassVar[str] = "fedadam"
    state_prefixes: ClassVar[tuple[str, ...]] = (ADAM_M_PREFIX, ADAM_V_PREFIX)

    server_lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            raise ConfigError(f"fedadam betas must be in [0, 1), got {self.beta1}, {self.beta2}")
        if not self.tau > 0:
            raise ConfigError(f"fedadam tau must be > 0, got {self.tau}")

    def initial_state(self, global_weights: Mapping[str, np.ndarray]) -> Weights:
        """Adam's first and second moments, zero."""
        zeros = _zeros_like(global_weights)
        return {**_prefixed(ADAM_M_PREFIX, zeros), **_prefixed(ADAM_V_PREFIX, zeros)}

    def _combine(
        self,
        global_weights: Mapping[str, np.ndarray],
        kept: list[Contribution],
        updates: Mapping[Address, ClientUpdate],
        state: Mapping[str, np.ndarray],
    ) -> tuple[Weights, Weights, dict[str, ExtraValue]]:
        mean = combine(self.robust, kept)
        new, m, v = agg.fedadam_step(
            global_weights,
            mean,
            _unprefixed(ADAM_M_PREFIX, state),
            _unprefixed(ADAM_V_PREFIX, state),
            lr=self.server_lr,
            beta1=self.beta1,
            beta2=self.beta2,
            tau=self.tau,
        )
        return new, {**_prefixed(ADAM_M_PREFIX, m), **_prefixed(ADAM_V_PREFIX, v)}, {}


Strategy = FedAvg | FedProx | FedNova | Scaffold | QFedAvg | FedAdam

BaseStrategy = _Strategy
"""The base every strategy shares (what :func:`strategy_from_config` returns)."""

STRATEGIES: dict[str, type[_Strategy]] = {
    cls.name: cls for cls in (FedAvg, FedProx, FedNova, Scaffold, QFedAvg, FedAdam)
}


def strategy_from_config(config: StrategyConfig) -> _Strategy:
    """Build a strategy (with its robust rules) from a :class:`StrategyConfig`.

    Unknown strategy names or parameters raise :class:`~fedchain.errors.ConfigError`.
    ``strategy_from_config(s.config()).config() == s.config()`` for every strategy ``s``.
    """
    cls = STRATEGIES.get(config.name)
    if cls is None:
        raise ConfigError(f"unknown strategy {config.name!r}; expected one of {', '.join(sorted(STRATEGIES))}")
    known = {f.name for f in dataclasses.fields(cls)} - {"robust"}
    unknown = sorted(set(config.params) - known)
    if unknown:
        raise ConfigError(f"strategy {config.name!r}: unknown parameter(s) {', '.join(unknown)}")
    rules = tuple(rule_from_config(r) for r in config.robust)
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    params: dict[str, Any] = {}
    for key, value in config.params.items():
        expected = str(types[key])
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"strategy {config.name!r}: parameter {key} must be a number, got {value!r}")
        if expected == "int" and not isinstance(value, int):
            raise ConfigError(f"strategy {config.name!r}: parameter {key} must be an integer, got {value!r}")
        params[key] = float(value) if expected == "float" else value
    return cls(**params, robust=rules)

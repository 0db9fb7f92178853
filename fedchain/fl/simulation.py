"""An in-memory federated-learning loop: the "plain FL" baseline and the benchmark engine.

No chain and no blob store: one process trains the participants one after another,
hands their updates to a strategy and evaluates the global model after every round.
The same strategy, robust rules and local training run in the on-chain federation, so
the figures measured here are those of the learning itself.

:func:`train_centralised` trains the same model on the pooled training data with the
same number of passes, for comparison.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from fedchain.errors import ConfigError, TooFewUpdatesError, TrainingError
from fedchain.fl import attacks
from fedchain.fl.client import configure_torch, train_module
from fedchain.fl.datasets import Dataset, load_dataset
from fedchain.fl.models import ModelSpec, build_model, default_model_spec, evaluate, get_weights, set_weights
from fedchain.fl.partition import PartitionSpec, partition
from fedchain.fl.records import ClientConfig, ClientState, ClientUpdate, StrategyConfig, Weights
from fedchain.fl.strategies import strategy_from_config
from fedchain.types import Address, Digest, RoundId

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttackSpec:
    """Which share of the participants attack, and how (evaluation only).

    ``update``: an :class:`~fedchain.fl.attacks.UpdateAttack` applied to their updates;
    ``data``: ``label_flip`` or ``backdoor`` applied to their training data.
    """

    fraction: float
    update: attacks.UpdateAttack | None = None
    data: str | None = None
    backdoor_target: int = 0
    backdoor_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError(f"attacker fraction must be in [0, 1], got {self.fraction}")
        if self.data is not None and self.data not in attacks.DATA_ATTACKS:
            raise ConfigError(f"unknown data attack {self.data!r}; expected one of {', '.join(attacks.DATA_ATTACKS)}")
        if self.update is None and self.data is None:
            raise ConfigError("an attack needs an update attack, a data attack or both")

    def to_json(self) -> dict[str, Any]:
        return {
            "fraction": self.fraction,
            "update": None
            if self.update is None
            else {"kind": self.update.kind, "factor": self.update.factor, "sigma": self.update.sigma},
            "data": self.data,
            "backdoor_target": self.backdoor_target,
            "backdoor_fraction": self.backdoor_fraction,
        }


@dataclass(frozen=True)
class SimulationConfig:
    """One simulated federation."""

    dataset: str
    strategy: StrategyConfig
    num_clients: int = 10
    partition: str = "iid"
    alpha: float = 0.5
    rounds: int = 10
    seed: int = 0
    model: ModelSpec | None = None
    max_train: int | None = None
    max_test: int | None = None
    attack: AttackSpec | None = None

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds}")
        if self.num_clients < 1:
            raise ConfigError(f"num_clients must be >= 1, got {self.num_clients}")
        for name in ("max_train", "max_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "strategy": self.strategy.to_json(),
            "num_clients": self.num_clients,
            "partition": self.partition,
            "alpha": self.alpha,
            "rounds": self.rounds,
            "seed": self.seed,
            "model": None if self.model is None else self.model.to_dict(),
            "max_train": self.max_train,
            "max_test": self.max_test,
            "attack": None if self.attack is None else self.attack.to_json(),
        }


@dataclass(frozen=True)
class RoundMetrics:
    """The global model after one round, and what the round did."""

    round: int
    accuracy: float
    loss: float
    auc: float | None
    included: int
    rejected: int
    rejected_attackers: int
    failed_clients: int
    seconds: float
    backdoor_success: float | None = None
    aggregated: bool = True


@dataclass(frozen=True)
class SimulationResult:
    config: SimulationConfig
    rounds: tuple[RoundMetrics, ...]
    attackers: tuple[Address, ...]
    train_samples: int
    test_samples: int
    seconds: float
    final_weights: Weights = field(repr=False, default_factory=dict)

    @property
    def final(self) -> RoundMetrics:
        return self.rounds[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json(),
            "attackers": list(self.attackers),
            "train_samples": self.train_samples,
            "test_samples": self.test_samples,
            "seconds": round(self.seconds, 3),
            "rounds": [_finite_dict(r.__dict__) for r in self.rounds],
            "final": _finite_dict(self.final.__dict__),
        }


def _finite_dict(values: dict[str, Any]) -> dict[str, Any]:
    """Non-finite floats become None, so the result is valid JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


def participant_address(index: int, seed: int) -> Address:
    """A stable pseudo-address for simulated participant ``index`` (its sort order is seeded)."""
    return Address("0x" + hashlib.sha256(f"fedchain-sim/{seed}/{index}".encode()).hexdigest()[:40])


def weights_fingerprint(weights: Weights) -> Digest:
    """SHA-256 over names, shapes and float32 bytes: identifies a model within the simulation."""
    h = hashlib.sha256()
    for name in sorted(weights):
        arr = np.ascontiguousarray(weights[name], dtype=np.float32)
        h.update(name.encode() + b"\0" + repr(arr.shape).encode() + b"\0" + arr.tobytes())
    return Digest(h.digest())


def client_seed(seed: int, round_id: int, index: int) -> int:
    return (seed * 1_000_003 + round_id * 10_007 + index * 101) % (2**31 - 1)


def subset(dataset: Dataset, max_train: int | None, max_test: int | None, seed: int) -> Dataset:
    """A seeded random subset of the train and test splits (the whole split when None)."""
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    out = dataset
    if max_train is not None and max_train < len(dataset.y_train):
        idx = np.sort(rng.permutation(len(dataset.y_train))[:max_train])
        out = replace(out, x_train=dataset.x_train[idx], y_train=dataset.y_train[idx])
    if max_test is not None and max_test < len(dataset.y_test):
        idx = np.sort(rng.permutation(len(dataset.y_test))[:max_test])
        out = replace(out, x_test=dataset.x_test[idx], y_test=dataset.y_test[idx])
    return out


def _evaluate(model_spec: ModelSpec, weights: Weights, data: Dataset, attack: AttackSpec | None, trigger: float) -> tuple[dict[str, float], float | None]:
    model = build_model(model_spec, 0)
    set_weights(model, weights)
    if not all(np.isfinite(v).all() for v in weights.values()):
        return {"accuracy": math.nan, "loss": math.nan}, None
    metrics = evaluate(model, data.x_test, data.y_test)
    backdoor = None
    if attack is not None and attack.data == "backdoor":
        backdoor = attacks.backdoor_success_rate(model, data.x_test, data.y_test, target=attack.backdoor_target, value=trigger)
    return metrics, backdoor


def run_simulation(
    config: SimulationConfig,
    *,
    dataset: Dataset | None = None,
    on_round: Callable[[RoundMetrics], None] | None = None,
) -> SimulationResult:
    """Run ``config.rounds`` rounds and evaluate the global model after each one.

    Participants whose local training diverges (a poisoned global model can do that)
    sit the round out and are counted in ``failed_clients``; a round in which too few
    updates survive keeps the previous global model (``aggregated=False``).
    """
    configure_torch()
    started = time.perf_counter()
    data = subset(dataset if dataset is not None else load_dataset(config.dataset, seed=config.seed), config.max_train, config.max_test, config.seed)
    spec = config.model if config.model is not None else default_model_spec(data)
    strategy = strategy_from_config(config.strategy)
    parts = partition(data.y_train, PartitionSpec(config.partition, config.num_clients, alpha=config.alpha, seed=config.seed))
    addresses = [participant_address(i, config.seed) for i in range(config.num_clients)]
    rng = np.random.default_rng(config.seed + 7919)
    attack = config.attack
    n_attackers = int(round(attack.fraction * config.num_clients)) if attack is not None else 0
    attacker_idx = set(int(i) for i in rng.choice(config.num_clients, size=n_attackers, replace=False)) if n_attackers else set()
    trigger = float(data.x_train.max())

    client_data: list[tuple[np.ndarray, np.ndarray]] = []
    for i, idx in enumerate(parts):
        x, y = data.x_train[idx], data.y_train[idx]
        if attack is not None and i in attacker_idx and attack.data == "label_flip":
            y = attacks.label_flip(y, data.num_classes)
        elif attack is not None and i in attacker_idx and attack.data == "backdoor":
            x, y = attacks.add_backdoor(
                x, y, target=attack.backdoor_target, fraction=attack.backdoor_fraction, seed=config.seed + i, value=trigger
            )
        client_data.append((x, y))

    module = build_model(spec, config.seed)
    weights: Weights = get_weights(module)
    server_state: Weights = strategy.initial_state(weights)
    states: list[ClientState] = [ClientState() for _ in range(config.num_clients)]
    attacker_addresses = {addresses[i] for i in attacker_idx}
    history: list[RoundMetrics] = []

    for r in range(1, config.rounds + 1):
        round_started = time.perf_counter()
        round_id = RoundId(r)
        base = weights_fingerprint(weights)
        client_config: ClientConfig = strategy.configure_round(round_id, weights, server_state)
        updates: list[ClientUpdate] = []
        failed = 0
        for i, (x, y) in enumerate(client_data):
            try:
                update, new_state, _ = train_module(
                    module,
                    weights,
                    x,
                    y,
                    client_config,
                    seed=client_seed(config.seed, r, i),
                    client_state=states[i],
                    participant=addresses[i],
                    round_id=round_id,
                    base_model_digest=base,
                )
            except TrainingError as err:
                log.info("round %d: participant %s sits out: %s", r, addresses[i], err)
                failed += 1
                continue
            states[i] = new_state
            if attack is not None and attack.update is not None and i in attacker_idx:
                update = attack.update.apply(update, client_seed(config.seed, r, i))
            updates.append(update)
        aggregated = True
        included = rejected = rejected_attackers = 0
        try:
            if not updates:
                raise TooFewUpdatesError(0, strategy.min_updates)
            result = strategy.aggregate_round(weights, updates, server_state, round_id=round_id, base_model_digest=base)
            weights, server_state = dict(result.weights), dict(result.server_state)
            included, rejected = len(result.included), len(result.rejected)
            rejected_attackers = sum(1 for rej in result.rejected if rej.participant in attacker_addresses)
        except TooFewUpdatesError as err:
            log.info("round %d: not aggregated: %s", r, err)
            aggregated = False
        metrics, backdoor = _evaluate(spec, weights, data, attack, trigger)
        row = RoundMetrics(
            round=r,
            accuracy=float(metrics["accuracy"]),
            loss=float(metrics["loss"]),
            auc=float(metrics["auc"]) if "auc" in metrics else None,
            included=included,
            rejected=rejected,
            rejected_attackers=rejected_attackers,
            failed_clients=failed,
            seconds=time.perf_counter() - round_started,
            backdoor_success=backdoor,
            aggregated=aggregated,
        )
        history.append(row)
        if on_round is not None:
            on_round(row)

    return SimulationResult(
        config=config,
        rounds=tuple(history),
        attackers=tuple(sorted(attacker_addresses)),
        train_samples=int(len(data.y_train)),
        test_samples=int(len(data.y_test)),
        seconds=time.perf_counter() - started,
        final_weights=weights,
    )


@dataclass(frozen=True)
class CentralisedResult:
    epochs: tuple[dict[str, float], ...]
    seconds: float

    @property
    def final(self) -> dict[str, float]:
        return self.epochs[-1]


def train_centralised(
    data: Dataset,
    spec: ModelSpec,
    *,
    passes: int,
    chunk: int = 1,
    batch_size: int = 32,
    lr: float = 0.05,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    seed: int = 0,
    on_chunk: Callable[[dict[str, float]], None] | None = None,
) -> CentralisedResult:
    """Train ``spec`` on all of ``data.x_train`` for ``passes`` epochs, evaluating every ``chunk`` epochs."""
    if passes < 1 or chunk < 1:
        raise ConfigError(f"passes and chunk must be >= 1, got {passes} and {chunk}")
    configure_torch()
    started = time.perf_counter()
    module = build_model(spec, seed)
    weights = get_weights(module)
    history: list[dict[str, float]] = []
    done = 0
    step = 0
    while done < passes:
        epochs = min(chunk, passes - done)
        config = ClientConfig("fedavg", local_epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay)
        step += 1
        train_module(
            module,
            weights,
            data.x_train,
            data.y_train,
            config,
            seed=client_seed(seed, step, 0),
            participant=Address("0x" + "00" * 20),
            round_id=RoundId(step),
            base_model_digest=weights_fingerprint(weights),
        )
        weights = get_weights(module)  # the trained model itself, not global + rounded delta
        done += epochs
        metrics, _ = _evaluate(spec, weights, data, None, 0.0)
        row = {"epochs": float(done), **{k: float(v) for k, v in metrics.items()}}
        history.append(row)
        if on_chunk is not None:
            on_chunk(row)
    return CentralisedResult(tuple(history), time.perf_counter() - started)

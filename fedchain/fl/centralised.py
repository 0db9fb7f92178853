"""Centralised training of a model on pooled data: the yardstick federated runs are measured against."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fedchain.errors import ConfigError
from fedchain.fl.client import configure_torch, train_module
from fedchain.fl.datasets import Dataset
from fedchain.fl.models import ModelSpec, build_model, evaluate, get_weights, set_weights
from fedchain.fl.records import ClientConfig
from fedchain.types import ZERO_DIGEST, Address, RoundId


@dataclass(frozen=True)
class CentralisedResult:
    """Test metrics after every evaluated chunk of epochs, and the wall time."""

    epochs: tuple[dict[str, float], ...]
    seconds: float

    @property
    def final(self) -> dict[str, float]:
        """The metrics after the last chunk."""
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
        config = ClientConfig("fedavg", local_epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                              weight_decay=weight_decay)
        step += 1
        train_module(module, weights, data.x_train, data.y_train, config, seed=(seed * 1_000_003 + step) % (2**31 - 1),
                     participant=Address("0x" + "00" * 20), round_id=RoundId(step), base_model_digest=ZERO_DIGEST)
        weights = get_weights(module)  # the trained model itself, not global + rounded delta
        done += epochs
        scored = build_model(spec, 0)
        set_weights(scored, weights)
        finite = all(np.isfinite(v).all() for v in weights.values())
        metrics = evaluate(scored, data.x_test, data.y_test) if finite else {"accuracy": float("nan"), "loss": float("nan")}
        row = {"epochs": float(done), **{k: float(v) for k, v in metrics.items()}}
        history.append(row)
        if on_chunk is not None:
            on_chunk(row)
    return CentralisedResult(tuple(history), time.perf_counter() - started)

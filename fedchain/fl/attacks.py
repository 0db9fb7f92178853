"""Attacks, for evaluating robust aggregation only. Nothing in the federation flow imports this.

Update attacks rewrite an honest :class:`~fedchain.fl.records.ClientUpdate` (its model
tensors; SCAFFOLD control deltas and extras are left as they are):

* :func:`sign_flip` - ``-factor * update``;
* :func:`scaling` - ``factor * update``;
* :func:`gaussian_noise` - ``update + N(0, sigma^2)``, seeded.

Data attacks rewrite a participant's training data before local training:

* :func:`label_flip` - label ``k`` becomes ``num_classes - 1 - k``;
* :func:`add_backdoor` - stamp a bright square in the bottom-right corner of a fraction
  of the images and relabel them to a target class; :func:`backdoor_success_rate`
  measures how often a model sends triggered test images to the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from fedchain.errors import ConfigError
from fedchain.fl.records import CONTROL_PREFIX, WIRE_DTYPE, ClientUpdate, Weights

UPDATE_ATTACKS = ("sign_flip", "scaling", "gaussian")
DATA_ATTACKS = ("label_flip", "backdoor")


def _map_model_tensors(update: ClientUpdate, fn: Callable[[str, np.ndarray], np.ndarray]) -> ClientUpdate:
    tensors: Weights = {}
    for name in sorted(update.tensors):
        arr = update.tensors[name]
        tensors[name] = arr if name.startswith(CONTROL_PREFIX) else fn(name, arr).astype(WIRE_DTYPE)
    return replace(update, tensors=tensors)


def sign_flip(update: ClientUpdate, factor: float = 1.0) -> ClientUpdate:
    """Send ``-factor`` times the honest update."""
    if not factor > 0:
        raise ConfigError(f"sign_flip factor must be > 0, got {factor}")
    return _map_model_tensors(update, lambda _n, a: -factor * a.astype(np.float64))


def scaling(update: ClientUpdate, factor: float) -> ClientUpdate:
    """Send ``factor`` times the honest update (model replacement / boosting)."""
    if not math.isfinite(factor):
        raise ConfigError(f"scaling factor must be finite, got {factor}")
    return _map_model_tensors(update, lambda _n, a: factor * a.astype(np.float64))


def gaussian_noise(update: ClientUpdate, sigma: float, seed: int) -> ClientUpdate:
    """Add seeded N(0, sigma^2) noise to every coordinate of the update."""
    if not sigma >= 0:
        raise ConfigError(f"gaussian sigma must be >= 0, got {sigma}")
    rng = np.random.default_rng(seed)
    return _map_model_tensors(update, lambda _n, a: a.astype(np.float64) + rng.normal(0.0, sigma, size=a.shape))


@dataclass(frozen=True)
class UpdateAttack:
    """A configured update attack: ``kind`` in :data:`UPDATE_ATTACKS` and its strength."""

    kind: str
    factor: float = 1.0
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in UPDATE_ATTACKS:
            raise ConfigError(f"unknown update attack {self.kind!r}; expected one of {', '.join(UPDATE_ATTACKS)}")

    def apply(self, update: ClientUpdate, seed: int) -> ClientUpdate:
        if self.kind == "sign_flip":
            return sign_flip(update, self.factor)
        if self.kind == "scaling":
            return scaling(update, self.factor)
        return gaussian_noise(update, self.sigma, seed)


def label_flip(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Every label ``k`` becomes ``num_classes - 1 - k``."""
    y = np.asarray(y)
    if num_classes < 2:
        raise ConfigError(f"label_flip needs at least 2 classes, got {num_classes}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ConfigError(f"labels outside [0, {num_classes}) cannot be flipped")
    return (num_classes - 1 - y).astype(y.dtype)


def stamp_trigger(x: np.ndarray, size: int = 3, value: float | None = None) -> np.ndarray:
    """A copy of images ``x`` (n, c, h, w) with a ``size``-square of ``value`` in the bottom-right corner.

    ``value`` defaults to the largest value in ``x`` (the brightest pixel).
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ConfigError(f"a pixel backdoor needs images shaped (n, c, h, w), got shape {x.shape}")
    if not 1 <= size <= min(x.shape[2], x.shape[3]):
        raise ConfigError(f"trigger size {size} does not fit images of {x.shape[2]}x{x.shape[3]}")
    out = np.array(x, copy=True)
    out[:, :, -size:, -size:] = float(x.max()) if value is None else value
    return out


def add_backdoor(
    x: np.ndarray, y: np.ndarray, *, target: int, fraction: float, seed: int, size: int = 3, value: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Poison ``fraction`` of the samples (seeded choice): stamp the trigger, relabel to ``target``."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"backdoor fraction must be in [0, 1], got {fraction}")
    x = np.asarray(x)
    y = np.asarray(y)
    count = int(round(fraction * len(x)))
    chosen = np.sort(np.random.default_rng(seed).choice(len(x), size=count, replace=False))
    trigger_value = float(x.max()) if value is None else value
    x_out = np.array(x, copy=True)
    y_out = np.array(y, copy=True)
    if count:
        x_out[chosen] = stamp_trigger(x[chosen], size, trigger_value)
        y_out[chosen] = target
    return x_out, y_out


def backdoor_success_rate(
    model: nn.Module, x: np.ndarray, y: np.ndarray, *, target: int, size: int = 3, value: float | None = None
) -> float:
    """Share of test images not of class ``target`` that the model puts in ``target`` once triggered."""
    mask = np.asarray(y) != target
    if not mask.any():
        raise ConfigError(f"no test samples outside the target class {target}")
    triggered = stamp_trigger(np.asarray(x)[mask], size, value)
    model.eval()
    hits = 0
    with torch.no_grad():
        for start in range(0, len(triggered), 512):
            logits = model(torch.as_tensor(triggered[start : start + 512], dtype=torch.float32))
            hits += int((logits.argmax(dim=1) == target).sum())
    return hits / int(mask.sum())

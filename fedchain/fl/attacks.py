"""Attacks, for evaluating robust aggregation only: a participant attacks only when told to
(``--attack``), to demonstrate the screening rules and the audit trail. :class:`AttackSpec` is the
one attack vocabulary, in memory and on the ledger alike.

Update attacks rewrite an honest :class:`~fedchain.fl.records.ClientUpdate` (its model
tensors; SCAFFOLD control deltas and extras are left as they are):

* :func:`sign_flip` - ``-factor * update``;
* :func:`scaling` - ``factor * update``;
* :func:`gaussian_noise` - ``update + N(0, sigma^2)``, seeded;
* :func:`free_ride` - the unchanged base model: every model delta is zero (the participant
  trains nothing and claims its samples, a free-rider the contribution scores must not pay).

Data attacks rewrite a participant's training data before local training:

* :func:`label_flip` - label ``k`` becomes ``num_classes - 1 - k``;
* :func:`add_backdoor` - stamp a bright square in the bottom-right corner of a fraction
  of the images and relabel them to a target class; :func:`backdoor_success_rate`
  measures how often a model sends triggered test images to the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from fedchain.errors import ConfigError
from fedchain.fl.records import CONTROL_PREFIX, WIRE_DTYPE, ClientUpdate, Weights

UPDATE_ATTACKS = ("sign_flip", "scaling", "noise", "free_ride", "skip_noise")
"""``skip_noise``: under client-level DP, clip the update but leave out the noise share the policy asks for
(the privacy wrapper reads the kind; the update itself is not changed here)."""
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


def free_ride(update: ClientUpdate) -> ClientUpdate:
    """Send the unchanged base model: a zero delta for every model tensor."""
    return _map_model_tensors(update, lambda _n, a: np.zeros(a.shape, dtype=np.float64))


ATTACK_KINDS = UPDATE_ATTACKS + DATA_ATTACKS
ATTACK_SYNTAX = (
    "sign_flip[:factor], scaling[:factor], noise[:sigma], free_ride, skip_noise, label_flip or backdoor[:target_class]"
)
BACKDOOR_FRACTION = 0.5  # share of a backdoor attacker's samples stamped with the trigger
_DEFAULT_STRENGTH = {"sign_flip": 1.0, "scaling": 10.0, "noise": 1.0, "backdoor": 0.0}


@dataclass(frozen=True)
class AttackSpec:
    """One evaluation-only attack: ``kind`` in :data:`ATTACK_KINDS` and its strength.

    The one attack vocabulary of fedchain, written ``KIND[:STRENGTH]`` (:data:`ATTACK_SYNTAX`):
    the factor of ``sign_flip`` and ``scaling``, the sigma of ``noise``, the target class of
    ``backdoor``; ``label_flip`` and ``free_ride`` take none. Update attacks rewrite the trained update, data
    attacks poison the local data before training.
    """

    kind: str
    strength: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ATTACK_KINDS:
            raise ConfigError(f"unknown attack {self.kind!r}; expected {ATTACK_SYNTAX}")
        if self.kind in ("label_flip", "free_ride") and self.strength is not None:
            raise ConfigError(f"invalid attack: {self.kind} takes no argument")
        if self.strength is not None and not math.isfinite(self.strength):
            raise ConfigError(f"invalid attack {self.kind}: strength must be finite, got {self.strength}")
        if self.kind == "backdoor" and self.strength is not None and (self.strength < 0 or self.strength != int(self.strength)):
            raise ConfigError(f"invalid attack backdoor: target class must be a non-negative integer, got {self.strength}")

    @classmethod
    def parse(cls, text: str) -> AttackSpec:
        """``KIND[:STRENGTH]``, e.g. ``scaling:10``, ``noise:0.5``, ``backdoor:2``, ``label_flip``."""
        kind, sep, arg = text.strip().partition(":")
        if not sep:
            return cls(kind)
        try:
            value = float(arg)
        except ValueError as err:
            raise ConfigError(f"invalid attack {text!r}: {arg!r} is not a number") from err
        return cls(kind, value)

    def to_text(self) -> str:
        """The ``KIND[:STRENGTH]`` form :meth:`parse` reads back."""
        if self.strength is None:
            return self.kind
        value = int(self.strength) if self.strength == int(self.strength) else self.strength
        return f"{self.kind}:{value}"

    @property
    def on_data(self) -> bool:
        """Whether the attack poisons the training data (else the trained update)."""
        return self.kind in DATA_ATTACKS

    def _value(self) -> float:
        return self.strength if self.strength is not None else _DEFAULT_STRENGTH.get(self.kind, 0.0)

    def poison_update(self, update: ClientUpdate, seed: int) -> ClientUpdate:
        """The update this attacker sends instead of ``update`` (data attacks send it unchanged)."""
        if self.kind == "sign_flip":
            return sign_flip(update, self._value())
        if self.kind == "scaling":
            return scaling(update, self._value())
        if self.kind == "noise":
            return gaussian_noise(update, self._value(), seed=seed)
        if self.kind == "free_ride":
            return free_ride(update)
        return update

    def poison_data(self, x: np.ndarray, y: np.ndarray, *, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The data this attacker trains on instead of ``(x, y)`` (update attacks train on it unchanged)."""
        if self.kind == "label_flip":
            return x, label_flip(y, num_classes)
        if self.kind == "backdoor":
            target = int(self._value())
            if not 0 <= target < num_classes:
                raise ConfigError(f"invalid attack {self.to_text()!r}: target class {target} is not in [0, {num_classes})")
            return add_backdoor(x, y, target=target, fraction=BACKDOOR_FRACTION, seed=seed)
        return x, y


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

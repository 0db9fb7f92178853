"""Model specs and the models they build.

A :class:`ModelSpec` fully determines an architecture; its digest goes on chain with
the task. :func:`build_model` is deterministic: the same spec and seed give
bit-identical parameters on every run, without touching the global torch RNG.
Weights cross module boundaries as ``dict[str, np.ndarray]`` (float32, sorted names).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from fedchain.codec.canonical import canonical_json, sha256_digest
from fedchain.errors import ConfigError, DataSchemaError, TrainingError
from fedchain.types import Digest

if TYPE_CHECKING:
    from fedchain.fl.datasets import Dataset

__all__ = [
    "ARCHS",
    "MODEL_SPEC_VERSION",
    "ModelSpec",
    "build_model",
    "default_model_spec",
    "evaluate",
    "get_weights",
    "set_weights",
    "num_parameters",
]

ARCHS = ("logreg", "mlp", "cnn")
MODEL_SPEC_VERSION = 1


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a task's model.

    * ``logreg``: flatten, one linear layer to ``num_classes`` logits (softmax regression).
    * ``mlp``: flatten, ``Linear -> ReLU`` per entry of ``hidden``, linear head.
    * ``cnn``: per entry of ``channels`` a ``Conv(kernel_size, same padding) -> ReLU ->
      MaxPool(2)`` block, flatten, ``Linear -> ReLU`` per entry of ``hidden``, linear head.
      ``input_shape`` is ``(channels, height, width)``, e.g. ``(1, 28, 28)`` or ``(1, 8, 8)``.
    """

    arch: str
    input_shape: tuple[int, ...]
    num_classes: int
    hidden: tuple[int, ...] = ()
    channels: tuple[int, ...] = ()
    kernel_size: int = 3
    version: int = MODEL_SPEC_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        problems = []
        if self.arch not in ARCHS:
            problems.append(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if not self.input_shape or any(d <= 0 for d in self.input_shape):
            problems.append(f"input_shape must be positive, got {self.input_shape}")
        if self.num_classes < 2:
            problems.append(f"num_classes must be >= 2, got {self.num_classes}")
        if any(h <= 0 for h in self.hidden) or any(c <= 0 for c in self.channels):
            problems.append("hidden sizes and channels must be positive")
        if self.arch == "logreg" and (self.hidden or self.channels):
            problems.append("logreg takes no hidden sizes or channels")
        if self.arch == "mlp" and self.channels:
            problems.append("mlp takes no channels")
        if self.arch == "cnn":
            if len(self.input_shape) != 3:
                problems.append(f"cnn needs input_shape (channels, height, width), got {self.input_shape}")
            elif not self.channels:
                problems.append("cnn needs at least one conv channel count")
            else:
                _, h, w = self.input_shape
                for _ in self.channels:
                    h, w = h // 2, w // 2
                if h < 1 or w < 1:
                    problems.append(f"{len(self.channels)} pooling blocks shrink {self.input_shape[1:]} below 1x1")
            if self.kernel_size < 1 or self.kernel_size % 2 == 0:
                problems.append(f"kernel_size must be odd and positive, got {self.kernel_size}")
        if self.version != MODEL_SPEC_VERSION:
            problems.append(f"version {self.version} is not supported (want {MODEL_SPEC_VERSION})")
        if problems:
            raise ConfigError("invalid model spec: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON object (what :meth:`to_json` writes canonically)."""
        return {
            "arch": self.arch,
            "input_shape": list(self.input_shape),
            "num_classes": int(self.num_classes),
            "hidden": list(self.hidden),
            "channels": list(self.channels),
            "kernel_size": int(self.kernel_size),
            "version": int(self.version),
        }

    def to_json(self) -> str:
        """Canonical JSON text."""
        return canonical_json(self.to_dict()).decode("utf-8")

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        """The spec from a JSON object; ConfigError on unknown, missing or malformed keys."""
        if not isinstance(data, dict):
            raise ConfigError(f"model spec must be a JSON object, got {type(data).__name__}")
        known = {"arch", "input_shape", "num_classes", "hidden", "channels", "kernel_size", "version"}
        unknown = sorted(set(data) - known)
        missing = sorted({"arch", "input_shape", "num_classes"} - set(data))
        if unknown or missing:
            raise ConfigError(f"model spec: missing keys {missing}, unknown keys {unknown}")
        try:
            return cls(
                arch=str(data["arch"]),
                input_shape=tuple(int(d) for d in data["input_shape"]),
                num_classes=int(data["num_classes"]),
                hidden=tuple(int(h) for h in data.get("hidden", ())),
                channels=tuple(int(c) for c in data.get("channels", ())),
                kernel_size=int(data.get("kernel_size", 3)),
                version=int(data.get("version", MODEL_SPEC_VERSION)),
            )
        except (TypeError, ValueError) as err:
            raise ConfigError(f"model spec has a malformed field: {err}") from err

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        """The spec from JSON text; ConfigError when it is not valid JSON or not a valid spec."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise ConfigError(f"model spec is not valid JSON: {err}") from err
        return cls.from_dict(data)

    def digest(self) -> Digest:
        """SHA-256 of the canonical JSON: the model-spec digest recorded on chain."""
        return sha256_digest(canonical_json(self.to_dict()))


def _build(spec: ModelSpec) -> nn.Module:
    layers: list[nn.Module] = []
    if spec.arch == "cnn":
        c, h, w = spec.input_shape
        for out in spec.channels:
            layers += [nn.Conv2d(c, out, spec.kernel_size, padding=spec.kernel_size // 2), nn.ReLU(), nn.MaxPool2d(2)]
            c, h, w = out, h // 2, w // 2
        width = c * h * w
    else:
        width = math.prod(spec.input_shape)
    layers.append(nn.Flatten())
    for size in spec.hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, spec.num_classes))
    return nn.Sequential(*layers)


def build_model(spec: ModelSpec, seed: int) -> nn.Module:
    """Build ``spec`` with parameters drawn from ``seed`` (PyTorch's default initialisers).

    Deterministic: same spec and seed -> bit-identical parameters. The global torch RNG
    state is left as it was.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"model seed must be a non-negative integer, got {seed!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = _build(spec)
    return model.to(dtype=torch.float32)


def num_parameters(model: nn.Module) -> int:
    """The number of scalar parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def get_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's state (parameters and buffers) as float32 arrays, names sorted."""
    state = model.state_dict()
    return {
        name: state[name].detach().cpu().numpy().astype(np.float32, copy=True) for name in sorted(state)
    }


def set_weights(model: nn.Module, weights: Mapping[str, np.ndarray]) -> None:
    """Load ``weights`` into ``model``; names and shapes must match exactly.

    Raises TrainingError naming missing/unexpected entries or the first shape mismatch.
    """
    state = model.state_dict()
    missing = sorted(set(state) - set(weights))
    unexpected = sorted(set(weights) - set(state))
    if missing or unexpected:
        raise TrainingError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
    new_state = {}
    for name in sorted(state):
        value = np.asarray(weights[name])
        if tuple(value.shape) != tuple(state[name].shape):
            raise TrainingError(
                f"weights do not fit the model: {name} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(state[name].shape)}"
            )
        if not np.issubdtype(value.dtype, np.floating) and not np.issubdtype(value.dtype, np.integer):
            raise TrainingError(f"weights do not fit the model: {name} has dtype {value.dtype}")
        new_state[name] = torch.from_numpy(np.array(value, dtype=np.float32, copy=True)).to(state[name].dtype)
    model.load_state_dict(new_state, strict=True)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, *, batch_size: int = 2048) -> dict[str, float]:
    """Accuracy, mean cross-entropy loss, sample count and, for two classes, ROC AUC.

    ``auc`` is the AUC of the class-1 probability; it is left out when ``y`` holds a
    single class (undefined).
    """
    from sklearn.metrics import roc_auc_score

    if len(x) != len(y) or len(y) == 0:
        raise DataSchemaError(f"evaluate needs equally many (>0) samples and labels, got {len(x)} and {len(y)}")
    was_training = model.training
    model.eval()
    logits_parts = []
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32))
                logits_parts.append(model(xb))
    finally:
        model.train(was_training)
    logits = torch.cat(logits_parts).to(torch.float64)
    target = torch.from_numpy(np.asarray(y, dtype=np.int64))
    if int(target.min()) < 0 or int(target.max()) >= logits.shape[1]:
        raise DataSchemaError(f"labels outside 0..{logits.shape[1] - 1}")
    loss = float(nn.functional.cross_entropy(logits, target).item())
    pred = logits.argmax(dim=1)
    out = {
        "accuracy": float((pred == target).to(torch.float64).mean().item()),
        "loss": loss,
        "n": float(len(y)),
    }
    if logits.shape[1] == 2 and len(np.unique(y)) == 2:
        prob = torch.softmax(logits, dim=1)[:, 1].numpy()
        out["auc"] = float(roc_auc_score(np.asarray(y), prob))
    return out


_DEFAULTS: dict[str, dict[str, Any]] = {
    "breast_cancer": {"arch": "logreg"},
    "german_credit": {"arch": "mlp", "hidden": (32,)},
    "diabetes": {"arch": "mlp", "hidden": (16,)},
    "digits": {"arch": "cnn", "channels": (8, 16), "hidden": (32,)},
    "mnist": {"arch": "cnn", "channels": (16, 32), "hidden": (64,)},
}


def default_model_spec(dataset: str | Dataset) -> ModelSpec:
    """The model used for ``dataset`` unless a task says otherwise."""
    if isinstance(dataset, str):
        from fedchain.fl.datasets import load_dataset

        dataset = load_dataset(dataset)
    extra = _DEFAULTS.get(dataset.name, {"arch": "mlp", "hidden": (64,)})
    if extra["arch"] == "cnn" and len(dataset.input_shape) != 3:
        extra = {"arch": "mlp", "hidden": (64,)}
    return ModelSpec(input_shape=dataset.input_shape, num_classes=dataset.num_classes, **extra)

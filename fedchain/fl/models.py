"""Model specs and the models they build.

A :class:`ModelSpec` fully determines an architecture; its digest goes on chain with
the task. :func:`build_model` is deterministic: the same spec and seed give
bit-identical parameters on every run, without touching the global torch RNG.
Weights cross module boundaries as ``dict[str, np.ndarray]`` (float32, sorted names).

A task may bring its own model (arch ``custom``): a Python file defining a factory that returns
a ``torch.nn.Module``. The spec records the SHA-256 of the file's bytes and its CID in the blob
store, so the model-spec digest on chain covers the source. :func:`build_model` runs a custom
model's source only once it is registered with :func:`register_model_source` (this process trusts
it: it configured the task, replays it, or its operator named the digest with ``--trust-model``);
otherwise it raises :class:`~fedchain.errors.ModelTrustError` and runs nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import random
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from fedchain.codec.canonical import canonical_json, sha256_digest
from fedchain.errors import ConfigError, DataSchemaError, ModelTrustError, TrainingError
from fedchain.types import Digest, digest_hex, parse_digest

if TYPE_CHECKING:
    from fedchain.fl.datasets import Dataset

__all__ = [
    "ARCHS",
    "MODEL_SPEC_VERSION",
    "TORCH_RNG_LOCK",
    "ModelSpec",
    "build_model",
    "custom_model_spec",
    "default_model_spec",
    "is_model_source_registered",
    "model_source_digest",
    "register_model_source",
    "evaluate",
    "get_weights",
    "set_weights",
    "num_parameters",
]

ARCHS = ("logreg", "mlp", "cnn", "custom")
MODEL_SPEC_VERSION = 1

_PARAM_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a task's model.

    * ``logreg``: flatten, one linear layer to ``num_classes`` logits (softmax regression).
    * ``mlp``: flatten, ``Linear -> ReLU`` per entry of ``hidden``, linear head.
    * ``cnn``: per entry of ``channels`` a ``Conv(kernel_size, same padding) -> ReLU ->
      MaxPool(2)`` block, flatten, ``Linear -> ReLU`` per entry of ``hidden``, linear head.
      ``input_shape`` is ``(channels, height, width)``, e.g. ``(1, 28, 28)`` or ``(1, 8, 8)``.
    * ``custom``: ``factory(**params)`` of the Python file whose SHA-256 is ``source_digest``
      (0x-hex) and whose CID in the blob store is ``source_cid`` ("" until it is stored); its
      forward maps a batch of ``input_shape`` to ``num_classes`` logits. ``params`` are JSON
      scalars or flat lists of them (passed as lists). These four fields are in the JSON (and the
      digest) of a custom spec only, so the builtin archs' digests are as they always were.
    """

    arch: str
    input_shape: tuple[int, ...]
    num_classes: int
    hidden: tuple[int, ...] = ()
    channels: tuple[int, ...] = ()
    kernel_size: int = 3
    version: int = MODEL_SPEC_VERSION
    source_digest: str = ""
    source_cid: str = ""
    factory: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        problems = self._custom_problems()
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

    def _custom_problems(self) -> list[str]:
        """Normalise the custom fields (digest to 0x-lowercase hex, params to a sorted copy, lists as
        tuples; a plain dict, so that specs copy, pickle and ``asdict`` as before) and list what is wrong."""
        problems: list[str] = []
        if not isinstance(self.params, Mapping):
            problems.append(f"params must be an object, got {type(self.params).__name__}")
            object.__setattr__(self, "params", {})
        else:
            params: dict[str, Any] = {}
            for key, value in sorted(self.params.items(), key=lambda kv: str(kv[0])):
                if not isinstance(key, str) or not key.isidentifier():
                    problems.append(f"param name {key!r} is not a Python identifier")
                elif isinstance(value, (list, tuple)) and all(isinstance(v, _PARAM_SCALARS) for v in value):
                    params[key] = tuple(value)
                elif isinstance(value, _PARAM_SCALARS):
                    params[key] = value
                else:
                    problems.append(f"param {key!r} must be a JSON scalar or a flat list of them, got {value!r}")
                if isinstance(value, float) and not math.isfinite(value):
                    problems.append(f"param {key!r} is {value!r}; NaN and Infinity are not allowed")
            object.__setattr__(self, "params", params)
        if self.arch != "custom":
            if self.source_digest or self.source_cid or self.factory or self.params:
                problems.append(f"{self.arch} takes no source_digest, source_cid, factory or params (custom only)")
            return problems
        try:
            object.__setattr__(self, "source_digest", digest_hex(parse_digest(str(self.source_digest))).lower())
        except ValueError as err:
            problems.append(f"source_digest must be the SHA-256 of the model file (64 hex digits): {err}")
        if not isinstance(self.source_cid, str):
            problems.append(f"source_cid must be a string, got {self.source_cid!r}")
        if not isinstance(self.factory, str) or not self.factory.isidentifier():
            problems.append(f"factory must name a function of the model file, got {self.factory!r}")
        if self.hidden or self.channels or self.kernel_size != 3:
            problems.append("custom takes no hidden sizes, channels or kernel_size (its params go to the factory)")
        return problems

    def __hash__(self) -> int:
        """Hash of the canonical JSON (params is a mapping)."""
        return hash(self.to_json())

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON object (what :meth:`to_json` writes canonically)."""
        if self.arch == "custom":
            return {
                "arch": self.arch,
                "input_shape": list(self.input_shape),
                "num_classes": int(self.num_classes),
                "source_digest": self.source_digest,
                "source_cid": self.source_cid,
                "factory": self.factory,
                "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
                "version": int(self.version),
            }
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
        custom = data.get("arch") == "custom"
        if custom:
            known = {"arch", "input_shape", "num_classes", "source_digest", "source_cid", "factory", "params", "version"}
            required = {"arch", "input_shape", "num_classes", "source_digest", "source_cid", "factory"}
        else:
            known = {"arch", "input_shape", "num_classes", "hidden", "channels", "kernel_size", "version"}
            required = {"arch", "input_shape", "num_classes"}
        unknown = sorted(set(data) - known)
        missing = sorted(required - set(data))
        if unknown or missing:
            raise ConfigError(f"model spec: missing keys {missing}, unknown keys {unknown}")
        try:
            if custom:
                for key in ("source_digest", "source_cid", "factory"):
                    if not isinstance(data[key], str):
                        raise ConfigError(f"model spec: {key} must be a string, got {data[key]!r}")
                return cls(
                    arch="custom",
                    input_shape=tuple(int(d) for d in data["input_shape"]),
                    num_classes=int(data["num_classes"]),
                    source_digest=data["source_digest"],
                    source_cid=data["source_cid"],
                    factory=data["factory"],
                    params=data.get("params", {}),
                    version=int(data.get("version", MODEL_SPEC_VERSION)),
                )
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
    state is left as it was. A custom spec is built from its registered source, executed in
    a fresh module namespace for each build (torch, ``random`` and numpy's global RNG seeded
    with ``seed`` meanwhile, then restored); ModelTrustError, without running anything, when
    its source is not registered (:func:`register_model_source`).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"model seed must be a non-negative integer, got {seed!r}")
    if spec.arch == "custom":
        with _SOURCES_LOCK:
            source = _SOURCES.get(spec.source_digest)
        if source is None:
            raise ModelTrustError(spec.source_digest, spec.source_cid)
        return _build_custom(spec, source, f"<model {spec.source_digest}>", int(seed))
    with TORCH_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = _build(spec)
    return model.to(dtype=torch.float32)


# --- custom models ----------------------------------------------------------------------------

TORCH_RNG_LOCK = threading.RLock()
"""Held by whatever seeds torch's process-wide RNG (model builds, local training): agents in threads of one
process then draw exactly what each would draw alone in its own process."""

_SOURCES: dict[str, bytes] = {}
_SOURCES_LOCK = threading.Lock()


def model_source_digest(source: bytes) -> str:
    """The ``source_digest`` of a model file's bytes: 0x-prefixed SHA-256 hex."""
    return digest_hex(sha256_digest(bytes(source)))


def register_model_source(source: bytes) -> str:
    """Trust ``source`` (a model file's bytes) in this process, so that :func:`build_model` may run
    the custom specs naming its digest; returns the digest."""
    data = bytes(source)
    digest = model_source_digest(data)
    with _SOURCES_LOCK:
        _SOURCES[digest] = data
    return digest


def is_model_source_registered(digest: str) -> bool:
    """Whether a source with ``digest`` (0x-hex SHA-256) is registered in this process."""
    with _SOURCES_LOCK:
        return digest.lower() in _SOURCES


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch, ``random`` and numpy's global RNG with ``seed``; restore all three afterwards."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    with TORCH_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _load_factory(source: bytes, where: str, factory: str, name: str) -> Callable[..., Any]:
    """Execute ``source`` in a fresh module ``name`` (put in ``sys.modules``; the caller removes it) and
    return its ``factory``; ConfigError naming ``where`` when it is not UTF-8, does not compile, fails
    at import or defines no such function."""
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"model file {where} is not UTF-8 text: {err}") from err
    try:
        code = compile(text, where, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as err:
        line = f" (line {err.lineno})" if isinstance(err, SyntaxError) and err.lineno else ""
        raise ConfigError(f"model file {where} does not compile{line}: {err}") from err
    module = types.ModuleType(name)
    module.__file__ = where
    try:
        sys.modules[module.__name__] = module  # what dataclasses, typing and pickle look the module up by
        exec(code, module.__dict__)
    except Exception as err:  # the file's own code: any failure is the file's, reported as such
        raise ConfigError(f"model file {where} fails at import: {type(err).__name__}: {err}") from err
    fn = module.__dict__.get(factory)
    if fn is None:
        raise ConfigError(f"model file {where} defines no factory {factory!r}")
    if not callable(fn):
        raise ConfigError(f"model file {where}: {factory!r} is a {type(fn).__name__}, not a function")
    return fn  # type: ignore[no-any-return]


_MODULE_IDS = itertools.count()


def _module_name() -> str:
    """A module name no other build uses (builds may run in several threads at once)."""
    return f"fedchain_custom_model_{next(_MODULE_IDS)}"


def _build_custom(spec: ModelSpec, source: bytes, where: str, seed: int) -> nn.Module:
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.params.items()}
    name = _module_name()
    try:
        with _seeded(seed):
            fn = _load_factory(source, where, spec.factory, name)
            try:
                model = fn(**params)
            except Exception as err:  # the factory's own code
                raise ConfigError(
                    f"model file {where}: {spec.factory}(**{params}) failed: {type(err).__name__}: {err}"
                ) from err
    finally:  # the build's module is its own: the next build executes the source afresh
        sys.modules.pop(name, None)
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model file {where}: {spec.factory}(**{params}) returned a {type(model).__name__}, not a torch.nn.Module"
        )
    return model.to(dtype=torch.float32)


def custom_model_spec(
    path: str | Path,
    factory: str,
    params: Mapping[str, Any],
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    source_cid: str = "",
) -> tuple[ModelSpec, bytes]:
    """The custom spec of the model file ``path`` and the file's bytes, validated: the file compiles
    and defines ``factory``; ``factory(**params)`` is a ``torch.nn.Module`` with parameters, built
    bit-identically twice from one seed; its forward maps a batch of ``input_shape`` to
    ``num_classes`` float logits. ConfigError naming the file and what is wrong otherwise.

    Running the file is the point (the caller configures a task with it), so its source is
    registered (trusted) in this process. ``source_cid`` is its CID once stored ("" before:
    :func:`fedchain.protocol.task.store_model_source` stores it and fills it in).
    """
    where = str(path)
    try:
        source = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"model file {where} cannot be read: {err.strerror or err}") from err
    try:
        spec = ModelSpec(
            arch="custom", input_shape=tuple(input_shape), num_classes=int(num_classes),
            source_digest=model_source_digest(source), source_cid=source_cid, factory=factory, params=params,
        )
    except (ConfigError, TypeError, ValueError) as err:
        raise ConfigError(f"model file {where}: {err}") from err
    first = _build_custom(spec, source, where, 0)
    if num_parameters(first) == 0:
        raise ConfigError(f"model file {where}: {factory}() builds a module without parameters: nothing to train")
    weights, again = get_weights(first), get_weights(_build_custom(spec, source, where, 0))
    if list(weights) != list(again) or any(weights[k].tobytes() != again[k].tobytes() for k in weights):
        raise ConfigError(
            f"model file {where}: two builds of {factory}() with the same seed give different parameters; draw "
            "randomness only from torch's (or random's, numpy's global) RNG, which the build seeds"
        )
    batch = torch.zeros((2, *spec.input_shape), dtype=torch.float32)
    first.eval()
    try:
        with torch.no_grad():
            out = first(batch)
    except Exception as err:  # the model's own forward
        raise ConfigError(
            f"model file {where}: forward on a batch of shape {tuple(batch.shape)} fails: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, spec.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"model file {where}: forward maps a batch of shape {tuple(batch.shape)} to {got}, not "
            f"{(2, spec.num_classes)} (one logit per class)"
        )
    if not out.is_floating_point():
        raise ConfigError(f"model file {where}: forward returns {out.dtype} logits, not floating point")
    register_model_source(source)
    return spec, source


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

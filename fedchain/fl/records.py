"""Typed records passed between local training, strategies and the federation loop.

``Weights`` maps tensor names (sorted) to numpy arrays; on the wire every tensor is
float32. What an update's tensors *mean* is explicit in :class:`UpdateKind`:

* ``DELTA``: ``local - global`` (FedAvg, FedProx, SCAFFOLD);
* ``NORMALIZED_DELTA``: ``(local - global) / ||a||_1`` with ``extras["tau"] = ||a||_1``
  (FedNova);
* ``QFFL``: ``F^q * L * (local - global)`` with ``extras["h"]`` the q-FFL curvature
  term (q-FedAvg).

Auxiliary tensors ride along in the same mapping under a name prefix: the SCAFFOLD
control-variate delta of tensor ``w`` is ``"cv/w"``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from types import MappingProxyType
from typing import Any

import numpy as np

from fedchain.codec.canonical import canonical_json, spec_digest
from fedchain.errors import ConfigError
from fedchain.types import Address, Digest, RoundId

Weights = dict[str, np.ndarray]
"""Tensor name -> array. Names sorted; float32 on the wire."""

ExtraValue = float | int | str

AGGREGATION_SOURCES: tuple[str, ...] = ("aggregate.py", "privacy.py", "records.py", "robust.py", "strategies.py")
"""The modules of ``fedchain.fl`` whose source the aggregation code digest covers."""


def normalise_source(data: bytes) -> bytes:
    """Source bytes with CRLF and CR line endings turned into LF."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def source_digest(sources: Mapping[str, bytes]) -> Digest:
    """Digest of named source files: the spec digest of ``{name: sha256 hex of normalised bytes}``."""
    return spec_digest({name: hashlib.sha256(normalise_source(data)).hexdigest() for name, data in sources.items()})


def _read_aggregation_sources() -> dict[str, bytes]:
    package = resources.files("fedchain.fl")
    try:
        return {name: package.joinpath(name).read_bytes() for name in AGGREGATION_SOURCES}
    except OSError as err:
        raise ConfigError(f"cannot read the aggregation source to compute its code digest: {err}") from err


AGGREGATION_CODE_DIGEST: Digest = source_digest(_read_aggregation_sources())
"""Digest of the source of the aggregation code (:data:`AGGREGATION_SOURCES`)."""

CODE_VERSION = f"fedchain-fl/1+{AGGREGATION_CODE_DIGEST.hex()}"
"""Version of the aggregation code: format version plus the source digest; part of the
aggregation config digest, so any change to the aggregation code changes that digest."""

CONTROL_PREFIX = "cv/"
"""Name prefix of SCAFFOLD control-variate deltas inside an update's tensors."""

WIRE_DTYPE = np.dtype(np.float32)


class UpdateKind(str, Enum):
    """What the model tensors of an update represent."""

    DELTA = "delta"
    NORMALIZED_DELTA = "normalized_delta"
    QFFL = "qffl"


def freeze_weights(weights: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """A read-only, name-sorted view over read-only copies of the arrays."""
    frozen: dict[str, np.ndarray] = {}
    for name in sorted(weights):
        arr = np.array(weights[name], copy=True)
        arr.setflags(write=False)
        frozen[name] = arr
    return MappingProxyType(frozen)


def split_tensors(tensors: Mapping[str, np.ndarray], prefix: str) -> tuple[Weights, Weights]:
    """Split ``tensors`` into (names without ``prefix``, names with ``prefix`` stripped of it)."""
    main: Weights = {}
    aux: Weights = {}
    for name in sorted(tensors):
        if name.startswith(prefix):
            aux[name[len(prefix) :]] = tensors[name]
        else:
            main[name] = tensors[name]
    return main, aux


@dataclass(frozen=True, eq=False)
class ClientUpdate:
    """One participant's contribution to one round."""

    participant: Address
    round_id: RoundId
    num_samples: int
    tensors: Mapping[str, np.ndarray]
    base_model_digest: Digest
    kind: UpdateKind = UpdateKind.DELTA
    extras: Mapping[str, ExtraValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tensors", freeze_weights(self.tensors))
        object.__setattr__(self, "extras", MappingProxyType(dict(sorted(self.extras.items()))))
        object.__setattr__(self, "kind", UpdateKind(self.kind))

    @property
    def model_tensors(self) -> Weights:
        """The tensors that map onto model weights (no auxiliary prefix)."""
        return split_tensors(self.tensors, CONTROL_PREFIX)[0]

    @property
    def control_tensors(self) -> Weights:
        """The SCAFFOLD control-variate delta, keyed by model tensor name (empty if none)."""
        return split_tensors(self.tensors, CONTROL_PREFIX)[1]


@dataclass(frozen=True)
class Rejection:
    """Why an update was left out of a round: the evidence governance can act on."""

    participant: Address
    rule: str
    reason: str

    def to_json(self) -> dict[str, str]:
        """``{"participant", "rule", "reason"}``, as evidence documents and reports write it."""
        return {"participant": self.participant, "rule": self.rule, "reason": self.reason}


@dataclass(frozen=True, eq=False)
class AggregationResult:
    """The outcome of aggregating one round."""

    weights: Mapping[str, np.ndarray]
    included: tuple[Address, ...]
    rejected: tuple[Rejection, ...]
    server_state: Mapping[str, np.ndarray]
    metrics: Mapping[str, ExtraValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", freeze_weights(self.weights))
        object.__setattr__(self, "server_state", freeze_weights(self.server_state))
        object.__setattr__(self, "metrics", MappingProxyType(dict(sorted(self.metrics.items()))))


@dataclass(frozen=True, eq=False)
class ClientConfig:
    """What a participant needs to train locally in one round (from ``configure_round``)."""

    algorithm: str
    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0
    mu: float = 0.0
    q: float = 0.0
    server_control: Mapping[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"unknown algorithm {self.algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
        if self.local_epochs < 1:
            raise ConfigError(f"local_epochs must be >= 1, got {self.local_epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive finite number, got {self.lr}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.mu < 0:
            raise ConfigError(f"mu must be >= 0, got {self.mu}")
        if self.q < 0:
            raise ConfigError(f"q must be >= 0, got {self.q}")
        if self.server_control is not None:
            object.__setattr__(self, "server_control", freeze_weights(self.server_control))


ALGORITHMS: tuple[str, ...] = ("fedavg", "fedprox", "scaffold", "fednova", "qfedavg")
"""Local training algorithms (FedAdam trains locally like FedAvg)."""


@dataclass(frozen=True, eq=False)
class ClientState:
    """What a participant keeps between rounds (SCAFFOLD: its control variate c_i)."""

    control: Mapping[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.control is not None:
            object.__setattr__(self, "control", freeze_weights(self.control))


def _checked_params(params: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """A read-only copy of ``params``; raise ConfigError unless it has a canonical JSON form."""
    plain = dict(params)
    try:
        canonical_json(plain)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err
    return MappingProxyType(plain)


@dataclass(frozen=True)
class RobustConfig:
    """A robust aggregation rule by name and parameters, e.g. ``RobustConfig("multi_krum", {"f": 3})``."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _checked_params(self.params, f"robust rule {self.name!r}"))

    def to_json(self) -> dict[str, Any]:
        """The rule as a JSON object (name and parameters)."""
        return {"name": self.name, "params": dict(self.params)}


@dataclass(frozen=True)
class StrategyConfig:
    """A strategy by name, its parameters and its robust rules (applied in order)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    robust: tuple[RobustConfig, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _checked_params(self.params, f"strategy {self.name!r}"))
        object.__setattr__(self, "robust", tuple(self.robust))

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON object the digest is computed over."""
        return {
            "code_version": CODE_VERSION,
            "strategy": self.name,
            "params": dict(self.params),
            "robust": [r.to_json() for r in self.robust],
        }

    def digest(self) -> Digest:
        """The aggregation config digest recorded on chain: sha256 of canonical JSON."""
        return spec_digest(self.to_json())

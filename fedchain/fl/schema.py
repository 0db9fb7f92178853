"""Data schemas: the contract every participant's data must meet.

A :class:`DataSchema` names the features, their dtype and shape, the value range of
every (normalised) feature, the label set and how raw values were normalised. Its
:meth:`DataSchema.digest` is what the chain records as a task's data schema; a
participant calls :meth:`DataSchema.validate` on its local data before training
("data standardisation"), and participant data files carry the digest so that a file
prepared for another schema is refused on load.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedchain.codec.canonical import canonical_json, sha256_digest
from fedchain.config import open_private, private_dir
from fedchain.errors import DataSchemaError
from fedchain.types import Digest, digest_hex

__all__ = [
    "SCHEMA_VERSION",
    "DataSchema",
    "save_client_data",
    "load_client_data",
    "read_client_data_digest",
]

SCHEMA_VERSION = 1
_CLIENT_FILE_KEYS = frozenset({"x", "y", "schema_digest"})


@dataclass(frozen=True)
class DataSchema:
    """What a task's data looks like after normalisation.

    ``value_ranges[i]`` is the ``(min, max)`` of flattened feature ``i`` over the
    whole prepared dataset; :meth:`validate` accepts values up to
    ``range_tolerance * max(max - min, 1)`` outside it, because a participant's own
    data, normalised with the shared statistics, may reach a little further.
    ``normalisation_stats[i]`` is ``(shift, scale)`` with
    ``normalised = (raw - shift) / scale`` (see :meth:`normalise`).
    """

    dataset: str
    feature_names: tuple[str, ...]
    dtype: str
    feature_shape: tuple[int, ...]
    value_ranges: tuple[tuple[float, float], ...]
    labels: tuple[int, ...]
    label_names: tuple[str, ...]
    normalisation: str
    normalisation_stats: tuple[tuple[float, float], ...]
    range_tolerance: float = 0.5
    version: int = SCHEMA_VERSION
    _digest: Digest | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = int(np.prod(self.feature_shape)) if self.feature_shape else 0
        problems = []
        if not self.dataset:
            problems.append("dataset name is empty")
        if n <= 0 or any(int(d) <= 0 for d in self.feature_shape):
            problems.append(f"feature_shape {self.feature_shape} is not a positive shape")
        if len(self.feature_names) != n:
            problems.append(f"{len(self.feature_names)} feature names for {n} features")
        if len(set(self.feature_names)) != len(self.feature_names):
            problems.append("feature names are not unique")
        if len(self.value_ranges) != n:
            problems.append(f"{len(self.value_ranges)} value ranges for {n} features")
        elif any(len(r) != 2 or not (float(r[0]) <= float(r[1])) for r in self.value_ranges):
            problems.append("every value range must be a pair (min, max) with min <= max")
        if len(self.normalisation_stats) != n:
            problems.append(f"{len(self.normalisation_stats)} normalisation stats for {n} features")
        elif any(len(s) != 2 or not float(s[1]) > 0 for s in self.normalisation_stats):
            problems.append("every normalisation stat must be a pair (shift, scale) with scale > 0")
        if self.dtype not in ("float32", "float64"):
            problems.append(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if not self.labels or len(set(self.labels)) != len(self.labels):
            problems.append("labels must be a non-empty set of distinct integers")
        if len(self.label_names) != len(self.labels):
            problems.append(f"{len(self.label_names)} label names for {len(self.labels)} labels")
        if not self.range_tolerance >= 0:
            problems.append(f"range_tolerance must be >= 0, got {self.range_tolerance}")
        if problems:
            raise DataSchemaError(f"invalid data schema for {self.dataset!r}: " + "; ".join(problems))

    # --- derived -----------------------------------------------------------------
    @property
    def num_features(self) -> int:
        """The number of features."""
        return len(self.feature_names)

    @property
    def num_classes(self) -> int:
        """The number of label classes."""
        return len(self.labels)

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The schema as a JSON object (what :meth:`to_json` writes canonically)."""
        return {
            "dataset": self.dataset,
            "feature_names": list(self.feature_names),
            "dtype": self.dtype,
            "feature_shape": [int(d) for d in self.feature_shape],
            "value_ranges": [[float(lo), float(hi)] for lo, hi in self.value_ranges],
            "labels": [int(c) for c in self.labels],
            "label_names": list(self.label_names),
            "normalisation": self.normalisation,
            "normalisation_stats": [[float(a), float(b)] for a, b in self.normalisation_stats],
            "range_tolerance": float(self.range_tolerance),
            "version": int(self.version),
        }

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys, no spaces)."""
        return canonical_json(self.to_dict()).decode("utf-8")

    @classmethod
    def from_dict(cls, data: Any) -> DataSchema:
        """The schema from a JSON object; DataSchemaError on unknown, missing or malformed keys."""
        if not isinstance(data, dict):
            raise DataSchemaError(f"data schema must be a JSON object, got {type(data).__name__}")
        expected = {
            "dataset", "feature_names", "dtype", "feature_shape", "value_ranges", "labels",
            "label_names", "normalisation", "normalisation_stats", "range_tolerance", "version",
        }  # fmt: skip
        missing = sorted(expected - set(data))
        unknown = sorted(set(data) - expected)
        if missing or unknown:
            raise DataSchemaError(f"data schema: missing keys {missing}, unknown keys {unknown}")
        if data["version"] != SCHEMA_VERSION:
            raise DataSchemaError(f"data schema version {data['version']!r} is not supported (want {SCHEMA_VERSION})")
        try:
            return cls(
                dataset=str(data["dataset"]),
                feature_names=tuple(str(s) for s in data["feature_names"]),
                dtype=str(data["dtype"]),
                feature_shape=tuple(int(d) for d in data["feature_shape"]),
                value_ranges=tuple((float(lo), float(hi)) for lo, hi in data["value_ranges"]),
                labels=tuple(int(c) for c in data["labels"]),
                label_names=tuple(str(s) for s in data["label_names"]),
                normalisation=str(data["normalisation"]),
                normalisation_stats=tuple((float(a), float(b)) for a, b in data["normalisation_stats"]),
                range_tolerance=float(data["range_tolerance"]),
                version=int(data["version"]),
            )
        except (TypeError, ValueError) as err:
            raise DataSchemaError(f"data schema has a malformed field: {err}") from err

    @classmethod
    def from_json(cls, text: str | bytes) -> DataSchema:
        """The schema from JSON text; DataSchemaError when it is not valid JSON or not a valid schema."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise DataSchemaError(f"data schema is not valid JSON: {err}") from err
        return cls.from_dict(data)

    def digest(self) -> Digest:
        """SHA-256 of the canonical JSON: the schema digest recorded on chain."""
        cached = self._digest
        if cached is None:
            cached = sha256_digest(canonical_json(self.to_dict()))
            object.__setattr__(self, "_digest", cached)
        return cached

    # --- data --------------------------------------------------------------------
    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """Apply ``(raw - shift) / scale`` per feature; returns ``dtype`` with the schema's shape."""
        arr = np.asarray(raw, dtype=np.float64)
        flat = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(1, -1)
        if flat.shape[1] != self.num_features:
            raise DataSchemaError(
                f"{self.dataset}: raw data has {flat.shape[1]} features per sample, schema has {self.num_features}"
            )
        stats = np.asarray(self.normalisation_stats, dtype=np.float64)
        out = (flat - stats[:, 0]) / stats[:, 1]
        return out.astype(self.dtype).reshape((flat.shape[0], *self.feature_shape))

    def validate(self, x: np.ndarray, y: np.ndarray) -> None:
        """Check that ``(x, y)`` conform to this schema; raise DataSchemaError naming the first problem.

        Checks, in order: array types, sample count, feature shape, dtype, NaN/Inf,
        value ranges (with tolerance), label dtype and unknown labels.
        """
        name = self.dataset
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            raise DataSchemaError(f"{name}: features and labels must be numpy arrays, got "
                                  f"{type(x).__name__} and {type(y).__name__}")
        if x.ndim < 1 or x.shape[0] == 0:
            raise DataSchemaError(f"{name}: no samples (feature array shape {x.shape})")
        if x.shape[1:] != tuple(self.feature_shape):
            raise DataSchemaError(
                f"{name}: wrong feature shape: expected {tuple(self.feature_shape)} per sample "
                f"({self.num_features} features), got {tuple(x.shape[1:])}"
            )
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataSchemaError(f"{name}: labels must be a 1-D array of {x.shape[0]} entries, got shape {y.shape}")
        if x.dtype != np.dtype(self.dtype):
            raise DataSchemaError(f"{name}: wrong feature dtype: expected {self.dtype}, got {x.dtype}")
        flat = x.reshape(x.shape[0], -1)
        finite = np.isfinite(flat)
        if not finite.all():
            row, col = (int(v) for v in np.argwhere(~finite)[0])
            count = int((~finite).sum())
            raise DataSchemaError(
                f"{name}: {count} NaN/Inf value(s); first at sample {row}, feature "
                f"{self.feature_names[col]!r} ({flat[row, col]})"
            )
        ranges = np.asarray(self.value_ranges, dtype=np.float64)
        span = np.maximum(ranges[:, 1] - ranges[:, 0], 1.0)
        lo = ranges[:, 0] - self.range_tolerance * span
        hi = ranges[:, 1] + self.range_tolerance * span
        outside = (flat < lo) | (flat > hi)
        if outside.any():
            row, col = (int(v) for v in np.argwhere(outside)[0])
            raise DataSchemaError(
                f"{name}: {int(outside.sum())} value(s) outside the schema's range; first: feature "
                f"{self.feature_names[col]!r} = {float(flat[row, col])!r} at sample {row}, allowed "
                f"[{lo[col]:.6g}, {hi[col]:.6g}] (is the data normalised with the shared statistics?)"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise DataSchemaError(f"{name}: labels must be integers, got dtype {y.dtype}")
        unknown = np.setdiff1d(np.unique(y), np.asarray(self.labels, dtype=np.int64))
        if unknown.size:
            raise DataSchemaError(
                f"{name}: unknown label(s) {[int(v) for v in unknown[:10]]}; the schema's labels are {list(self.labels)}"
            )


# --- participant data files ---------------------------------------------------------
def save_client_data(path: str | Path, x: np.ndarray, y: np.ndarray, schema: DataSchema) -> Path:
    """Validate ``(x, y)`` against ``schema`` and write them as ``.npz`` with the schema digest inside."""
    schema.validate(x, y)
    target = Path(path)
    private_dir(target.parent, tighten=False)  # participant data: the owner's only (0700 / 0600)
    digest = np.frombuffer(schema.digest(), dtype=np.uint8)
    with open_private(target) as fh:
        np.savez(fh, x=x, y=y.astype(np.int64, copy=False), schema_digest=digest)
    return target


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _not_an_npz(source: Path) -> str | None:
    """Why ``source`` is not an ``.npz`` archive, judged from its first bytes (None: it may be one)."""
    try:
        with source.open("rb") as fh:
            head = fh.read(8)
    except OSError as err:
        return f"cannot be read: {err}"
    if not head:
        return "is not a valid .npz: the file is empty"
    if head.startswith(_ZIP_MAGIC):
        return None
    if head.startswith(b"\x93NUMPY"):
        return "is not a valid .npz: it is a single .npy array, not an archive (numpy.savez) of x, y and schema_digest"
    if head[:1] == b"\x80":
        return "is not a valid .npz: it looks like a Python pickle, which is never loaded (it could run code)"
    return f"is not a valid .npz archive (a zip file written by numpy.savez): it starts with 0x{head.hex()}"


def _open_client_file(path: str | Path) -> dict[str, np.ndarray]:
    source = Path(path)
    if not source.is_file():
        raise DataSchemaError(f"participant data file {source} does not exist")
    problem = _not_an_npz(source)
    if problem is not None:
        raise DataSchemaError(f"participant data file {source} {problem}")
    try:
        with np.load(source, allow_pickle=False) as npz:
            keys = set(npz.files)
            if keys != _CLIENT_FILE_KEYS:
                raise DataSchemaError(
                    f"participant data file {source} must hold exactly {sorted(_CLIENT_FILE_KEYS)}, has {sorted(keys)}"
                )
            arrays = {}
            for k in sorted(keys):
                try:
                    arrays[k] = npz[k]
                except ValueError as err:  # numpy says "pickled data" for any member that is not an .npy
                    raise DataSchemaError(
                        f"participant data file {source}: member {k}.npy is not a plain numpy array "
                        f"(object arrays and pickles are refused; others fail to parse): {err}"
                    ) from err
    except DataSchemaError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataSchemaError(f"participant data file {source} is not a valid .npz: {err}") from err
    d = arrays["schema_digest"]
    if d.dtype != np.uint8 or d.shape != (32,):
        raise DataSchemaError(f"participant data file {source}: schema_digest must be 32 bytes")
    return arrays


def read_client_data_digest(path: str | Path) -> Digest:
    """The schema digest stored in a participant data file."""
    return Digest(_open_client_file(path)["schema_digest"].tobytes())


def load_client_data(path: str | Path, schema: DataSchema | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a participant data file written by :func:`save_client_data`.

    With ``schema`` given, the stored digest must equal ``schema.digest()`` and the
    data must validate against it; DataSchemaError otherwise.
    """
    arrays = _open_client_file(path)
    x, y = arrays["x"], arrays["y"]
    if schema is not None:
        stored = Digest(arrays["schema_digest"].tobytes())
        if stored != schema.digest():
            raise DataSchemaError(
                f"participant data file {path} was prepared for schema {digest_hex(stored)}, "
                f"the task's schema is {digest_hex(schema.digest())} ({schema.dataset})"
            )
        schema.validate(x, y)
    elif x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0] or not np.issubdtype(y.dtype, np.integer):
        raise DataSchemaError(f"participant data file {path}: inconsistent arrays x{x.shape} y{y.shape}")
    return x, y

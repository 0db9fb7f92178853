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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fedchain.codec.canonical import canonical_json, sha256_digest
from fedchain.config import open_private, private_dir
from fedchain.errors import DataSchemaError
from fedchain.types import Digest, digest_hex

__all__ = [
    "SCHEMA_VERSION",
    "TABLE_NORMALISATION",
    "ColumnSpec",
    "DataSchema",
    "TableSpec",
    "save_client_data",
    "load_client_data",
    "read_client_data_digest",
]

SCHEMA_VERSION = 1
_CLIENT_FILE_KEYS = frozenset({"x", "y", "schema_digest"})


# --- tables a consortium brings itself ---------------------------------------------------
COLUMN_TYPES = ("numeric", "categorical", "boolean")
MISSING_POLICIES = ("refuse", "impute")
TABLE_NORMALISATION = "table"  # a DataSchema's ``normalisation`` when its ``table`` fixes the preprocessing
DEFAULT_MISSING_TOKENS = ("", "?", "N/A", "NA", "NULL", "NaN", "None", "n/a", "na", "nan", "null")
DEFAULT_TRUE_VALUES = ("1", "t", "true", "y", "yes")
DEFAULT_FALSE_VALUES = ("0", "f", "false", "n", "no")
_TABLE_KEYS = frozenset({"columns", "label", "missing_tokens", "true_values", "false_values", "ignored_columns"})
_DERIVED_KEYS = ("feature_names", "feature_shape", "value_ranges", "labels", "label_names", "normalisation",
                 "normalisation_stats")  # fmt: skip


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(float(value)):
        raise DataSchemaError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise DataSchemaError(f"{what} must be a list of strings, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class ColumnSpec:
    """One input column of a table and the fixed preprocessing that turns it into features.

    ``numeric``: one feature ``(raw - shift) / scale``; ``range`` is the agreed raw
    ``(min, max)``. ``categorical``: one-hot over ``categories`` (features ``name=value``,
    in category order). ``boolean``: one feature, 1.0 for a true value and 0.0 for a false
    one. ``missing`` is ``"refuse"`` or ``"impute"``, the latter with the raw constant
    ``impute`` that replaces a missing cell.
    """

    name: str
    header: str
    type: str
    unit: str | None = None
    range: tuple[float, float] | None = None
    shift: float = 0.0
    scale: float = 1.0
    categories: tuple[str, ...] = ()
    missing: str = "refuse"
    impute: float | str | bool | None = None

    def __post_init__(self) -> None:
        where = f"table column {self.header!r}"
        problems: list[str] = []
        if not self.name or not self.header:
            problems.append("name and header must be non-empty")
        if self.type not in COLUMN_TYPES:
            problems.append(f"type must be one of {list(COLUMN_TYPES)}, got {self.type!r}")
        if self.type == "numeric":
            if self.range is None or len(self.range) != 2 or not all(np.isfinite(v) for v in self.range) \
                    or not self.range[0] <= self.range[1]:  # fmt: skip
                problems.append(f"a numeric column needs a finite range [min, max] with min <= max, got {self.range}")
            if not (np.isfinite(self.shift) and np.isfinite(self.scale) and self.scale > 0):
                problems.append(f"shift must be finite and scale > 0, got shift {self.shift}, scale {self.scale}")
        elif self.range is not None or self.shift != 0.0 or self.scale != 1.0:
            problems.append(f"only a numeric column has a range, shift and scale ({self.type})")
        if self.type == "categorical":
            if not self.categories or len(set(self.categories)) != len(self.categories):
                problems.append(f"a categorical column needs distinct categories, got {list(self.categories)}")
        elif self.categories:
            problems.append(f"only a categorical column has categories ({self.type})")
        if self.missing not in MISSING_POLICIES:
            problems.append(f"missing must be one of {list(MISSING_POLICIES)}, got {self.missing!r}")
        elif self.missing == "refuse" and self.impute is not None:
            problems.append("an impute value is given, but the missing-value policy is refuse")
        elif self.missing == "impute":
            problems.extend(self._impute_problems())
        if problems:
            raise DataSchemaError(f"{where}: " + "; ".join(problems))

    def _impute_problems(self) -> list[str]:
        value = self.impute
        if self.type == "numeric":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(float(value)):
                return [f"impute value must be a finite number, got {value!r}"]
            if self.range is not None and not self.range[0] <= float(value) <= self.range[1]:
                return [f"impute value {value!r} lies outside the column's range [{self.range[0]:g}, {self.range[1]:g}]"]
        if self.type == "categorical" and value not in self.categories:
            return [f"impute value must be one of the categories {list(self.categories)}, got {value!r}"]
        if self.type == "boolean" and not isinstance(value, bool):
            return [f"impute value must be true or false, got {value!r}"]
        return []

    def features(self) -> tuple[tuple[str, tuple[float, float], tuple[float, float]], ...]:
        """The column's features: ``(name, (shift, scale), (min, max) after normalisation)`` each."""
        if self.type == "numeric":
            assert self.range is not None
            lo, hi = ((float(v) - self.shift) / self.scale for v in self.range)
            return ((self.name, (float(self.shift), float(self.scale)), (lo, hi)),)
        if self.type == "boolean":
            return ((self.name, (0.0, 1.0), (0.0, 1.0)),)
        return tuple((f"{self.name}={c}", (0.0, 1.0), (0.0, 1.0)) for c in self.categories)

    def to_dict(self) -> dict[str, Any]:
        """The column as a JSON object (keys for its type only)."""
        out: dict[str, Any] = {"name": self.name, "header": self.header, "type": self.type, "unit": self.unit}
        if self.type == "numeric":
            assert self.range is not None
            out.update(range=[float(self.range[0]), float(self.range[1])], shift=float(self.shift),
                       scale=float(self.scale))  # fmt: skip
        if self.type == "categorical":
            out["categories"] = list(self.categories)
        out["missing"] = {"policy": self.missing}
        if self.missing == "impute":
            value = self.impute
            out["missing"]["value"] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
                else value  # fmt: skip
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "table column") -> ColumnSpec:
        """The column from its JSON object; DataSchemaError naming the bad field."""
        if not isinstance(data, dict):
            raise DataSchemaError(f"{where} must be a JSON object, got {data!r}")
        kind = data.get("type")
        allowed = {"name", "header", "type", "unit", "missing"} | (
            {"range", "shift", "scale"} if kind == "numeric" else {"categories"} if kind == "categorical" else set()
        )
        missing_keys = sorted({"name", "header", "type", "missing"} - set(data))
        unknown = sorted(set(data) - allowed)
        if missing_keys or unknown:
            raise DataSchemaError(f"{where} ({kind}): missing keys {missing_keys}, unknown keys {unknown}")
        unit = data.get("unit")
        policy = data["missing"]
        if not isinstance(policy, dict) or policy.get("policy") not in MISSING_POLICIES or \
                set(policy) - {"policy", "value"} or (policy["policy"] == "impute") != ("value" in policy):  # fmt: skip
            raise DataSchemaError(
                f"{where}: missing must be {{\"policy\": \"refuse\"}} or {{\"policy\": \"impute\", \"value\": V}}, "
                f"got {policy!r}"
            )
        if not isinstance(data["name"], str) or not isinstance(data["header"], str) or \
                (unit is not None and not isinstance(unit, str)):  # fmt: skip
            raise DataSchemaError(f"{where}: name, header and unit must be strings (unit may be null)")
        rng = data.get("range")
        bounds: tuple[float, float] | None = None
        if kind == "numeric":
            if not isinstance(rng, list) or len(rng) != 2:
                raise DataSchemaError(f"{where}: range must be [min, max], got {rng!r}")
            bounds = (_finite(rng[0], f"{where} range"), _finite(rng[1], f"{where} range"))
        return cls(
            name=data["name"],
            header=data["header"],
            type=str(kind),
            unit=unit,
            range=bounds,
            shift=_finite(data.get("shift", 0.0), f"{where} shift"),
            scale=_finite(data.get("scale", 1.0), f"{where} scale"),
            categories=_strings(data.get("categories", []), f"{where} categories"),
            missing=str(policy["policy"]),
            impute=policy.get("value"),
        )


@dataclass(frozen=True)
class TableSpec:
    """The agreed layout of a consortium's table: its feature columns, the label and its classes.

    ``classes[i]`` is the raw label value of label ``i``; a cell equal to one of
    ``missing_tokens`` (after stripping spaces) is missing; boolean cells are matched
    case-insensitively against ``true_values`` / ``false_values``; ``ignored_columns``
    are headers an import skips.
    """

    columns: tuple[ColumnSpec, ...]
    label: str
    classes: tuple[str, ...]
    missing_tokens: tuple[str, ...] = DEFAULT_MISSING_TOKENS
    true_values: tuple[str, ...] = DEFAULT_TRUE_VALUES
    false_values: tuple[str, ...] = DEFAULT_FALSE_VALUES
    ignored_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.columns:
            problems.append("no feature columns")
        headers = [c.header for c in self.columns]
        names = [c.name for c in self.columns]
        if len(set(headers)) != len(headers) or len(set(names)) != len(names):
            problems.append(f"column headers and names must be unique, got headers {headers}")
        if self.label in headers or self.label in self.ignored_columns or not self.label:
            problems.append(f"the label column {self.label!r} must be named and be neither a feature nor ignored")
        if set(self.ignored_columns) & set(headers):
            problems.append(f"ignored columns {sorted(set(self.ignored_columns) & set(headers))} are also features")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            problems.append(f"the label needs at least 2 distinct classes, got {list(self.classes)}")
        if set(self.classes) & set(self.missing_tokens):
            problems.append(f"classes {sorted(set(self.classes) & set(self.missing_tokens))} are missing-value tokens")
        lowered_true = {v.lower() for v in self.true_values}
        if not self.true_values or not self.false_values or lowered_true & {v.lower() for v in self.false_values}:
            problems.append("true_values and false_values must be non-empty and disjoint")
        for c in self.columns:
            overlap = sorted(set(c.categories) & set(self.missing_tokens))
            if overlap:
                problems.append(f"column {c.header!r}: categories {overlap} are missing-value tokens")
        if problems:
            raise DataSchemaError("table: " + "; ".join(problems))

    def features(self) -> tuple[tuple[str, tuple[float, float], tuple[float, float]], ...]:
        """Every feature after encoding, in column order: ``(name, (shift, scale), normalised range)``."""
        return tuple(f for c in self.columns for f in c.features())

    def to_dict(self) -> dict[str, Any]:
        """The table as a JSON object."""
        return {
            "columns": [c.to_dict() for c in self.columns],
            "label": {"header": self.label, "classes": list(self.classes)},
            "missing_tokens": list(self.missing_tokens),
            "true_values": list(self.true_values),
            "false_values": list(self.false_values),
            "ignored_columns": list(self.ignored_columns),
        }

    @classmethod
    def from_dict(cls, data: Any) -> TableSpec:
        """The table from its JSON object; DataSchemaError naming the bad field."""
        if not isinstance(data, dict):
            raise DataSchemaError(f"data schema table must be a JSON object, got {type(data).__name__}")
        missing = sorted({"columns", "label"} - set(data))
        unknown = sorted(set(data) - _TABLE_KEYS)
        if missing or unknown:
            raise DataSchemaError(f"data schema table: missing keys {missing}, unknown keys {unknown}")
        label = data["label"]
        if not isinstance(label, dict) or set(label) != {"header", "classes"} or not isinstance(label["header"], str):
            raise DataSchemaError(f"data schema table: label must be {{\"header\": H, \"classes\": [...]}}, got {label!r}")
        columns = data["columns"]
        if not isinstance(columns, list):
            raise DataSchemaError(f"data schema table: columns must be a list, got {columns!r}")
        return cls(
            columns=tuple(ColumnSpec.from_dict(c, f"table column {i}") for i, c in enumerate(columns)),
            label=label["header"],
            classes=_strings(label["classes"], "table label classes"),
            missing_tokens=_strings(data.get("missing_tokens", list(DEFAULT_MISSING_TOKENS)), "table missing_tokens"),
            true_values=_strings(data.get("true_values", list(DEFAULT_TRUE_VALUES)), "table true_values"),
            false_values=_strings(data.get("false_values", list(DEFAULT_FALSE_VALUES)), "table false_values"),
            ignored_columns=_strings(data.get("ignored_columns", []), "table ignored_columns"),
        )


@dataclass(frozen=True)
class DataSchema:
    """What a task's data looks like after normalisation.

    ``value_ranges[i]`` is the ``(min, max)`` of flattened feature ``i`` over the
    whole prepared dataset; :meth:`validate` accepts values up to
    ``range_tolerance * max(max - min, 1)`` outside it, because a participant's own
    data, normalised with the shared statistics, may reach a little further.
    ``normalisation_stats[i]`` is ``(shift, scale)`` with
    ``normalised = (raw - shift) / scale`` (see :meth:`normalise`).

    ``table`` (optional) is the preprocessing a consortium fixed for its own tables
    (:class:`TableSpec`); the features, stats, ranges and labels then follow from it
    (:meth:`from_table`). It is part of the JSON and the digest only when set, so the
    bundled datasets' digests do not depend on it.
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
    table: TableSpec | None = None
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
        if not problems and self.table is not None:
            problems.extend(self._table_problems(self.table))
        if problems:
            raise DataSchemaError(f"invalid data schema for {self.dataset!r}: " + "; ".join(problems))

    def _table_problems(self, table: TableSpec) -> list[str]:
        """Where the schema's fields disagree with what its table derives."""
        derived = DataSchema.from_table(
            self.dataset, table, range_tolerance=self.range_tolerance, dtype=self.dtype, with_table=False
        )
        return [
            f"{key} disagrees with the table (delete it from the JSON to have it derived from the table)"
            for key in _DERIVED_KEYS
            if getattr(self, key) != getattr(derived, key)
        ]

    @classmethod
    def from_table(
        cls, dataset: str, table: TableSpec, *, range_tolerance: float = 0.5, dtype: str = "float32",
        with_table: bool = True,
    ) -> DataSchema:
        """The schema of a consortium's table: features, stats, ranges and labels derived from ``table``.

        ``with_table=False`` leaves the table out (only the derived fields, as an old reader sees them).
        """
        features = table.features()
        derived = cls(
            dataset=dataset,
            feature_names=tuple(name for name, _, _ in features),
            dtype=dtype,
            feature_shape=(len(features),),
            value_ranges=tuple(rng for _, _, rng in features),
            labels=tuple(range(len(table.classes))),
            label_names=table.classes,
            normalisation=TABLE_NORMALISATION,
            normalisation_stats=tuple(stats for _, stats, _ in features),
            range_tolerance=range_tolerance,
        )
        return replace(derived, table=table) if with_table else derived

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
            **({} if self.table is None else {"table": self.table.to_dict()}),
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
        table = None if "table" not in data else TableSpec.from_dict(data["table"])
        if table is not None:  # the derived fields may be left out: they follow from the table
            derived = cls.from_table(str(data.get("dataset", "")) or "table", table, with_table=False).to_dict()
            data = {**{k: derived[k] for k in (*_DERIVED_KEYS, "dtype", "range_tolerance", "version")}, **data}
        missing = sorted(expected - set(data))
        unknown = sorted(set(data) - expected - {"table"})
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
                table=table,
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
        if self.table is not None:
            self._validate_encoding(self.table, flat)
        if not np.issubdtype(y.dtype, np.integer):
            raise DataSchemaError(f"{name}: labels must be integers, got dtype {y.dtype}")
        unknown = np.setdiff1d(np.unique(y), np.asarray(self.labels, dtype=np.int64))
        if unknown.size:
            raise DataSchemaError(
                f"{name}: unknown label(s) {[int(v) for v in unknown[:10]]}; the schema's labels are {list(self.labels)}"
            )

    def _validate_encoding(self, table: TableSpec, flat: np.ndarray) -> None:
        """Boolean features are 0 or 1; each categorical column's features are one-hot (one 1, the rest 0)."""
        offset = 0
        for column in table.columns:
            width = len(column.features())
            if column.type != "numeric":
                block = flat[:, offset : offset + width]
                bad = ~((block == 0) | (block == 1)).all(axis=1)
                if column.type == "categorical":
                    bad |= block.sum(axis=1) != 1
                if bad.any():
                    row = int(np.argmax(bad))
                    kind = "a one-hot encoding of its categories" if column.type == "categorical" else "0 or 1"
                    raise DataSchemaError(
                        f"{self.dataset}: {int(bad.sum())} sample(s) where column {column.header!r} is not {kind}; "
                        f"first: sample {row}, features {list(self.feature_names[offset : offset + width])} = "
                        f"{[float(v) for v in block[row]]}"
                    )
            offset += width


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

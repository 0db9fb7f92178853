"""A consortium's own tables: draft a schema from a CSV, import a site's CSV under the agreed one.

:func:`infer_table_schema` drafts a :class:`~fedchain.fl.schema.DataSchema` with a
:class:`~fedchain.fl.schema.TableSpec` from one table (column types, units from
``"name [unit]"`` headers, observed ranges, sorted categories, a missing-value policy, the
label's classes and normalisation constants computed from that file). Once the consortium
agrees on it, the constants are fixed: :func:`import_table` applies exactly the schema's
preprocessing to every site's table (no per-site statistics), so a feature means the same
everywhere, and refuses a table with any row that does not meet the schema, listing the
rows, columns and values that fail. :func:`write_client_file` writes the participant data
file atomically (nothing is left behind on failure).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedchain.errors import DataSchemaError
from fedchain.fl.schema import (
    DEFAULT_FALSE_VALUES,
    DEFAULT_MISSING_TOKENS,
    DEFAULT_TRUE_VALUES,
    ColumnSpec,
    DataSchema,
    TableSpec,
    save_client_data,
)

__all__ = [
    "LABEL_HEADERS",
    "RawTable",
    "TableImport",
    "TableProblem",
    "import_table",
    "infer_table_schema",
    "parse_header",
    "read_table",
    "write_client_file",
]

LABEL_HEADERS = ("label", "target", "class", "outcome", "y")  # taken as the label when --label is not given
_STAT_DIGITS = 6  # significant digits kept of drafted constants (readable, stable across machines)
_UNIT = re.compile(r"^(?P<name>.*?)\s*\[(?P<unit>[^\[\]]*)\]$")
_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class RawTable:
    """A table as read: its header and its records as ``(line number, cells)``."""

    path: Path
    headers: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]


@dataclass(frozen=True)
class TableProblem:
    """One cell (or row) that does not meet the schema."""

    line: int
    column: str
    value: str
    expected: str

    def describe(self) -> str:
        """One line naming the line, column, value and what was expected."""
        return f"line {self.line}, column {self.column!r}: {self.value!r}, expected {self.expected}"


@dataclass(frozen=True)
class TableImport:
    """A site's table after the schema's preprocessing: features, labels and what was imputed."""

    x: np.ndarray
    y: np.ndarray
    schema: DataSchema
    imputed: dict[str, int]

    @property
    def label_counts(self) -> dict[str, int]:
        """Rows per label class (class name to count)."""
        counts = np.bincount(self.y, minlength=self.schema.num_classes)
        return {name: int(n) for name, n in zip(self.schema.label_names, counts, strict=True)}


def _round(value: float) -> float:
    return float(f"{value:.{_STAT_DIGITS}g}")


def parse_header(header: str) -> tuple[str, str | None]:
    """``"weight [kg]"`` -> ``("weight", "kg")``; a header without a bracketed unit has unit None."""
    match = _UNIT.match(header.strip())
    if match is None or not match.group("name"):
        return header.strip(), None
    return match.group("name"), match.group("unit").strip() or None


def read_table(path: str | Path) -> RawTable:
    """Read a CSV table (delimiter sniffed among ``, ; tab``; UTF-8, a BOM allowed); DataSchemaError when it cannot."""
    source = Path(path)
    try:
        raw = source.read_bytes()
    except OSError as err:
        raise DataSchemaError(f"table {source} cannot be read: {err}") from err
    if raw.startswith(_PARQUET_MAGIC) or source.suffix.lower() in (".parquet", ".pq"):
        raise DataSchemaError(
            f"table {source} is Parquet; reading Parquet needs pyarrow, which this installation does not "
            "include: export the table as CSV (a header row, one row per sample)"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataSchemaError(f"table {source} is not UTF-8 text: {err}") from err
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise DataSchemaError(f"table {source} is empty: it needs a header row and one row per sample")
        rows = tuple((reader.line_num, tuple(row)) for row in reader if any(cell.strip() for cell in row))
    except csv.Error as err:
        raise DataSchemaError(f"table {source} is not a valid CSV file (line {reader.line_num}): {err}") from err
    headers = tuple(h.strip() for h in header)
    dupes = sorted(h for h, n in Counter(headers).items() if n > 1)
    if dupes or "" in headers:
        raise DataSchemaError(f"table {source}: every column needs a distinct, non-empty header; "
                              f"repeated: {dupes}, empty: {headers.count('')}")  # fmt: skip
    if not rows:
        raise DataSchemaError(f"table {source} has a header but no rows")
    return RawTable(source, headers, rows)


def _number(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _report(source: Path, problems: Sequence[TableProblem], max_listed: int, what: str) -> DataSchemaError:
    rows = len({p.line for p in problems})
    lines = [f"{source}: {len(problems)} problem(s) in {rows} row(s); {what}"]
    lines += [f"  {p.describe()}" for p in problems[:max_listed]]
    if len(problems) > max_listed:
        lines.append(f"  ... and {len(problems) - max_listed} more problem(s)")
    return DataSchemaError("\n".join(lines))


def _sorted_classes(values: set[str]) -> tuple[str, ...]:
    numbers = {v: _number(v) for v in values}
    if all(n is not None for n in numbers.values()):
        return tuple(sorted(values, key=lambda v: (numbers[v], v)))
    return tuple(sorted(values))


def _pick_label(headers: Sequence[str], label: str | None) -> str:
    if label is not None:
        if label not in headers:
            raise DataSchemaError(f"label column {label!r} is not in the table; its columns: {list(headers)}")
        return label
    for h in headers:
        if parse_header(h)[0].lower() in LABEL_HEADERS:
            return h
    return headers[-1]


def infer_table_schema(
    path: str | Path,
    *,
    label: str | None = None,
    name: str | None = None,
    categorical: Sequence[str] = (),
    drop: Sequence[str] = (),
    missing: str = "auto",
    max_categories: int = 50,
    range_tolerance: float = 0.5,
    missing_tokens: Sequence[str] = DEFAULT_MISSING_TOKENS,
) -> DataSchema:
    """Draft a table schema from the table at ``path`` (see the module docstring).

    ``label``: the label column's header (default: a column named like one of
    :data:`LABEL_HEADERS`, else the last). ``categorical``: headers to treat as
    categories even when numeric; ``drop``: headers to ignore on import.
    ``missing``: ``auto`` (impute in the columns where this file has missing cells,
    refuse elsewhere), ``refuse`` or ``impute`` (every column). Imputed constants are the
    median (numeric) or the most frequent value (categorical, boolean) of this file.
    """
    if missing not in ("auto", "refuse", "impute"):
        raise DataSchemaError(f"missing-value policy must be auto, refuse or impute, got {missing!r}")
    table = read_table(path)
    unknown = sorted(set(categorical) - set(table.headers)) + sorted(set(drop) - set(table.headers))
    if unknown:
        raise DataSchemaError(f"columns {unknown} are not in the table; its columns: {list(table.headers)}")
    label_header = _pick_label(table.headers, label)
    if label_header in categorical or label_header in drop:
        raise DataSchemaError(f"the label column {label_header!r} cannot also be a categorical feature or dropped")
    tokens = set(missing_tokens)
    width = len(table.headers)
    bad = [TableProblem(line, "*", f"{len(cells)} fields", f"{width} fields, like the header")
           for line, cells in table.rows if len(cells) != width]  # fmt: skip
    if bad:
        raise _report(table.path, bad, 20, "fix them before drafting a schema")
    cells = {h: [row[i].strip() for _, row in table.rows] for i, h in enumerate(table.headers)}
    lines = [line for line, _ in table.rows]
    label_cells = cells[label_header]
    unlabelled = [TableProblem(line, label_header, v, "a label (a row without one cannot be used)")
                  for (line, _), v in zip(table.rows, label_cells, strict=True) if v in tokens]  # fmt: skip
    if unlabelled:
        raise _report(table.path, unlabelled, 20, "fix them before drafting a schema")
    classes = _sorted_classes(set(label_cells))
    if len(classes) < 2:
        raise DataSchemaError(f"label column {label_header!r} has one class only ({classes[0]!r}); a task needs two")
    columns = tuple(
        _infer_column(h, cells[h], lines, tokens, h in categorical, missing, max_categories, table.path)
        for h in table.headers
        if h != label_header and h not in drop
    )
    spec = TableSpec(
        columns=columns,
        label=label_header,
        classes=classes,
        missing_tokens=tuple(missing_tokens),
        ignored_columns=tuple(h for h in table.headers if h in drop),
    )
    return DataSchema.from_table(name or table.path.stem, spec, range_tolerance=range_tolerance)


def _infer_column(header: str, values: list[str], lines: list[int], tokens: set[str], force_categorical: bool,
                  missing: str, max_categories: int, source: Path) -> ColumnSpec:  # fmt: skip
    name, unit = parse_header(header)
    present = [v for v in values if v not in tokens]
    typos = [TableProblem(line, header, v, "a number, like most of the column (or a missing-value token)")
             for line, v in zip(lines, values, strict=True) if v not in tokens and _number(v) is None]  # fmt: skip
    if not force_categorical and typos and len(typos) * 2 < len(present):
        raise _report(source, typos, 20, "the column is mostly numeric: fix the cells, declare their text missing "
                      "(--missing-token), or make the column categorical (--categorical)")  # fmt: skip
    if not present:
        raise DataSchemaError(f"column {header!r} has no values (every cell is missing): drop it with --drop")
    impute = missing == "impute" or (missing == "auto" and len(present) < len(values))
    policy = "impute" if impute else "refuse"
    lowered = {v.lower() for v in present}
    truthy, falsy = set(DEFAULT_TRUE_VALUES), set(DEFAULT_FALSE_VALUES)
    numbers = [_number(v) for v in present]
    if not force_categorical and lowered <= truthy | falsy and (lowered - {"0", "1"} or lowered == {"0", "1"}):
        flags = [v.lower() in truthy for v in present]
        mode = sum(flags) * 2 > len(flags)
        return ColumnSpec(name=name, header=header, type="boolean", unit=unit, missing=policy,
                          impute=mode if impute else None)  # fmt: skip
    if not force_categorical and all(n is not None for n in numbers):
        arr = np.asarray(numbers, dtype=np.float64)
        std = float(arr.std())
        return ColumnSpec(
            name=name, header=header, type="numeric", unit=unit,
            range=(float(arr.min()), float(arr.max())),
            shift=_round(float(arr.mean())), scale=_round(std) if std > 0 else 1.0,
            missing=policy, impute=_round(float(np.median(arr))) if impute else None,
        )  # fmt: skip
    counts = Counter(present)
    if len(counts) > max_categories:
        raise DataSchemaError(
            f"column {header!r} has {len(counts)} distinct non-numeric values, more than --max-categories "
            f"{max_categories} (an identifier?): drop it with --drop, or raise --max-categories"
        )
    categories = _sorted_classes(set(counts))
    mode_value = min(counts, key=lambda v: (-counts[v], categories.index(v)))
    return ColumnSpec(name=name, header=header, type="categorical", unit=unit, categories=categories,
                      missing=policy, impute=mode_value if impute else None)  # fmt: skip


def _encode_cell(column: ColumnSpec, token: str, table: TableSpec, schema: DataSchema,
                 bounds: tuple[float, float]) -> list[float] | str:  # fmt: skip
    """The column's features for one raw cell, or what was expected instead."""
    if column.type == "numeric":
        value = _number(token)
        if value is None:
            return "a finite number" + (f" in {column.unit}" if column.unit else "")
        encoded = float(np.float32((value - column.shift) / column.scale)) if schema.dtype == "float32" \
            else (value - column.shift) / column.scale  # fmt: skip
        lo, hi = bounds
        if not lo <= encoded <= hi:
            raw_lo, raw_hi = column.shift + lo * column.scale, column.shift + hi * column.scale
            agreed_lo, agreed_hi = column.range if column.range is not None else (raw_lo, raw_hi)
            unit = f" {column.unit}" if column.unit else ""
            return (f"a value in [{raw_lo:.6g}, {raw_hi:.6g}]{unit} (the agreed range [{agreed_lo:.6g}, "
                    f"{agreed_hi:.6g}] widened by the schema's range tolerance {schema.range_tolerance:g})")  # fmt: skip
        return [encoded]
    if column.type == "boolean":
        low = token.lower()
        if low in {v.lower() for v in table.true_values}:
            return [1.0]
        if low in {v.lower() for v in table.false_values}:
            return [0.0]
        return f"true ({', '.join(table.true_values)}) or false ({', '.join(table.false_values)})"
    if token in column.categories:
        return [1.0 if c == token else 0.0 for c in column.categories]
    shown = ", ".join(repr(c) for c in column.categories[:12]) + (", ..." if len(column.categories) > 12 else "")
    return f"one of the categories {shown}"


def _impute_token(column: ColumnSpec) -> str:
    value = column.impute
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(float(value)) if isinstance(value, (int, float)) else str(value)


def import_table(
    path: str | Path, schema: DataSchema, *, drop: Sequence[str] = (), max_listed: int = 20
) -> TableImport:
    """Validate every row of the table at ``path`` against ``schema`` and apply its preprocessing.

    Columns are matched by header (their order in the file does not matter); ``drop``
    names extra local columns to skip. DataSchemaError listing up to ``max_listed``
    problems (line, column, value, what was expected) and the count of the rest when any
    row fails; nothing is returned then.
    """
    table_spec = schema.table
    if table_spec is None:
        raise DataSchemaError(
            f"schema {schema.dataset!r} describes no table (it has no 'table' section): draft one with "
            "`fedchain data schema infer FILE`"
        )
    table = read_table(path)
    known = {c.header for c in table_spec.columns} | {table_spec.label}
    absent = sorted(known - set(table.headers))
    if absent:
        raise DataSchemaError(f"table {table.path} lacks the schema's column(s) {absent}; its columns: "
                              f"{list(table.headers)}")  # fmt: skip
    extra = sorted(set(table.headers) - known - set(table_spec.ignored_columns) - set(drop))
    if extra:
        raise DataSchemaError(
            f"table {table.path} has column(s) {extra} that the schema does not describe: leave them out "
            "(`fedchain data import ... --drop COLUMN`) or ask the consortium to add them to the schema"
        )
    index = {h: i for i, h in enumerate(table.headers)}
    label_index = index[table_spec.label]
    class_index = {c: i for i, c in enumerate(table_spec.classes)}
    numeric_classes = {_number(c): i for c, i in class_index.items()}
    tokens = set(table_spec.missing_tokens)
    tolerance = schema.range_tolerance
    bounds: list[tuple[float, float]] = []
    offset = 0
    for column in table_spec.columns:
        lo, hi = schema.value_ranges[offset]
        span = max(hi - lo, 1.0)
        bounds.append((lo - tolerance * span, hi + tolerance * span))
        offset += len(column.features())
    problems: list[TableProblem] = []
    rows_x: list[list[float]] = []
    rows_y: list[int] = []
    imputed: Counter[str] = Counter()
    for line, cells in table.rows:
        if len(cells) != len(table.headers):
            problems.append(TableProblem(line, "*", f"{len(cells)} fields", f"{len(table.headers)} fields, like the header"))
            continue
        features: list[float] = []
        for column, bound in zip(table_spec.columns, bounds, strict=True):
            token = cells[index[column.header]].strip()
            if token in tokens:
                if column.missing == "refuse":
                    problems.append(TableProblem(line, column.header, token,
                                                 "a value (the schema refuses missing values in this column)"))  # fmt: skip
                    continue
                imputed[column.header] += 1
                token = _impute_token(column)
            encoded = _encode_cell(column, token, table_spec, schema, bound)
            if isinstance(encoded, str):
                problems.append(TableProblem(line, column.header, token, encoded))
            else:
                features.extend(encoded)
        label_token = cells[label_index].strip()
        label = class_index.get(label_token)
        if label is None and _number(label_token) is not None:
            label = numeric_classes.get(_number(label_token))
        if label is None:
            expected = "a label (labels are never imputed)" if label_token in tokens else \
                "one of the classes " + ", ".join(repr(c) for c in table_spec.classes)  # fmt: skip
            problems.append(TableProblem(line, table_spec.label, label_token, expected))
        if len(features) == schema.num_features and label is not None:
            rows_x.append(features)
            rows_y.append(label)
    if problems:
        raise _report(table.path, problems, max_listed, "nothing was written")
    x = np.asarray(rows_x, dtype=schema.dtype).reshape((len(rows_x), *schema.feature_shape))
    y = np.asarray(rows_y, dtype=np.int64)
    schema.validate(x, y)
    return TableImport(x=x, y=y, schema=schema, imputed=dict(sorted(imputed.items())))


def write_client_file(path: str | Path, imported: TableImport) -> Path:
    """Write the participant data file (with the schema digest) atomically: a temporary file, then a rename."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        save_client_data(tmp, imported.x, imported.y, imported.schema)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target

"""``fedchain data``: datasets, their schemas, and per-participant partitions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fedchain.cli.options import emit, json_option
from fedchain.types import digest_hex

if TYPE_CHECKING:
    from fedchain.fl.schema import DataSchema

_LABEL_HEADERS = "label, target, class, outcome, y"  # fedchain.fl.table.LABEL_HEADERS (not imported: numpy)


@click.group("data")
def data() -> None:
    """Datasets, schemas and per-participant partitions (all offline)."""


@data.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the registered datasets and whether their data is installed."""
    from fedchain.fl.datasets import DATASETS, available_datasets

    installed = set(available_datasets())
    rows = [
        {
            "name": name,
            "available": name in installed,
            "domain": info.domain,
            "description": info.description,
            "source": info.source,
            "licence": info.licence,
            "citation": info.citation,
            "requires": info.requires,
        }
        for name, (info, _loader, _needs) in sorted(DATASETS.items())
    ]

    def human() -> str:
        width = max(len(name) for name in DATASETS)
        lines = []
        for r in rows:
            mark = "" if r["available"] else f"  (not installed: needs {r['requires']})"
            lines.append(f"{r['name']:<{width}}  {r['domain']:<10}  {r['description']}{mark}")
            lines.append(f"{'':<{width}}  {'':<10}  licence: {r['licence']}")
        return "\n".join(lines)

    emit(as_json, {"datasets": rows}, human)


class _SchemaGroup(click.Group):
    """``data schema``: its subcommands, and ``data schema DATASET`` as short for ``data schema show DATASET``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Route a first argument that names no subcommand (nor asks for help) to ``show``."""
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@data.group("schema", cls=_SchemaGroup)
def schema() -> None:
    """Data schemas: show one (a bundled dataset's, a schema file's) or draft one from a table.

    `fedchain data schema DATASET` is short for `fedchain data schema show DATASET`.
    """


@schema.command("show")
@click.argument("dataset")
@click.option("--split-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the stratified train/test split (datasets without their own split).")  # fmt: skip
@json_option
def schema_show(dataset: str, split_seed: int, as_json: bool) -> None:
    """Print DATASET's data schema and its digest (what the chain records); DATASET may be a schema JSON file."""
    from fedchain.fl.datasets import load_dataset

    if dataset.endswith(".json") or Path(dataset).is_file():
        _show_schema_file(Path(dataset), as_json)
        return
    ds = load_dataset(dataset, seed=split_seed)
    s = ds.schema
    payload = {"dataset": ds.name, "digest": digest_hex(s.digest()), "schema": s.to_dict()}

    def human() -> str:
        return "\n".join(
            [
                f"dataset        {ds.name} ({ds.domain})",
                f"schema digest  {digest_hex(s.digest())}",
                f"features       {s.num_features} {s.dtype}, shape {tuple(s.feature_shape)}",
                "labels         " + ", ".join(f"{c}={n}" for c, n in zip(s.labels, s.label_names, strict=False)),
                f"normalisation  {s.normalisation}",
                f"train / test   {len(ds.y_train)} / {len(ds.y_test)}",
                f"source         {ds.source}",
                f"licence        {ds.licence}",
            ]
        )

    emit(as_json, payload, human)


def _show_schema_file(path: Path, as_json: bool) -> None:
    """``data schema show SCHEMA.json``: a schema file's digest and, for a table schema, its columns."""
    from fedchain.fl.schema import DataSchema

    try:
        text = path.read_bytes()
    except OSError as err:
        raise click.BadParameter(f"schema file {path} cannot be read: {err}", param_hint="DATASET") from err
    s = DataSchema.from_json(text)
    payload: dict[str, Any] = {"file": str(path), "dataset": s.dataset, "digest": digest_hex(s.digest()),
                               "schema": s.to_dict()}  # fmt: skip
    if s.table is not None:
        payload["columns"] = _column_rows(s)

    def human() -> str:
        lines = [f"schema file    {path}", f"dataset        {s.dataset}", f"schema digest  {digest_hex(s.digest())}"]
        if s.table is not None:
            return "\n".join([*lines, *_describe_table(s)])
        return "\n".join([*lines, f"features       {s.num_features} {s.dtype}, shape {tuple(s.feature_shape)}",
                          "labels         " + ", ".join(f"{c}={n}" for c, n in zip(s.labels, s.label_names, strict=False))])

    emit(as_json, payload, human)


@data.command("partition")
@click.argument("dataset")
@click.option("--clients", "num_clients", type=click.IntRange(min=1), required=True, help="Number of participants.")
@click.option("--scheme", type=click.Choice(["iid", "dirichlet", "quantity", "industry"]), required=True)
@click.option("--alpha", type=float, default=0.5, show_default=True, help="Dirichlet concentration (dirichlet, quantity).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Partition seed.")
@click.option("--split-seed", type=click.IntRange(min=0), default=0, show_default=True, help="Train/test split seed.")
@click.option("--min-samples", type=click.IntRange(min=1), default=10, show_default=True,
              help="Smallest number of samples any participant gets.")  # fmt: skip
@click.option("--profile", type=click.Choice(["hospitals", "lenders", "post-offices", "sites"]), default=None,
              help="Industry profile [default: the dataset's own, else sites].")  # fmt: skip
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for client_<i>.npz, schema.json, partition.json and report.txt.")  # fmt: skip
@json_option
def partition_cmd(
    dataset: str,
    num_clients: int,
    scheme: str,
    alpha: float,
    seed: int,
    split_seed: int,
    min_samples: int,
    profile: str | None,
    out_dir: Path,
    as_json: bool,
) -> None:
    """Split DATASET's training data over participants; write one data file per participant."""
    from fedchain.fl.datasets import load_dataset
    from fedchain.fl.partition import (
        DEFAULT_PROFILES,
        PartitionSpec,
        label_histograms,
        label_skew,
        partition,
        partition_names,
        partition_report,
    )
    from fedchain.fl.schema import save_client_data

    ds = load_dataset(dataset, seed=split_seed)
    if scheme == "industry" and profile is None:
        profile = DEFAULT_PROFILES.get(ds.name, "sites")
    spec = PartitionSpec(
        scheme=scheme,
        num_clients=num_clients,
        alpha=alpha,
        seed=seed,
        min_samples=min_samples,
        profile=profile if scheme == "industry" else None,
    )
    parts = partition(ds.y_train, spec, x=ds.x_train, feature_names=ds.feature_names)
    names = partition_names(spec, ds.num_classes)
    hist = label_histograms(ds.y_train, parts, ds.num_classes)
    out_dir.mkdir(parents=True, exist_ok=True)
    clients: list[dict[str, Any]] = []
    for i, (name, idx) in enumerate(zip(names, parts, strict=False)):
        path = save_client_data(out_dir / f"client_{i}.npz", ds.x_train[idx], ds.y_train[idx], ds.schema)
        clients.append({"index": i, "name": name, "file": path.name, "samples": int(idx.size),
                        "label_counts": [int(v) for v in hist[i]]})  # fmt: skip
    report = partition_report(ds.y_train, parts, names, ds.label_names)
    (out_dir / "schema.json").write_text(ds.schema.to_json() + "\n", encoding="utf-8")
    (out_dir / "report.txt").write_text(report + "\n", encoding="utf-8")
    payload = {
        "dataset": ds.name,
        "schema_digest": digest_hex(ds.schema.digest()),
        "spec": spec.to_dict(),
        "spec_digest": digest_hex(spec.digest()),
        "split_seed": split_seed,
        "label_names": list(ds.label_names),
        "label_skew": label_skew(ds.y_train, parts),
        "clients": clients,
        "out_dir": str(out_dir),
    }
    (out_dir / "partition.json").write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    emit(
        as_json,
        payload,
        lambda: f"{report}\n\nschema digest {payload['schema_digest']}\nwrote {len(parts)} participant files to {out_dir}",
    )


def _column_rows(s: DataSchema) -> list[dict[str, Any]]:
    """One summary row per table column (type, unit, range or categories, missing-value policy)."""
    assert s.table is not None
    rows = []
    for c in s.table.columns:
        detail = (
            f"range [{c.range[0]:.6g}, {c.range[1]:.6g}], shift {c.shift:.6g}, scale {c.scale:.6g}"
            if c.type == "numeric" and c.range is not None
            else f"{len(c.categories)} categories: " + ", ".join(c.categories[:8]) + (", ..." if len(c.categories) > 8 else "")
            if c.type == "categorical"
            else "true / false"
        )
        missing = "refuse" if c.missing == "refuse" else f"impute {c.impute!r}"
        rows.append({"header": c.header, "name": c.name, "type": c.type, "unit": c.unit, "detail": detail,
                     "missing": missing, "features": len(c.features())})  # fmt: skip
    return rows


def _describe_table(s: DataSchema) -> list[str]:
    """A table schema for people: one line per column, then the label, ignored columns and feature count."""
    table = s.table
    assert table is not None
    columns = _column_rows(s)
    width = max(len("column"), *(len(c["header"]) for c in columns))
    units = [c["unit"] or "(to agree)" for c in columns]
    uw = max(len("unit"), *(len(u) for u in units))
    mw = max(len("missing"), *(len(c["missing"]) for c in columns))
    lines = [f"{'column':<{width}}  {'type':<11}  {'unit':<{uw}}  {'missing':<{mw}}  detail"]
    lines += [f"{c['header']:<{width}}  {c['type']:<11}  {u:<{uw}}  {c['missing']:<{mw}}  {c['detail']}"
              for c, u in zip(columns, units, strict=True)]  # fmt: skip
    lines.append(f"label          {table.label}: " + ", ".join(f"{i}={n}" for i, n in enumerate(table.classes)))
    if table.ignored_columns:
        lines.append("ignored        " + ", ".join(table.ignored_columns))
    lines.append(f"features       {s.num_features} after encoding")
    return lines


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@schema.command("infer")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--label", default=None,
              help=f"Header of the label column [default: one named {_LABEL_HEADERS}, else the last].")
@click.option("--name", default=None, help="The schema's dataset name [default: the file name without extension].")
@click.option("--categorical", multiple=True, metavar="COLUMN",
              help="Treat COLUMN as categorical even when numeric (repeatable).")
@click.option("--drop", multiple=True, metavar="COLUMN",
              help="Leave COLUMN out of the features; imports skip it (repeatable).")
@click.option("--missing", type=click.Choice(["auto", "refuse", "impute"]), default="auto", show_default=True,
              help="Missing-value policy: auto imputes in the columns where FILE has missing cells, refuses elsewhere.")
@click.option("--missing-token", "missing_tokens", multiple=True, metavar="TOKEN",
              help="A cell text meaning 'missing' (repeatable; replaces the defaults: empty, NA, NaN, null, ?, ...).")
@click.option("--max-categories", type=click.IntRange(min=2), default=50, show_default=True,
              help="Most distinct values a categorical column may have.")
@click.option("--tolerance", "range_tolerance", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="How far past its agreed range (in widths of the range) a value may lie.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the schema here [default: print it on stdout].")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
@json_option
def schema_infer(
    file: Path,
    label: str | None,
    name: str | None,
    categorical: tuple[str, ...],
    drop: tuple[str, ...],
    missing: str,
    missing_tokens: tuple[str, ...],
    max_categories: int,
    range_tolerance: float,
    out: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Draft a data schema from the table FILE (CSV) for the consortium to agree on.

    Per column: its type (numeric, categorical, boolean), unit (from a "name [unit]" header,
    else null for the consortium to fill in), observed range or sorted categories (one-hot
    encoded), missing-value policy, and normalisation constants (shift, scale) computed from
    FILE. Once agreed they are fixed: every site imports with the same constants.
    """
    from fedchain.fl.table import infer_table_schema

    if out is not None and out.exists() and not force:
        raise click.UsageError(f"{out} exists (a schema being agreed?); pass --force to overwrite it")
    s = infer_table_schema(
        file, label=label, name=name, categorical=categorical, drop=drop, missing=missing,
        max_categories=max_categories, range_tolerance=range_tolerance,
        **({"missing_tokens": missing_tokens} if missing_tokens else {}),
    )  # fmt: skip
    table = s.table
    assert table is not None
    text = json.dumps(s.to_dict(), indent=2) + "\n"
    if out is not None:
        _write_atomic(out, text)
    columns = _column_rows(s)
    payload = {
        "file": str(file), "out": None if out is None else str(out), "digest": digest_hex(s.digest()),
        "features": s.num_features, "label": table.label, "classes": list(table.classes),
        "ignored_columns": list(table.ignored_columns), "columns": columns, "schema": s.to_dict(),
    }  # fmt: skip

    def human() -> str:
        lines = _describe_table(s)
        lines.append(f"schema digest  {digest_hex(s.digest())} (a draft: agree on it, then every site imports with it)")
        if out is not None:
            lines.append(f"wrote          {out}")
        return "\n".join(lines)

    if as_json or out is not None:
        emit(as_json, payload, human)
    else:
        click.echo(human(), err=True)
        click.echo(text, nl=False)


@data.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--schema", "schema_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The consortium's agreed schema (JSON, from `fedchain data schema infer`).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The participant data file to write (.npz with the schema digest).")
@click.option("--drop", multiple=True, metavar="COLUMN", help="Skip a local column the schema does not describe (repeatable).")
@click.option("--max-problems", type=click.IntRange(min=1), default=20, show_default=True,
              help="Most failing cells listed (the rest are counted).")
@json_option
def import_cmd(file: Path, schema_path: Path, out: Path, drop: tuple[str, ...], max_problems: int, as_json: bool) -> None:
    """Import the table FILE under the agreed schema: validate every row, preprocess, write the data file.

    Columns are matched by header. The schema's preprocessing is applied exactly (category
    encodings, its fixed normalisation constants, imputation per its missing-value policy);
    any failing row is reported (line, column, value, what was expected) and nothing is written.
    """
    from fedchain.fl.schema import DataSchema
    from fedchain.fl.table import import_table, write_client_file

    s = DataSchema.from_json(schema_path.read_bytes())
    imported = import_table(file, s, drop=drop, max_listed=max_problems)
    write_client_file(out, imported)
    payload = {
        "file": str(file), "out": str(out), "schema": str(schema_path), "schema_digest": digest_hex(s.digest()),
        "dataset": s.dataset, "samples": int(imported.y.size), "features": s.num_features,
        "label_counts": imported.label_counts, "imputed": imported.imputed,
    }  # fmt: skip

    def human() -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in imported.label_counts.items())
        imputed = ", ".join(f"{k}: {v}" for k, v in imported.imputed.items()) or "none"
        return "\n".join([
            f"imported       {imported.y.size} rows of {file} ({counts})",
            f"features       {s.num_features} {s.dtype} (the schema's encodings and normalisation)",
            f"imputed cells  {imputed}",
            f"schema digest  {digest_hex(s.digest())} ({s.dataset})",
            f"wrote          {out}",
        ])  # fmt: skip

    emit(as_json, payload, human)

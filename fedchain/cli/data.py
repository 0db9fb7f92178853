"""``fedchain data``: datasets, their schemas, and per-participant partitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from fedchain.cli.options import emit, json_option
from fedchain.types import digest_hex


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


@data.command("schema")
@click.argument("dataset")
@click.option("--split-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the stratified train/test split (datasets without their own split).")  # fmt: skip
@json_option
def schema(dataset: str, split_seed: int, as_json: bool) -> None:
    """Print DATASET's data schema and its digest (what the chain records)."""
    from fedchain.fl.datasets import load_dataset

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

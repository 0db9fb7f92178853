#!/usr/bin/env python3
"""Federated-learning benchmark (minutes, not CI): accuracy of the FL engine against
centralised training, the five algorithms under strong label skew, robust aggregation
under attack, and federated vs centralised AUC on the two tables.

Writes ``bench_fl.json`` (per-round metrics of every run) and ``bench_fl.png`` into
``--out``; ``--json`` prints the summary as one JSON document on stdout. Progress goes
to stderr. Sizes are options: the defaults use a seeded MNIST subset and a small CNN so
that the whole run fits in about 15-25 minutes on two CPU cores.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import click
import torch
from rich.console import Console

from fedchain.engine.reports import RoundReport, RunReport
from fedchain.fl.attacks import AttackSpec
from fedchain.fl.centralised import train_centralised
from fedchain.fl.datasets import load_dataset, subset
from fedchain.fl.models import ModelSpec, default_model_spec
from fedchain.fl.records import RobustConfig
from fedchain.sim.config import AttackerGroup, ExperimentConfig
from fedchain.sim.memory import run_in_memory

ALGORITHMS = ("fedavg", "fedprox", "scaffold", "fednova", "qfedavg")
ATTACKS = {
    "sign_flip": AttackSpec("sign_flip", 1.0),
    "scaling_x10": AttackSpec("scaling", 10.0),
    "sign_flip_x10": AttackSpec("sign_flip", 10.0),
}

console = Console(stderr=True)


def pct(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(100.0 * x, 2)


def run(label: str, config: ExperimentConfig, data: Any, runs: dict[str, Any]) -> RunReport:
    """One in-memory run of the round engine, recorded under ``label``."""
    t0 = time.perf_counter()

    def show(row: RoundReport) -> None:
        console.print(f"  [{label}] round {int(row.round_id):>3}: acc {row.accuracy or math.nan:.4f}  "
                      f"rejected {len(row.rejected)}", highlight=False)

    result = run_in_memory(config, dataset=data, on_round=show if config.rounds <= 5 else None)
    final = result.final
    console.print(
        f"{label:<40} acc {final.accuracy or math.nan:.4f}  auc {final.auc if final.auc is not None else '-'}  "
        f"({time.perf_counter() - t0:.1f}s)",
        highlight=False,
    )
    runs[label] = result.to_json()
    return result


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON document on stdout.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-results"),
              show_default=True)
@click.option("--max-train", default=10000, show_default=True, help="MNIST training samples (seeded subset; 60000 = all).")
@click.option("--max-test", default=2000, show_default=True, help="MNIST test samples (seeded subset).")
@click.option("--rounds", default=30, show_default=True, help="Federated rounds (= centralised epochs).")
@click.option("--clients", default=10, show_default=True)
@click.option("--local-epochs", default=1, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--lr", default=0.05, show_default=True)
@click.option("--channels", default="8,16", show_default=True, help="CNN conv channels.")
@click.option("--hidden", default="32", show_default=True, help="CNN hidden layer sizes.")
@click.option("--attack-fraction", default=0.3, show_default=True)
@click.option("--attacks", "attack_names", default="sign_flip,scaling_x10,sign_flip_x10", show_default=True)
@click.option("--table-rounds", default=30, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--skip", default="", help="Comma-separated parts to skip: iid, skew, algorithms, attacks, tables.")
def main(
    as_json: bool,
    out_dir: Path,
    max_train: int,
    max_test: int,
    rounds: int,
    clients: int,
    local_epochs: int,
    batch_size: int,
    lr: float,
    channels: str,
    hidden: str,
    attack_fraction: float,
    attack_names: str,
    table_rounds: int,
    seed: int,
    skip: str,
) -> None:
    """Run the FL benchmark."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    skipped = {s for s in skip.split(",") if s}
    out_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Any] = {}
    summary: dict[str, Any] = {}

    mnist = subset(load_dataset("mnist", seed=seed), max_train, max_test, seed)
    spec = ModelSpec(
        arch="cnn",
        input_shape=mnist.input_shape,
        num_classes=10,
        channels=tuple(int(c) for c in channels.split(",")),
        hidden=tuple(int(h) for h in hidden.split(",") if h),
    )
    local = {"lr": lr, "batch_size": batch_size, "local_epochs": local_epochs}

    def cfg(strategy: str, params: dict[str, float] | None = None, robust: tuple[RobustConfig, ...] = (),
            partition: str = "iid", alpha: float = 0.5, attack: AttackSpec | None = None) -> ExperimentConfig:
        return ExperimentConfig(
            dataset="mnist", strategy=strategy, strategy_params=tuple((params or {}).items()), robust=robust,
            lr=lr, batch_size=batch_size, local_epochs=local_epochs, clients=clients, partition=partition,
            alpha=alpha, rounds=rounds, seed=seed, model=spec, min_updates=1,
            attacks=(AttackerGroup(attack, int(round(attack_fraction * clients))),) if attack is not None else (),
        )

    console.print(f"MNIST subset: {len(mnist.y_train)} train / {len(mnist.y_test)} test; CNN {spec.to_dict()}", highlight=False)
    central = train_centralised(
        mnist, spec, passes=rounds * local_epochs, chunk=local_epochs, batch_size=batch_size, lr=lr, seed=seed
    )
    central_acc = central.final["accuracy"]
    console.print(f"{'centralised':<40} acc {central_acc:.4f}  ({central.seconds:.1f}s)", highlight=False)
    runs["mnist/centralised"] = {"epochs": list(central.epochs), "seconds": round(central.seconds, 3)}
    summary["mnist_centralised_accuracy"] = pct(central_acc)

    iid_acc = None
    if "iid" not in skipped:
        iid_acc = run("mnist/iid/fedavg", cfg("fedavg"), mnist, runs).final.accuracy
        summary["mnist_iid_fedavg_accuracy"] = pct(iid_acc)
        summary["mnist_iid_gap_points"] = round(100 * (central_acc - iid_acc), 2)
        summary["mnist_iid_within_1_point"] = bool(100 * (central_acc - iid_acc) <= 1.0)
    if "skew" not in skipped:
        acc = run("mnist/dirichlet0.5/fedavg", cfg("fedavg", partition="dirichlet", alpha=0.5), mnist, runs).final.accuracy
        summary["mnist_dir05_fedavg_accuracy"] = pct(acc)
        summary["mnist_dir05_gap_points"] = round(100 * (central_acc - acc), 2)
        summary["mnist_dir05_within_2_points"] = bool(100 * (central_acc - acc) <= 2.0)
    if "algorithms" not in skipped:
        params = {
            "fedavg": {},
            "fedprox": {"mu": 0.01},
            "scaffold": {},
            "fednova": {},
            "qfedavg": {"q": 0.1},
        }
        table = {}
        for name in ALGORITHMS:
            result = run(f"mnist/dirichlet0.1/{name}", cfg(name, params[name], partition="dirichlet", alpha=0.1), mnist, runs)
            table[name] = {"accuracy": pct(result.final.accuracy), "params": params[name]}
        summary["mnist_dir01_algorithms"] = table
    if "attacks" not in skipped:
        clean = iid_acc if iid_acc is not None else run("mnist/iid/fedavg", cfg("fedavg"), mnist, runs).final.accuracy
        f = int(round(attack_fraction * clients))
        beta = min((f + 0.5) / clients, 0.49)
        defences = {
            "none": (),
            "median": (RobustConfig("median"),),
            "trimmed_mean": (RobustConfig("trimmed_mean", {"beta": beta}),),
            "multi_krum": (RobustConfig("multi_krum", {"f": f}),),
        }
        table = {}
        for attack_name in [a for a in attack_names.split(",") if a]:
            attack = ATTACKS[attack_name]
            row = {}
            for defence, rules in defences.items():
                result = run(f"mnist/attack/{attack_name}/{defence}", cfg("fedavg", robust=rules, attack=attack), mnist, runs)
                acc = result.final.accuracy if result.final.accuracy is not None else math.nan
                row[defence] = {
                    "accuracy": pct(acc),
                    "drop_points_vs_clean": None if not math.isfinite(acc) else round(100 * (clean - acc), 2),
                    "attackers_rejected_last_round": result.final.rejected_among(set(result.attackers)),
                }
            table[attack_name] = row
        summary["mnist_attacks"] = {"clean_fedavg_accuracy": pct(clean), "attackers": f, "trimmed_mean_beta": beta,
                                    "results": table}
    if "tables" not in skipped:
        tables = {}
        for name in ("breast_cancer", "german_credit"):
            data = load_dataset(name, seed=seed)
            tspec = default_model_spec(data)
            c = train_centralised(data, tspec, passes=table_rounds, chunk=1, batch_size=16, lr=0.05, seed=seed)
            runs[f"{name}/centralised"] = {"epochs": list(c.epochs), "seconds": round(c.seconds, 3)}
            entry: dict[str, Any] = {"centralised_auc": round(c.final["auc"], 4), "model": tspec.to_dict()}
            for partition, alpha in (("iid", 0.5), ("dirichlet", 0.5)):
                sim = ExperimentConfig(
                    dataset=name, strategy="fedavg", lr=0.05, batch_size=16, local_epochs=1, clients=5,
                    partition=partition, alpha=alpha, rounds=table_rounds, seed=seed, model=tspec, min_updates=1,
                )
                result = run(f"{name}/{partition}/fedavg", sim, data, runs)
                entry[f"federated_auc_{partition}"] = round(result.final.auc or float("nan"), 4)
            tables[name] = entry
            console.print(f"{name}: {entry}", highlight=False)
        summary["tables"] = tables

    wall = time.perf_counter() - started
    meta = {
        "mnist_subset": {"train": int(len(mnist.y_train)), "test": int(len(mnist.y_test)), "of": [60000, 10000]},
        "model": spec.to_dict(),
        "rounds": rounds,
        "clients": clients,
        "local": local,
        "attack_fraction": attack_fraction,
        "seed": seed,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "wall_seconds": round(wall, 1),
    }
    document = {"meta": meta, "summary": summary, "runs": runs}
    json_path = out_dir / "bench_fl.json"
    json_path.write_text(json.dumps(document, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
    png_path = out_dir / "bench_fl.png"
    plot(runs, png_path)
    result_doc = {"meta": meta, "summary": summary, "json": str(json_path), "plot": str(png_path)}
    if as_json:
        click.echo(json.dumps(result_doc, indent=2, sort_keys=True, allow_nan=False))
    else:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        click.echo(f"wrote {json_path} and {png_path} in {wall:.0f}s")


def plot(runs: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("MNIST: federated vs centralised",
         lambda k: k in ("mnist/centralised", "mnist/iid/fedavg", "mnist/dirichlet0.5/fedavg")),
        ("MNIST Dirichlet(0.1): algorithms", lambda k: k.startswith("mnist/dirichlet0.1/")),
        ("MNIST under attack (30% attackers)", lambda k: k.startswith("mnist/attack/") or k == "mnist/iid/fedavg"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(18, 5))
    for ax, (title, wanted) in zip(axes, panels, strict=True):
        for key, run in runs.items():
            if not wanted(key):
                continue
            if "epochs" in run:
                xs = [e["epochs"] for e in run["epochs"]]
                ys = [e["accuracy"] for e in run["epochs"]]
            else:
                xs = [r["round"] for r in run["rounds"]]
                ys = [r["evaluation"].get("accuracy") or float("nan") for r in run["rounds"]]
            ax.plot(xs, ys, label=key.removeprefix("mnist/"), linewidth=1.2)
        ax.set_title(title)
        ax.set_xlabel("round (centralised: epoch)")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0.0, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

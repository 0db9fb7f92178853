#!/usr/bin/env python
"""fedchain against Flower: one federated job run three ways in one invocation, side by side.

The job: ``--dataset`` (breast_cancer), ``--clients`` (10) clients on the same seeded partitions
(:func:`fedchain.sim.config.write_partitions`), ``--rounds`` (5) rounds of FedAvg, the same model
(the dataset's default) and the same local training (``--local-epochs``, ``--batch-size``, ``--lr``:
fedchain's :func:`~fedchain.protocol.training.train_participant` in all three), run

* **ledger**: ``fedchain simulate`` as a command of its own - devnet, blob store, deployment,
  participant processes (``--participants-per-process``, by default as many processes as cores:
  Flower's Ray backend runs one actor per core), every update stored and committed on chain, the
  aggregator finalising on chain, then the audit; once per devnet of ``--devnets`` (by default the
  run's own ephemeral chain, the primary figures, and then the persisting managed devnet, its
  figures and ratios suffixed ``_managed``);
* **memory**: the same round loop (:func:`fedchain.engine.loop.run_rounds`) over the in-memory
  transport, clients trained one after another on one thread, as a command of its own
  (this script with ``--part memory``);
* **flower**: Flower's simulation engine (``flwr[simulation]``, Ray backend, ``FedAvg`` with
  ``fraction_fit=1``, a ``NumPyClient`` per partition whose ``fit()`` is fedchain's local training
  step), run by ``bench_vs_flower_driver.py`` in a virtualenv of its own (``--flower-venv``,
  created on first use: flwr is a benchmark dependency, never one of fedchain's).

Each runs as its own command, one after another, pinned to the same ``--cores`` CPUs; each
command's wall time is measured from outside. A round's time is measured the same way in all three:
from the round's opening (fedchain: ``open_round``; Flower: ``configure_fit``) to its global model
scored on the test split (fedchain: the loop's evaluator; Flower: the strategy's ``evaluate_fn``),
averaged over the rounds after the first (start-up left out: Ray's actors load the client app in
round 1); every round's figure is printed too. Goals: ledger round / Flower round <= 1.5, ledger
command / Flower command <= 1.0. The exit status is 0 only when both are met and the three final
accuracies lie within 0.02 of each other. ``--json`` prints one JSON document on stdout; progress
and the commands' logs go to stderr.

    python scripts/bench_vs_flower.py --json [--clients 10 --rounds 5 --skip-flower]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).resolve().with_name("bench_vs_flower_driver.py")
FLOWER_REQUIREMENTS = ("flwr[simulation]==1.42.0", "torch==2.13.0", "safetensors==0.8.0", "scikit-learn==1.9.1")
"""The Flower side's virtualenv: Flower's simulation engine, the CPU torch fedchain pins, and the two fedchain
dependencies its training and scoring import beyond those (fedchain itself goes in ``--no-deps``)."""
ROUND_RATIO_GOAL = 1.5
COMMAND_RATIO_GOAL = 1.0
ACCURACY_SPREAD_MAX = 0.02


def log(message: str) -> None:
    print(f"[bench_vs_flower] {message}", file=sys.stderr, flush=True)


def steady_mean(values: list[float]) -> float:
    """The mean of the rounds after the first (of all of them when there is only one)."""
    rest = values[1:] if len(values) > 1 else values
    return sum(rest) / len(rest)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else round(a / b, 3)


def flower_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_flower_venv(venv: Path) -> Path:
    """The Flower virtualenv's interpreter, the virtualenv created and filled first if it is missing or stale."""
    stamp = venv / "fedchain-bench-requirements.txt"
    wanted = "\n".join(FLOWER_REQUIREMENTS) + "\n"
    python = flower_python(venv)
    if python.exists() and stamp.is_file() and stamp.read_text(encoding="utf-8") == wanted:
        return python
    log(f"creating {venv} with {', '.join(FLOWER_REQUIREMENTS)} and fedchain (--no-deps); this takes minutes once")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *FLOWER_REQUIREMENTS], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True, stdout=subprocess.DEVNULL)
    stamp.write_text(wanted, encoding="utf-8")
    return python


def pinned(cores: list[int]) -> Any:
    """A ``preexec_fn`` pinning the child (and its children) to ``cores``."""
    def pin() -> None:
        os.sched_setaffinity(0, cores)
    return pin


def timed_command(cmd: list[str], cores: list[int], env: dict[str, str] | None = None) -> tuple[dict[str, Any], float]:
    """Run ``cmd`` pinned to ``cores``; its JSON document from stdout and its wall time (the stderr passes through)."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, preexec_fn=pinned(cores),
                          env=env, check=False)
    wall = time.perf_counter() - t0
    start = done.stdout.find("{")
    try:
        doc = json.loads(done.stdout[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        raise SystemExit(f"{' '.join(cmd[:4])}... exited {done.returncode} without a JSON document: "
                         f"{done.stdout[-2000:]}")
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... exited {done.returncode}: {json.dumps(doc)[:2000]}")
    return doc, wall


def job_options(args: argparse.Namespace) -> list[str]:
    return ["--dataset", args.dataset, "--clients", str(args.clients), "--rounds", str(args.rounds),
            "--local-epochs", str(args.local_epochs), "--batch-size", str(args.batch_size), "--lr", repr(args.lr),
            "--seed", str(args.seed)]


def experiment(args: argparse.Namespace) -> Any:
    from fedchain.sim.config import ExperimentConfig

    return ExperimentConfig(dataset=args.dataset, clients=args.clients, rounds=args.rounds,
                            local_epochs=args.local_epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)


def weights_digest(weights: dict[str, Any]) -> str:
    import numpy as np

    return hashlib.sha256(b"".join(np.asarray(weights[k], dtype=np.float32).tobytes() for k in sorted(weights))).hexdigest()


def memory_part(args: argparse.Namespace) -> int:
    """``--part memory``: the in-memory transport's run, as one JSON document (round times, evaluations, weights)."""
    import torch

    torch.set_num_threads(1)
    from fedchain.sim.memory import run_in_memory

    report = run_in_memory(experiment(args))
    final = report.final_model
    assert final is not None
    weights = {k: final.weights[k].tolist() for k in sorted(final.weights)}
    print(json.dumps({"round_s": [round(r.wall_s, 4) for r in report.rounds],
                      "evaluations": [dict(r.evaluation) for r in report.rounds],
                      "final_weights": weights, "final_weights_sha256": weights_digest(final.weights)}))
    return 0


def write_job(args: argparse.Namespace, where: Path, cores: int) -> Path:
    """The Flower driver's job: the task document, the partitions, the test split (what the memory run derives)."""
    import numpy as np

    from fedchain.sim.config import build_task, load_task_dataset, write_partitions
    from fedchain.sim.memory import participant_address

    cfg = experiment(args)
    ds = load_task_dataset(cfg)
    doc = build_task(cfg, ds)
    (where / "task.json").write_bytes(doc.to_bytes())
    parts = write_partitions(cfg, ds, where / "data")
    np.savez(where / "test.npz", x=ds.x_test, y=ds.y_test)
    job = {"task": str(where / "task.json"), "test": str(where / "test.npz"), "rounds": args.rounds, "cores": cores,
           "clients": [{"data": str(p.path), "address": participant_address(i, cfg.seed)} for i, p in enumerate(parts)]}
    path = where / "job.json"
    path.write_text(json.dumps(job, indent=1), encoding="utf-8")
    return path


def summary(name: str, doc: dict[str, Any], command_s: float, cores: int) -> dict[str, Any]:
    rounds = [float(x) for x in doc["round_s"]]
    evaluations = doc["evaluations"]
    return {
        f"{name}_round_s": round(steady_mean(rounds), 4),
        f"{name}_round_s_all_rounds_mean": round(sum(rounds) / len(rounds), 4),
        f"{name}_round_s_per_round": rounds,
        f"{name}_command_s": round(command_s, 3),
        f"{name}_final_accuracy": evaluations[-1].get("accuracy"),
        f"{name}_final_auc": evaluations[-1].get("auc"),
        f"{name}_accuracy_per_round": [e.get("accuracy") for e in evaluations],
        f"cores_{name}": cores,
    }


def max_abs_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    import numpy as np

    return float(max(np.max(np.abs(np.asarray(a[k], dtype=np.float64) - np.asarray(b[k], dtype=np.float64)))
                     for k in a))


def compare(report: dict[str, Any], memory: dict[str, Any] | None, flower: dict[str, Any] | None) -> dict[str, Any]:
    """The ratios, the accuracies' spread and the goals' flags, from the raw figures already in ``report``."""
    out: dict[str, Any] = {
        "round_ratio_vs_flower": ratio(report.get("fedchain_ledger_round_s"), report.get("flower_round_s")),
        "command_ratio_vs_flower": ratio(report.get("fedchain_ledger_command_s"), report.get("flower_command_s")),
        "memory_round_ratio_vs_flower": ratio(report.get("fedchain_memory_round_s"), report.get("flower_round_s")),
        "memory_command_ratio_vs_flower": ratio(report.get("fedchain_memory_command_s"), report.get("flower_command_s")),
        "ledger_round_ratio_vs_memory": ratio(report.get("fedchain_ledger_round_s"), report.get("fedchain_memory_round_s")),
    }
    for devnet in DEVNETS:  # a further ledger run's own ratios
        if f"fedchain_ledger_{devnet}_round_s" in report:
            out[f"round_ratio_vs_flower_{devnet}"] = ratio(report[f"fedchain_ledger_{devnet}_round_s"],
                                                           report.get("flower_round_s"))
            out[f"command_ratio_vs_flower_{devnet}"] = ratio(report.get(f"fedchain_ledger_{devnet}_command_s"),
                                                             report.get("flower_command_s"))
    accuracies = {k: v for k, v in ((n, report.get(f"{n}_final_accuracy"))
                                    for n in ("fedchain_ledger", "fedchain_memory", "flower")) if v is not None}
    spread = max(accuracies.values()) - min(accuracies.values()) if accuracies else None
    out["final_accuracy_spread"] = None if spread is None else round(spread, 4)
    out["accuracies_close"] = None if spread is None else bool(spread <= ACCURACY_SPREAD_MAX)
    if memory is not None and flower is not None:
        out["max_abs_weight_diff_memory_vs_flower"] = max_abs_diff(memory["final_weights"], flower["final_weights"])
    rr, cr = out["round_ratio_vs_flower"], out["command_ratio_vs_flower"]
    out["goals"] = {"round_ratio_max": ROUND_RATIO_GOAL, "command_ratio_max": COMMAND_RATIO_GOAL,
                    "final_accuracy_spread_max": ACCURACY_SPREAD_MAX}
    out["met"] = {"round_ratio": None if rr is None else bool(rr <= ROUND_RATIO_GOAL),
                  "command_ratio": None if cr is None else bool(cr <= COMMAND_RATIO_GOAL)}
    return out


DEVNETS = {
    "ephemeral": ("`simulate --devnet ephemeral`: a fresh anvil of the run's own with interval mining, its chain "
                  "never written to disk (a throwaway simulation; what Flower's engine keeps is nothing either)"),
    "managed": ("`simulate` as it defaults: the state directory's devnet, anvil behind fedchain's supervisor, which "
                "writes the chain to disk before any answer shows a mined transaction (crash-safe, resumable)"),
    "plain": "a bare anvil started here and passed to simulate as --rpc-url (its start counted)",
}


def ledger_run(args: argparse.Namespace, devnet: str, work: Path, cores: list[int],
               per_process: int) -> tuple[dict[str, Any], float]:
    """One ``fedchain simulate`` of the job on ``devnet``: its JSON report (with the round times and
    evaluations under the keys :func:`summary` reads) and its wall time."""
    cmd = [sys.executable, "-m", "fedchain", "simulate", *job_options(args), "--json",
           "--participants-per-process", str(per_process), "--store", args.store,
           "--out", str(work / "out"), "--state-dir", str(work / "state")]
    with ExitStack() as stack:
        devnet_s = 0.0
        if devnet == "plain":  # a bare anvil, its start added to the command's time
            from fedchain.config import Settings
            from fedchain.services.devnet import DevnetProcess

            t0 = time.perf_counter()
            os.sched_setaffinity(0, cores)  # anvil on the same CPUs as the rest
            dev = stack.enter_context(DevnetProcess("anvil", block_time_s=Settings().devnet_block_time_s))
            devnet_s = time.perf_counter() - t0
            cmd += ["--rpc-url", dev.url]
        elif devnet == "ephemeral":
            cmd += ["--devnet", "ephemeral"]
        ledger, ledger_s = timed_command(cmd, cores)
    ledger["round_s"] = [r["wall_s"] for r in ledger["rounds"]]
    ledger["evaluations"] = [r["evaluation"] for r in ledger["rounds"]]
    return ledger, ledger_s + devnet_s


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    available = sorted(os.sched_getaffinity(0))
    cores = available[: args.cores] if args.cores else available
    n = len(cores)
    per_process = args.participants_per_process or math.ceil(args.clients / n)
    report: dict[str, Any] = {
        "benchmark": "fedchain (ledger, in memory) against Flower's simulation engine, one job",
        "dataset": args.dataset, "clients": args.clients, "rounds": args.rounds,
        "local": {"epochs": args.local_epochs, "batch_size": args.batch_size, "lr": args.lr}, "seed": args.seed,
        "strategy": "fedavg (fedchain: its default norm bound 100 and weight-share cap 0.3, neither binding here)",
        "cores_available": len(available), "cpu_count": os.cpu_count(),
        "round_time_definition": (
            "wall seconds from a round's opening (fedchain open_round / Flower configure_fit) to its global model "
            "scored on the test split (fedchain's evaluator / Flower's evaluate_fn); *_round_s is the mean over "
            "rounds 2..R (round 1 carries start-up: Ray loads the client app in its actors), "
            "*_round_s_all_rounds_mean over every round"),
        "command_time_definition": (
            "wall seconds of each side's whole command, measured from outside and run one after another: ledger = "
            "`fedchain simulate` (services, deployment, participant processes, rounds, audit, reports), memory = "
            "this script's --part memory, flower = the driver in its virtualenv (imports, Ray, simulation)"),
        "ledger_participants": (f"{math.ceil(args.clients / per_process)} OS processes of up to {per_process} agents "
                                f"each (`simulate --participants-per-process {per_process}`; Flower runs {n} Ray "
                                "actors, one per core); plus the devnet, the blob store node and the aggregator"),
        "ledger_store": args.store,
        "ledger_devnets": {d: DEVNETS[d] for d in args.devnets},
        "ledger_devnet_primary": (f"{args.devnets[0]}: the fedchain_ledger_* figures and the ratios without a suffix; "
                                  "each further devnet's figures carry its name"),
        "same_partitions": "all three partition with fedchain.sim.config (same seed, same function); memory and "
                           "Flower use the same participant addresses, hence the same training seeds; the ledger's "
                           "participants have their keystores' addresses, so their shuffles differ",
    }
    memory = flower = None
    with tempfile.TemporaryDirectory(prefix="fedchain-bench-vs-flower-") as tmp_name:
        tmp = Path(tmp_name)
        log("in memory ...")
        memory, memory_s = timed_command([sys.executable, str(Path(__file__).resolve()), "--part", "memory",
                                          *job_options(args)], cores)
        report.update(summary("fedchain_memory", memory, memory_s, 1))
        if not args.skip_flower:
            python = ensure_flower_venv(args.flower_venv)
            job_dir = tmp / "flower"
            job_dir.mkdir()
            job = write_job(args, job_dir, n)
            log(f"Flower (simulation engine, {n} actors) ...")
            env = dict(os.environ, RAY_DEDUP_LOGS="0", RAY_USAGE_STATS_ENABLED="0", PYTHONWARNINGS="ignore")
            flower, flower_s = timed_command([str(python), str(DRIVER), str(job)], cores, env=env)
            report.update(summary("flower", flower, flower_s, n))
            report["flower_versions"] = {"flwr": flower["flwr"], "torch": flower["torch"]}
            report["flower_engine"] = ("flwr.simulation.run_simulation, Ray backend, client_resources num_cpus 1 "
                                       "(Flower 1.42 marks it deprecated for `flwr run`, which drives the same engine)")
            report["flower_phases_s"] = {k: flower[k] for k in ("import_s", "to_first_round_s", "simulation_s")}
        if not args.skip_ledger:
            for i, devnet in enumerate(args.devnets):
                name = "fedchain_ledger" if i == 0 else f"fedchain_ledger_{devnet}"
                log(f"ledger on the {devnet} devnet (fedchain simulate, --participants-per-process {per_process}) ...")
                ledger, ledger_s = ledger_run(args, devnet, tmp / devnet, cores, per_process)
                report.update(summary(name, ledger, ledger_s, n))
                report[f"{name}_devnet"] = devnet
                report[f"{name}_phases_s"] = ledger["timing"]
                report[f"{name}_audit_ok"] = ledger["audit"]["ok"]
    report.update(compare(report, memory, flower))
    report["wall_s"] = round(time.perf_counter() - started, 2)
    return report


def devnet_list(text: str) -> list[str]:
    """``--devnets``: names from :data:`DEVNETS`, each once."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in DEVNETS]
    if not names or bad or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct names of {', '.join(DEVNETS)}, got {text!r}")
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="breast_cancer")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--local-epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cores", type=int, default=0, help="Pin every side to this many CPUs [default: all available].")
    ap.add_argument("--participants-per-process", type=int, default=0,
                    help="Ledger agents per participant process [default: clients / cores, rounded up].")
    ap.add_argument("--store", choices=["ipfs", "local"], default="ipfs", help="The ledger run's blob store.")
    ap.add_argument("--devnets", type=devnet_list, default=["ephemeral", "managed"],
                    help="The ledger runs' devnets, comma-separated, one run each, the first the primary one: "
                         "ephemeral (simulate --devnet ephemeral), managed (simulate's default, the persisting "
                         "supervisor), plain (a bare anvil started here) [default: ephemeral,managed].")
    ap.add_argument("--flower-venv", type=Path, default=ROOT / ".venv-flower",
                    help="Flower's virtualenv (created when missing).")
    ap.add_argument("--skip-flower", action="store_true", help="Leave Flower out (no virtualenv needed).")
    ap.add_argument("--skip-ledger", action="store_true", help="Leave the ledger run out.")
    ap.add_argument("--part", choices=["memory"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="Print one JSON document on stdout.")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.rounds < 1:
        ap.error("--clients and --rounds must be >= 1")
    if args.part == "memory":
        return memory_part(args)
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    met = [v for v in report["met"].values() if v is not None]
    ok = all(met) and report["accuracies_close"] is not False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

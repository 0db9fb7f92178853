#!/usr/bin/env python
"""Overhead of the ledger: the same MNIST federation (CNN, 10 clients by default) run

* over the ledger transport - anvil + IPFS, participants as separate OS processes, every update
  in IPFS and committed on chain, the aggregator finalising on chain (``fedchain simulate``), and
* over the in-memory transport - the same round engine (:func:`fedchain.engine.loop.run_rounds`),
  clients trained one after another in this process.

Both runs come from one :class:`fedchain.sim.config.ExperimentConfig`, so they train the same
task with the same seeds through the same loop; only the transport differs.

Headline figures: the total wall-time overhead of the ledger run over the plain loop (everything:
dataset preparation, starting the devnet and the IPFS node, deployment, participant processes,
rounds; target <= 10 %), the CPU-time overhead, and the rounds-only wall-time overhead (rounds
alone, services and set-up left out), next to the audit replay time as a share of the ledger run
(target <= 10 %). The phase breakdown, gas and bytes per round follow. The exit status is 0 only
when the total wall-time overhead and the audit share meet their targets and the audit is clean.
Prints one JSON document with ``--json``.

    python scripts/bench_overhead.py --json [--clients 10 --rounds 3 --max-train 60000 --store ipfs]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-train", type=int, default=60000, help="Seeded training subset size, both runs (60000: all of MNIST).")
    ap.add_argument("--max-test", type=int, default=1000)
    ap.add_argument("--local-epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--store", choices=["ipfs", "local"], default="ipfs")
    ap.add_argument("--out", type=Path, default=None, help="Directory for the run's reports [default: a temporary one].")
    ap.add_argument("--json", action="store_true", help="Print one JSON document on stdout.")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from fedchain.config import Settings
    from fedchain.sim.config import ExperimentConfig, build_task, load_task_dataset
    from fedchain.sim.federation import run_federation
    from fedchain.sim.memory import run_in_memory

    out = args.out or Path(tempfile.mkdtemp(prefix="fedchain-bench-overhead-"))
    cfg = ExperimentConfig(
        dataset=args.dataset, clients=args.clients, rounds=args.rounds, local_epochs=args.local_epochs,
        batch_size=args.batch_size, lr=args.lr, max_train_samples=args.max_train, max_test_samples=args.max_test,
        min_updates=max(1, args.clients // 2), commit_duration=1800,
    )
    ds = load_task_dataset(cfg)
    doc = build_task(cfg, ds)

    import resource

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    c0 = cpu()
    t0 = time.perf_counter()
    baseline = run_in_memory(cfg, dataset=ds)
    plain_wall = time.perf_counter() - t0
    plain_cpu = cpu() - c0
    c1 = cpu()

    settings = Settings(state_dir=out / "state", store=args.store)
    result = run_federation(cfg, settings, out / "ledger", progress=not args.json)
    ledger_cpu = cpu() - c1  # orchestrator + aggregator + participant processes + services started here
    t = result.timing
    ledger_total_wall = result.wall_time_s  # the whole ledger run up to the audit, services included
    ledger_wall = ledger_total_wall - t["services_s"]
    ledger_rounds = t["rounds_s"]
    gas_by_round = {r.round: r.gas for r in result.audit.rounds}
    gas_rounds = [sum(v for k, v in gas_by_round.get(int(r.round_id), {}).items()
                      if k in ("open", "commit_total", "finalize", "close")) for r in result.rounds]
    bytes_rounds = [r.traffic.downloaded_by_aggregator + r.traffic.uploaded_by_aggregator
                    + r.traffic.uploaded_by_participants for r in result.rounds]
    audit_s = result.audit.wall_time_s
    report = {
        "benchmark": "ledger overhead: one round loop on two transports",
        "dataset": args.dataset,
        "model": doc.spec().to_dict(),
        "clients": args.clients,
        "rounds": args.rounds,
        "train_samples": int(len(ds.y_train)),
        "test_samples": int(len(ds.y_test)),
        "subset_note": (f"{len(ds.y_train)} training samples: "
                        + ("the whole training split" if args.max_train >= 60000
                           else "a seeded subset, so the run fits in minutes")),
        "store": result.store,
        "headline": {
            "wall_overhead_total_fraction": round(ledger_total_wall / plain_wall - 1.0, 4),
            "cpu_overhead_fraction": round(ledger_cpu / plain_cpu - 1.0, 4),
            "wall_overhead_rounds_only_fraction": round(ledger_rounds / plain_wall - 1.0, 4),
            "audit_fraction_of_run": round(audit_s / ledger_total_wall, 4),
        },
        "plain_wall_s": round(plain_wall, 3),
        "plain_final_accuracy": baseline.final_accuracy,
        "ledger_total_wall_s": round(ledger_total_wall, 3),
        "ledger_wall_without_services_s": round(ledger_wall, 3),
        "ledger_phases_s": {k: round(v, 3) for k, v in t.items()},
        "ledger_final_accuracy": result.final_accuracy,
        "overhead_total_fraction": round(ledger_total_wall / plain_wall - 1.0, 4),
        "overhead_without_services_fraction": round(ledger_wall / plain_wall - 1.0, 4),
        "overhead_rounds_only_fraction": round(ledger_rounds / plain_wall - 1.0, 4),
        "round_wall_s": [round(r.wall_s, 3) for r in result.rounds],
        "plain_round_wall_s": [round(r.wall_s, 3) for r in baseline.rounds],
        "plain_cpu_s": round(plain_cpu, 3),
        "ledger_cpu_s": round(ledger_cpu, 3),
        "cpu_overhead_fraction": round(ledger_cpu / plain_cpu - 1.0, 4),
        "cpu_note": "participants train in parallel processes in the ledger run; the in-memory transport trains "
                    "clients one after another on one thread, so wall time and CPU time tell different stories",
        "audit_s": round(audit_s, 3),
        "audit_fraction_of_run": round(audit_s / ledger_total_wall, 4),
        "audit_ok": result.audit.ok,
        "gas_per_round": gas_rounds,
        "gas_per_round_mean": round(sum(gas_rounds) / len(gas_rounds)),
        "gas_by_function": result.gas.to_json(),
        "bytes_per_round": bytes_rounds,
        "bytes_per_round_mean": round(sum(bytes_rounds) / len(bytes_rounds)),
        "bytes_total": result.run.traffic.to_json(),
        "targets": {"overhead_total_fraction_max": 0.10, "audit_fraction_max": 0.10},
        "out_dir": str(out),
    }
    report["targets_met"] = {
        "overhead_total": report["overhead_total_fraction"] <= 0.10,
        "overhead_rounds": report["overhead_rounds_only_fraction"] <= 0.10,
        "audit": report["audit_fraction_of_run"] <= 0.10,
    }
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        h = report["headline"]
        print(f"wall-time overhead, total:       {h['wall_overhead_total_fraction']:+.1%} (target <= +10%)")
        print(f"CPU-time overhead:               {h['cpu_overhead_fraction']:+.1%}")
        print(f"wall-time overhead, rounds only: {h['wall_overhead_rounds_only_fraction']:+.1%}")
        print(f"audit share of the run:          {h['audit_fraction_of_run']:.1%} (target <= 10%)")
        for k, v in report.items():
            if k != "headline":
                print(f"{k}: {v}")
    ok = report["targets_met"]["overhead_total"] and report["targets_met"]["audit"] and report["audit_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

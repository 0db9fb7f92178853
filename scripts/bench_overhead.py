#!/usr/bin/env python
"""Overhead of the ledger: the same MNIST federation (CNN, 10 clients by default) run

* over the ledger transport - anvil + IPFS, participants as separate OS processes, every update
  in IPFS and committed on chain, the aggregator finalising on chain (``fedchain simulate``), and
* over the in-memory transport - the same round engine (:func:`fedchain.engine.loop.run_rounds`),
  clients trained one after another in this process.

Both runs come from one :class:`fedchain.sim.config.ExperimentConfig`, so they train the same
task with the same seeds through the same loop; only the transport differs.

Both run on the same CPUs: this process pins itself (and so the services and participant processes it
starts) to ``--cores`` CPUs before either run, and prints ``cores_baseline`` and ``cores_fedchain``. The
in-memory loop trains one client after another on one torch thread (fedchain's
:func:`~fedchain.fl.client.configure_torch`: one thread is what makes training reproducible bit for bit),
so it keeps one of those cores busy; the ledger run's participants train in parallel processes, one
torch thread each. Both clocks include loading the dataset. The ledger's participant agents are grouped
``--participants-per-process`` to a process, by default one process per core (``simulate
--participants-per-process``: each process pays the interpreter's, torch's and fedchain's start-up once,
not once per participant); ``--participants-per-process 1`` is the old layout of one process each.
``--profile`` also profiles the ledger run with cProfile - this process's share (the orchestrator and the
aggregator) and, merged, the participant processes' (started through a small wrapper of the interpreter that
runs ``fedchain participant`` commands under ``python -m cProfile``) - and prints the functions that take the
most time in each; the profiler slows what it watches, so the figures of a profiled run are not the benchmark's.
The ledger runs by default on a chain of its own that is never written to disk (``simulate --devnet
ephemeral``, its start on the ledger's clock); ``--devnet managed`` on the managed devnet simulate starts by
default (anvil behind the supervisor, which persists the chain before every answer), to measure what that
persistence costs; ``--devnet plain`` on a bare anvil started here.

Headline figures: the total wall-time overhead of the ledger run over the plain loop (everything:
dataset preparation, starting the devnet and the IPFS node, deployment, participant processes,
rounds; target <= 10 %), the CPU-time overhead, and the rounds-only wall-time overhead (rounds
alone, services and set-up left out), next to the audit replay time as a share of the ledger run
(target <= 10 %). The phase breakdown, gas and bytes per round follow. The exit status is 0 only
when the total wall-time overhead and the audit share meet their targets and the audit is clean.
Prints one JSON document with ``--json``.

    python scripts/bench_overhead.py --json [--clients 10 --rounds 3 --max-train 60000 --store ipfs --cores 2]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
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
    ap.add_argument("--cores", type=int, default=0,
                    help="Pin both runs to this many CPUs (the first ones available) [default: all available].")
    ap.add_argument("--participants-per-process", type=int, default=0,
                    help="Ledger participant agents per process [default: clients / cores, rounded up].")
    ap.add_argument("--devnet", choices=["ephemeral", "managed", "plain"], default="ephemeral",
                    help="ephemeral: a fresh chain of the ledger run's own, never written to disk (simulate --devnet "
                         "ephemeral); managed: fedchain's persisting devnet (anvil behind the supervisor, simulate's "
                         "default); plain: a bare anvil started here.")
    ap.add_argument("--profile", action="store_true",
                    help="Profile this process's share of the ledger run (cProfile) and print its top functions.")
    ap.add_argument("--out", type=Path, default=None, help="Directory for the run's reports [default: a temporary one].")
    ap.add_argument("--json", action="store_true", help="Print one JSON document on stdout.")
    args = ap.parse_args(argv)
    available = sorted(os.sched_getaffinity(0))
    if not 0 <= args.cores <= len(available):
        ap.error(f"--cores must be between 1 and the {len(available)} CPUs available")
    cores = available[: args.cores] if args.cores else available
    os.sched_setaffinity(0, cores)  # both runs, and every process the ledger run starts, on these CPUs
    per_process = args.participants_per_process or math.ceil(args.clients / len(cores))

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
        min_updates=max(1, args.clients // 2), commit_duration=1800, participants_per_process=per_process,
    )

    import resource

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    c0 = cpu()
    t0 = time.perf_counter()
    ds = load_task_dataset(cfg)  # on the clock, as the ledger run's own loading (its prepare_s) is
    baseline = run_in_memory(cfg, dataset=ds)
    plain_wall = time.perf_counter() - t0
    plain_cpu = cpu() - c0
    doc = build_task(cfg, ds)
    c1 = cpu()

    from contextlib import ExitStack

    stack = ExitStack()
    t_devnet = time.perf_counter()
    rpc_url = None
    if args.devnet == "plain":
        from fedchain.services.devnet import DevnetProcess

        rpc_url = stack.enter_context(DevnetProcess("anvil", block_time_s=Settings().devnet_block_time_s)).url
    devnet_s = time.perf_counter() - t_devnet  # on the ledger's clock: run_federation counts its own services
    settings = Settings(state_dir=out / "state", store=args.store, rpc_url=rpc_url)
    profiler = cProfile.Profile() if args.profile else None
    interpreter = sys.executable
    if profiler is not None:
        sys.executable = str(profiling_interpreter(out / "profiles"))  # read when each participant command is built
        profiler.enable()
    cpu_at_last_round: dict[str, float] = {}

    def after_round(row: object) -> None:
        if int(getattr(row, "round_id", 0)) == args.rounds:  # every process of the run still up
            own = resource.getrusage(resource.RUSAGE_SELF)
            cpu_at_last_round.update(descendants_cpu())
            cpu_at_last_round["orchestrator and aggregator (this process)"] = own.ru_utime + own.ru_stime - c1_self

    c1_self = sum(getattr(resource.getrusage(resource.RUSAGE_SELF), f) for f in ("ru_utime", "ru_stime"))
    try:
        result = run_federation(cfg, settings, out / "ledger", progress=not args.json, on_round=after_round,
                                ephemeral_devnet=args.devnet == "ephemeral")
    finally:
        sys.executable = interpreter
        if profiler is not None:
            profiler.disable()
        stack.close()
    ledger_cpu = cpu() - c1  # orchestrator + aggregator + participant processes + services started here
    t = result.timing
    ledger_total_wall = result.wall_time_s + devnet_s  # the whole ledger run up to the audit, services included
    ledger_wall = ledger_total_wall - t["services_s"] - devnet_s
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
        "devnet": {"managed": "managed: anvil behind the supervisor that persists the chain before every answer",
                   "ephemeral": "ephemeral: a fresh anvil of the ledger run's own (its start on the run's clock), "
                                "never written to disk",
                   "plain": f"plain: a bare anvil started here ({devnet_s:.2f} s, on the ledger's clock)"}[args.devnet],
        "cores_baseline": len(cores),
        "cores_fedchain": len(cores),
        "cpus": cores,
        "cores_note": (f"both runs pinned to the same {len(cores)} CPU(s); the in-memory loop trains one client after "
                       "another on one torch thread (configure_torch), so it keeps about one core busy "
                       f"({plain_cpu / plain_wall:.2f} cores on average); the ledger run's participants train in "
                       f"{math.ceil(args.clients / per_process)} parallel process(es) of up to {per_process} agents, "
                       f"one torch thread each ({ledger_cpu / ledger_total_wall:.2f} cores on average, "
                       "services and audit included)"),
        "participants_per_process": per_process,
        "participant_processes": math.ceil(args.clients / per_process),
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
    report["met"] = report["targets_met"]["overhead_total"] and report["targets_met"]["audit"] and result.audit.ok
    phases = {k: v for k, v in t.items() if k in ("prepare_s", "services_s", "setup_s", "participants_start_s",
                                                  "rounds_s")}
    report["ledger_overhead_by_phase_s"] = {
        **{k: round(v, 3) for k, v in phases.items()},
        "devnet_started_here_s": round(devnet_s, 3),
        "rest_s": round(ledger_total_wall - sum(phases.values()) - devnet_s, 3),
        "rounds_minus_plain_s": round(ledger_rounds - plain_wall, 3),
    }
    report["ledger_cpu_s_by_process_at_last_round"] = {k: round(v, 2) for k, v in sorted(cpu_at_last_round.items())}
    report["ledger_cpu_note"] = ("CPU seconds of each kind of process of the ledger run when its last round ended "
                                 "(read from /proc; the services' whole life, the participants' start-up and "
                                 "rounds), against the in-memory loop's plain_cpu_s")
    if profiler is not None:
        report["profile_orchestrator_top"] = profile_top(pstats.Stats(profiler, stream=io.StringIO()), 15)
        files = sorted(str(p) for p in (out / "profiles").glob("participant-*.prof"))
        if files:
            report["profile_participants_top"] = profile_top(pstats.Stats(*files, stream=io.StringIO()), 15)
            report["profile_participant_processes"] = len(files)
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
    return 0 if report["met"] else 1


def descendants_cpu() -> dict[str, float]:
    """CPU seconds (user + system, with their reaped children's) of this process's descendants now, by kind:
    the devnet (anvil and its supervisor), the IPFS node, the participant processes, anything else."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
    me = os.getpid()
    out: dict[str, float] = {}
    for pid in cpu:
        up, seen = parent.get(pid), 0
        while up not in (None, 0, me) and seen < 64:
            up, seen = parent.get(up), seen + 1
        if up != me:
            continue
        try:
            cmd = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        kind = ("participant processes" if " participant " in cmd else "devnet (supervisor)" if "supervisor" in cmd
                else "devnet (anvil)" if "anvil" in cmd else "IPFS node" if "ipfs" in cmd else "other")
        out[kind] = out.get(kind, 0.0) + cpu[pid]
    return out


def profiling_interpreter(where: Path) -> Path:
    """A stand-in for this interpreter that runs ``-m fedchain participant ...`` under cProfile (one profile
    file per process in ``where``) and anything else (the devnet's supervisor) as it is."""
    where.mkdir(parents=True, exist_ok=True)
    wrapper = where / "python-profiled"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" -m fedchain participant "*) exec "{sys.executable}" -m cProfile '
        f'-o "{where}/participant-$$.prof" "$@";; esac\n'
        f'exec "{sys.executable}" "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    return wrapper


def profile_top(stats: pstats.Stats, limit: int) -> dict[str, list[dict[str, object]]]:
    """The ``limit`` functions with the most cumulative time in a profile, and those with the most time of
    their own (where a waiting process waits: sleeps, socket reads)."""
    rows = [{"function": f"{Path(path).name}:{line}({name})", "calls": calls, "own_s": round(own, 3),
             "cumulative_s": round(cumulative, 3)}
            for (path, line, name), (_, calls, own, cumulative, _) in stats.stats.items()]  # type: ignore[attr-defined]
    return {"by_cumulative": sorted(rows, key=lambda r: -float(str(r["cumulative_s"])))[:limit],
            "by_own": sorted(rows, key=lambda r: -float(str(r["own_s"])))[:limit]}


if __name__ == "__main__":
    sys.exit(main())

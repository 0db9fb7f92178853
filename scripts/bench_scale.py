#!/usr/bin/env python
"""Scale: one federation round at n = 10, 100 and 1,000 participants on this machine, its peak memory, and the gas
of a round with per-participant on-chain commitments against a signed round (one root of signed commitments).

Each size runs ``fedchain simulate`` as a user would (a fresh state directory, by default a devnet of the run's own
that is never written to disk - ``--devnet managed`` for the persisting one simulate starts by default -, the local
blob store): MNIST with a logistic-regression model, 60 training samples per participant, the participants hosted
``--per-process`` to an OS process (``participant host``: one thread per agent, each with its own key, data,
connection and store client, speaking to the aggregator only through the chain and the store). While it runs, the
resident memory of the whole process tree (the command, the devnet, every host) is sampled every 0.5 s; its peak
is reported. The round time is the mean wall time of the command's rounds (opening, every participant training and
committing, collection, aggregation, finalisation), start-up excluded.

Gas per round: ``openRound`` + every ``commitUpdate`` + ``finalizeRound`` of the on-chain mode, against
``openSignedRound`` + ``postCommitmentSet`` + any forced ``commitUpdate`` + ``finalizeRound`` of the signed mode
(``--signed-commits``), per round of the run, at each size the signed mode runs at.

``--json`` prints one JSON document (keys ``round_seconds_n10``, ``round_seconds_n100``, ``round_seconds_n1000``,
``gas_per_round_n100_onchain``, ``gas_per_round_n100_batched``, ``peak_rss_mib_n1000``, the signed mode's gas at
each size it ran, ``gas_per_participant_n100_batched`` (the round's commitment gas, ``postCommitmentSet``, per
participant), ``batched_gas_spread`` (the largest signed-round gas over the smallest, minus one), the goals and
``met``); progress on stderr.

    python scripts/bench_scale.py --json [--sizes 10,100 --signed-sizes 10,100,1000 --per-process 100]

By default the 1,000-participant round is a signed round (each participant's signed leaf in the posted set; an
on-chain round at that size is ``--sizes 10,100,1000``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FEDCHAIN = [sys.executable, "-m", "fedchain"]
SAMPLES_PER_PARTICIPANT = 60
ESCAPE_S = 10  # a signed round's escape window, which every signed round waits out (its round time includes it)
GOAL_GAS_SPREAD = 0.10  # signed rounds: gas per round within 10% from the smallest to the largest size
GOAL_GAS_PER_PARTICIPANT = 2000  # signed rounds at n = 100: commitment gas per participant


DEVNETS = {
    "ephemeral": "simulate --devnet ephemeral: a fresh anvil of the run's own, its chain never written to disk",
    "managed": "simulate's default: the state directory's devnet, whose supervisor writes the chain to disk before "
               "any answer shows a mined transaction",
    "plain": "a bare anvil with interval mining started here and passed as --rpc-url",
}


def _tree_rss_kib(root: int) -> int:
    """The resident memory (KiB) of ``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm", encoding="ascii") as f:
                pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = pages * (os.sysconf("SC_PAGE_SIZE") // 1024)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def simulate(n: int, *, per_process: int, rounds: int, signed: bool, work: Path, devnet: str = "ephemeral",
             commit_s: int = 900) -> dict[str, Any]:
    """One ``fedchain simulate`` run at ``n`` participants: its report, round time and peak memory, on ``devnet``
    (:data:`DEVNETS`)."""
    from contextlib import ExitStack

    name = f"n{n}-{'signed' if signed else 'onchain'}"
    out = work / name
    args = [*FEDCHAIN, "simulate", "--dataset", "mnist", "--model", "logreg", "--clients", str(n),
            "--max-train-samples", str(SAMPLES_PER_PARTICIPANT * n), "--rounds", str(rounds), "--store", "local",
            "--participants-per-process", str(min(per_process, n)), "--commit-duration", str(commit_s),
            "--state-dir", str(out / "state"), "--out", str(out / "out"), "--json"]
    if signed:
        args += ["--signed-commits", "--escape-duration", str(ESCAPE_S)]
    if devnet == "ephemeral":
        args += ["--devnet", "ephemeral"]
    stack = ExitStack()
    devnet_pid: int | None = None  # a bare anvil started here: its memory counts too
    if devnet == "plain":
        from fedchain.config import Settings
        from fedchain.services.devnet import DevnetProcess

        dev = stack.enter_context(DevnetProcess("anvil", block_time_s=Settings().devnet_block_time_s))
        args += ["--rpc-url", dev.url]
        devnet_pid = dev.pid
    print(f"bench_scale: {name}: {' '.join(args[2:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with stack, open(out.with_suffix(".log"), "w", encoding="utf-8") as log:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                extra = _tree_rss_kib(devnet_pid) if devnet_pid is not None else 0
                peak[0] = max(peak[0], _tree_rss_kib(proc.pid) + extra)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, _ = proc.communicate()
        done.set()
        sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench_scale: {name} exited {proc.returncode}; see {out.with_suffix('.log')}")
    report: dict[str, Any] = json.loads(stdout)
    walls = [float(r["wall_s"]) for r in report["rounds"]]
    included = [len(r["included"]) for r in report["rounds"]]
    gas = report["gas"]
    per_round = {fn: gas.get(fn, {}).get("total", 0) / rounds for fn in
                 ("openRound", "openSignedRound", "commitUpdate", "postCommitmentSet", "finalizeRound")}
    result = {
        "n": n, "signed": signed, "round_seconds": round(sum(walls) / len(walls), 3), "round_walls_s": walls,
        "included": included, "command_s": round(wall, 1), "peak_rss_mib": round(peak[0] / 1024, 1),
        "gas_per_round": int(sum(per_round.values())), "gas_by_function_per_round": per_round,
        "audit_ok": bool(report["audit"]["ok"]), "final_accuracy": report.get("final_accuracy"),
    }
    print(f"bench_scale: {name}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def summarise(onchain: dict[int, dict[str, Any]], signed: dict[int, dict[str, Any]], rounds: int) -> dict[str, Any]:
    """The benchmark's document from its runs by size (on chain, signed): the keys, the goals and ``met``."""
    # a size run in signed mode only (1,000 participants: on-chain commits would make a thousand blocks a round)
    # reports its round time and memory from that run, and says so
    doc: dict[str, Any] = {f"round_seconds_n{n}": r["round_seconds"] for n, r in signed.items()}
    doc.update({f"peak_rss_mib_n{n}": r["peak_rss_mib"] for n, r in signed.items()})
    doc.update({f"round_seconds_n{n}": r["round_seconds"] for n, r in onchain.items()})
    doc.update({f"peak_rss_mib_n{n}": r["peak_rss_mib"] for n, r in onchain.items()})
    doc["round_mode"] = {f"n{n}": "onchain" if n in onchain else "signed" for n in sorted({*onchain, *signed})}
    doc.update({f"gas_per_round_n{n}_onchain": r["gas_per_round"] for n, r in onchain.items()})
    doc.update({f"gas_per_round_n{n}_batched": r["gas_per_round"] for n, r in signed.items()})
    doc.update({f"round_seconds_n{n}_batched": r["round_seconds"] for n, r in signed.items()})
    goals: dict[str, bool] = {}
    if signed:
        gas = [r["gas_per_round"] for r in signed.values()]
        doc["batched_gas_spread"] = round(max(gas) / min(gas) - 1, 4)
        goals["batched_gas_flat"] = doc["batched_gas_spread"] <= GOAL_GAS_SPREAD
    if 100 in signed:
        per = signed[100]["gas_by_function_per_round"]
        doc["gas_per_participant_n100_batched"] = round((per["postCommitmentSet"] + per["commitUpdate"]) / 100, 1)
        doc["gas_per_participant_n100_batched_whole_round"] = round(signed[100]["gas_per_round"] / 100, 1)
        goals["batched_under_2000_gas_per_participant"] = doc["gas_per_participant_n100_batched"] < GOAL_GAS_PER_PARTICIPANT
    thousand = onchain.get(1000) or signed.get(1000)
    if thousand is not None:
        goals["thousand_participants_in_a_round"] = thousand["included"] == [1000] * rounds
    doc["audits_clean"] = all(r["audit_ok"] for r in (*onchain.values(), *signed.values()))
    doc["goals"] = goals
    doc["met"] = all(goals.values()) and doc["audits_clean"]
    doc["runs"] = [*onchain.values(), *signed.values()]
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100", help="participant counts of the on-chain runs")
    parser.add_argument("--signed-sizes", default="10,100,1000", help="participant counts of the signed-round runs")
    parser.add_argument("--per-process", type=int, default=100, help="participants per OS process")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--signed-commit-duration", type=int, default=120,
                        help="the commit phase of the signed rounds: a signed round never ends before it (its escape "
                             "window runs from its deadline at the earliest), so its round time is this plus the window")
    parser.add_argument("--devnet", choices=sorted(DEVNETS), default="ephemeral",
                        help="; ".join(f"{k}: {v}" for k, v in DEVNETS.items()))
    parser.add_argument("--work", type=Path, default=None, help="where the runs keep their state [a temporary dir]")
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    work = opts.work or Path(tempfile.mkdtemp(prefix="fedchain-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in opts.sizes.split(",") if s]
    signed_sizes = [int(s) for s in opts.signed_sizes.split(",") if s]
    onchain = {n: simulate(n, per_process=opts.per_process, rounds=opts.rounds, signed=False, work=work,
                           devnet=opts.devnet) for n in sizes}
    signed = {n: simulate(n, per_process=opts.per_process, rounds=opts.rounds, signed=True, work=work,
                          devnet=opts.devnet, commit_s=opts.signed_commit_duration) for n in signed_sizes}
    doc = summarise(onchain, signed, opts.rounds)
    doc["machine"] = {"cpus": os.cpu_count(), "per_process": opts.per_process, "rounds": opts.rounds,
                      "devnet": f"{opts.devnet}: {DEVNETS[opts.devnet]}",
                      "samples_per_participant": SAMPLES_PER_PARTICIPANT}
    print(json.dumps(doc, indent=None if opts.json else 2))
    return 0 if doc["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

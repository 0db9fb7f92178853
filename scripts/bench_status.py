#!/usr/bin/env python
"""Wall time of the read-only status commands, as a user runs them, on a local devnet.

A fresh state directory gets a managed devnet (anvil on a free loopback port), the local blob
store, a deployed Federation, a configured task (breast_cancer, FedAvg), ``--participants``
registered and admitted participants and one open round. Then each command is
run ``--repeat`` times as a new ``fedchain`` process (what a user waits for, start-up included)
and its median wall time reported:

* ``participant status --keystore p0``, ``round status``, ``admin members``, ``devnet status``;
* for reference, ``python -c "import eth_account"``: what every command paid for its import
  (with web3's) before the chain layer spoke JSON-RPC and encoded the ABI itself.

Goal: every status command under 1 s (``goal_s``). ``--json`` prints one JSON document on stdout
(keys ``participant_status_s``, ``round_status_s``, ``admin_members_s``, ``devnet_status_s``,
``import_eth_account_s``, ``goal_s``, ``met``); progress goes to stderr. Exit status 0 only when the goal
is met.

    python scripts/bench_status.py --json [--repeat 5 --participants 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 1.0
PASSWORD = "bench-status"
FEDCHAIN = [sys.executable, "-m", "fedchain"]


def run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run ``fedchain ARGS`` and return its stdout; raise with its stderr when it fails."""
    done = subprocess.run([*FEDCHAIN, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"fedchain {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def timed(command: list[str], env: dict[str, str], cwd: Path, repeat: int) -> float:
    """The median wall time of ``command`` over ``repeat`` runs (one warm-up run first)."""
    samples = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
        if i:
            samples.append(elapsed)
    return round(statistics.median(samples), 3)


def main() -> int:
    """Build the federation, time the commands, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (the median is reported)")
    parser.add_argument("--participants", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fedchain-bench-status-") as tmp:
        cwd = Path(tmp)
        env = {**os.environ, "FEDCHAIN_STATE_DIR": str(cwd / "state"), "FEDCHAIN_PASSWORD": PASSWORD,
               "FEDCHAIN_STORE": "local"}
        env.pop("FEDCHAIN_RPC_URL", None)
        try:
            print("setting up: devnet, deployment, task, participants, one round", file=sys.stderr)
            run(["devnet", "start"], env, cwd)
            run(["account", "new", "--name", "operator"], env, cwd)
            run(["account", "fund", "operator"], env, cwd)
            run(["devnet", "deploy", "--keystore", "operator"], env, cwd)
            run(["admin", "configure-task", "--dataset", "breast_cancer", "--min-updates", "1",
                 "--keystore", "operator"], env, cwd)
            for i in range(args.participants):
                name = f"p{i}"
                run(["account", "new", "--name", name], env, cwd)
                run(["account", "fund", name], env, cwd)
                run(["participant", "register", "--keystore", name, "--organisation", f"Site {i}",
                     "--industry", "healthcare", "--samples", "100"], env, cwd)
                run(["admin", "admit", name, "--keystore", "operator"], env, cwd)
            run(["round", "open", "--keystore", "operator"], env, cwd)
            figures: dict[str, float] = {}
            for key, command in (("participant_status_s", ["participant", "status", "--keystore", "p0"]),
                                 ("round_status_s", ["round", "status"]),
                                 ("admin_members_s", ["admin", "members"]),
                                 ("devnet_status_s", ["devnet", "status"])):
                print(f"timing fedchain {' '.join(command)}", file=sys.stderr)
                figures[key] = timed([*FEDCHAIN, *command], env, cwd, args.repeat)
            figures["import_eth_account_s"] = timed([sys.executable, "-c", "import eth_account"], env, cwd, args.repeat)
        finally:
            subprocess.run([*FEDCHAIN, "devnet", "stop"], env=env, cwd=cwd, capture_output=True, check=False)
    statuses = [v for k, v in figures.items() if k != "import_eth_account_s"]
    out = {**figures, "goal_s": GOAL_S, "met": max(statuses) < GOAL_S, "repeat": args.repeat,
           "participants": args.participants, "cores": os.cpu_count()}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print(f"{key}: {value}")
    return 0 if out["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""What incentives cost: gas of a deposit, a Merkle claim and a slash on a real devnet, and the
error and speed of the Shapley estimate that scores contributions.

* gas (``deposit_gas``, ``claim_gas`` (the first claim of a round; ``claim_gas_later`` a later
  one), ``slash_gas``): :func:`scripts.bench_gas.incentives_gas` on a fresh anvil;
* Shapley: the truncated Monte-Carlo estimate (:func:`fedchain.fl.contribution.compute_scores`,
  permutations seeded from the round) against exact Shapley (all 2^n coalitions, exact rationals)
  on a breast_cancer round of n participants trained here, for n = 4, 6, 8, 10: the mean absolute
  error as a fraction of the grand coalition's utility gain u(N) - u(empty)
  (``shapley_mae_fraction_nN``; goal at n = 10: <= 0.05) and the estimate's wall time on one core
  (``shapley_seconds_nN``; goal at n = 10: < 10 s); then the estimate alone for n = 16, 32, 64
  (``shapley_seconds_n64``). The updates' training is not timed.

``--quick`` runs the n <= 10 part only (no devnet). Exit 0 when the goals are met.

    python scripts/bench_incentives.py --json [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="Only the Shapley error at n <= 10 (no devnet, no large n).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="Print one JSON document on stdout.")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from fedchain.fl.contribution import shapley_benchmark

    report: dict[str, Any] = {"benchmark": "incentives: gas and Shapley estimate", "seed": args.seed}
    for n in (4, 6, 8, 10):
        r = shapley_benchmark(n, args.seed)
        report[f"shapley_mae_fraction_n{n}"] = round(float(r["mae_fraction"]), 4)
        report[f"shapley_seconds_n{n}"] = round(float(r["seconds"]), 3)
        report[f"shapley_exact_seconds_n{n}"] = round(float(r["exact_seconds"]), 3)
        report[f"shapley_permutations_n{n}"] = r["permutations"]
    if not args.quick:
        for n in (16, 32, 64):
            r = shapley_benchmark(n, args.seed, exact=False)
            report[f"shapley_seconds_n{n}"] = round(float(r["seconds"]), 3)
            report[f"shapley_permutations_n{n}"] = r["permutations"]
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_gas import incentives_gas

        from fedchain.chain.connection import Connection
        from fedchain.services.devnet import DevnetProcess

        with DevnetProcess("anvil") as devnet:
            gas = incentives_gas(Connection(devnet.url))
        report.update({k: v for k, v in gas.items() if k.endswith("_gas") or k.endswith("_gas_later")})
    report["goals"] = {"shapley_mae_fraction_n10_max": 0.05, "shapley_seconds_n10_max": 10.0}
    met = report["shapley_mae_fraction_n10"] <= 0.05 and report["shapley_seconds_n10"] < 10.0
    report["goals_met"] = met
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

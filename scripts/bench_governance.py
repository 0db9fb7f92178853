#!/usr/bin/env python
"""What governance and live verification cost: gas of each governance step, and the seconds live
verification adds to a round.

Every figure comes from whole governed federations (``fedchain simulate --governance``: a devnet,
the Governor + timelock + membership token, participants as separate processes that vote, replay
every finalised round with the audit's code and attest it on chain):

* for n = 4 and n = 16 participants, the same federation twice, side by side: with an attestation
  quorum of 50 % (the next round cannot open before half of a round's included participants
  attested it) and without live verification (quorum 0). ``verify_seconds_per_round_nN`` is the
  span verification blocks the federation per round: the mean time from a round's end until its
  attestation quorum is met (the next round cannot open before), plus the difference of the two
  runs' mean round wall times; the participant-side cost is reported next to it
  (``verify_replay_seconds_nN``: per round, the slowest participant's
  replay + attestation, as the participants' processes measured it);
* gas (means over the run's three proposals: genesis, an admission, a task change): ``propose_gas``, ``vote_gas``,
  ``queue_gas``, ``execute_gas`` (the admission's execution: admit + membership mint),
  ``attest_gas`` (``attestRound`` with a Merkle proof) from the n = 4 run, and ``dispute_gas``
  (the execution of a dispute proposal: ``disputeRound`` + revoke and grant of the aggregator
  role) from a third n = 4 run with a dishonest aggregator that the members catch.

The machine is shared: the runs of one n are made one after the other, so noise moves both.

    python scripts/bench_governance.py --json [--rounds 3] [--sizes 4,16]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def _mean(values: tuple[int, ...] | list[int]) -> int | None:
    return round(sum(values) / len(values)) if values else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="4,16", help="Comma-separated participant counts.")
    ap.add_argument("--dataset", default="breast_cancer")
    ap.add_argument("--out", type=Path, default=None, help="Directory for the runs' reports [default: a temporary one].")
    ap.add_argument("--json", action="store_true", help="Print one JSON document on stdout.")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from fedchain.config import Settings
    from fedchain.sim.config import ExperimentConfig
    from fedchain.sim.federation import FederationReport, run_federation

    out = args.out or Path(tempfile.mkdtemp(prefix="fedchain-bench-governance-"))
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    def run(name: str, clients: int, quorum: int, dishonest: str | None = None) -> FederationReport:
        cfg = ExperimentConfig(dataset=args.dataset, clients=clients, rounds=args.rounds, governance=True,
                               verification_quorum=quorum, dishonest=dishonest, min_updates=1, commit_duration=1800)
        settings = Settings(state_dir=out / name / "state", store="local")
        return run_federation(cfg, settings, out / name / "out", progress=not args.json)

    report: dict[str, Any] = {"benchmark": "governance and live verification", "dataset": args.dataset,
                              "rounds": args.rounds, "out_dir": str(out)}
    per_size: dict[str, Any] = {}
    gas_run: FederationReport | None = None
    for n in sizes:
        verified = run(f"n{n}-verified", n, 50)
        plain = run(f"n{n}-plain", n, 0)
        assert verified.governance is not None
        waits = [w.to_quorum_s for w in verified.governance.attestation_waits if w.to_quorum_s is not None]
        walls_v = [r.wall_s for r in verified.rounds]
        walls_p = [r.wall_s for r in plain.rounds]
        # the span a round's verification blocks the federation: from the round's end until its attestation
        # quorum is met (the next round cannot open before), plus what the rounds themselves got slower by
        added = (sum(waits) / len(waits) if waits else 0.0) + (sum(walls_v) / len(walls_v) - sum(walls_p) / len(walls_p))
        report[f"verify_seconds_per_round_n{n}"] = round(added, 3)
        report[f"verify_replay_seconds_n{n}"] = round(verified.timing.get("verify_s_per_round", 0.0), 3)
        per_size[str(n)] = {
            "attestation_waits": [w.to_json() for w in verified.governance.attestation_waits],
            "rounds_s_verified": round(verified.timing["rounds_s"], 3),
            "rounds_s_without_verification": round(plain.timing["rounds_s"], 3),
            "round_wall_s_verified": [round(r.wall_s, 3) for r in verified.rounds],
            "round_wall_s_without_verification": [round(r.wall_s, 3) for r in plain.rounds],
            "audit_ok": [verified.audit.ok, plain.audit.ok],
            "attestations": verified.gas.to_json().get("attestRound", {}).get("count", 0),
        }
        if gas_run is None:
            gas_run = verified
    report["by_size"] = per_size

    caught = run("n4-dishonest", 4, 50, dishonest="shift-model")
    gas: dict[str, tuple[int, ...]] = dict(gas_run.gas.by_function) if gas_run is not None else {}
    dispute = [v for k, vs in caught.gas.by_function.items() if k.startswith("execute[") and "disputeRound" in k
               for v in vs]
    report.update({
        "propose_gas": _mean(list(gas.get("propose", ()))),
        "vote_gas": _mean(list(gas.get("castVote", ()))),
        "queue_gas": _mean(list(gas.get("queue", ()))),
        "execute_gas": _mean(list(gas.get("execute[admit]", ()))),
        "attest_gas": _mean(list(gas.get("attestRound", ()))),
        "dispute_gas": _mean(dispute),
        "dispute_caught": bool(caught.governance and caught.governance.disputed),
        "gas_by_function_n4": gas_run.gas.to_json() if gas_run is not None else {},
    })
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key in ("propose_gas", "vote_gas", "queue_gas", "execute_gas", "attest_gas", "dispute_gas",
                    *(f"verify_seconds_per_round_n{n}" for n in sizes)):
            print(f"{key}: {report[key]}")
    return 0 if report["dispute_caught"] else 1


if __name__ == "__main__":
    sys.exit(main())

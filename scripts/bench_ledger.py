#!/usr/bin/env python
"""Ledger read cost as the history grows: one agent poll and one full audit, at a few rounds and
at many rounds, with the incremental event index and with the old full rescan of the log.

A fresh anvil devnet (``--hardfork prague``, free loopback port) gets a deployed Federation, a
configured task (a 4-feature logistic regression, FedAvg) and ``--participants`` admitted
participants. Every round is real and auditable: the aggregator opens it on the current model,
each participant stores a canonical update blob in a LocalStore and commits it, and the
aggregator screens and aggregates the committed blobs (:func:`fedchain.protocol.rounds.aggregate`),
stores the global model and the evidence document, and finalises the round with the inclusion
root. No training: the updates are seeded random deltas, which the audit replays like any other.
Transactions are signed by the node (``eth_sendTransaction`` from anvil's unlocked dev accounts),
so that building a thousand rounds takes a minute or two; the reads are what is measured.

Measured at ``--rounds-small``, ``--rounds-mid`` and ``--rounds-large`` rounds:

* the poll of an agent (``latest_round_id()``, ``round(latest)``, ``commitments(latest)``,
  ``participant(me)``) on a warm ledger object: the median of ``--polls`` polls, with the event
  index (``ChainLedger``'s default) and with ``RescanEvents`` (every lookup an ``eth_getLogs``
  rescan from the deployment block, as before the index);
* a full audit (``Auditor(...).audit()``) with a fresh ledger object, which must be clean.

Targets: the indexed poll at the large round count within 1.5x of the small one; the audit linear
in rounds (its marginal cost per round from mid to large within 1.5x of that from small to mid).
Exit status 0 only when both are met and every audit is clean. ``--json`` prints one JSON
document on stdout; progress goes to stderr.

    python scripts/bench_ledger.py --json [--rounds-small 10 --rounds-large 1000 --participants 3]
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from rich.console import Console
from rich.progress import Progress

from fedchain.audit.replay import Auditor
from fedchain.chain.connection import Connection
from fedchain.chain.federation import FederationContract, deploy
from fedchain.chain.ledger import ChainLedger, RescanEvents
from fedchain.codec.canonical import sha256_digest
from fedchain.fl.models import ModelSpec
from fedchain.fl.records import ClientUpdate, StrategyConfig, UpdateKind
from fedchain.fl.schema import DataSchema
from fedchain.ports import Ledger
from fedchain.protocol.blobs import (
    decode_global,
    encode_update,
    initial_global,
    metadata_digest,
)
from fedchain.protocol.rounds import aggregate, fetch_committed, round_evidence
from fedchain.protocol.task import TaskDocument
from fedchain.services.devnet import DevnetProcess
from fedchain.storage.local import LocalStore
from fedchain.types import Address, RoundId, Wei

POLL_RATIO_TARGET = 1.5
AUDIT_MARGINAL_RATIO_TARGET = 1.5
FEATURES = 4
COMMIT_DURATION_S = 3600
RECEIPT_TIMEOUT_S = 60
RECEIPT_POLL_S = 0.002

log = logging.getLogger("fedchain.bench_ledger")


def account(name: str) -> LocalAccount:
    acct: LocalAccount = Account.from_key(keccak(b"fedchain-bench-ledger:" + name.encode()))
    return acct


class NodeSigner:
    """Calls of the contract's functions sent with ``eth_sendTransaction`` from accounts the node
    unlocks: one request to send (the node estimates gas and signs), one for the receipt."""

    def __init__(self, conn: Connection, contract: FederationContract) -> None:
        self.conn = conn
        self.contract = contract

    def __call__(self, sender: str, function: str, *args: Any) -> dict[str, Any]:
        data = self.contract.codec.encode_call(function, *args)
        tx = {"from": sender, "to": self.contract.address, "data": "0x" + data.hex()}
        tx_hash = self.conn.request("eth_sendTransaction", [tx])
        deadline = time.monotonic() + RECEIPT_TIMEOUT_S
        while (receipt := self.conn.request("eth_getTransactionReceipt", [tx_hash])) is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"{function} from {sender}: no receipt for {tx_hash} within {RECEIPT_TIMEOUT_S} s")
            time.sleep(RECEIPT_POLL_S)  # automine is quick, but not always done when the hash comes back
        if int(receipt["status"], 16) != 1:
            raise SystemExit(f"{function} from {sender}: transaction {tx_hash} failed")
        return dict(receipt)


def task_document(min_updates: int) -> TaskDocument:
    """A tiny task: softmax regression over 4 standardised features, two classes, FedAvg."""
    names = tuple(f"x{i}" for i in range(FEATURES))
    schema = DataSchema(
        dataset="bench-ledger",
        feature_names=names,
        dtype="float32",
        feature_shape=(FEATURES,),
        value_ranges=((-3.0, 3.0),) * FEATURES,
        labels=(0, 1),
        label_names=("negative", "positive"),
        normalisation="z-score per feature",
        normalisation_stats=((0.0, 1.0),) * FEATURES,
    )
    strategy = StrategyConfig("fedavg", {"local_epochs": 1, "batch_size": 16, "lr": 0.1, "min_updates": min_updates})
    return TaskDocument.build(
        dataset="bench-ledger",
        schema=schema,
        spec=ModelSpec(arch="logreg", input_shape=(FEATURES,), num_classes=2),
        strategy=strategy,
        seed=7,
        min_updates=min_updates,
        commit_duration=COMMIT_DURATION_S,
        max_commit_duration=COMMIT_DURATION_S,
    )


class Federation:
    """A deployed Federation with its task and participants, driven round by round."""

    def __init__(self, conn: Connection, store: LocalStore, participants: int) -> None:
        self.conn = conn
        self.store = store
        dev = conn.dev_accounts()
        if len(dev) < participants + 2:
            raise SystemExit(f"the devnet unlocks {len(dev)} accounts; {participants} participants need {participants + 2}")
        self.admin, self.aggregator, self.people = dev[0], dev[1], dev[2 : 2 + participants]
        deployer = account("deployer")
        conn.fund_from_dev_account(deployer.address, Wei(10**20))
        contract, self.deployment, _ = deploy(conn, deployer, self.admin, self.aggregator)
        self.send = NodeSigner(conn, contract)
        self.reader = ChainLedger(contract)
        self.doc = task_document(min_updates=max(1, participants - 1))
        doc_cid = store.put(self.doc.to_bytes())
        self.send(self.admin, "configureTask", self.doc.model_spec_digest(), self.doc.strategy_digest(),
                  self.doc.data_schema_digest(), doc_cid, COMMIT_DURATION_S)
        for p in self.people:
            self.send(p, "register", f"org-{p[2:8]}", "benchmark", b"\x02" + bytes(32), 1_000)
            self.send(self.admin, "admit", p)
        self.base_blob = initial_global(self.doc.spec(), self.doc.seed)
        self.base_cid = store.put(self.base_blob)
        self.rounds = 0

    def contract(self) -> FederationContract:
        return FederationContract.from_deployment(self.conn, self.deployment)

    def run_round(self) -> None:
        """Open, commit one update per participant, aggregate and finalise one round."""
        base_digest = sha256_digest(self.base_blob)
        self.send(self.aggregator, "openRound", base_digest, self.base_cid, COMMIT_DURATION_S, self.doc.min_updates, 0)
        rid = RoundId(self.rounds + 1)
        base = decode_global(self.base_blob)
        for i, p in enumerate(self.people):
            rng = np.random.default_rng(int(rid) * 1000 + i)
            update = ClientUpdate(
                participant=p,
                round_id=rid,
                num_samples=20 + i,
                tensors={k: rng.normal(0.0, 0.01, v.shape).astype(np.float32) for k, v in base.weights.items()},
                base_model_digest=base_digest,
                kind=UpdateKind.DELTA,
                extras={"loss": round(float(rng.uniform(0.3, 0.7)), 6)},
            )
            blob = encode_update(update)
            cid = self.store.put(blob)
            self.send(p, "commitUpdate", rid, sha256_digest(blob), cid, update.num_samples, metadata_digest(update))
        commitments = self.reader.commitments(rid)
        outcomes = [fetch_committed(self.store, c, retry_window_s=0) for c in commitments]
        result = aggregate(self.doc.strategy_config(), base, rid, base_digest, outcomes, self.doc.min_updates)
        if result.model_blob is None or result.model_digest is None or result.rejections:
            raise SystemExit(f"round {rid}: the benchmark's updates did not aggregate cleanly: {result.rejections}")
        model_cid = self.store.put(result.model_blob)
        strategy_digest = self.doc.strategy_digest()
        evidence = round_evidence(rid, base_digest, result, commitments, strategy_digest)
        root = evidence.merkle_root
        ev_bytes = evidence.to_bytes()
        ev_cid = self.store.put(ev_bytes)
        self.send(self.aggregator, "finalizeRound", rid, result.model_digest, model_cid, root, strategy_digest,
                  sha256_digest(ev_bytes), ev_cid, len(result.included))
        self.base_blob, self.base_cid = result.model_blob, model_cid
        self.rounds = int(rid)


class RequestCounter:
    """Counts, by method, the JSON-RPC requests a connection sends."""

    def __init__(self, conn: Connection) -> None:
        self.rpc = conn.rpc

    def during(self, action: Callable[[], Any]) -> dict[str, int]:
        before = Counter(self.rpc.counts)
        action()
        return dict(sorted((Counter(self.rpc.counts) - before).items()))


def poll(ledger: Ledger, me: Address) -> None:
    """What a participant or aggregator agent reads on each look at the ledger."""
    latest = ledger.latest_round_id()
    ledger.round(latest)
    ledger.commitments(latest)
    ledger.participant(me)


def median_seconds(action: Callable[[], Any], times: int) -> float:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def audit_seconds(fed: Federation, ledger: ChainLedger) -> float:
    start = time.perf_counter()
    report = Auditor(ledger, fed.store, contract=fed.deployment.address, chain_id=fed.conn.chain_id).audit()
    seconds = time.perf_counter() - start
    if not report.ok or report.rounds_checked != tuple(range(1, fed.rounds + 1)):
        raise SystemExit(f"the audit at round {fed.rounds} is not clean: {[f.detail for f in report.findings][:5]}")
    return seconds


def measure(
    fed: Federation, pollers: dict[str, ChainLedger], counter: RequestCounter, me: Address, polls: int, *,
    first: bool, rescan_audit: bool,
) -> dict[str, Any]:
    """Poll and audit figures at the current round count (the first time after a warm-up audit,
    the best of two audits: the fixed costs weigh most there)."""
    figures: dict[str, Any] = {"blocks": fed.conn.block_number() - fed.deployment.block_number + 1}
    start = time.perf_counter()
    poll(pollers["index"], me)  # catch up on the blocks mined since its previous look
    figures["index_catch_up_seconds"] = time.perf_counter() - start
    figures["poll_index"] = median_seconds(lambda: poll(pollers["index"], me), polls)
    figures["poll_rescan"] = median_seconds(lambda: poll(pollers["rescan"], me), max(5, polls // 4))
    figures["poll_requests"] = {
        kind: counter.during(functools.partial(poll, ledger, me))
        for kind, ledger in pollers.items()
    }
    if first:
        audit_seconds(fed, ChainLedger(fed.contract()))  # warm up: imports, the task document, the file system
    figures["audit_index"] = min(audit_seconds(fed, ChainLedger(fed.contract())) for _ in range(2 if first else 1))
    if rescan_audit:
        contract = fed.contract()
        figures["audit_rescan"] = audit_seconds(fed, ChainLedger(contract, RescanEvents(contract)))
    return figures


def run(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    started = time.monotonic()
    checkpoints = sorted({args.rounds_small, args.rounds_mid, args.rounds_large})
    with tempfile.TemporaryDirectory(prefix="fedchain-bench-ledger-") as tmp, DevnetProcess("anvil") as devnet:
        conn = Connection(devnet.url, tx_timeout_s=60)
        fed = Federation(conn, LocalStore(Path(tmp) / "blobs"), args.participants)
        me = fed.people[0]
        poll_conn = Connection(devnet.url)  # the agent's own connection, its requests counted
        counter = RequestCounter(poll_conn)
        contract = FederationContract.from_deployment(poll_conn, fed.deployment)
        pollers = {"index": ChainLedger(contract), "rescan": ChainLedger(contract, RescanEvents(contract))}
        at: dict[int, dict[str, Any]] = {}
        job = progress.add_task("rounds", total=args.rounds_large)
        build_s = 0.0
        for checkpoint in checkpoints:
            t0 = time.perf_counter()
            while fed.rounds < checkpoint:
                fed.run_round()
                progress.advance(job)
            build_s += time.perf_counter() - t0
            progress.update(job, description=f"measuring at round {checkpoint}")
            at[checkpoint] = measure(
                fed, pollers, counter, me, args.polls, first=not at, rescan_audit=not args.no_rescan_audit
            )
            progress.update(job, description="rounds")

    s, m, n = args.rounds_small, args.rounds_mid, args.rounds_large
    small, mid, large = at[s], at[m], at[n]
    poll_ratio = large["poll_index"] / small["poll_index"]
    marginal_first = (mid["audit_index"] - small["audit_index"]) / (m - s)
    marginal_second = (large["audit_index"] - mid["audit_index"]) / (n - m)
    marginal_ratio = marginal_second / marginal_first
    result: dict[str, Any] = {
        "benchmark": "ledger reads",
        "engine": "anvil",
        "participants": args.participants,
        "rounds_small": s,
        "rounds_mid": m,
        "rounds_large": n,
        "polls_per_median": args.polls,
        f"blocks_round_{s}": small["blocks"],
        f"blocks_round_{n}": large["blocks"],
        f"poll_seconds_round_{s}": round(small["poll_index"], 6),
        f"poll_seconds_round_{n}": round(large["poll_index"], 6),
        f"poll_ratio_{n}_vs_{s}": round(poll_ratio, 3),
        f"poll_seconds_round_{s}_rescan": round(small["poll_rescan"], 6),
        f"poll_seconds_round_{n}_rescan": round(large["poll_rescan"], 6),
        f"poll_ratio_{n}_vs_{s}_rescan": round(large["poll_rescan"] / small["poll_rescan"], 3),
        f"poll_speedup_round_{n}": round(large["poll_rescan"] / large["poll_index"], 1),
        f"poll_requests_round_{s}": small["poll_requests"]["index"],
        f"poll_requests_round_{n}": large["poll_requests"]["index"],
        f"poll_requests_round_{n}_rescan": large["poll_requests"]["rescan"],
        f"index_catch_up_seconds_round_{n}": round(large["index_catch_up_seconds"], 4),
        f"audit_seconds_round_{s}": round(small["audit_index"], 4),
        f"audit_seconds_round_{m}": round(mid["audit_index"], 4),
        f"audit_seconds_round_{n}": round(large["audit_index"], 4),
        "audit_seconds_per_round": round((large["audit_index"] - small["audit_index"]) / (n - s), 6),
        f"audit_marginal_seconds_per_round_{s}_to_{m}": round(marginal_first, 6),
        f"audit_marginal_seconds_per_round_{m}_to_{n}": round(marginal_second, 6),
        "audit_marginal_ratio": round(marginal_ratio, 3),
        "build_seconds": round(build_s, 2),
        "targets": {"poll_ratio_max": POLL_RATIO_TARGET, "audit_marginal_ratio_max": AUDIT_MARGINAL_RATIO_TARGET},
    }
    if not args.no_rescan_audit:
        for rounds, figures in ((s, small), (m, mid), (n, large)):
            result[f"audit_seconds_round_{rounds}_rescan"] = round(figures["audit_rescan"], 4)
    result["targets_met"] = {
        "poll_flat": poll_ratio <= POLL_RATIO_TARGET,
        "audit_linear": marginal_ratio <= AUDIT_MARGINAL_RATIO_TARGET,
    }
    result["audits_clean"] = True  # audit_seconds stops the benchmark otherwise
    result["ok"] = all(result["targets_met"].values())
    result["wall_s"] = round(time.monotonic() - started, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--rounds-small", type=int, default=10, help="the first measuring point (default 10)")
    parser.add_argument("--rounds-mid", type=int, default=None,
                        help="the middle measuring point, for the audit's linearity (default: halfway)")
    parser.add_argument("--rounds-large", type=int, default=1000, help="the last measuring point (default 1000)")
    parser.add_argument("--participants", type=int, default=3, help="participants committing in every round (default 3)")
    parser.add_argument("--polls", type=int, default=60, help="polls per median (default 60; a quarter of it for rescans)")
    parser.add_argument("--no-rescan-audit", action="store_true", help="skip the audits on the old rescan path")
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if args.rounds_mid is None:
        args.rounds_mid = (args.rounds_small + args.rounds_large) // 2
    if not 1 <= args.rounds_small < args.rounds_mid < args.rounds_large:
        parser.error("need 1 <= --rounds-small < --rounds-mid < --rounds-large")
    if args.participants < 1 or args.polls < 1:
        parser.error("--participants and --polls must be positive")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        result = run(args, progress)
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
    else:
        for key, value in result.items():
            print(f"{key:48s} {value}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

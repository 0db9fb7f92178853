#!/usr/bin/env python
"""Gas benchmark of the Federation contract on a fresh anvil devnet.

Measures register/admit/open/commit/finalize/close/remove gas; the commit gas of the same
participant in round 1 and in round N (default 100) to show it stays flat; finalize
gas with 4 and with 64 included updates to show it is O(1); and, on a governed deployment
(:func:`governance_gas`), the gas of a proposal's propose, vote, queue and execute, of an
attestation and of a dispute executed through the Governor; and (:func:`incentives_gas`) the gas of a
deposit, a slash, a reward publication, a Merkle claim and a withdrawal. Prints ONE JSON object on
stdout (``--json``) or a table; ``--output FILE`` also writes the JSON there. Exits 1 if
a target is missed:

* commit <= 38,300 gas, and flat: round N equal to round 1 (the plain ``commitUpdate``; a private round's
  ``commitPrivateUpdate`` is reported as ``commit_private_gas_first`` / ``_later``, with no target: its claim writes
  one more slot; a secure-aggregation round's ``openSecureRound``, ``postAdvertisement``, masked ``commitUpdate``,
  ``postUnmaskingShares`` and finalisation as ``open_secure_gas``, ``advertise_gas``, ``commit_secure_gas``,
  ``unmask_gas`` and ``finalize_secure_gas``, with no target);
* finalize with n=64 within 5% of n=4.

2CP's published commit gas (141,891 growing to 166,506 over its rounds) is included for
comparison.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from rich.console import Console
from rich.progress import Progress

from fedchain.chain.connection import Connection
from fedchain.chain.federation import FederationContract, GovernanceParams, deploy
from fedchain.chain.governance import (
    Governance,
    ProposalCall,
    Support,
    admit_call,
    advance,
    configure_task_call,
    deploy_governed,
    dispute_call,
)
from fedchain.chain.incentives import (
    deploy_incentives,
    fund_pool_call,
    set_budget_call,
    set_deposit_policy_call,
    slash_call,
)
from fedchain.codec.merkle import MerkleTree, commitment_leaf, merkle_root
from fedchain.ports import Inclusion
from fedchain.services.devnet import DevnetProcess
from fedchain.types import Cid, Digest, Wei

COMMIT_TARGET = 38_300
COMMIT_FLAT_TOLERANCE = 0.0
FINALIZE_TOLERANCE = 0.05
REFERENCE_2CP = {"commit_gas_first": 141_891, "commit_gas_later": 166_506}

log = logging.getLogger("fedchain.bench_gas")


def account(name: str) -> LocalAccount:
    acct: LocalAccount = Account.from_key(keccak(b"fedchain-bench:" + name.encode()))
    return acct


class Bench:
    def __init__(self, conn: Connection, fed: FederationContract, admin: LocalAccount, aggregator: LocalAccount) -> None:
        self.conn = conn
        self.admin = fed.with_account(admin)
        self.agg = fed.with_account(aggregator)
        self.fed = fed
        self.participants: list[LocalAccount] = []
        self.register_gas: list[int] = []
        self.admit_gas: list[int] = []

    def add_participants(self, count: int) -> None:
        for _ in range(count):
            p = account(f"participant-{len(self.participants)}")
            self.conn.fund_from_dev_account(p.address, Wei(10**19))
            self.register_gas.append(self.fed.with_account(p).register("Org", "industry", b"\x02" * 33, 1_000).gas_used)
            self.admit_gas.append(self.admin.admit(p.address).gas_used)
            self.participants.append(p)

    def round(self, committers: list[LocalAccount], model: bytes) -> dict[str, Any]:
        """Open a round, let ``committers`` commit, finalize with all of them included."""
        current = self.fed.current_model_digest()
        base = current if current != bytes(32) else keccak(b"genesis")
        opened = self.agg.open_round(base, "bafybase", 3600, 1)
        rid = opened.round_id
        assert rid is not None
        commit_gas: list[int] = []
        leaves = []
        for i, p in enumerate(committers):
            digest, meta = keccak(b"update-%d-%d" % (rid, i)), keccak(b"meta-%d" % i)
            cid = f"bafkreiupdate{rid:06d}{i:03d}"
            commit_gas.append(self.fed.with_account(p).commit_update(rid, digest, cid, 100 + i, meta).gas_used)
            leaves.append(commitment_leaf(rid, p.address, digest, cid, 100 + i, meta))
        fin = self.agg.finalize_round(
            rid, model, "bafymodel", merkle_root(leaves), keccak(b"agg"), keccak(b"ev"), "bafyevidence", len(committers)
        )
        return {"round_id": rid, "open": opened.gas_used, "commits": commit_gas, "finalize": fin.gas_used}


def private_gas(bench: Bench, participant: LocalAccount, rounds: int = 3) -> dict[str, Any]:
    """A private task (``configurePrivateTask``) and ``rounds`` private rounds in which ``participant`` commits with a
    growing privacy claim: the first claim writes its epsilon slot from zero, the later ones overwrite it."""
    configured = bench.admin.configure_private_task(
        keccak(b"spec"), keccak(b"strategy"), keccak(b"schema"), "bafyprivate", 86_400, keccak(b"policy"), 8_000_000
    )
    gas: list[int] = []
    for r in range(rounds):
        opened = bench.agg.open_round(bench.fed.current_model_digest(), "bafybase", 60, 1)
        rid = opened.round_id or 0
        digest, meta, cid = keccak(b"private-%d" % r), keccak(b"meta"), f"bafkreiprivate{rid:06d}"
        commit = bench.fed.with_account(participant).commit_private_update(
            rid, digest, cid, 100, meta, 1_000_000 * (r + 1), keccak(b"accountant-%d" % r)
        )
        gas.append(commit.gas_used)
        root = merkle_root([commitment_leaf(rid, participant.address, digest, cid, 100, meta)])
        bench.conn.request("evm_increaseTime", [61])  # the other participants do not commit: wait out the deadline
        bench.conn.request("evm_mine")
        bench.agg.finalize_round(rid, keccak(b"private-model-%d" % r), "bafymodel", root, keccak(b"agg"),
                                 keccak(b"ev"), "bafyevidence", 1)
    return {
        "configure_private_task_gas": configured.gas_used,
        "commit_private_gas_first": gas[0],
        "commit_private_gas_later": gas[-1],
    }


def secure_gas(bench: Bench, committers: list[LocalAccount]) -> dict[str, Any]:
    """A secure-aggregation round (``openSecureRound``) in which ``committers`` advertise, wait out the advertise
    phase (the other participants do not advertise), commit masked inputs (``commitUpdate``: the commit phase ends
    early once every advertiser committed), post their unmasking shares (the unmask phase then ends early), and the
    round is finalised."""
    current = bench.fed.current_model_digest()
    base = current if current != bytes(32) else keccak(b"genesis")
    opened = bench.agg.open_secure_round(base, "bafybase", 60, 3600, 1, 3600)
    rid = opened.round_id or 0
    advertise = [bench.fed.with_account(p).post_advertisement(rid, keccak(b"ad-%d" % i), f"bafkreiad{i:03d}").gas_used
                 for i, p in enumerate(committers)]
    bench.conn.request("evm_increaseTime", [61])
    bench.conn.request("evm_mine")
    commits, leaves = [], []
    for i, p in enumerate(committers):
        digest, meta, cid = keccak(b"masked-%d" % i), keccak(b"meta"), f"bafkreimasked{i:03d}"
        commits.append(bench.fed.with_account(p).commit_update(rid, digest, cid, 100, meta).gas_used)
        leaves.append(commitment_leaf(rid, p.address, digest, cid, 100, meta))
    unmask = [bench.fed.with_account(p).post_unmasking_shares(rid, keccak(b"sh-%d" % i), f"bafkreish{i:03d}").gas_used
              for i, p in enumerate(committers)]
    fin = bench.agg.finalize_round(rid, keccak(b"secure-model"), "bafymodel", merkle_root(leaves), keccak(b"agg"),
                                   keccak(b"ev"), "bafyevidence", len(committers))
    return {
        "open_secure_gas": opened.gas_used,
        "advertise_gas": max(advertise),
        "commit_secure_gas": max(commits),
        "unmask_gas": max(unmask),
        "finalize_secure_gas": fin.gas_used,
    }


def governance_gas(conn: Connection, included: int = 4) -> dict[str, Any]:
    """Gas of governance on ``conn`` (a devnet with funded dev accounts): a governed deployment with three founders;
    a proposal that admits a participant (propose, the first vote, queue, execute: the admission and its membership
    mint); a positive attestation of a round with ``included`` included updates (a Merkle proof of log2 of them);
    and a dispute of that round executed through the Governor (its execute transaction)."""
    params = GovernanceParams(voting_delay=1, voting_period=5, quorum_percent=50, timelock_delay_s=60)
    deployer, aggregator = account("gov-deployer"), account("gov-aggregator")
    founders = [account(f"gov-founder-{i}") for i in range(3)]
    members = [account(f"gov-participant-{i}") for i in range(included)]
    for a in (deployer, aggregator, *founders, *members):
        conn.fund_from_dev_account(a.address, Wei(10**20))
    fed, deployment, deploy_reports = deploy_governed(
        conn, deployer, aggregator.address, [f.address for f in founders], params
    )

    def govern(calls: list[Any], description: str) -> dict[str, int]:
        gov = Governance.from_deployment(conn, deployment, founders[0])
        proposal_id, proposed = gov.propose(calls, description)
        advance(conn, blocks=params.voting_delay)
        votes = [Governance.from_deployment(conn, deployment, f).vote(proposal_id, Support.FOR).gas_used
                 for f in founders]  # the founders' votes make the quorum (50% of up to 7 members)
        advance(conn, blocks=params.voting_period)
        queued = gov.queue(proposal_id)
        advance(conn, seconds=params.timelock_delay_s)
        executed = gov.execute(proposal_id)
        return {"propose": proposed.gas_used, "vote": votes[0], "vote_second": votes[1], "queue": queued.gas_used,
                "execute": executed.gas_used}

    for m in members:
        fed.with_account(m).register("Org", "industry", b"\x02" * 33, 1_000)
    spec, strategy, schema = (Digest(keccak(x)) for x in (b"spec", b"strategy", b"schema"))
    setup = [configure_task_call(fed, spec, strategy, schema, Cid("bafyconfig"), 86_400)]
    setup += [admit_call(fed, m.address) for m in members[1:]]
    govern(setup, "configure the task, admit the participants but one")
    admission = govern([admit_call(fed, members[0].address)], "admit one participant")

    agg = fed.with_account(aggregator)
    rid = agg.open_round(keccak(b"genesis"), "bafybase", 3600, 1).round_id or 0
    commitments = []
    for i, m in enumerate(members):
        digest, meta, cid = keccak(b"gov-update-%d" % i), keccak(b"gov-meta-%d" % i), f"bafkreigovupdate{i:03d}"
        fed.with_account(m).commit_update(rid, digest, cid, 100, meta)
        commitments.append((m, digest, cid, meta, commitment_leaf(rid, m.address, digest, cid, 100, meta)))
    tree = MerkleTree.build(leaf for *_, leaf in commitments)
    model = keccak(b"gov-model")
    agg.finalize_round(rid, model, "bafymodel", tree.root, keccak(b"agg"), keccak(b"ev"), "bafyev", len(members))
    def inclusion(i: int) -> Inclusion:
        _, digest, cid, meta, leaf = commitments[i]
        return Inclusion(Digest(digest), Cid(cid), 100, Digest(meta), tuple(tree.proof(leaf)))

    attest = fed.with_account(members[0]).attest_round(rid, model, True, bytes(32), "", inclusion(0))
    negative = fed.with_account(members[1]).attest_round(
        rid, keccak(b"replayed"), False, keccak(b"findings"), "bafkreifindings", inclusion(1)
    )
    dispute = govern(
        [dispute_call(fed, rid, aggregator.address, Digest(keccak(b"findings")), Cid("bafkreifindings"),
                      "replay mismatch")],
        "dispute the round",
    )
    return {
        "governed_deploy_gas": sum(r.gas_used for r in deploy_reports),
        "timelock_deploy_gas": deploy_reports[0].gas_used,
        "federation_deploy_gas_governed": deploy_reports[1].gas_used,
        "governor_deploy_gas": deploy_reports[2].gas_used,
        "propose_gas": admission["propose"],
        "vote_gas": admission["vote"],
        "vote_gas_second": admission["vote_second"],
        "queue_gas": admission["queue"],
        "execute_gas": admission["execute"],
        "attest_gas": attest.gas_used,
        "attest_negative_gas": negative.gas_used,
        "attest_included": len(members),
        "dispute_gas": dispute["execute"],
        "dispute_propose_gas": dispute["propose"],
    }


def incentives_gas(conn: Connection, participants: int = 8) -> dict[str, Any]:
    """Gas of the incentives on ``conn`` (a devnet with funded dev accounts): a Federation administered by an EOA with
    its reward token and FederationIncentives; a participant's deposit; a slash (the admin's call: under governance
    the timelock makes it, inside the execute of a proposal); the aggregator's publication of a round's reward root
    over ``participants`` leaves; a Merkle claim with a proof of log2(participants) hashes (the first claim of the
    round, and a later one); a withdrawal request and a withdrawal after the delay."""
    admin, aggregator = account("inc-admin"), account("inc-aggregator")
    members = [account(f"inc-participant-{i}") for i in range(participants)]
    for a in (admin, aggregator, *members):
        conn.fund_from_dev_account(a.address, Wei(10**20))
    fed, deployment, _ = deploy(conn, admin, admin.address, aggregator.address)
    inc, deployment, deploy_reports = deploy_incentives(conn, admin, deployment, supply=10**24)
    incentives, token = str(deployment.incentives), str(deployment.reward_token)
    deposit, budget = 10**17, 10**21

    def as_admin(call: ProposalCall) -> int:
        report, _ = conn.send_transaction(admin, to=call.target, data=call.calldata)
        return report.gas_used

    as_admin(set_deposit_policy_call(incentives, deposit, 60, admin.address))
    as_admin(set_budget_call(incentives, budget))
    as_admin(fund_pool_call(token, incentives, 10 * budget))
    fed.with_account(admin).configure_task(keccak(b"spec"), keccak(b"strategy"), keccak(b"schema"), "bafyconfig", 86_400)
    deposits = []
    for m in members:
        fed.with_account(m).register("Org", "industry", b"\x02" * 33, 1_000)
        fed.with_account(admin).admit(m.address)
        deposits.append(inc.with_account(m).deposit().gas_used)
    slash = as_admin(slash_call(incentives, members[-1].address, deposit // 2, Digest(keccak(b"finding")),
                                Cid("bafkreifinding")))

    agg = fed.with_account(aggregator)
    rid = agg.open_round(keccak(b"genesis"), "bafybase", 3600, 1).round_id or 0
    fed.with_account(members[0]).commit_update(rid, keccak(b"inc-update"), "bafkreiincupdate", 100, keccak(b"meta"))
    conn.request("evm_increaseTime", [3601])
    conn.request("evm_mine")
    agg.finalize_round(rid, keccak(b"inc-model"), "bafymodel", keccak(b"root"), keccak(b"agg"), keccak(b"ev"),
                       "bafyev", 1)
    amounts = [(m, budget // participants) for m in members]
    leaves = {m.address: inc.reward_leaf(rid, m.address, amount) for m, amount in amounts}
    tree = MerkleTree.build(leaves.values())
    publish = inc.with_account(aggregator).publish_rewards(
        rid, tree.root, budget, Digest(keccak(b"scores")), Cid("bafkreiscores")
    ).gas_used
    claims = [inc.with_account(m).claim(rid, amount, tree.proof(leaves[m.address])).gas_used for m, amount in amounts]

    leaver = members[0]
    fed.with_account(leaver).leave("benchmark leave")
    request = inc.with_account(leaver).request_withdrawal().gas_used
    conn.request("evm_increaseTime", [61])
    conn.request("evm_mine")
    withdraw = inc.with_account(leaver).withdraw().gas_used
    return {
        "incentives_deploy_gas": deploy_reports[1].gas_used,
        "reward_token_deploy_gas": deploy_reports[0].gas_used,
        "deposit_gas": deposits[0],
        "slash_gas": slash,
        "publish_rewards_gas": publish,
        "claim_gas": claims[0],
        "claim_gas_later": claims[-1],
        "claim_participants": participants,
        "request_withdrawal_gas": request,
        "withdraw_gas": withdraw,
    }


def run(rounds: int, progress: Progress) -> dict[str, Any]:
    started = time.monotonic()
    with DevnetProcess("anvil") as devnet:
        conn = Connection(devnet.url, tx_timeout_s=30)
        admin, aggregator = account("admin"), account("aggregator")
        for a in (admin, aggregator):
            conn.fund_from_dev_account(a.address, Wei(10**20))
        fed, _, deploy_report = deploy(conn, admin, admin.address, aggregator.address)
        bench = Bench(conn, fed, admin, aggregator)
        task = bench.admin.configure_task(keccak(b"spec"), keccak(b"strategy"), keccak(b"schema"), "bafyconfig", 86_400)

        # Phase A: one participant commits in every round; all active committed -> finalize at once.
        bench.add_participants(1)
        solo = bench.participants[0]
        per_round: list[dict[str, Any]] = []
        job = progress.add_task("rounds with one participant", total=rounds)
        for r in range(rounds):
            per_round.append(bench.round([solo], keccak(b"model-%d" % r)))
            progress.advance(job)
        commit_series = [entry["commits"][0] for entry in per_round]

        # Phase B/C: finalize with 4 and with 64 included updates.
        job = progress.add_task("participants for n=4 / n=64", total=63)
        bench.add_participants(3)
        progress.advance(job, 3)
        n4 = bench.round(bench.participants[:4], keccak(b"model-n4"))
        for _ in range(60):
            bench.add_participants(1)
            progress.advance(job)
        n64 = bench.round(bench.participants[:64], keccak(b"model-n64"))

        # Close and remove.
        opened = bench.agg.open_round(fed.current_model_digest(), "bafybase", 60, 1)
        conn.request("evm_increaseTime", [61])
        conn.request("evm_mine")
        closed = bench.agg.close_round(opened.round_id or 0, "benchmark close")
        removed = bench.admin.remove(bench.participants[-1].address, "benchmark remove")

        job = progress.add_task("secure round", total=1)
        secure = secure_gas(bench, bench.participants[:4])
        progress.advance(job)

        job = progress.add_task("private rounds", total=1)
        private = private_gas(bench, solo)
        progress.advance(job)

        job = progress.add_task("governance", total=1)
        governance = governance_gas(conn)
        progress.advance(job)

        job = progress.add_task("incentives", total=1)
        incentives = incentives_gas(conn)
        progress.advance(job)

    c1, cn = commit_series[0], commit_series[-1]
    f4, f64 = n4["finalize"], n64["finalize"]
    targets = {
        "commit_le_38300": max(commit_series + n4["commits"] + n64["commits"]) <= COMMIT_TARGET,
        "commit_flat": abs(cn - c1) <= COMMIT_FLAT_TOLERANCE * c1,
        "finalize_o1": abs(f64 - f4) <= FINALIZE_TOLERANCE * f4,
    }
    return {
        "engine": "anvil",
        "rounds": rounds,
        "deploy_gas": deploy_report.gas_used,
        "register_gas": bench.register_gas[0],
        "admit_gas": bench.admit_gas[0],
        "configure_task_gas": task.gas_used,
        "open_gas": per_round[1]["open"] if rounds > 1 else per_round[0]["open"],
        "open_gas_first_round": per_round[0]["open"],
        "commit_gas_round_1": c1,
        f"commit_gas_round_{rounds}": cn,
        "commit_gas_min": min(commit_series),
        "commit_gas_max": max(commit_series),
        "commit_gas_n64_min": min(n64["commits"]),
        "commit_gas_n64_max": max(n64["commits"]),
        "finalize_gas_n1_round_1": per_round[0]["finalize"],
        f"finalize_gas_n1_round_{rounds}": per_round[-1]["finalize"],
        "finalize_gas_n4": f4,
        "finalize_gas_n64": f64,
        "finalize_n64_vs_n4": round(f64 / f4 - 1, 5),
        **private,
        **secure,
        "close_gas": closed.gas_used,
        "remove_gas": removed.gas_used,
        **governance,
        **incentives,
        "reference_2cp": REFERENCE_2CP,
        "targets": {
            "commit_max_gas": COMMIT_TARGET,
            "commit_flat_tolerance": COMMIT_FLAT_TOLERANCE,
            "finalize_tolerance": FINALIZE_TOLERANCE,
            **targets,
        },
        "ok": all(targets.values()),
        "wall_s": round(time.monotonic() - started, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--rounds", type=int, default=100, help="rounds for the commit-flatness series (default 100)")
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with Progress(console=Console(stderr=True), transient=True) as progress:
        result = run(args.rounds, progress)
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
    else:
        for key, value in result.items():
            if key not in ("targets", "reference_2cp"):
                print(f"{key:28s} {value}")
        print(f"{'2CP reference':28s} {REFERENCE_2CP['commit_gas_first']} -> {REFERENCE_2CP['commit_gas_later']}")
        print("targets met" if result["ok"] else f"TARGETS MISSED: {result['targets']}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

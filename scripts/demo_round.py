#!/usr/bin/env python
"""One federation round on chain, end to end, with the gas of every transaction.

Starts a throw-away anvil devnet (or uses ``--rpc-url``), deploys Federation, registers and
admits three participants, configures a task, opens a round, lets each participant commit
an update, finalizes the round with the Merkle root of the commitments and checks every
inclusion proof on chain. The digests and CIDs are illustrative stand-ins for real
update blobs (the federation loop produces real ones).

On ``--rpc-url`` the deployer is ``FEDCHAIN_PRIVATE_KEY`` when set, otherwise a fresh
account funded from the node's unlocked dev account.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from typing import Any, Iterator

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak

from fedchain.chain.accounts import account_from_env
from fedchain.chain.connection import Connection
from fedchain.services.devnet import DevnetProcess
from fedchain.chain.federation import deploy
from fedchain.chain.ledger import ChainLedger
from fedchain.errors import FedchainError
from fedchain.ports import TxReport
from fedchain.codec.merkle import MerkleTree, commitment_leaf
from fedchain.types import Cid, Digest, RoundId, Wei

ORGS = [("Northside Hospital", "health"), ("Harbor Bank", "finance"), ("Valley Insurer", "insurance")]


@contextlib.contextmanager
def endpoint(rpc_url: str | None) -> Iterator[str]:
    if rpc_url:
        yield rpc_url
        return
    with DevnetProcess("anvil") as devnet:
        yield devnet.url


def demo(url: str) -> dict[str, Any]:
    conn = Connection(url)
    deployer = account_from_env()
    if deployer is None:
        deployer = Account.create()
        conn.fund_from_dev_account(deployer.address, Wei(10 * 10**18))
    aggregator: LocalAccount = Account.create()
    participants: list[LocalAccount] = [Account.create() for _ in ORGS]
    txs: list[TxReport] = []
    for acct in (aggregator, *participants):
        txs.append(conn.transfer(deployer, acct.address, Wei(10**18)))

    contract, deployment, report = deploy(conn, deployer, deployer.address, aggregator.address)
    txs.append(report)
    admin = ChainLedger(contract)
    agg = admin.with_account(aggregator)
    for acct, (org, industry) in zip(participants, ORGS):
        txs.append(admin.with_account(acct).register(org, industry, b"\x02" + keccak(acct.address.encode())))
        txs.append(admin.admit(admin.with_account(acct).sender))
    txs.append(
        admin.configure_task(
            Digest(keccak(b"model-spec")), Digest(keccak(b"strategy")), Digest(keccak(b"data-schema")), Cid("bafydemoconfig")
        )
    )
    opened = agg.open_round(Digest(keccak(b"initial-model")), Cid("bafydemoinitialmodel"), 600, 2)
    txs.append(opened)
    rid = RoundId(opened.round_id or 0)
    for i, acct in enumerate(participants):
        txs.append(
            admin.with_account(acct).commit_update(
                rid, Digest(keccak(b"update-%d" % i)), Cid(f"bafydemoupdate{i}"), 500 + 100 * i, Digest(keccak(b"meta-%d" % i))
            )
        )
    commitments = admin.commitments(rid)
    leaves = [
        commitment_leaf(c.round_id, c.participant, c.update_digest, c.cid, c.num_samples, c.metadata_digest)
        for c in commitments
    ]
    tree = MerkleTree.build(leaves)
    txs.append(
        agg.finalize_round(
            rid,
            Digest(keccak(b"global-model-1")),
            Cid("bafydemoglobal1"),
            tree.root,
            Digest(keccak(b"aggregation")),
            Digest(keccak(b"evidence")),
            Cid("bafydemoevidence1"),
            len(commitments),
        )
    )
    proofs_ok = all(contract.verify_inclusion(rid, leaf, tree.proof(leaf)) for leaf in leaves)
    record = admin.round(rid)
    return {
        "rpc_url": url,
        "chain_id": conn.chain_id,
        "contract": deployment.address,
        "round": record,
        "commitments": len(commitments),
        "merkle_root": tree.root,
        "inclusion_proofs_verified_on_chain": proofs_ok,
        "transactions": txs,
        "total_gas": sum(t.gas_used for t in txs),
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"Federation {result['contract']} on chain {result['chain_id']} ({result['rpc_url']})",
        f"round {result['round'].round_id}: {result['round'].status.name.lower()}, "
        f"{result['commitments']} commitments, merkle root 0x{bytes(result['merkle_root']).hex()}",
        f"inclusion proofs verified on chain: {result['inclusion_proofs_verified_on_chain']}",
        "",
        f"{'function':16s} {'gas':>9s}  tx",
    ]
    for t in result["transactions"]:
        lines.append(f"{t.function:16s} {t.gas_used:9d}  {t.tx_hash}")
    lines.append(f"{'total':16s} {result['total_gas']:9d}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpc-url", default=os.environ.get("FEDCHAIN_RPC_URL") or None)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every transaction on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        with endpoint(args.rpc_url) as url:
            result = demo(url)
    except FedchainError as err:
        print(f"error: {err}", file=sys.stderr)
        return int(err.exit_code)
    if args.json:
        from fedchain.cli.options import to_jsonable

        print(json.dumps(to_jsonable(result), indent=2, sort_keys=True))
    else:
        print(render(result))
    return 0 if result["inclusion_proofs_verified_on_chain"] else 1


if __name__ == "__main__":
    sys.exit(main())

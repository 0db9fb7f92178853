"""The aggregator's wait for a deadline on a chain that may mine nothing: a local devnet is asked
for a block (``evm_mine``) once its clock passed the deadline; a real chain is waited on, with a
progress line.

The contract judges a deadline by block time, and a devnet that mines only on transactions (anvil
without ``--block-time``) mines no block past a deadline unless someone sends one: the round's
end would wait for a transaction that never comes."""

from __future__ import annotations

import sys
import time

import click

from fedchain.chain.connection import Connection
from fedchain.chain.ledger import ChainLedger
from fedchain.engine.ledger import LedgerTransport
from fedchain.ports import Ledger, RoundRecord
from fedchain.types import RoundId

DEVNET_CLIENTS = ("anvil", "hardhat", "ganache")  # web3_clientVersion prefixes of nodes that answer evm_mine
DEVNET_CHAIN_IDS = frozenset({31337, 1337})
# the longest the devnet transport waits between two looks at the chain's clock
DEVNET_LOOK_S = 1.0
CHAIN_LOOK_S = 5.0  # on a real chain: the longest wait between two looks before its deadline


def devnet_connection(ledger: Ledger) -> Connection | None:
    """The ledger's connection when its node is a local devnet that mines on request (its
    ``web3_clientVersion`` names anvil, Hardhat or Ganache, or its chain id is 31337/1337), else None."""
    if not isinstance(ledger, ChainLedger):
        return None
    conn = ledger.conn
    try:
        client = str(conn.request("web3_clientVersion") or "").lower()
    except Exception:  # noqa: BLE001 - a node without the method is not a devnet we can ask
        client = ""
    if client.startswith(DEVNET_CLIENTS) or int(conn.chain_id) in DEVNET_CHAIN_IDS and client:
        return conn
    return None


def last_deadline(rnd: RoundRecord) -> int:
    """The last deadline a round has: unmasking (secure), reveal (commit-reveal) or commit."""
    return int(rnd.unmask_deadline if rnd.secure else rnd.reveal_deadline if rnd.commit_reveal else rnd.deadline)


def phase_deadlines(rnd: RoundRecord) -> list[int]:
    """Every phase end of a round in time order: advertising (secure), commit, reveal (commit-reveal), unmasking
    (secure); participants move on to the next phase only once a block past the previous one is mined."""
    ends = [rnd.advertise_deadline if rnd.secure else 0, rnd.deadline,
            rnd.reveal_deadline if rnd.commit_reveal else 0, rnd.unmask_deadline if rnd.secure else 0]
    return sorted(int(d) for d in ends if d)


class OperatorTransport(LedgerTransport):
    """The aggregator's transport for the CLI: on a local devnet it mines a block once the chain's
    clock passed the round's deadline (so a quiet devnet never stalls a round's end); elsewhere it
    waits for blocks as the engine does, saying so on stderr once the deadline passed."""

    devnet: Connection | None = None

    def wait_commit_phase(self, round_id: RoundId, timeout_s: float | None = None) -> bool:
        """Wait until the contract says the commit phase is over (see the engine's); on a local
        devnet, mine a block past the deadline instead of waiting for one."""
        if self.commit_phase_over(round_id):
            return True
        if self.devnet is None:
            return self._wait_on_chain(round_id, timeout_s)
        conn = self.devnet
        start = time.monotonic()
        conn.request("evm_mine")  # one block tells the devnet's clock (its offset from ours)
        skew = self.ledger.block_timestamp() - time.time()
        if self.commit_phase_over(round_id):  # the deadline had passed: that block was all it needed
            click.echo(f"round {round_id}: deadline {last_deadline(self.ledger.round(round_id))} passed; asked the "
                       f"devnet for a block (block {self.ledger.block_number()})", err=True)
            return True
        told: set[int] = set()
        while not self.commit_phase_over(round_id):
            remaining = None if timeout_s is None else timeout_s - (time.monotonic() - start)
            if remaining is not None and remaining <= 0:
                return False
            rnd = self.ledger.round(round_id)
            latest = self.ledger.block_timestamp()
            # the next phase end the chain has not passed yet (a block at or before it is still in it)
            pending = [d for d in phase_deadlines(rnd) if d >= latest] or [last_deadline(rnd)]
            deadline = pending[0]
            deadline_in = deadline + 1 - (time.time() + skew)
            if deadline_in <= 0:  # past it on the devnet's clock: a block tells the contract (and the participants)
                if deadline not in told:
                    told.add(deadline)
                    click.echo(f"round {round_id}: deadline {deadline} passed; asking the devnet for a block",
                               err=True)
                conn.request("evm_mine")
                skew = self.ledger.block_timestamp() - time.time()
                if self.commit_phase_over(round_id):
                    break
                time.sleep(0.2)
                continue
            step = min(DEVNET_LOOK_S, deadline_in + 0.05)
            if remaining is not None:
                step = min(step, remaining)
            # commits, seals and reveals arrive as blocks; the engine's wait sees them
            if super().wait_commit_phase(round_id, max(step, 0.0)):
                return True
        return True

    def _wait_on_chain(self, round_id: RoundId, timeout_s: float | None) -> bool:
        """The engine's wait (blocks, and ChainStalledError for a chain that mines nothing past the deadline), with a
        stderr line when it starts and one when the deadline passed on the chain's clock."""
        if timeout_s is not None and timeout_s <= 0:
            return super().wait_commit_phase(round_id, timeout_s)
        start = time.monotonic()
        rnd = self.ledger.round(round_id)
        deadline = last_deadline(rnd)
        latest = self.ledger.block_timestamp()
        skew = latest - time.time()  # the chain's clock minus ours, as of its latest block
        if deadline >= latest:
            click.echo(f"round {round_id}: commit phase open until {deadline} "
                       f"({rnd.commit_count} of {rnd.eligible_count} eligible committed); waiting", err=True)
            while deadline + 1 > time.time() + skew:  # until the deadline passed on the chain's clock
                remaining = None if timeout_s is None else timeout_s - (time.monotonic() - start)
                if remaining is not None and remaining <= 0:
                    return False
                step = min(CHAIN_LOOK_S, deadline + 1 - (time.time() + skew))
                if super().wait_commit_phase(round_id, max(0.0, step if remaining is None else min(step, remaining))):
                    return True
        click.echo(f"round {round_id}: deadline {deadline} passed; waiting for the chain to mine a block past it "
                   f"(latest block {self.ledger.block_number()} at {self.ledger.block_timestamp()})", err=True)
        sys.stderr.flush()
        remaining = None if timeout_s is None else max(0.0, timeout_s - (time.monotonic() - start))
        return super().wait_commit_phase(round_id, remaining)

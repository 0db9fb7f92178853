"""Rounds with a real Merkle tree over the included commitments, for the tests of attestations, disputes and
exclusion contests (the contract checks inclusion proofs against the root)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak

from fedchain.chain.federation import FederationContract
from fedchain.codec.merkle import MerkleTree, commitment_leaf
from fedchain.ports import Inclusion, UpdateCommitment
from fedchain.types import Address, Cid, Digest, RoundId
from tests.fixtures_devnet import DevnetEnv

BASE_MODEL = Digest(keccak(b"round-base-model"))
SAMPLES = 10


@dataclass(frozen=True)
class FinalizedRound:
    """A finalised round: who committed, who was included, the tree over the included leaves."""

    round_id: RoundId
    model: Digest
    base: Digest
    commitments: dict[str, UpdateCommitment]  # by participant address
    included: tuple[str, ...]
    tree: MerkleTree

    def inclusion(self, participant: str) -> Inclusion:
        """The participant's inclusion proof (for one not included: the values of its commitment and an empty proof)."""
        c = self.commitments[participant]
        leaf = commitment_leaf(self.round_id, participant, c.update_digest, c.cid, c.num_samples, c.metadata_digest)
        proof = tuple(self.tree.proof(leaf)) if participant in self.included else ()
        return Inclusion(c.update_digest, c.cid, c.num_samples, c.metadata_digest, proof)


def finalized_round(
    env: DevnetEnv,
    committers: Sequence[LocalAccount],
    included: Sequence[LocalAccount],
    model: bytes,
    *,
    federation: FederationContract | None = None,
) -> FinalizedRound:
    """Open a round from the current model (or :data:`BASE_MODEL`), let ``committers`` commit, finalise it with
    ``model`` and the Merkle root over the commitments of ``included``."""
    fed = federation or env.federation()
    agg = fed.with_account(env.accounts.aggregator)
    current = fed.current_model_digest()
    base = Digest(current if current != bytes(32) else BASE_MODEL)
    opened = agg.open_round(base, "bafybase", 3600, 1)
    rid = RoundId(opened.round_id or 0)
    commitments: dict[str, UpdateCommitment] = {}
    for i, account in enumerate(committers):
        digest, meta, cid = Digest(keccak(b"u%d-%d" % (rid, i))), Digest(keccak(b"m%d" % i)), Cid(f"bafyu{rid}x{i}")
        report = fed.with_account(account).commit_update(rid, digest, cid, SAMPLES, meta)
        commitments[account.address] = UpdateCommitment(
            rid, Address(account.address), digest, cid, SAMPLES, meta, report.block_number, report.tx_hash, 0
        )
    leaves = [
        commitment_leaf(rid, a.address, c.update_digest, c.cid, c.num_samples, c.metadata_digest)
        for a in included
        for c in [commitments[a.address]]
    ]
    tree = MerkleTree.build(leaves)
    if not fed.commit_phase_over(rid):  # not every eligible participant committed: wait for the deadline
        env.conn.request("evm_increaseTime", [3601])
        env.conn.request("evm_mine")
    agg.finalize_round(
        rid, model, "bafymodel", tree.root, keccak(b"agg"), keccak(b"ev"), "bafyev", len(included)
    )
    return FinalizedRound(rid, Digest(model), base, commitments, tuple(a.address for a in included), tree)

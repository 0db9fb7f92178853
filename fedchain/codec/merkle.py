"""Merkle tree over the commitments included in an aggregate.

Built exactly like OpenZeppelin's ``StandardMerkleTree`` (``@openzeppelin/merkle-tree``):

* a leaf is the double keccak of the ABI-encoded values, here
  :func:`commitment_leaf`, identical to ``Federation.commitmentLeaf``;
* leaves are sorted ascending as 32-byte values and laid out in a complete binary tree
  stored as an array (``tree[len - 1 - i] = leaves[i]``; node ``i`` has children
  ``2i + 1`` and ``2i + 2``);
* inner nodes are ``keccak256(min(a, b) ++ max(a, b))`` (commutative), so a proof is a
  plain list of sibling hashes that ``MerkleProof.verify`` accepts on chain;
* a single leaf is its own root.

Pure functions over bytes; no web3.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fedchain.codec.abi import encode as abi_encode
from fedchain.codec.abi import keccak, to_canonical_address
from fedchain.errors import MerkleError
from fedchain.types import Digest

HASH_SIZE = 32


def _check_hash(value: bytes, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise MerkleError(f"{what} must be {HASH_SIZE} bytes, got {size}")
    return bytes(value)


def commitment_leaf(
    round_id: int,
    participant: str,
    update_digest: bytes,
    cid: str,
    num_samples: int,
    metadata_digest: bytes,
) -> Digest:
    """``keccak256(bytes.concat(keccak256(abi.encode(roundId, participant, updateDigest,
    keccak256(bytes(cid)), numSamples, metadataDigest))))`` - the contract's ``commitmentLeaf``."""
    if round_id < 0 or round_id >= 2**256:
        raise MerkleError(f"round id out of uint256 range: {round_id}")
    if num_samples < 0 or num_samples >= 2**64:
        raise MerkleError(f"num_samples out of uint64 range: {num_samples}")
    try:
        address = to_canonical_address(participant)
    except ValueError as err:
        raise MerkleError(f"participant is not an address: {participant!r}") from err
    encoded = abi_encode(
        ["uint256", "address", "bytes32", "bytes32", "uint64", "bytes32"],
        [
            round_id,
            address,
            _check_hash(update_digest, "update digest"),
            keccak(cid.encode("utf-8")),
            num_samples,
            _check_hash(metadata_digest, "metadata digest"),
        ],
    )
    return Digest(keccak(keccak(encoded)))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin ``Hashes.commutativeKeccak256``."""
    return keccak(a + b) if a < b else keccak(b + a)


@dataclass(frozen=True)
class MerkleTree:
    """An OpenZeppelin-standard Merkle tree over 32-byte leaves (already hashed)."""

    nodes: tuple[bytes, ...]  # the array layout, root at index 0
    leaves: tuple[bytes, ...]  # sorted ascending

    @classmethod
    def build(cls, leaves: Iterable[bytes]) -> MerkleTree:
        """Build the tree; raises :class:`MerkleError` on no leaves or a leaf not 32 bytes."""
        checked = sorted(_check_hash(leaf, "leaf") for leaf in leaves)
        if not checked:
            raise MerkleError("cannot build a Merkle tree without leaves")
        size = 2 * len(checked) - 1
        nodes: list[bytes] = [b""] * size
        for i, leaf in enumerate(checked):
            nodes[size - 1 - i] = leaf
        for i in range(size - 1 - len(checked), -1, -1):
            nodes[i] = hash_pair(nodes[2 * i + 1], nodes[2 * i + 2])
        return cls(nodes=tuple(nodes), leaves=tuple(checked))

    @property
    def root(self) -> Digest:
        """The Merkle root."""
        return Digest(self.nodes[0])

    def proof(self, leaf: bytes) -> list[bytes]:
        """Sibling hashes from ``leaf`` up to the root; :class:`MerkleError` if not a leaf."""
        leaf = _check_hash(leaf, "leaf")
        size = len(self.nodes)
        try:
            index = size - 1 - self.leaves.index(leaf)
        except ValueError as err:
            raise MerkleError(f"0x{leaf.hex()} is not a leaf of this tree") from err
        path: list[bytes] = []
        while index > 0:
            sibling = index - 1 if index % 2 == 0 else index + 1
            path.append(self.nodes[sibling])
            index = (index - 1) // 2
        return path


def merkle_root(leaves: Iterable[bytes]) -> Digest:
    """Root of the standard tree over ``leaves``."""
    return MerkleTree.build(leaves).root


def process_proof(proof: Sequence[bytes], leaf: bytes) -> bytes:
    """OpenZeppelin ``MerkleProof.processProof``: the root implied by ``leaf`` and ``proof``."""
    computed = _check_hash(leaf, "leaf")
    for i, node in enumerate(proof):
        computed = hash_pair(computed, _check_hash(node, f"proof element {i}"))
    return computed


def verify(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """OpenZeppelin ``MerkleProof.verify``."""
    return process_proof(proof, leaf) == _check_hash(root, "root")

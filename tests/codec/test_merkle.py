"""Merkle tree: OpenZeppelin StandardMerkleTree layout, proofs, and the commitment leaf."""

from __future__ import annotations

import pytest
from eth_abi import encode as abi_encode
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.codec.merkle import MerkleTree, commitment_leaf, hash_pair, merkle_root, process_proof, verify
from fedchain.errors import AggregationError, MerkleError

leaf_st = st.binary(min_size=32, max_size=32)
leaves_st = st.lists(leaf_st, min_size=1, max_size=40, unique=True)

ADDR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_single_leaf_is_its_own_root() -> None:
    leaf = keccak(b"only")
    tree = MerkleTree.build([leaf])
    assert tree.root == leaf
    assert tree.proof(leaf) == []
    assert verify([], leaf, leaf)


def test_two_leaves_hash_commutatively() -> None:
    a, b = keccak(b"a"), keccak(b"b")
    assert merkle_root([a, b]) == keccak(min(a, b) + max(a, b))
    assert merkle_root([b, a]) == merkle_root([a, b])


def test_three_leaves_follow_the_openzeppelin_array_layout() -> None:
    a, b, c = sorted([keccak(b"x"), keccak(b"y"), keccak(b"z")])
    # nodes[4]=a, nodes[3]=b, nodes[2]=c; nodes[1]=h(b,a); root=h(nodes[1], c)
    assert merkle_root([c, a, b]) == hash_pair(hash_pair(a, b), c)
    tree = MerkleTree.build([a, b, c])
    assert tree.proof(c) == [hash_pair(a, b)]
    assert tree.proof(a) == [b, c]


@settings(max_examples=60, deadline=None)
@given(leaves_st)
def test_every_proof_verifies(leaves: list[bytes]) -> None:
    tree = MerkleTree.build(leaves)
    for leaf in leaves:
        assert verify(tree.proof(leaf), tree.root, leaf)


@settings(max_examples=60, deadline=None)
@given(leaves_st, leaf_st, st.data())
def test_a_changed_leaf_does_not_verify(leaves: list[bytes], other: bytes, data: st.DataObject) -> None:
    tree = MerkleTree.build(leaves)
    leaf = data.draw(st.sampled_from(leaves))
    proof = tree.proof(leaf)
    changed = bytes([leaf[0] ^ 0x01]) + leaf[1:]
    assert not verify(proof, tree.root, changed)
    if other not in leaves:
        assert process_proof(proof, other) != tree.root


@settings(max_examples=30, deadline=None)
@given(leaves_st, st.randoms())
def test_root_is_independent_of_input_order(leaves: list[bytes], rnd: object) -> None:
    shuffled = list(leaves)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert merkle_root(shuffled) == merkle_root(leaves)


def test_empty_tree_is_refused() -> None:
    with pytest.raises(MerkleError, match="without leaves"):
        MerkleTree.build([])


def test_wrong_leaf_size_is_refused() -> None:
    with pytest.raises(MerkleError, match="leaf must be 32 bytes, got 31"):
        MerkleTree.build([b"\x01" * 31])


def test_proof_of_unknown_leaf_is_refused() -> None:
    tree = MerkleTree.build([keccak(b"a"), keccak(b"b")])
    with pytest.raises(AggregationError, match="is not a leaf"):
        tree.proof(keccak(b"c"))


def test_commitment_leaf_matches_the_contract_formula() -> None:
    digest, meta = keccak(b"update"), keccak(b"meta")
    cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    inner = keccak(
        abi_encode(
            ["uint256", "address", "bytes32", "bytes32", "uint64", "bytes32"],
            [7, ADDR, digest, keccak(cid.encode()), 1234, meta],
        )
    )
    assert commitment_leaf(7, ADDR, digest, cid, 1234, meta) == keccak(inner)
    # every field is bound into the leaf
    base = commitment_leaf(7, ADDR, digest, cid, 1234, meta)
    assert commitment_leaf(8, ADDR, digest, cid, 1234, meta) != base
    assert commitment_leaf(7, ADDR, digest, cid + "a", 1234, meta) != base
    assert commitment_leaf(7, ADDR, digest, cid, 1235, meta) != base
    assert commitment_leaf(7, ADDR, meta, cid, 1234, digest) != base


def test_commitment_leaf_rejects_bad_input() -> None:
    d = keccak(b"d")
    with pytest.raises(MerkleError, match="participant is not an address"):
        commitment_leaf(1, "0x1234", d, "bafy", 1, d)
    with pytest.raises(MerkleError, match="update digest must be 32 bytes"):
        commitment_leaf(1, ADDR, b"\x00", "bafy", 1, d)
    with pytest.raises(MerkleError, match="num_samples out of uint64 range"):
        commitment_leaf(1, ADDR, d, "bafy", 2**64, d)

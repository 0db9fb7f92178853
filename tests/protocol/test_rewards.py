"""Rewards config in the task document, the scores blob, reward leaves and their proofs (no chain)."""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction

import pytest
from eth_abi import encode as abi_encode
from eth_hash.auto import keccak
from eth_utils import to_canonical_address, to_checksum_address

from fedchain.codec.blob import encode_json_doc
from fedchain.codec.merkle import verify
from fedchain.errors import BlobFormatError, ConfigError
from fedchain.protocol.rewards import RoundRewardsDoc, build_rewards_doc, proofs, reward_leaf
from fedchain.protocol.task import RewardsConfig, TaskDocument
from fedchain.types import Cid, Digest, RoundId
from tests.protocol.harness import TaskFiles

A = to_checksum_address("0x" + "0a" * 20)
B = to_checksum_address("0x" + "0b" * 20)
C = to_checksum_address("0x" + "0c" * 20)
VALIDATION = RewardsConfig("shapley", {"exact_max": 8, "truncation": 0.01}, Digest(b"\x11" * 32),
                           Cid("bafkreivalidation"), 1000)


def test_a_task_document_without_rewards_keeps_its_bytes(task_files: TaskFiles) -> None:
    doc = task_files.doc
    data = doc.to_bytes()

    assert "rewards" not in json.loads(data)
    assert TaskDocument.from_bytes(data).rewards is None
    assert TaskDocument.from_bytes(data).to_bytes() == data


def test_a_task_document_carries_its_rewards_config(task_files: TaskFiles) -> None:
    doc = replace(task_files.doc, rewards=VALIDATION)

    again = TaskDocument.from_bytes(doc.to_bytes())

    assert again.rewards == VALIDATION
    assert again.to_bytes() == doc.to_bytes() != task_files.doc.to_bytes()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rule": "bribes"}, "unknown rule 'bribes'"),
        ({"validation_digest": None, "validation_cid": None}, "needs a validation set"),
        ({"validation_digest": "0x12"}, "validation_digest"),
        ({"budget": "-3"}, "budget must be a decimal string"),
        ({"params": {"lr": 0.5}}, "unknown parameter"),
        ({"params": {"exact_max": "ten"}}, "param 'exact_max' must be a number"),
        ({"colour": "red"}, "unknown field"),
    ],
)
def test_a_bad_rewards_config_is_refused_on_load(task_files: TaskFiles, change: dict[str, object], message: str) -> None:
    data = replace(task_files.doc, rewards=VALIDATION).to_json()
    data["rewards"] = {**data["rewards"], **change}

    with pytest.raises(ConfigError, match=message):
        TaskDocument.from_bytes(encode_json_doc(data))


def test_samples_needs_no_validation_set() -> None:
    assert RewardsConfig("samples").validation_digest is None


def test_reward_leaf_is_the_contract_formula() -> None:
    inner = keccak(abi_encode(["uint256", "address", "uint256"], [7, to_canonical_address(A), 12345]))

    assert reward_leaf(7, A, 12345) == keccak(inner)
    assert reward_leaf(7, A, 12345) != reward_leaf(8, A, 12345) != reward_leaf(7, B, 12345)


def _doc() -> RoundRewardsDoc:
    scores = {A: 3, B: Fraction(1, 3), C: 0}
    return build_rewards_doc(RoundId(4), "loo", {}, 100, Digest(b"\x22" * 32), scores, {A: 90, B: 10, C: 0}, "1/50")


def test_scores_blob_round_trips_and_every_proof_verifies() -> None:
    doc = _doc()

    again = RoundRewardsDoc.from_bytes(doc.to_bytes())

    assert again == doc and again.total == 100
    assert [e.participant for e in doc.entries] == [A, B, C]
    assert json.loads(doc.to_bytes())["participants"][1]["score"] == "1/3"
    for account, proof in proofs(doc).items():
        entry = doc.entry(account)
        assert entry is not None and verify(proof, doc.root, entry.leaf)


def test_a_scores_blob_whose_root_or_leaf_was_changed_is_refused() -> None:
    data = _doc().to_json()
    doubled = json.loads(json.dumps(data))
    doubled["participants"][1]["amount"] = "20"
    doubled["total"] = "110"
    rerooted = {**data, "root": "0x" + "33" * 32}

    with pytest.raises(BlobFormatError, match="is not the reward leaf"):
        RoundRewardsDoc.from_bytes(encode_json_doc(doubled))
    with pytest.raises(BlobFormatError, match="is not the root of its leaves"):
        RoundRewardsDoc.from_bytes(encode_json_doc(rerooted))


def test_a_scores_blob_paying_over_its_budget_is_refused() -> None:
    over = build_rewards_doc(RoundId(4), "samples", {}, 100, None, {A: 1, B: 1}, {A: 100, B: 100})

    with pytest.raises(BlobFormatError, match="over the budget 100"):
        RoundRewardsDoc.from_bytes(over.to_bytes())

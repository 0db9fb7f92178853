"""A round's rewards computed from the real devnet and IPFS node: the scores blob of a finalised round."""

from __future__ import annotations

import io
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedchain.codec.canonical import sha256_digest
from fedchain.codec.merkle import verify
from fedchain.errors import IntegrityError
from fedchain.fl.contribution import allocate
from fedchain.protocol.rewards import compute_round_rewards
from fedchain.protocol.task import RewardsConfig
from fedchain.types import RoundId
from tests.protocol.harness import Fed, TaskFiles, make_fed

pytestmark = pytest.mark.devnet


def validation_npz(files: TaskFiles) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=files.dataset.x_test, y=files.dataset.y_test)
    return buf.getvalue()


def rewarded_fed(env: Any, store: Any, files: TaskFiles, work: Path, rule: str, **params: Any) -> Fed:
    data = validation_npz(files)
    cid = store.put(data)
    config = RewardsConfig(rule, params, sha256_digest(data) if rule != "samples" else None,
                           cid if rule != "samples" else None, 1000)
    return make_fed(env, store, replace(files, doc=replace(files.doc, rewards=config)), work)


def test_samples_rewards_pay_in_proportion_to_the_samples(chain_env, ipfs_store, task_files, tmp_path) -> None:
    fed = rewarded_fed(chain_env, ipfs_store, task_files, tmp_path, "samples")
    rid = fed.run_round().round_id

    doc = compute_round_rewards(fed.reader, fed.store, RoundId(rid), 1000)

    samples = {c.participant: c.num_samples for c in fed.reader.commitments(RoundId(rid))}
    assert {e.participant: e.score for e in doc.entries} == {a: Fraction(n) for a, n in samples.items()}
    assert {e.participant: e.amount for e in doc.entries} == allocate(samples, 1000)
    assert doc.total == 1000 and doc.round_id == rid
    for entry in doc.entries:
        assert verify(doc.proof(entry.participant), doc.root, entry.leaf)


def test_loo_rewards_are_recomputed_bit_for_bit(chain_env, ipfs_store, task_files, tmp_path) -> None:
    fed = rewarded_fed(chain_env, ipfs_store, task_files, tmp_path, "loo")
    rid = RoundId(fed.run_round().round_id)

    first = compute_round_rewards(fed.reader, fed.store, rid, 999)
    again = compute_round_rewards(fed.reader, fed.store, rid, 999)

    assert first.to_bytes() == again.to_bytes()
    assert first.rule == "loo" and len(first.entries) == 3 and first.total in (0, 999)


def test_a_validation_set_that_is_not_the_tasks_is_refused(chain_env, ipfs_store, task_files, tmp_path) -> None:
    data = validation_npz(task_files)
    config = RewardsConfig("loo", {}, sha256_digest(data + b"x"), ipfs_store.put(data), 10)
    fed = make_fed(chain_env, ipfs_store, replace(task_files, doc=replace(task_files.doc, rewards=config)), tmp_path)
    rid = RoundId(fed.run_round().round_id)

    with pytest.raises(IntegrityError, match="does not match the digest the task records"):
        compute_round_rewards(fed.reader, fed.store, rid, 10)

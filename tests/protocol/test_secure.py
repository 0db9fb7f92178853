"""The binding of secure aggregation to rounds: task configuration, members, records and the aggregate."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from fedchain.codec.canonical import sha256_digest
from fedchain.errors import ConfigError
from fedchain.fl.records import RobustConfig, StrategyConfig
from fedchain.ports import (
    ParticipantAdmitted,
    ParticipantRegistered,
    ParticipantRemoved,
    RoundOpened,
    RoundRecord,
    RoundStatus,
)
from fedchain.protocol.blobs import GlobalModel
from fedchain.protocol.secure import (
    RoundRecords,
    SecAggConfig,
    check_record,
    check_secagg_task,
    quantise_delta,
    round_context,
    round_members,
    secure_aggregate,
)
from fedchain.secagg.inprocess import run_round
from fedchain.secagg.keys import long_term_private_key, public_key_of
from fedchain.secagg.messages import Advertisement, MaskedInput
from fedchain.types import ZERO_DIGEST, Address, Cid, Digest, RoundId

CONTRACT = Address("0x" + "ab" * 20)


def _record(round_id: int = 1, base: bytes = b"\x11" * 32) -> RoundRecord:
    return RoundRecord(RoundId(round_id), RoundStatus.OPEN, Digest(base), Cid("b"), 0, 1, 0, 0, 1, 0, ZERO_DIGEST,
                       None, ZERO_DIGEST, ZERO_DIGEST, ZERO_DIGEST, None, None, 5, None, secure=True)


def _addr(i: int) -> Address:
    return Address("0x" + f"{i:040x}")


def _events(keys: dict[int, bytes], removed: tuple[int, ...] = (), late: tuple[int, ...] = ()) -> list[Any]:
    out: list[Any] = []
    for n, (i, key) in enumerate(sorted(keys.items())):
        out.append(ParticipantRegistered(_addr(i), f"org{i}", "x", key, 10, 1, "0x", 2 * n))
        out.append(ParticipantAdmitted(_addr(i), _addr(99), 10, 1 if i not in late else 9, "0x", 2 * n + 1))
    for i in removed:
        out.append(ParticipantRemoved(_addr(i), _addr(99), "gone", 2, "0x", 0))
    out.append(RoundOpened(RoundId(1), _addr(98), ZERO_DIGEST, Cid("b"), 0, 1, 1, 0, 5, "0x", 0))
    return out


def _key(i: int) -> bytes:
    return long_term_private_key(bytes([i]) * 32)


def test_members_are_the_active_participants_at_the_open_with_valid_keys() -> None:
    keys = {i: public_key_of(_key(i)) for i in (1, 2, 3, 4, 5)}
    keys[6] = b"\x02" + bytes(32)  # not an X25519 key: left out
    members = round_members(_events(keys, removed=(2,), late=(5,)), _record())
    assert [m.address for m in members] == [_addr(1), _addr(3), _addr(4)]
    assert [m.index for m in members] == [1, 2, 3]


def test_config_round_trips_and_refuses_what_secure_aggregation_cannot_run() -> None:
    cfg = SecAggConfig(clip=2.0, max_summands=64, degree=4)
    assert SecAggConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="clip"):
        SecAggConfig(clip=0.0)
    with pytest.raises(ConfigError, match="even"):
        SecAggConfig(clip=1.0, degree=3)
    with pytest.raises(ConfigError, match="unknown"):
        SecAggConfig.from_json({"clip": 1.0, "t": 3})
    ok = StrategyConfig("fedavg", {"uniform_weights": 1})
    check_secagg_task(ok, cfg, reveal_duration=0, max_commit_duration=600, privacy_mechanism=None, min_updates=2)
    robust = dataclasses.replace(ok, robust=(RobustConfig("multi_krum", {"f": 1}),))
    with pytest.raises(ConfigError, match="robust rule"):
        check_secagg_task(robust, cfg, reveal_duration=0, max_commit_duration=600, privacy_mechanism=None, min_updates=2)
    with pytest.raises(ConfigError, match="uniform_weights"):
        check_secagg_task(StrategyConfig("fedavg"), cfg, reveal_duration=0, max_commit_duration=600,
                          privacy_mechanism=None, min_updates=2)
    with pytest.raises(ConfigError, match="scaffold"):
        check_secagg_task(StrategyConfig("scaffold", {"uniform_weights": 1}), cfg, reveal_duration=0,
                          max_commit_duration=600, privacy_mechanism=None, min_updates=2)
    with pytest.raises(ConfigError, match="commit-reveal"):
        check_secagg_task(ok, cfg, reveal_duration=30, max_commit_duration=600, privacy_mechanism=None, min_updates=2)
    with pytest.raises(ConfigError, match="DP-SGD"):
        check_secagg_task(ok, cfg, reveal_duration=0, max_commit_duration=600, privacy_mechanism="dpsgd", min_updates=2)


def _round(n: int, drop: tuple[int, ...] = ()) -> tuple[Any, ...]:
    base = GlobalModel(RoundId(0), ZERO_DIGEST, {"a": np.zeros((2, 3), np.float32), "b": np.ones(4, np.float32)}, {}, 0)
    members_keys = {i: public_key_of(_key(i)) for i in range(1, n + 1)}
    members = round_members(_events(members_keys), _record())
    cfg = SecAggConfig(clip=1.0, max_summands=64)
    ctx = round_context(31337, CONTRACT, _record(), members, cfg, 10)
    rng = np.random.default_rng(7)
    deltas = {i: {"a": rng.normal(0, 0.1, (2, 3)), "b": rng.normal(0, 0.1, 4)} for i in range(1, n + 1)}
    updates = {i: quantise_delta(deltas[i], cfg) for i in deltas}
    run = run_round(ctx, {i: _key(i) for i in deltas}, updates, drop_after_advertising=drop)
    return base, cfg, ctx, deltas, run, []


def test_the_aggregate_is_the_base_plus_the_mean_of_the_survivors_deltas() -> None:
    base, cfg, ctx, deltas, run, _ = _round(5, drop=(2,))
    records = RoundRecords(run.advertisements, run.masked_inputs, run.unmasking,
                           tuple(m.sender for m in run.masked_inputs), ())
    out = secure_aggregate(StrategyConfig("fedavg", {"uniform_weights": 1}), cfg, base, RoundId(1), ZERO_DIGEST, ctx,
                           records, [], 2)
    assert out.failure is None and out.aggregate.model is not None
    survivors = [1, 3, 4, 5]
    assert [ctx.member(i).address for i in survivors] == list(out.aggregate.included)
    want_b = 1.0 + np.mean([deltas[i]["b"] for i in survivors], axis=0)
    got = out.aggregate.model.weights
    assert np.max(np.abs(got["b"] - want_b)) <= cfg.quantiser().mean_error_bound() + 1e-6
    assert out.aggregate.model_digest == sha256_digest(out.aggregate.model_blob or b"")
    again = secure_aggregate(StrategyConfig("fedavg", {"uniform_weights": 1}), cfg, base, RoundId(1), ZERO_DIGEST, ctx,
                             records, [], 2)
    assert again.aggregate.model_digest == out.aggregate.model_digest  # deterministic: the auditor's replay


def test_a_committer_without_a_masked_input_closes_the_round() -> None:
    base, cfg, ctx, _, run, _ = _round(4)
    records = RoundRecords(run.advertisements, run.masked_inputs[1:], run.unmasking,
                           tuple(m.sender for m in run.masked_inputs), ())
    out = secure_aggregate(StrategyConfig("fedavg", {"uniform_weights": 1}), cfg, base, RoundId(1), ZERO_DIGEST, ctx,
                           records, [], 2)
    assert out.aggregate.model is None and out.failure is not None and "no usable masked input" in out.failure


def test_a_record_is_used_only_from_its_poster_with_its_digest() -> None:
    _, _, ctx, _, run, _ = _round(3)
    ad = run.advertisements[0]
    blob = ad.to_bytes()
    poster = ctx.member(ad.sender).address
    assert check_record(blob, sha256_digest(blob), Advertisement, ctx, poster, "advertisement") == ad
    other = ctx.member(2).address
    assert "not the poster" in check_record(blob, sha256_digest(blob), Advertisement, ctx, other, "advertisement").reason  # type: ignore[union-attr]
    assert "digest" in check_record(blob, Digest(b"\x00" * 32), Advertisement, ctx, poster, "advertisement").reason  # type: ignore[union-attr]
    assert "not a MaskedInput" in check_record(blob, sha256_digest(blob), MaskedInput, ctx, poster, "masked input").reason  # type: ignore[union-attr]
    assert "not available" in check_record(None, sha256_digest(blob), Advertisement, ctx, poster, "advertisement").reason  # type: ignore[union-attr]
    assert "malformed" in check_record(b"junk", sha256_digest(b"junk"), Advertisement, ctx, poster, "advertisement").reason  # type: ignore[union-attr]


def test_a_secure_task_refuses_a_rewards_rule() -> None:
    from fedchain.protocol.task import RewardsConfig, TaskDocument
    from fedchain.sim.config import ExperimentConfig, build_task, load_task_dataset

    cfg = ExperimentConfig(secagg=SecAggConfig(clip=5.0))
    doc = build_task(cfg, load_task_dataset(cfg))
    assert doc.secagg is not None and doc.strategy.params["uniform_weights"] == 1 and doc.strategy.robust == ()
    assert TaskDocument.from_bytes(doc.to_bytes()) == doc
    with pytest.raises(ConfigError, match="rewards"):
        dataclasses.replace(doc, rewards=RewardsConfig("samples"))

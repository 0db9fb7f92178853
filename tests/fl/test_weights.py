"""Trustworthy weights: a capped share per participant, unweighted Multi-Krum survivors, and a
default task in which neither a lie about the sample count nor an absurd update takes the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.engine.loop import Collected, OpenedRound, run_rounds
from fedchain.engine.memory import InMemoryTransport, MemoryParticipant
from fedchain.engine.reports import RunReport
from fedchain.errors import AggregationError, ConfigError
from fedchain.fl import robust
from fedchain.fl import strategies as S
from fedchain.fl.aggregate import Contribution, cap_weight_shares, weighted_mean
from fedchain.fl.attacks import AttackSpec
from fedchain.fl.client import configure_torch
from fedchain.fl.records import ClientUpdate, RobustConfig, StrategyConfig
from fedchain.sim import memory as sim_memory
from fedchain.sim.config import (
    DEFAULT_MAX_UPDATE_NORM,
    DEFAULT_MAX_WEIGHT_SHARE,
    ExperimentConfig,
    build_task,
    load_task_dataset,
    partition_clients,
)
from fedchain.types import Address, Digest, RoundId

BASE = Digest(b"\x33" * 32)
ROUND = RoundId(4)
GLOBAL = {"w": np.array([0.0, 0.0], np.float32)}


def addr(i: int) -> Address:
    return Address(f"0x{i:040x}")


def contrib(i: int, weight: float, value: float = 0.0) -> Contribution:
    return Contribution(addr(i), weight, {"w": np.array([value, -value], np.float32)})


def shares(contributions: list[Contribution], cap: float) -> dict[Address, float]:
    capped, _ = cap_weight_shares(contributions, cap)
    return {c.participant: c.weight for c in capped}


# --- the cap --------------------------------------------------------------------------------------


def test_no_cap_leaves_the_weights_as_they_are() -> None:
    cs = [contrib(2, 30.0), contrib(1, 10.0)]
    capped, held_down = cap_weight_shares(cs, 1.0)
    assert [(c.participant, c.weight) for c in capped] == [(addr(1), 10.0), (addr(2), 30.0)]
    assert held_down == 0


def test_a_liar_gets_the_cap_and_the_others_share_the_rest_by_weight() -> None:
    cs = [contrib(1, 100.0), contrib(2, 200.0), contrib(3, 100.0), contrib(4, 1e12)]
    capped, held_down = cap_weight_shares(cs, 0.4)
    got = {c.participant: c.weight for c in capped}
    rest = 1 - Fraction(0.4)
    assert got[addr(4)] == 0.4 and held_down == 1
    assert got[addr(2)] == float(rest / 2) and got[addr(1)] == got[addr(3)] == float(rest / 4)


def test_capping_one_can_push_the_next_over_the_cap() -> None:
    # 50/30/15/5 at 0.3: 0.5 is capped; 30/50 of the remaining 0.7 is 0.42: capped too; 15/20 of
    # the remaining 0.4 is (just over, in binary) 0.3: capped; the last gets what is left
    got = shares([contrib(1, 50.0), contrib(2, 30.0), contrib(3, 15.0), contrib(4, 5.0)], 0.3)
    assert got[addr(1)] == got[addr(2)] == got[addr(3)] == 0.3
    assert got[addr(4)] == float(1 - 3 * Fraction(0.3))


def test_a_cap_nobody_can_meet_alone_means_equal_shares() -> None:
    got = shares([contrib(1, 1.0), contrib(2, 5.0), contrib(3, 1e9)], 0.3)
    assert got == {addr(1): 1 / 3, addr(2): 1 / 3, addr(3): 1 / 3}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.integers(1, 10**12), st.floats(1e-3, 1e15)), min_size=1, max_size=12),
    st.floats(0.01, 1.0, exclude_min=False),
    st.randoms(use_true_random=False),
)
def test_capped_shares_are_a_fair_redistribution(weights: list[float], cap: float, rnd) -> None:  # type: ignore[no-untyped-def]
    cs = [contrib(i + 1, float(w)) for i, w in enumerate(weights)]
    shuffled = list(cs)
    rnd.shuffle(shuffled)
    a, _ = cap_weight_shares(cs, cap)
    b, _ = cap_weight_shares(shuffled, cap)
    assert [(c.participant, c.weight) for c in a] == [(c.participant, c.weight) for c in b]  # order independent
    if cap >= 1.0:
        return
    exact = [Fraction(c.weight) for c in a]
    n = len(cs)
    assert abs(sum(exact) - 1) <= Fraction(n, 2**52)
    if Fraction(cap) * n <= 1:  # exactly: 0.2 as a double is a little more than 1/5
        assert len(set(exact)) == 1
        return
    assert max(exact) <= Fraction(cap)  # rounding the cap's own value gives it back exactly
    raw = {c.participant: Fraction(float(c.weight)) for c in cs}
    for x in a:
        for y in a:
            if raw[x.participant] <= raw[y.participant]:
                assert x.weight <= y.weight  # more weight never means a smaller share
    free = [c for c in a if c.weight < cap]
    for x in free:  # below the cap, shares stay in proportion to the weights
        for y in free:
            ratio = Fraction(x.weight) / Fraction(y.weight)
            assert abs(ratio / (raw[x.participant] / raw[y.participant]) - 1) < Fraction(1, 2**48)


@pytest.mark.parametrize("cap", [0.0, -0.5, 1.5, float("nan")])
def test_a_cap_outside_0_1_is_refused(cap: float) -> None:
    with pytest.raises(AggregationError, match="max_weight_share"):
        cap_weight_shares([contrib(1, 1.0)], cap)
    with pytest.raises(ConfigError, match="max_weight_share"):
        S.strategy_from_config(StrategyConfig("fedavg", {"max_weight_share": cap}))


def upd(i: int, value: float, n: int) -> ClientUpdate:
    return ClientUpdate(addr(i), ROUND, n, {"w": np.array([value, -value], np.float32)}, BASE)


def run(strategy: S._Strategy, updates: list[ClientUpdate]):  # type: ignore[no-untyped-def]
    return strategy.aggregate_round(GLOBAL, updates, {}, round_id=ROUND, base_model_digest=BASE)


def test_fedavg_with_a_cap_bounds_what_a_claimed_sample_count_buys() -> None:
    honest = [upd(i, 1.0, 100) for i in range(1, 4)]
    liar = upd(9, -10.0, 10**12)

    uncapped = run(S.FedAvg(), honest + [liar])
    capped = run(S.FedAvg(max_weight_share=0.25), honest + [liar])

    assert uncapped.weights["w"][0] == pytest.approx(-10.0)
    assert capped.weights["w"][0] == pytest.approx(0.75 * 1.0 + 0.25 * -10.0)
    assert capped.metrics["num_weight_capped"] == 1 and "num_weight_capped" not in uncapped.metrics


def test_the_cap_is_a_strategy_parameter_in_the_digest() -> None:
    capped = S.FedAvg(max_weight_share=0.3)
    assert capped.digest() != S.FedAvg().digest()
    assert S.strategy_from_config(capped.config()) == capped
    assert S.strategy_from_config(StrategyConfig("fedavg", {"max_weight_share": 1})).max_weight_share == 1.0


# --- Multi-Krum -----------------------------------------------------------------------------------


def test_multi_krum_survivors_are_averaged_unweighted_by_default() -> None:
    ups = [upd(1, 1.0, 1), upd(2, 1.1, 1), upd(3, 3.0, 10**9), upd(4, 1.2, 1), upd(5, 90.0, 1)]

    plain = run(S.FedAvg(robust=(robust.MultiKrum(f=1),)), ups)
    weighted = run(S.FedAvg(robust=(robust.MultiKrum(f=1, weighted=True),)), ups)

    assert addr(5) not in plain.included and addr(3) in plain.included
    np.testing.assert_allclose(plain.weights["w"][0], (1.0 + 1.1 + 3.0 + 1.2) / 4, rtol=1e-6)
    np.testing.assert_allclose(weighted.weights["w"][0], 3.0, rtol=1e-6)


def test_multi_krum_weighting_is_a_rule_parameter() -> None:
    rule = robust.MultiKrum(f=1, weighted=True)
    assert rule.config() == RobustConfig("multi_krum", {"f": 1, "m": None, "weighted": True})
    assert robust.rule_from_config(rule.config()) == rule
    assert robust.rule_from_config(RobustConfig("multi_krum", {"f": 1})) == robust.MultiKrum(f=1, weighted=False)
    with pytest.raises(ConfigError, match="weighted"):
        robust.MultiKrum(f=1, weighted=2)  # type: ignore[arg-type]
    outcome = robust.MultiKrum(f=0).screen([contrib(1, 7.0), contrib(2, 9.0), contrib(3, 11.0)])
    assert [c.weight for c in outcome.kept] == [1.0, 1.0, 1.0]
    assert weighted_mean(list(outcome.kept))["w"].tobytes() == weighted_mean(
        [contrib(1, 1.0), contrib(2, 1.0), contrib(3, 1.0)])["w"].tobytes()


# --- the default task, in memory ------------------------------------------------------------------


class Tampering(InMemoryTransport):
    """Trains every participant honestly, then lets ``tamper`` rewrite one participant's update
    (the blob and its commitment would agree: the in-memory transport has no chain)."""

    def __init__(self, doc, participants, victim: Address, tamper: Callable[[ClientUpdate], ClientUpdate]) -> None:  # type: ignore[no-untyped-def]
        super().__init__(doc, participants)
        self.victim, self.tamper = victim, tamper

    def collect(self, opened: OpenedRound, timeout_s: float | None = None) -> Collected:
        got = super().collect(opened, timeout_s)
        updates = tuple(self.tamper(u) if u.participant == self.victim else u for u in got.updates)
        return Collected(updates, got.rejections, got.commit_count, got.sat_out)


def run_tampered(cfg: ExperimentConfig, tamper: Callable[[ClientUpdate], ClientUpdate],
                 attack: AttackSpec | None = None) -> tuple[RunReport, Address]:
    configure_torch()
    ds = load_task_dataset(cfg)
    doc = build_task(cfg, ds)
    parts = partition_clients(cfg, ds)
    people = [MemoryParticipant(sim_memory.participant_address(i, cfg.seed), p.x, p.y, attack if i == 0 else None)
              for i, p in enumerate(parts)]
    transport = Tampering(doc, people, people[0].address, tamper)
    return run_rounds(transport, cfg.rounds, evaluate=sim_memory.test_set_evaluator(doc, ds)), people[0].address


def claims_a_trillion(update: ClientUpdate) -> ClientUpdate:
    return replace(update, num_samples=10**12)


def all_1e30(update: ClientUpdate) -> ClientUpdate:
    return replace(update, tensors={k: np.full(v.shape, 1e30, np.float32) for k, v in update.tensors.items()})


def test_a_participant_claiming_a_trillion_samples_does_not_take_the_default_task_over() -> None:
    cfg = ExperimentConfig(dataset="breast_cancer", clients=4, rounds=3)
    honest, _ = run_tampered(cfg, lambda u: u)
    default, liar = run_tampered(cfg, claims_a_trillion, AttackSpec("sign_flip"))
    uncapped, _ = run_tampered(replace(cfg, max_weight_share=1.0), claims_a_trillion, AttackSpec("sign_flip"))

    assert honest.rounds[-1].accuracy is not None and honest.rounds[-1].accuracy > 0.9
    assert uncapped.rounds[-1].accuracy is not None and uncapped.rounds[-1].accuracy < 0.2  # the lie works uncapped
    assert default.rounds[-1].accuracy is not None and default.rounds[-1].accuracy > honest.rounds[-1].accuracy - 0.05
    assert all(liar in r.included and r.metrics["num_weight_capped"] == 1 for r in default.rounds)


def test_an_update_of_1e30s_is_rejected_by_the_default_task_and_only_there() -> None:
    cfg = ExperimentConfig(dataset="breast_cancer", clients=4, rounds=2)
    default, culprit = run_tampered(cfg, all_1e30)
    unbounded, _ = run_tampered(replace(cfg, robust=()), all_1e30)

    for r in default.rounds:
        assert culprit not in r.included and len(r.included) == 3
        (rejection,) = r.rejected
        assert rejection.participant == culprit and rejection.rule == "norm_clip"
        assert f"exceeds {DEFAULT_MAX_UPDATE_NORM:.6g}" in rejection.reason
    assert default.rounds[-1].accuracy is not None and default.rounds[-1].accuracy > 0.9
    assert culprit in unbounded.rounds[0].included
    assert not unbounded.rounds[-1].accuracy or unbounded.rounds[-1].accuracy < 0.9


def test_the_default_task_records_its_bounds() -> None:
    cfg = ExperimentConfig(dataset="breast_cancer")
    strategy = build_task(cfg, load_task_dataset(cfg)).strategy_config()
    assert strategy.params["max_weight_share"] == DEFAULT_MAX_WEIGHT_SHARE
    assert strategy.robust == (RobustConfig("norm_clip", {"max_norm": DEFAULT_MAX_UPDATE_NORM, "reject": True}),)

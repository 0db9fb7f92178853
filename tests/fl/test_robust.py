"""Robust rules: they ignore f outliers, and say whom they rejected and why."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import ConfigError
from fedchain.fl import robust
from fedchain.fl.aggregate import Contribution, weighted_mean
from fedchain.fl.records import RobustConfig
from fedchain.types import Address


def addr(i: int) -> Address:
    return Address(f"0x{i:040x}")


@st.composite
def honest_and_outliers(draw: st.DrawFn) -> tuple[list[Contribution], list[Contribution]]:
    """n - f honest updates in [-1, 1]^d and f outliers far away (|x| >= 100)."""
    f = draw(st.integers(1, 3))
    n = draw(st.integers(2 * f + 3, 2 * f + 6))
    d = draw(st.integers(1, 4))
    ids = draw(st.lists(st.integers(0, 999), min_size=n, max_size=n, unique=True))
    unit = st.floats(-1.0, 1.0, allow_nan=False, width=32)
    far = st.floats(100.0, 1e6, allow_nan=False, width=32)
    honest, outliers = [], []
    for k, i in enumerate(ids):
        if k < n - f:
            vec = draw(st.lists(unit, min_size=d, max_size=d))
            honest.append(Contribution(addr(i), float(draw(st.integers(1, 100))), {"w": np.array(vec, np.float32)}))
        else:
            sign = draw(st.sampled_from([-1.0, 1.0]))
            vec = [sign * v for v in draw(st.lists(far, min_size=d, max_size=d))]
            outliers.append(Contribution(addr(i), float(draw(st.integers(1, 100))), {"w": np.array(vec, np.float32)}))
    return honest, outliers


def within_honest_range(out: np.ndarray, honest: list[Contribution]) -> bool:
    stacked = np.stack([c.tensors["w"] for c in honest])
    return bool((out >= stacked.min(axis=0)).all() and (out <= stacked.max(axis=0)).all())


@settings(max_examples=50, deadline=None)
@given(honest_and_outliers())
def test_median_ignores_f_outliers(case: tuple[list[Contribution], list[Contribution]]) -> None:
    honest, outliers = case
    rules = [robust.CoordinateMedian()]
    out = robust.combine(rules, honest + outliers)
    assert within_honest_range(out["w"], honest)


@settings(max_examples=50, deadline=None)
@given(honest_and_outliers())
def test_trimmed_mean_ignores_f_outliers(case: tuple[list[Contribution], list[Contribution]]) -> None:
    honest, outliers = case
    n, f = len(honest) + len(outliers), len(outliers)
    beta = (f + 0.5) / n  # trims at least f from each end
    out = robust.combine([robust.TrimmedMean(beta)], honest + outliers)
    assert within_honest_range(out["w"], honest)


@settings(max_examples=50, deadline=None)
@given(honest_and_outliers())
def test_multi_krum_rejects_exactly_the_outliers(case: tuple[list[Contribution], list[Contribution]]) -> None:
    honest, outliers = case
    f = len(outliers)
    outcome = robust.MultiKrum(f=f).screen(honest + outliers)
    assert {r.participant for r in outcome.rejected} == {c.participant for c in outliers}
    assert {c.participant for c in outcome.kept} == {c.participant for c in honest}
    assert all(r.rule == "multi_krum" and "krum score" in r.reason for r in outcome.rejected)
    assert within_honest_range(robust.combine([robust.MultiKrum(f=f)], list(outcome.kept))["w"], honest)


def test_krum_keeps_one() -> None:
    cs = [Contribution(addr(i), 1.0, {"w": np.array([v], np.float32)}) for i, v in enumerate([0.0, 0.1, 0.2, 5.0, 9.0])]
    outcome = robust.Krum(1).screen(cs)
    assert [c.participant for c in outcome.kept] == [addr(1)]
    assert len(outcome.rejected) == 4


def test_norm_clip_scales_down_large_updates() -> None:
    cs = [
        Contribution(addr(1), 1.0, {"w": np.array([3.0, 4.0], np.float32)}),
        Contribution(addr(2), 1.0, {"w": np.array([0.3, 0.4], np.float32)}),
    ]
    outcome = robust.NormClip(1.0).screen(cs)
    assert outcome.rejected == () and outcome.metrics["clipped"] == 1
    np.testing.assert_allclose(outcome.kept[0].tensors["w"], [0.6, 0.8], rtol=1e-6)


def test_norm_clip_can_reject_instead() -> None:
    cs = [
        Contribution(addr(1), 1.0, {"w": np.array([3.0, 4.0], np.float32)}),
        Contribution(addr(2), 1.0, {"w": np.array([0.3, 0.4], np.float32)}),
    ]
    outcome = robust.NormClip(1.0, reject=True).screen(cs)
    assert [c.participant for c in outcome.kept] == [addr(2)]
    (rej,) = outcome.rejected
    assert rej.participant == addr(1) and rej.rule == "norm_clip" and "norm 5 exceeds 1" in rej.reason


def test_rules_compose_in_order() -> None:
    values = [0.0, 0.1, 0.2, 0.3, 0.4, 50.0]
    cs = [Contribution(addr(i), 1.0, {"w": np.array([v, v], np.float32)}) for i, v in enumerate(values)]
    rules = [robust.NormClip(1.0), robust.MultiKrum(f=1)]
    outcome = robust.apply_rules(rules, cs)
    assert outcome.metrics["norm_clip/clipped"] == 1
    assert [r.participant for r in outcome.rejected] == [addr(5)]  # clipped to norm 1, still the outlier
    np.testing.assert_allclose(robust.combine(rules, list(outcome.kept))["w"], [0.2, 0.2], rtol=1e-6)


def test_without_a_combiner_the_weighted_mean_is_used() -> None:
    cs = [Contribution(addr(i), float(i + 1), {"w": np.array([float(i)], np.float32)}) for i in range(3)]
    assert robust.combine([robust.NormClip(10.0)], cs)["w"].tobytes() == weighted_mean(cs)["w"].tobytes()
    assert robust.combine([], cs)["w"].tobytes() == weighted_mean(cs)["w"].tobytes()


def test_trimmed_mean_reports_trimmed_fractions() -> None:
    cs = [Contribution(addr(i), 1.0, {"w": np.array([v], np.float32)}) for i, v in enumerate([1.0, 2.0, 3.0, 4.0, 99.0])]
    outcome = robust.TrimmedMean(0.2).screen(cs)
    assert outcome.rejected == ()
    assert outcome.metrics[f"trimmed_fraction/{addr(4)}"] == 1.0
    assert outcome.metrics[f"trimmed_fraction/{addr(2)}"] == 0.0


@pytest.mark.parametrize(
    "rule",
    [robust.CoordinateMedian(), robust.TrimmedMean(0.2), robust.MultiKrum(f=2, m=3), robust.Krum(1),
     robust.NormClip(2.5, reject=True)],
)
def test_rule_config_round_trip(rule: robust.RobustRule) -> None:
    assert robust.rule_from_config(rule.config()) == rule


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (RobustConfig("bulyan", {}), "unknown robust rule 'bulyan'"),
        (RobustConfig("trimmed_mean", {"beta": 0.7}), "beta must be in"),
        (RobustConfig("multi_krum", {"f": 1, "q": 2}), "bad parameters"),
        (RobustConfig("norm_clip", {"max_norm": -1.0}), "max_norm must be positive"),
    ],
)
def test_bad_rule_configs_are_config_errors(config: RobustConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        robust.rule_from_config(config)

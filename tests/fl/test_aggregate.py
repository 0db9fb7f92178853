"""Aggregation math: exact values, determinism properties, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import AggregationError, TooFewUpdatesError, UpdateRejectedError
from fedchain.fl import aggregate as agg
from fedchain.fl.aggregate import Contribution
from fedchain.fl.records import ClientUpdate, UpdateKind
from fedchain.types import Address, Digest, RoundId

BASE = Digest(b"\x11" * 32)
OTHER = Digest(b"\x22" * 32)


def addr(i: int) -> Address:
    return Address(f"0x{i:040x}")


def contrib(i: int, weight: float, **tensors: np.ndarray) -> Contribution:
    return Contribution(addr(i), weight, {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()})


finite32 = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=32)


@st.composite
def contribution_sets(draw: st.DrawFn, min_size: int = 1, max_size: int = 7) -> list[Contribution]:
    n = draw(st.integers(min_size, max_size))
    shape = draw(st.sampled_from([(3,), (2, 2), (1,)]))
    size = int(np.prod(shape))
    out = []
    for i in draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True)):
        a = np.array(draw(st.lists(finite32, min_size=size, max_size=size)), dtype=np.float32).reshape(shape)
        b = np.array(draw(st.lists(finite32, min_size=2, max_size=2)), dtype=np.float32)
        out.append(Contribution(addr(i), float(draw(st.integers(1, 5000))), {"w": a, "b": b}))
    return out


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return sorted(a) == sorted(b) and all(a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes() for k in a)


def test_weighted_mean_weights_by_sample_count() -> None:
    out = agg.weighted_mean([contrib(1, 1.0, w=[0.0, 4.0]), contrib(2, 3.0, w=[4.0, 0.0])])
    assert out["w"].dtype == np.float32
    np.testing.assert_array_equal(out["w"], np.array([3.0, 1.0], dtype=np.float32))


def test_weighted_mean_accumulates_in_float64() -> None:
    # In float32, 1e8 + 1 - 1e8 is 0; the float64 accumulator keeps the 1.
    big, one = np.float32(1e8), np.float32(1.0)
    out = agg.weighted_mean([contrib(1, 1.0, w=[big]), contrib(2, 1.0, w=[one]), contrib(3, 1.0, w=[-big])])
    assert out["w"][0] == np.float32(1.0 / 3.0)


def test_duplicate_participants_are_refused() -> None:
    with pytest.raises(AggregationError, match="more than once"):
        agg.weighted_mean([contrib(1, 1.0, w=[1.0]), contrib(1, 2.0, w=[2.0])])


def test_mismatched_tensor_names_are_refused() -> None:
    with pytest.raises(AggregationError, match="tensor names"):
        agg.weighted_mean([contrib(1, 1.0, w=[1.0]), contrib(2, 1.0, v=[2.0])])


@settings(max_examples=60, deadline=None)
@given(contribution_sets(), st.randoms(use_true_random=False))
def test_combiners_are_order_independent_bit_for_bit(cs: list[Contribution], rnd) -> None:
    shuffled = list(cs)
    rnd.shuffle(shuffled)
    assert same(agg.weighted_mean(cs), agg.weighted_mean(shuffled))
    assert same(agg.coordinate_median(cs), agg.coordinate_median(shuffled))
    assert same(agg.trimmed_mean(cs, 0.2), agg.trimmed_mean(shuffled, 0.2))
    if len(cs) >= 3:
        assert agg.krum_scores(cs, 0) == agg.krum_scores(shuffled, 0)


@settings(max_examples=60, deadline=None)
@given(contribution_sets())
def test_identical_updates_average_to_themselves(cs: list[Contribution]) -> None:
    first = cs[0].tensors
    clones = [Contribution(c.participant, c.weight, first) for c in cs]
    for out in (agg.weighted_mean(clones), agg.coordinate_median(clones), agg.trimmed_mean(clones, 0.3)):
        assert sorted(out) == sorted(first)
        for name in out:  # equal values (the sign of a zero may differ)
            assert out[name].dtype == np.float32
            np.testing.assert_array_equal(out[name], first[name])


@settings(max_examples=60, deadline=None)
@given(contribution_sets())
def test_weighted_mean_stays_within_the_inputs_range(cs: list[Contribution]) -> None:
    out = agg.weighted_mean(cs)
    for name in out:
        stacked = np.stack([c.tensors[name] for c in cs])
        assert (out[name] >= stacked.min(axis=0)).all()
        assert (out[name] <= stacked.max(axis=0)).all()


def test_median_and_trimmed_mean_values() -> None:
    cs = [contrib(i, 1.0, w=[v]) for i, v in enumerate([1.0, 2.0, 3.0, 4.0, 100.0])]
    assert agg.coordinate_median(cs)["w"][0] == 3.0
    assert agg.trimmed_mean(cs, 0.2)["w"][0] == 3.0  # drops 1 and 100
    assert agg.trimmed_mean(cs, 0.0)["w"][0] == np.float32(22.0)


@settings(max_examples=50, deadline=None)
@given(contribution_sets(min_size=1, max_size=8))
def test_coordinate_median_equals_numpys_median_with_zero_unsigned(cs: list[Contribution]) -> None:
    out = agg.coordinate_median(cs)
    for name in ("w", "b"):
        expected = np.median(np.stack([np.asarray(c.tensors[name], np.float64) for c in cs]), axis=0) + 0.0
        assert out[name].tobytes() == expected.astype(np.float32).tobytes()


def test_coordinate_median_of_signed_zeros_is_positive_zero() -> None:
    cs = [contrib(i, 1.0, w=[v, v]) for i, v in enumerate([-0.0, 0.0, -0.0, 1.0, -0.0])]
    assert agg.coordinate_median(cs)["w"].tobytes() == np.zeros(2, np.float32).tobytes()
    even = [contrib(i, 1.0, w=[-0.0]) for i in range(4)]
    assert agg.coordinate_median(even)["w"].tobytes() == np.zeros(1, np.float32).tobytes()


def test_sums_of_squares_are_exactly_rounded() -> None:
    # 1e16 + 1 + 1 + 1 + 1 summed left to right stays 1e16; the exact sum 1e16 + 4 is a float64
    v = np.array([1e8, 1.0, 1.0, 1.0, 1.0], np.float32)
    assert agg.sum_of_squares(v) == 1e16 + 4.0
    _, dist = agg.pairwise_sq_distances([contrib(1, 1.0, w=v), contrib(2, 1.0, w=np.zeros(5))])
    assert dist[0, 1] == dist[1, 0] == 1e16 + 4.0
    assert agg.l2_norm({"a": v[:1], "b": v[1:]}) == np.sqrt(1e16 + 4.0)


def test_trimmed_fraction_names_the_outlier() -> None:
    cs = [contrib(i, 1.0, w=[v, v]) for i, v in enumerate([1.0, 2.0, 3.0, 4.0, 100.0])]
    fractions = agg.trimmed_fraction(cs, 0.2)
    assert fractions[addr(4)] == 1.0 and fractions[addr(0)] == 1.0
    assert fractions[addr(2)] == 0.0


def test_trimmed_mean_rejects_bad_beta() -> None:
    with pytest.raises(AggregationError, match="beta"):
        agg.trimmed_mean([contrib(1, 1.0, w=[1.0])], 0.5)


def test_krum_scores_sum_the_nearest_neighbours() -> None:
    cs = [contrib(i, 1.0, w=[v]) for i, v in enumerate([0.0, 1.0, 2.0, 10.0, 11.0])]
    scores = agg.krum_scores(cs, 1)  # n - f - 2 = 2 neighbours
    assert scores[addr(0)] == 1.0 + 4.0
    assert scores[addr(1)] == 1.0 + 1.0
    assert scores[addr(3)] == 1.0 + 64.0
    assert agg.multi_krum_select(cs, 1, 2) == (addr(0), addr(1))


def test_krum_needs_2f_plus_3_updates() -> None:
    cs = [contrib(i, 1.0, w=[float(i)]) for i in range(4)]
    with pytest.raises(TooFewUpdatesError) as err:
        agg.krum_scores(cs, 1)
    assert (err.value.valid, err.value.minimum) == (4, 5)


def test_clip_by_norm() -> None:
    out, norm, clipped = agg.clip_by_norm({"a": np.array([3.0, 4.0], np.float32)}, 1.0)
    assert clipped and norm == 5.0
    np.testing.assert_allclose(out["a"], [0.6, 0.8], rtol=1e-6)
    same_out, _, clipped = agg.clip_by_norm({"a": np.array([0.3, 0.4], np.float32)}, 1.0)
    assert not clipped and same_out["a"].tobytes() == np.array([0.3, 0.4], np.float32).tobytes()


def test_fednova_and_qfedavg_combinations() -> None:
    g = {"w": np.array([1.0], np.float32)}
    cs = [contrib(1, 1.0, w=[0.5]), contrib(2, 3.0, w=[1.0])]
    tau = agg.fednova_tau_eff(cs, {addr(1): 2.0, addr(2): 6.0})
    assert tau == 0.25 * 2.0 + 0.75 * 6.0
    assert agg.fednova_combine(g, {"w": np.array([0.5], np.float32)}, tau)["w"][0] == np.float32(1.0 + 5.0 * 0.5)
    assert agg.qfedavg_combine(g, {"w": np.array([2.0], np.float32)}, 4.0)["w"][0] == 1.5
    with pytest.raises(AggregationError, match="h must be positive"):
        agg.qfedavg_combine(g, g, 0.0)


def test_fedadam_first_step() -> None:
    g = {"w": np.array([0.0, 1.0], np.float32)}
    d = {"w": np.array([2.0, -1.0], np.float32)}
    zero = {"w": np.zeros(2, np.float32)}
    new, m, v = agg.fedadam_step(g, d, zero, zero, lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    np.testing.assert_allclose(m["w"], [0.2, -0.1], rtol=1e-6)
    np.testing.assert_allclose(v["w"], [0.04, 0.01], rtol=1e-6)
    expected = np.array([0.1 * 0.2 / (0.2 + 1e-3), 1.0 - 0.1 * 0.1 / (0.1 + 1e-3)])
    np.testing.assert_allclose(new["w"], expected, rtol=1e-6)


# --- validation ---------------------------------------------------------------

REF = {"b": np.zeros(2, np.float32), "w": np.zeros((2, 2), np.float32)}


def update(i: int = 1, **over: object) -> ClientUpdate:
    fields: dict[str, object] = dict(
        participant=addr(i),
        round_id=RoundId(3),
        num_samples=10,
        tensors={"b": np.ones(2, np.float32), "w": np.ones((2, 2), np.float32)},
        base_model_digest=BASE,
    )
    fields.update(over)
    return ClientUpdate(**fields)  # type: ignore[arg-type]


def check(u: ClientUpdate, **kw: object) -> None:
    agg.validate_update(u, REF, round_id=RoundId(3), base_model_digest=BASE, kind=UpdateKind.DELTA, **kw)  # type: ignore[arg-type]


def test_valid_update_passes() -> None:
    check(update())


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"base_model_digest": OTHER}, "base model digest"),
        ({"round_id": RoundId(4)}, "round 4"),
        ({"num_samples": 0}, "num_samples"),
        ({"kind": UpdateKind.QFFL}, "update kind"),
        ({"tensors": {"w": np.ones((2, 2), np.float32)}}, "missing \\['b'\\]"),
        ({"tensors": {"b": np.ones(2, np.float32), "w": np.ones((2, 2), np.float32), "x": np.ones(1, np.float32)}},
         "unexpected \\['x'\\]"),
        ({"tensors": {"b": np.ones(3, np.float32), "w": np.ones((2, 2), np.float32)}}, "shape"),
        ({"tensors": {"b": np.ones(2, np.float64), "w": np.ones((2, 2), np.float32)}}, "dtype float64"),
        ({"tensors": {"b": np.array([1.0, np.nan], np.float32), "w": np.ones((2, 2), np.float32)}}, "NaN or Inf"),
        ({"tensors": {"b": np.array([np.inf, 1.0], np.float32), "w": np.ones((2, 2), np.float32)}}, "NaN or Inf"),
    ],
)
def test_malformed_updates_are_rejected_with_a_reason(over: dict[str, object], reason: str) -> None:
    with pytest.raises(UpdateRejectedError, match=reason) as err:
        check(update(**over))
    assert err.value.participant == addr(1)


def test_control_tensors_are_required_when_asked() -> None:
    with pytest.raises(UpdateRejectedError, match="cv/b"):
        check(update(), control=True)
    cv = {"cv/b": np.zeros(2, np.float32), "cv/w": np.zeros((2, 2), np.float32)}
    check(update(tensors={**update().tensors, **cv}), control=True)


def test_screen_updates_records_rejections_and_duplicates() -> None:
    updates = [update(1), update(2, base_model_digest=OTHER), update(3), update(3)]
    valid, rejected = agg.screen_updates(
        updates, REF, round_id=RoundId(3), base_model_digest=BASE, kind=UpdateKind.DELTA
    )
    assert [u.participant for u in valid] == [addr(1)]
    assert [(r.participant, r.rule) for r in rejected] == [(addr(2), "validation"), (addr(3), "validation")]
    assert "2 updates" in rejected[1].reason


def test_required_extras_must_be_positive_numbers() -> None:
    valid, rejected = agg.screen_updates(
        [update(1, extras={"tau": 0}), update(2, extras={"tau": 3.0})],
        REF,
        round_id=RoundId(3),
        base_model_digest=BASE,
        kind=UpdateKind.DELTA,
        required_extras=("tau",),
    )
    assert [u.participant for u in valid] == [addr(2)]
    assert "tau" in rejected[0].reason


def test_require_min() -> None:
    agg.require_min(2, 2)
    with pytest.raises(TooFewUpdatesError, match="only 1 valid"):
        agg.require_min(1, 2)

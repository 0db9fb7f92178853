from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import ShamirError
from fedchain.secagg.shamir import PRIME, Share, combine, evaluate, interpolate, split


def fixed(values: list[int]):  # a "random" source that yields the given coefficients in turn
    it = iter(values)

    def rng(size: int) -> bytes:
        return next(it).to_bytes(size, "big")

    return rng


def test_known_vector_degree_two() -> None:
    # f(x) = 1234 + 166 x + 94 x^2: f(1) = 1494, f(2) = 1942, f(3) = 2578 (by hand)
    secret = (1234).to_bytes(32, "big")
    shares = split(secret, 3, [1, 2, 3], fixed([166, 94]))
    assert shares == (Share(1, 1494), Share(2, 1942), Share(3, 2578))


def test_known_vector_combines_from_any_three() -> None:
    shares = [Share(1, 1494), Share(2, 1942), Share(3, 2578), Share(4, 1234 + 166 * 4 + 94 * 16)]
    assert combine(shares[1:]) == (1234).to_bytes(32, "big")
    assert combine([shares[0], shares[3], shares[2]]) == (1234).to_bytes(32, "big")


def test_known_vector_wraps_the_field() -> None:
    # f(x) = 7 + (p - 1) x: f(1) = 6, f(2) = p + 5 = 5 mod p
    shares = split((7).to_bytes(32, "big"), 2, [1, 2], fixed([PRIME - 1]))
    assert shares == (Share(1, 6), Share(2, 5))


def test_rejection_sampling_skips_p() -> None:
    # 2^521 - 1 masked to 521 bits is p itself: rejected, the next draw (5) is used
    shares = split((0).to_bytes(32, "big"), 2, [1, 2], fixed([PRIME, 5]))
    assert shares == (Share(1, 5), Share(2, 10))


def test_evaluate_is_horner() -> None:
    assert evaluate([3, 0, 2], 5) == 53


@settings(max_examples=40, deadline=None)
@given(
    secret=st.binary(min_size=32, max_size=32),
    n=st.integers(min_value=1, max_value=12),
    data=st.data(),
)
def test_any_t_shares_reconstruct(secret: bytes, n: int, data: st.DataObject) -> None:
    t = data.draw(st.integers(min_value=1, max_value=n))
    rnd = random.Random(data.draw(st.integers(0, 2**32)))
    shares = split(secret, t, list(range(1, n + 1)), rnd.randbytes)
    subset = data.draw(st.permutations(shares))[:t]
    assert combine(subset, t) == secret


@settings(max_examples=30, deadline=None)
@given(secret=st.binary(min_size=32, max_size=32), other=st.binary(min_size=32, max_size=32), seed=st.integers(0, 2**32))
def test_t_minus_one_shares_fit_every_secret(secret: bytes, other: bytes, seed: int) -> None:
    # any t - 1 shares lie on a degree t - 1 polynomial with any other secret as f(0): they do not determine it
    t = 4
    shares = split(secret, t, [1, 2, 3, 4, 5], random.Random(seed).randbytes)
    known = list(shares[: t - 1])
    y9 = _lagrange_eval([(0, int.from_bytes(other, "big")), *[(s.x, s.y) for s in known]], 9)
    assert combine([*known, Share(9, y9)]) == other
    assert combine([*known, shares[t - 1]]) == secret


def _lagrange_eval(points: list[tuple[int, int]], at: int) -> int:
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    total = 0
    for i, (xi, yi) in enumerate(zip(xs, ys, strict=True)):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * (at - xj) % PRIME
                den = den * (xi - xj) % PRIME
        total = (total + yi * num * pow(den, -1, PRIME)) % PRIME
    return total


def test_interpolate_matches_the_polynomial() -> None:
    shares = [Share(1, 1494), Share(2, 1942), Share(3, 2578)]
    assert interpolate(shares, 4) == 1234 + 166 * 4 + 94 * 16


def test_too_few_shares_refused() -> None:
    with pytest.raises(ShamirError, match="cannot reconstruct a secret of threshold 3"):
        combine([Share(1, 1494), Share(2, 1942)], 3)


def test_duplicate_x_refused() -> None:
    with pytest.raises(ShamirError, match="duplicate share x-coordinate 2"):
        combine([Share(2, 1), Share(2, 5)])


def test_duplicate_x_refused_when_splitting() -> None:
    with pytest.raises(ShamirError, match="duplicate"):
        split(bytes(32), 2, [1, 1, 2], random.Random(0).randbytes)


@pytest.mark.parametrize(("x", "y"), [(0, 1), (1, PRIME), (1, -1), (2**32, 1)])
def test_malformed_share_refused(x: int, y: int) -> None:
    with pytest.raises(ShamirError):
        Share(x, y)


def test_secret_of_wrong_length_refused() -> None:
    with pytest.raises(ShamirError, match="32 bytes"):
        split(b"short", 1, [1], random.Random(0).randbytes)


def test_threshold_above_share_count_refused() -> None:
    with pytest.raises(ShamirError, match="threshold 3"):
        split(bytes(32), 3, [1, 2], random.Random(0).randbytes)


def test_a_shifted_share_shifts_the_secret() -> None:
    # with x = 1, 2: f(0) = 2 y1 - y2, so y2 + 1 reconstructs the secret minus one
    shares = list(split(b"\x01" * 32, 2, [1, 2], random.Random(0).randbytes))
    shares[1] = Share(2, (shares[1].y + 1) % PRIME)
    assert combine(shares) == b"\x01" * 31 + b"\x00"


def test_a_field_element_above_2_256_is_not_a_secret() -> None:
    # f(x) = 2^256 + 0 x would be the secret 2^256; shares of it must be refused as a 32-byte secret
    with pytest.raises(ShamirError, match="32-byte secret"):
        combine([Share(1, 2**256), Share(2, 2**256)])

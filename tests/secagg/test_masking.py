from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedchain.errors import SecAggFormatError, SecAggKeyError
from fedchain.secagg import keys
from fedchain.secagg.masking import PAIR_MASK_NONCE, SELF_MASK_NONCE, Quantiser, expand, pair_mask, pair_sign, self_mask


def test_quantise_round_trips_within_half_a_unit() -> None:
    q = Quantiser(clip=1.0, scale=1000.0)
    out = q.quantise([0.0, 0.1234, -0.5, 1.0, -1.0])
    assert out.values.tolist() == [0, 123, 2**32 - 500, 1000, 2**32 - 1000]
    assert out.clipped == 0


def test_values_outside_the_range_are_clipped_and_counted() -> None:
    q = Quantiser(clip=2.0, scale=10.0)
    out = q.quantise([3.0, -7.5, 1.99, 2.0])
    assert out.values.tolist() == [20, 2**32 - 20, 20, 20]
    assert out.clipped == 2


def test_nan_refused() -> None:
    with pytest.raises(SecAggFormatError, match="NaN"):
        Quantiser(1.0, 10.0).quantise([float("nan")])


def test_for_ring_sum_of_max_summands_does_not_wrap() -> None:
    q = Quantiser.for_ring(clip=0.5, max_summands=100)
    assert q.max_summands == 100
    top = q.quantise(np.full(3, 0.5)).values
    total = np.zeros(3, np.uint32)
    for _ in range(100):
        total += top
    assert np.allclose(q.dequantise_sum(total, 100), 50.0, atol=100 * q.mean_error_bound())
    assert q.mean_error_bound() == pytest.approx(100 * 0.5 / (2**32 - 2), rel=1e-6)


def test_dequantise_refuses_a_count_that_may_wrap() -> None:
    q = Quantiser.for_ring(clip=1.0, max_summands=10)
    with pytest.raises(SecAggFormatError, match="may wrap"):
        q.dequantise_sum(np.zeros(1, np.uint32), 11)


def test_scale_that_does_not_fit_the_ring_refused() -> None:
    with pytest.raises(SecAggFormatError, match="2\\^32 ring"):
        Quantiser(clip=1.0, scale=2.0**31)


@settings(max_examples=40, deadline=None)
@given(
    vectors=hnp.arrays(np.float32, st.tuples(st.integers(1, 8), st.integers(1, 16)), elements=st.floats(-1, 1, width=32)),
)
def test_dequantised_mean_within_the_stated_bound(vectors: np.ndarray) -> None:
    k = vectors.shape[0]
    q = Quantiser.for_ring(clip=1.0, max_summands=8)
    total = np.zeros(vectors.shape[1], np.uint32)
    for row in vectors:
        total += q.quantise(row).values
    mean = q.dequantise_mean(total, k)
    assert np.max(np.abs(mean - vectors.astype(np.float64).mean(axis=0))) <= q.mean_error_bound() * (1 + 1e-9)


def test_prg_is_chacha20_keystream() -> None:
    # RFC 8439 section 2.4.2 keystream: key 00..1f, counter 1, nonce 000000000000004a00000000; a zero
    # plaintext encrypts to the keystream, whose first word is 0x224f51f3 (ciphertext 6e2e359a xor "Ladi")
    seed = bytes(range(32))
    nonce = (1).to_bytes(4, "little") + bytes.fromhex("000000000000004a00000000")
    words = expand(seed, nonce, 4)
    ladi = int.from_bytes(b"Ladi", "little")
    assert int(words[0]) ^ ladi == int.from_bytes(bytes.fromhex("6e2e359a"), "little")


def test_self_and_pair_masks_differ_for_one_seed() -> None:
    seed = bytes(32)
    assert SELF_MASK_NONCE != PAIR_MASK_NONCE
    assert not np.array_equal(self_mask(seed, 8), pair_mask(seed, 8))
    assert np.array_equal(pair_mask(seed, 8), pair_mask(seed, 16)[:8])


def test_pair_sign() -> None:
    assert pair_sign(1, 2) == 1 and pair_sign(2, 1) == -1
    with pytest.raises(SecAggFormatError):
        pair_sign(3, 3)


def _context(round_id: int = 1, chain_id: int = 31337) -> bytes:
    return keys.context_digest(chain_id, b"\x11" * 20, round_id)


def test_pairwise_seed_is_symmetric() -> None:
    a, b = keys.generate_private_key(), keys.generate_private_key()
    pa, pb = keys.public_key_of(a), keys.public_key_of(b)
    assert keys.pairwise_seed(a, pb, _context(), 1, 2, "b") == keys.pairwise_seed(b, pa, _context(), 2, 1, "a")


@pytest.mark.parametrize(("other_round", "other_chain"), [(2, 31337), (1, 1)])
def test_pairwise_seed_is_bound_to_round_and_federation(other_round: int, other_chain: int) -> None:
    a, b = keys.generate_private_key(), keys.generate_private_key()
    pb = keys.public_key_of(b)
    assert keys.pairwise_seed(a, pb, _context(), 1, 2, "b") != keys.pairwise_seed(
        a, pb, _context(other_round, other_chain), 1, 2, "b"
    )


def test_pairwise_seed_is_bound_to_the_pair() -> None:
    a, b = keys.generate_private_key(), keys.generate_private_key()
    pb = keys.public_key_of(b)
    assert keys.pairwise_seed(a, pb, _context(), 1, 2, "b") != keys.pairwise_seed(a, pb, _context(), 1, 3, "b")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x01" * 31, "31 bytes"),
        (bytes(32), "low-order"),
        ((1).to_bytes(32, "little"), "low-order"),
        (bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"), "low-order"),  # order 8
    ],
)
def test_bad_public_keys_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(SecAggKeyError, match=reason):
        keys.check_public_key(raw, "participant 3")


def test_a_valid_public_key_is_accepted() -> None:
    raw = keys.public_key_of(keys.generate_private_key())
    assert keys.check_public_key(raw, "p").public_bytes_raw() == raw

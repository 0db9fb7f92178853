from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import SecAggFormatError
from fedchain.secagg.inprocess import run_round
from fedchain.secagg.messages import (
    Advertisement,
    MaskedInput,
    RevealedShare,
    RevealKind,
    UnmaskingShares,
    decode_record,
)
from tests.secagg.harness import federation


@pytest.fixture(scope="module")
def records():
    fed = federation(5, 8)
    return run_round(fed.ctx, fed.long_term, fed.updates, drop_after_advertising=[4], rng=fed.rng.randbytes)


def test_advertisement_round_trips(records) -> None:
    for ad in records.advertisements:
        data = ad.to_bytes()
        assert Advertisement.from_bytes(data) == ad
        assert Advertisement.from_bytes(data).to_bytes() == data


def test_masked_input_round_trips(records) -> None:
    for mi in records.masked_inputs:
        again = MaskedInput.from_bytes(mi.to_bytes())
        assert again.sender == mi.sender and np.array_equal(again.values, mi.values)
        assert again.digest() == mi.digest()


def test_unmasking_shares_round_trip(records) -> None:
    for rec in records.unmasking:
        assert UnmaskingShares.from_bytes(rec.to_bytes()) == rec


def test_digest_is_sha256_of_the_encoding(records) -> None:
    import hashlib

    ad = records.advertisements[0]
    assert ad.digest() == hashlib.sha256(ad.to_bytes()).digest()


def test_trailing_bytes_refused(records) -> None:
    with pytest.raises(SecAggFormatError, match="trailing"):
        Advertisement.from_bytes(records.advertisements[0].to_bytes() + b"\x00")


def test_truncated_refused(records) -> None:
    with pytest.raises(SecAggFormatError, match="truncated|too short"):
        MaskedInput.from_bytes(records.masked_inputs[0].to_bytes()[:-1])


def test_wrong_kind_refused(records) -> None:
    with pytest.raises(SecAggFormatError, match="expected a record of kind advertisement, got kind 2"):
        Advertisement.from_bytes(records.masked_inputs[0].to_bytes())


def test_unsorted_reveals_refused() -> None:
    rec = UnmaskingShares(bytes(32), 1, (RevealedShare(2, RevealKind.SELF_SEED, 1), RevealedShare(1, RevealKind.SELF_SEED, 1)))
    with pytest.raises(SecAggFormatError, match="strictly sorted"):
        rec.to_bytes()


def test_unknown_reveal_kind_refused() -> None:
    data = bytearray(UnmaskingShares(bytes(32), 1, (RevealedShare(2, RevealKind.SELF_SEED, 1),)).to_bytes())
    data[4 + 2 + 32 + 4 + 4 + 4] = 9  # the kind byte of the first reveal
    with pytest.raises(SecAggFormatError, match="unknown revealed-share kind 9"):
        UnmaskingShares.from_bytes(bytes(data))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400))
def test_decoders_reject_garbage_cleanly(data: bytes) -> None:
    for cls in (Advertisement, MaskedInput, UnmaskingShares):
        try:
            cls.from_bytes(data)
        except SecAggFormatError:
            pass


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=1, max_size=60), cut=st.integers(0, 10_000))
def test_decoder_rejects_mutated_valid_prefix(data: bytes, cut: int) -> None:
    rec = UnmaskingShares(b"\x01" * 32, 3, (RevealedShare(1, RevealKind.MASK_KEY, 12345),), (2,))
    raw = rec.to_bytes()
    mutated = raw[: cut % len(raw)] + data
    try:
        back = UnmaskingShares.from_bytes(mutated)
    except SecAggFormatError:
        return
    assert back.to_bytes() == mutated


def test_decode_record_dispatches_on_the_kind(records) -> None:
    for group in (records.advertisements, records.masked_inputs, records.unmasking):
        rec = group[0]
        back = decode_record(rec.to_bytes())
        assert type(back) is type(rec) and back.digest() == rec.digest()


@pytest.mark.parametrize(
    ("data", "match"), [(b"FCSA\x07\x01", "unknown secure-aggregation record kind 7"), (b"XXXX\x01\x01", "magic")]
)
def test_decode_record_refuses_unknown_kinds(data: bytes, match: str) -> None:
    with pytest.raises(SecAggFormatError, match=match):
        decode_record(data)

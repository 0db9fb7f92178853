"""secp256k1 signing and recovery, checked against eth-account (the oracle) and the EIP-712 spec's vector."""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.codec.abi import is_checksum_address, keccak
from fedchain.codec.secp256k1 import SECP256K1_N, address_of_key, recover_address, sign_digest, split_signature
from fedchain.errors import ExitCode, IntegrityError, KeystoreError, SignatureError

keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
digests = st.binary(min_size=32, max_size=32)
HALF_N = SECP256K1_N // 2

# EIP-712's Mail example: the signer's key is keccak256("cow"), the digest is that of the spec's Mail message
COW = keccak(b"cow")
MAIL_DIGEST = bytes.fromhex("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2")
MAIL_R = 0x4355C47D63924E8A72E509B65029052EB6C299D53A04E167C5775FD466751C9D
MAIL_S = 0x07299936D304C153F6443DFA05F40FF007D72911B6F72307F996231605B91562


def _signature(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def test_signature_error_is_an_integrity_error() -> None:
    assert issubclass(SignatureError, IntegrityError)
    assert SignatureError.exit_code is ExitCode.INTEGRITY


def test_the_eip712_mail_example_signature() -> None:
    signature = sign_digest(COW, MAIL_DIGEST)
    assert signature == _signature(MAIL_R, MAIL_S, 28)
    assert address_of_key(COW) == "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
    assert recover_address(MAIL_DIGEST, signature) == "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"


@settings(max_examples=60, deadline=None)
@given(key=keys, digest=digests)
def test_signature_is_eth_accounts(key: bytes, digest: bytes) -> None:
    ours = sign_digest(key, digest)
    theirs = Account.unsafe_sign_hash(digest, key)
    assert split_signature(ours) == (theirs.r, theirs.s, theirs.v)
    assert ours == bytes(theirs.signature)
    assert int.from_bytes(ours[32:64], "big") <= HALF_N


@settings(max_examples=60, deadline=None)
@given(key=keys, digest=digests)
def test_recovery_is_eth_accounts(key: bytes, digest: bytes) -> None:
    signature = sign_digest(key, digest)
    recovered = recover_address(digest, signature)
    assert recovered == Account._recover_hash(digest, signature=signature)
    assert recovered == address_of_key(key) == Account.from_key(key).address
    assert is_checksum_address(recovered)


@settings(max_examples=30, deadline=None)
@given(key=keys, digest=digests)
def test_signing_is_deterministic(key: bytes, digest: bytes) -> None:
    assert sign_digest(key, digest) == sign_digest(key, digest)


@settings(max_examples=30, deadline=None)
@given(key=keys, digest=digests, other=digests)
def test_a_signature_over_another_digest_recovers_another_address(key: bytes, digest: bytes, other: bytes) -> None:
    signature = sign_digest(key, digest)
    if other != digest:
        assert recover_address(other, signature) != address_of_key(key)


@settings(max_examples=30, deadline=None)
@given(key=keys, digest=digests)
def test_the_high_s_twin_is_refused(key: bytes, digest: bytes) -> None:
    r, s, v = split_signature(sign_digest(key, digest))
    twin = _signature(r, SECP256K1_N - s, 55 - v)  # the other valid signature of the same digest: v 27 <-> 28
    assert Account._recover_hash(digest, signature=twin) == address_of_key(key)  # eth-account takes it
    with pytest.raises(SignatureError, match="high"):
        recover_address(digest, twin)


@pytest.mark.parametrize("length", [0, 1, 64, 66, 130])
def test_a_signature_of_the_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(SignatureError, match=f"got {length}"):
        recover_address(MAIL_DIGEST, b"\x01" * length)


@pytest.mark.parametrize("v", [0, 1, 2, 26, 29, 35, 36, 255])
def test_v_other_than_27_or_28_is_refused(v: int) -> None:
    with pytest.raises(SignatureError, match=f"v is {v}"):
        recover_address(MAIL_DIGEST, _signature(MAIL_R, MAIL_S, v))


@pytest.mark.parametrize("r", [0, SECP256K1_N, SECP256K1_N + 1, 2**256 - 1])
def test_r_zero_or_not_below_n_is_refused(r: int) -> None:
    with pytest.raises(SignatureError, match="signature r"):
        recover_address(MAIL_DIGEST, _signature(r, MAIL_S, 28))


@pytest.mark.parametrize("s", [0, SECP256K1_N, 2**256 - 1, HALF_N + 1])
def test_s_zero_not_below_n_or_high_is_refused(s: int) -> None:
    with pytest.raises(SignatureError, match="signature s"):
        recover_address(MAIL_DIGEST, _signature(MAIL_R, s, 28))


def test_an_r_that_is_no_curve_point_recovers_nothing() -> None:
    # x = 5 is not the x-coordinate of a secp256k1 point (5**3 + 7 = 132 is no square mod p)
    with pytest.raises(SignatureError, match="recovers no public key"):
        recover_address(MAIL_DIGEST, _signature(5, MAIL_S, 27))


@settings(max_examples=100, deadline=None)
@given(
    r=st.integers(min_value=1, max_value=SECP256K1_N - 1),
    s=st.integers(min_value=1, max_value=HALF_N),
    v=st.sampled_from([27, 28]),
    digest=digests,
)
def test_any_well_formed_signature_recovers_what_eth_account_recovers(r: int, s: int, v: int, digest: bytes) -> None:
    signature = _signature(r, s, v)
    try:
        theirs = Account._recover_hash(digest, signature=signature)
    except Exception:  # eth-keys' BadSignature (and friends): no point has x = r
        with pytest.raises(SignatureError, match="recovers no public key"):
            recover_address(digest, signature)
        return
    assert recover_address(digest, signature) == theirs


@pytest.mark.parametrize("digest", [b"", b"\x00" * 31, b"\x00" * 33])
def test_a_digest_not_32_bytes_is_refused(digest: bytes) -> None:
    with pytest.raises(SignatureError, match="32 bytes"):
        sign_digest(COW, digest)
    with pytest.raises(SignatureError, match="32 bytes"):
        recover_address(digest, sign_digest(COW, MAIL_DIGEST))


@pytest.mark.parametrize(
    "key", [b"", b"\x01" * 31, b"\x01" * 33, bytes(32), SECP256K1_N.to_bytes(32, "big"), (2**256 - 1).to_bytes(32, "big")]
)
def test_an_invalid_private_key_is_refused_without_showing_it(key: bytes) -> None:
    with pytest.raises(KeystoreError) as caught:
        sign_digest(key, MAIL_DIGEST)
    assert key.hex() not in str(caught.value) or not key
    with pytest.raises(KeystoreError):
        address_of_key(key)

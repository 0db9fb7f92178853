"""secp256k1 signatures as Ethereum writes them: sign a 32-byte digest, recover the signer's address.

A signature is 65 bytes ``r || s || v``: ``r`` and ``s`` big-endian, 32 bytes each, and ``v`` one byte,
27 or 28 (27 + the parity of the nonce point's y), the form ``eth_sign``, ``eth_signTypedData_v4`` and
eth-account's ``signature`` write. Signing is libsecp256k1's (through coincurve): deterministic (RFC 6979
nonces) and low-s (EIP-2: ``s <= n / 2``), so one key and one digest always give the same 65 bytes, byte
for byte those of eth-account's ``Account.unsafe_sign_hash``.

Recovery is strict, so that a signature has exactly one accepted encoding: it refuses with
:class:`~fedchain.errors.SignatureError` a signature that is not 65 bytes, whose ``v`` is not 27 or 28
(the bare recovery ids 0 and 1, which some signers emit and eth-account also accepts, are refused: a
caller that holds such a signature adds 27 to its last byte first), whose ``r`` or ``s`` is zero or not
below the group order ``n``, whose ``s`` is high (the malleable twin ``(r, n - s, v ^ 1)`` of a valid
signature), or from which no public key can be recovered. Nothing here logs or keeps a key.
"""

from __future__ import annotations

import coincurve

from fedchain.codec.abi import keccak, to_checksum_address
from fedchain.errors import KeystoreError, SignatureError
from fedchain.types import Address

__all__ = [
    "SECP256K1_N",
    "SIGNATURE_LENGTH",
    "SignatureError",
    "address_of_key",
    "address_of_public_key",
    "recover_address",
    "sign_digest",
    "split_signature",
]

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The order of secp256k1's group: private keys, ``r`` and ``s`` lie in ``[1, n - 1]``."""
_HALF_N = SECP256K1_N // 2
SIGNATURE_LENGTH = 65
"""``r`` (32 bytes) ``|| s`` (32 bytes) ``|| v`` (1 byte)."""
_V_BASE = 27


def _private_key(private_key: bytes) -> coincurve.PrivateKey:
    """The coincurve key of 32 bytes ``private_key`` in ``[1, n - 1]``; KeystoreError otherwise (the key itself
    is never shown)."""
    if not isinstance(private_key, (bytes, bytearray)) or len(private_key) != 32:
        raise KeystoreError("a private key is 32 bytes")
    if not 0 < int.from_bytes(private_key, "big") < SECP256K1_N:
        raise KeystoreError("the private key is not a valid secp256k1 key (it must lie in [1, n - 1])")
    return coincurve.PrivateKey(bytes(private_key))


def _digest(digest: bytes) -> bytes:
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
        shown = len(digest) if isinstance(digest, (bytes, bytearray)) else type(digest).__name__
        raise SignatureError(f"a digest to sign or recover from is 32 bytes, got {shown}")
    return bytes(digest)


def address_of_public_key(public_key: bytes) -> Address:
    """The EIP-55 address of an uncompressed public key (65 bytes starting 0x04, or its 64-byte body)."""
    body = public_key[1:] if len(public_key) == 65 and public_key[0] == 4 else public_key
    if len(body) != 64:
        raise SignatureError(f"an uncompressed public key is 64 bytes (or 65 with its 0x04 prefix), got {len(public_key)}")
    return Address(to_checksum_address(keccak(bytes(body))[12:]))


def address_of_key(private_key: bytes) -> Address:
    """The EIP-55 checksummed address of a 32-byte private key; KeystoreError when it is not a valid key."""
    return address_of_public_key(_private_key(private_key).public_key.format(compressed=False))


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """Sign the 32-byte ``digest`` (already hashed: nothing is hashed here) with ``private_key``: 65 bytes
    ``r || s || v``, ``v`` in {27, 28}, ``s`` low, deterministic (RFC 6979)."""
    signed = _private_key(private_key).sign_recoverable(_digest(digest), hasher=None)
    # libsecp256k1 always returns the low-s form and a recovery id of 0 or 1 for a normal r (r >= n happens
    # with probability ~2**-128 and would give 2 or 3, which Ethereum's v cannot carry)
    recovery_id = signed[64]
    if recovery_id > 1:  # pragma: no cover - astronomically unlikely
        raise SignatureError(f"libsecp256k1 returned recovery id {recovery_id}, which a v of 27 or 28 cannot carry")
    return signed[:64] + bytes([_V_BASE + recovery_id])


def split_signature(signature: bytes) -> tuple[int, int, int]:
    """``(r, s, v)`` of a 65-byte signature, checked as :func:`recover_address` checks it; SignatureError
    naming what is wrong otherwise."""
    if not isinstance(signature, (bytes, bytearray)):
        raise SignatureError(f"a signature is 65 bytes, got {type(signature).__name__}")
    if len(signature) != SIGNATURE_LENGTH:
        raise SignatureError(f"a signature is {SIGNATURE_LENGTH} bytes (r || s || v), got {len(signature)}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise SignatureError(f"signature v is {v}: it must be 27 or 28")
    if not 0 < r < SECP256K1_N:
        raise SignatureError(f"signature r = {r:#x} is not in [1, n - 1]")
    if not 0 < s < SECP256K1_N:
        raise SignatureError(f"signature s = {s:#x} is not in [1, n - 1]")
    if s > _HALF_N:
        raise SignatureError(f"signature s = {s:#x} is high (above n / 2): not the canonical low-s form (EIP-2)")
    return r, s, v


def recover_address(digest: bytes, signature: bytes) -> Address:
    """The EIP-55 address whose key made ``signature`` over the 32-byte ``digest``; SignatureError when the
    signature is malformed (see the module's docstring) or recovers no key. A valid signature over another
    digest recovers another address: verifying means comparing the result with the expected signer."""
    message = _digest(digest)
    _, _, v = split_signature(signature)
    compact = bytes(signature[:64]) + bytes([v - _V_BASE])
    try:
        public = coincurve.PublicKey.from_signature_and_message(compact, message, hasher=None)
    except ValueError as err:
        raise SignatureError(f"the signature recovers no public key: {err}") from err
    return address_of_public_key(public.format(compressed=False))

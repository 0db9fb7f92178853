"""The cryptographic primitives of a round, all from ``cryptography``: X25519 key agreement (with the
public-key checks), HKDF-SHA256 key derivation and ChaCha20-Poly1305 share encryption.

Every derived key is bound to the round's context digest (chain id, contract address, round id;
see :func:`context_digest`) through HKDF's salt, and to the ordered participant pair through its info.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedchain.errors import SecAggFormatError, SecAggKeyError, ShareAuthenticationError

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
DOMAIN = b"fedchain/secagg/v1"

# A fixed private key used only to test a public key for low order: for every clamped X25519 scalar, a
# point of order 1, 2, 4 or 8 gives the all-zero shared secret, which cryptography refuses.
_PROBE = X25519PrivateKey.from_private_bytes(hashlib.sha256(DOMAIN + b"/probe").digest())


def context_digest(chain_id: int, contract: bytes, round_id: int) -> bytes:
    """SHA-256 over the domain, the chain id, the 20-byte contract address and the round id."""
    if len(contract) != 20:
        raise SecAggFormatError(f"a contract address is 20 bytes, got {len(contract)}")
    if chain_id < 0 or round_id < 0:
        raise SecAggFormatError(f"chain id {chain_id} and round id {round_id} must be non-negative")
    return hashlib.sha256(DOMAIN + b"/context" + struct.pack(">Q", chain_id) + contract + struct.pack(">Q", round_id)).digest()


def check_public_key(raw: bytes, owner: str) -> X25519PublicKey:
    """The X25519 public key in ``raw``; SecAggKeyError when it is not 32 bytes or a low-order point."""
    if len(raw) != KEY_SIZE:
        raise SecAggKeyError(owner, f"it is {len(raw)} bytes, an X25519 public key is {KEY_SIZE}")
    key = X25519PublicKey.from_public_bytes(raw)
    try:
        _PROBE.exchange(key)
    except ValueError as err:
        raise SecAggKeyError(owner, "it is a low-order point (the shared secret would be all zeros)") from err
    return key


def private_key(raw: bytes) -> X25519PrivateKey:
    """The X25519 private key of 32 raw bytes."""
    if len(raw) != KEY_SIZE:
        raise SecAggFormatError(f"an X25519 private key is {KEY_SIZE} bytes, got {len(raw)}")
    return X25519PrivateKey.from_private_bytes(raw)


def public_key_of(raw_private: bytes) -> bytes:
    """The raw 32-byte public key of a raw X25519 private key."""
    return private_key(raw_private).public_key().public_bytes_raw()


def long_term_private_key(account_key: bytes) -> bytes:
    """A participant's long-term X25519 private key, derived from its account's signing key with HKDF-SHA256
    (domain-separated: the X25519 key reveals nothing of the signing key). It registers the public half, and
    needs no key file of its own: whoever holds the account holds the key."""
    if len(account_key) != 32:
        raise SecAggFormatError(f"an account key is 32 bytes, got {len(account_key)}")
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=DOMAIN + b"/long-term-key").derive(
        bytes(account_key)
    )


class SigningAccount(Protocol):
    """An account whose signing key derives its long-term X25519 key (a signer, a test account)."""

    @property
    def key(self) -> bytes:  # pragma: no cover - a protocol
        """The 32-byte secp256k1 private key."""


def account_secagg_key(account: SigningAccount) -> bytes:
    """The account's long-term X25519 private key (:func:`long_term_private_key` of its signing key)."""
    return long_term_private_key(bytes(account.key))


def account_public_key(account: SigningAccount) -> bytes:
    """The public half of the account's long-term X25519 key (32 bytes), recorded at registration: what
    secure-aggregation shares are encrypted to."""
    return public_key_of(account_secagg_key(account))


def generate_private_key() -> bytes:
    """A fresh X25519 private key, 32 raw bytes (from the operating system's CSPRNG)."""
    return X25519PrivateKey.generate().private_bytes_raw()


def agree(raw_private: bytes, raw_public: bytes, owner: str) -> bytes:
    """The X25519 shared secret of a private key and ``owner``'s public key (checked as :func:`check_public_key`)."""
    key = check_public_key(raw_public, owner)
    try:
        return private_key(raw_private).exchange(key)
    except ValueError as err:  # pragma: no cover - check_public_key already refused low-order points
        raise SecAggKeyError(owner, "the shared secret is all zeros") from err


def derive(shared: bytes, context: bytes, purpose: bytes, first: int, second: int) -> bytes:
    """HKDF-SHA256 of ``shared``: salt = the context digest, info = domain/purpose and the ordered pair."""
    info = DOMAIN + b"/" + purpose + struct.pack(">II", first, second)
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=context, info=info).derive(shared)


def pairwise_seed(mask_private: bytes, peer_mask_public: bytes, context: bytes, i: int, j: int, owner: str) -> bytes:
    """The pairwise mask seed s_ij = s_ji of participants i and j: HKDF over their mask keys' X25519 secret."""
    shared = agree(mask_private, peer_mask_public, owner)
    return derive(shared, context, b"pairwise-mask", min(i, j), max(i, j))


def share_key(
    long_term_private: bytes, peer_long_term_public: bytes, context: bytes, sender: int, recipient: int, peer: int
) -> bytes:
    """The AEAD key for the shares ``sender`` sends ``recipient`` this round (directional, per round); ``peer`` is
    the other party, whose registered long-term key is ``peer_long_term_public``."""
    shared = agree(long_term_private, peer_long_term_public, f"participant {peer} (long-term key)")
    return derive(shared, context, b"share-key", sender, recipient)


def seal(key: bytes, nonce: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """ChaCha20-Poly1305 encryption (ciphertext with its 16-byte tag)."""
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, associated)


def open_sealed(key: bytes, nonce: bytes, ciphertext: bytes, associated: bytes, sender: int, recipient: int) -> bytes:
    """ChaCha20-Poly1305 decryption; ShareAuthenticationError naming the pair when the tag does not verify."""
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, associated)
    except InvalidTag as err:
        raise ShareAuthenticationError(sender, recipient) from err

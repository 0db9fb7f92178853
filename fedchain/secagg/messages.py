"""The public records of a round, each with one canonical byte encoding and a SHA-256 digest, so it can
travel through the blob store with its digest on chain.

Encoding: ``b"FCSA"``, a kind byte, a version byte, then fixed-width big-endian fields; lists are
count-prefixed and strictly sorted (no duplicates), masked vectors are little-endian uint32. Decoding
accepts exactly the bytes the encoder writes (no trailing bytes, no unsorted lists), so
bytes -> record -> bytes is the identity.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from fedchain.errors import SecAggFormatError
from fedchain.secagg.keys import KEY_SIZE, NONCE_SIZE, TAG_SIZE
from fedchain.secagg.masking import RingVector
from fedchain.secagg.shamir import PRIME, Y_SIZE

MAGIC = b"FCSA"
VERSION = 1
DIGEST_SIZE = 32
SHARE_PLAINTEXT_SIZE = 2 * Y_SIZE
SHARE_CIPHERTEXT_SIZE = SHARE_PLAINTEXT_SIZE + TAG_SIZE


class Kind(IntEnum):
    """The record kinds (the byte after the magic)."""

    ADVERTISEMENT = 1
    MASKED_INPUT = 2
    UNMASKING_SHARES = 3


class RevealKind(IntEnum):
    """Which of an owner's secrets a revealed share belongs to."""

    SELF_SEED = 1  # b_j: the owner survived, its self mask must come off
    MASK_KEY = 2  # the owner's mask secret key: it dropped, its pairwise masks must come off


@dataclass(frozen=True)
class EncryptedShare:
    """The owner's Shamir shares of its mask key and self-mask seed for ``recipient`` (ChaCha20-Poly1305)."""

    recipient: int
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class Advertisement:
    """Stage 1: a participant's fresh mask public key, its self-mask seed commitment and its encrypted shares."""

    context: bytes
    sender: int
    mask_public_key: bytes
    seed_commitment: bytes
    shares: tuple[EncryptedShare, ...]

    def to_bytes(self) -> bytes:
        """The canonical encoding."""
        w = _Writer(Kind.ADVERTISEMENT, self.context, self.sender)
        w.fixed(self.mask_public_key, KEY_SIZE, "mask public key")
        w.fixed(self.seed_commitment, DIGEST_SIZE, "seed commitment")
        _strictly_sorted([s.recipient for s in self.shares], "share recipients")
        w.u32(len(self.shares))
        for s in self.shares:
            w.u32(s.recipient)
            w.fixed(s.nonce, NONCE_SIZE, "share nonce")
            w.fixed(s.ciphertext, SHARE_CIPHERTEXT_SIZE, "share ciphertext")
        return w.done()

    @classmethod
    def from_bytes(cls, data: bytes) -> Advertisement:
        """Decode; SecAggFormatError unless ``data`` is exactly a canonical advertisement."""
        r = _Reader(data, Kind.ADVERTISEMENT)
        context, sender = r.header()
        mask_public_key = r.fixed(KEY_SIZE)
        seed_commitment = r.fixed(DIGEST_SIZE)
        shares = tuple(
            EncryptedShare(r.u32(), r.fixed(NONCE_SIZE), r.fixed(SHARE_CIPHERTEXT_SIZE))
            for _ in range(r.count(4 + NONCE_SIZE + SHARE_CIPHERTEXT_SIZE))
        )
        r.end()
        _strictly_sorted([s.recipient for s in shares], "share recipients")
        return cls(context, sender, mask_public_key, seed_commitment, shares)

    def digest(self) -> bytes:
        """SHA-256 of the canonical encoding."""
        return hashlib.sha256(self.to_bytes()).digest()

    def share_for(self, recipient: int) -> EncryptedShare | None:
        """The encrypted share addressed to ``recipient``, if any."""
        for s in self.shares:
            if s.recipient == recipient:
                return s
        return None


@dataclass(frozen=True, eq=False)
class MaskedInput:
    """Stage 2: y_i = x_i + PRG(b_i) + sum of the signed pairwise masks, in Z/2^32."""

    context: bytes
    sender: int
    values: RingVector

    def to_bytes(self) -> bytes:
        """The canonical encoding."""
        w = _Writer(Kind.MASKED_INPUT, self.context, self.sender)
        w.u32(len(self.values))
        w.raw(np.ascontiguousarray(self.values, dtype="<u4").tobytes())
        return w.done()

    @classmethod
    def from_bytes(cls, data: bytes) -> MaskedInput:
        """Decode; SecAggFormatError unless ``data`` is exactly a canonical masked input."""
        r = _Reader(data, Kind.MASKED_INPUT)
        context, sender = r.header()
        length = r.count(4)
        values = np.frombuffer(r.fixed(4 * length), dtype="<u4").astype(np.uint32)
        r.end()
        return cls(context, sender, values)

    def digest(self) -> bytes:
        """SHA-256 of the canonical encoding."""
        return hashlib.sha256(self.to_bytes()).digest()


@dataclass(frozen=True)
class RevealedShare:
    """A survivor's Shamir share (x = the survivor's index) of one of ``owner``'s secrets."""

    owner: int
    kind: RevealKind
    y: int


@dataclass(frozen=True)
class UnmaskingShares:
    """Stage 3: a survivor's revealed shares (sorted by owner, then kind) and the owners whose encrypted share
    to it failed authentication (``rejected``)."""

    context: bytes
    sender: int
    reveals: tuple[RevealedShare, ...]
    rejected: tuple[int, ...] = ()

    def to_bytes(self) -> bytes:
        """The canonical encoding."""
        w = _Writer(Kind.UNMASKING_SHARES, self.context, self.sender)
        _strictly_sorted([(r.owner, int(r.kind)) for r in self.reveals], "revealed shares")
        _strictly_sorted(list(self.rejected), "rejected owners")
        w.u32(len(self.reveals))
        for rv in self.reveals:
            if not 0 <= rv.y < PRIME:
                raise SecAggFormatError(f"revealed share of participant {rv.owner} is outside the field")
            w.u32(rv.owner)
            w.raw(bytes([int(rv.kind)]))
            w.raw(rv.y.to_bytes(Y_SIZE, "big"))
        w.u32(len(self.rejected))
        for owner in self.rejected:
            w.u32(owner)
        return w.done()

    @classmethod
    def from_bytes(cls, data: bytes) -> UnmaskingShares:
        """Decode; SecAggFormatError unless ``data`` is exactly canonical unmasking shares."""
        r = _Reader(data, Kind.UNMASKING_SHARES)
        context, sender = r.header()
        reveals = []
        for _ in range(r.count(5 + Y_SIZE)):
            owner = r.u32()
            kind_byte = r.fixed(1)[0]
            try:
                kind = RevealKind(kind_byte)
            except ValueError as err:
                raise SecAggFormatError(f"unknown revealed-share kind {kind_byte}") from err
            y = int.from_bytes(r.fixed(Y_SIZE), "big")
            if y >= PRIME:
                raise SecAggFormatError(f"revealed share of participant {owner} is outside the field")
            reveals.append(RevealedShare(owner, kind, y))
        rejected = tuple(r.u32() for _ in range(r.count(4)))
        r.end()
        _strictly_sorted([(rv.owner, int(rv.kind)) for rv in reveals], "revealed shares")
        _strictly_sorted(list(rejected), "rejected owners")
        return cls(context, sender, tuple(reveals), rejected)

    def digest(self) -> bytes:
        """SHA-256 of the canonical encoding."""
        return hashlib.sha256(self.to_bytes()).digest()


Record = Advertisement | MaskedInput | UnmaskingShares


def decode_record(data: bytes) -> Record:
    """Decode any secure-aggregation record by its kind byte; SecAggFormatError for anything else."""
    if len(data) < len(MAGIC) + 2 or data[: len(MAGIC)] != MAGIC:
        raise SecAggFormatError(f"not a secure-aggregation record (no {MAGIC!r} magic)")
    kind = data[len(MAGIC)]
    if kind == Kind.ADVERTISEMENT:
        return Advertisement.from_bytes(data)
    if kind == Kind.MASKED_INPUT:
        return MaskedInput.from_bytes(data)
    if kind == Kind.UNMASKING_SHARES:
        return UnmaskingShares.from_bytes(data)
    raise SecAggFormatError(f"unknown secure-aggregation record kind {kind}")


class _Writer:
    def __init__(self, kind: Kind, context: bytes, sender: int) -> None:
        self._parts = [MAGIC, bytes([int(kind), VERSION])]
        self.fixed(context, DIGEST_SIZE, "context digest")
        self.u32(sender)

    def fixed(self, value: bytes, size: int, what: str) -> None:
        if len(value) != size:
            raise SecAggFormatError(f"{what} is {size} bytes, got {len(value)}")
        self._parts.append(bytes(value))

    def raw(self, value: bytes) -> None:
        self._parts.append(value)

    def u32(self, value: int) -> None:
        if not 0 <= value < 2**32:
            raise SecAggFormatError(f"{value} does not fit an unsigned 32-bit field")
        self._parts.append(struct.pack(">I", value))

    def done(self) -> bytes:
        return b"".join(self._parts)


class _Reader:
    def __init__(self, data: bytes, kind: Kind) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._kind = kind
        if self.fixed(len(MAGIC)) != MAGIC:
            raise SecAggFormatError(f"not a secure-aggregation record (no {MAGIC!r} magic)")
        kind_byte, version = self.fixed(2)
        if kind_byte != int(kind):
            raise SecAggFormatError(f"expected a record of kind {kind.name.lower()}, got kind {kind_byte}")
        if version != VERSION:
            raise SecAggFormatError(f"unsupported secure-aggregation record version {version}")

    def header(self) -> tuple[bytes, int]:
        return self.fixed(DIGEST_SIZE), self.u32()

    def fixed(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise SecAggFormatError(f"truncated {self._kind.name.lower()} record ({len(self._data)} bytes)")
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.fixed(4))[0]
        return value

    def count(self, item_size: int) -> int:
        n = self.u32()
        if n * item_size > len(self._data) - self._pos:
            raise SecAggFormatError(f"{self._kind.name.lower()} record announces {n} items but is too short")
        return n

    def end(self) -> None:
        if self._pos != len(self._data):
            raise SecAggFormatError(f"{len(self._data) - self._pos} trailing byte(s) after a {self._kind.name.lower()} record")


def _strictly_sorted(keys: Sequence[int] | Sequence[tuple[int, int]], what: str) -> None:
    ordered = [k if isinstance(k, tuple) else (k,) for k in keys]
    for a, b in zip(ordered, ordered[1:], strict=False):
        if not a < b:
            raise SecAggFormatError(f"{what} must be strictly sorted without duplicates")

"""Fixed-point quantisation into the ring Z/2^32 and the mask PRG.

Quantisation: a float vector is clipped to [-R, R] (values outside are clipped and counted) and
mapped to q = round(x * scale) mod 2^32 (two's complement). A sum of k quantised vectors is exact
in the ring and decodes without wrap-around while k * round(R * scale) <= 2^31 - 1;
:meth:`Quantiser.for_ring` picks scale = floor((2^31 - 1) / k_max) / R.

Error: each coordinate is rounded by at most 1/(2 scale), so the dequantised sum of k vectors is
within k / (2 scale) of the sum of the clipped floats, and the dequantised mean within
1 / (2 scale) = R / (2 floor((2^31 - 1) / k_max)) (about k_max * R / (2^32 - 2)) of their mean, plus
float64 rounding of the division.

PRG: a 32-byte seed is the key of ChaCha20 (``cryptography``'s ``algorithms.ChaCha20``) with a fixed
16-byte nonce per purpose (self mask, pairwise mask); the keystream read as little-endian uint32
is the mask. Masks are added mod 2^32 (numpy uint32 arithmetic wraps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from fedchain.errors import SecAggFormatError

RING_BITS: Final = 32
RING_HALF: Final = 2 ** (RING_BITS - 1)
SEED_SIZE: Final = 32
SELF_MASK_NONCE: Final = b"\x00\x00\x00\x00" + b"fcsa-selfmsk"
PAIR_MASK_NONCE: Final = b"\x00\x00\x00\x00" + b"fcsa-pairmsk"

RingVector = npt.NDArray[np.uint32]


@dataclass(frozen=True)
class Quantised:
    """A vector in the ring and how many of its coordinates were clipped to [-R, R]."""

    values: RingVector
    clipped: int


@dataclass(frozen=True)
class Quantiser:
    """Fixed-point coding with clipping range [-clip, clip] and ``scale`` ring units per unit of value."""

    clip: float
    scale: float

    def __post_init__(self) -> None:
        if not (self.clip > 0 and np.isfinite(self.clip)):
            raise SecAggFormatError(f"the clipping range must be a positive finite number, got {self.clip}")
        if not (self.scale > 0 and np.isfinite(self.scale)):
            raise SecAggFormatError(f"the quantisation scale must be a positive finite number, got {self.scale}")
        if not 1 <= self.clip * self.scale <= RING_HALF - 1:
            raise SecAggFormatError(f"clip * scale = {self.clip * self.scale} must be in 1..2^31 - 1 (the 2^32 ring)")

    @classmethod
    def for_ring(cls, clip: float, max_summands: int) -> Quantiser:
        """The finest coding whose sum of up to ``max_summands`` vectors never wraps around the ring."""
        if max_summands < 1:
            raise SecAggFormatError(f"max_summands must be at least 1, got {max_summands}")
        return cls(clip, ((RING_HALF - 1) // max_summands) / clip)

    @property
    def max_summands(self) -> int:
        """How many vectors can be summed before the ring wraps."""
        return (RING_HALF - 1) // int(np.rint(self.clip * self.scale))

    def mean_error_bound(self) -> float:
        """The largest |dequantised mean - mean of the clipped inputs| per coordinate: 1 / (2 scale)."""
        return 1.0 / (2.0 * self.scale)

    def quantise(self, values: npt.ArrayLike) -> Quantised:
        """Clip to [-clip, clip] and round to the ring; non-finite values are refused."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if not np.all(np.isfinite(x)):
            raise SecAggFormatError("cannot quantise NaN or infinite values")
        clipped = int(np.count_nonzero(np.abs(x) > self.clip))
        q = np.rint(np.clip(x, -self.clip, self.clip) * self.scale).astype(np.int64)
        return Quantised(q.astype(np.uint32), clipped)  # int64 -> uint32 keeps the low 32 bits (two's complement)

    def dequantise_sum(self, total: RingVector, count: int) -> npt.NDArray[np.float64]:
        """The float sum of ``count`` quantised vectors whose ring sum is ``total``."""
        if count > self.max_summands:
            raise SecAggFormatError(f"a sum of {count} vectors may wrap the ring (at most {self.max_summands})")
        return total.astype(np.uint32).view(np.int32).astype(np.float64) / self.scale

    def dequantise_mean(self, total: RingVector, count: int) -> npt.NDArray[np.float64]:
        """The float mean of ``count`` quantised vectors whose ring sum is ``total``."""
        if count < 1:
            raise SecAggFormatError("the mean of no vectors is undefined")
        return self.dequantise_sum(total, count) / count


def expand(seed: bytes, nonce: bytes, length: int) -> RingVector:
    """``length`` uint32 of ChaCha20 keystream under key ``seed`` and the 16-byte ``nonce``."""
    if len(seed) != SEED_SIZE:
        raise SecAggFormatError(f"a PRG seed is {SEED_SIZE} bytes, got {len(seed)}")
    encryptor = Cipher(algorithms.ChaCha20(seed, nonce), mode=None).encryptor()
    stream = encryptor.update(bytes(4 * length))
    return np.frombuffer(stream, dtype="<u4").astype(np.uint32)


def self_mask(seed: bytes, length: int) -> RingVector:
    """PRG(b_i): the self mask of seed b_i."""
    return expand(seed, SELF_MASK_NONCE, length)


def pair_mask(seed: bytes, length: int) -> RingVector:
    """PRG(s_ij): the pairwise mask of seed s_ij."""
    return expand(seed, PAIR_MASK_NONCE, length)


def pair_sign(i: int, j: int) -> int:
    """+1 when i < j (i adds PRG(s_ij)), -1 when i > j (i subtracts it)."""
    if i == j:
        raise SecAggFormatError(f"participant {i} has no pairwise mask with itself")
    return 1 if i < j else -1


def apply(acc: RingVector, mask: RingVector, sign: int) -> None:
    """acc += sign * mask (mod 2^32), in place."""
    if sign > 0:
        np.add(acc, mask, out=acc)
    else:
        np.subtract(acc, mask, out=acc)

"""Shamir secret sharing of 32-byte secrets over the prime field GF(2^521 - 1).

A secret is read as a big-endian integer below 2^256, the constant term of a random polynomial of
degree t - 1 over GF(p), p = 2^521 - 1 (a Mersenne prime). Share x-coordinates are participant
indices 1..n; any t shares reconstruct the secret by Lagrange interpolation at 0, t - 1 shares leave
every secret equally likely. Shares are encoded as fixed-width big-endian ``y`` (66 bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from fedchain.errors import ShamirError

PRIME = 2**521 - 1
SECRET_SIZE = 32
Y_SIZE = 66  # ceil(521 / 8)
MAX_X = 2**32 - 1

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True)
class Share:
    """One point (x, y) of a sharing polynomial; x is the holder's participant index (1..2^32-1)."""

    x: int
    y: int

    def __post_init__(self) -> None:
        if not 1 <= self.x <= MAX_X:
            raise ShamirError(f"share x-coordinate {self.x} is outside 1..{MAX_X}")
        if not 0 <= self.y < PRIME:
            raise ShamirError(f"share y-coordinate of x={self.x} is outside the field GF(2^521 - 1)")

    def y_bytes(self) -> bytes:
        """The y-coordinate as 66 big-endian bytes."""
        return self.y.to_bytes(Y_SIZE, "big")


def field_element(rng: RandomBytes) -> int:
    """A uniform element of GF(p) drawn from ``rng`` by rejection sampling."""
    while True:
        value = int.from_bytes(rng(Y_SIZE), "big") & PRIME  # keep the low 521 bits
        if value < PRIME:
            return value


def split(secret: bytes, t: int, xs: Sequence[int], rng: RandomBytes) -> tuple[Share, ...]:
    """Share a 32-byte ``secret`` with threshold ``t`` at the x-coordinates ``xs`` (one share per x, in order)."""
    if len(secret) != SECRET_SIZE:
        raise ShamirError(f"a secret is {SECRET_SIZE} bytes, got {len(secret)}")
    if not 1 <= t <= len(xs):
        raise ShamirError(f"threshold {t} must be between 1 and the number of shares {len(xs)}")
    _check_distinct(xs)
    coefficients = [int.from_bytes(secret, "big")] + [field_element(rng) for _ in range(t - 1)]
    return tuple(Share(x, evaluate(coefficients, x)) for x in xs)


def evaluate(coefficients: Sequence[int], x: int) -> int:
    """The polynomial with ``coefficients`` (constant term first) at ``x``, mod p (Horner)."""
    acc = 0
    for c in reversed(coefficients):
        acc = (acc * x + c) % PRIME
    return acc


def combine(shares: Sequence[Share], t: int | None = None) -> bytes:
    """The 32-byte secret from ``shares`` (at least ``t`` when given; all of them are interpolated)."""
    if not shares:
        raise ShamirError("no shares to combine")
    if t is not None and len(shares) < t:
        raise ShamirError(f"{len(shares)} share(s) cannot reconstruct a secret of threshold {t}")
    xs = tuple(s.x for s in shares)
    _check_distinct(xs)
    value = interpolate(shares, 0)
    if value >= 2 ** (8 * SECRET_SIZE):
        raise ShamirError("the shares do not reconstruct a 32-byte secret (inconsistent or wrong threshold)")
    return value.to_bytes(SECRET_SIZE, "big")


def interpolate(shares: Sequence[Share], at: int) -> int:
    """The value at ``at`` of the polynomial of degree len(shares) - 1 through ``shares`` (Lagrange, mod p)."""
    coefficients = _lagrange(tuple(s.x for s in shares), at % PRIME)
    return sum(c * s.y for c, s in zip(coefficients, shares, strict=True)) % PRIME


@lru_cache(maxsize=4096)
def _lagrange(xs: tuple[int, ...], at: int) -> tuple[int, ...]:
    out = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num = num * (at - xj) % PRIME
                den = den * (xi - xj) % PRIME
        out.append(num * pow(den, -1, PRIME) % PRIME)
    return tuple(out)


def _check_distinct(xs: Sequence[int]) -> None:
    seen: set[int] = set()
    for x in xs:
        if x in seen:
            raise ShamirError(f"duplicate share x-coordinate {x}")
        if not 1 <= x <= MAX_X:
            raise ShamirError(f"share x-coordinate {x} is outside 1..{MAX_X}")
        seen.add(x)

"""Typed identifiers shared by every layer. No web3, no torch."""

from __future__ import annotations

from typing import NewType

RoundId = NewType("RoundId", int)
Address = NewType("Address", str)  # EIP-55 checksummed 0x-address
Cid = NewType("Cid", str)  # CIDv1, base32 multibase ("b...")
Digest = NewType("Digest", bytes)  # 32-byte SHA-256 digest
Wei = NewType("Wei", int)

DIGEST_SIZE = 32
ZERO_DIGEST = Digest(b"\x00" * DIGEST_SIZE)


def digest_hex(d: bytes) -> str:
    """0x-prefixed lowercase hex of a digest."""
    return "0x" + bytes(d).hex()


def parse_digest(text: str) -> Digest:
    """Parse a 0x-prefixed (or bare) 64-hex-digit digest; raise ValueError otherwise."""
    body = text[2:] if text.startswith(("0x", "0X")) else text
    if len(body) != 2 * DIGEST_SIZE:
        raise ValueError(f"digest must be {2 * DIGEST_SIZE} hex digits, got {len(body)}: {text!r}")
    try:
        return Digest(bytes.fromhex(body))
    except ValueError as err:
        raise ValueError(f"digest is not hex: {text!r}") from err

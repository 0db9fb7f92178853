"""What a round is bound to: the federation (chain id, contract address), the round id, the members
with their registered long-term X25519 keys, and the task's secure-aggregation parameters."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from fedchain.errors import SecAggFormatError
from fedchain.secagg.graph import NeighbourGraph, harary_graph, suggested_degree
from fedchain.secagg.keys import check_public_key, context_digest
from fedchain.secagg.masking import Quantiser
from fedchain.types import Address, RoundId


@dataclass(frozen=True)
class Member:
    """A participant of the round: its Shamir x-coordinate (index >= 1), address and registered X25519 key."""

    index: int
    address: Address
    public_key: bytes

    def __post_init__(self) -> None:
        if self.index < 1:
            raise SecAggFormatError(f"participant indices start at 1, got {self.index} for {self.address}")
        check_public_key(self.public_key, f"participant {self.index} ({self.address})")


@dataclass(frozen=True)
class SecAggParams:
    """Task parameters: threshold t, the model's dimension, the fixed-point coding and the neighbour graph.

    ``degree`` None is the complete graph; otherwise the even degree k of the SecAgg+ Harary graph.
    ``graph_seed`` is public (e.g. the round's opening block hash)."""

    threshold: int
    dimension: int
    quantiser: Quantiser
    degree: int | None = None
    graph_seed: bytes = field(default=b"\x00" * 32)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise SecAggFormatError(f"the threshold must be at least 1, got {self.threshold}")
        if self.dimension < 1:
            raise SecAggFormatError(f"the dimension must be at least 1, got {self.dimension}")
        if len(self.graph_seed) != 32:
            raise SecAggFormatError(f"the graph seed is 32 bytes, got {len(self.graph_seed)}")

    @classmethod
    def suggested(cls, n: int, dimension: int, quantiser: Quantiser, graph_seed: bytes = b"\x00" * 32) -> SecAggParams:
        """Degree from :func:`~fedchain.secagg.graph.suggested_degree` and t = a strict majority of each share set."""
        degree = suggested_degree(n)
        return cls((degree + 1) // 2 + 1, dimension, quantiser, None if degree >= n - 1 else degree, graph_seed)


@dataclass(frozen=True)
class RoundContext:
    """One secure-aggregation round of one federation; ``digest`` binds every key and share to it."""

    chain_id: int
    contract: Address
    round_id: RoundId
    members: tuple[Member, ...]
    params: SecAggParams

    def __post_init__(self) -> None:
        indices = [m.index for m in self.members]
        if len(set(indices)) != len(indices):
            raise SecAggFormatError("two members share a participant index")
        if list(indices) != sorted(indices):
            raise SecAggFormatError("members must be sorted by participant index")
        smallest = min(len(self.graph.holders(i)) for i in indices) if indices else 0
        if self.params.threshold > smallest:
            raise SecAggFormatError(f"threshold {self.params.threshold} exceeds the smallest share set ({smallest})")
        if 2 * self.params.threshold <= smallest:
            raise SecAggFormatError(
                f"threshold {self.params.threshold} must be a strict majority of each share set ({smallest}): "
                "otherwise an aggregator can gather both a seed and a key share set for the same participant"
            )
        if len(self.members) > self.params.quantiser.max_summands:
            raise SecAggFormatError(
                f"{len(self.members)} members exceed the {self.params.quantiser.max_summands} summands the coding allows"
            )

    @cached_property
    def digest(self) -> bytes:
        """SHA-256 binding chain id, contract address and round id (HKDF salt, AEAD associated data)."""
        return context_digest(self.chain_id, _address_bytes(self.contract), int(self.round_id))

    @cached_property
    def graph(self) -> NeighbourGraph:
        """The round's neighbour graph (complete, or the seeded Harary graph of degree k)."""
        indices = [m.index for m in self.members]
        degree = self.params.degree if self.params.degree is not None else len(indices)
        return harary_graph(indices, degree, int(self.round_id), self.params.graph_seed)

    def member(self, index: int) -> Member:
        """The member with participant index ``index``."""
        for m in self.members:
            if m.index == index:
                return m
        raise SecAggFormatError(f"participant {index} is not a member of round {self.round_id}")

    def is_member(self, index: int) -> bool:
        """Whether ``index`` is a member of the round."""
        return any(m.index == index for m in self.members)


def members_from(addresses: Sequence[Address], public_keys: Sequence[bytes]) -> tuple[Member, ...]:
    """Members indexed 1..n in the given order (e.g. sorted by address)."""
    if len(addresses) != len(public_keys):
        raise SecAggFormatError(f"{len(addresses)} addresses but {len(public_keys)} public keys")
    return tuple(Member(i + 1, a, k) for i, (a, k) in enumerate(zip(addresses, public_keys, strict=True)))


def _address_bytes(address: str) -> bytes:
    body = address[2:] if address.startswith(("0x", "0X")) else address
    try:
        raw = bytes.fromhex(body)
    except ValueError as err:
        raise SecAggFormatError(f"contract address is not hex: {address!r}") from err
    if len(raw) != 20:
        raise SecAggFormatError(f"a contract address is 20 bytes, got {len(raw)}: {address!r}")
    return raw


def seed_commitment(context: bytes, index: int, seed: bytes) -> bytes:
    """SHA-256 commitment to participant ``index``'s self-mask seed b_i, published in its advertisement."""
    return hashlib.sha256(b"fedchain/secagg/v1/seed-commitment" + context + index.to_bytes(4, "big") + seed).digest()

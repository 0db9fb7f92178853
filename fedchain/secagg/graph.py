"""The neighbour graph of a round: who shares keys and pairwise masks with whom.

Small federations use the complete graph (Bonawitz et al.); large ones the SecAgg+ k-regular graph
(Bell et al. CCS 2020): a Harary graph H(k, n) — each participant linked to the k/2 nearest on
either side of a ring — laid on a permutation of the participants drawn from the round's public seed.
The graph is a pure function of (participant indices, round id, seed, degree), so every participant,
the aggregator and the auditor derive the same one.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from fedchain.errors import SecAggFormatError


@dataclass(frozen=True)
class NeighbourGraph:
    """An undirected graph on participant indices; ``neighbours[i]`` is sorted and never contains i."""

    nodes: tuple[int, ...]
    neighbours: dict[int, tuple[int, ...]]

    def of(self, index: int) -> tuple[int, ...]:
        """The neighbours of participant ``index``."""
        try:
            return self.neighbours[index]
        except KeyError as err:
            raise SecAggFormatError(f"participant {index} is not in the round's graph") from err

    def holders(self, index: int) -> tuple[int, ...]:
        """Who holds a share of ``index``'s secrets: its neighbours and itself, sorted."""
        return tuple(sorted((*self.of(index), index)))

    @property
    def degree(self) -> int:
        """The smallest degree of a node (k for a k-regular graph)."""
        return min(len(v) for v in self.neighbours.values())


def complete_graph(nodes: Sequence[int]) -> NeighbourGraph:
    """Every participant is every other's neighbour."""
    ordered = _checked(nodes)
    return NeighbourGraph(ordered, {i: tuple(j for j in ordered if j != i) for i in ordered})


def harary_graph(nodes: Sequence[int], degree: int, round_id: int, seed: bytes) -> NeighbourGraph:
    """The k-regular Harary graph H(degree, n) on a permutation of ``nodes`` seeded by (seed, round id).

    ``degree`` must be even and below n; a degree of n - 1 or more gives the complete graph."""
    ordered = _checked(nodes)
    n = len(ordered)
    if degree >= n - 1:
        return complete_graph(ordered)
    if degree < 2 or degree % 2:
        raise SecAggFormatError(f"the neighbour degree must be an even number of at least 2, got {degree}")
    ring = permutation(ordered, round_id, seed)
    half = degree // 2
    links: dict[int, set[int]] = {i: set() for i in ordered}
    for pos, node in enumerate(ring):
        for step in range(1, half + 1):
            other = ring[(pos + step) % n]
            links[node].add(other)
            links[other].add(node)
    return NeighbourGraph(ordered, {i: tuple(sorted(v)) for i, v in links.items()})


def suggested_degree(n: int) -> int:
    """An even degree of about 3 log2(n) (SecAgg+ takes k = O(log n)); n - 1 (complete) for n <= 32."""
    if n <= 32:
        return max(n - 1, 0)
    k = math.ceil(3 * math.log2(n))
    return k + (k % 2)


def permutation(nodes: Sequence[int], round_id: int, seed: bytes) -> tuple[int, ...]:
    """A Fisher-Yates shuffle of ``nodes`` driven by SHA-256(seed, round id, counter) (deterministic)."""
    out = list(nodes)
    counter = 0

    def below(bound: int) -> int:
        nonlocal counter
        limit = (2**64 // bound) * bound
        while True:
            block = hashlib.sha256(b"fedchain/secagg/v1/graph" + seed + struct.pack(">QQ", round_id, counter)).digest()
            counter += 1
            value = int.from_bytes(block[:8], "big")
            if value < limit:
                return value % bound

    for i in range(len(out) - 1, 0, -1):
        j = below(i + 1)
        out[i], out[j] = out[j], out[i]
    return tuple(out)


def _checked(nodes: Sequence[int]) -> tuple[int, ...]:
    ordered = tuple(sorted(nodes))
    if len(set(ordered)) != len(ordered):
        raise SecAggFormatError("duplicate participant index in the graph")
    if ordered and ordered[0] < 1:
        raise SecAggFormatError(f"participant indices start at 1, got {ordered[0]}")
    return ordered

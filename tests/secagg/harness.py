"""A small federation for the secure-aggregation tests: members with long-term keys, float updates, a context."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from fedchain.secagg.context import RoundContext, SecAggParams, members_from
from fedchain.secagg.keys import public_key_of
from fedchain.secagg.masking import Quantiser, RingVector
from fedchain.types import Address, RoundId

CONTRACT = Address("0x" + "ab" * 20)


@dataclass
class Federation:
    ctx: RoundContext
    long_term: dict[int, bytes]
    floats: dict[int, np.ndarray]
    updates: dict[int, RingVector]
    rng: random.Random

    def plain_sum(self, survivors: tuple[int, ...]) -> RingVector:
        total = np.zeros(self.ctx.params.dimension, np.uint32)
        for i in survivors:
            total += self.updates[i]
        return total


def federation(
    n: int,
    d: int = 16,
    *,
    threshold: int | None = None,
    degree: int | None = None,
    round_id: int = 1,
    chain_id: int = 31337,
    contract: Address = CONTRACT,
    seed: int = 0,
) -> Federation:
    rng = random.Random(seed)
    long_term = {i: rng.randbytes(32) for i in range(1, n + 1)}
    members = members_from([Address(f"0x{i:040x}") for i in range(1, n + 1)], [public_key_of(long_term[i]) for i in long_term])
    quantiser = Quantiser.for_ring(clip=1.0, max_summands=max(n, 2))
    if threshold is None:
        holders = n if degree is None else degree + 1
        threshold = holders // 2 + 1
    params = SecAggParams(threshold, d, quantiser, degree, b"\x07" * 32)
    ctx = RoundContext(chain_id, contract, RoundId(round_id), members, params)
    gen = np.random.default_rng(seed)
    floats = {i: gen.uniform(-1.2, 1.2, d).astype(np.float32) for i in long_term}
    updates = {i: quantiser.quantise(floats[i]).values for i in long_term}
    return Federation(ctx, long_term, floats, updates, rng)


def other_context(fed: Federation, round_id: int = 2, contract: Address = CONTRACT, chain_id: int = 31337) -> RoundContext:
    return RoundContext(chain_id, contract, RoundId(round_id), fed.ctx.members, fed.ctx.params)

"""A whole round in one process (tests, benchmarks, simulations): every participant's stages in turn, with
participants dropping out before advertising, after advertising or after masking, then the unmasking."""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from fedchain.secagg.context import RoundContext
from fedchain.secagg.masking import RingVector
from fedchain.secagg.messages import Advertisement, MaskedInput, UnmaskingShares
from fedchain.secagg.protocol import UnmaskResult, accept_advertisements, advertise, mask_input, unmask, unmask_shares
from fedchain.secagg.shamir import RandomBytes


@dataclass(frozen=True, eq=False)
class InProcessRound:
    """The public records of a round run in process, its unmasking, and the time each party spent."""

    advertisements: tuple[Advertisement, ...]
    masked_inputs: tuple[MaskedInput, ...]
    unmasking: tuple[UnmaskingShares, ...]
    result: UnmaskResult
    client_seconds: Mapping[int, float]
    unmask_seconds: float

    def client_bytes(self, index: int) -> int:
        """Bytes participant ``index`` published: advertisement, masked input and unmasking shares."""
        total = 0
        for group in (self.advertisements, self.masked_inputs, self.unmasking):
            total += sum(len(r.to_bytes()) for r in group if r.sender == index)
        return total


def run_round(
    ctx: RoundContext,
    long_term_keys: Mapping[int, bytes],
    updates: Mapping[int, RingVector],
    *,
    drop_before_advertising: Collection[int] = (),
    drop_after_advertising: Collection[int] = (),
    drop_after_masking: Collection[int] = (),
    rng: RandomBytes = os.urandom,
) -> InProcessRound:
    """Run the round for the participants in ``updates`` (each with its long-term private key)."""
    seconds: dict[int, float] = {}
    advertising = [i for i in sorted(updates) if i not in drop_before_advertising]
    ads = []
    secrets = {}
    for i in advertising:
        start = time.perf_counter()
        ad, secret = advertise(ctx, i, long_term_keys[i], rng)
        seconds[i] = time.perf_counter() - start
        ads.append(ad)
        secrets[i] = secret
    roster = accept_advertisements(ctx, ads)
    masking = [i for i in advertising if i not in drop_after_advertising and i in roster.advertisements]
    masked = []
    for i in masking:
        start = time.perf_counter()
        masked.append(mask_input(ctx, secrets[i], roster, updates[i]))
        seconds[i] += time.perf_counter() - start
    survivors = frozenset(m.sender for m in masked)
    revealing = [i for i in masking if i not in drop_after_masking]
    records = []
    for i in revealing:
        start = time.perf_counter()
        records.append(unmask_shares(ctx, secrets[i], long_term_keys[i], roster, survivors))
        seconds[i] += time.perf_counter() - start
    start = time.perf_counter()
    result = unmask(ctx, ads, masked, records)
    elapsed = time.perf_counter() - start
    return InProcessRound(tuple(ads), tuple(masked), tuple(records), result, seconds, elapsed)

"""Secure-aggregation rounds on the devnet and the store for the engine and audit tests: a federation whose task
has ``secagg``, and participants driven stage by stage with the protocol's own functions (advertise, mask, reveal),
each posting its records through the store and the chain as a participant agent does."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedchain.codec.canonical import sha256_digest
from fedchain.protocol.blobs import GlobalModel, decode_global
from fedchain.protocol.secure import (
    SecAggConfig,
    fetch_round_records,
    index_of,
    masked_metadata_digest,
    model_dimension,
    quantise_delta,
    round_context,
    round_members,
)
from fedchain.secagg.context import RoundContext
from fedchain.secagg.messages import UnmaskingShares
from fedchain.secagg.protocol import Roster, RoundSecrets, accept_advertisements, advertise, mask_input, unmask_shares
from fedchain.secagg.shamir import PRIME
from fedchain.sim.federation import secagg_key
from fedchain.types import RoundId
from tests.protocol.harness import Fed, TaskFiles, make_fed, make_task_files

CLIP = 5.0
PHASE_S = 60  # advertise and unmask phases
COMMIT_S = 120


def secure_task_files(tmp: Path, n: int, *, min_updates: int = 2) -> TaskFiles:
    """A breast_cancer task for ``n`` participants with secure aggregation (uniform weights, clip 5)."""
    files = make_task_files(tmp, clients=n, min_updates=min_updates, commit_duration=COMMIT_S, robust="none")
    doc = dataclasses.replace(
        files.doc,
        strategy=dataclasses.replace(files.doc.strategy, params={**files.doc.strategy.params, "uniform_weights": 1}),
        secagg=SecAggConfig(clip=CLIP, advertise_duration=PHASE_S, unmask_duration=PHASE_S),
    )
    return dataclasses.replace(files, doc=doc)


def make_secure_fed(env: Any, store: Any, tmp: Path, n: int, *, min_updates: int = 2,
                    dishonest: str | None = None) -> Fed:
    """A federation of ``n`` admitted participants under a breast_cancer task with secure aggregation."""
    return make_fed(env, store, secure_task_files(tmp, n, min_updates=min_updates), tmp, dishonest=dishonest)


Tamper = Callable[[UnmaskingShares], UnmaskingShares]


@dataclass
class SecureRound:
    """One open secure round and its participants (by their position in ``fed.participants``), driven by hand."""

    fed: Fed
    round_id: RoundId
    ctx: RoundContext
    base: GlobalModel
    deltas: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    secrets: dict[int, RoundSecrets] = field(default_factory=dict)

    @classmethod
    def attach(cls, fed: Fed, round_id: RoundId) -> SecureRound:
        """The round's context as every participant derives it from the chain."""
        reader = fed.reader
        rnd = reader.round(round_id)
        base = decode_global(fed.store.get(rnd.base_model_cid))
        members = round_members(reader.history(to_block=rnd.opened_block), rnd)
        chain_id, contract = reader.federation_id()
        assert fed.doc.secagg is not None
        ctx = round_context(chain_id, contract, rnd, members, fed.doc.secagg, model_dimension(base))
        return cls(fed, round_id, ctx, base)

    def index(self, i: int) -> int:
        """Participant ``i``'s member index in the round."""
        found = index_of(self.ctx, self.fed.env.accounts.participants[i].address)
        assert found is not None
        return found

    def _ledger(self, i: int) -> Any:
        return self.fed.participants[i].ledger

    def _key(self, i: int) -> bytes:
        return secagg_key(self.fed.env.accounts.participants[i])

    def advertise(self, who: Sequence[int]) -> None:
        """Participants ``who`` advertise (blob to the store, digest and CID on chain)."""
        for i in who:
            ad, secrets = advertise(self.ctx, self.index(i), self._key(i))
            self.secrets[i] = secrets
            blob = ad.to_bytes()
            self._ledger(i).post_advertisement(self.round_id, sha256_digest(blob), self.fed.store.put(blob))

    def roster(self) -> Roster:
        """U1 as the chain and the store show it."""
        ads = self.fed.reader.advertisements(self.round_id)
        records = fetch_round_records(self.fed.store, self.ctx, ads, [], [], window_s=5.0)
        return accept_advertisements(self.ctx, records.advertisements)

    def commit(self, who: Sequence[int], seed: int = 1) -> None:
        """Participants ``who`` commit masked inputs of small random deltas (kept in :attr:`deltas`)."""
        roster = self.roster()
        rng = np.random.default_rng(seed)
        for i in who:
            delta = {n: rng.normal(0.0, 0.01, np.shape(w)) for n, w in sorted(self.base.weights.items())}
            self.deltas[i] = delta
            assert self.fed.doc.secagg is not None
            masked = mask_input(self.ctx, self.secrets[i], roster, quantise_delta(delta, self.fed.doc.secagg))
            blob = masked.to_bytes()
            digest = sha256_digest(blob)
            samples = int(self.fed.clients[i].num_samples)
            meta = masked_metadata_digest(self.round_id, self.base_model_digest, digest, samples)
            self._ledger(i).commit_update(self.round_id, digest, self.fed.store.put(blob), samples, meta)

    @property
    def base_model_digest(self) -> Any:
        return self.fed.reader.round(self.round_id).base_model_digest

    def unmask(self, who: Sequence[int], tamper: Mapping[int, Tamper] | None = None) -> None:
        """Participants ``who`` post their unmasking shares (``tamper[i]`` rewrites participant i's record)."""
        roster = self.roster()
        survivors = [self.index_of_address(c.participant) for c in self.fed.reader.commitments(self.round_id)]
        for i in who:
            record = unmask_shares(self.ctx, self.secrets[i], self._key(i), roster, survivors)
            if tamper and i in tamper:
                record = tamper[i](record)
            blob = record.to_bytes()
            self._ledger(i).post_unmasking_shares(self.round_id, sha256_digest(blob), self.fed.store.put(blob))

    def pass_deadline(self, which: str) -> None:
        """Move the devnet's clock past the round's ``which`` deadline ("deadline" or "unmask_deadline") in a block."""
        env = self.fed.env
        deadline = int(getattr(self.fed.reader.round(self.round_id), which))
        env.conn.request("evm_increaseTime", [max(1, deadline - env.conn.block_timestamp() + 1)])
        env.conn.request("evm_mine")

    def index_of_address(self, address: str) -> int:
        """The member index of ``address``."""
        found = index_of(self.ctx, address)
        assert found is not None
        return found

    def expected(self, survivors: Sequence[int]) -> dict[str, np.ndarray]:
        """The base model plus the mean delta of participants ``survivors`` (server learning rate 1)."""
        return {n: np.asarray(w, np.float64) + np.mean([self.deltas[i][n] for i in survivors], axis=0)
                for n, w in self.base.weights.items()}


def lie_about(owner: int) -> Tamper:
    """A tamper that shifts the revealed share of member ``owner``'s secret by one (off its polynomial)."""

    def tamper(record: UnmaskingShares) -> UnmaskingShares:
        reveals = tuple(dataclasses.replace(rv, y=(rv.y + 1) % PRIME) if rv.owner == owner else rv for rv in record.reveals)
        assert reveals != record.reveals, f"the record reveals no share of {owner}"
        return dataclasses.replace(record, reveals=reveals)

    return tamper

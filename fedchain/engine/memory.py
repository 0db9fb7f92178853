"""The in-memory transport: every participant trained in this process, one after another, with
no chain and no blob store - the "plain FL" baseline and the engine of the learning benchmarks.

Participants train exactly as the ledger's participant agents do (the same task document, the
same :func:`~fedchain.protocol.training.train_participant`, the same per-participant seeds), and
the engine aggregates with the same code, so the figures measured here are those of the learning
itself and a ledger run only adds the ledger's costs.

A task with ``secagg`` runs each round through the secure-aggregation protocol in process
(:func:`fedchain.secagg.inprocess.run_round`: every participant advertises, masks its clipped,
quantised delta and reveals its shares, with keys derived here from its address) and aggregates the
unmasked sum with :func:`~fedchain.protocol.secure.secure_aggregate`, as the ledger's aggregator does;
``secagg_dropouts`` makes participants drop out after advertising or after masking.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from fedchain.codec.canonical import sha256_digest
from fedchain.engine.loop import Collected, OpenedRound, Published
from fedchain.errors import ConfigError, SecAggError, TrainingError
from fedchain.fl.attacks import AttackSpec
from fedchain.fl.privacy import AccountantInputs
from fedchain.fl.records import ClientState, ClientUpdate
from fedchain.ports import UpdateCommitment
from fedchain.protocol.blobs import GlobalModel, decode_global, initial_global
from fedchain.protocol.rounds import RoundAggregate
from fedchain.protocol.secure import RoundRecords, SecureAggregate, model_dimension, quantise_delta, secure_aggregate
from fedchain.protocol.task import TaskDocument
from fedchain.protocol.training import train_participant, training_seed
from fedchain.secagg.context import Member, RoundContext
from fedchain.secagg.inprocess import run_round
from fedchain.secagg.keys import long_term_private_key, public_key_of
from fedchain.types import ZERO_DIGEST, Address, Cid, Digest, RoundId

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class MemoryParticipant:
    """One simulated participant: its address, its local data, and an attack it plays (if any)."""

    address: Address
    x: np.ndarray
    y: np.ndarray
    attack: AttackSpec | None = None


SecAggDropouts = Callable[[RoundId], tuple[Collection[Address], Collection[Address]]]
"""Who drops out of a secure round in memory: (after advertising, after masking) by address."""


class InMemoryTransport:
    """Carries rounds between participants held in this process.

    A participant whose local training fails (a poisoned global model can make it diverge) sits
    the round out. Client state (SCAFFOLD's control variate c_i) is kept only when the
    participant's update was included in the aggregate, so that the server's c stays the mean of
    the clients' c_i."""

    def __init__(self, doc: TaskDocument, participants: Sequence[MemoryParticipant], *,
                 secagg_dropouts: SecAggDropouts | None = None) -> None:
        if not participants:
            raise ConfigError("an in-memory federation needs at least one participant")
        if doc.secagg is not None and len(participants) < 2:
            raise ConfigError(f"a secure-aggregation task (secagg) needs at least 2 participants, got {len(participants)}")
        addresses = [p.address.lower() for p in participants]
        if len(set(addresses)) != len(addresses):
            raise ConfigError("participant addresses must be distinct")
        self.doc = doc
        self.participants = tuple(sorted(participants, key=lambda p: p.address.lower()))
        blob = initial_global(doc.spec(), doc.seed)
        self._model: GlobalModel = decode_global(blob)
        self._digest = sha256_digest(blob)
        self._round = 0
        self._states: dict[str, ClientState] = {}
        self._pending: dict[str, ClientState] = {}
        self._spent: dict[str, list[AccountantInputs]] = {}  # under a privacy policy: each one's rounds so far
        # secure aggregation: each participant's long-term X25519 key (derived from its address) and member entry
        self._keys = {i + 1: long_term_private_key(sha256_digest(b"fedchain/in-memory/" + p.address.lower().encode()))
                      for i, p in enumerate(self.participants)}
        self._members = tuple(Member(i + 1, p.address, public_key_of(self._keys[i + 1]))
                              for i, p in enumerate(self.participants))
        self.secagg_dropouts = secagg_dropouts

    @property
    def model(self) -> GlobalModel:
        """The current global model."""
        return self._model

    def _affordable(self, address: str) -> bool:
        """Whether the participant can afford one more round under the privacy policy (True without one)."""
        from fedchain.fl.privacy import epsilon, epsilon_fixed

        policy = self.doc.privacy
        if policy is None:
            return True
        history = [*self._spent.get(address.lower(), []), policy.round_inputs(self.doc.local_epochs())]
        return epsilon_fixed(epsilon(history)) <= policy.budget_fixed()

    def client_state(self, address: str) -> ClientState | None:
        """The client state participant ``address`` holds now (None before its first inclusion)."""
        return self._states.get(address.lower())

    def open_round(self) -> OpenedRound:
        """The next round, on the current global model."""
        self._round += 1
        return OpenedRound(RoundId(self._round), self._model, self._digest, self.doc.strategy_config(),
                           int(self.doc.min_updates), self.doc.privacy)

    def collect(self, opened: OpenedRound, timeout_s: float | None = None) -> Collected:
        """Train every participant on the round's base model (there is nothing to wait for)."""
        updates: list[ClientUpdate] = []
        sat_out = 0
        self._pending.clear()
        for p in self.participants:
            key = p.address.lower()
            if not self._affordable(key):
                log.info("round %d: participant %s sits out: the next round would exceed its privacy budget",
                         opened.round_id, p.address)
                sat_out += 1
                continue
            try:
                update, new_state, _ = train_participant(
                    self.doc,
                    round_id=opened.round_id,
                    participant=p.address,
                    base=opened.base,
                    base_model_digest=opened.base_digest,
                    x=p.x,
                    y=p.y,
                    seed=training_seed(self.doc.seed, int(opened.round_id), p.address),
                    client_state=self._states.get(key),
                    attack=p.attack,
                )
            except TrainingError as err:
                log.info("round %d: participant %s sits out: %s", opened.round_id, p.address, err)
                sat_out += 1
                continue
            self._pending[key] = new_state
            updates.append(update)
            if self.doc.privacy is not None:  # released, so spent, whether or not the aggregate includes it
                self._spent.setdefault(key, []).append(self.doc.privacy.round_inputs(self.doc.local_epochs()))
        if self.doc.secagg is not None:
            return self._secure(opened, updates, sat_out)
        return Collected(tuple(updates), (), len(updates), sat_out)

    def _secure(self, opened: OpenedRound, updates: Sequence[ClientUpdate], sat_out: int) -> Collected:
        """The round through the secure-aggregation protocol in process: the participants that trained mask their
        deltas, the survivors reveal, and the unmasked sum is applied to the base model."""
        config = self.doc.secagg
        assert config is not None
        rid = opened.round_id
        params = config.params(len(self._members), model_dimension(opened.base), bytes(opened.base_digest))
        ctx = RoundContext(0, Address("0x" + "00" * 20), rid, self._members, params)
        trained = {u.participant.lower(): u for u in updates}
        inputs = {m.index: quantise_delta(trained[m.address.lower()].model_tensors, config,
                                          clip=self.doc.privacy is None)
                  for m in self._members if m.address.lower() in trained}
        after_advertising, after_masking = self.secagg_dropouts(rid) if self.secagg_dropouts is not None else ((), ())
        index = {m.address.lower(): m.index for m in self._members}
        try:
            run = run_round(ctx, self._keys, inputs,
                            drop_after_advertising=[index[a.lower()] for a in after_advertising if a.lower() in index],
                            drop_after_masking=[index[a.lower()] for a in after_masking if a.lower() in index])
        except SecAggError as err:
            reason = f"the round cannot be unmasked: {err}"
            result = SecureAggregate(RoundAggregate(None, None, (), (), 0, reason, {}), None, (), reason)
            return Collected((), (), 0, sat_out, secure=result)
        masked = {mi.sender: mi for mi in run.masked_inputs}
        commitments = [UpdateCommitment(rid, m.address, Digest(masked[m.index].digest()), Cid(""),
                                        int(trained[m.address.lower()].num_samples), ZERO_DIGEST, 0, "", 0)
                       for m in self._members if m.index in masked]
        records = RoundRecords(run.advertisements, run.masked_inputs, run.unmasking, tuple(sorted(masked)), ())
        result = secure_aggregate(opened.strategy, config, opened.base, rid, opened.base_digest, ctx, records,
                                  commitments, opened.min_updates, privacy=opened.privacy)
        return Collected((), result.aggregate.rejections, len(commitments), sat_out, secure=result)

    def resume(self, opened: OpenedRound) -> OpenedRound | None:
        """Nothing ends a round here but :meth:`publish`: the round as it was."""
        return opened

    def publish(self, opened: OpenedRound, collected: Collected, aggregate: RoundAggregate) -> Published:
        """Adopt the new global model; only included participants keep their new client state."""
        if aggregate.model is not None and aggregate.model_digest is not None:
            self._model, self._digest = aggregate.model, aggregate.model_digest
            for address in aggregate.included:
                state = self._pending.get(address.lower())
                if state is not None:
                    self._states[address.lower()] = state
        self._pending.clear()
        return Published(aggregate, None)

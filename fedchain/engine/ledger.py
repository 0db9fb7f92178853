"""The ledger transport: rounds carried by the ``Federation`` contract and the blob store.

The aggregator opens a round on chain on the current global model, waits until the contract
says the commit phase is over (every eligible participant committed, or the deadline passed),
fetches every committed blob (concurrently, under one overall deadline: :func:`fetch_all`),
pins it and screens it with the rules the auditor replays, and
then publishes the aggregate: the model blob and the evidence document go to the blob store and
their digests, the Merkle root of the included commitments and the aggregation digest go on
chain (or the round is closed with a reason when too few valid updates arrived).

Under a verification policy the contract refuses to open a round until the members attested
the current model's round; :meth:`LedgerTransport.open_round` then waits (on new blocks, up to
``attestation_timeout_s``) and opens once they have, or once a dispute fell back to an earlier
model. Before opening a round the aggregator answers every open exclusion contest: it fetches
the contested blob again, checks its digest, pins it and answers whether it is available.

Given the incentives contract (``incentives``, a :class:`~fedchain.protocol.rewards.RewardsLedger`),
after finalising a round whose task has a rewards config while the per-round budget is not zero,
the aggregator scores the included updates (:func:`~fedchain.protocol.rewards.compute_round_rewards`),
stores the scores blob and publishes the root of its reward leaves (:meth:`LedgerTransport.publish_rewards`).
A failure there is logged and leaves the round finalised; rewards of the latest round left
unpublished are published before the next round opens (:meth:`LedgerTransport.publish_missed_rewards`).

A task with ``secagg`` runs secure-aggregation rounds (:meth:`LedgerTransport.open_round` opens
them with ``openSecureRound``): the aggregator waits until the unmask phase is over (every
committer posted its unmasking shares, or a block past the unmask deadline), fetches, checks and
pins every advertisement, masked input and set of unmasking shares the chain lists
(:func:`~fedchain.protocol.secure.fetch_round_records`), and unmasks the survivors' sum
(:func:`~fedchain.protocol.secure.secure_aggregate`), learning no single update. It finalises like a
plain round (the inclusion root over the survivors' commitments), with the unmasking's details in
the evidence (:class:`~fedchain.protocol.evidence.SecureEvidence`), or closes the round with the
reason it could not be unmasked (below the threshold, an unrecoverable secret, fewer than two members).

``dishonest`` exists only to demonstrate that the audit and the members catch a cheating
aggregator: ``drop-update`` silently leaves one valid update out (in a secure round, where no
update can be taken out of the sum, one survivor out of the included set); ``shift-model``
publishes a model that is not the aggregate; ``ignore-contests`` never answers an exclusion contest.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from urllib.parse import urlsplit

from fedchain.codec.canonical import sha256_digest
from fedchain.engine.loop import Collected, OpenedRound, Published
from fedchain.engine.reports import Traffic
from fedchain.errors import (
    AggregationError,
    ChainStalledError,
    CommitPhaseStillOpen,
    ConfigError,
    FedchainError,
    IntegrityError,
    SecAggError,
    StorageError,
)
from fedchain.ports import (
    AdvertisementPosted,
    BlobStore,
    Contest,
    ExclusionContested,
    Ledger,
    RoundRecord,
    RoundStatus,
    SecureLedger,
    SignedLedger,
    TxReport,
    UnmaskingSharesPosted,
    UpdateCommitment,
    is_secure_ledger,
    is_signed_ledger,
)
from fedchain.protocol import rounds as _rounds
from fedchain.protocol.blobs import GlobalModel, decode_global, encode_global, initial_global
from fedchain.protocol.evidence import secure_evidence
from fedchain.protocol.participant import verify_round_base
from fedchain.protocol.rewards import RewardsLedger, RoundRewardsDoc, compute_round_rewards
from fedchain.protocol.rounds import (
    FetchOutcome,
    RoundAggregate,
    aggregate,
    fetch_committed,
    round_evidence,
    screen,
    shift_weights,
)
from fedchain.protocol.secure import (
    RoundRecords,
    SecureAggregate,
    fetch_round_records,
    model_dimension,
    round_context,
    round_members,
    secure_aggregate,
)
from fedchain.protocol.signed import CommitmentInbox, CommitmentSet, commitment_set_root, encode_commitment_set
from fedchain.protocol.signed_rounds import active_at_open, resolve_signed_round
from fedchain.protocol.task import TaskDocument, load_model_source, load_task_document
from fedchain.reverts import (
    FederationAttestationQuorumNotMet,
    FederationCommitPhaseActive,
    FederationContestAnswered,
    FederationNoContest,
    FederationRevealPhaseActive,
)
from fedchain.secagg.context import RoundContext
from fedchain.types import ZERO_DIGEST, Address, Cid, Digest, RoundId, digest_hex

log = logging.getLogger(__name__)

DISHONEST_MODES = ("drop-update", "shift-model", "ignore-contests")
ATTESTATION_TIMEOUT_S = 600.0  # how long open_round waits for the members' attestations by default
FETCH_WORKERS = 8  # blobs fetched at once by :func:`fetch_all`
# How long the aggregator waits, once a deadline has passed by the clock, for the chain to mine a
# block past it before giving up with ChainStalledError (a managed devnet mines every few seconds).
DEADLINE_BLOCK_WAIT_S = 60.0


def fetch_all(
    store: BlobStore,
    commitments: Sequence[UpdateCommitment],
    *,
    window_s: float | None = None,
    workers: int = FETCH_WORKERS,
) -> tuple[FetchOutcome, ...]:
    """Fetch every committed blob concurrently, under one overall deadline.

    Each blob is fetched with :func:`~fedchain.protocol.rounds.fetch_committed`, whose retry
    window is what is left of ``window_s`` (default
    :data:`~fedchain.protocol.rounds.FETCH_RETRY_WINDOW_S`) since the first fetch started: N
    unavailable blobs cost about one window, not N. Outcomes come back in the order of
    ``commitments``. A store error that is not about one blob (unreachable, a failed call) is
    raised once every worker has stopped (the others stop asking at their next pause)."""
    if not commitments:
        return ()
    window = _rounds.FETCH_RETRY_WINDOW_S if window_s is None else float(window_s)
    deadline = time.monotonic() + window
    stop = threading.Event()

    def pause(seconds: float) -> None:
        if stop.wait(seconds):  # another worker failed: stop asking (only the first failure is raised)
            raise StorageError("fetch cancelled: another fetch of the round failed")

    def one(c: UpdateCommitment) -> FetchOutcome:
        return fetch_committed(store, c, retry_window_s=max(0.0, deadline - time.monotonic()), sleep=pause)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(commitments))),
                            thread_name_prefix="fedchain-fetch") as pool:
        futures = [pool.submit(one, c) for c in commitments]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and f.exception() is not None), None)
        if failed is not None:
            stop.set()
            for f in futures:
                f.cancel()
            wait(futures)
            err = failed.exception()
            assert err is not None
            raise err
    return tuple(f.result() for f in futures)


def pin_all(store: BlobStore, cids: Sequence[Cid], *, workers: int = FETCH_WORKERS) -> None:
    """Pin every blob of ``cids`` on ``store``, ``workers`` at once (one round trip each to an
    IPFS node: in sequence they cost a round's collection more than its fetches); the first
    failure is raised once every pin has returned."""
    if not cids:
        return
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(cids))), thread_name_prefix="fedchain-pin") as pool:
        for future in [pool.submit(store.pin, cid) for cid in cids]:
            future.result()


@dataclass(frozen=True, eq=False)
class _RoundContext:
    """What :meth:`LedgerTransport.collect` learnt about a round, for :meth:`LedgerTransport.publish`."""

    doc: TaskDocument
    commitments: tuple[UpdateCommitment, ...]
    outcomes: tuple[FetchOutcome, ...]
    secure: _SecureRound | None = None


@dataclass(frozen=True, eq=False)
class _SecureRound:
    """What :meth:`LedgerTransport.collect` learnt about a secure round (``ctx`` None: it has no context)."""

    ctx: RoundContext | None
    records: RoundRecords | None
    result: SecureAggregate
    advertisements: tuple[AdvertisementPosted, ...]
    unmasking: tuple[UnmaskingSharesPosted, ...]


class LedgerTransport:
    """Carries rounds over a :class:`~fedchain.ports.Ledger` (signing as the aggregator) and a
    :class:`~fedchain.ports.BlobStore`.

    ``on_open`` is called with the round id right after a round is opened (tests use it to let
    in-process participants submit)."""

    def __init__(
        self,
        ledger: Ledger,
        store: BlobStore,
        *,
        dishonest: str | None = None,
        commit_duration: int | None = None,
        min_updates: int | None = None,
        poll_interval_s: float = 0.2,
        on_open: Callable[[RoundId], None] | None = None,
        fetch_window_s: float | None = None,
        fetch_workers: int = FETCH_WORKERS,
        deadline_block_wait_s: float = DEADLINE_BLOCK_WAIT_S,
        resume: bool = False,
        attestation_timeout_s: float | None = ATTESTATION_TIMEOUT_S,
        incentives: RewardsLedger | None = None,
    ) -> None:
        if dishonest is not None and dishonest not in DISHONEST_MODES:
            raise ConfigError(f"unknown dishonest-aggregator mode {dishonest!r}; expected one of {', '.join(DISHONEST_MODES)}")
        self.ledger = ledger
        self.store = store
        self.dishonest = dishonest
        self.commit_duration = commit_duration
        self.min_updates = min_updates
        self.poll_interval_s = poll_interval_s
        self.on_open = on_open
        self.fetch_window_s = fetch_window_s  # one deadline for all of a round's blobs (None: the default window)
        self.fetch_workers = fetch_workers
        self.deadline_block_wait_s = deadline_block_wait_s  # how long a chain may mine nothing after a deadline
        # open_round finishes a round left open (by an aggregator that stopped) instead of opening a new one
        self.resume_open = resume
        # how long open_round waits for the attestation quorum of the current model's round (None: no limit)
        self.attestation_timeout_s = attestation_timeout_s
        self.incentives = incentives  # the incentives contract, signing as the aggregator (None: no rewards)
        self.rewards: dict[int, RoundRewardsDoc] = {}  # the scores blobs this transport published, by round
        self.reports: list[TxReport] = []  # every transaction this transport sent
        self._context: dict[int, _RoundContext] = {}
        self._contests_from = 0  # the first block not yet searched for exclusion contests
        self._inbox: CommitmentInbox | None = None  # signed rounds: where participants send their commitments
        self._inbox_rounds: set[int] = set()  # the rounds opened in this inbox
        self._eligible_of: dict[int, frozenset[str]] = {}  # signed rounds: lower-case addresses active at opening

    # --- opening -------------------------------------------------------------------------------
    def base_model(self, doc: TaskDocument) -> tuple[Digest, Cid]:
        """The model the next round starts from: the contract's current model (the latest
        finalised one or, after a dispute, the disputed round's base model, which may be the
        initial model), else the initial model."""
        current = bytes(self.ledger.current_model_digest())
        if current != bytes(ZERO_DIGEST):
            latest = int(self.ledger.latest_round_id())
            rounds = [self.ledger.round(RoundId(rid)) for rid in range(latest, 0, -1)]
            for rnd in rounds:
                if rnd.status == RoundStatus.FINALIZED and bytes(rnd.model_digest) == current and rnd.model_cid:
                    return Digest(current), rnd.model_cid
            for rnd in rounds:  # a fallback after a dispute: some round's base model
                if bytes(rnd.base_model_digest) == current and rnd.base_model_cid:
                    return Digest(current), rnd.base_model_cid
            raise IntegrityError(f"current model {digest_hex(current)} is neither a finalised round's model nor a "
                                 "round's base model on the ledger")
        load_model_source(doc, self.store, None)  # a custom model's source: the aggregator runs the task it serves
        blob = initial_global(doc.spec(), doc.seed)
        return sha256_digest(blob), self.store.put(blob)

    def open_round(self) -> OpenedRound:
        """Open the next round on chain on the current global model.

        When the latest round is still open (an aggregator stopped before finishing it) and the
        transport was made with ``resume``, that round is attached to, with a log line, and
        finished instead; without ``resume`` that is an AggregationError (the contract would
        refuse a second open round)."""
        latest = RoundId(int(self.ledger.latest_round_id()))
        if latest >= 1:
            rnd = self.ledger.round(latest)
            if rnd.status == RoundStatus.OPEN:
                if not self.resume_open:
                    raise AggregationError(
                        f"round {latest} is still open (deadline {rnd.deadline}, {rnd.commit_count} commitment(s)): "
                        "finish it with `fedchain round finalize`, close it with `fedchain round close`, "
                        "or let `fedchain aggregator run` resume it"
                    )
                log.warning("round %d is still open (opened in block %d, deadline %d, %d commitment(s)): "
                            "resuming it instead of opening a new round", latest, rnd.opened_block, rnd.deadline,
                            rnd.commit_count)
                return self.attach(latest)
        if latest >= 1:
            self.publish_missed_rewards(latest)
        started = time.monotonic()
        while True:
            self.answer_contests()
            _, doc = load_task_document(self.ledger, self.store)
            digest, cid = self.base_model(doc)
            commit_duration = int(self.commit_duration or doc.commit_duration)
            min_updates = int(self.min_updates or doc.min_updates)
            try:
                if doc.signed_commits is not None:
                    report = self._signed_ledger().open_signed_round(
                        digest, cid, commit_duration, min_updates, int(doc.signed_commits.escape_duration))
                elif doc.secagg is not None:
                    report = self._secure_ledger().open_secure_round(
                        digest, cid, int(doc.secagg.advertise_duration), commit_duration, min_updates,
                        int(doc.secagg.unmask_duration),
                    )
                else:
                    report = self.ledger.open_round(digest, cid, commit_duration, min_updates, int(doc.reveal_duration))
            except FederationAttestationQuorumNotMet as refused:
                self._wait_attestations(refused, started)
                continue
            break
        self.reports.append(report)
        rid = RoundId(int(report.round_id) if report.round_id is not None else int(self.ledger.latest_round_id()))
        log.info("round %d opened on %s (tx %s, gas %d)", rid, digest_hex(digest), report.tx_hash, report.gas_used)
        if doc.signed_commits is not None:  # the inbox takes the round's signed commitments from now on
            self._open_inbox_round(self.ledger.round(rid), doc)
        if self.on_open is not None:
            self.on_open(rid)
        return self.attach(rid)

    def _wait_attestations(self, refused: FederationAttestationQuorumNotMet, started: float) -> None:
        """Wait (on new blocks) until the round the contract named has its attestation quorum,
        or a dispute made its model no longer the current one; AggregationError once
        :attr:`attestation_timeout_s` has passed since ``started``."""
        rid = RoundId(int(refused.round_id))
        block = self.ledger.block_number()
        told: tuple[int, int, int] | None = None
        while True:
            if int(self.ledger.current_model_round()) != int(rid):
                log.warning("round %d's model is no longer the current one (a dispute fell back to model %s); "
                            "opening the next round on it", rid, digest_hex(self.ledger.current_model_digest()))
                return
            ok, negative = self.ledger.attestation_counts(rid)
            required = int(self.ledger.attestation_quorum(rid))
            if int(ok) >= required:
                log.info("round %d: %d of %d attestations in; opening the next round", rid, ok, required)
                return
            if told != (int(ok), int(negative), required):
                told = (int(ok), int(negative), required)
                log.info("round %d: %d of %d attestations in (%d negative); the contract opens the next round once "
                         "the members attest it", rid, ok, required, negative)
            waited = time.monotonic() - started
            if self.attestation_timeout_s is not None and waited >= self.attestation_timeout_s:
                raise AggregationError(
                    f"round {rid}: {ok} of the {required} attestations the verification policy requires after "
                    f"{waited:.0f} s ({negative} negative); the next round cannot open until the members attest the "
                    "round or a dispute falls back from its model"
                )
            self.answer_contests()
            wait = 2.0 if self.attestation_timeout_s is None else max(0.0, min(2.0, self.attestation_timeout_s - waited))
            block = self.ledger.wait_for_block(block, wait)

    # --- exclusion contests --------------------------------------------------------------------
    def answer_contests(self) -> list[TxReport]:
        """Answer every open exclusion contest: fetch the contested blob (checking that it is the
        update the participant committed and hashes to its digest), pin it, and answer on chain
        whether it is available. A contest naming another blob than the commitment is answered
        unavailable. Returns the answers sent."""
        if self.dishonest == "ignore-contests":
            return []
        head = self.ledger.block_number()
        contests = [ev for ev in self.ledger.history(self._contests_from) if isinstance(ev, ExclusionContested)]
        answers: list[TxReport] = []
        for ev in contests:
            rid = RoundId(int(ev.round_id))
            if int(self.ledger.contest_of(rid, ev.participant)) != Contest.OPEN:
                continue
            committed = next((c for c in self.ledger.commitments(rid) if c.participant.lower() == ev.participant.lower()),
                             None)
            if committed is None or committed.cid != ev.cid or bytes(committed.update_digest) != bytes(ev.update_digest):
                available, why = False, "the contest does not name the participant's committed update"
            else:
                outcome = fetch_all(self.store, (committed,), window_s=self.fetch_window_s, workers=1)[0]
                available = outcome.data is not None and sha256_digest(outcome.data) == bytes(committed.update_digest)
                why = "fetched, digest checked, pinned" if available else (outcome.error or "digest mismatch")
                if available:
                    self.store.pin(committed.cid)
            try:
                report = self.ledger.answer_contest(rid, ev.participant, available)
            except (FederationContestAnswered, FederationNoContest) as err:
                log.info("round %d: contest of %s: %s", rid, ev.participant, err)
                continue
            self.reports.append(report)
            answers.append(report)
            log.warning("round %d: %s contested its exclusion; blob %s is %savailable (%s); answered on chain (tx %s)",
                        rid, ev.participant, ev.cid, "" if available else "un", why, report.tx_hash)
        self._contests_from = head + 1  # every contest up to here is answered
        return answers

    def attach(self, round_id: RoundId) -> OpenedRound:
        """An already open round, as :meth:`open_round` would have returned it (its base model
        fetched from the store and checked against the digest the chain records)."""
        rnd = self.ledger.round(round_id)
        if rnd.status != RoundStatus.OPEN:
            raise AggregationError(f"round {round_id} is not open (status: {RoundStatus(rnd.status).name.lower()})")
        _, doc = load_task_document(self.ledger, self.store, rnd.task_version)
        base = self._fetch_base(round_id, rnd.base_model_cid, rnd.base_model_digest)
        verify_round_base(self.ledger, rnd, doc)
        if rnd.signed and rnd.escape_deadline == 0 and int(round_id) not in self._inbox_rounds:
            self._open_inbox_round(rnd, doc)  # its set is still to be collected
        return OpenedRound(RoundId(int(round_id)), base, rnd.base_model_digest, doc.strategy_config(), int(rnd.min_updates),
                           doc.privacy)

    def resume(self, opened: OpenedRound) -> OpenedRound | None:
        """The round again after an outage: attached afresh while it is open, None once it ended
        (finalised or closed while the connection was down)."""
        rnd = self.ledger.round(opened.round_id)
        if rnd.status != RoundStatus.OPEN:
            log.warning("round %d was %s while the ledger or store was unreachable", opened.round_id,
                        RoundStatus(rnd.status).name.lower())
            return None
        log.info("round %d: resuming after the outage", opened.round_id)
        return self.attach(opened.round_id)

    def _fetch_base(self, round_id: RoundId, cid: Cid, digest: Digest) -> GlobalModel:
        data = self.store.get(cid)
        if sha256_digest(data) != bytes(digest):
            raise IntegrityError(f"round {round_id}: base model {cid} does not match its recorded digest")
        return decode_global(data)

    # --- the commit phase ----------------------------------------------------------------------
    def commit_phase_over(self, round_id: RoundId) -> bool:
        """Whether the round may be ended, the contract's own answer as of the latest block:
        every participant eligible for the round (active when it opened) committed, or the
        deadline passed; in a commit-reveal round, besides, every sealed update was revealed or
        the reveal deadline passed. True once ended."""
        return bool(self.ledger.reveal_phase_over(round_id))

    def wait_commit_phase(self, round_id: RoundId, timeout_s: float | None = None) -> bool:
        """Wait (on new blocks) until the contract says the commit phase is over: every eligible
        participant committed, or a block past the deadline was mined. False when ``timeout_s``
        ran out first.

        The contract judges the deadline by block time, so once the deadline has passed on the
        chain's clock (estimated from the latest block: a devnet's clock may run ahead of or
        behind this one) this waits for a block whose timestamp is past it rather than sending a
        transaction estimated against an older block. A managed devnet mines on an interval; a
        chain that mines no block at all for :attr:`deadline_block_wait_s` seconds after the
        deadline raises :class:`~fedchain.errors.ChainStalledError`."""
        start = time.monotonic()
        block = self.ledger.block_number()
        skew = self.ledger.block_timestamp() - time.time()  # the chain's clock minus ours
        stalled_since: float | None = None
        told = False
        while not self.commit_phase_over(round_id):
            remaining = None if timeout_s is None else timeout_s - (time.monotonic() - start)
            if remaining is not None and remaining <= 0:
                return False
            rnd = self.ledger.round(round_id)
            # the last deadline the round has
            deadline = (rnd.unmask_deadline if rnd.secure else rnd.reveal_deadline if rnd.commit_reveal
                        else (rnd.escape_deadline or (rnd.deadline + rnd.escape_duration)) if rnd.signed
                        else rnd.deadline)
            deadline_in = deadline - (time.time() + skew)
            if deadline_in > 0:  # a new block (a commit, a seal, a reveal), or the deadline
                wait = max(self.poll_interval_s, min(deadline_in + 0.05, 5.0))
            else:  # past the deadline on the chain's clock, and no block since
                now = time.monotonic()
                if stalled_since is None:
                    stalled_since = now
                if not told:
                    told = True
                    log.info("round %d: deadline %d passed; waiting for a block past it (latest block %d)",
                             round_id, deadline, block)
                elif now - stalled_since > self.deadline_block_wait_s:
                    raise ChainStalledError(
                        f"round {round_id}: no block past its deadline {deadline} was mined within "
                        f"{self.deadline_block_wait_s:g} s (latest block {block} at {self.ledger.block_timestamp()}); "
                        "the chain mines only on transactions? Run the devnet with interval mining "
                        "(the managed devnet does), or send any transaction"
                    )
                wait = max(0.0, min(1.0, self.deadline_block_wait_s - (now - stalled_since)))
            seen = self.ledger.wait_for_block(block, wait if remaining is None else max(0.0, min(wait, remaining)))
            if seen != block:  # the chain moves: not stalled, and its clock is known better
                block, stalled_since = seen, None
                skew = self.ledger.block_timestamp() - time.time()
        return True

    def close(self, round_id: RoundId, reason: str, *, timeout_s: float | None = 0.0) -> TxReport:
        """Close an open round without a model, recording ``reason`` on chain: the way out of a
        round that cannot be finalised (its updates unusable, a stuck participant). The contract
        allows it once the commit phase is over; this waits for that up to ``timeout_s`` seconds
        (None: as long as it takes; 0: not at all) and raises AggregationError otherwise."""
        if not reason.strip():
            raise ConfigError("a round is closed with a reason: pass a non-empty --reason")
        rnd = self.ledger.round(round_id)
        if rnd.status != RoundStatus.OPEN:
            raise AggregationError(f"round {round_id} is not open (status: {RoundStatus(rnd.status).name.lower()})")
        if not self.wait_commit_phase(round_id, timeout_s):
            rnd = self.ledger.round(round_id)
            reveal = (f", {rnd.commit_count} of {rnd.seal_count} sealed updates revealed, reveal deadline "
                      f"{rnd.reveal_deadline}" if rnd.commit_reveal else "")
            raise AggregationError(
                f"round {round_id}: commit phase still running ({rnd.commit_count} of {rnd.eligible_count} eligible "
                f"committed, deadline {rnd.deadline}{reveal}, latest block at {self.ledger.block_timestamp()}); "
                "a round can be closed once its deadline has passed (use --wait)"
            )
        report = self.ledger.close_round(round_id, reason)
        self.reports.append(report)
        log.warning("round %d closed without a model by the aggregator: %s (tx %s)", round_id, reason, report.tx_hash)
        return report

    def collect(self, opened: OpenedRound, timeout_s: float | None) -> Collected:
        """Wait for the commit phase, then fetch, pin and screen every committed blob. In a signed round: wait for
        the signed commitments (every eligible participant's, or the commit deadline), post their set, wait for the
        end of the escape window (which runs whatever the set holds), and take the set's entries and the forced
        commitments."""
        rid = opened.round_id
        started = time.monotonic()
        if self.ledger.round(rid).signed:
            self.post_commitment_set(rid, timeout_s)
            timeout_s = None if timeout_s is None else max(0.0, timeout_s - (time.monotonic() - started))
        if not self.wait_commit_phase(rid, timeout_s):
            phases = "commit and unmask phases" if self.ledger.round(rid).secure else "commit phase"
            raise CommitPhaseStillOpen(f"round {rid}: the {phases} did not end within {timeout_s:.1f} s")
        rnd = self.ledger.round(rid)
        if rnd.status != RoundStatus.OPEN:
            raise AggregationError(f"round {rid} is not open (status: {RoundStatus(rnd.status).name.lower()})")
        _, doc = load_task_document(self.ledger, self.store, rnd.task_version)
        commitments = tuple(self.ledger.commitments(rid))
        if rnd.signed:
            commitments = self._signed_commitments(rnd, commitments)
        if rnd.secure:
            return self._collect_secure(opened, rnd, doc, commitments)
        if rnd.commit_reveal:
            revealed = {c.participant.lower() for c in commitments}
            unrevealed = sorted(s.participant for s in self.ledger.seals(rid) if s.participant.lower() not in revealed)
            if unrevealed:
                log.warning("round %d: %d sealed update(s) never revealed, left out: %s", rid, len(unrevealed),
                            ", ".join(unrevealed))
        outcomes = fetch_all(self.store, commitments, window_s=self.fetch_window_s, workers=self.fetch_workers)
        # The round rests on these blobs: keep them on this node for auditors, whatever the
        # uploading participant's node does later.
        pin_all(self.store, [o.commitment.cid for o in outcomes if o.data is not None], workers=self.fetch_workers)
        screened = screen(outcomes, rid, opened.base_digest)
        self._context[int(rid)] = _RoundContext(doc, commitments, outcomes)
        downloaded = sum(len(o.data) for o in outcomes if o.data is not None)
        return Collected(screened.updates, screened.rejections, len(commitments),
                         traffic=Traffic(downloaded_by_aggregator=downloaded))

    # --- signed rounds ---------------------------------------------------------------------------
    def _signed_ledger(self) -> SignedLedger:
        if not is_signed_ledger(self.ledger):
            raise ConfigError(f"the task runs signed rounds, which {type(self.ledger).__name__} cannot carry")
        return self.ledger

    def inbox_for(self, doc: TaskDocument) -> CommitmentInbox:
        """The commitment inbox of the task's signed rounds, started on the host and port its URL names."""
        assert doc.signed_commits is not None
        parts = urlsplit(doc.signed_commits.inbox)
        if self._inbox is not None and (self._inbox.host, self._inbox.port) != (parts.hostname, parts.port):
            self.close_inbox()
        if self._inbox is None:
            try:
                self._inbox = CommitmentInbox(str(parts.hostname), int(parts.port or 0)).start()
            except OSError as err:
                raise ConfigError(f"cannot listen on {doc.signed_commits.inbox} (the task's commitment inbox): "
                                  f"{err}") from err
        return self._inbox

    def _open_inbox_round(self, rnd: RoundRecord, doc: TaskDocument) -> None:
        ledger = self._signed_ledger()
        chain_id, contract = ledger.federation_id()
        eligible = self._eligible(rnd)
        self.inbox_for(doc).open_round(int(rnd.round_id), chain_id, contract,
                                       [Address(a) for a in sorted(eligible)])
        self._inbox_rounds.add(int(rnd.round_id))

    def _eligible(self, rnd: RoundRecord) -> frozenset[str]:
        """Who may commit in signed round ``rnd`` (active when it opened), read from the history once per round."""
        rid = int(rnd.round_id)
        if rid not in self._eligible_of:
            self._eligible_of[rid] = active_at_open(self.ledger.history(to_block=rnd.opened_block), rnd.round_id)
        return self._eligible_of[rid]

    def post_commitment_set(self, rid: RoundId, timeout_s: float | None) -> None:
        """Wait until every eligible participant's signed commitment is in, or the commit deadline passed on the
        chain's clock, then seal the inbox's round and post its set (once; nothing to do when it is posted)."""
        rnd = self.ledger.round(rid)
        if rnd.escape_deadline != 0 or rnd.status != RoundStatus.OPEN:
            return
        ledger = self._signed_ledger()
        _, doc = load_task_document(self.ledger, self.store, rnd.task_version)
        inbox = self.inbox_for(doc)
        if int(rid) not in self._inbox_rounds:
            self._open_inbox_round(rnd, doc)  # a restarted aggregator: who signed again comes in, the rest force
        start = time.monotonic()
        skew = self.ledger.block_timestamp() - time.time()  # the chain's clock minus ours
        while inbox.received() < rnd.eligible_count:
            deadline_in = rnd.deadline + 1 - (time.time() + skew)  # the post must be mined after the deadline
            if deadline_in <= 0:
                break
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                raise CommitPhaseStillOpen(f"round {rid}: {inbox.received()} of {rnd.eligible_count} signed "
                                           f"commitments in, deadline {rnd.deadline} not passed")
            inbox.wait_for(rnd.eligible_count, min(deadline_in, 1.0))
        chain_id, contract = ledger.federation_id()
        cset = CommitmentSet.build(chain_id, contract, int(rid), inbox.seal(int(rid)))
        blob = encode_commitment_set(cset)
        cid = self.store.put(blob)
        self.store.pin(cid)
        while True:
            try:
                report = ledger.post_commitment_set(rid, commitment_set_root(cset), len(cset.commitments),
                                                    sha256_digest(blob), cid)
                break
            except FederationCommitPhaseActive:  # the chain's clock is behind ours: wait for a later block
                if timeout_s is not None and time.monotonic() - start > timeout_s:
                    raise CommitPhaseStillOpen(f"round {rid}: the contract still holds the commit phase open") from None
                self.ledger.wait_for_block(self.ledger.block_number(), 1.0)
        self.reports.append(report)
        log.info("round %d: posted the set of %d signed commitment(s) %s (tx %s, gas %d)", rid, len(cset.commitments),
                 cid, report.tx_hash, report.gas_used)

    def _signed_commitments(self, rnd: RoundRecord, forced: Sequence[UpdateCommitment]) -> tuple[UpdateCommitment, ...]:
        """The commitments of a signed round whose escape window is over: the set's entries and the forced ones."""
        ledger = self._signed_ledger()
        chain_id, contract = ledger.federation_id()
        eligible = self._eligible(rnd)
        resolved = resolve_signed_round(self.store, ledger.commitment_set(rnd.round_id), forced,
                                        chain_id=chain_id, contract=contract, eligible=eligible)
        if resolved.forced:
            log.warning("round %d: %d participant(s) forced their commitment on chain: %s", rnd.round_id,
                        len(resolved.forced), ", ".join(c.participant for c in resolved.forced))
        return resolved.commitments

    def close_inbox(self) -> None:
        """Stop the commitment inbox (signed rounds), if it runs."""
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None
            self._inbox_rounds.clear()

    def _secure_ledger(self) -> SecureLedger:
        if not is_secure_ledger(self.ledger):
            raise ConfigError(f"the task runs secure-aggregation rounds, which {type(self.ledger).__name__} cannot carry")
        return self.ledger

    def _collect_secure(self, opened: OpenedRound, rnd: RoundRecord, doc: TaskDocument,
                        commitments: tuple[UpdateCommitment, ...]) -> Collected:
        """A secure round once its unmask phase is over: its records fetched, checked and pinned, the survivors'
        sum unmasked (or why it cannot be)."""
        rid = opened.round_id
        ledger = self._secure_ledger()
        ads, unmasks = tuple(ledger.advertisements(rid)), tuple(ledger.unmasking_shares(rid))
        ctx: RoundContext | None = None
        records: RoundRecords | None = None
        try:
            if doc.secagg is None:
                raise SecAggError(f"task version {rnd.task_version} has no secagg configuration")
            members = round_members(self.ledger.history(to_block=rnd.opened_block), rnd)
            chain_id, contract = ledger.federation_id()
            ctx = round_context(chain_id, contract, rnd, members, doc.secagg, model_dimension(opened.base))
        except SecAggError as err:
            reason = f"the round cannot be unmasked: {err}"
            result = SecureAggregate(RoundAggregate(None, None, (), (), 0, reason, {}), None, (), reason)
        else:
            assert doc.secagg is not None
            window = _rounds.FETCH_RETRY_WINDOW_S if self.fetch_window_s is None else float(self.fetch_window_s)
            records = fetch_round_records(self.store, ctx, ads, commitments, unmasks, window_s=window)
            # the round rests on these records: keep them on this node for auditors
            refused = {(p.participant.lower(), p.kind) for p in records.problems}
            for kind, events in (("advertisement", ads), ("masked input", commitments), ("unmasking shares", unmasks)):
                for e in events:
                    if (e.participant.lower(), kind) not in refused:
                        self.store.pin(e.cid)
            result = secure_aggregate(opened.strategy, doc.secagg, opened.base, rid, opened.base_digest, ctx, records,
                                      commitments, opened.min_updates, privacy=opened.privacy)
            if result.failure is not None:
                log.warning("round %d: %s", rid, result.failure)
            for f in result.findings:
                log.warning("round %d: secure aggregation finding %s about participant %d: %s", rid, f.kind.value,
                            f.offender, f.detail)
        self._context[int(rid)] = _RoundContext(doc, commitments, (), _SecureRound(ctx, records, result, ads, unmasks))
        downloaded = 0 if records is None else sum(
            len(r.to_bytes()) for group in (records.advertisements, records.masked_inputs, records.unmasking)
            for r in group)
        return Collected((), result.aggregate.rejections, len(commitments), traffic=Traffic(
            downloaded_by_aggregator=downloaded), secure=result)

    # --- publishing ----------------------------------------------------------------------------
    def publish(self, opened: OpenedRound, collected: Collected, aggregate: RoundAggregate) -> Published:
        """Finalise the round with the aggregate (model + evidence), or close it with a reason."""
        rid = opened.round_id
        ctx = self._context.pop(int(rid))
        agg = aggregate
        if self.dishonest is not None and agg.model_blob is not None:
            agg = self._cheat(agg, ctx, opened)
        try:
            if agg.model_blob is None or agg.model_digest is None:
                reason = agg.too_few_reason or "no model"
                report = self.ledger.close_round(rid, reason)
                self.reports.append(report)
                log.warning("round %d closed without a model: %s (tx %s)", rid, reason, report.tx_hash)
                return Published(agg, None, report.gas_used, report.tx_hash)
            model_cid = self.store.put(agg.model_blob)
            strategy_digest = ctx.doc.strategy_digest()
            evidence = round_evidence(rid, opened.base_digest, agg, ctx.commitments, strategy_digest)
            secure = ctx.secure
            if secure is not None and secure.ctx is not None and secure.result.unmasked is not None:
                evidence = dataclasses.replace(evidence, secagg=secure_evidence(
                    secure.ctx, secure.result.unmasked, secure.advertisements, ctx.commitments, secure.unmasking))
            root = evidence.merkle_root
            ev_bytes = evidence.to_bytes()
            ev_cid = self.store.put(ev_bytes)
            report = self.ledger.finalize_round(
                rid, agg.model_digest, model_cid, root, strategy_digest, sha256_digest(ev_bytes), ev_cid, len(agg.included)
            )
        except (FederationCommitPhaseActive, FederationRevealPhaseActive) as err:
            log.info("round %d: the contract still holds the commit phase open", rid)
            time.sleep(self.poll_interval_s)
            raise CommitPhaseStillOpen(f"round {rid}: {err}") from err
        self.reports.append(report)
        log.info(
            "round %d finalised: model %s, %d included, %d rejected (tx %s, gas %d)",
            rid, digest_hex(agg.model_digest), len(agg.included), len(agg.rejections), report.tx_hash, report.gas_used,
        )
        if self.incentives is not None and ctx.doc.rewards is not None and ctx.secure is not None:
            log.warning("round %d: a secure-aggregation round has no individual updates to score; no rewards "
                        "published", rid)
        elif self.incentives is not None and ctx.doc.rewards is not None:
            try:
                self.publish_rewards(rid)
            except FedchainError as err:  # the round stands; its rewards can be published later
                log.error("round %d: rewards not published: %s", rid, err)
        return Published(agg, model_cid, report.gas_used, report.tx_hash,
                         Traffic(uploaded_by_aggregator=len(agg.model_blob) + len(ev_bytes)))

    def publish_rewards(self, round_id: RoundId) -> RoundRewardsDoc | None:
        """Score a finalised round, store its scores blob and publish the reward root on the
        incentives contract; None (nothing sent) without an incentives contract, when the budget
        is 0 or the rewards are already published."""
        if self.incentives is None:
            return None
        budget = int(self.incentives.reward_budget())
        if budget == 0:
            log.info("round %d: the reward budget is 0; no rewards published", round_id)
            return None
        if self.incentives.round_rewards(int(round_id)) is not None:
            log.info("round %d: rewards already published", round_id)
            return None
        doc = compute_round_rewards(self.ledger, self.store, round_id, budget)
        data = doc.to_bytes()
        cid = self.store.put(data)
        self.store.pin(cid)
        report = self.incentives.publish_rewards(int(round_id), bytes(doc.root), doc.total, bytes(sha256_digest(data)), cid)
        self.reports.append(report)
        self.rewards[int(round_id)] = doc
        log.info("round %d: rewards published (%s rule, %d of budget %d to %d participant(s); root %s, scores %s, tx %s)",
                 round_id, doc.rule, doc.total, budget, len(doc.entries), digest_hex(doc.root), cid, report.tx_hash)
        return doc

    def publish_missed_rewards(self, round_id: RoundId) -> RoundRewardsDoc | None:
        """Publish the rewards of ``round_id`` when it was finalised under a task with a rewards
        config and they are not published yet (an aggregator that stopped, or failed to publish,
        right after finalising it); a failure is logged and leaves the next round to open."""
        if self.incentives is None:
            return None
        rnd = self.ledger.round(round_id)
        if rnd.status != RoundStatus.FINALIZED or rnd.secure:  # a secure round has no update to score
            return None
        try:
            if self.incentives.round_rewards(int(round_id)) is not None or int(self.incentives.reward_budget()) == 0:
                return None
            _, doc = load_task_document(self.ledger, self.store, self.ledger.round(round_id).task_version)
            if doc.rewards is None:
                return None
            log.warning("round %d was finalised without its rewards published; publishing them now", round_id)
            return self.publish_rewards(round_id)
        except FedchainError as err:
            log.error("round %d: rewards not published: %s", round_id, err)
            return None

    def _cheat(self, agg: RoundAggregate, ctx: _RoundContext, opened: OpenedRound) -> RoundAggregate:
        rid, base_digest = opened.round_id, opened.base_digest
        if self.dishonest == "shift-model":
            assert agg.model is not None
            model = agg.model
            weights = shift_weights(model.weights, 0.01)
            blob = encode_global(round_id=rid, base_model_digest=base_digest, weights=weights,
                                 server_state=dict(model.server_state), num_samples=model.num_samples)
            log.warning("round %d: publishing a shifted model (dishonest aggregator demonstration)", rid)
            shifted = GlobalModel(rid, base_digest, weights, dict(model.server_state), model.num_samples)
            return RoundAggregate(blob, sha256_digest(blob), agg.included, agg.rejections, agg.num_samples, None,
                                  agg.metrics, shifted)
        # drop-update: leave out the last included update without recording why
        if len(agg.included) <= max(1, opened.min_updates):
            return agg
        if ctx.secure is not None:  # the sum cannot lose one input: leave a survivor out of the included set
            log.warning("round %d: silently leaving %s out of the included set (dishonest aggregator demonstration)",
                        rid, agg.included[-1])
            return dataclasses.replace(agg, included=agg.included[:-1])
        dropped = agg.included[-1]
        kept = [o for o in ctx.outcomes if o.commitment.participant.lower() != dropped.lower()]
        log.warning("round %d: silently dropping %s (dishonest aggregator demonstration)", rid, dropped)
        cheat = aggregate(opened.strategy, opened.base, rid, base_digest, kept, opened.min_updates, privacy=opened.privacy)
        return cheat if cheat.model_blob is not None else agg

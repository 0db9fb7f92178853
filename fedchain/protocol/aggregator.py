"""The aggregator agent: opens rounds, and after the commit phase fetches, screens and
aggregates every committed update, publishes the global model and evidence, and finalises the
round on chain (or closes it with a reason when too few valid updates arrived).

``dishonest`` exists only to demonstrate that the audit catches a cheating aggregator:
``drop-update`` silently leaves one valid update out; ``shift-model`` publishes a model that is
not the aggregate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fedchain.errors import AggregationError, ConfigError, ContractRevertError, IntegrityError
from fedchain.protocol.blobs import decode_global, encode_global, initial_global
from fedchain.protocol.evidence import Evidence, IncludedUpdate, RejectedUpdate
from fedchain.protocol.participant import load_task_document
from fedchain.protocol.rounds import (
    FetchOutcome,
    RoundAggregate,
    aggregate,
    fetch_committed,
    inclusion_root,
    leaf_of,
    shift_weights,
)
from fedchain.protocol.task import TaskDocument
from fedchain.codec.canonical import sha256_digest
from fedchain.ports import Ledger, RoundStatus, TxReport
from fedchain.types import ZERO_DIGEST, Cid, Digest, RoundId, digest_hex

if TYPE_CHECKING:
    from fedchain.protocol.blobs import GlobalModel
    from fedchain.fl.records import ExtraValue
    from fedchain.ports import BlobStore

log = logging.getLogger(__name__)

DISHONEST_MODES = ("drop-update", "shift-model")


@dataclass(frozen=True)
class RoundOutcome:
    """What the aggregator did with one round."""

    round_id: RoundId
    finalized: bool
    model_digest: Digest | None
    model_cid: Cid | None
    included: tuple[str, ...]
    rejected: tuple[tuple[str, str, str], ...]
    commit_count: int
    close_reason: str | None
    tx: TxReport
    bytes_downloaded: int
    bytes_uploaded: int
    metrics: dict[str, ExtraValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "round": int(self.round_id),
            "finalized": self.finalized,
            "model_digest": digest_hex(self.model_digest) if self.model_digest else None,
            "model_cid": self.model_cid,
            "included": list(self.included),
            "rejected": [{"participant": p, "rule": r, "reason": w} for p, r, w in self.rejected],
            "commit_count": self.commit_count,
            "close_reason": self.close_reason,
            "gas_used": self.tx.gas_used,
            "tx_hash": self.tx.tx_hash,
            "bytes_downloaded": self.bytes_downloaded,
            "bytes_uploaded": self.bytes_uploaded,
        }


class AggregatorAgent:
    """The aggregator. ``ledger`` signs with the aggregator account."""

    def __init__(self, ledger: Ledger, store: BlobStore, *, dishonest: str | None = None, poll_interval_s: float = 0.2) -> None:
        if dishonest is not None and dishonest not in DISHONEST_MODES:
            raise ConfigError(f"unknown dishonest-aggregator mode {dishonest!r}; expected one of {', '.join(DISHONEST_MODES)}")
        self.ledger = ledger
        self.store = store
        self.dishonest = dishonest
        self.poll_interval_s = poll_interval_s
        self.reports: list[TxReport] = []

    # --- base model -----------------------------------------------------------------------
    def base_model(self, doc: TaskDocument) -> tuple[Digest, Cid]:
        """The model the next round starts from: the latest finalised one, else the initial model."""
        current = bytes(self.ledger.current_model_digest())
        if current != bytes(ZERO_DIGEST):
            rid = int(self.ledger.latest_round_id())
            while rid >= 1:
                rnd = self.ledger.round(RoundId(rid))
                if rnd.status == RoundStatus.FINALIZED and bytes(rnd.model_digest) == current and rnd.model_cid:
                    return Digest(current), rnd.model_cid
                rid -= 1
            raise IntegrityError(f"current model {digest_hex(current)} has no finalised round on the ledger")
        blob = initial_global(doc.spec(), doc.seed)
        cid = self.store.put(blob)
        return sha256_digest(blob), cid

    # --- rounds -----------------------------------------------------------------------------
    def open_round(self, *, commit_duration: int | None = None, min_updates: int | None = None) -> RoundId:
        _, doc = load_task_document(self.ledger, self.store)
        digest, cid = self.base_model(doc)
        report = self.ledger.open_round(
            digest, cid, int(commit_duration or doc.commit_duration), int(min_updates or doc.min_updates)
        )
        self.reports.append(report)
        rid = RoundId(int(report.round_id) if report.round_id is not None else int(self.ledger.latest_round_id()))
        log.info("round %d opened on %s (tx %s, gas %d)", rid, digest_hex(digest), report.tx_hash, report.gas_used)
        return rid

    def commit_phase_over(self, round_id: RoundId) -> bool:
        """The contract's own answer (as of the latest block): every participant eligible for
        the round (active when it opened) committed, or the deadline passed; true once ended."""
        return bool(self.ledger.commit_phase_over(round_id))

    def _worth_trying(self, round_id: RoundId) -> bool:
        """Whether to try ending the round now: the chain says its commit phase is over, or the
        wall clock passed the deadline and the chain has simply mined no block since (a quiet
        devnet). In the second case the contract decides when the transaction is mined."""
        if self.commit_phase_over(round_id):
            return True
        return time.time() > self.ledger.round(round_id).deadline

    def wait_commit_phase(self, round_id: RoundId, timeout_s: float | None = None) -> bool:
        """Poll until every eligible participant committed or the deadline passed."""
        start = time.monotonic()
        while not self._worth_trying(round_id):
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                return False
            time.sleep(self.poll_interval_s)
        return True

    def finalize(self, round_id: RoundId, *, retry_timeout_s: float | None = 600.0) -> RoundOutcome:
        """Aggregate and finalise (or close) an open round whose commit phase is over.

        When the contract still holds the commit phase open (``FederationCommitPhaseActive``:
        its block timestamp is not past the deadline yet and an eligible participant has not
        committed), waits for the phase to end and starts again from the commitments - more may
        have arrived - for up to ``retry_timeout_s`` seconds (None: no limit)."""
        start = time.monotonic()
        while True:
            try:
                return self._finalize_once(round_id)
            except ContractRevertError as err:
                if err.error_name != "FederationCommitPhaseActive":
                    raise
                waited = time.monotonic() - start
                if retry_timeout_s is not None and waited > retry_timeout_s:
                    raise AggregationError(
                        f"round {round_id}: the contract still holds the commit phase open after {waited:.0f} s"
                    ) from err
                log.info("round %d: commit phase still active on chain; waiting", round_id)
                time.sleep(self.poll_interval_s)
                remaining = None if retry_timeout_s is None else max(0.0, retry_timeout_s - (time.monotonic() - start))
                self.wait_commit_phase(round_id, remaining)

    def _finalize_once(self, round_id: RoundId) -> RoundOutcome:
        rnd = self.ledger.round(round_id)
        if rnd.status != RoundStatus.OPEN:
            raise AggregationError(f"round {round_id} is not open (status: {RoundStatus(rnd.status).name.lower()})")
        _, doc = load_task_document(self.ledger, self.store, rnd.task_version)
        base_bytes = self.store.get(rnd.base_model_cid)
        if sha256_digest(base_bytes) != bytes(rnd.base_model_digest):
            raise IntegrityError(f"round {round_id}: base model {rnd.base_model_cid} does not match its recorded digest")
        base = decode_global(base_bytes)
        commitments = self.ledger.commitments(round_id)
        outcomes = [fetch_committed(self.store, c) for c in commitments]
        # The round rests on these blobs: keep them on this node for auditors, whatever the
        # uploading participant's node does later.
        for outcome in outcomes:
            if outcome.data is not None:
                self.store.pin(outcome.commitment.cid)
        downloaded = len(base_bytes) + sum(len(o.data) for o in outcomes if o.data is not None)
        agg = aggregate(doc.strategy_config(), base, round_id, rnd.base_model_digest, outcomes, rnd.min_updates)
        if self.dishonest is not None and agg.model_blob is not None:
            agg = self._cheat(agg, doc, base, round_id, rnd.base_model_digest, outcomes, rnd.min_updates)
        rejected = tuple((r.participant, r.rule, r.reason) for r in agg.rejections)
        if agg.model_blob is None or agg.model_digest is None:
            reason = agg.too_few_reason or "no model"
            report = self.ledger.close_round(round_id, reason)
            self.reports.append(report)
            log.warning("round %d closed without a model: %s (tx %s)", round_id, reason, report.tx_hash)
            return RoundOutcome(round_id, False, None, None, (), rejected, len(commitments), reason, report, downloaded, 0)
        model_cid = self.store.put(agg.model_blob)
        root = inclusion_root(commitments, agg.included)
        by_addr = {c.participant.lower(): c for c in commitments}
        strategy_digest = doc.strategy_digest()
        evidence = Evidence(
            round_id=round_id,
            base_model_digest=rnd.base_model_digest,
            model_digest=agg.model_digest,
            aggregation_digest=strategy_digest,
            merkle_root=root,
            included=tuple(
                IncludedUpdate(c.participant, c.update_digest, c.cid, c.num_samples, leaf_of(c))
                for c in (by_addr[a.lower()] for a in agg.included)
            ),
            rejected=tuple(RejectedUpdate(p, r, w) for p, r, w in rejected),
        )
        ev_bytes = evidence.to_bytes()
        ev_cid = self.store.put(ev_bytes)
        report = self.ledger.finalize_round(
            round_id, agg.model_digest, model_cid, root, strategy_digest, sha256_digest(ev_bytes), ev_cid, len(agg.included)
        )
        self.reports.append(report)
        log.info(
            "round %d finalised: model %s, %d included, %d rejected (tx %s, gas %d)",
            round_id, digest_hex(agg.model_digest), len(agg.included), len(rejected), report.tx_hash, report.gas_used,
        )
        return RoundOutcome(
            round_id, True, agg.model_digest, model_cid, agg.included, rejected, len(commitments), None, report,
            downloaded, len(agg.model_blob) + len(ev_bytes), dict(agg.metrics),
        )

    def _cheat(self, agg: RoundAggregate, doc: TaskDocument, base: GlobalModel, round_id: RoundId,
               base_digest: Digest, outcomes: list[FetchOutcome], min_updates: int) -> RoundAggregate:
        if self.dishonest == "shift-model":
            assert agg.model_blob is not None
            model = decode_global(agg.model_blob)
            blob = encode_global(
                round_id=round_id, base_model_digest=base_digest, weights=shift_weights(model.weights, 0.01),
                server_state=dict(model.server_state), num_samples=model.num_samples,
            )
            log.warning("round %d: publishing a shifted model (dishonest aggregator demonstration)", round_id)
            return RoundAggregate(blob, sha256_digest(blob), agg.included, agg.rejections, agg.num_samples, None, agg.metrics)
        # drop-update: leave out the last included update without recording why
        if len(agg.included) <= max(1, min_updates):
            return agg
        dropped = agg.included[-1]
        kept = [o for o in outcomes if o.commitment.participant.lower() != dropped.lower()]
        log.warning("round %d: silently dropping %s (dishonest aggregator demonstration)", round_id, dropped)
        cheat = aggregate(doc.strategy_config(), base, round_id, base_digest, kept, min_updates)
        return cheat if cheat.model_blob is not None else agg

    def run_round(self, *, commit_timeout_s: float | None = None, commit_duration: int | None = None,
                  min_updates: int | None = None) -> RoundOutcome:
        """Open a round, wait for the commit phase to end, and finalise it."""
        rid = self.open_round(commit_duration=commit_duration, min_updates=min_updates)
        if not self.wait_commit_phase(rid, commit_timeout_s):
            raise AggregationError(f"round {rid}: commit phase did not end within {commit_timeout_s:.0f} s")
        return self.finalize(rid)

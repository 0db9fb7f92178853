"""Replay the federation's whole history from chain events and the blob store.

Nothing local is trusted: every blob is fetched by its CID and checked against the digest
committed on chain; the task document is checked against the chain's spec digests; each round
is re-aggregated with the recorded strategy from the committed updates alone, and the result must
match what the aggregator finalised bit for bit (model digest, Merkle root, rejections).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from fedchain.audit.findings import AuditFinding, AuditReport, FindingKind, RoundSummary
from fedchain.errors import BlobFormatError, FedchainError, StorageUnavailableError
from fedchain.federation.blobs import decode_global, initial_global
from fedchain.federation.evidence import Evidence
from fedchain.federation.rounds import (
    RULE_BLOB_INTEGRITY,
    RULE_BLOB_UNAVAILABLE,
    FetchOutcome,
    aggregate,
    fetch_committed,
    inclusion_root,
    leaf_of,
)
from fedchain.federation.task import TaskDocument, verify_task
from fedchain.fl.canonical import sha256_digest
from fedchain.ledger import (
    Ledger,
    ParticipantAdmitted,
    ParticipantRegistered,
    ParticipantRemoved,
    RoundClosed,
    RoundFinalized,
    RoundOpened,
    TaskConfig,
    TaskConfigured,
    UpdateCommitment,
    event_position,
)
from fedchain.types import Digest, RoundId, digest_hex

log = logging.getLogger(__name__)


@dataclass
class _RoundEvents:
    opened: RoundOpened
    commitments: list[UpdateCommitment] = field(default_factory=list)
    finalized: RoundFinalized | None = None
    closed: RoundClosed | None = None


@dataclass
class History:
    """The ledger's events, organised for the audit."""

    registered: dict[str, ParticipantRegistered]
    status_changes: dict[str, list[tuple[tuple[int, int], str]]]  # address -> [(position, status)]
    tasks: dict[int, TaskConfigured]
    rounds: dict[int, _RoundEvents]

    @classmethod
    def from_events(cls, events: Iterable[Any]) -> "History":
        registered: dict[str, ParticipantRegistered] = {}
        changes: dict[str, list[tuple[tuple[int, int], str]]] = defaultdict(list)
        tasks: dict[int, TaskConfigured] = {}
        rounds: dict[int, _RoundEvents] = {}
        for ev in sorted(events, key=event_position):
            if isinstance(ev, ParticipantRegistered):
                registered[ev.participant.lower()] = ev
                changes[ev.participant.lower()].append((event_position(ev), "pending"))
            elif isinstance(ev, ParticipantAdmitted):
                changes[ev.participant.lower()].append((event_position(ev), "active"))
            elif isinstance(ev, ParticipantRemoved):
                changes[ev.participant.lower()].append((event_position(ev), "removed"))
            elif isinstance(ev, TaskConfigured):
                tasks[int(ev.version)] = ev
            elif isinstance(ev, RoundOpened):
                rounds[int(ev.round_id)] = _RoundEvents(opened=ev)
            elif isinstance(ev, UpdateCommitment):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].commitments.append(ev)
            elif isinstance(ev, RoundFinalized):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].finalized = ev
            elif isinstance(ev, RoundClosed):
                if int(ev.round_id) in rounds:
                    rounds[int(ev.round_id)].closed = ev
        return cls(registered, dict(changes), tasks, rounds)

    def status_at(self, address: str, position: tuple[int, int]) -> str:
        status = "none"
        for pos, st in self.status_changes.get(address.lower(), []):
            if pos < position:
                status = st
        return status


class Auditor:
    """Audit a federation from a read-only view of its ledger and a blob store.

    ``gas_of`` (optional) maps a transaction hash to the gas it used, for reports.
    """

    def __init__(self, ledger: Ledger, store: Any, *, gas_of: Callable[[str], int] | None = None,
                 contract: str = "", chain_id: int = 0) -> None:
        self.ledger = ledger
        self.store = store
        self.gas_of = gas_of
        self.contract = contract
        self.chain_id = chain_id
        self._tasks: dict[int, TaskDocument | None] = {}
        self._task_findings: dict[int, AuditFinding] = {}

    # --- task documents ---------------------------------------------------------------------
    def _task(self, history: History, version: int, round_id: int) -> TaskDocument | None:
        if version in self._tasks:
            return self._tasks[version]
        ev = history.tasks.get(version)
        doc: TaskDocument | None = None
        if ev is None:
            self._task_findings[version] = AuditFinding(
                round_id, None, FindingKind.TASK_CONFIG_MISSING, f"task version {version} was never configured"
            )
        else:
            try:
                doc = TaskDocument.from_bytes(self.store.get(ev.config_cid))
                verify_task(doc, TaskConfig(ev.version, ev.model_spec_digest, ev.strategy_digest,
                                            ev.data_schema_digest, ev.config_cid))
            except StorageUnavailableError:
                raise
            except FedchainError as err:
                kind = FindingKind.TASK_CONFIG_MISMATCH if doc is not None else FindingKind.TASK_CONFIG_MISSING
                self._task_findings[version] = AuditFinding(
                    round_id, None, kind, f"task v{version} document {ev.config_cid}: {err}"
                )
                doc = None
        self._tasks[version] = doc
        return doc

    # --- the audit ------------------------------------------------------------------------
    def audit(self, round_filter: int | None = None) -> AuditReport:
        start = time.perf_counter()
        history = History.from_events(self.ledger.history())
        findings: list[AuditFinding] = []
        summaries: list[RoundSummary] = []
        checked: list[int] = []
        previous_model: Digest | None = None  # latest finalised model digest before the round
        for rid in sorted(history.rounds):
            rev = history.rounds[rid]
            if round_filter is None or rid == round_filter:
                round_findings, summary = self._audit_round(history, rev, previous_model)
                findings.extend(round_findings)
                summaries.append(summary)
                checked.append(rid)
            if rev.finalized is not None:
                previous_model = Digest(bytes(rev.finalized.model_digest))
        findings.extend(self._task_findings.values())
        findings.sort(key=lambda f: (f.round, f.participant or "", f.kind.value))
        participants = tuple(self._participants(history))
        return AuditReport(
            contract=self.contract,
            chain_id=self.chain_id,
            rounds_checked=tuple(checked),
            findings=tuple(findings),
            rounds=tuple(summaries),
            participants=participants,
            wall_time_s=time.perf_counter() - start,
        )

    def _participants(self, history: History) -> Iterable[dict[str, Any]]:
        for addr, reg in sorted(history.registered.items()):
            changes = history.status_changes.get(addr, [])
            yield {
                "address": reg.participant,
                "organisation": reg.organisation,
                "industry": reg.industry,
                "status": changes[-1][1] if changes else "none",
                "registered_block": reg.block_number,
                "commits": sum(
                    1 for r in history.rounds.values() for c in r.commitments if c.participant.lower() == addr
                ),
            }

    def _audit_round(self, history: History, rev: _RoundEvents, previous_model: Digest | None) -> tuple[list[AuditFinding], RoundSummary]:
        opened = rev.opened
        rid = RoundId(int(opened.round_id))
        findings: list[AuditFinding] = []

        def add(kind: FindingKind, detail: str, participant: str | None = None) -> None:
            findings.append(AuditFinding(int(rid), participant, kind, detail))

        doc = self._task(history, int(opened.task_version), int(rid))

        # each round starts from the previous round's model (or the task's initial model)
        if previous_model is not None:
            expected_base: Digest | None = previous_model
        elif doc is not None:
            expected_base = sha256_digest(initial_global(doc.spec(), doc.seed))
        else:
            expected_base = None
        if expected_base is not None and bytes(expected_base) != bytes(opened.base_model_digest):
            add(FindingKind.BASE_MODEL_MISMATCH,
                f"round opened on {digest_hex(opened.base_model_digest)}, expected {digest_hex(expected_base)}")
        base = None
        try:
            base_bytes = self.store.get(opened.base_model_cid)
            if sha256_digest(base_bytes) != bytes(opened.base_model_digest):
                add(FindingKind.BASE_MODEL_MISMATCH,
                    f"base model blob {opened.base_model_cid} does not hash to {digest_hex(opened.base_model_digest)}")
            else:
                base = decode_global(base_bytes)
        except StorageUnavailableError:
            raise
        except FedchainError as err:
            add(FindingKind.MODEL_MISSING, f"base model blob {opened.base_model_cid}: {err}")

        # committers and committed blobs
        seen: set[str] = set()
        outcomes: list[FetchOutcome] = []
        for c in rev.commitments:
            who = c.participant
            status = history.status_at(who, event_position(c))
            if status != "active":
                add(FindingKind.INACTIVE_COMMITTER, f"committed at block {c.block_number} while {status}", who)
            if who.lower() in seen:
                add(FindingKind.DUPLICATE_COMMIT, f"second commitment in tx {c.tx_hash}", who)
            seen.add(who.lower())
            out = fetch_committed(self.store, c)
            outcomes.append(out)
            if out.data is None:
                kind = FindingKind.BLOB_CID_MISMATCH if out.error_rule == RULE_BLOB_INTEGRITY else FindingKind.BLOB_MISSING
                add(kind, out.error or "", who)
            elif sha256_digest(out.data) != bytes(c.update_digest):
                add(FindingKind.BLOB_DIGEST_MISMATCH,
                    f"blob {c.cid} hashes to {digest_hex(sha256_digest(out.data))}, committed {digest_hex(c.update_digest)}", who)
            else:
                try:
                    from fedchain.federation.blobs import decode_update

                    decode_update(out.data)
                except BlobFormatError as err:
                    add(FindingKind.BLOB_FORMAT, str(err), who)
        unavailable = {o.commitment.participant.lower() for o in outcomes if o.data is None}

        # the aggregator's evidence
        evidence: Evidence | None = None
        fin = rev.finalized
        if fin is not None:
            try:
                ev_bytes = self.store.get(fin.evidence_cid)
                if sha256_digest(ev_bytes) != bytes(fin.evidence_digest):
                    add(FindingKind.EVIDENCE_MISMATCH, f"evidence {fin.evidence_cid} does not hash to the recorded digest")
                else:
                    evidence = Evidence.from_bytes(ev_bytes)
            except StorageUnavailableError:
                raise
            except FedchainError as err:
                add(FindingKind.EVIDENCE_MISSING, f"evidence {fin.evidence_cid}: {err}")
            if doc is not None and bytes(fin.aggregation_digest) != bytes(doc.strategy_digest()):
                add(FindingKind.AGGREGATION_CONFIG_MISMATCH,
                    f"round finalised with aggregation digest {digest_hex(fin.aggregation_digest)}, "
                    f"the task's strategy digest is {digest_hex(doc.strategy_digest())}")
            try:
                model_bytes = self.store.get(fin.model_cid)
                if sha256_digest(model_bytes) != bytes(fin.model_digest):
                    add(FindingKind.MODEL_MISMATCH, f"model blob {fin.model_cid} does not hash to the finalised digest")
            except StorageUnavailableError:
                raise
            except FedchainError as err:
                add(FindingKind.MODEL_MISSING, f"model blob {fin.model_cid}: {err}")

        # replay the aggregation
        recomputed = None
        if doc is not None and base is not None:
            recomputed = aggregate(doc.strategy_config(), base, rid, opened.base_model_digest, outcomes, int(opened.min_updates))
        by_addr = {c.participant.lower(): c for c in rev.commitments}
        if evidence is not None:
            self._check_evidence(add, evidence, fin, rev, by_addr, opened)
        if recomputed is not None:
            mine_rej = {(r.participant.lower(), r.rule) for r in recomputed.rejections}
            included_now = {a.lower() for a in recomputed.included}
            if evidence is not None:
                ev_rej = {(r.participant.lower(), r.rule): r for r in evidence.rejected}
                ev_inc = {u.participant.lower() for u in evidence.included}
                for key, r in ev_rej.items():
                    if key not in mine_rej:
                        add(FindingKind.REJECTION_NOT_REPRODUCED,
                            f"rule {r.rule} ({r.reason}) does not reject this update on replay", r.participant)
                for p, rule in sorted(mine_rej):
                    if (p, rule) not in ev_rej and p in ev_inc:
                        add(FindingKind.UNRECORDED_REJECTION,
                            f"rule {rule} rejects this update on replay, but the aggregator included it",
                            by_addr[p].participant if p in by_addr else p)
                for p, c in sorted(by_addr.items()):
                    if p not in ev_inc and not any(k[0] == p for k in ev_rej):
                        add(FindingKind.UPDATE_DROPPED, "committed update is neither included nor rejected in the evidence",
                            c.participant)
            # if a blob needed for the replay is unavailable now, the replay cannot be compared
            replay_blocked = bool(unavailable) and (
                evidence is None or any(u.participant.lower() in unavailable for u in evidence.included)
            )
            if fin is not None:
                if replay_blocked:
                    add(FindingKind.MODEL_UNVERIFIABLE,
                        f"{len(unavailable)} committed blob(s) unavailable; the model cannot be recomputed")
                elif recomputed.model_digest is None:
                    add(FindingKind.MODEL_MISMATCH, f"replay produces no model ({recomputed.too_few_reason}) "
                        "but the round was finalised")
                else:
                    if bytes(recomputed.model_digest) != bytes(fin.model_digest):
                        add(FindingKind.MODEL_MISMATCH,
                            f"replayed model {digest_hex(recomputed.model_digest)} != finalised {digest_hex(fin.model_digest)}")
                    root = inclusion_root(rev.commitments, recomputed.included)
                    if bytes(root) != bytes(fin.merkle_root):
                        add(FindingKind.MERKLE_ROOT_MISMATCH,
                            f"replayed inclusion root {digest_hex(root)} != recorded {digest_hex(fin.merkle_root)}")
                    if int(fin.included_count) != len(recomputed.included):
                        add(FindingKind.INCLUDED_COUNT_MISMATCH,
                            f"recorded {fin.included_count} included, replay includes {len(recomputed.included)}")
            elif rev.closed is not None and recomputed.model_digest is not None and not unavailable:
                add(FindingKind.CLOSE_NOT_JUSTIFIED,
                    f"closed ({rev.closed.reason!r}) although {len(included_now)} valid update(s) aggregate to a model")

        gas: dict[str, int] = {}
        if self.gas_of is not None:
            gas["open"] = self.gas_of(opened.tx_hash)
            commits = [self.gas_of(c.tx_hash) for c in rev.commitments]
            gas["commit_total"] = sum(commits)
            gas["commit_max"] = max(commits, default=0)
            if fin is not None:
                gas["finalize"] = self.gas_of(fin.tx_hash)
            if rev.closed is not None:
                gas["close"] = self.gas_of(rev.closed.tx_hash)
        losses = []
        for o in outcomes:
            if o.data is not None:
                try:
                    from fedchain.federation.blobs import decode_update

                    loss = decode_update(o.data).extras.get("loss")
                    if isinstance(loss, (int, float)):
                        losses.append(float(loss))
                except FedchainError:
                    pass
        metrics = {"mean_client_loss": sum(losses) / len(losses)} if losses else {}
        status = "finalized" if fin is not None else ("closed" if rev.closed is not None else "open")
        summary = RoundSummary(
            round=int(rid),
            status=status,
            task_version=int(opened.task_version),
            base_model_digest=digest_hex(opened.base_model_digest),
            model_digest=digest_hex(fin.model_digest) if fin is not None else None,
            model_cid=fin.model_cid if fin is not None else None,
            committed=tuple(c.participant for c in rev.commitments),
            included=tuple(u.participant for u in evidence.included) if evidence is not None else (),
            rejected=tuple((r.participant, r.rule, r.reason) for r in evidence.rejected) if evidence is not None else (),
            num_samples=sum(u.num_samples for u in evidence.included) if evidence is not None else 0,
            close_reason=rev.closed.reason if rev.closed is not None else None,
            gas=gas,
            metrics=metrics,
            findings=len(findings),
        )
        return findings, summary

    @staticmethod
    def _check_evidence(add: Callable[..., None], evidence: Evidence, fin: Any, rev: _RoundEvents,
                        by_addr: dict[str, UpdateCommitment], opened: RoundOpened) -> None:
        if int(evidence.round_id) != int(opened.round_id) or bytes(evidence.model_digest) != bytes(fin.model_digest) \
                or bytes(evidence.merkle_root) != bytes(fin.merkle_root) \
                or bytes(evidence.base_model_digest) != bytes(opened.base_model_digest):
            add(FindingKind.EVIDENCE_MISMATCH, "evidence round, base model, model or Merkle root differ from the chain")
        if len(evidence.included) != int(fin.included_count):
            add(FindingKind.INCLUDED_COUNT_MISMATCH,
                f"evidence lists {len(evidence.included)} included updates, the chain records {fin.included_count}")
        for u in evidence.included:
            c = by_addr.get(u.participant.lower())
            if c is None:
                add(FindingKind.UNKNOWN_INCLUSION, "evidence includes an update that was never committed", u.participant)
            elif bytes(leaf_of(c)) != bytes(u.leaf) or bytes(c.update_digest) != bytes(u.update_digest):
                add(FindingKind.EVIDENCE_MISMATCH, "evidence leaf or digest differs from the committed one", u.participant)


__all__ = ["Auditor", "History", "RULE_BLOB_UNAVAILABLE"]

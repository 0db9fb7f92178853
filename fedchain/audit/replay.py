"""Replay the federation's whole history from chain events and the blob store.

Nothing local is trusted: every blob is fetched by its CID and checked against the digest
committed on chain; the task document is checked against the chain's spec digests; each round
is re-aggregated with the recorded strategy from the committed updates alone, and the result must
match what the aggregator finalised bit for bit (model digest, Merkle root, rejections).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from fedchain.audit.findings import (
    AuditFinding,
    AuditReport,
    FindingKind,
    ParticipantSummary,
    RoundSummary,
)
from fedchain.errors import (
    BlobFormatError,
    ChainError,
    FedchainError,
    RpcUnavailableError,
    StorageUnavailableError,
)
from fedchain.protocol.blobs import (
    GlobalModel,
    decode_global,
    decode_update,
    initial_global,
)
from fedchain.protocol.evidence import Evidence
from fedchain.protocol.rounds import (
    RULE_BLOB_INTEGRITY,
    RULE_BLOB_UNAVAILABLE,
    FetchOutcome,
    RoundAggregate,
    aggregate,
    fetch_committed,
    inclusion_root,
    leaf_of,
    structure_problems,
)
from fedchain.protocol.task import TaskDocument, verify_task
from fedchain.codec.canonical import sha256_digest
from fedchain.fl.records import ClientUpdate
from fedchain.ports import (
    Ledger,
    LedgerEvent,
    ParticipantAdmitted,
    ParticipantRegistered,
    ParticipantRemoved,
    ParticipantStatus,
    RoundClosed,
    RoundFinalized,
    RoundOpened,
    RoundStatus,
    TaskConfig,
    TaskConfigured,
    UpdateCommitment,
    event_position,
)
from fedchain.ports import BlobStore
from fedchain.types import ZERO_DIGEST, Digest, RoundId, digest_hex

log = logging.getLogger(__name__)

AddFinding = Callable[..., None]


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
    # lower-case address -> [(event position, status from then on)]
    status_changes: dict[str, list[tuple[tuple[int, int], ParticipantStatus]]]
    tasks: dict[int, TaskConfigured]
    rounds: dict[int, _RoundEvents]

    @classmethod
    def from_events(cls, events: Iterable[LedgerEvent]) -> History:
        registered: dict[str, ParticipantRegistered] = {}
        changes: dict[str, list[tuple[tuple[int, int], ParticipantStatus]]] = defaultdict(list)
        tasks: dict[int, TaskConfigured] = {}
        rounds: dict[int, _RoundEvents] = {}
        for ev in sorted(events, key=event_position):
            if isinstance(ev, ParticipantRegistered):
                registered[ev.participant.lower()] = ev
                changes[ev.participant.lower()].append((event_position(ev), ParticipantStatus.PENDING))
            elif isinstance(ev, ParticipantAdmitted):
                changes[ev.participant.lower()].append((event_position(ev), ParticipantStatus.ACTIVE))
            elif isinstance(ev, ParticipantRemoved):
                changes[ev.participant.lower()].append((event_position(ev), ParticipantStatus.REMOVED))
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

    def status_at(self, address: str, position: tuple[int, int]) -> ParticipantStatus:
        status = ParticipantStatus.NONE
        for pos, st in self.status_changes.get(address.lower(), []):
            if pos < position:
                status = st
        return status


@dataclass(frozen=True)
class _Task:
    """A verified task document and the model structure it implies."""

    doc: TaskDocument
    initial_blob: bytes
    shapes: Mapping[str, tuple[int, ...]]
    state_prefixes: tuple[str, ...]


class Auditor:
    """Audit a federation from a read-only view of its ledger and a blob store.

    ``gas_of`` (optional) maps a transaction hash to the gas it used, for reports.
    ``from_block`` is where the event log is read from (the deployment block by default);
    rounds that start before it are reported as missing, as the contract's storage knows them.
    """

    def __init__(self, ledger: Ledger, store: BlobStore, *, gas_of: Callable[[str], int] | None = None,
                 contract: str = "", chain_id: int = 0, from_block: int = 0) -> None:
        self.ledger = ledger
        self.store = store
        self.gas_of = gas_of
        self.contract = contract
        self.chain_id = chain_id
        self.from_block = from_block
        self._tasks: dict[int, _Task | None] = {}
        self._task_findings: dict[int, AuditFinding] = {}

    # --- task documents ---------------------------------------------------------------------
    def _task(self, history: History, version: int, round_id: int) -> _Task | None:
        if version in self._tasks:
            return self._tasks[version]
        ev = history.tasks.get(version)
        task: _Task | None = None
        if ev is None:
            self._task_findings[version] = AuditFinding(
                round_id, None, FindingKind.TASK_CONFIG_MISSING, f"task version {version} was never configured"
            )
        else:
            doc: TaskDocument | None = None
            try:
                doc = TaskDocument.from_bytes(self.store.get(ev.config_cid))
                verify_task(doc, TaskConfig(ev.version, ev.model_spec_digest, ev.strategy_digest,
                                            ev.data_schema_digest, ev.config_cid))
                task = self._task_structure(doc)
            except StorageUnavailableError:
                raise
            except FedchainError as err:
                kind = FindingKind.TASK_CONFIG_MISMATCH if doc is not None else FindingKind.TASK_CONFIG_MISSING
                self._task_findings[version] = AuditFinding(
                    round_id, None, kind, f"task v{version} document {ev.config_cid}: {err}"
                )
        self._tasks[version] = task
        return task

    @staticmethod
    def _task_structure(doc: TaskDocument) -> _Task:
        from fedchain.fl.strategies import strategy_from_config

        blob = initial_global(doc.spec(), doc.seed)
        shapes = {name: tuple(value.shape) for name, value in decode_global(blob).weights.items()}
        prefixes = tuple(strategy_from_config(doc.strategy_config()).state_prefixes)
        return _Task(doc, blob, shapes, prefixes)

    # --- the audit ------------------------------------------------------------------------
    def audit(self, round_filter: int | None = None) -> AuditReport:
        start = time.perf_counter()
        history = History.from_events(self.ledger.history(self.from_block))
        findings: list[AuditFinding] = []
        summaries: list[RoundSummary] = []
        checked: list[int] = []
        previous_model: Digest | None = None  # latest finalised model digest before the round
        for rid in sorted(history.rounds):
            rev = history.rounds[rid]
            if round_filter is None or rid == round_filter:
                try:
                    round_findings, summary = self._audit_round(history, rev, previous_model)
                except (StorageUnavailableError, RpcUnavailableError):
                    raise  # the auditor's own store or node is down: no verdict, not a finding
                except FedchainError as err:
                    log.warning("round %d: replay failed: %s", rid, err)
                    round_findings = [AuditFinding(rid, None, FindingKind.REPLAY_FAILED, f"{type(err).__name__}: {err}")]
                    summary = self._bare_summary(rev)
                round_findings += self._check_ledger_round(rev)
                findings.extend(round_findings)
                summaries.append(dataclasses.replace(summary, findings=len(round_findings)))
                checked.append(rid)
            if rev.finalized is not None:
                previous_model = Digest(bytes(rev.finalized.model_digest))
        findings.extend(self._check_ledger_rounds(history, round_filter))
        findings.extend(self._task_findings.values())
        findings.sort(key=lambda f: (f.round, f.participant or "", f.kind.value))
        return AuditReport(
            contract=self.contract,
            chain_id=self.chain_id,
            rounds_checked=tuple(checked),
            findings=tuple(findings),
            rounds=tuple(summaries),
            participants=tuple(self._participants(history)),
            wall_time_s=time.perf_counter() - start,
        )

    def _participants(self, history: History) -> Iterator[ParticipantSummary]:
        for addr, reg in sorted(history.registered.items()):
            changes = history.status_changes.get(addr, [])
            yield ParticipantSummary(
                address=reg.participant,
                organisation=reg.organisation,
                industry=reg.industry,
                status=(changes[-1][1] if changes else ParticipantStatus.NONE).name.lower(),
                registered_block=reg.block_number,
                commits=sum(1 for r in history.rounds.values() for c in r.commitments if c.participant.lower() == addr),
            )

    # --- events against the contract's storage --------------------------------------------
    def _check_ledger_rounds(self, history: History, round_filter: int | None) -> list[AuditFinding]:
        """The rounds in the event log are exactly 1..latestRoundId(), and the current model is
        the last finalised one."""
        findings: list[AuditFinding] = []
        latest = int(self.ledger.latest_round_id())
        for rid in range(1, latest + 1):
            if rid not in history.rounds and round_filter in (None, rid):
                findings.append(AuditFinding(rid, None, FindingKind.ROUND_MISSING,
                                             f"the contract records round {rid} but the event log has no RoundOpened for it"))
        for rid in sorted(history.rounds):
            if not 1 <= rid <= latest and round_filter in (None, rid):
                findings.append(AuditFinding(rid, None, FindingKind.LEDGER_INCONSISTENT,
                                             f"the event log opens round {rid}, the contract's latest round is {latest}"))
        if round_filter is None:
            finalized = [r.finalized for _, r in sorted(history.rounds.items()) if r.finalized is not None]
            expected = bytes(finalized[-1].model_digest) if finalized else bytes(ZERO_DIGEST)
            current = bytes(self.ledger.current_model_digest())
            if current != expected:
                findings.append(AuditFinding(latest, None, FindingKind.LEDGER_INCONSISTENT,
                                             f"the contract's current model is {digest_hex(current)}, the last finalised "
                                             f"model in the event log is {digest_hex(expected)}"))
        return findings

    def _check_ledger_round(self, rev: _RoundEvents) -> list[AuditFinding]:
        """A round's storage (getRound) against its events."""
        rid = int(rev.opened.round_id)
        try:
            rec = self.ledger.round(RoundId(rid))
        except RpcUnavailableError:
            raise
        except ChainError as err:
            return [AuditFinding(rid, None, FindingKind.LEDGER_INCONSISTENT, f"the contract cannot show the round: {err}")]
        fin, closed = rev.finalized, rev.closed
        status = RoundStatus.FINALIZED if fin is not None else RoundStatus.CLOSED if closed is not None else RoundStatus.OPEN
        zero = bytes(ZERO_DIGEST)
        expected: list[tuple[str, object, object]] = [
            ("status", RoundStatus(rec.status).name.lower(), status.name.lower()),
            ("baseModelDigest", digest_hex(rec.base_model_digest), digest_hex(rev.opened.base_model_digest)),
            ("deadline", int(rec.deadline), int(rev.opened.deadline)),
            ("minUpdates", int(rec.min_updates), int(rev.opened.min_updates)),
            ("taskVersion", int(rec.task_version), int(rev.opened.task_version)),
            ("commitCount", int(rec.commit_count), len(rev.commitments)),
            ("includedCount", int(rec.included_count), int(fin.included_count) if fin is not None else 0),
            ("modelDigest", digest_hex(rec.model_digest), digest_hex(fin.model_digest if fin is not None else zero)),
            ("merkleRoot", digest_hex(rec.merkle_root), digest_hex(fin.merkle_root if fin is not None else zero)),
            ("aggregationDigest", digest_hex(rec.aggregation_digest),
             digest_hex(fin.aggregation_digest if fin is not None else zero)),
            ("evidenceDigest", digest_hex(rec.evidence_digest), digest_hex(fin.evidence_digest if fin is not None else zero)),
        ]
        if closed is not None:
            expected.append(("commitCount (RoundClosed)", int(rec.commit_count), int(closed.commit_count)))
        return [
            AuditFinding(rid, None, FindingKind.LEDGER_INCONSISTENT,
                         f"getRound().{name} is {stored}, the events say {seen}")
            for name, stored, seen in expected
            if stored != seen
        ]

    # --- one round --------------------------------------------------------------------------
    def _audit_round(self, history: History, rev: _RoundEvents, previous_model: Digest | None) -> tuple[list[AuditFinding], RoundSummary]:
        opened = rev.opened
        rid = RoundId(int(opened.round_id))
        findings: list[AuditFinding] = []

        def add(kind: FindingKind, detail: str, participant: str | None = None) -> None:
            findings.append(AuditFinding(int(rid), participant, kind, detail))

        task = self._task(history, int(opened.task_version), int(rid))

        # each round starts from the previous round's model (or the task's initial model)
        if previous_model is not None:
            expected_base: Digest | None = previous_model
        elif task is not None:
            expected_base = sha256_digest(task.initial_blob)
        else:
            expected_base = None
        if expected_base is not None and bytes(expected_base) != bytes(opened.base_model_digest):
            add(FindingKind.BASE_MODEL_MISMATCH,
                f"round opened on {digest_hex(opened.base_model_digest)}, expected {digest_hex(expected_base)}")
        base: GlobalModel | None = None
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
        base_problems = structure_problems(base, task.shapes, task.state_prefixes) if base and task else []

        # committers and committed blobs
        seen: set[str] = set()
        outcomes: list[FetchOutcome] = []
        decoded: list[ClientUpdate] = []
        for c in rev.commitments:
            who = c.participant
            status = history.status_at(who, event_position(c))
            if status != ParticipantStatus.ACTIVE:
                add(FindingKind.INACTIVE_COMMITTER, f"committed at block {c.block_number} while {status.name.lower()}", who)
            if who.lower() in seen:
                add(FindingKind.DUPLICATE_COMMIT, f"second commitment in tx {c.tx_hash}", who)
            seen.add(who.lower())
            out = fetch_committed(self.store, c, retry_window_s=0)
            outcomes.append(out)
            if out.data is None:
                kind = FindingKind.BLOB_CID_MISMATCH if out.error_rule == RULE_BLOB_INTEGRITY else FindingKind.BLOB_MISSING
                add(kind, out.error or "", who)
            elif sha256_digest(out.data) != bytes(c.update_digest):
                add(FindingKind.BLOB_DIGEST_MISMATCH,
                    f"blob {c.cid} hashes to {digest_hex(sha256_digest(out.data))}, committed {digest_hex(c.update_digest)}", who)
            else:
                try:
                    decoded.append(decode_update(out.data))
                except BlobFormatError as err:
                    add(FindingKind.BLOB_FORMAT, str(err), who)
        unavailable = {o.commitment.participant.lower() for o in outcomes if o.data is None}

        # the aggregator's evidence and model
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
            if task is not None and bytes(fin.aggregation_digest) != bytes(task.doc.strategy_digest()):
                add(FindingKind.AGGREGATION_CONFIG_MISMATCH,
                    f"round finalised with aggregation digest {digest_hex(fin.aggregation_digest)}, "
                    f"the task's strategy digest is {digest_hex(task.doc.strategy_digest())}")
            try:
                model_bytes = self.store.get(fin.model_cid)
                if sha256_digest(model_bytes) != bytes(fin.model_digest):
                    add(FindingKind.MODEL_MISMATCH, f"model blob {fin.model_cid} does not hash to the finalised digest")
                elif task is not None:
                    try:
                        problems = structure_problems(decode_global(model_bytes), task.shapes, task.state_prefixes)
                    except BlobFormatError as err:
                        problems = [str(err)]
                    if problems:
                        add(FindingKind.MODEL_MALFORMED, f"model blob {fin.model_cid}: {'; '.join(problems)}")
            except StorageUnavailableError:
                raise
            except FedchainError as err:
                add(FindingKind.MODEL_MISSING, f"model blob {fin.model_cid}: {err}")

        by_addr = {c.participant.lower(): c for c in rev.commitments}
        if evidence is not None and fin is not None:
            self._check_evidence(add, evidence, fin, by_addr, opened)
            outcomes = self._as_the_aggregator_saw(add, evidence, outcomes)

        # replay the aggregation
        recomputed: RoundAggregate | None = None
        if task is not None and base is not None:
            if base_problems:
                add(FindingKind.REPLAY_FAILED, f"base model {opened.base_model_cid} is malformed: {'; '.join(base_problems)}")
            else:
                try:
                    recomputed = aggregate(task.doc.strategy_config(), base, rid, opened.base_model_digest, outcomes,
                                           int(opened.min_updates))
                except StorageUnavailableError:
                    raise
                except FedchainError as err:
                    add(FindingKind.REPLAY_FAILED, f"{type(err).__name__}: {err}")
        if recomputed is not None:
            self._compare(add, recomputed, evidence, rev, by_addr, unavailable)

        return findings, self._summary(rev, evidence, decoded, len(findings))

    def _as_the_aggregator_saw(self, add: AddFinding, evidence: Evidence,
                               outcomes: list[FetchOutcome]) -> list[FetchOutcome]:
        """The outcomes the replay starts from: a blob the aggregator rejected as unavailable stays
        unavailable for the replay even if it can be fetched now (reported, as a warning)."""
        missed = {r.participant.lower(): r for r in evidence.rejected if r.rule == RULE_BLOB_UNAVAILABLE}
        replay: list[FetchOutcome] = []
        for out in outcomes:
            rejection = missed.get(out.commitment.participant.lower())
            if rejection is not None and out.data is not None:
                add(FindingKind.REJECTED_UNAVAILABLE_NOW_AVAILABLE,
                    f"rejected as unavailable ({rejection.reason}), but blob {out.commitment.cid} can be fetched now",
                    out.commitment.participant)
                out = FetchOutcome(out.commitment, None, RULE_BLOB_UNAVAILABLE, rejection.reason)
            replay.append(out)
        return replay

    @staticmethod
    def _compare(add: AddFinding, recomputed: RoundAggregate, evidence: Evidence | None, rev: _RoundEvents,
                 by_addr: dict[str, UpdateCommitment], unavailable: set[str]) -> None:
        fin = rev.finalized
        mine_rej = {(r.participant.lower(), r.rule) for r in recomputed.rejections}
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
                f"closed ({rev.closed.reason!r}) although {len(recomputed.included)} valid update(s) aggregate to a model")

    # --- summaries --------------------------------------------------------------------------
    def _gas(self, rev: _RoundEvents) -> dict[str, int]:
        gas: dict[str, int] = {}
        if self.gas_of is None:
            return gas
        gas["open"] = self.gas_of(rev.opened.tx_hash)
        commits = [self.gas_of(c.tx_hash) for c in rev.commitments]
        gas["commit_total"] = sum(commits)
        gas["commit_max"] = max(commits, default=0)
        if rev.finalized is not None:
            gas["finalize"] = self.gas_of(rev.finalized.tx_hash)
        if rev.closed is not None:
            gas["close"] = self.gas_of(rev.closed.tx_hash)
        return gas

    def _summary(self, rev: _RoundEvents, evidence: Evidence | None, updates: list[ClientUpdate],
                 findings: int) -> RoundSummary:
        opened, fin = rev.opened, rev.finalized
        losses = [float(u.extras["loss"]) for u in updates
                  if isinstance(u.extras.get("loss"), (int, float)) and not isinstance(u.extras.get("loss"), bool)]
        status = "finalized" if fin is not None else ("closed" if rev.closed is not None else "open")
        return RoundSummary(
            round=int(opened.round_id),
            status=status,
            task_version=int(opened.task_version),
            base_model_digest=digest_hex(opened.base_model_digest),
            model_digest=digest_hex(fin.model_digest) if fin is not None else None,
            model_cid=fin.model_cid if fin is not None else None,
            committed=tuple(c.participant for c in rev.commitments),
            included=tuple(u.participant for u in evidence.included) if evidence is not None else (),
            rejected=tuple(evidence.rejected) if evidence is not None else (),
            num_samples=sum(u.num_samples for u in evidence.included) if evidence is not None else 0,
            close_reason=rev.closed.reason if rev.closed is not None else None,
            gas=self._gas(rev),
            metrics={"mean_client_loss": sum(losses) / len(losses)} if losses else {},
            findings=findings,
        )

    def _bare_summary(self, rev: _RoundEvents) -> RoundSummary:
        """The summary of a round whose replay failed: only what the events say."""
        return self._summary(rev, None, [], 1)

    @staticmethod
    def _check_evidence(add: AddFinding, evidence: Evidence, fin: RoundFinalized,
                        by_addr: dict[str, UpdateCommitment], opened: RoundOpened) -> None:
        if int(evidence.round_id) != int(opened.round_id) or bytes(evidence.model_digest) != bytes(fin.model_digest) \
                or bytes(evidence.merkle_root) != bytes(fin.merkle_root) \
                or bytes(evidence.base_model_digest) != bytes(opened.base_model_digest):
            add(FindingKind.EVIDENCE_MISMATCH, "evidence round, base model, model or Merkle root differ from the chain")
        if bytes(evidence.aggregation_digest) != bytes(fin.aggregation_digest):
            add(FindingKind.EVIDENCE_MISMATCH,
                f"evidence aggregation digest {digest_hex(evidence.aggregation_digest)} != finalised "
                f"{digest_hex(fin.aggregation_digest)}")
        if len(evidence.included) != int(fin.included_count):
            add(FindingKind.INCLUDED_COUNT_MISMATCH,
                f"evidence lists {len(evidence.included)} included updates, the chain records {fin.included_count}")
        for u in evidence.included:
            c = by_addr.get(u.participant.lower())
            if c is None:
                add(FindingKind.UNKNOWN_INCLUSION, "evidence includes an update that was never committed", u.participant)
            elif bytes(leaf_of(c)) != bytes(u.leaf) or bytes(c.update_digest) != bytes(u.update_digest):
                add(FindingKind.EVIDENCE_MISMATCH, "evidence leaf or digest differs from the committed one", u.participant)
        for r in evidence.rejected:
            if r.participant.lower() not in by_addr:
                add(FindingKind.UNKNOWN_REJECTION,
                    f"evidence rejects an update (rule {r.rule}) that was never committed in this round", r.participant)


__all__ = ["RULE_BLOB_UNAVAILABLE", "Auditor", "History"]

"""Replay the federation's whole history from chain events and the blob store.

Nothing local is trusted: every blob is fetched by its CID and checked against the digest
committed on chain; every task version's document is checked against the chain's spec digests;
each round is re-aggregated with the recorded strategy from the committed updates alone, and the
result must match what the aggregator finalised bit for bit (model digest, Merkle root,
rejections with their reasons, the evidence's CIDs and sample counts).

A secure-aggregation round has no update in the clear: its replay builds the round context from the
chain (members at the RoundOpened event, their registered keys, the task's secagg parameters),
fetches and checks every advertisement, masked input and set of unmasking shares the chain lists,
unmasks the survivors' sum with the very code the aggregator ran
(:func:`~fedchain.protocol.secure.secure_aggregate`) and compares the model, the included set, the
inclusion root and the evidence's secure section bit for bit; a participant whose record or revealed
share was wrong (a lying survivor) is named in a ``secagg_*`` finding while the round still verifies.
No masked input is ever decoded as an update.

Every finding names the party responsible for it (see :class:`~fedchain.audit.findings.Party`).
A participant's update that the aggregator left out by a rule the replay reproduces is
*handled* participant misconduct: reported, but the round stands. Nothing the store returns
can crash the audit: a blob, evidence or task document that does not decode is a finding that
names whoever published it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedchain.audit.findings import (
    SECAGG_KINDS,
    AuditFinding,
    AuditReport,
    FindingKind,
    ParticipantSummary,
    Party,
    RoundSummary,
    Severity,
)
from fedchain.audit.governance import GovernanceView, audit_admin, audit_rounds_governance, built_on_disputed
from fedchain.audit.history import History, RoundEvents
from fedchain.audit.incentives import IncentivesView, audit_incentives
from fedchain.audit.privacy import INCLUDED, LEFT_OUT, UNDECIDED, PolicyLine, PrivateCommit, audit_privacy, private_commit
from fedchain.audit.report import SECURE_NORM_NOTE, Contribution, ReportMeta, round_chain, task_line, timeline
from fedchain.codec.canonical import sha256_digest
from fedchain.codec.cid import cid_problem
from fedchain.errors import (
    AuditError,
    ChainError,
    ConfigError,
    FedchainError,
    RpcUnavailableError,
    SecAggError,
    StorageError,
    StorageUnavailableError,
)
from fedchain.fl.records import ClientUpdate
from fedchain.ports import (
    BlobStore,
    Ledger,
    ParticipantStatus,
    RoundFinalized,
    RoundOpened,
    RoundStatus,
    TaskConfig,
    UpdateCommitment,
    UpdateSeal,
    event_position,
    is_secure_ledger,
    is_signed_ledger,
)
from fedchain.protocol.blobs import (
    GlobalModel,
    decode_global,
    decode_update,
    initial_global,
)
from fedchain.protocol.evidence import Evidence, SecureEvidence, secure_evidence
from fedchain.protocol.rounds import (
    RULE_BLOB_FORMAT,
    RULE_BLOB_INTEGRITY,
    RULE_BLOB_UNAVAILABLE,
    RULE_INVALID_CID,
    FetchOutcome,
    RoundAggregate,
    aggregate,
    fetch_committed,
    inclusion_root,
    leaf_of,
    structure_problems,
)
from fedchain.protocol.secure import (
    RULE_SECAGG,
    RULE_SECAGG_RECORD,
    RoundRecords,
    SecureAggregate,
    fetch_round_records,
    model_dimension,
    round_context,
    round_members,
    secure_aggregate,
)
from fedchain.protocol.signed_rounds import active_at_open, resolve_signed_round
from fedchain.protocol.task import TaskDocument, load_model_source, verify_task
from fedchain.secagg.context import RoundContext
from fedchain.types import ZERO_DIGEST, Address, Cid, Digest, RoundId, digest_hex

log = logging.getLogger(__name__)

SELECTION_RULES = frozenset({"krum", "multi_krum"})
"""Robust rules that leave out updates by comparing them with the others, not because an update
breaks a rule of the task: a rejection by one of them is no misconduct and no finding."""

# Rules decided without the blob's bytes: the aggregator could not fetch it, or the bytes it got
# did not match the CID, or the CID does not parse.
_FETCH_RULES = frozenset({RULE_BLOB_UNAVAILABLE, RULE_BLOB_INTEGRITY, RULE_BLOB_FORMAT, RULE_INVALID_CID})

# Findings about the store's copy of a participant's blob now (it may have been fine when used).
_STORE_STATE = frozenset({FindingKind.BLOB_MISSING, FindingKind.BLOB_CID_MISMATCH})

# What a decoder of hostile bytes may raise, a FedchainError or otherwise. Caught around decoding what
# the store returned (the boundary where untrusted input enters), so that each failure is a finding
# naming the publisher, and once more around a whole round as the last line (a finding that names
# no culprit, logged with its traceback); the store being unreachable is re-raised before.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    FedchainError, ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, OverflowError,
)

FETCH_WORKERS = 16
"""Blobs the audit fetches at once."""

SECAGG_RULES = frozenset({RULE_SECAGG, RULE_SECAGG_RECORD})
"""The rules of a secure round's rejections: a record not used, or a finding of the unmasking. Neither takes an update
out of the sum (a survivor named by one may well be included), so they are not counted as the update's listing."""

FETCH_DEADLINE_S = 120.0
"""How long the audit waits for one round's blobs, all together; a blob not fetched by then is
reported as unavailable, as the store could not deliver it."""


class AddFinding:
    """Collects one round's findings, filling in the round and the aggregator that acted in it."""

    def __init__(self, round_id: int, aggregator: str) -> None:
        self.round_id = round_id
        self.aggregator = aggregator
        self.findings: list[AuditFinding] = []

    def __call__(self, kind: FindingKind, detail: str, participant: str | None = None, *,
                 responsible: Party | None = None, severity: Severity | None = None,
                 address: str | None = None) -> None:
        """Record a finding; one that blames the aggregator names the account that acted in the round."""
        party = responsible if responsible is not None else kind.responsible
        if address is None and party is Party.AGGREGATOR:
            address = self.aggregator
        self.findings.append(AuditFinding.of(self.round_id, participant, kind, detail, responsible=party,
                                             severity=severity, address=address))


@dataclass(frozen=True)
class _Task:
    """A verified task document and the model structure it implies."""

    doc: TaskDocument
    initial_blob: bytes
    shapes: Mapping[str, tuple[int, ...]]
    state_prefixes: tuple[str, ...]


@dataclass(frozen=True)
class Fetched:
    """One blob the aggregator or governance published, as the audit fetched it: its bytes, or
    what the store said instead."""

    data: bytes | None
    detail: str = ""


def fetch_blobs(store: BlobStore, cids: Sequence[str], commitments: Sequence[UpdateCommitment], *,
                 workers: int, deadline_s: float) -> tuple[list[Fetched], list[FetchOutcome]]:
    """Fetch published blobs (``cids``) and committed ones concurrently, at most ``workers`` at a
    time, under one overall deadline.

    A published CID that is not a CID is not asked for. A committed blob is fetched once with
    :func:`~fedchain.protocol.rounds.fetch_committed`, so its outcome is classified exactly as the
    aggregator's is (a CID that does not parse, bytes that do not match the CID, a malformed or
    missing blob). Any other store error about one blob, or a
    blob not fetched by the deadline (its fetch is abandoned, bounded by the store's own timeout),
    makes that blob unavailable. Only an unreachable store is raised: then the audit has no verdict."""
    published: list[Fetched] = [Fetched(None, "not fetched")] * len(cids)
    outcomes: list[FetchOutcome] = [FetchOutcome(c, None, RULE_BLOB_UNAVAILABLE, f"blob {c.cid} not fetched")
                                    for c in commitments]
    jobs = len(cids) + len(commitments)
    if not jobs:
        return published, outcomes
    late = f"not fetched within the audit's deadline of {deadline_s:g}s for a round's blobs"
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, jobs)), thread_name_prefix="fedchain-audit")
    try:
        gets: dict[Future[bytes], int] = {}
        for i, cid in enumerate(cids):
            problem = cid_problem(cid)
            if problem is None:
                gets[pool.submit(store.get, Cid(cid))] = i
            else:
                published[i] = Fetched(None, f"{cid!r} is not a CID: {problem}")
        fetches: dict[Future[FetchOutcome], int] = {
            pool.submit(fetch_committed, store, c, retry_window_s=0): i for i, c in enumerate(commitments)}
        every: list[Future[Any]] = [*gets, *fetches]
        done, _ = wait(every, timeout=deadline_s)
        for fut in done:
            down = fut.exception()
            if isinstance(down, StorageUnavailableError):
                raise down
        for get, i in gets.items():
            if get not in done:
                published[i] = Fetched(None, f"blob {cids[i]!r} {late}")
            elif get.exception() is None:
                published[i] = Fetched(bytes(get.result()))
            else:
                published[i] = Fetched(None, describe_error(_store_error(get.exception())))
        for fetch, i in fetches.items():
            c = commitments[i]
            if fetch not in done:
                outcomes[i] = FetchOutcome(c, None, RULE_BLOB_UNAVAILABLE, f"blob {c.cid!r} {late}")
            elif fetch.exception() is None:
                outcomes[i] = fetch.result()
            else:
                err = _store_error(fetch.exception())
                outcomes[i] = FetchOutcome(c, None, RULE_BLOB_UNAVAILABLE, f"blob {c.cid!r}: {describe_error(err)}")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return published, outcomes


def _store_error(err: BaseException | None) -> BaseException:
    """A store's error about one blob, which must be a StorageError (anything else is raised)."""
    if not isinstance(err, StorageError):
        raise err if err is not None else AssertionError("no error")
    return err


@dataclass(frozen=True, eq=False)
class _SecureReplay:
    """A secure round replayed: its context (None: it has none), records and unmasking."""

    ctx: RoundContext | None
    records: RoundRecords | None
    result: SecureAggregate


@dataclass
class _Blame:
    """A finding about one participant's committed blob, whose party and severity depend on
    what the aggregator did with the update (decided once the round is replayed)."""

    participant: str
    kind: FindingKind
    detail: str


@dataclass(frozen=True)
class RoundVerification:
    """One round replayed on its own (:meth:`Auditor.verify_round`): its findings, the model it
    was finalised with and the one the replay computed (None: none), and how long it took."""

    round_id: RoundId
    aggregator: str
    published_digest: Digest | None
    replayed_digest: Digest | None
    findings: tuple[AuditFinding, ...]
    seconds: float

    @property
    def errors(self) -> tuple[AuditFinding, ...]:
        """The findings of severity error: what makes the round wrong or unverifiable."""
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)


class Auditor:
    """Audit a federation from a read-only view of its ledger and a blob store.

    ``gas_of`` (optional) maps a transaction hash to the gas it used, for reports.
    ``from_block`` is where the event log is read from (the deployment block by default);
    rounds that start before it are reported as missing, as the contract's storage knows them.
    ``fetch_workers`` blobs are fetched at once, and a round's blobs get ``fetch_deadline_s``
    seconds all together. ``governance`` (the deployment's governor, timelock and membership, or
    the statement that it has none) lets the report check every admin action against the
    executed proposal behind it (:mod:`fedchain.audit.governance`); without it the report's
    governance section covers what the Federation's own events show (attestations, disputes,
    exclusion contests) and says that admin actions were not checked. ``incentives`` (the
    incentives contract's events) adds the report's incentives section
    (:mod:`fedchain.audit.incentives`).
    """

    def __init__(self, ledger: Ledger, store: BlobStore, *, gas_of: Callable[[str], int] | None = None,
                 contract: str = "", chain_id: int = 0, from_block: int = 0,
                 fetch_workers: int = FETCH_WORKERS, fetch_deadline_s: float = FETCH_DEADLINE_S,
                 governance: GovernanceView | None = None, incentives: IncentivesView | None = None) -> None:
        self.ledger = ledger
        self.store = store
        self.gas_of = gas_of
        self.contract = contract
        self.chain_id = chain_id
        self.from_block = from_block
        self.fetch_workers = fetch_workers
        self.fetch_deadline_s = fetch_deadline_s
        self.governance = governance
        self.incentives = incentives  # the incentives contract's events (None: no incentives section)
        self._tasks: dict[int, _Task | None] = {}
        self._task_findings: dict[int, AuditFinding] = {}
        # (round, lower-case participant) of each exclusion as unavailable -> whether the audit
        # fetches the blob now with its committed digest
        self.exclusions: dict[tuple[int, str], bool] = {}
        # the commitments of rounds under a task with a privacy policy, in chain order (the
        # privacy section's input), and the policies of the task versions audited
        self._private: dict[int, list[PrivateCommit]] = {}
        self._policies: dict[int, PolicyLine] = {}

    # --- task documents ---------------------------------------------------------------------
    def _task(self, history: History, version: int, round_id: int) -> _Task | None:
        """The task version's verified document and model structure, or None (with a finding
        blaming governance) when it is missing, malformed or does not match the chain's digests."""
        if version in self._tasks:
            return self._tasks[version]
        ev = history.tasks.get(version)
        task: _Task | None = None
        finding: tuple[FindingKind, str] | None = None
        if ev is None:
            finding = (FindingKind.TASK_CONFIG_MISSING, f"task version {version} was never configured")
        else:
            where = f"task v{version} document {ev.config_cid!r}"
            fetched = fetch_blobs(self.store, [ev.config_cid], (), workers=1, deadline_s=self.fetch_deadline_s)[0][0]
            if fetched.data is None:
                finding = (FindingKind.TASK_CONFIG_MISSING, f"{where}: {fetched.detail}")
            else:
                try:
                    doc = TaskDocument.from_bytes(fetched.data)
                except DECODE_ERRORS as err:
                    finding = (FindingKind.TASK_CONFIG_MALFORMED, f"{where} does not decode: {describe_error(err)}")
                else:
                    private = history.privacy.get(version)
                    try:
                        verify_task(doc, TaskConfig(
                            ev.version, ev.model_spec_digest, ev.strategy_digest, ev.data_schema_digest, ev.config_cid,
                            ev.max_commit_duration,
                            privacy_policy_digest=private.policy_digest if private is not None else ZERO_DIGEST,
                            epsilon_budget=int(private.epsilon_budget) if private is not None else 0))
                    except FedchainError as err:
                        finding = (FindingKind.TASK_CONFIG_MISMATCH, f"{where}: {err}")
                    else:
                        try:
                            load_model_source(doc, self.store, None)  # the auditor replays the task's own model
                            task = self._task_structure(doc)
                        except DECODE_ERRORS as err:
                            finding = (FindingKind.TASK_CONFIG_MALFORMED,
                                       f"{where}: its model cannot be built: {describe_error(err)}")
        if finding is not None:
            self._task_findings[version] = AuditFinding.of(
                round_id, None, finding[0], finding[1], address=ev.configured_by if ev is not None else None)
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
        """Replay every round (or only ``round_filter``), check every task version's document
        (the version of that round only, with ``round_filter``) and the ledger's own bookkeeping."""
        start = time.perf_counter()
        history = History.from_events(self.ledger.history(self.from_block))
        self._private, self._policies = {}, {}
        findings: list[AuditFinding] = []
        summaries: list[RoundSummary] = []
        checked: list[int] = []
        versions: set[int] = set()
        for rid in sorted(history.rounds):
            rev = history.rounds[rid]
            if round_filter is None or rid == round_filter:
                versions.add(int(rev.opened.task_version))
                round_findings, summary, _ = self._round(history, rev)
                findings.extend(round_findings)
                summaries.append(dataclasses.replace(summary, findings=len(round_findings)))
                checked.append(rid)
        if round_filter is None:  # every task version, including those no round ran under
            for version in sorted(history.tasks):
                self._task(history, version, 0)
                versions.add(version)
        findings.extend(self._check_ledger_rounds(history, round_filter))
        findings.extend(f for v, f in sorted(self._task_findings.items()) if v in versions)
        rounds_audit = audit_rounds_governance(history, findings, round_filter, self._fetch_published,
                                               exclusions=self.exclusions)
        findings.extend(rounds_audit.findings)
        if round_filter is None:  # admin actions and roles: on a whole audit only
            governance = audit_admin(history, self.governance, rounds_audit, self.contract)
            findings.extend(governance.findings)
        else:
            governance = rounds_audit.as_unchecked()
        incentives = None
        if self.incentives is not None:
            incentives = audit_incentives(self.ledger, self.store, self.incentives.history(), round_filter=round_filter)
            findings.extend(incentives.findings)
        privacy = None
        if self._policies:
            privacy = audit_privacy([c for rid in sorted(self._private) for c in self._private[rid]],
                                    [self._policies[v] for v in sorted(self._policies) if v in versions],
                                    complete=round_filter is None)
            findings.extend(privacy.findings)
        findings.sort(key=lambda f: (f.round, f.participant or "", f.kind.value))
        tasks = tuple(task_line(history.tasks[v], (t.doc.to_json() if (t := self._tasks.get(v)) is not None else None))
                      for v in sorted(versions) if v in history.tasks)
        meta = ReportMeta(chain_id=self.chain_id, contract=self.contract, from_block=self.from_block,
                          to_block=max((ev.block_number for ev in history.events), default=None),
                          rpc_url=getattr(getattr(self.ledger, "conn", None), "url", None),
                          store=_describe_store(self.store))
        return AuditReport(
            tasks=tasks,
            timeline=timeline(history.events, self.gas_of),
            meta=meta,
            contract=self.contract,
            chain_id=self.chain_id,
            rounds_checked=tuple(checked),
            findings=tuple(findings),
            rounds=tuple(summaries),
            participants=tuple(self._participants(history)),
            wall_time_s=time.perf_counter() - start,
            governance=governance,
            incentives=incentives,
            privacy=privacy,
        )

    def verify_round(self, round_id: int) -> RoundVerification:
        """Replay one round as a member does before training on its model: the round's replay,
        its storage against its events and its task version's document (none of the other
        rounds). Raises AuditError when the event log has no such round."""
        start = time.perf_counter()
        history = History.from_events(self.ledger.history(self.from_block))
        rev = history.rounds.get(int(round_id))
        if rev is None:
            raise AuditError(f"round {round_id} is not in the event log of {self.contract or 'the federation'}")
        findings, _, recomputed = self._round(history, rev)
        built_on_disputed(history, int(round_id), findings)
        version = int(rev.opened.task_version)
        if version in self._task_findings:
            findings.append(self._task_findings[version])
        findings.sort(key=lambda f: (f.round, f.participant or "", f.kind.value))
        fin = rev.finalized
        return RoundVerification(
            round_id=RoundId(int(round_id)),
            aggregator=rev.aggregator,
            published_digest=Digest(bytes(fin.model_digest)) if fin is not None else None,
            replayed_digest=recomputed.model_digest if recomputed is not None else None,
            findings=tuple(findings),
            seconds=time.perf_counter() - start,
        )

    def _fetch_published(self, cids: Sequence[str]) -> list[tuple[bytes | None, str]]:
        """Blobs published under ``cids`` (findings blobs of disputes), fetched at once."""
        fetched, _ = fetch_blobs(self.store, cids, (), workers=self.fetch_workers, deadline_s=self.fetch_deadline_s)
        return [(f.data, f.detail) for f in fetched]

    def _round(self, history: History, rev: RoundEvents) -> tuple[list[AuditFinding], RoundSummary,
                                                                    RoundAggregate | None]:
        """One round's findings (its replay and its storage against its events), its summary and
        the replay's aggregate (None when it could not be replayed)."""
        rid = int(rev.opened.round_id)
        recomputed: RoundAggregate | None = None
        try:
            round_findings, summary, recomputed = self._audit_round(history, rev)
        except (StorageUnavailableError, RpcUnavailableError):
            raise  # the auditor's own store or node is down: no verdict, not a finding
        except DECODE_ERRORS as err:
            # not expected: every decode of what the store returned is caught where it happens
            log.exception("round %d: replay failed", rid)
            round_findings = [AuditFinding.of(rid, None, FindingKind.REPLAY_FAILED,
                                              f"the replay failed: {describe_error(err)}")]
            summary = self._bare_summary(rev)
        round_findings += self._check_ledger_round(rev, history)
        return round_findings, summary, recomputed

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
                declared_samples=int(reg.declared_samples),
                approved_samples=int(admitted[-1].approved_samples) if (admitted := history.admissions.get(addr)) else None,
            )

    # --- events against the contract's storage --------------------------------------------
    def _check_ledger_rounds(self, history: History, round_filter: int | None) -> list[AuditFinding]:
        """The rounds in the event log are exactly 1..latestRoundId(), and the current model is
        the last finalised one."""
        findings: list[AuditFinding] = []
        latest = int(self.ledger.latest_round_id())
        for rid in range(1, latest + 1):
            if rid not in history.rounds and round_filter in (None, rid):
                findings.append(AuditFinding.of(rid, None, FindingKind.ROUND_MISSING,
                                                f"the contract records round {rid} but the event log has no RoundOpened for it"))
        for rid in sorted(history.rounds):
            if not 1 <= rid <= latest and round_filter in (None, rid):
                findings.append(AuditFinding.of(rid, None, FindingKind.LEDGER_INCONSISTENT,
                                                f"the event log opens round {rid}, the contract's latest round is {latest}"))
        if round_filter is None:
            changes = history.model_changes()
            expected, expected_round = (bytes(changes[-1][1]), changes[-1][2]) if changes else (bytes(ZERO_DIGEST), 0)
            current = bytes(self.ledger.current_model_digest())
            if current != expected:
                findings.append(AuditFinding.of(latest, None, FindingKind.LEDGER_INCONSISTENT,
                                                f"the contract's current model is {digest_hex(current)}, the event "
                                                f"log's finalisations and disputes make it {digest_hex(expected)}"))
            current_round = int(self.ledger.current_model_round())
            if current_round != expected_round:
                findings.append(AuditFinding.of(latest, None, FindingKind.LEDGER_INCONSISTENT,
                                                f"the contract's current model comes from round {current_round}, the "
                                                f"event log's from round {expected_round} (0: the initial model or a "
                                                "fallback after a dispute)"))
        return findings

    def _check_ledger_round(self, rev: RoundEvents, history: History) -> list[AuditFinding]:
        """A round's storage (getRound) against its events (a round is private when its task version
        was configured with a privacy budget)."""
        rid = int(rev.opened.round_id)
        try:
            rec = self.ledger.round(RoundId(rid))
        except RpcUnavailableError:
            raise
        except ChainError as err:
            return [AuditFinding.of(rid, None, FindingKind.LEDGER_INCONSISTENT, f"the contract cannot show the round: {err}")]
        fin, closed = rev.finalized, rev.closed
        status = RoundStatus.FINALIZED if fin is not None else RoundStatus.CLOSED if closed is not None else RoundStatus.OPEN
        if rev.disputed is not None:
            status = RoundStatus.DISPUTED
        zero = bytes(ZERO_DIGEST)
        budget = history.privacy.get(int(rev.opened.task_version))
        expected: list[tuple[str, object, object]] = [
            ("status", RoundStatus(rec.status).name.lower(), status.name.lower()),
            ("baseModelDigest", digest_hex(rec.base_model_digest), digest_hex(rev.opened.base_model_digest)),
            ("deadline", int(rec.deadline), int(rev.opened.deadline)),
            ("minUpdates", int(rec.min_updates), int(rev.opened.min_updates)),
            ("taskVersion", int(rec.task_version), int(rev.opened.task_version)),
            ("revealDeadline", int(rec.reveal_deadline), int(rev.opened.reveal_deadline)),
            ("sealCount", int(rec.seal_count), len(rev.seals)),
            ("commitCount", int(rec.commit_count),
             len(rev.commitments) + (int(rev.commitment_set.count) if rev.commitment_set is not None else 0)),
            ("includedCount", int(rec.included_count), int(fin.included_count) if fin is not None else 0),
            ("modelDigest", digest_hex(rec.model_digest), digest_hex(fin.model_digest if fin is not None else zero)),
            ("merkleRoot", digest_hex(rec.merkle_root), digest_hex(fin.merkle_root if fin is not None else zero)),
            ("aggregationDigest", digest_hex(rec.aggregation_digest),
             digest_hex(fin.aggregation_digest if fin is not None else zero)),
            ("evidenceDigest", digest_hex(rec.evidence_digest), digest_hex(fin.evidence_digest if fin is not None else zero)),
            ("private", bool(rec.private), budget is not None and int(budget.epsilon_budget) != 0),
        ]
        if closed is not None:
            expected.append(("commitCount (RoundClosed)", int(rec.commit_count), int(closed.commit_count)))
        secure = rev.secure
        expected += [
            ("secure", bool(rec.secure), secure is not None),
            ("advertisementCount", int(rec.advertisement_count), len(rev.advertisements)),
            ("unmaskingCount", int(rec.unmasking_count), len(rev.unmasking)),
        ]
        posted = rev.commitment_set
        expected += [
            ("signed", bool(rec.signed), rev.signed is not None),
            ("escapeDeadline", int(rec.escape_deadline), int(posted.escape_deadline) if posted is not None else 0),
            ("setCount", int(rec.set_count), int(posted.count) if posted is not None else 0),
            ("setRoot", digest_hex(rec.set_root), digest_hex(posted.set_root if posted is not None else zero)),
        ]
        if secure is not None:
            expected += [
                ("advertiseDeadline", int(rec.advertise_deadline), int(secure.advertise_deadline)),
                ("deadline (SecureRoundOpened)", int(rec.deadline), int(secure.deadline)),
                ("unmaskDeadline", int(rec.unmask_deadline), int(secure.unmask_deadline)),
            ]
        return [
            AuditFinding.of(rid, None, FindingKind.LEDGER_INCONSISTENT, f"getRound().{name} is {stored}, the events say {seen}")
            for name, stored, seen in expected
            if stored != seen
        ]

    # --- one round --------------------------------------------------------------------------
    def _audit_round(self, history: History,
                     rev: RoundEvents) -> tuple[list[AuditFinding], RoundSummary, RoundAggregate | None]:
        opened, fin = rev.opened, rev.finalized
        rid = RoundId(int(opened.round_id))
        add = AddFinding(int(rid), rev.aggregator)
        if rev.signed is not None:  # the round's commitments: the posted set's sound entries and the forced ones
            rev = self._resolve_signed(add, history, rev)
        blames: list[_Blame] = []
        secure = rev.secure is not None  # masked inputs, never decoded as updates
        task = self._task(history, int(opened.task_version), int(rid))

        # each round starts from the contract's current model when it opened: the latest
        # finalised one, the fallback after a dispute, or the task's initial model
        current = history.model_at(event_position(opened))
        if current is not None:
            expected_base: Digest | None = current[0]
        elif task is not None:
            expected_base = sha256_digest(task.initial_blob)
        else:
            expected_base = None
        if expected_base is not None and bytes(expected_base) != bytes(opened.base_model_digest):
            add(FindingKind.BASE_MODEL_MISMATCH,
                f"round opened on {digest_hex(opened.base_model_digest)}, expected {digest_hex(expected_base)}",
                address=opened.opened_by)

        # every blob of the round at once: base model, evidence, model, committed updates
        own = [opened.base_model_cid] + ([fin.evidence_cid, fin.model_cid] if fin is not None else [])
        fetched, committed = fetch_blobs(self.store, own, rev.commitments, workers=self.fetch_workers,
                                          deadline_s=self.fetch_deadline_s)
        base_fetch = fetched[0]

        base: GlobalModel | None = None
        if base_fetch.data is None:
            add(FindingKind.MODEL_MISSING, f"base model blob {opened.base_model_cid!r}: {base_fetch.detail}",
                address=opened.opened_by)
        elif sha256_digest(base_fetch.data) != bytes(opened.base_model_digest):
            add(FindingKind.BASE_MODEL_MISMATCH,
                f"base model blob {opened.base_model_cid} does not hash to {digest_hex(opened.base_model_digest)}",
                address=opened.opened_by)
        else:
            try:
                base = decode_global(base_fetch.data)
            except DECODE_ERRORS as err:
                add(FindingKind.MODEL_MALFORMED, f"base model blob {opened.base_model_cid} does not decode: "
                    f"{describe_error(err)}", address=opened.opened_by)
        base_problems = structure_problems(base, task.shapes, task.state_prefixes) if base and task else []

        # committers and committed blobs
        seen: set[str] = set()
        outcomes: list[FetchOutcome] = []
        decoded: list[ClientUpdate] = []
        readable: list[ClientUpdate | None] = []  # per commitment: its decoded update, if any
        for c, out in zip(rev.commitments, committed, strict=True):
            who = c.participant
            status = history.status_at(who, event_position(c))
            if status != ParticipantStatus.ACTIVE:
                add(FindingKind.INACTIVE_COMMITTER, f"committed at block {c.block_number} while {status.name.lower()}", who)
            if who.lower() in seen:
                add(FindingKind.DUPLICATE_COMMIT, f"second commitment in tx {c.tx_hash}", who)
            approved = history.approved_samples_at(who, event_position(c))
            if approved is not None and int(c.num_samples) > approved:
                add(FindingKind.SAMPLES_OVER_APPROVED, f"committed {c.num_samples} samples in tx {c.tx_hash}, its "
                    f"admission approved {approved}; the contract refuses such a commit", who)
            seen.add(who.lower())
            outcomes.append(out)
            readable.append(None)
            if out.data is None:
                kind = {RULE_INVALID_CID: FindingKind.INVALID_CID, RULE_BLOB_INTEGRITY: FindingKind.BLOB_CID_MISMATCH,
                        RULE_BLOB_FORMAT: FindingKind.BLOB_FORMAT}.get(out.error_rule or "", FindingKind.BLOB_MISSING)
                blames.append(_Blame(who, kind, out.error or ""))
            elif sha256_digest(out.data) != bytes(c.update_digest):
                blames.append(_Blame(who, FindingKind.BLOB_DIGEST_MISMATCH,
                                     f"blob {c.cid} hashes to {digest_hex(sha256_digest(out.data))}, "
                                     f"committed {digest_hex(c.update_digest)}"))
            elif not secure:
                try:
                    decoded.append(decode_update(out.data))
                    readable[-1] = decoded[-1]
                except DECODE_ERRORS as err:
                    blames.append(_Blame(who, FindingKind.BLOB_FORMAT, f"blob {c.cid} does not decode: {describe_error(err)}"))
        unavailable = {o.commitment.participant.lower() for o in outcomes if o.data is None
                       and o.error_rule != RULE_INVALID_CID}
        self._check_seals(add, rev)

        # the aggregator's evidence and model
        evidence: Evidence | None = None
        if fin is not None:
            ev_fetch, model_fetch = fetched[1], fetched[2]
            if ev_fetch.data is None:
                add(FindingKind.EVIDENCE_MISSING, f"evidence {fin.evidence_cid!r}: {ev_fetch.detail}")
            elif sha256_digest(ev_fetch.data) != bytes(fin.evidence_digest):
                add(FindingKind.EVIDENCE_MISMATCH, f"evidence {fin.evidence_cid} does not hash to the recorded digest")
            else:
                try:
                    evidence = Evidence.from_bytes(ev_fetch.data)
                except DECODE_ERRORS as err:
                    add(FindingKind.EVIDENCE_MALFORMED, f"evidence {fin.evidence_cid} does not decode: {describe_error(err)}")
            if task is not None and bytes(fin.aggregation_digest) != bytes(task.doc.strategy_digest()):
                add(FindingKind.AGGREGATION_CONFIG_MISMATCH,
                    f"round finalised with aggregation digest {digest_hex(fin.aggregation_digest)}, "
                    f"the task's strategy digest is {digest_hex(task.doc.strategy_digest())}")
            if model_fetch.data is None:
                add(FindingKind.MODEL_MISSING, f"model blob {fin.model_cid!r}: {model_fetch.detail}")
            elif sha256_digest(model_fetch.data) != bytes(fin.model_digest):
                add(FindingKind.MODEL_MISMATCH, f"model blob {fin.model_cid} does not hash to the finalised digest")
            elif task is not None:
                try:
                    problems = structure_problems(decode_global(model_fetch.data), task.shapes, task.state_prefixes)
                except DECODE_ERRORS as err:
                    problems = [f"does not decode: {describe_error(err)}"]
                if problems:
                    add(FindingKind.MODEL_MALFORMED, f"model blob {fin.model_cid}: {'; '.join(problems)}")

        by_addr = {c.participant.lower(): c for c in rev.commitments}
        if evidence is not None and fin is not None:
            self._check_evidence(add, evidence, fin, by_addr, opened)
            outcomes = self._as_the_aggregator_saw(add, evidence, outcomes, history, rev)

        # replay the aggregation
        recomputed: RoundAggregate | None = None
        replayed: _SecureReplay | None = None
        if task is not None and base is not None:
            if base_problems:
                add(FindingKind.REPLAY_FAILED, f"base model {opened.base_model_cid} is malformed: "
                    f"{'; '.join(base_problems)}", responsible=Party.AGGREGATOR, address=opened.opened_by)
            elif secure:
                replayed = self._replay_secure(task, base, rev, history)
                recomputed = replayed.result.aggregate
            else:
                recomputed = self._replay(add, task, base, rev, outcomes)
        if evidence is not None and (secure or evidence.secagg is not None):
            self._check_secure_evidence(add, evidence, rev, replayed)
        lost = self._lost_records(evidence, replayed)
        if recomputed is not None and lost:
            add(FindingKind.MODEL_UNVERIFIABLE, f"{len(lost)} record blob(s) of the secure round unavailable now "
                f"({', '.join(lost)}); the unmasking cannot be re-derived")
        elif recomputed is not None:
            self._compare(add, recomputed, evidence, rev, by_addr, unavailable, outcomes)

        self._attribute(add, rev, evidence, recomputed, blames, outcomes, replayed)
        self._collect_private(task, rev, evidence, readable)
        summary = self._summary(rev, evidence, decoded, len(add.findings))
        if replayed is not None and replayed.result.unmasked is not None:  # how the round was unmasked, re-derived
            summary = dataclasses.replace(summary, metrics={**summary.metrics, **{
                k: float(v) for k, v in replayed.result.aggregate.metrics.items() if isinstance(v, int)}})
        return add.findings, summary, recomputed

    def _collect_private(self, task: _Task | None, rev: RoundEvents, evidence: Evidence | None,
                         updates: Sequence[ClientUpdate | None]) -> None:
        """Record the round's commitments for the privacy section when its task has a privacy policy:
        each with its decoded update and what the aggregator did with it (a finalised round whose
        evidence the audit cannot read counts as including every update)."""
        policy = task.doc.privacy if task is not None else None
        if task is None or policy is None:
            return
        version = int(rev.opened.task_version)
        epochs = task.doc.local_epochs()
        self._policies.setdefault(version, PolicyLine(version, policy, epochs))
        included = {u.participant.lower() for u in evidence.included} if evidence is not None else None
        commits: list[PrivateCommit] = []
        for c, update in zip(rev.commitments, updates, strict=True):
            if rev.finalized is not None:
                outcome = INCLUDED if included is None or c.participant.lower() in included else LEFT_OUT
            else:
                outcome = LEFT_OUT if rev.closed is not None else UNDECIDED
            commits.append(private_commit(
                round_id=int(rev.opened.round_id), participant=c.participant, task_version=version, policy=policy,
                local_epochs=epochs, epsilon_spent=int(c.epsilon_spent), accountant_digest=c.accountant_digest,
                outcome=outcome, update=update, tx_hash=c.tx_hash))
        self._private[int(rev.opened.round_id)] = commits

    @staticmethod
    def _check_seals(add: AddFinding, rev: RoundEvents) -> None:
        """Commit-reveal: every update revealed (committed) after the participant sealed it, one
        seal each, and none in a round without commit-reveal (the contract refuses all of these);
        a seal never revealed in a round that ended is the participant's withheld update."""
        sealed = int(rev.opened.reveal_deadline) != 0
        first_seal: dict[str, UpdateSeal] = {}
        for seal in rev.seals:
            who = seal.participant.lower()
            if not sealed:
                add(FindingKind.LEDGER_INCONSISTENT, f"sealed an update (tx {seal.tx_hash}) in a round without "
                    "commit-reveal", seal.participant)
            elif who in first_seal:
                add(FindingKind.LEDGER_INCONSISTENT, f"sealed a second update (tx {seal.tx_hash})", seal.participant)
            first_seal.setdefault(who, seal)
        if not sealed:
            return
        revealed = {c.participant.lower() for c in rev.commitments}
        for c in rev.commitments:
            found = first_seal.get(c.participant.lower())
            if found is None or event_position(found) > event_position(c):
                add(FindingKind.LEDGER_INCONSISTENT, f"revealed an update (tx {c.tx_hash}) it never sealed; the "
                    "contract refuses a reveal without a seal", c.participant)
        if rev.finalized is None and rev.closed is None:
            return  # still in its commit or reveal phase
        for who, seal in sorted(first_seal.items()):
            if who not in revealed:
                add(FindingKind.SEAL_NOT_REVEALED, f"sealed an update (tx {seal.tx_hash}) and never revealed it; the "
                    "round ended without it", seal.participant, severity=Severity.HANDLED)

    @staticmethod
    def _replay(add: AddFinding, task: _Task, base: GlobalModel, rev: RoundEvents,
                outcomes: list[FetchOutcome]) -> RoundAggregate | None:
        """Re-aggregate the round (None, with a finding, when it cannot be). Nothing a participant
        sent makes :func:`~fedchain.protocol.rounds.aggregate` raise (an update that defeats the
        arithmetic is rejected as ``blob_format``), so a failure here is not a participant's."""
        opened = rev.opened
        try:
            return aggregate(task.doc.strategy_config(), base, RoundId(int(opened.round_id)), opened.base_model_digest,
                             outcomes, int(opened.min_updates), privacy=task.doc.privacy)
        except StorageUnavailableError:
            raise
        except DECODE_ERRORS as err:
            log.error("round %d: the replay's aggregation failed: %s", int(opened.round_id), describe_error(err))
            add(FindingKind.REPLAY_FAILED, f"the aggregation cannot be replayed: {describe_error(err)}")
            return None

    def _resolve_signed(self, add: AddFinding, history: History, rev: RoundEvents) -> RoundEvents:
        """A signed round's events with its commitments resolved (:func:`resolve_signed_round`, what the aggregator
        ran): every fault of its posted set is a finding against the aggregator naming the entry's participant."""
        chain_id, contract = self._federation_id()
        if not contract:  # the signatures are bound to the deployment: without it none could be checked
            raise ConfigError(f"round {rev.opened.round_id} is a signed round: auditing it needs the chain id and the "
                              "contract address its commitments are signed for")
        eligible = active_at_open(history.events, rev.opened.round_id)
        resolved = resolve_signed_round(self.store, rev.commitment_set, rev.commitments, chain_id=chain_id,
                                        contract=contract, eligible=eligible)
        posted = rev.commitment_set
        if posted is not None and resolved.unavailable is not None:
            add(FindingKind.COMMITMENT_SET_MISSING, resolved.unavailable, address=posted.posted_by)
        for p in resolved.problems:
            add(FindingKind.COMMITMENT_SET_INVALID, f"{p.kind.value}: {p.detail}",
                str(p.participant) if p.participant is not None else None, responsible=Party.AGGREGATOR,
                address=posted.posted_by if posted is not None else rev.opened.opened_by)
        for forced, signed in resolved.swapped:
            add(FindingKind.DUPLICATE_COMMIT, f"forced update {forced.cid} (tx {forced.tx_hash}) in the escape window "
                f"though its signed update {signed.cid} is in the posted set; the signed one stands", str(forced.participant),
                responsible=Party.PARTICIPANT, address=forced.participant, severity=Severity.HANDLED)
        return dataclasses.replace(rev, commitments=list(resolved.commitments))

    def _federation_id(self) -> tuple[int, str]:
        """(chain id, contract address) that secure rounds' keys and shares are bound to: the ledger's own when
        it can say (a live verifier's), else the ones the auditor was given."""
        if is_secure_ledger(self.ledger) or is_signed_ledger(self.ledger):
            chain_id, contract = self.ledger.federation_id()
            return int(chain_id), str(contract)
        return int(self.chain_id), self.contract

    def _replay_secure(self, task: _Task, base: GlobalModel, rev: RoundEvents, history: History) -> _SecureReplay:
        """Re-derive a secure round's aggregate from the chain's events and the store alone, as the aggregator
        did (:func:`~fedchain.protocol.secure.secure_aggregate`); a round that has no context (no secagg
        configuration, fewer than two members with keys) has no model, as the aggregator's has none."""
        opened = rev.opened
        rid = RoundId(int(opened.round_id))
        try:
            if task.doc.secagg is None:
                raise SecAggError(f"task version {opened.task_version} has no secagg configuration")
            rnd = dataclasses.replace(self.ledger.round(rid), base_model_digest=opened.base_model_digest)
            members = round_members(history.events, rnd)
            chain_id, contract = self._federation_id()
            ctx = round_context(chain_id, Address(contract), rnd, members, task.doc.secagg, model_dimension(base))
        except SecAggError as err:
            reason = f"the round cannot be unmasked: {err}"
            return _SecureReplay(None, None, SecureAggregate(RoundAggregate(None, None, (), (), 0, reason, {}), None,
                                                             (), reason))
        records = fetch_round_records(self.store, ctx, rev.advertisements, rev.commitments, rev.unmasking, window_s=0)
        result = secure_aggregate(task.doc.strategy_config(), task.doc.secagg, base, rid, opened.base_model_digest,
                                  ctx, records, rev.commitments, int(opened.min_updates),
                                  privacy=task.doc.privacy)
        return _SecureReplay(ctx, records, result)

    @staticmethod
    def _lost_records(evidence: Evidence | None, replayed: _SecureReplay | None) -> list[str]:
        """The posters of a secure round's records that the store cannot deliver now although the aggregator
        used them (its evidence does not set them aside as unavailable)."""
        if replayed is None or replayed.records is None:
            return []
        refused = {(r.participant.lower(), r.reason) for r in evidence.rejected} if evidence is not None else set()
        return sorted({p.participant for p in replayed.records.problems
                       if "not available" in p.reason and (p.participant.lower(), p.rejection().reason) not in refused})

    @staticmethod
    def _check_secure_evidence(add: AddFinding, evidence: Evidence, rev: RoundEvents,
                               replayed: _SecureReplay | None) -> None:
        """The secure section of the evidence against the replay's, field by field."""
        if rev.secure is None:
            add(FindingKind.EVIDENCE_MISMATCH, "the evidence has a secagg section, but the round is not a secure round")
            return
        if evidence.secagg is None:
            add(FindingKind.EVIDENCE_MISMATCH, "the evidence of a secure-aggregation round lacks its secagg section")
            return
        if replayed is None or replayed.ctx is None or replayed.result.unmasked is None:
            return  # nothing re-derived to compare with (the model's findings say why)
        mine: SecureEvidence = secure_evidence(replayed.ctx, replayed.result.unmasked, rev.advertisements,
                                               rev.commitments, rev.unmasking)
        theirs = evidence.secagg
        for name in ("context_digest", "members", "threshold", "sum_digest", "survivors", "dropped", "revealers",
                     "findings", "advertisements", "masked_inputs", "unmasking"):
            got, want = getattr(theirs, name), getattr(mine, name)
            if got != want:
                add(FindingKind.EVIDENCE_MISMATCH, f"evidence secagg {name} is {_brief(got)}; the replay re-derives "
                    f"{_brief(want)}")

    def _as_the_aggregator_saw(self, add: AddFinding, evidence: Evidence, outcomes: list[FetchOutcome],
                               history: History, rev: RoundEvents) -> list[FetchOutcome]:
        """The outcomes the replay starts from: a blob the aggregator rejected as unavailable stays
        unavailable for the replay even if it can be fetched now.

        Such a blob, available now with its committed digest, is a warning when the participant
        never contested the exclusion (it may have been slow) or contested it and the aggregator
        answered that it is available; an error of the aggregator's when the contest went
        unanswered although the aggregator opened a round since (it answers contests before
        opening one), or when it answered "unavailable" of a blob the audit fetches."""
        rid = int(rev.opened.round_id)
        missed = {r.participant.lower(): r for r in evidence.rejected if r.rule == RULE_BLOB_UNAVAILABLE}
        replay: list[FetchOutcome] = []
        for out in outcomes:
            c = out.commitment
            who = c.participant.lower()
            rejection = missed.get(who)
            if rejection is not None:
                intact = out.data is not None and sha256_digest(out.data) == bytes(c.update_digest)
                self.exclusions[(rid, who)] = intact
                if out.data is not None:
                    self._escalate(add, history, rev, c, rejection.reason, intact)
                    out = FetchOutcome(c, None, RULE_BLOB_UNAVAILABLE, rejection.reason)
            replay.append(out)
        return replay

    @staticmethod
    def _escalate(add: AddFinding, history: History, rev: RoundEvents, c: UpdateCommitment, reason: str,
                  intact: bool) -> None:
        """The finding about an exclusion as unavailable of a blob the audit fetches now."""
        rid, who = int(rev.opened.round_id), c.participant.lower()
        now = f"rejected as unavailable ({reason}), but blob {c.cid} can be fetched now"
        contest = history.contests.get((rid, who))
        if contest is not None and (bytes(contest.update_digest) != bytes(c.update_digest) or contest.cid != c.cid):
            now += (f"; its contest (tx {contest.tx_hash}) names {contest.cid} / {digest_hex(contest.update_digest)}, "
                    "not the committed update, so it does not count")
            contest = None
        if contest is None or not intact:
            add(FindingKind.REJECTED_UNAVAILABLE_NOW_AVAILABLE, now, c.participant)
            return
        answer = history.answers.get((rid, who))
        contested = f"{now}; the participant contested the exclusion at block {contest.block_number} (tx {contest.tx_hash})"
        if answer is not None and answer.available:
            add(FindingKind.REJECTED_UNAVAILABLE_NOW_AVAILABLE,
                f"{contested} and the aggregator answered it available at block {answer.block_number}", c.participant,
                responsible=Party.AGGREGATOR, address=answer.answered_by)
        elif answer is not None:
            add(FindingKind.EXCLUSION_CONTEST_DENIED,
                f"{contested}; the aggregator answered it unavailable at block {answer.block_number} "
                f"(tx {answer.tx_hash}), yet the audit fetches it with its committed digest", c.participant,
                address=answer.answered_by)
        else:
            since = [r for r, ev in history.rounds.items() if event_position(ev.opened) > event_position(contest)]
            if since:
                add(FindingKind.EXCLUSION_CONTEST_UNANSWERED,
                    f"{contested}; the aggregator never answered, and opened round {min(since)} since", c.participant,
                    address=history.rounds[min(since)].opened.opened_by)
            else:
                add(FindingKind.EXCLUSION_CONTEST_UNANSWERED,
                    f"{contested}; not answered yet (the aggregator answers before it opens the next round)",
                    c.participant, severity=Severity.WARNING)

    @staticmethod
    def _compare(add: AddFinding, recomputed: RoundAggregate, evidence: Evidence | None, rev: RoundEvents,
                 by_addr: dict[str, UpdateCommitment], unavailable: set[str], outcomes: Sequence[FetchOutcome]) -> None:
        """The replay against what the aggregator recorded: rejections (rule and reason), the
        updates it dropped, the model, the Merkle root and the included count."""
        fin = rev.finalized
        mine = {(r.participant.lower(), r.rule): r for r in recomputed.rejections}
        # a blob the store cannot deliver now that the aggregator had (it did not reject it on
        # fetching): what the aggregator did with it cannot be checked
        ev_rej = {(r.participant.lower(), r.rule): r for r in evidence.rejected} if evidence is not None else {}
        fetch_rejected = {p for (p, rule) in ev_rej if rule in _FETCH_RULES}
        lost = unavailable - fetch_rejected
        if evidence is not None:
            ev_inc = {u.participant.lower() for u in evidence.included}
            with_bytes = {o.commitment.participant.lower() for o in outcomes if o.data is not None}
            for key, r in ev_rej.items():
                if key in mine:
                    replayed = mine[key].reason
                    if (key[0] in with_bytes or r.rule == RULE_INVALID_CID) and r.reason != replayed:
                        add(FindingKind.REJECTION_REASON_MISMATCH,
                            f"evidence gives rule {r.rule}'s reason as {r.reason!r}; on replay it is {replayed!r}",
                            r.participant)
                    elif key[0] not in with_bytes and r.rule in (RULE_BLOB_UNAVAILABLE, RULE_BLOB_INTEGRITY) \
                            and key[0] in by_addr and by_addr[key[0]].cid not in r.reason:
                        add(FindingKind.REJECTION_REASON_MISMATCH,
                            f"evidence gives rule {r.rule}'s reason as {r.reason!r}, which does not name the committed "
                            f"CID {by_addr[key[0]].cid}", r.participant)
                elif lost:
                    add(FindingKind.REJECTION_UNVERIFIABLE,
                        f"rule {r.rule} ({r.reason}) cannot be checked: {len(lost)} committed blob(s) the aggregator "
                        "used are unavailable now", r.participant)
                else:
                    add(FindingKind.REJECTION_NOT_REPRODUCED,
                        f"rule {r.rule} ({r.reason}) does not reject this update on replay", r.participant)
            for (p, rule), r in sorted(mine.items()):
                if (p, rule) not in ev_rej and p in ev_inc and p not in unavailable:
                    add(FindingKind.UNRECORDED_REJECTION,
                        f"rule {rule} rejects this update on replay ({r.reason}), but the aggregator included it",
                        by_addr[p].participant if p in by_addr else p)
            for p, c in sorted(by_addr.items()):
                if p not in ev_inc and not any(k[0] == p for k in ev_rej):
                    add(FindingKind.UPDATE_DROPPED, "committed update is neither included nor rejected in the evidence",
                        c.participant)
        replay_blocked = bool(lost) if evidence is not None else bool(unavailable)
        if fin is not None:
            if replay_blocked:
                add(FindingKind.MODEL_UNVERIFIABLE,
                    f"{len(lost or unavailable)} committed blob(s) unavailable now; the model cannot be recomputed")
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

    @staticmethod
    def _attribute(add: AddFinding, rev: RoundEvents, evidence: Evidence | None, recomputed: RoundAggregate | None,
                   blames: list[_Blame], outcomes: Sequence[FetchOutcome], replayed: _SecureReplay | None = None) -> None:
        """Findings about participants' updates, with the party to blame and the severity.

        A participant's faulty update that the aggregator left out (the round was closed, or its
        evidence does not include it) is handled misconduct; one it included is an error of the
        participant's as well as the aggregator's. A blob the store lost or corrupted after the
        aggregator used it (included it, or rejected it by a rule that needs its bytes) is the
        store's fault. An update the replay rejects by a rule it breaks (any but the selection rules)
        is misconduct in the same way. In a round still open nothing is decided yet: warnings."""
        decided = rev.finalized is not None or rev.closed is not None
        used = {u.participant.lower() for u in evidence.included} if evidence is not None else set()
        ev_rules: dict[str, set[str]] = defaultdict(set)
        for r in evidence.rejected if evidence is not None else ():
            ev_rules[r.participant.lower()].add(r.rule)
        blamed: set[str] = set()
        for b in blames:
            p = b.participant.lower()
            blamed.add(p)
            had_bytes = p in used or bool(ev_rules.get(p, set()) - _FETCH_RULES)
            if b.kind in _STORE_STATE and had_bytes:
                add(b.kind, f"{b.detail} (the aggregator used this blob, so the store lost or changed it since)",
                    b.participant, responsible=Party.INFRASTRUCTURE, severity=Severity.ERROR)
            elif not decided:
                add(b.kind, b.detail, b.participant, severity=Severity.WARNING)
            elif p in used:
                add(b.kind, f"{b.detail} (the aggregator included this update)", b.participant, severity=Severity.ERROR)
            else:
                add(b.kind, b.detail, b.participant, severity=Severity.HANDLED)
        if recomputed is None:
            return
        for r in recomputed.rejections:
            p = r.participant.lower()
            # a blob the audit could not fetch is reported from its own fetch; one rejected as
            # unavailable that can be fetched now, as a warning
            if p in blamed or r.rule in SELECTION_RULES or r.rule == RULE_BLOB_UNAVAILABLE or r.rule in SECAGG_RULES:
                continue
            kind = FindingKind.BLOB_FORMAT if r.rule == RULE_BLOB_FORMAT else FindingKind.UPDATE_REJECTED
            if not decided:
                add(kind, f"rule {r.rule} rejects this update: {r.reason}", r.participant, severity=Severity.WARNING)
            elif p in used:
                add(kind, f"rule {r.rule} rejects this update ({r.reason}), but the aggregator included it",
                    r.participant, severity=Severity.ERROR)
            else:
                add(kind, f"rejected by rule {r.rule}: {r.reason}", r.participant, severity=Severity.HANDLED)
            blamed.add(p)
        if replayed is not None:
            Auditor._attribute_secure(add, decided, replayed, blamed)

    @staticmethod
    def _attribute_secure(add: AddFinding, decided: bool, replayed: _SecureReplay, blamed: set[str]) -> None:
        """A secure round's unused records (warnings; a committed blob the audit reported already is not repeated)
        and each finding of its unmasking, against the participant it names: handled misconduct once the round
        ended (the unmasking went on without the offending record or share), a warning while it is open."""
        if replayed.records is not None:
            for problem in replayed.records.problems:
                if problem.participant.lower() in blamed and problem.kind == "masked input":
                    continue
                add(FindingKind.SECAGG_RECORD, f"its {problem.kind} is not used: {problem.reason}", problem.participant)
        ctx = replayed.ctx
        if ctx is None:
            return
        for f in replayed.result.findings:
            kind = SECAGG_KINDS.get(f.kind.value, FindingKind.SECAGG_MALFORMED)
            offender = ctx.member(f.offender).address if ctx.is_member(f.offender) else f"index {f.offender}"
            owner = "" if f.owner is None or not ctx.is_member(f.owner) else \
                f" (about participant {ctx.member(f.owner).address})"
            severity = Severity.WARNING if kind.severity is Severity.WARNING or not decided else Severity.HANDLED
            add(kind, f"{f.detail}{owner}; the unmasking went on without it", offender, severity=severity)

    # --- summaries --------------------------------------------------------------------------
    def _gas(self, rev: RoundEvents) -> dict[str, int]:
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

    def _summary(self, rev: RoundEvents, evidence: Evidence | None, updates: list[ClientUpdate],
                 findings: int) -> RoundSummary:
        opened, fin = rev.opened, rev.finalized
        losses = [float(u.extras["loss"]) for u in updates
                  if isinstance(u.extras.get("loss"), (int, float)) and not isinstance(u.extras.get("loss"), bool)]
        status = "finalized" if fin is not None else ("closed" if rev.closed is not None else "open")
        committed = {c.participant.lower(): c for c in rev.commitments}
        included = tuple(u.participant for u in evidence.included) if evidence is not None else ()
        return RoundSummary(
            round=int(opened.round_id),
            status=status,
            task_version=int(opened.task_version),
            base_model_digest=digest_hex(opened.base_model_digest),
            model_digest=digest_hex(fin.model_digest) if fin is not None else None,
            model_cid=fin.model_cid if fin is not None else None,
            committed=tuple(c.participant for c in rev.commitments),
            included=included,
            rejected=tuple(evidence.rejected) if evidence is not None else (),
            # the committed sample counts, not what the evidence claims
            num_samples=sum(int(committed[a.lower()].num_samples) for a in included if a.lower() in committed),
            close_reason=rev.closed.reason if rev.closed is not None else None,
            gas=self._gas(rev),
            metrics={"mean_client_loss": sum(losses) / len(losses)} if losses else {},
            findings=findings,
            contributions=self._contributions(rev, evidence, updates),
            chain=round_chain(opened, fin, rev.closed),
            secure=rev.secure is not None,
        )

    @staticmethod
    def _contributions(rev: RoundEvents, evidence: Evidence | None,
                       updates: list[ClientUpdate]) -> tuple[Contribution, ...]:
        """Each commitment of the round: included (with its share of the included samples) or rejected (rule and
        reason) as the evidence says, and its update's norm when the replay decoded it (never in a secure round)."""
        included = {u.participant.lower() for u in evidence.included} if evidence is not None else set()
        rejected = {r.participant.lower(): r for r in (evidence.rejected if evidence is not None else ())
                    if r.rule not in SECAGG_RULES}
        samples = {c.participant.lower(): int(c.num_samples) for c in rev.commitments}
        total = sum(samples[a] for a in included if a in samples)
        norms = {u.participant.lower(): float(np.sqrt(sum(float(np.sum(np.square(t, dtype=np.float64)))
                                                           for t in u.model_tensors.values())))
                 for u in updates}
        secure = rev.secure is not None
        out: list[Contribution] = []
        for c in rev.commitments:
            who = c.participant.lower()
            status = "included" if who in included else "rejected" if who in rejected else "not decided"
            rej = rejected.get(who)
            out.append(Contribution(
                participant=c.participant, samples=int(c.num_samples), update_digest=digest_hex(c.update_digest),
                cid=str(c.cid), tx_hash=c.tx_hash, block=c.block_number, status=status,
                weight=int(c.num_samples) / total if status == "included" and total else None,
                update_norm=None if secure else norms.get(who),
                norm_note=SECURE_NORM_NOTE if secure else ("" if who in norms else "the replay decoded no update"),
                rule=rej.rule if rej is not None else None, reason=rej.reason if rej is not None else None))
        return tuple(out)

    def _bare_summary(self, rev: RoundEvents) -> RoundSummary:
        """The summary of a round whose replay failed: only what the events say."""
        return self._summary(rev, None, [], 1)

    @staticmethod
    def _check_evidence(add: AddFinding, evidence: Evidence, fin: RoundFinalized,
                        by_addr: dict[str, UpdateCommitment], opened: RoundOpened) -> None:
        """The evidence document against the chain: its digests, and each included update's
        digest, CID, sample count and leaf against the commitment; each participant listed once."""
        for name, ev_value, chain_value in (
            ("round", int(evidence.round_id), int(opened.round_id)),
            ("base model digest", digest_hex(evidence.base_model_digest), digest_hex(opened.base_model_digest)),
            ("model digest", digest_hex(evidence.model_digest), digest_hex(fin.model_digest)),
            ("Merkle root", digest_hex(evidence.merkle_root), digest_hex(fin.merkle_root)),
            ("aggregation digest", digest_hex(evidence.aggregation_digest), digest_hex(fin.aggregation_digest)),
        ):
            if ev_value != chain_value:
                add(FindingKind.EVIDENCE_MISMATCH, f"evidence {name} {ev_value} != the chain's {chain_value}")
        if len(evidence.included) != int(fin.included_count):
            add(FindingKind.INCLUDED_COUNT_MISMATCH,
                f"evidence lists {len(evidence.included)} included updates, the chain records {fin.included_count}")
        listed: dict[str, int] = defaultdict(int)
        for u in evidence.included:
            listed[u.participant.lower()] += 1
            c = by_addr.get(u.participant.lower())
            if c is None:
                add(FindingKind.UNKNOWN_INCLUSION, "evidence includes an update that was never committed", u.participant)
                continue
            for name, ev_value, chain_value in (
                ("update digest", digest_hex(u.update_digest), digest_hex(c.update_digest)),
                ("CID", str(u.cid), str(c.cid)),
                ("num_samples", str(int(u.num_samples)), str(int(c.num_samples))),
                ("leaf", digest_hex(u.leaf), digest_hex(leaf_of(c))),
            ):
                if ev_value != chain_value:
                    add(FindingKind.EVIDENCE_MISMATCH,
                        f"evidence gives the included update's {name} as {ev_value}, the commitment's is {chain_value}",
                        u.participant)
        for p in {r.participant.lower() for r in evidence.rejected if r.rule not in SECAGG_RULES}:
            listed[p] += 1
        for r in evidence.rejected:
            if r.participant.lower() not in by_addr and r.rule not in SECAGG_RULES:
                add(FindingKind.UNKNOWN_REJECTION,
                    f"evidence rejects an update (rule {r.rule}) that was never committed in this round", r.participant)
        for p, n in sorted(listed.items()):
            if n > 1:
                add(FindingKind.EVIDENCE_MISMATCH, f"evidence lists this participant's update {n} times "
                    "(included more than once, or both included and rejected)",
                    by_addr[p].participant if p in by_addr else p)


def _describe_store(store: BlobStore) -> str:
    """The store in words (``local <root>``, ``ipfs <API URL>``), or its type for one that does not say."""
    describe = getattr(store, "describe", None)
    return str(describe()) if callable(describe) else type(store).__name__


def _brief(value: object) -> str:
    """A value of the evidence in a finding, at most 300 characters (digests as hex)."""
    if isinstance(value, bytes):
        return digest_hex(value)
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."


def describe_error(err: BaseException) -> str:
    """An exception in one line: its message, or its type when the message is empty."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text if len(text) <= 300 else text[:300] + "..."
    return text if isinstance(err, FedchainError) and text else f"{type(err).__name__}: {text}" if text else type(err).__name__


__all__ = ["DECODE_ERRORS", "FETCH_DEADLINE_S", "FETCH_WORKERS", "RULE_BLOB_UNAVAILABLE", "SELECTION_RULES",
           "AddFinding", "Auditor", "Fetched", "History", "RoundVerification", "describe_error", "fetch_blobs"]

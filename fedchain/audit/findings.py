"""What the auditor reports: typed findings with stable kind strings, each naming the party
responsible for it and a severity, and the verdict (exit code) they add up to."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from fedchain.audit.report import (
    Contribution,
    ReportMeta,
    RoundChain,
    RoundEvaluation,
    TaskLine,
    TimelineEntry,
    evaluations,
    gas_totals,
)
from fedchain.codec.blob import decode_json_doc, encode_json_doc
from fedchain.errors import BlobFormatError, ExitCode
from fedchain.fl.records import Rejection

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from fedchain.audit.governance import GovernanceAudit
    from fedchain.audit.incentives import IncentivesAudit
    from fedchain.audit.privacy import PrivacyAudit


class FindingKind(str, Enum):
    """Stable finding kinds. Never rename a value: tooling matches on these strings."""

    BLOB_MISSING = "blob_missing"
    BLOB_DIGEST_MISMATCH = "blob_digest_mismatch"
    BLOB_CID_MISMATCH = "blob_cid_mismatch"
    BLOB_FORMAT = "blob_format"
    INVALID_CID = "invalid_cid"
    SEAL_NOT_REVEALED = "seal_not_revealed"
    UPDATE_REJECTED = "update_rejected"
    INACTIVE_COMMITTER = "inactive_committer"
    DUPLICATE_COMMIT = "duplicate_commit"
    SAMPLES_OVER_APPROVED = "samples_over_approved"
    REJECTION_NOT_REPRODUCED = "rejection_not_reproduced"
    REJECTION_REASON_MISMATCH = "rejection_reason_mismatch"
    REJECTION_UNVERIFIABLE = "rejection_unverifiable"
    UNRECORDED_REJECTION = "unrecorded_rejection"
    UPDATE_DROPPED = "update_dropped"
    UNKNOWN_INCLUSION = "unknown_inclusion"
    INCLUDED_COUNT_MISMATCH = "included_count_mismatch"
    MODEL_MISMATCH = "model_mismatch"
    MODEL_MISSING = "model_missing"
    MODEL_UNVERIFIABLE = "model_unverifiable"
    MERKLE_ROOT_MISMATCH = "merkle_root_mismatch"
    BASE_MODEL_MISMATCH = "base_model_mismatch"
    EVIDENCE_MISSING = "evidence_missing"
    EVIDENCE_MISMATCH = "evidence_mismatch"
    EVIDENCE_MALFORMED = "evidence_malformed"
    AGGREGATION_CONFIG_MISMATCH = "aggregation_config_mismatch"
    TASK_CONFIG_MISSING = "task_config_missing"
    TASK_CONFIG_MISMATCH = "task_config_mismatch"
    TASK_CONFIG_MALFORMED = "task_config_malformed"
    CLOSE_NOT_JUSTIFIED = "close_not_justified"
    MODEL_MALFORMED = "model_malformed"
    REPLAY_FAILED = "replay_failed"
    LEDGER_INCONSISTENT = "ledger_inconsistent"
    ROUND_MISSING = "round_missing"
    UNKNOWN_REJECTION = "unknown_rejection"
    REJECTED_UNAVAILABLE_NOW_AVAILABLE = "rejected_unavailable_now_available"
    # governance and live verification
    ADMIN_ACTION_WITHOUT_PROPOSAL = "admin_action_without_proposal"
    ROLE_HELD_BY_EOA = "role_held_by_eoa"
    ATTESTATION_QUORUM_MISSING = "attestation_quorum_missing"
    ATTESTATION_CONTRADICTED = "attestation_contradicted"
    ROUND_DISPUTED = "round_disputed"
    BUILT_ON_DISPUTED_MODEL = "built_on_disputed_model"
    EXCLUSION_CONTEST_UNANSWERED = "exclusion_contest_unanswered"
    EXCLUSION_CONTEST_DENIED = "exclusion_contest_denied"
    # incentives
    REWARDS_BLOB_MISSING = "rewards_blob_missing"
    REWARDS_BLOB_MALFORMED = "rewards_blob_malformed"
    REWARDS_MISMATCH = "rewards_mismatch"
    REWARDS_UNVERIFIABLE = "rewards_unverifiable"
    REWARDS_OVER_BUDGET = "rewards_over_budget"
    CLAIM_UNEXPLAINED = "claim_unexplained"
    SLASH_UNJUSTIFIED = "slash_unjustified"
    # differential privacy
    PRIVACY_CLAIM_MISSING = "privacy_claim_missing"
    PRIVACY_INPUTS_MISSING = "privacy_inputs_missing"
    ACCOUNTANT_DIGEST_MISMATCH = "accountant_digest_mismatch"
    PRIVACY_PARAMETERS_MISMATCH = "privacy_parameters_mismatch"
    EPSILON_UNDER_REPORTED = "epsilon_under_reported"
    EPSILON_UNVERIFIABLE = "epsilon_unverifiable"
    PRIVACY_BUDGET_EXCEEDED = "privacy_budget_exceeded"
    DP_NOISE_MISSING = "dp_noise_missing"
    # secure aggregation: each names the participant whose record or revealed share was wrong (the unmasking
    # went on without it); an aggregator whose published model is not the re-derived sum is a model_mismatch
    SECAGG_RECORD = "secagg_record"  # a record blob unavailable, not matching its digest, malformed, misattributed
    SECAGG_WRONG_CONTEXT = "secagg_wrong_context"  # a record of another round or federation
    SECAGG_NOT_A_MEMBER = "secagg_not_a_member"  # a record from an index that is no member of the round
    SECAGG_DUPLICATE = "secagg_duplicate"  # two different records of one stage
    SECAGG_BAD_KEY = "secagg_bad_key"  # a malformed or low-order mask public key
    SECAGG_MALFORMED = "secagg_malformed"  # shares for the wrong holders, a wrong dimension, a reveal it may not make
    SECAGG_NOT_ADVERTISED = "secagg_not_advertised"  # a masked input (or shares) from outside U1 (or U2)
    SECAGG_DOUBLE_REVEAL = "secagg_double_reveal"  # revealed both the seed and the key share of one owner
    SECAGG_SURVIVOR_KEY_REVEALED = "secagg_survivor_key_revealed"  # revealed the mask-key share of a survivor
    SECAGG_INCONSISTENT_SHARE = "secagg_inconsistent_share"  # a revealed share off the committed polynomial: a liar
    SECAGG_SHARE_REJECTED = "secagg_share_rejected"  # a holder reports the participant's encrypted share failed
    # signed rounds: the aggregator's posted set of signed commitments (each names the entry's participant)
    COMMITMENT_SET_MISSING = "commitment_set_missing"  # unavailable, not matching its digest, or malformed
    COMMITMENT_SET_INVALID = "commitment_set_invalid"  # a root or count not the set's, an entry that is no valid
    # signature of an eligible participant for this round and deployment (the inbox refuses those: the aggregator
    # put it there)

    @property
    def severity(self) -> Severity:
        """The kind's usual severity (a finding may say otherwise: see :class:`AuditFinding`)."""
        return Severity.WARNING if self in _WARNINGS else Severity.ERROR

    @property
    def responsible(self) -> Party:
        """The party the kind usually blames (a finding may say otherwise)."""
        return _PARTIES.get(self, Party.AGGREGATOR)


class Severity(str, Enum):
    """``error``: the history is wrong or unverifiable, and someone other than a participant
    whose update was left out is to blame; ``handled``: a participant misbehaved and the
    aggregator left its update out as the reproduced rule says (the round stands);
    ``warning``: worth a look, but consistent with an honest federation."""

    ERROR = "error"
    HANDLED = "handled"
    WARNING = "warning"


class Party(str, Enum):
    """Who a finding holds responsible.

    ``aggregator``: the account that opened, finalised or closed the round (its evidence, model
    and base model); ``participant``: the committer of an update (its blob, CID, digests and
    sample count); ``infrastructure``: the chain node or the blob store (an event log that
    contradicts the contract's storage, a blob lost after it was used); ``governance``: the
    federation's admin, i.e. the timelock and the members' votes behind it, or a single admin key
    (a task document missing or not matching its digests, an admin action no executed proposal
    explains, attestations the members owe).
    """

    AGGREGATOR = "aggregator"
    PARTICIPANT = "participant"
    INFRASTRUCTURE = "infrastructure"
    GOVERNANCE = "governance"


# A blob the aggregator could not fetch before its retry window closed may well be there now; a
# deployment whose admin is one key is a choice (tests, demos) the report states; a dispute is the
# federation's own verdict on a round, reported with its outcome.
# A secure round's record that could not be used, and a holder's report that a dealer's share failed
# authentication (the holder's word against the dealer's), are worth a look; the unmasking went on without them.
_WARNINGS = frozenset({FindingKind.REJECTED_UNAVAILABLE_NOW_AVAILABLE, FindingKind.ROLE_HELD_BY_EOA,
                       FindingKind.ROUND_DISPUTED, FindingKind.SECAGG_RECORD, FindingKind.SECAGG_SHARE_REJECTED})

SECAGG_KINDS: dict[str, FindingKind] = {
    k.value.removeprefix("secagg_"): k for k in FindingKind if k.value.startswith("secagg_") and k.value != "secagg_record"
}
"""The audit's finding kind of each :class:`fedchain.secagg.protocol.FindingKind` value (participant misconduct in the
unmasking: ``handled`` once the round ended, as it went on without the offender; ``warning`` while it is open)."""

_PARTIES: dict[FindingKind, Party] = {
    **{k: Party.PARTICIPANT for k in (
        FindingKind.BLOB_MISSING, FindingKind.BLOB_DIGEST_MISMATCH, FindingKind.BLOB_CID_MISMATCH,
        FindingKind.BLOB_FORMAT, FindingKind.INVALID_CID, FindingKind.UPDATE_REJECTED, FindingKind.SEAL_NOT_REVEALED,
        FindingKind.REJECTED_UNAVAILABLE_NOW_AVAILABLE, FindingKind.ATTESTATION_CONTRADICTED,
        FindingKind.PRIVACY_CLAIM_MISSING, FindingKind.PRIVACY_INPUTS_MISSING, FindingKind.ACCOUNTANT_DIGEST_MISMATCH,
        FindingKind.PRIVACY_PARAMETERS_MISMATCH, FindingKind.EPSILON_UNDER_REPORTED, FindingKind.EPSILON_UNVERIFIABLE,
        FindingKind.PRIVACY_BUDGET_EXCEEDED, FindingKind.DP_NOISE_MISSING, FindingKind.SECAGG_RECORD,
        *(k for k in FindingKind if k.value.startswith("secagg_")))},
    **{k: Party.INFRASTRUCTURE for k in (
        FindingKind.INACTIVE_COMMITTER, FindingKind.DUPLICATE_COMMIT, FindingKind.SAMPLES_OVER_APPROVED,
        FindingKind.LEDGER_INCONSISTENT,
        FindingKind.ROUND_MISSING, FindingKind.MODEL_UNVERIFIABLE, FindingKind.REJECTION_UNVERIFIABLE,
        FindingKind.REPLAY_FAILED, FindingKind.REWARDS_UNVERIFIABLE, FindingKind.REWARDS_OVER_BUDGET)},
    **{k: Party.GOVERNANCE for k in (
        FindingKind.TASK_CONFIG_MISSING, FindingKind.TASK_CONFIG_MISMATCH, FindingKind.TASK_CONFIG_MALFORMED,
        FindingKind.ADMIN_ACTION_WITHOUT_PROPOSAL, FindingKind.ROLE_HELD_BY_EOA, FindingKind.ATTESTATION_QUORUM_MISSING,
        FindingKind.ROUND_DISPUTED, FindingKind.SLASH_UNJUSTIFIED)},
}


class Verdict(str, Enum):
    """What the findings add up to, and the exit code of ``fedchain audit``."""

    CLEAN = "clean"  # no finding, or warnings only: exit 0
    PARTICIPANT_MISCONDUCT = "participant_misconduct"  # only handled participant misconduct: exit 52
    FINDINGS = "findings"  # at least one error: exit 51

    @property
    def exit_code(self) -> ExitCode:
        """The process exit code of this verdict."""
        return _VERDICT_CODES[self]


_VERDICT_CODES = {
    Verdict.CLEAN: ExitCode.OK,
    Verdict.PARTICIPANT_MISCONDUCT: ExitCode.AUDIT_PARTICIPANT_MISCONDUCT,
    Verdict.FINDINGS: ExitCode.AUDIT_FINDINGS,
}


@dataclass(frozen=True)
class AuditFinding:
    """One problem found by the audit.

    ``participant`` is the update the finding is about (None for round-level findings);
    ``responsible`` the party to blame and ``responsible_address`` its account, when it has one
    (a participant's, the aggregator that acted in the round, the admin that configured the task);
    ``round`` is 0 for a finding about a task version no round ran under.
    """

    round: int
    participant: str | None
    kind: FindingKind
    detail: str
    responsible: Party
    severity: Severity
    responsible_address: str | None = None

    @classmethod
    def of(cls, round_id: int, participant: str | None, kind: FindingKind, detail: str, *,
           responsible: Party | None = None, severity: Severity | None = None,
           address: str | None = None) -> AuditFinding:
        """A finding with the kind's usual party and severity unless told otherwise; a finding
        that blames a participant names that participant's address."""
        party = responsible if responsible is not None else kind.responsible
        if address is None and party is Party.PARTICIPANT:
            address = participant
        return cls(round_id, participant, kind, detail, party,
                   severity if severity is not None else kind.severity, address)

    def to_json(self) -> dict[str, Any]:
        """The finding as a JSON object (``fedchain audit --json``)."""
        return {"round": self.round, "participant": self.participant, "kind": self.kind.value,
                "severity": self.severity.value, "responsible": self.responsible.value,
                "responsible_address": self.responsible_address, "detail": self.detail}

    @classmethod
    def from_json(cls, data: Any, where: str = "finding") -> AuditFinding:
        """A finding read back from :meth:`to_json`; :class:`BlobFormatError` names the first
        field that is missing, unknown or not what it should be."""
        _exact_fields(data, _FINDING_FIELDS, where)
        return cls(
            round=_json_count(data, "round", where),
            participant=_json_text(data, "participant", where, optional=True),
            kind=_json_enum(FindingKind, data, "kind", where),
            detail=_json_text(data, "detail", where) or "",
            responsible=_json_enum(Party, data, "responsible", where),
            severity=_json_enum(Severity, data, "severity", where),
            responsible_address=_json_text(data, "responsible_address", where, optional=True),
        )


FINDINGS_FORMAT = "fedchain.findings/1"
MAX_FINDINGS = 10_000  # findings one blob may list


@dataclass(frozen=True)
class AuditFindings:
    """The findings blob a negative attestation or a dispute cites: the replay of one round by
    ``verified_by`` (its findings, each with its responsible party and severity) and the party it
    accuses (``accused``, with ``accused_address`` when that party has one account).

    ``published_digest`` is the model the round was finalised with, ``replayed_digest`` the one
    the replay computed (None: it computed none). Stored as canonical JSON, so that its SHA-256
    is the digest that goes on chain."""

    round: int
    published_digest: str
    replayed_digest: str | None
    accused: Party
    accused_address: str | None
    findings: tuple[AuditFinding, ...]
    verified_by: str = ""

    def to_json(self) -> dict[str, Any]:
        """The blob's JSON object."""
        return {"format": FINDINGS_FORMAT, "round": self.round, "published_digest": self.published_digest,
                "replayed_digest": self.replayed_digest, "accused": self.accused.value,
                "accused_address": self.accused_address, "verified_by": self.verified_by,
                "findings": [f.to_json() for f in self.findings]}

    def to_bytes(self) -> bytes:
        """The blob's canonical bytes, as stored and digested."""
        return encode_json_doc(self.to_json())

    @classmethod
    def from_json(cls, data: Any) -> AuditFindings:
        """Read the blob's JSON object; :class:`BlobFormatError` names what is wrong."""
        where = "findings blob"
        if not isinstance(data, dict) or data.get("format") != FINDINGS_FORMAT:
            raise BlobFormatError(f"not a findings blob (format {FINDINGS_FORMAT})")
        _exact_fields(data, _BLOB_FIELDS, where)
        listed = data["findings"]
        if not isinstance(listed, list):
            raise BlobFormatError(f"{where}: findings is not an array")
        if len(listed) > MAX_FINDINGS:
            raise BlobFormatError(f"{where}: {len(listed)} findings, more than {MAX_FINDINGS}")
        return cls(
            round=_json_count(data, "round", where),
            published_digest=_json_text(data, "published_digest", where) or "",
            replayed_digest=_json_text(data, "replayed_digest", where, optional=True),
            accused=_json_enum(Party, data, "accused", where),
            accused_address=_json_text(data, "accused_address", where, optional=True),
            findings=tuple(AuditFinding.from_json(f, f"{where} findings[{i}]") for i, f in enumerate(listed)),
            verified_by=_json_text(data, "verified_by", where) or "",
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AuditFindings:
        """The blob from its stored bytes (canonical JSON only)."""
        return cls.from_json(decode_json_doc(data, what="findings blob"))


_FINDING_FIELDS = frozenset({"round", "participant", "kind", "severity", "responsible", "responsible_address", "detail"})
_BLOB_FIELDS = frozenset({"format", "round", "published_digest", "replayed_digest", "accused", "accused_address",
                          "verified_by", "findings"})
E = TypeVar("E", bound=Enum)


def _exact_fields(data: Any, expected: frozenset[str], where: str) -> None:
    if not isinstance(data, dict):
        raise BlobFormatError(f"{where} is not an object")
    missing, unknown = sorted(expected - set(data)), sorted(set(data) - expected)
    if missing:
        raise BlobFormatError(f"{where} lacks {', '.join(missing)}")
    if unknown:
        raise BlobFormatError(f"{where} has unknown field(s) {', '.join(str(k)[:40] for k in unknown[:5])}")


def _json_count(data: dict[str, Any], key: str, where: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**256:
        raise BlobFormatError(f"{where}: {key} is not a non-negative integer")
    return int(value)


def _json_text(data: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    value = data[key]
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise BlobFormatError(f"{where}: {key} is not a string{' or null' if optional else ''}")
    return value


def _json_enum(enum: type[E], data: dict[str, Any], key: str, where: str) -> E:
    value = data[key]
    try:
        return enum(value)
    except (ValueError, TypeError) as err:
        raise BlobFormatError(f"{where}: {key} {str(value)[:40]!r} is not one of "
                              f"{', '.join(str(m.value) for m in enum)}") from err


@dataclass(frozen=True)
class ParticipantSummary:
    """A registered participant as the audit saw it in the event log."""

    address: str
    organisation: str
    industry: str
    status: str  # lower-case ParticipantStatus name at the end of the history
    registered_block: int
    commits: int
    declared_samples: int = 0  # the dataset size declared at registration
    approved_samples: int | None = None  # the size its latest admission approved (None: never admitted)

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON object."""
        return {
            "address": self.address,
            "organisation": self.organisation,
            "industry": self.industry,
            "status": self.status,
            "registered_block": self.registered_block,
            "commits": self.commits,
            "declared_samples": self.declared_samples,
            "approved_samples": self.approved_samples,
        }


@dataclass(frozen=True)
class RoundSummary:
    """What the audit saw in one round (for reports and provenance)."""

    round: int
    status: str
    task_version: int
    base_model_digest: str
    model_digest: str | None
    model_cid: str | None
    committed: tuple[str, ...]
    included: tuple[str, ...]
    rejected: tuple[Rejection, ...]
    num_samples: int
    close_reason: str | None
    gas: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    findings: int = 0
    # every committed update: samples, weight, norm (not in a secure round), included or rejected and why
    contributions: tuple[Contribution, ...] = ()
    chain: RoundChain | None = None  # accounts, blocks, transactions, Merkle root and evidence, in full
    secure: bool = False  # a secure-aggregation round: individual updates are hidden

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON object (rejections as their JSON records)."""
        return {
            "round": self.round,
            "status": self.status,
            "task_version": self.task_version,
            "base_model_digest": self.base_model_digest,
            "model_digest": self.model_digest,
            "model_cid": self.model_cid,
            "committed": list(self.committed),
            "included": list(self.included),
            "rejected": [r.to_json() for r in self.rejected],
            "num_samples": self.num_samples,
            "close_reason": self.close_reason,
            "gas": dict(self.gas),
            "metrics": dict(self.metrics),
            "findings": self.findings,
            "secure": self.secure,
            "contributions": [c.to_json() for c in self.contributions],
            "chain": self.chain.to_json() if self.chain is not None else None,
        }


@dataclass(frozen=True)
class AuditReport:
    """The verdict of one audit run."""

    contract: str
    chain_id: int
    rounds_checked: tuple[int, ...]
    findings: tuple[AuditFinding, ...]
    rounds: tuple[RoundSummary, ...] = ()
    participants: tuple[ParticipantSummary, ...] = ()
    wall_time_s: float = 0.0
    # who governs the federation, its admin actions matched to their proposals, attestations,
    # disputes and exclusion contests (with --round: that round's lines, admin actions unchecked)
    governance: GovernanceAudit | None = None
    # published rewards recomputed, claims per round, slashes and their findings, per participant
    # scores, amounts, claims and deposit history (None: the deployment has no incentives contract)
    incentives: IncentivesAudit | None = None
    # per participant the epsilon curve (claimed and recomputed) and spend against the budget, under
    # the task's privacy policy (None: no task version audited has a privacy policy)
    privacy: PrivacyAudit | None = None
    tasks: tuple[TaskLine, ...] = ()  # every task version audited, as configured and as its document says
    timeline: tuple[TimelineEntry, ...] = ()  # membership, task and round events in chain order
    meta: ReportMeta = field(default_factory=ReportMeta)
    evaluation: tuple[RoundEvaluation, ...] = ()  # the global model's test scores, when the caller passed them

    def with_context(self, *, rpc_url: str | None = None, store: str | None = None,
                     gas_price_gwei: str | None = None) -> AuditReport:
        """The report with the endpoints it read and the gas price its costs are stated at (None: keep the report's)."""
        meta = dataclasses.replace(self.meta, rpc_url=rpc_url if rpc_url is not None else self.meta.rpc_url,
                                   store=store if store is not None else self.meta.store)
        if gas_price_gwei is not None:
            meta = dataclasses.replace(meta, gas_price_gwei=str(gas_price_gwei), gas_price_stated=True)
            meta.gas_price_wei  # noqa: B018 - validates the price (ConfigError)
        return dataclasses.replace(self, meta=meta)

    def with_evaluation(self, scores: Mapping[int, tuple[float | None, float | None]] | Iterable[RoundEvaluation]
                        ) -> AuditReport:
        """The report with the global model's test accuracy and loss per round (``{round: (accuracy, loss)}``)."""
        return dataclasses.replace(self, evaluation=evaluations(scores))

    def contributions(self) -> list[dict[str, Any]]:
        """Per participant: rounds committed, updates included and rejected, samples and mean weight of its
        included updates, mean update norm where the replay saw the updates (not in secure rounds)."""
        rows: dict[str, dict[str, Any]] = {}
        for p in self.participants:
            rows[p.address.lower()] = {"participant": p.address, "organisation": p.organisation, "committed": 0,
                                       "included": 0, "rejected": 0, "samples_included": 0, "weights": [],
                                       "norms": [], "secure_rounds": 0, "rejections": []}
        for r in self.rounds:
            for c in r.contributions:
                row = rows.setdefault(c.participant.lower(), {
                    "participant": c.participant, "organisation": "", "committed": 0, "included": 0, "rejected": 0,
                    "samples_included": 0, "weights": [], "norms": [], "secure_rounds": 0, "rejections": []})
                row["committed"] += 1
                row["secure_rounds"] += int(r.secure)
                if c.status == "included":
                    row["included"] += 1
                    row["samples_included"] += c.samples
                    if c.weight is not None:
                        row["weights"].append(c.weight)
                elif c.status == "rejected":
                    row["rejected"] += 1
                    row["rejections"].append({"round": r.round, "rule": c.rule, "reason": c.reason})
                if c.update_norm is not None:
                    row["norms"].append(c.update_norm)
        out = []
        for row in rows.values():
            weights, norms = row.pop("weights"), row.pop("norms")
            row["mean_weight"] = sum(weights) / len(weights) if weights else None
            row["mean_update_norm"] = sum(norms) / len(norms) if norms else None
            out.append(row)
        return out

    def gas(self) -> dict[str, Any]:
        """Gas totals by kind and their cost at the report's stated gas price."""
        totals = gas_totals([r.gas for r in self.rounds], self.timeline, self.meta.gas_price_wei)
        return {**totals, "price_gwei": self.meta.gas_price_gwei, "price_stated": self.meta.gas_price_stated}

    @property
    def ok(self) -> bool:
        """No error-level finding: warnings and handled participant misconduct leave the report ok."""
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def verdict(self) -> Verdict:
        """``findings`` with any error, ``participant_misconduct`` with handled findings only,
        else ``clean``."""
        if not self.ok:
            return Verdict.FINDINGS
        if any(f.severity is Severity.HANDLED for f in self.findings):
            return Verdict.PARTICIPANT_MISCONDUCT
        return Verdict.CLEAN

    @property
    def exit_code(self) -> ExitCode:
        """0 clean, 51 (AUDIT_FINDINGS) with an error, 52 (AUDIT_PARTICIPANT_MISCONDUCT) when the
        only findings are handled participant misconduct (and warnings)."""
        return self.verdict.exit_code

    def responsible(self) -> dict[str, int]:
        """How many error and handled findings blame each party (``"participant 0x..."`` per address)."""
        counts: dict[str, int] = {}
        for f in self.findings:
            if f.severity is Severity.WARNING:
                continue
            key = f.responsible.value + (f" {f.responsible_address}" if f.responsible_address else "")
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def kinds(self) -> set[str]:
        """The kind strings of all findings."""
        return {f.kind.value for f in self.findings}

    def to_json(self) -> dict[str, Any]:
        """The whole report as one JSON object, as ``fedchain audit --json`` prints it."""
        return {
            "ok": self.ok,
            "verdict": self.verdict.value,
            "exit_code": int(self.exit_code),
            "responsible": self.responsible(),
            "contract": self.contract,
            "chain_id": self.chain_id,
            "rounds_checked": list(self.rounds_checked),
            "findings": [f.to_json() for f in self.findings],
            "rounds": [r.to_json() for r in self.rounds],
            "participants": [p.to_json() for p in self.participants],
            "governance": self.governance.to_json() if self.governance is not None else None,
            "incentives": self.incentives.to_json() if self.incentives is not None else None,
            "privacy": self.privacy.to_json() if self.privacy is not None else None,
            "wall_time_s": round(self.wall_time_s, 3),
            "meta": self.meta.to_json(),
            "tasks": [t.to_json() for t in self.tasks],
            "timeline": [e.to_json() for e in self.timeline],
            "contributions": self.contributions(),
            "gas": self.gas(),
            "evaluation": [e.to_json() for e in self.evaluation],
        }

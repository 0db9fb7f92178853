"""What the auditor reports: typed findings with stable kind strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from fedchain.fl.records import Rejection


class FindingKind(str, Enum):
    """Stable finding kinds. Never rename a value: tooling matches on these strings."""

    BLOB_MISSING = "blob_missing"
    BLOB_DIGEST_MISMATCH = "blob_digest_mismatch"
    BLOB_CID_MISMATCH = "blob_cid_mismatch"
    BLOB_FORMAT = "blob_format"
    INACTIVE_COMMITTER = "inactive_committer"
    DUPLICATE_COMMIT = "duplicate_commit"
    REJECTION_NOT_REPRODUCED = "rejection_not_reproduced"
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
    AGGREGATION_CONFIG_MISMATCH = "aggregation_config_mismatch"
    TASK_CONFIG_MISSING = "task_config_missing"
    TASK_CONFIG_MISMATCH = "task_config_mismatch"
    CLOSE_NOT_JUSTIFIED = "close_not_justified"
    MODEL_MALFORMED = "model_malformed"
    REPLAY_FAILED = "replay_failed"
    LEDGER_INCONSISTENT = "ledger_inconsistent"
    ROUND_MISSING = "round_missing"
    UNKNOWN_REJECTION = "unknown_rejection"
    REJECTED_UNAVAILABLE_NOW_AVAILABLE = "rejected_unavailable_now_available"

    @property
    def severity(self) -> Severity:
        return Severity.WARNING if self in _WARNINGS else Severity.ERROR


class Severity(str, Enum):
    """``error``: the history is wrong or unverifiable; ``warning``: worth a look, but
    consistent with an honest federation (the report stays ``ok``)."""

    ERROR = "error"
    WARNING = "warning"


# A blob the aggregator could not fetch before its retry window closed may well be there now.
_WARNINGS = frozenset({FindingKind.REJECTED_UNAVAILABLE_NOW_AVAILABLE})


@dataclass(frozen=True)
class AuditFinding:
    """One problem found by the audit. ``participant`` is None for round-level findings."""

    round: int
    participant: str | None
    kind: FindingKind
    detail: str

    @property
    def severity(self) -> Severity:
        return self.kind.severity

    def to_json(self) -> dict[str, Any]:
        return {"round": self.round, "participant": self.participant, "kind": self.kind.value,
                "severity": self.severity.value, "detail": self.detail}


@dataclass(frozen=True)
class ParticipantSummary:
    """A registered participant as the audit saw it in the event log."""

    address: str
    organisation: str
    industry: str
    status: str  # lower-case ParticipantStatus name at the end of the history
    registered_block: int
    commits: int

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "organisation": self.organisation,
            "industry": self.industry,
            "status": self.status,
            "registered_block": self.registered_block,
            "commits": self.commits,
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

    def to_json(self) -> dict[str, Any]:
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

    @property
    def ok(self) -> bool:
        """No error-level finding (warnings alone leave the report ok)."""
        return not any(f.severity is Severity.ERROR for f in self.findings)

    def kinds(self) -> set[str]:
        return {f.kind.value for f in self.findings}

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "contract": self.contract,
            "chain_id": self.chain_id,
            "rounds_checked": list(self.rounds_checked),
            "findings": [f.to_json() for f in self.findings],
            "rounds": [r.to_json() for r in self.rounds],
            "participants": [p.to_json() for p in self.participants],
            "wall_time_s": round(self.wall_time_s, 3),
        }

"""What the auditor reports: typed findings with stable kind strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


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


@dataclass(frozen=True)
class AuditFinding:
    """One problem found by the audit. ``participant`` is None for round-level findings."""

    round: int
    participant: str | None
    kind: FindingKind
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"round": self.round, "participant": self.participant, "kind": self.kind.value, "detail": self.detail}


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
    rejected: tuple[tuple[str, str, str], ...]  # (participant, rule, reason)
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
            "rejected": [{"participant": p, "rule": r, "reason": why} for p, r, why in self.rejected],
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
    participants: tuple[dict[str, Any], ...] = ()
    wall_time_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings

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
            "participants": list(self.participants),
            "wall_time_s": round(self.wall_time_s, 3),
        }

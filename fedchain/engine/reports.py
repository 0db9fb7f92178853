"""Typed reports of the round engine: one :class:`RoundReport` per round, one :class:`RunReport`
per run, each with ``to_json()``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedchain.fl.records import ExtraValue, Rejection
from fedchain.protocol.blobs import GlobalModel
from fedchain.types import Address, Cid, Digest, RoundId, digest_hex


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: they become None."""
    return None if value is None or not math.isfinite(value) else value


@dataclass(frozen=True)
class PhaseTimes:
    """Wall-clock seconds of the three phases of a round."""

    open_s: float = 0.0
    commit_phase_s: float = 0.0
    finalize_s: float = 0.0

    def to_json(self) -> dict[str, float]:
        """The phases in seconds, rounded to milliseconds."""
        return {"open": round(self.open_s, 3), "commit_phase": round(self.commit_phase_s, 3),
                "finalize": round(self.finalize_s, 3)}


@dataclass(frozen=True)
class Traffic:
    """Bytes moved in a round, by who moved them."""

    downloaded_by_aggregator: int = 0
    uploaded_by_aggregator: int = 0
    uploaded_by_participants: int = 0
    downloaded_by_participants: int = 0

    @property
    def total(self) -> int:
        """All bytes moved."""
        return (self.downloaded_by_aggregator + self.uploaded_by_aggregator
                + self.uploaded_by_participants + self.downloaded_by_participants)

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(
            self.downloaded_by_aggregator + other.downloaded_by_aggregator,
            self.uploaded_by_aggregator + other.uploaded_by_aggregator,
            self.uploaded_by_participants + other.uploaded_by_participants,
            self.downloaded_by_participants + other.downloaded_by_participants,
        )

    def to_json(self) -> dict[str, int]:
        """Each count, and the total."""
        return {"downloaded_by_aggregator": self.downloaded_by_aggregator,
                "uploaded_by_aggregator": self.uploaded_by_aggregator,
                "uploaded_by_participants": self.uploaded_by_participants,
                "downloaded_by_participants": self.downloaded_by_participants, "total": self.total}


@dataclass(frozen=True)
class RoundReport:
    """What one round did: who was included and rejected (and why), the model it published,
    what it cost, and how the model scored when an evaluator was given."""

    round_id: RoundId
    finalized: bool
    model_digest: Digest | None
    model_cid: Cid | None
    included: tuple[Address, ...]
    rejected: tuple[Rejection, ...]
    commit_count: int
    close_reason: str | None
    num_samples: int = 0
    sat_out: int = 0  # participants that could not train this round (in memory only)
    gas_used: int = 0
    tx_hash: str | None = None
    traffic: Traffic = Traffic()
    phases: PhaseTimes = PhaseTimes()
    wall_s: float = 0.0
    metrics: Mapping[str, ExtraValue] = field(default_factory=dict)  # the strategy's
    evaluation: Mapping[str, float] = field(default_factory=dict)  # accuracy, loss, auc, backdoor_success

    @property
    def accuracy(self) -> float | None:
        """Test accuracy of the global model after the round (None without an evaluator)."""
        return self.evaluation.get("accuracy")

    @property
    def loss(self) -> float | None:
        """Test loss of the global model after the round."""
        return self.evaluation.get("loss")

    @property
    def auc(self) -> float | None:
        """Test ROC AUC of the global model after the round (binary tasks)."""
        return self.evaluation.get("auc")

    def rejected_among(self, addresses: set[str] | frozenset[str]) -> int:
        """How many of ``addresses`` (compared case-insensitively) were rejected this round."""
        wanted = {a.lower() for a in addresses}
        return sum(1 for r in self.rejected if r.participant.lower() in wanted)

    def to_json(self) -> dict[str, Any]:
        """One JSON object; non-finite numbers become null."""
        return {
            "round": int(self.round_id),
            "finalized": self.finalized,
            "model_digest": digest_hex(self.model_digest) if self.model_digest else None,
            "model_cid": self.model_cid,
            "included": list(self.included),
            "rejected": [{"participant": r.participant, "rule": r.rule, "reason": r.reason} for r in self.rejected],
            "commit_count": self.commit_count,
            "close_reason": self.close_reason,
            "num_samples": self.num_samples,
            "sat_out": self.sat_out,
            "gas_used": self.gas_used,
            "tx_hash": self.tx_hash,
            "bytes": self.traffic.to_json(),
            "phases_s": self.phases.to_json(),
            "wall_s": round(self.wall_s, 3),
            "metrics": {k: (_finite(v) if isinstance(v, float) else v) for k, v in self.metrics.items()},
            "evaluation": {k: _finite(v) for k, v in self.evaluation.items()},
        }


@dataclass(frozen=True)
class RunReport:
    """A run of rounds: the round reports in order, the wall time, and the last global model."""

    rounds: tuple[RoundReport, ...]
    seconds: float
    final_model: GlobalModel | None = field(default=None, repr=False, compare=False)
    attackers: tuple[Address, ...] = ()  # participants told to attack (simulations only)

    @property
    def final(self) -> RoundReport:
        """The last round's report."""
        if not self.rounds:
            raise IndexError("the run has no rounds")
        return self.rounds[-1]

    @property
    def final_accuracy(self) -> float | None:
        """The accuracy after the last round that was evaluated."""
        return next((r.accuracy for r in reversed(self.rounds) if r.accuracy is not None), None)

    @property
    def traffic(self) -> Traffic:
        """Bytes moved over all rounds."""
        total = Traffic()
        for r in self.rounds:
            total = total + r.traffic
        return total

    def to_json(self) -> dict[str, Any]:
        """One JSON object with every round."""
        return {
            "rounds": [r.to_json() for r in self.rounds],
            "seconds": round(self.seconds, 3),
            "final_accuracy": _finite(self.final_accuracy),
            "bytes": self.traffic.to_json(),
            "attackers": list(self.attackers),
        }

"""The parts of the audit report an auditor signs besides the findings: who contributed what to each
round, the task as configured, the timeline of the federation's events, gas and its cost at a stated
gas price, the global model's evaluation when the caller has one, and the report's own metadata."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from fedchain import __version__
from fedchain.errors import ConfigError
from fedchain.ports import (
    LedgerEvent,
    ParticipantAdmitted,
    ParticipantRegistered,
    ParticipantRemoved,
    PrivacyPolicySet,
    RoundClosed,
    RoundDisputed,
    RoundFinalized,
    RoundOpened,
    TaskConfigured,
    VerificationPolicySet,
)
from fedchain.types import digest_hex

DEFAULT_GAS_PRICE_GWEI = Decimal("20")
"""The gas price a report states its costs at unless told otherwise (``--gas-price-gwei``)."""

WEI_PER_GWEI = 10**9
WEI_PER_ETH = 10**18

SECURE_NORM_NOTE = "hidden: secure aggregation reveals only the sum of the round's updates"
"""Why a secure-aggregation round's contributions have no update norm."""


def gas_price_wei(gwei: Decimal | str | float | int) -> int:
    """A gas price in gwei (a decimal, e.g. ``"1.5"``) as whole wei; ConfigError for a negative or non-number."""
    try:
        value = Decimal(str(gwei))
    except InvalidOperation as err:
        raise ConfigError(f"gas price {gwei!r} gwei is not a number") from err
    if not value.is_finite() or value < 0:
        raise ConfigError(f"gas price {gwei!r} gwei must be a non-negative number")
    return int(value * WEI_PER_GWEI)


def eth_text(wei: int) -> str:
    """``wei`` as an exact decimal amount of ether (no float: ``"0.000123"``)."""
    text = format(Decimal(wei) / Decimal(WEI_PER_ETH), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Contribution:
    """One committed update of one round as the audit saw it: the committed digest, CID and sample count,
    whether the aggregator included it (its share of the round's samples) or rejected it (rule and reason),
    and the L2 norm of its model tensors when the replay decoded it (None in a secure round: ``norm_note``)."""

    participant: str
    samples: int
    update_digest: str
    cid: str
    tx_hash: str
    block: int
    status: str  # included | rejected | not decided (the round was not finalised)
    weight: float | None = None  # samples / the included updates' samples (included updates only)
    update_norm: float | None = None
    norm_note: str = ""
    rule: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The contribution as a JSON object."""
        return {"participant": self.participant, "samples": self.samples, "update_digest": self.update_digest,
                "cid": self.cid, "tx_hash": self.tx_hash, "block": self.block, "status": self.status,
                "weight": self.weight, "update_norm": self.update_norm, "norm_note": self.norm_note,
                "rule": self.rule, "reason": self.reason}


@dataclass(frozen=True)
class RoundChain:
    """What the chain recorded of one round, in full: the accounts, blocks and transactions that opened and
    ended it, its base model, and (finalised) its Merkle root, aggregation digest and evidence."""

    opened_by: str
    open_block: int
    open_tx: str
    deadline: int
    min_updates: int
    base_model_cid: str
    ended_by: str | None = None
    end_block: int | None = None
    end_tx: str | None = None
    merkle_root: str | None = None
    aggregation_digest: str | None = None
    evidence_digest: str | None = None
    evidence_cid: str | None = None
    included_count: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (digests as full ``0x`` hex)."""
        return dict(self.__dict__)


def round_chain(opened: RoundOpened, finalized: RoundFinalized | None, closed: RoundClosed | None) -> RoundChain:
    """The :class:`RoundChain` of a round's events."""
    end = finalized or closed
    return RoundChain(
        opened_by=opened.opened_by, open_block=opened.block_number, open_tx=opened.tx_hash,
        deadline=int(opened.deadline), min_updates=int(opened.min_updates), base_model_cid=str(opened.base_model_cid),
        ended_by=(finalized.finalized_by if finalized is not None else closed.closed_by if closed is not None else None),
        end_block=end.block_number if end is not None else None, end_tx=end.tx_hash if end is not None else None,
        merkle_root=digest_hex(finalized.merkle_root) if finalized is not None else None,
        aggregation_digest=digest_hex(finalized.aggregation_digest) if finalized is not None else None,
        evidence_digest=digest_hex(finalized.evidence_digest) if finalized is not None else None,
        evidence_cid=str(finalized.evidence_cid) if finalized is not None else None,
        included_count=int(finalized.included_count) if finalized is not None else None,
    )


@dataclass(frozen=True)
class TaskLine:
    """One task version as configured on chain and, when its document verified, as the document says: dataset,
    strategy and its parameters, robust rules, min updates, model spec, privacy policy and secure aggregation."""

    version: int
    configured_by: str
    block: int
    tx_hash: str
    config_cid: str
    model_spec_digest: str
    strategy_digest: str
    data_schema_digest: str
    max_commit_duration: int
    document: Mapping[str, Any] | None = None  # None: the document is missing or did not verify (see the findings)

    def to_json(self) -> dict[str, Any]:
        """The task version as a JSON object."""
        return {"version": self.version, "configured_by": self.configured_by, "block": self.block,
                "tx_hash": self.tx_hash, "config_cid": self.config_cid, "model_spec_digest": self.model_spec_digest,
                "strategy_digest": self.strategy_digest, "data_schema_digest": self.data_schema_digest,
                "max_commit_duration": self.max_commit_duration,
                "document": dict(self.document) if self.document is not None else None}


def task_document_view(doc_json: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a task document (its JSON object) a report shows; the schema by its size, not its features."""
    strategy = dict(doc_json.get("strategy", {}))
    schema = doc_json.get("data_schema", {})
    features = schema.get("feature_names", schema.get("features")) if isinstance(schema, Mapping) else None
    view: dict[str, Any] = {
        "dataset": doc_json.get("dataset"),
        "strategy": strategy.get("strategy", strategy.get("name")),
        "code_version": strategy.get("code_version"),
        "strategy_params": strategy.get("params", {}),
        "robust": strategy.get("robust", []),
        "min_updates": doc_json.get("min_updates"),
        "commit_duration": doc_json.get("commit_duration"),
        "max_commit_duration": doc_json.get("max_commit_duration"),
        "reveal_duration": doc_json.get("reveal_duration"),
        "seed": doc_json.get("seed"),
        "model": doc_json.get("model_spec"),
        "schema_features": len(features) if isinstance(features, Sequence) else None,
        "privacy": doc_json.get("privacy"),
        "secagg": doc_json.get("secagg"),
    }
    return view


def task_line(ev: TaskConfigured, doc_json: Mapping[str, Any] | None) -> TaskLine:
    """The :class:`TaskLine` of a TaskConfigured event and its verified document's JSON (None: not verified)."""
    return TaskLine(
        version=int(ev.version), configured_by=ev.configured_by, block=ev.block_number, tx_hash=ev.tx_hash,
        config_cid=str(ev.config_cid), model_spec_digest=digest_hex(ev.model_spec_digest),
        strategy_digest=digest_hex(ev.strategy_digest), data_schema_digest=digest_hex(ev.data_schema_digest),
        max_commit_duration=int(ev.max_commit_duration),
        document=task_document_view(doc_json) if doc_json is not None else None,
    )


@dataclass(frozen=True)
class TimelineEntry:
    """One event of the federation's history: what happened, at which block and transaction, by whom, to whom."""

    block: int
    log_index: int
    tx_hash: str
    event: str  # registered | admitted | removed | task_configured | privacy_policy | verification_policy |
    #             round_opened | round_finalized | round_closed | round_disputed
    actor: str
    participant: str | None = None
    round: int | None = None
    detail: str = ""
    gas: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object."""
        return dict(self.__dict__)


def _entry(ev: LedgerEvent) -> TimelineEntry | None:
    def at(event: str, actor: str, detail: str, *, participant: str | None = None,
           round_id: int | None = None) -> TimelineEntry:
        return TimelineEntry(ev.block_number, ev.log_index, ev.tx_hash, event, actor, participant, round_id, detail)

    if isinstance(ev, ParticipantRegistered):
        return at("registered", ev.participant, participant=ev.participant,
                             detail=f"{ev.organisation} ({ev.industry}), declared {ev.declared_samples} samples")
    if isinstance(ev, ParticipantAdmitted):
        return at("admitted", ev.admitted_by, participant=ev.participant,
                             detail=f"approved {ev.approved_samples} samples")
    if isinstance(ev, ParticipantRemoved):
        return at("removed", ev.removed_by, participant=ev.participant,
                             detail=f"reason: {ev.reason}" if ev.reason else "no reason given")
    if isinstance(ev, TaskConfigured):
        return at("task_configured", ev.configured_by,
                             detail=f"task v{ev.version}, document {ev.config_cid}")
    if isinstance(ev, PrivacyPolicySet):
        return at("privacy_policy", ev.actor,
                             detail=f"task v{ev.version}: policy {digest_hex(ev.policy_digest)}, "
                             f"budget {ev.epsilon_budget} micro-epsilon")
    if isinstance(ev, VerificationPolicySet):
        return at("verification_policy", ev.set_by,
                             detail=f"attestation quorum {ev.quorum_percent}%")
    if isinstance(ev, RoundOpened):
        return at("round_opened", ev.opened_by, round_id=int(ev.round_id),
                             detail=f"task v{ev.task_version}, min {ev.min_updates} updates, deadline {ev.deadline}, "
                             f"base model {digest_hex(ev.base_model_digest)}")
    if isinstance(ev, RoundFinalized):
        return at("round_finalized", ev.finalized_by, round_id=int(ev.round_id),
                             detail=f"{ev.included_count} update(s) included, model {digest_hex(ev.model_digest)}")
    if isinstance(ev, RoundClosed):
        return at("round_closed", ev.closed_by, round_id=int(ev.round_id),
                             detail=f"{ev.commit_count} commit(s); reason: {ev.reason}")
    if isinstance(ev, RoundDisputed):
        return at("round_disputed", ev.disputed_by, round_id=int(ev.round_id),
                             participant=ev.accused, detail=f"reason: {ev.reason}; findings {ev.findings_cid}")
    return None


def timeline(events: Iterable[LedgerEvent], gas_of: Callable[[str], int] | None = None) -> tuple[TimelineEntry, ...]:
    """The federation's membership, task and round events in chain order, each with its gas when ``gas_of`` is given."""
    out: list[TimelineEntry] = []
    for ev in events:
        entry = _entry(ev)
        if entry is None:
            continue
        if gas_of is not None:
            entry = dataclasses.replace(entry, gas=gas_of(entry.tx_hash))
        out.append(entry)
    return tuple(out)


@dataclass(frozen=True)
class RoundEvaluation:
    """The global model of one round scored on a held-out test set by the caller (e.g. ``fedchain simulate``)."""

    round: int
    accuracy: float | None
    loss: float | None

    def to_json(self) -> dict[str, Any]:
        """The evaluation as a JSON object."""
        return {"round": self.round, "accuracy": self.accuracy, "loss": self.loss}


def evaluations(scores: Mapping[int, tuple[float | None, float | None]] | Iterable[RoundEvaluation]
                ) -> tuple[RoundEvaluation, ...]:
    """Evaluations from ``{round: (accuracy, loss)}`` or RoundEvaluation records, by round."""
    if isinstance(scores, Mapping):
        items = [RoundEvaluation(int(r), a, lo) for r, (a, lo) in scores.items()]
    else:
        items = list(scores)
    return tuple(sorted(items, key=lambda e: e.round))


@dataclass(frozen=True)
class ReportMeta:
    """Who made the report, from what: the fedchain version, the chain and contract, the blocks audited, the RPC
    endpoint and blob store read, when it was generated, and the gas price its costs are stated at."""

    fedchain_version: str = __version__
    chain_id: int = 0
    contract: str = ""
    from_block: int = 0
    to_block: int | None = None
    rpc_url: str | None = None
    store: str | None = None
    generated_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    gas_price_gwei: str = str(DEFAULT_GAS_PRICE_GWEI)
    gas_price_stated: bool = False  # False: the default price, not one the caller gave

    @property
    def gas_price_wei(self) -> int:
        """The stated gas price in wei."""
        return gas_price_wei(self.gas_price_gwei)

    def to_json(self) -> dict[str, Any]:
        """The metadata as a JSON object."""
        return {**self.__dict__, "gas_price_wei": self.gas_price_wei}


def gas_totals(round_gas: Sequence[Mapping[str, int]], entries: Sequence[TimelineEntry], price_wei: int
               ) -> dict[str, Any]:
    """Gas used by the federation's transactions the report saw, by kind, and its cost at ``price_wei``."""
    by_kind: dict[str, int] = {}
    for gas in round_gas:
        for key in ("open", "commit_total", "finalize", "close"):
            if key in gas:
                name = {"commit_total": "commits"}.get(key, key)
                by_kind[name] = by_kind.get(name, 0) + int(gas[key])
    for e in entries:
        if e.gas is not None and e.event in ("registered", "admitted", "removed", "task_configured"):
            by_kind[e.event] = by_kind.get(e.event, 0) + e.gas
    total = sum(by_kind.values())
    return {"by_kind": dict(sorted(by_kind.items())), "total": total, "price_wei": price_wei,
            "cost_wei": total * price_wei, "cost_eth": eth_text(total * price_wei),
            "by_kind_cost_eth": {k: eth_text(v * price_wei) for k, v in sorted(by_kind.items())}}


__all__ = ["DEFAULT_GAS_PRICE_GWEI", "SECURE_NORM_NOTE", "Contribution", "ReportMeta", "RoundChain", "RoundEvaluation",
           "TaskLine", "TimelineEntry", "eth_text", "evaluations", "gas_price_wei", "gas_totals", "round_chain",
           "task_document_view", "task_line", "timeline"]

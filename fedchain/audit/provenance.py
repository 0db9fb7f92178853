"""Provenance of a model: the rounds, participants and updates behind it.

Walks back from the round that finalised the model (found by digest or CID) through each
round's base model to the initial model, listing each round's included commitments from its
evidence document (checked against the digest recorded on chain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from fedchain.audit.replay import History
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import AuditError, FedchainError
from fedchain.ports import BlobStore, Ledger
from fedchain.protocol.evidence import Evidence
from fedchain.types import digest_hex, parse_digest


class ProvenanceUpdate(TypedDict):
    """One update included in a provenance step (a JSON object)."""

    participant: str
    organisation: str
    cid: str
    update_digest: str
    num_samples: int


@dataclass(frozen=True)
class ProvenanceStep:
    """One round behind a model: its result, its base model and the updates it included or rejected."""

    round: int
    model_digest: str
    model_cid: str
    base_model_digest: str
    task_version: int
    updates: tuple[ProvenanceUpdate, ...]
    rejected: tuple[dict[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        """The step as a JSON object."""
        return {
            "round": self.round,
            "model_digest": self.model_digest,
            "model_cid": self.model_cid,
            "base_model_digest": self.base_model_digest,
            "task_version": self.task_version,
            "updates": list(self.updates),
            "rejected": list(self.rejected),
        }


def provenance(ledger: Ledger, store: BlobStore, model: str) -> list[ProvenanceStep]:
    """Steps from the round that produced ``model`` (digest or CID) back to round one."""
    history = History.from_events(ledger.history())
    by_digest: dict[bytes, int] = {}
    by_cid: dict[str, int] = {}
    for finalized_rid, rev in history.rounds.items():
        if rev.finalized is not None:
            by_digest[bytes(rev.finalized.model_digest)] = finalized_rid
            by_cid[rev.finalized.model_cid] = finalized_rid
    rid: int | None
    if model in by_cid:
        rid = by_cid[model]
    else:
        try:
            rid = by_digest.get(bytes(parse_digest(model)))
        except ValueError:
            rid = None
    if rid is None:
        raise AuditError(f"no finalised round produced model {model!r}")
    steps: list[ProvenanceStep] = []
    while rid is not None:
        rev = history.rounds[rid]
        fin = rev.finalized
        assert fin is not None
        try:
            data = store.get(fin.evidence_cid)
            if sha256_digest(data) != bytes(fin.evidence_digest):
                raise AuditError(f"round {rid}: evidence {fin.evidence_cid} does not match its recorded digest")
            evidence = Evidence.from_bytes(data)
        except FedchainError as err:
            raise AuditError(f"round {rid}: cannot read evidence {fin.evidence_cid}: {err}") from err
        orgs = {a: r.organisation for a, r in history.registered.items()}
        steps.append(
            ProvenanceStep(
                round=rid,
                model_digest=digest_hex(fin.model_digest),
                model_cid=fin.model_cid,
                base_model_digest=digest_hex(rev.opened.base_model_digest),
                task_version=int(rev.opened.task_version),
                updates=tuple(
                    ProvenanceUpdate(
                        participant=u.participant,
                        organisation=orgs.get(u.participant.lower(), ""),
                        cid=u.cid,
                        update_digest=digest_hex(u.update_digest),
                        num_samples=u.num_samples,
                    )
                    for u in evidence.included
                ),
                rejected=tuple(r.to_json() for r in evidence.rejected),
            )
        )
        base = bytes(rev.opened.base_model_digest)
        earlier = [r for d, r in by_digest.items() if d == base and r < rid]
        rid = max(earlier) if earlier else None
    return steps

"""Provenance of a model: the rounds, participants and updates behind it.

Walks back from the round that finalised the model (found by digest or CID) through each
round's base model to the initial model, listing each round's included commitments from its
evidence document (checked against the digest recorded on chain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from fedchain.audit.replay import DECODE_ERRORS, FETCH_DEADLINE_S, FETCH_WORKERS, History, describe_error, fetch_blobs
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import AuditError
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
    chain: list[int] = []
    while rid is not None:
        chain.append(rid)
        base = bytes(history.rounds[rid].opened.base_model_digest)
        earlier = [r for d, r in by_digest.items() if d == base and r < rid]
        rid = max(earlier) if earlier else None
    finals = [history.rounds[r].finalized for r in chain]
    assert all(fin is not None for fin in finals)
    fetched, _ = fetch_blobs(store, [fin.evidence_cid for fin in finals if fin is not None], (),
                              workers=FETCH_WORKERS, deadline_s=FETCH_DEADLINE_S)
    orgs = {a: r.organisation for a, r in history.registered.items()}
    steps: list[ProvenanceStep] = []
    for rid, got in zip(chain, fetched, strict=True):
        rev = history.rounds[rid]
        fin = rev.finalized
        assert fin is not None
        if got.data is None:
            raise AuditError(f"round {rid}: cannot read evidence {fin.evidence_cid!r}: {got.detail}")
        if sha256_digest(got.data) != bytes(fin.evidence_digest):
            raise AuditError(f"round {rid}: evidence {fin.evidence_cid} does not match its recorded digest")
        try:
            evidence = Evidence.from_bytes(got.data)
        except DECODE_ERRORS as err:
            raise AuditError(f"round {rid}: evidence {fin.evidence_cid} does not decode: {describe_error(err)}") from err
        committed = {c.participant.lower(): c for c in rev.commitments}
        updates: list[ProvenanceUpdate] = []
        for u in evidence.included:
            c = committed.get(u.participant.lower())
            if c is None:
                raise AuditError(f"round {rid}: the evidence includes {u.participant}, who committed nothing; "
                                 "run `fedchain audit`")
            # what the chain recorded, not what the evidence says
            updates.append(ProvenanceUpdate(participant=c.participant, organisation=orgs.get(c.participant.lower(), ""),
                                            cid=c.cid, update_digest=digest_hex(c.update_digest),
                                            num_samples=int(c.num_samples)))
        steps.append(
            ProvenanceStep(
                round=rid,
                model_digest=digest_hex(fin.model_digest),
                model_cid=fin.model_cid,
                base_model_digest=digest_hex(rev.opened.base_model_digest),
                task_version=int(rev.opened.task_version),
                updates=tuple(updates),
                rejected=tuple(r.to_json() for r in evidence.rejected),
            )
        )
    return steps

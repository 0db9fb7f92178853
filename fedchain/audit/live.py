"""Live verification by the members.

Before a participant trains on a new global model, its agent replays the round that produced it
with the audit's own code (:meth:`fedchain.audit.replay.Auditor.verify_round`: the committed
blobs, the evidence, the strategy) and records an attestation on chain
(``attestRound``), proving with a Merkle proof of its own commitment leaf that it was included.
A replay without error findings attests the published model; one with errors puts a findings
blob (:class:`~fedchain.audit.findings.AuditFindings`: every finding of the round with its
responsible party and severity, naming the party it accuses) in the store and attests
negative with its digest and CID, so that any member can propose a dispute citing it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fedchain.audit.findings import AuditFinding, AuditFindings, Party
from fedchain.audit.replay import Auditor
from fedchain.codec.canonical import sha256_digest
from fedchain.codec.merkle import MerkleTree
from fedchain.errors import AuditError, BlobFormatError, MerkleError
from fedchain.ports import BlobStore, Inclusion, Ledger, RoundRecord, RoundStatus, TxReport, UpdateCommitment
from fedchain.protocol.evidence import Evidence
from fedchain.protocol.rounds import leaf_of
from fedchain.reverts import FederationAlreadyAttested
from fedchain.types import ZERO_DIGEST, Cid, Digest, RoundId, digest_hex

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveVerdict:
    """A member's replay of one finalised round.

    ``ok``: no finding of severity error; ``published_digest`` the model the round was finalised
    with, ``replayed_digest`` the one the replay computed (None: none); ``findings_blob`` the
    canonical bytes of the :class:`AuditFindings` a negative attestation cites (None when ok);
    ``accused`` the party it accuses (and ``accused_address``)."""

    round_id: RoundId
    ok: bool
    published_digest: Digest
    replayed_digest: Digest | None
    findings: tuple[AuditFinding, ...]
    findings_blob: bytes | None
    seconds: float = 0.0
    accused: Party | None = None
    accused_address: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The verdict as a JSON object (without the blob's bytes)."""
        return {"round": int(self.round_id), "ok": self.ok, "published_digest": digest_hex(self.published_digest),
                "replayed_digest": digest_hex(self.replayed_digest) if self.replayed_digest is not None else None,
                "findings": [f.to_json() for f in self.findings], "seconds": round(self.seconds, 3),
                "accused": self.accused.value if self.accused is not None else None,
                "accused_address": self.accused_address}


def verify_round(ledger: Ledger, store: BlobStore, round_id: RoundId, *, auditor: Auditor | None = None,
                 verified_by: str = "") -> LiveVerdict:
    """Replay finalised round ``round_id`` with the audit's code (``auditor`` keeps verified task
    documents between calls) and judge it. Raises AuditError when the round is not finalised."""
    start = time.perf_counter()
    auditor = auditor if auditor is not None else Auditor(ledger, store)
    checked = auditor.verify_round(int(round_id))
    if checked.published_digest is None:
        raise AuditError(f"round {round_id} was not finalised: there is no model to verify")
    errors = checked.errors
    blob: bytes | None = None
    accused: AuditFinding | None = None
    if errors:
        accused = next((f for f in errors if f.responsible is Party.AGGREGATOR), errors[0])
        blob = AuditFindings(
            round=int(round_id), published_digest=digest_hex(checked.published_digest),
            replayed_digest=digest_hex(checked.replayed_digest) if checked.replayed_digest is not None else None,
            accused=accused.responsible, accused_address=accused.responsible_address, findings=checked.findings,
            verified_by=verified_by,
        ).to_bytes()
    return LiveVerdict(RoundId(int(round_id)), not errors, checked.published_digest, checked.replayed_digest,
                       checked.findings, blob, time.perf_counter() - start,
                       accused.responsible if accused is not None else None,
                       accused.responsible_address if accused is not None else None)


def inclusion_of(store: BlobStore, rnd: RoundRecord, commitment: UpdateCommitment,
                 commitments: list[UpdateCommitment]) -> Inclusion | None:
    """The Merkle proof that ``commitment`` is a leaf of the round's recorded root, built from
    the leaves the evidence lists (or, when those do not give the root, from the chain's
    commitments of the participants the evidence includes); None when neither proves it."""
    if rnd.evidence_cid is None:
        return None
    data = store.get(rnd.evidence_cid)
    if sha256_digest(data) != bytes(rnd.evidence_digest):
        log.warning("round %d: evidence %s does not match its digest on chain", rnd.round_id, rnd.evidence_cid)
        return None
    try:
        evidence = Evidence.from_bytes(data)
    except BlobFormatError as err:
        log.warning("round %d: evidence %s is malformed: %s", rnd.round_id, rnd.evidence_cid, err)
        return None
    mine = leaf_of(commitment)
    included = {u.participant.lower() for u in evidence.included}
    candidates = [[bytes(u.leaf) for u in evidence.included],
                  [bytes(leaf_of(c)) for c in commitments if c.participant.lower() in included]]
    for leaves in candidates:
        if bytes(mine) not in leaves:
            continue
        try:
            tree = MerkleTree.build(leaves)
        except MerkleError:
            continue
        if bytes(tree.root) == bytes(rnd.merkle_root):
            return Inclusion(update_digest=commitment.update_digest, cid=commitment.cid,
                             num_samples=int(commitment.num_samples), metadata_digest=commitment.metadata_digest,
                             proof=tuple(tree.proof(mine)))
    return None


def attest_verdict(ledger: Ledger, store: BlobStore, verdict: LiveVerdict, inclusion: Inclusion) -> TxReport | None:
    """Record ``verdict`` on chain as the ledger's account: ok attests the published model; a
    negative verdict stores its findings blob first and cites its digest and CID. None when the
    account had attested the round already."""
    rid = verdict.round_id
    try:
        if verdict.ok:
            report = ledger.attest_round(rid, verdict.published_digest, True, ZERO_DIGEST, Cid(""), inclusion)
        else:
            assert verdict.findings_blob is not None
            cid = store.put(verdict.findings_blob)
            replayed = verdict.replayed_digest if verdict.replayed_digest is not None else ZERO_DIGEST
            report = ledger.attest_round(rid, replayed, False, sha256_digest(verdict.findings_blob), cid, inclusion)
            log.warning("round %d: the replay disagrees with the published round (%s, accusing %s%s); attested "
                        "negative citing findings %s (tx %s): any member can propose a dispute citing it", rid,
                        ", ".join(sorted({f.kind.value for f in verdict.findings if f.severity.value == "error"})),
                        verdict.accused.value if verdict.accused is not None else "nobody",
                        f" {verdict.accused_address}" if verdict.accused_address else "", cid, report.tx_hash)
    except FederationAlreadyAttested:
        log.info("round %d: already attested by %s", rid, ledger.sender)
        return None
    return report


def attest(ledger: Ledger, store: BlobStore, round_id: RoundId, participant_commitment: UpdateCommitment, *,
           auditor: Auditor | None = None) -> TxReport | None:
    """Verify finalised round ``round_id`` and attest the verdict as the ledger's account, whose
    commitment to the round is ``participant_commitment``. None (nothing sent) when it attested
    already, or when its inclusion cannot be proven against the recorded Merkle root (logged)."""
    return _attest(ledger, store, round_id, participant_commitment, auditor)[0]


def _attest(ledger: Ledger, store: BlobStore, round_id: RoundId, commitment: UpdateCommitment,
            auditor: Auditor | None) -> tuple[TxReport | None, LiveVerdict | None]:
    rid = RoundId(int(round_id))
    if ledger.attestation_of(rid, ledger.sender) != 0:
        log.info("round %d: already attested by %s", rid, ledger.sender)
        return None, None
    rnd = ledger.round(rid)
    if rnd.status != RoundStatus.FINALIZED:
        log.warning("round %d is %s: there is nothing to attest", rid, RoundStatus(rnd.status).name.lower())
        return None, None
    verdict = verify_round(ledger, store, rid, auditor=auditor, verified_by=ledger.sender)
    inclusion = inclusion_of(store, rnd, commitment, ledger.commitments(rid))
    if inclusion is None:
        log.warning("round %d: cannot prove that our update is a leaf of the recorded Merkle root %s; not attesting "
                    "(the replay %s)", rid, digest_hex(rnd.merkle_root),
                    "agrees" if verdict.ok else "disagrees: " + ", ".join(sorted({f.kind.value for f in verdict.findings})))
        return None, verdict
    return attest_verdict(ledger, store, verdict, inclusion), verdict


@dataclass(frozen=True)
class Verification:
    """One live verification by an agent: the verdict, its cost and the attestation sent."""

    round_id: RoundId
    ok: bool | None  # None: no verdict (attested already, or not finalised)
    seconds: float
    tx_hash: str | None
    gas_used: int
    findings_blob_digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The verification as a JSON object."""
        return {"round": int(self.round_id), "ok": self.ok, "seconds": round(self.seconds, 3), "tx_hash": self.tx_hash,
                "gas_used": self.gas_used, "findings_blob_digest": self.findings_blob_digest}


class _Holder(Protocol):
    ledger: Ledger
    store: BlobStore


class LiveVerifier:
    """The participant agent's verifier hook: ``verifier(round)`` verifies a finalised round the
    agent was included in and attests it, with the ledger and store ``holder`` has at the time
    (an agent reconnected after an outage holds new ones). Keeps one auditor, so that a task
    document is verified once, and a :class:`Verification` per call in :attr:`verifications`."""

    def __init__(self, holder: _Holder, *, on_verification: Callable[[Verification], None] | None = None) -> None:
        self.holder = holder
        self.on_verification = on_verification
        self.verifications: list[Verification] = []
        self._auditor: Auditor | None = None

    def __call__(self, rnd: RoundRecord) -> None:
        """Verify and attest ``rnd``."""
        ledger, store = self.holder.ledger, self.holder.store
        if self._auditor is None or self._auditor.ledger is not ledger or self._auditor.store is not store:
            self._auditor = Auditor(ledger, store)
        rid = RoundId(int(rnd.round_id))
        mine = next((c for c in ledger.commitments(rid) if c.participant.lower() == ledger.sender.lower()), None)
        if mine is None:
            log.warning("round %d: no commitment of %s on chain; nothing to attest", rid, ledger.sender)
            return
        t0 = time.perf_counter()
        report, verdict = _attest(ledger, store, rid, mine, self._auditor)
        seconds = verdict.seconds if verdict is not None else time.perf_counter() - t0
        done = Verification(rid, verdict.ok if verdict is not None else None, seconds,
                            report.tx_hash if report is not None else None, report.gas_used if report is not None else 0,
                            digest_hex(sha256_digest(verdict.findings_blob))
                            if verdict is not None and verdict.findings_blob is not None else None)
        self.verifications.append(done)
        if verdict is not None:
            log.info("round %d: verified in %.2f s: %s%s", rid, verdict.seconds, "ok" if verdict.ok else "NOT ok",
                     f" (attestation tx {report.tx_hash}, gas {report.gas_used})" if report is not None else "")
        if self.on_verification is not None:
            self.on_verification(done)


__all__ = ["LiveVerdict", "LiveVerifier", "Verification", "attest", "attest_verdict", "inclusion_of", "verify_round"]

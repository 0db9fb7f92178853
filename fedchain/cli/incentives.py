"""What the incentives commands share: the check of a finding a slash cites.

A slash proposal (``fedchain gov propose slash``) must cite a finding blob that exists in the
store and names the slashed participant as responsible: either an audit findings blob
(:class:`~fedchain.audit.findings.AuditFindings`, from a negative attestation or ``fedchain
audit``) or the evidence document of a round (:class:`~fedchain.protocol.evidence.Evidence`)
whose rejected updates include one of the participant's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fedchain.audit.findings import FINDINGS_FORMAT, AuditFindings, Party, Severity
from fedchain.codec.blob import decode_json_doc
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import BlobFormatError, GovernanceError
from fedchain.protocol.evidence import EVIDENCE_FORMAT, Evidence
from fedchain.types import Address, Cid, Digest, digest_hex


@dataclass(frozen=True)
class SlashFinding:
    """A finding blob checked to name ``participant`` as responsible: its CID, digest, kind
    (``findings`` or ``evidence``), the round it is about and what it holds against the participant."""

    cid: Cid
    digest: Digest
    kind: str
    round_id: int
    participant: Address
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The checked finding as a JSON object (digest as ``0x`` hex)."""
        return {"cid": self.cid, "digest": digest_hex(self.digest), "kind": self.kind, "round": self.round_id,
                "participant": self.participant, "reasons": list(self.reasons)}


def _same(a: str | None, b: str) -> bool:
    return a is not None and a.lower() == b.lower()


def check_slash_finding(cid: Cid, data: bytes, participant: Address) -> SlashFinding:
    """Check that the blob ``data`` (stored under ``cid``) is a findings blob or an evidence
    document naming ``participant`` as responsible.

    BlobFormatError when it is neither; GovernanceError when it does not name the participant:
    a findings blob must accuse it (``accused`` participant at its address) or hold a finding of
    severity error or handled whose responsible party is the participant at its address; an
    evidence document must list a rejected update of the participant."""
    obj = decode_json_doc(data, what=f"finding blob {cid}")
    fmt = obj.get("format") if isinstance(obj, dict) else None
    digest = sha256_digest(data)
    reasons: list[str] = []
    if fmt == EVIDENCE_FORMAT:
        evidence = Evidence.from_json(obj)
        reasons = [f"update rejected by {r.rule}: {r.reason}" for r in evidence.rejected if _same(r.participant, participant)]
        kind, round_id = "evidence", int(evidence.round_id)
        whose = f"its evidence rejects no update of {participant}"
    elif fmt == FINDINGS_FORMAT:
        findings = AuditFindings.from_json(obj)
        if findings.accused is Party.PARTICIPANT and _same(findings.accused_address, participant):
            reasons.append(f"accuses participant {participant}")
        reasons += [f"{f.kind.value} [{f.severity.value}]: {f.detail}" for f in findings.findings
                    if f.responsible is Party.PARTICIPANT and _same(f.responsible_address, participant)
                    and f.severity in (Severity.ERROR, Severity.HANDLED)]
        kind, round_id = "findings", findings.round
        whose = (f"it accuses {findings.accused.value} {findings.accused_address or ''}".rstrip()
                 + f" and holds no error or handled finding against {participant}")
    else:
        raise BlobFormatError(f"finding blob {cid} is neither an audit findings blob nor a round's evidence document "
                              f"(format {str(fmt)[:60]!r})")
    if not reasons:
        raise GovernanceError(f"finding blob {cid} (round {round_id}) does not name {participant} as responsible: "
                              f"{whose}")
    return SlashFinding(cid, digest, kind, round_id, participant, tuple(reasons))

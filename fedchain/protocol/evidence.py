"""The evidence document an aggregator publishes with each finalised round.

Canonical JSON listing the included commitments (with their Merkle leaves) and every rejected
update with the rule that rejected it and why. Its digest and CID go on chain in
``RoundFinalized``; the auditor re-runs the recorded rules and must obtain the same rejections
and the same model bytes. A secure-aggregation round's evidence adds how it was unmasked
(:class:`SecureEvidence`: the round context, survivors, dropped participants, revealers, the
unmasking's findings, the digest of the unmasked ring sum and every record the chain lists), which
the auditor re-derives from the chain and the store and compares field by field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedchain.errors import BlobFormatError
from fedchain.fl.records import Rejection
from fedchain.ports import AdvertisementPosted, UnmaskingSharesPosted, UpdateCommitment
from fedchain.secagg.context import RoundContext
from fedchain.secagg.protocol import UnmaskResult
from fedchain.types import Address, Cid, Digest, RoundId, digest_hex, parse_digest

EVIDENCE_FORMAT = "fedchain.evidence/1"


@dataclass(frozen=True)
class IncludedUpdate:
    """One included update as the evidence lists it, with its Merkle leaf."""

    participant: Address
    update_digest: Digest
    cid: Cid
    num_samples: int
    leaf: Digest

    def to_json(self) -> dict[str, Any]:
        """The update as a JSON object (digests as ``0x`` hex)."""
        return {
            "participant": self.participant,
            "update_digest": digest_hex(self.update_digest),
            "cid": self.cid,
            "num_samples": self.num_samples,
            "leaf": digest_hex(self.leaf),
        }


@dataclass(frozen=True)
class RecordDigest:
    """One record a participant posted in a secure round, as the chain lists it: its blob's digest and CID."""

    participant: Address
    digest: Digest
    cid: Cid

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object."""
        return {"participant": self.participant, "digest": digest_hex(self.digest), "cid": self.cid}


@dataclass(frozen=True)
class SecureFinding:
    """A finding of a secure round's unmasking: what (``kind``, a :class:`fedchain.secagg.protocol.FindingKind`
    value), who did it, about whose secret (``owner``), and the evidence in words."""

    kind: str
    offender: Address
    owner: Address | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The finding as a JSON object."""
        return {"kind": self.kind, "offender": self.offender, "owner": self.owner, "detail": self.detail}


@dataclass(frozen=True)
class SecureEvidence:
    """How a secure-aggregation round was unmasked: the round context's digest, its members and threshold, the
    survivors (U2, whose inputs are in the sum), the dropped advertisers (U1 minus U2), the revealers whose
    shares were used (U3), the findings, SHA-256 of the unmasked ring sum, and every record the chain lists."""

    context_digest: Digest
    members: int
    threshold: int
    sum_digest: Digest
    survivors: tuple[Address, ...]
    dropped: tuple[Address, ...]
    revealers: tuple[Address, ...]
    findings: tuple[SecureFinding, ...]
    advertisements: tuple[RecordDigest, ...]
    masked_inputs: tuple[RecordDigest, ...]
    unmasking: tuple[RecordDigest, ...]

    def to_json(self) -> dict[str, Any]:
        """The section as a JSON object (participants in member order, records in chain order)."""
        return {
            "context_digest": digest_hex(self.context_digest),
            "members": self.members,
            "threshold": self.threshold,
            "sum_digest": digest_hex(self.sum_digest),
            "survivors": list(self.survivors),
            "dropped": list(self.dropped),
            "revealers": list(self.revealers),
            "findings": [f.to_json() for f in self.findings],
            "advertisements": [r.to_json() for r in self.advertisements],
            "masked_inputs": [r.to_json() for r in self.masked_inputs],
            "unmasking": [r.to_json() for r in self.unmasking],
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "evidence secagg") -> SecureEvidence:
        """Read the section; :class:`BlobFormatError` names the first field that is wrong."""
        _fields(data, _SECURE_FIELDS, where)

        def addresses(key: str) -> tuple[Address, ...]:
            return tuple(Address(_text(a, f"{where} {key}[{i}]")) for i, a in enumerate(_field(data, key, list, where)))

        def records(key: str) -> tuple[RecordDigest, ...]:
            out = []
            for i, r in enumerate(_field(data, key, list, where)):
                at = f"{where} {key}[{i}]"
                _fields(r, _RECORD_FIELDS, at)
                out.append(RecordDigest(Address(_field(r, "participant", str, at)), _digest(r, "digest", at),
                                        Cid(_field(r, "cid", str, at))))
            return tuple(out)

        findings = []
        for i, f in enumerate(_field(data, "findings", list, where)):
            at = f"{where} findings[{i}]"
            _fields(f, _SECURE_FINDING_FIELDS, at)
            owner = f["owner"]
            findings.append(SecureFinding(_field(f, "kind", str, at), Address(_field(f, "offender", str, at)),
                                          None if owner is None else Address(_text(owner, f"{at} owner")),
                                          _field(f, "detail", str, at)))
        return cls(
            context_digest=_digest(data, "context_digest", where),
            members=_count(data, "members", where),
            threshold=_count(data, "threshold", where),
            sum_digest=_digest(data, "sum_digest", where),
            survivors=addresses("survivors"),
            dropped=addresses("dropped"),
            revealers=addresses("revealers"),
            findings=tuple(findings),
            advertisements=records("advertisements"),
            masked_inputs=records("masked_inputs"),
            unmasking=records("unmasking"),
        )


def secure_evidence(
    ctx: RoundContext,
    result: UnmaskResult,
    advertisements: Sequence[AdvertisementPosted],
    commitments: Sequence[UpdateCommitment],
    unmasking: Sequence[UnmaskingSharesPosted],
) -> SecureEvidence:
    """The secure section of a round's evidence from its context, its unmasking and the records on chain (the
    aggregator publishes it; the auditor builds it again from the chain and the store and compares)."""

    def address(index: int) -> Address:
        return ctx.member(index).address if ctx.is_member(index) else Address(f"index {index}")

    return SecureEvidence(
        context_digest=Digest(bytes(ctx.digest)),
        members=len(ctx.members),
        threshold=int(ctx.params.threshold),
        sum_digest=Digest(result.digest()),
        survivors=tuple(address(i) for i in result.survivors),
        dropped=tuple(address(i) for i in result.dropped),
        revealers=tuple(address(i) for i in result.revealers),
        findings=tuple(SecureFinding(f.kind.value, address(f.offender), None if f.owner is None else address(f.owner),
                                     f.detail) for f in result.findings),
        advertisements=tuple(RecordDigest(a.participant, a.digest, a.cid) for a in advertisements),
        masked_inputs=tuple(RecordDigest(c.participant, c.update_digest, c.cid) for c in commitments),
        unmasking=tuple(RecordDigest(u.participant, u.digest, u.cid) for u in unmasking),
    )


@dataclass(frozen=True)
class Evidence:
    """Evidence of one round's aggregation (``secagg``: how a secure-aggregation round was unmasked)."""

    round_id: RoundId
    base_model_digest: Digest
    model_digest: Digest
    aggregation_digest: Digest
    merkle_root: Digest
    included: tuple[IncludedUpdate, ...]
    rejected: tuple[Rejection, ...]
    secagg: SecureEvidence | None = None

    def to_json(self) -> dict[str, Any]:
        """The evidence as a JSON object, included and rejected sorted by participant (a plain round's has no
        ``secagg`` key)."""
        secure = {} if self.secagg is None else {"secagg": self.secagg.to_json()}
        return {
            "format": EVIDENCE_FORMAT,
            "round": int(self.round_id),
            "base_model_digest": digest_hex(self.base_model_digest),
            "model_digest": digest_hex(self.model_digest),
            "aggregation_digest": digest_hex(self.aggregation_digest),
            "merkle_root": digest_hex(self.merkle_root),
            "included": [u.to_json() for u in sorted(self.included, key=lambda u: u.participant.lower())],
            "rejected": [r.to_json() for r in sorted(self.rejected, key=lambda r: (r.participant.lower(), r.rule))],
            **secure,
        }

    def to_bytes(self) -> bytes:
        """The evidence document's canonical bytes, as stored and digested."""
        from fedchain.codec.blob import encode_json_doc

        return bytes(encode_json_doc(self.to_json()))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evidence:
        """Read the JSON object of an evidence document; :class:`BlobFormatError` names the first
        field that is missing, unknown or of the wrong type."""
        if not isinstance(data, Mapping) or data.get("format") != EVIDENCE_FORMAT:
            raise BlobFormatError("not an evidence document")
        _fields(data, _EVIDENCE_FIELDS | ({"secagg"} if "secagg" in data else set()), "evidence document")
        included = _field(data, "included", list, "evidence document")
        rejected = _field(data, "rejected", list, "evidence document")
        return cls(
            round_id=RoundId(_count(data, "round", "evidence document")),
            base_model_digest=_digest(data, "base_model_digest", "evidence document"),
            model_digest=_digest(data, "model_digest", "evidence document"),
            aggregation_digest=_digest(data, "aggregation_digest", "evidence document"),
            merkle_root=_digest(data, "merkle_root", "evidence document"),
            included=tuple(_included(u, f"evidence included[{i}]") for i, u in enumerate(included)),
            rejected=tuple(_rejection(r, f"evidence rejected[{i}]") for i, r in enumerate(rejected)),
            secagg=None if "secagg" not in data else SecureEvidence.from_json(data["secagg"]),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Evidence:
        """The evidence from its document bytes."""
        from fedchain.codec.blob import decode_json_doc

        return cls.from_json(decode_json_doc(data, what="evidence document"))


_EVIDENCE_FIELDS = frozenset(
    {"format", "round", "base_model_digest", "model_digest", "aggregation_digest", "merkle_root", "included", "rejected"}
)
_INCLUDED_FIELDS = frozenset({"participant", "update_digest", "cid", "num_samples", "leaf"})
_REJECTION_FIELDS = frozenset({"participant", "rule", "reason"})
_SECURE_FIELDS = frozenset({"context_digest", "members", "threshold", "sum_digest", "survivors", "dropped", "revealers",
                            "findings", "advertisements", "masked_inputs", "unmasking"})
_RECORD_FIELDS = frozenset({"participant", "digest", "cid"})
_SECURE_FINDING_FIELDS = frozenset({"kind", "offender", "owner", "detail"})


def _fields(data: Any, expected: frozenset[str], where: str) -> Mapping[str, Any]:
    """``data`` as an object with exactly the ``expected`` keys."""
    if not isinstance(data, Mapping):
        raise BlobFormatError(f"{where} is a {_json_type(data)}, not an object")
    missing = sorted(expected - set(data))
    unknown = sorted(set(data) - expected)
    if missing:
        raise BlobFormatError(f"{where} lacks {', '.join(missing)}")
    if unknown:
        raise BlobFormatError(f"{where} has unknown field(s) {', '.join(k[:40] for k in unknown[:5])}")
    return data


def _field(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BlobFormatError(f"{where}: {key} is a {_json_type(value)}, expected a {_json_type(kind())}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BlobFormatError(f"{where} is a {_json_type(value)}, expected a string")
    return value


def _count(data: Mapping[str, Any], key: str, where: str) -> int:
    value = _field(data, key, int, where)
    if not 0 <= value < 2**64:
        raise BlobFormatError(f"{where}: {key} {value} is not a 64-bit unsigned integer")
    return int(value)


def _digest(data: Mapping[str, Any], key: str, where: str) -> Digest:
    text = _field(data, key, str, where)
    if not text.startswith("0x"):
        raise BlobFormatError(f"{where}: {key} {text[:80]!r} is not a 0x-prefixed digest")
    try:
        return parse_digest(text)
    except ValueError as err:
        raise BlobFormatError(f"{where}: {key}: {err}") from err


def _included(data: Any, where: str) -> IncludedUpdate:
    _fields(data, _INCLUDED_FIELDS, where)
    return IncludedUpdate(
        participant=Address(_field(data, "participant", str, where)),
        update_digest=_digest(data, "update_digest", where),
        cid=Cid(_field(data, "cid", str, where)),
        num_samples=_count(data, "num_samples", where),
        leaf=_digest(data, "leaf", where),
    )


def _rejection(data: Any, where: str) -> Rejection:
    _fields(data, _REJECTION_FIELDS, where)
    return Rejection(
        Address(_field(data, "participant", str, where)),
        _field(data, "rule", str, where),
        _field(data, "reason", str, where),
    )


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"

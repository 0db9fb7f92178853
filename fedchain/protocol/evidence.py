"""The evidence document an aggregator publishes with each finalised round.

Canonical JSON listing the included commitments (with their Merkle leaves) and every rejected
update with the rule that rejected it and why. Its digest and CID go on chain in
``RoundFinalized``; the auditor re-runs the recorded rules and must obtain the same rejections
and the same model bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedchain.errors import BlobFormatError
from fedchain.fl.records import Rejection
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
class Evidence:
    """Evidence of one round's aggregation."""

    round_id: RoundId
    base_model_digest: Digest
    model_digest: Digest
    aggregation_digest: Digest
    merkle_root: Digest
    included: tuple[IncludedUpdate, ...]
    rejected: tuple[Rejection, ...]

    def to_json(self) -> dict[str, Any]:
        """The evidence as a JSON object, included and rejected sorted by participant."""
        return {
            "format": EVIDENCE_FORMAT,
            "round": int(self.round_id),
            "base_model_digest": digest_hex(self.base_model_digest),
            "model_digest": digest_hex(self.model_digest),
            "aggregation_digest": digest_hex(self.aggregation_digest),
            "merkle_root": digest_hex(self.merkle_root),
            "included": [u.to_json() for u in sorted(self.included, key=lambda u: u.participant.lower())],
            "rejected": [r.to_json() for r in sorted(self.rejected, key=lambda r: (r.participant.lower(), r.rule))],
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
        _fields(data, _EVIDENCE_FIELDS, "evidence document")
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

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
        """The evidence from its JSON object; BlobFormatError when it is not one or is malformed."""
        if not isinstance(data, Mapping) or data.get("format") != EVIDENCE_FORMAT:
            raise BlobFormatError("not an evidence document")
        try:
            return cls(
                round_id=RoundId(int(data["round"])),
                base_model_digest=parse_digest(data["base_model_digest"]),
                model_digest=parse_digest(data["model_digest"]),
                aggregation_digest=parse_digest(data["aggregation_digest"]),
                merkle_root=parse_digest(data["merkle_root"]),
                included=tuple(
                    IncludedUpdate(
                        participant=Address(str(u["participant"])),
                        update_digest=parse_digest(u["update_digest"]),
                        cid=Cid(str(u["cid"])),
                        num_samples=int(u["num_samples"]),
                        leaf=parse_digest(u["leaf"]),
                    )
                    for u in data["included"]
                ),
                rejected=tuple(
                    Rejection(Address(str(r["participant"])), str(r["rule"]), str(r["reason"]))
                    for r in data["rejected"]
                ),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise BlobFormatError(f"evidence document is malformed: {err}") from err

    @classmethod
    def from_bytes(cls, data: bytes) -> Evidence:
        """The evidence from its document bytes."""
        from fedchain.codec.blob import decode_json_doc

        return cls.from_json(decode_json_doc(data))

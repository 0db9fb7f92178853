"""The findings blob a negative attestation or a dispute cites: canonical JSON that parses back
into the same AuditFindings, and refuses anything else with a clear error."""

from __future__ import annotations

import json

import pytest

from fedchain.audit.findings import AuditFinding, AuditFindings, FindingKind, Party, Severity
from fedchain.codec.blob import encode_json_doc
from fedchain.errors import BlobFormatError

AGGREGATOR = "0x" + "ab" * 20
PARTICIPANT = "0x" + "cd" * 20


def _blob() -> AuditFindings:
    return AuditFindings(
        round=3,
        published_digest="0x" + "11" * 32,
        replayed_digest="0x" + "22" * 32,
        accused=Party.AGGREGATOR,
        accused_address=AGGREGATOR,
        findings=(
            AuditFinding.of(3, None, FindingKind.MODEL_MISMATCH, "replayed model != finalised", address=AGGREGATOR),
            AuditFinding.of(3, PARTICIPANT, FindingKind.UPDATE_REJECTED, "rejected by norm_clip",
                            severity=Severity.HANDLED),
        ),
        verified_by=PARTICIPANT,
    )


def test_findings_blob_round_trips_through_its_canonical_bytes() -> None:
    blob = _blob()

    data = blob.to_bytes()

    assert data == encode_json_doc(json.loads(data))  # canonical: its digest is what goes on chain
    back = AuditFindings.from_bytes(data)
    assert back == blob
    assert [(f.kind, f.responsible, f.severity, f.responsible_address) for f in back.findings] == [
        (FindingKind.MODEL_MISMATCH, Party.AGGREGATOR, Severity.ERROR, AGGREGATOR),
        (FindingKind.UPDATE_REJECTED, Party.PARTICIPANT, Severity.HANDLED, PARTICIPANT),
    ]


def test_findings_blob_without_a_replayed_model_round_trips() -> None:
    blob = AuditFindings(1, "0x" + "11" * 32, None, Party.INFRASTRUCTURE, None, (), "")

    assert AuditFindings.from_bytes(blob.to_bytes()) == blob


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(format="fedchain.evidence/1"), "not a findings blob"),
    (lambda d: d.pop("accused"), "lacks accused"),
    (lambda d: d.update(extra=1), "unknown field"),
    (lambda d: d.update(accused="the moon"), "accused 'the moon' is not one of"),
    (lambda d: d.update(round=-1), "round is not a non-negative integer"),
    (lambda d: d.update(findings={}), "findings is not an array"),
    (lambda d: d["findings"][0].update(kind="no_such_kind"), r"findings\[0\]: kind"),
    (lambda d: d["findings"][1].update(severity=["error"]), r"findings\[1\]: severity"),
    (lambda d: d["findings"][0].update(detail=7), "detail is not a string"),
])
def test_findings_blob_that_is_not_one_is_refused_naming_the_field(change, message: str) -> None:
    data = _blob().to_json()
    change(data)

    with pytest.raises(BlobFormatError, match=message):
        AuditFindings.from_bytes(encode_json_doc(data))


def test_findings_blob_not_in_canonical_form_is_refused() -> None:
    pretty = json.dumps(_blob().to_json(), indent=2).encode()

    with pytest.raises(BlobFormatError, match="canonical"):
        AuditFindings.from_bytes(pretty)

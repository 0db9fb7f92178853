"""The incentives commands: the finding a slash proposal cites (checked before anything is sent),
and on the real devnet deposits, withdrawals, slashes by vote and reward claims from the CLI."""

from __future__ import annotations

import pytest
from eth_hash.auto import keccak

from fedchain.audit.findings import AuditFinding, AuditFindings, FindingKind, Party
from fedchain.cli.incentives import check_slash_finding
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import BlobFormatError, ExitCode, GovernanceError
from fedchain.fl.records import Rejection
from fedchain.protocol.evidence import Evidence
from fedchain.types import Address, Cid, Digest, RoundId

CHEAT = Address("0x" + "ab" * 20)
HONEST = Address("0x" + "cd" * 20)
AGGREGATOR = Address("0x" + "ef" * 20)
CID = Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")


def _findings(accused: Party, accused_address: str | None, *findings: AuditFinding) -> bytes:
    return AuditFindings(3, "0x" + "11" * 32, "0x" + "22" * 32, accused, accused_address, tuple(findings),
                         verified_by=HONEST).to_bytes()


def _evidence(*rejected: Rejection) -> bytes:
    d = Digest(keccak(b"x"))
    return Evidence(RoundId(2), d, d, d, d, (), tuple(rejected)).to_bytes()


def test_a_findings_blob_accusing_the_participant_names_it() -> None:
    data = _findings(Party.PARTICIPANT, CHEAT.upper().replace("0X", "0x"))
    checked = check_slash_finding(CID, data, CHEAT)
    assert (checked.kind, checked.round_id, checked.digest) == ("findings", 3, sha256_digest(data))
    assert checked.reasons == (f"accuses participant {CHEAT}",)


def test_a_participant_finding_names_its_address() -> None:
    finding = AuditFinding.of(3, CHEAT, FindingKind.BLOB_DIGEST_MISMATCH, "digest differs")
    checked = check_slash_finding(CID, _findings(Party.AGGREGATOR, AGGREGATOR, finding), CHEAT)
    assert checked.reasons == ("blob_digest_mismatch [error]: digest differs",)


def test_a_findings_blob_accusing_someone_else_is_refused() -> None:
    finding = AuditFinding.of(3, HONEST, FindingKind.BLOB_DIGEST_MISMATCH, "digest differs")
    with pytest.raises(GovernanceError, match=f"does not name {CHEAT} as responsible: it accuses aggregator") as err:
        check_slash_finding(CID, _findings(Party.AGGREGATOR, AGGREGATOR, finding), CHEAT)
    assert err.value.exit_code == ExitCode.GOVERNANCE


def test_a_warning_about_the_participant_does_not_name_it() -> None:
    finding = AuditFinding.of(3, CHEAT, FindingKind.REJECTED_UNAVAILABLE_NOW_AVAILABLE, "back now")
    with pytest.raises(GovernanceError, match="no error or handled finding"):
        check_slash_finding(CID, _findings(Party.AGGREGATOR, AGGREGATOR, finding), CHEAT)


def test_evidence_of_a_rejected_update_names_its_participant() -> None:
    data = _evidence(Rejection(HONEST, "norm_clip", "norm 3"), Rejection(CHEAT, "norm_clip", "norm 900"))
    checked = check_slash_finding(CID, data, CHEAT)
    assert (checked.kind, checked.round_id, checked.reasons) == ("evidence", 2, ("update rejected by norm_clip: norm 900",))
    with pytest.raises(GovernanceError, match=f"its evidence rejects no update of {AGGREGATOR}"):
        check_slash_finding(CID, data, AGGREGATOR)


@pytest.mark.parametrize("data", [b"not json", b'{"format":"fedchain.task/1"}', b"[]"])
def test_a_blob_that_is_no_finding_is_refused(data: bytes) -> None:
    with pytest.raises(BlobFormatError):
        check_slash_finding(CID, data, CHEAT)

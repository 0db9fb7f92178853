"""The audit of secure-aggregation rounds against the devnet and the store: the unmasked sum re-derived from the
chain's events and the store, the model, inclusion root and evidence checked bit for bit; honest rounds (with
dropouts, or closed below the threshold) audit clean, an aggregator that cheats on the sum or the included set is
caught, and a lying survivor is named while the round still verifies."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from fedchain.audit.findings import FindingKind, Party, Severity
from fedchain.audit.html import render_html
from fedchain.audit.live import verify_round
from fedchain.audit.provenance import provenance
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import BlobFormatError, ExitCode
from fedchain.protocol.evidence import Evidence, SecureEvidence, SecureFinding, secure_evidence
from fedchain.protocol.rounds import round_evidence
from fedchain.protocol.secure import RULE_SECAGG
from fedchain.types import ZERO_DIGEST, Address, Digest, RoundId
from tests.engine.secure_helpers import SecureRound, lie_about, make_secure_fed
from tests.protocol.harness import Fed


def _honest_round(fed: Fed, n: int) -> SecureRound:
    opened = fed.aggregator.transport.open_round()
    sr = SecureRound.attach(fed, opened.round_id)
    sr.advertise(range(n))
    sr.commit(range(n))
    sr.unmask(range(n))
    return sr


def test_an_honest_secure_round_audits_clean(chain_env: Any, ipfs_store: Any, tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, ipfs_store, tmp_path, 4)
    sr = _honest_round(fed, 4)
    assert fed.aggregator.finalize(sr.round_id).finalized

    report = fed.auditor().audit()

    assert report.findings == (), [f.to_json() for f in report.findings]
    assert report.exit_code == ExitCode.OK
    (summary,) = report.rounds
    assert summary.status == "finalized" and len(summary.included) == 4
    assert summary.metrics["secagg_survivors"] == 4 and summary.metrics["secagg_dropped"] == 0
    verdict = verify_round(fed.reader, fed.store, sr.round_id)  # a member's live check, without contract or chain id
    assert verdict.ok and verdict.replayed_digest == verdict.published_digest
    # `fedchain audit` reads the chain without a signing account
    from fedchain.audit.replay import Auditor

    unsigned = Auditor(chain_env.ledger(), fed.store, contract=chain_env.deployment.address,
                       chain_id=chain_env.conn.chain_id).audit()
    assert unsigned.findings == (), [f.to_json() for f in unsigned.findings]


def test_dropouts_and_a_round_closed_below_the_threshold_audit_clean(chain_env: Any, ipfs_store: Any,
                                                                    tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, ipfs_store, tmp_path, 5)
    first = SecureRound.attach(fed, fed.aggregator.transport.open_round().round_id)
    first.advertise(range(5))
    first.commit([0, 1, 2, 3])  # 4 drops after advertising
    first.pass_deadline("deadline")
    first.unmask([0, 1, 2])  # 3 drops after committing
    first.pass_deadline("unmask_deadline")
    assert fed.aggregator.finalize(first.round_id).finalized
    second = SecureRound.attach(fed, fed.aggregator.transport.open_round().round_id)
    second.advertise(range(5))
    second.commit([0, 1, 2])
    second.pass_deadline("deadline")
    second.unmask([0, 1])  # 2 revealers: below the threshold of 3
    second.pass_deadline("unmask_deadline")
    assert not fed.aggregator.finalize(second.round_id).finalized

    report = fed.auditor().audit()

    assert report.findings == (), [f.to_json() for f in report.findings]
    assert [r.status for r in report.rounds] == ["finalized", "closed"]


def test_an_aggregator_that_cheats_on_the_sum_is_caught(chain_env: Any, ipfs_store: Any, tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, ipfs_store, tmp_path, 4, dishonest="shift-model")
    sr = _honest_round(fed, 4)
    assert fed.aggregator.finalize(sr.round_id).finalized

    report = fed.auditor().audit()

    mismatch = [f for f in report.findings if f.kind is FindingKind.MODEL_MISMATCH]
    assert mismatch and all(f.responsible is Party.AGGREGATOR and f.severity is Severity.ERROR for f in mismatch)
    assert mismatch[0].responsible_address == chain_env.accounts.aggregator.address
    assert report.exit_code == ExitCode.AUDIT_FINDINGS
    verdict = verify_round(fed.reader, fed.store, sr.round_id)
    assert not verdict.ok and verdict.accused is Party.AGGREGATOR


def test_an_aggregator_that_leaves_a_survivor_out_of_the_included_set_is_caught(
        chain_env: Any, ipfs_store: Any, tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, ipfs_store, tmp_path, 4, dishonest="drop-update")
    sr = _honest_round(fed, 4)
    assert len(fed.aggregator.finalize(sr.round_id).included) == 3

    report = fed.auditor().audit()

    kinds = {f.kind for f in report.findings if f.severity is Severity.ERROR}
    assert {FindingKind.MERKLE_ROOT_MISMATCH, FindingKind.UPDATE_DROPPED} <= kinds
    assert report.exit_code == ExitCode.AUDIT_FINDINGS


def test_a_lying_survivor_is_named_while_the_round_verifies(chain_env: Any, ipfs_store: Any, tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, ipfs_store, tmp_path, 4)
    opened = fed.aggregator.transport.open_round()
    sr = SecureRound.attach(fed, opened.round_id)
    sr.advertise(range(4))
    sr.commit(range(4))
    sr.unmask(range(4), tamper={0: lie_about(sr.index(1))})  # participant 0 reveals a wrong share of 1's seed
    liar = chain_env.accounts.participants[0].address

    out = fed.aggregator.finalize(opened.round_id)

    assert out.finalized and len(out.included) == 4  # the round is unmasked without the lie
    assert [(r.participant.lower(), r.rule) for r in out.rejected] == [(liar.lower(), RULE_SECAGG)]
    report = fed.auditor().audit()
    named = [f for f in report.findings if f.kind is FindingKind.SECAGG_INCONSISTENT_SHARE]
    assert [(f.participant, f.responsible, f.responsible_address, f.severity) for f in named] == [
        (liar, Party.PARTICIPANT, liar, Severity.HANDLED)]
    assert chain_env.accounts.participants[1].address in named[0].detail
    assert [f.kind for f in report.findings] == [FindingKind.SECAGG_INCONSISTENT_SHARE], [
        f.to_json() for f in report.findings]
    assert report.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT
    assert verify_round(fed.reader, fed.store, opened.round_id).ok  # the model verifies


def test_an_evidence_whose_secure_section_is_not_the_unmasking_is_caught(chain_env: Any, ipfs_store: Any,
                                                                          tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, ipfs_store, tmp_path, 4)
    sr = _honest_round(fed, 4)
    transport = fed.aggregator.transport
    rid = sr.round_id
    collected = transport.collect(transport.attach(rid), 60.0)
    assert collected.secure is not None and collected.secure.unmasked is not None
    agg = collected.secure.aggregate
    assert agg.model_blob is not None and agg.model_digest is not None
    commitments = fed.reader.commitments(rid)
    evidence = round_evidence(rid, fed.reader.round(rid).base_model_digest, agg, commitments, fed.doc.strategy_digest())
    honest = secure_evidence(sr.ctx, collected.secure.unmasked, fed.reader.advertisements(rid), commitments,
                             fed.reader.unmasking_shares(rid))
    forged = dataclasses.replace(evidence, secagg=dataclasses.replace(honest, revealers=honest.revealers[:-1]))
    blob = forged.to_bytes()
    transport.ledger.finalize_round(rid, agg.model_digest, fed.store.put(agg.model_blob), evidence.merkle_root,
                                    fed.doc.strategy_digest(), sha256_digest(blob), fed.store.put(blob),
                                    len(agg.included))

    report = fed.auditor().audit()

    assert [(f.kind, f.responsible) for f in report.findings] == [(FindingKind.EVIDENCE_MISMATCH, Party.AGGREGATOR)]
    assert "secagg revealers" in report.findings[0].detail


def test_a_malformed_secure_section_of_the_evidence_is_named() -> None:
    section = SecureEvidence(Digest(b"\x01" * 32), 2, 2, Digest(b"\x02" * 32), (Address("0x" + "11" * 20),), (), (),
                             (SecureFinding("inconsistent_share", Address("0x" + "11" * 20), None, "off"),), (), (), ())
    evidence = Evidence(RoundId(1), ZERO_DIGEST, ZERO_DIGEST, ZERO_DIGEST, ZERO_DIGEST, (), (), section)
    assert Evidence.from_bytes(evidence.to_bytes()) == evidence
    assert "secagg" not in dataclasses.replace(evidence, secagg=None).to_json()  # a plain round's evidence is as before
    data = evidence.to_json()
    del data["secagg"]["sum_digest"]
    with pytest.raises(BlobFormatError, match="secagg lacks sum_digest"):
        Evidence.from_json(data)
    data = evidence.to_json()
    data["secagg"]["findings"][0]["offender"] = 7
    with pytest.raises(BlobFormatError, match=r"secagg findings\[0\]: offender"):
        Evidence.from_json(data)


def test_participant_agents_train_and_a_secure_run_of_two_rounds_audits_clean(chain_env: Any, ipfs_store: Any,
                                                                                tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, ipfs_store, tmp_path, 4)
    for p in fed.participants:
        p.record_window_s = 1.0
    reports = []
    for _ in range(2):
        rid = fed.aggregator.transport.open_round().round_id
        for _ in range(4):  # each agent takes the steps due now; everyone acts, so every phase ends early
            if not any([agent.secure_step(rid) for agent in fed.participants]):
                break
        reports.append(fed.aggregator.finalize(rid))

    assert all(r.finalized and len(r.included) == 4 and r.rejected == () for r in reports)
    report = fed.auditor().audit()
    assert report.findings == (), [f.to_json() for f in report.findings]
    assert report.exit_code == ExitCode.OK and [r.status for r in report.rounds] == ["finalized", "finalized"]
    assert "<td>4 / 0 / 4</td>" in render_html(report)  # how each round was unmasked; no masked input decoded
    model = fed.reader.round(RoundId(2)).model_cid
    assert model is not None
    steps = provenance(fed.reader, fed.store, model)
    assert [s.round for s in steps] == [2, 1] and all(len(s.updates) == 4 for s in steps)


def test_a_survivors_garbage_unmasking_blob_is_named_and_the_round_goes_on(chain_env: Any, ipfs_store: Any,
                                                                           tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, ipfs_store, tmp_path, 4)
    sr = SecureRound.attach(fed, fed.aggregator.transport.open_round().round_id)
    sr.advertise(range(4))
    sr.commit(range(4))
    sr.unmask(range(3))
    junk = b"\x03 not unmasking shares"
    fed.participants[3].ledger.post_unmasking_shares(sr.round_id, sha256_digest(junk), fed.store.put(junk))
    poster = chain_env.accounts.participants[3].address

    out = fed.aggregator.finalize(sr.round_id)

    assert out.finalized and len(out.included) == 4 and out.metrics["secagg_revealers"] == 3
    report = fed.auditor().audit()
    assert [(f.kind, f.participant, f.severity) for f in report.findings] == [
        (FindingKind.SECAGG_RECORD, poster, Severity.WARNING)], [f.to_json() for f in report.findings]
    assert "unmasking shares is not used: malformed" in report.findings[0].detail
    assert report.exit_code == ExitCode.OK and verify_round(fed.reader, fed.store, sr.round_id).ok


def test_an_aggregator_that_closes_a_round_that_unmasks_is_caught(chain_env: Any, ipfs_store: Any,
                                                                  tmp_path: Path) -> None:
    fed = make_secure_fed(chain_env, ipfs_store, tmp_path, 4)
    sr = _honest_round(fed, 4)
    fed.aggregator.transport.close(sr.round_id, "the round cannot be unmasked")

    report = fed.auditor().audit()

    assert [(f.kind, f.responsible, f.severity) for f in report.findings] == [
        (FindingKind.CLOSE_NOT_JUSTIFIED, Party.AGGREGATOR, Severity.ERROR)]

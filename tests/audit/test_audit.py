"""Each kind of tampering is caught by the audit with the right finding kind."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fedchain import reverts
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import ExitCode
from fedchain.fl.records import Rejection
from fedchain.protocol.blobs import decode_global, decode_update, encode_global, encode_update, metadata_digest
from fedchain.protocol.evidence import Evidence, IncludedUpdate
from fedchain.protocol.rounds import aggregate, fetch_committed, inclusion_root, leaf_of
from fedchain.storage.cid import compute_cid
from fedchain.types import RoundId
from tests.protocol.harness import Fed, make_fed


def _kinds(fed: Fed) -> set[str]:
    return fed.auditor().audit().kinds()


def test_aggregator_dropping_an_update_is_caught(chain_env, ipfs_store, task_files, tmp_path: Path) -> None:
    fed = make_fed(chain_env, ipfs_store, task_files, tmp_path, dishonest="drop-update")
    out = fed.run_round()
    assert out.finalized and len(out.included) == 2

    report = fed.auditor().audit()

    assert {"update_dropped", "merkle_root_mismatch", "model_mismatch"} <= report.kinds()
    dropped = [f for f in report.findings if f.kind.value == "update_dropped"]
    assert [f.participant for f in dropped] == [c for c in (p.address for p in fed.participants) if c not in out.included]
    aggregator = fed.env.accounts.aggregator.address
    assert {(f.responsible.value, f.responsible_address, f.severity.value) for f in report.findings} == {
        ("aggregator", aggregator, "error")
    }
    assert report.exit_code == ExitCode.AUDIT_FINDINGS


def test_aggregator_publishing_a_shifted_model_is_caught(chain_env, ipfs_store, task_files, tmp_path: Path) -> None:
    fed = make_fed(chain_env, ipfs_store, task_files, tmp_path, dishonest="shift-model")
    fed.run_round()

    report = fed.auditor().audit()

    assert "model_mismatch" in report.kinds()
    assert "merkle_root_mismatch" not in report.kinds() and "update_dropped" not in report.kinds()
    shifted = next(f for f in report.findings if f.kind.value == "model_mismatch")
    assert (shifted.responsible.value, shifted.responsible_address) == ("aggregator", fed.env.accounts.aggregator.address)
    assert report.verdict.value == "findings" and report.exit_code == ExitCode.AUDIT_FINDINGS


def test_next_round_on_a_model_other_than_the_finalised_one_is_refused_by_the_contract(fed: Fed) -> None:

    from fedchain.errors import ContractRevertError

    fed.run_round()
    with pytest.raises(ContractRevertError) as info:
        fed.aggregator.ledger.open_round(sha256_digest(b"another model"), fed.outcomes[0].model_cid, 600, 2)
    assert isinstance(info.value, reverts.FederationBaseModelMismatch)


def _commit_raw(fed: Fed, index: int, rid: RoundId, *, digest: bytes, cid: str) -> None:
    p = fed.participants[index]
    p.ledger.commit_update(rid, digest, cid, fed.clients[index].num_samples, b"\x07" * 32)


def _honest_blob(fed: Fed, index: int, rid: RoundId) -> bytes:
    """Train as participant ``index`` would, but return the blob instead of committing it."""
    from fedchain.fl.schema import load_client_data
    from fedchain.protocol.blobs import decode_global
    from fedchain.protocol.training import train_participant

    rnd = fed.reader.round(rid)
    base = decode_global(fed.store.get(rnd.base_model_cid))
    x, y = load_client_data(fed.clients[index].path)
    update, _, _ = train_participant(fed.doc, round_id=rid, participant=fed.participants[index].address, base=base,
                                     base_model_digest=rnd.base_model_digest, x=x, y=y, seed=1, client_state=None)
    return encode_update(update)


def test_committed_digest_that_does_not_match_the_blob_is_caught(fed: Fed) -> None:
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    blob = _honest_blob(fed, 2, rid)
    _commit_raw(fed, 2, rid, digest=sha256_digest(blob + b"changed"), cid=fed.store.put(blob))
    out = fed.aggregator.finalize(rid)
    assert [(r.participant, r.rule) for r in out.rejected] == [(fed.participants[2].address, "blob_integrity")]

    report = fed.auditor().audit()

    assert report.kinds() == {"blob_digest_mismatch"}
    junk = report.findings[0]
    assert junk.participant == junk.responsible_address == fed.participants[2].address
    assert (junk.responsible.value, junk.severity.value) == ("participant", "handled")
    assert report.ok and report.verdict.value == "participant_misconduct"
    assert report.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT == 52


def test_missing_blob_is_caught(chain_env, local_store, task_files, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("fedchain.protocol.rounds.FETCH_RETRY_WINDOW_S", 0.3)
    fed = make_fed(chain_env, local_store, task_files, tmp_path)
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    blob = _honest_blob(fed, 2, rid)  # never stored
    _commit_raw(fed, 2, rid, digest=sha256_digest(blob), cid=compute_cid(blob))
    out = fed.aggregator.finalize(rid)
    assert [(r.participant, r.rule) for r in out.rejected] == [(fed.participants[2].address, "blob_unavailable")]

    report = fed.auditor().audit()

    assert report.kinds() == {"blob_missing"}  # the participant never uploaded it: handled
    assert [(f.responsible.value, f.responsible_address, f.severity.value) for f in report.findings] == [
        ("participant", fed.participants[2].address, "handled")
    ]
    assert report.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT


def test_blob_whose_bytes_were_changed_in_the_store_is_caught(chain_env, local_store, task_files, tmp_path: Path) -> None:
    fed = make_fed(chain_env, local_store, task_files, tmp_path)
    fed.run_round()
    victim = fed.reader.commitments(RoundId(1))[0]
    path = local_store.path_of(victim.cid)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))

    report = fed.auditor().audit()

    assert report.kinds() == {"blob_cid_mismatch", "model_unverifiable"}  # nothing blames the aggregator
    assert {f.participant for f in report.findings if f.kind.value == "blob_cid_mismatch"} == {victim.participant}
    assert {(f.responsible.value, f.severity.value) for f in report.findings} == {("infrastructure", "error")}
    assert report.exit_code == ExitCode.AUDIT_FINDINGS


def test_rejection_the_recorded_rule_does_not_reproduce_is_caught(fed: Fed) -> None:
    """An aggregator that leaves out a valid update and claims a rule rejected it."""
    rid = fed.open_round()
    for p in fed.participants:
        p.submit(rid)
    commitments = fed.reader.commitments(rid)
    victim = fed.participants[0].address
    outcomes = [o for o in commitments if o.participant != victim]
    from fedchain.protocol.blobs import decode_global
    from fedchain.protocol.rounds import aggregate, fetch_committed

    rnd = fed.reader.round(rid)
    base = decode_global(fed.store.get(rnd.base_model_cid))
    agg = aggregate(fed.doc.strategy_config(), base, rid, rnd.base_model_digest,
                    [fetch_committed(fed.store, c) for c in outcomes], 2)
    assert agg.model_blob is not None and agg.model_digest is not None
    root = inclusion_root(commitments, agg.included)
    from fedchain.protocol.evidence import IncludedUpdate
    from fedchain.protocol.rounds import leaf_of

    evidence = Evidence(rid, rnd.base_model_digest, agg.model_digest, fed.doc.strategy_digest(), root,
                        tuple(IncludedUpdate(c.participant, c.update_digest, c.cid, c.num_samples, leaf_of(c)) for c in outcomes),
                        (Rejection(victim, "norm_clip", "update norm 9.1 exceeds 1"),))
    ev = evidence.to_bytes()
    fed.aggregator.ledger.finalize_round(rid, agg.model_digest, fed.store.put(agg.model_blob), root,
                                         fed.doc.strategy_digest(), sha256_digest(ev), fed.store.put(ev), 2)

    report = fed.auditor().audit()

    assert "rejection_not_reproduced" in report.kinds()
    assert [f.participant for f in report.findings if f.kind.value == "rejection_not_reproduced"] == [victim]


def test_update_metadata_digest_is_stable(fed: Fed) -> None:
    rid = fed.open_round()
    res = fed.participants[0].submit(rid)
    c = fed.reader.commitments(rid)[0]
    assert metadata_digest(decode_update(fed.store.get(res.cid))) == c.metadata_digest


def _finalize_crafted(fed: Fed, rid: RoundId, *, model_blob: bytes | None = None, aggregation_digest: bytes | None = None,
                      extra_rejections: tuple[Rejection, ...] = (),
                      tamper: Callable[[Evidence], Evidence] | None = None) -> None:
    """Finalise ``rid`` as an aggregator would, except for the given model blob, evidence
    aggregation digest or extra evidence rejections, and with its evidence passed through ``tamper``."""
    rnd = fed.reader.round(rid)
    commitments = fed.reader.commitments(rid)
    base = decode_global(fed.store.get(rnd.base_model_cid))
    agg = aggregate(fed.doc.strategy_config(), base, rid, rnd.base_model_digest,
                    [fetch_committed(fed.store, c) for c in commitments], 2)
    assert agg.model_blob is not None
    blob = model_blob if model_blob is not None else agg.model_blob
    root = inclusion_root(commitments, agg.included)
    by_addr = {c.participant: c for c in commitments}
    evidence = Evidence(rid, rnd.base_model_digest, sha256_digest(blob), aggregation_digest or fed.doc.strategy_digest(),
                        root, tuple(IncludedUpdate(c.participant, c.update_digest, c.cid, c.num_samples, leaf_of(c))
                                    for c in (by_addr[a] for a in agg.included)),
                        tuple(agg.rejections) + extra_rejections)
    ev = (tamper(evidence) if tamper is not None else evidence).to_bytes()
    fed.aggregator.ledger.finalize_round(rid, sha256_digest(blob), fed.store.put(blob), root, fed.doc.strategy_digest(),
                                         sha256_digest(ev), fed.store.put(ev), len(agg.included))


def _submit_all(fed: Fed) -> RoundId:
    rid = fed.open_round()
    for p in fed.participants:
        p.submit(rid)
    return rid


def test_malformed_global_model_is_reported_and_the_next_round_replay_fails_without_stopping_the_audit(fed: Fed) -> None:
    rid = _submit_all(fed)
    honest = decode_global(fed.store.get(fed.reader.round(rid).base_model_cid))
    bad = encode_global(round_id=rid, base_model_digest=fed.reader.round(rid).base_model_digest,
                        weights=dict(honest.weights), server_state={"bogus": np.zeros(3, dtype=np.float32)}, num_samples=1)
    _finalize_crafted(fed, rid, model_blob=bad)
    second = _submit_all(fed)  # participants train on the malformed model; FedAvg ignores the state
    fed.aggregator.ledger.close_round(second, "the base model is malformed")

    report = fed.auditor().audit()

    assert report.rounds_checked == (1, 2)
    by_round = {(f.round, f.kind.value) for f in report.findings}
    assert (1, "model_malformed") in by_round
    assert (2, "replay_failed") in by_round
    malformed = next(f for f in report.findings if f.kind.value == "model_malformed")
    assert "server state has unexpected bogus" in malformed.detail
    aggregator = fed.env.accounts.aggregator.address
    assert {(f.responsible.value, f.responsible_address) for f in report.findings
            if f.kind.value in ("model_malformed", "replay_failed")} == {("aggregator", aggregator)}


def test_round_missing_from_the_event_log_is_reported(fed: Fed) -> None:
    fed.run_round()
    second = fed.open_round()
    from fedchain.audit.replay import Auditor

    opened_at = fed.reader.round(second).opened_block
    auditor = Auditor(fed.reader, fed.store, from_block=opened_at)

    report = auditor.audit()

    assert report.rounds_checked == (2,)
    assert [(f.round, f.kind.value, f.responsible.value) for f in report.findings if f.kind.value == "round_missing"] == [
        (1, "round_missing", "infrastructure")
    ]


class _HidingLedger:
    """A ledger whose event log leaves out one participant's commitments (a node that hides logs)."""

    def __init__(self, inner, hidden: str) -> None:
        self._inner = inner
        self._hidden = hidden.lower()

    def history(self, from_block: int = 0, to_block: int | None = None):
        from fedchain.ports import UpdateCommitment

        return [e for e in self._inner.history(from_block, to_block)
                if not (isinstance(e, UpdateCommitment) and e.participant.lower() == self._hidden)]

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def test_commitment_hidden_from_the_event_log_disagrees_with_the_contract_storage(fed: Fed) -> None:
    fed.run_round()
    from fedchain.audit.replay import Auditor

    hidden = fed.participants[1].address
    report = Auditor(_HidingLedger(fed.reader, hidden), fed.store).audit()

    inconsistent = [f.detail for f in report.findings if f.kind.value == "ledger_inconsistent"]
    assert any("commitCount is 3, the events say 2" in d for d in inconsistent), inconsistent


def test_clean_history_agrees_with_the_contract_storage(fed: Fed) -> None:
    fed.run_round()
    fed.run_round()

    report = fed.auditor().audit()

    assert report.ok and report.findings == ()


def test_committed_metadata_digest_that_does_not_match_the_blob_is_rejected_and_reproduced(fed: Fed) -> None:
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    blob = _honest_blob(fed, 2, rid)
    _commit_raw(fed, 2, rid, digest=sha256_digest(blob), cid=fed.store.put(blob))  # metadata digest 0x07..07

    out = fed.aggregator.finalize(rid)

    assert [(r.participant, r.rule) for r in out.rejected] == [(fed.participants[2].address, "metadata_mismatch")]
    report = fed.auditor().audit()
    assert [(f.kind.value, f.responsible.value, f.responsible_address, f.severity.value) for f in report.findings] == [
        ("update_rejected", "participant", fed.participants[2].address, "handled")
    ]
    assert "metadata_mismatch" in report.findings[0].detail
    assert report.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT


def test_rejection_as_unavailable_of_a_blob_available_now_is_a_warning(chain_env, local_store, task_files,
                                                                        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("fedchain.protocol.rounds.FETCH_RETRY_WINDOW_S", 0.3)
    fed = make_fed(chain_env, local_store, task_files, tmp_path)
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    blob = _honest_blob(fed, 2, rid)
    update = decode_update(blob)
    fed.participants[2].ledger.commit_update(rid, sha256_digest(blob), compute_cid(blob), update.num_samples,
                                             metadata_digest(update))
    out = fed.aggregator.finalize(rid)
    assert [(r.participant, r.rule) for r in out.rejected] == [(fed.participants[2].address, "blob_unavailable")]
    local_store.put(blob)  # the blob turns up after the round

    report = fed.auditor().audit()

    assert report.kinds() == {"rejected_unavailable_now_available"}
    assert report.ok and report.exit_code == ExitCode.OK
    assert report.findings[0].participant == report.findings[0].responsible_address == fed.participants[2].address
    assert report.findings[0].severity.value == "warning"


def test_evidence_rejecting_a_participant_that_never_committed_is_caught(fed: Fed) -> None:
    rid = _submit_all(fed)
    outsider = fed.env.accounts.outsider.address
    _finalize_crafted(fed, rid, extra_rejections=(Rejection(outsider, "norm_clip", "made up"),))

    report = fed.auditor().audit()

    assert [(f.kind.value, f.participant) for f in report.findings if f.kind.value == "unknown_rejection"] == [
        ("unknown_rejection", outsider)
    ]


def test_evidence_aggregation_digest_other_than_the_finalised_one_is_caught(fed: Fed) -> None:
    rid = _submit_all(fed)
    _finalize_crafted(fed, rid, aggregation_digest=sha256_digest(b"another strategy"))

    report = fed.auditor().audit()

    assert report.kinds() == {"evidence_mismatch"}
    assert "aggregation digest" in report.findings[0].detail


def test_malformed_blob_the_aggregator_rejected_is_handled_participant_misconduct(fed: Fed) -> None:
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    junk = b"not a fedchain blob at all"
    _commit_raw(fed, 2, rid, digest=sha256_digest(junk), cid=fed.store.put(junk))
    out = fed.aggregator.finalize(rid)
    assert out.finalized and [(r.participant, r.rule) for r in out.rejected] == [(fed.participants[2].address, "blob_format")]

    report = fed.auditor().audit()

    assert [(f.kind.value, f.responsible.value, f.responsible_address, f.severity.value) for f in report.findings] == [
        ("blob_format", "participant", fed.participants[2].address, "handled")
    ]
    assert report.ok and report.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT
    assert report.to_json()["verdict"] == "participant_misconduct"
    assert report.to_json()["responsible"] == {f"participant {fed.participants[2].address}": 1}


def test_included_blob_the_store_lost_is_blamed_on_the_infrastructure(chain_env, local_store, task_files,
                                                                      tmp_path: Path) -> None:
    fed = make_fed(chain_env, local_store, task_files, tmp_path)
    fed.run_round()
    victim = fed.reader.commitments(RoundId(1))[1]
    local_store.path_of(victim.cid).unlink()

    report = fed.auditor().audit()

    assert report.kinds() == {"blob_missing", "model_unverifiable"}
    missing = next(f for f in report.findings if f.kind.value == "blob_missing")
    assert missing.participant == victim.participant and missing.responsible_address is None
    assert {(f.responsible.value, f.severity.value) for f in report.findings} == {("infrastructure", "error")}
    assert report.exit_code == ExitCode.AUDIT_FINDINGS


def _lie_about_the_first_included(**changes: object) -> Callable[[Evidence], Evidence]:
    def tamper(evidence: Evidence) -> Evidence:
        first, *rest = evidence.included
        return dataclasses.replace(evidence, included=(dataclasses.replace(first, **changes), *rest))

    return tamper


def test_evidence_lying_about_an_included_sample_count_is_caught(fed: Fed) -> None:
    rid = _submit_all(fed)
    first = sorted(fed.reader.commitments(rid), key=lambda c: c.participant.lower())[0]
    _finalize_crafted(fed, rid, tamper=_lie_about_the_first_included(num_samples=10**12))

    report = fed.auditor().audit()

    assert [(f.kind.value, f.participant, f.responsible.value) for f in report.findings] == [
        ("evidence_mismatch", first.participant, "aggregator")
    ]
    assert f"num_samples as 1000000000000, the commitment's is {first.num_samples}" in report.findings[0].detail
    assert report.findings[0].responsible_address == fed.env.accounts.aggregator.address
    assert report.rounds[0].num_samples == sum(c.num_samples for c in fed.reader.commitments(rid))
    from fedchain.audit.provenance import provenance
    from fedchain.types import digest_hex

    (step,) = provenance(fed.reader, fed.store, digest_hex(fed.reader.round(rid).model_digest))
    assert {u["participant"]: u["num_samples"] for u in step.updates} == {
        c.participant: c.num_samples for c in fed.reader.commitments(rid)
    }


def test_evidence_lying_about_an_included_cid_is_caught(fed: Fed) -> None:
    rid = _submit_all(fed)
    first = sorted(fed.reader.commitments(rid), key=lambda c: c.participant.lower())[0]
    other = fed.store.put(b"some other blob")
    _finalize_crafted(fed, rid, tamper=_lie_about_the_first_included(cid=other))

    report = fed.auditor().audit()

    assert [(f.kind.value, f.participant, f.responsible.value) for f in report.findings] == [
        ("evidence_mismatch", first.participant, "aggregator")
    ]
    assert f"CID as {other}, the commitment's is {first.cid}" in report.findings[0].detail


def test_evidence_lying_about_a_rejection_reason_is_caught(fed: Fed) -> None:
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    blob = _honest_blob(fed, 2, rid)
    _commit_raw(fed, 2, rid, digest=sha256_digest(blob), cid=fed.store.put(blob))  # metadata digest 0x07..07

    def lie(evidence: Evidence) -> Evidence:
        (rejection,) = evidence.rejected
        assert rejection.rule == "metadata_mismatch"
        return dataclasses.replace(evidence, rejected=(dataclasses.replace(rejection, reason="it sent malware"),))

    _finalize_crafted(fed, rid, tamper=lie)

    report = fed.auditor().audit()

    by_kind = {f.kind.value: f for f in report.findings}
    assert set(by_kind) == {"rejection_reason_mismatch", "update_rejected"}
    lied = by_kind["rejection_reason_mismatch"]
    assert (lied.participant, lied.responsible.value) == (fed.participants[2].address, "aggregator")
    assert "'it sent malware'" in lied.detail and "blob metadata digest" in lied.detail
    assert by_kind["update_rejected"].severity.value == "handled"  # the participant did break the rule
    assert report.exit_code == ExitCode.AUDIT_FINDINGS


def test_every_task_version_is_checked_against_its_document_even_without_a_round(fed: Fed) -> None:
    fed.run_round()
    doc = fed.doc
    fed.admin.configure_task(doc.model_spec_digest(), sha256_digest(b"another strategy"), doc.data_schema_digest(),
                             fed.task_cid, 86_400)

    report = fed.auditor().audit()

    assert [(f.round, f.kind.value, f.responsible.value, f.responsible_address) for f in report.findings] == [
        (0, "task_config_mismatch", "governance", fed.env.accounts.admin.address)
    ]
    assert "task v2" in report.findings[0].detail and "strategy digest" in report.findings[0].detail
    assert fed.auditor().audit(round_filter=1).findings == ()  # round 1 ran under version 1, which matches


class _RewritingLedger(_HidingLedger):
    """A ledger whose event log says one participant's admission approved only one sample."""

    def history(self, from_block: int = 0, to_block: int | None = None):
        from fedchain.ports import ParticipantAdmitted

        return [dataclasses.replace(e, approved_samples=1)
                if isinstance(e, ParticipantAdmitted) and e.participant.lower() == self._hidden else e
                for e in self._inner.history(from_block, to_block)]


def test_commitment_claiming_more_samples_than_approved_is_caught(fed: Fed) -> None:
    fed.run_round()
    from fedchain.audit.replay import Auditor

    honest = fed.auditor().audit()
    assert {p.address: p.approved_samples for p in honest.participants} == {
        p.address: c.num_samples for p, c in zip(fed.participants, fed.clients, strict=True)
    }
    liar = fed.participants[0].address
    report = Auditor(_RewritingLedger(fed.reader, liar), fed.store).audit()

    over = [f for f in report.findings if f.kind.value == "samples_over_approved"]
    assert [(f.participant, f.responsible.value) for f in over] == [(liar, "infrastructure")]
    assert f"committed {fed.clients[0].num_samples} samples" in over[0].detail and "approved 1" in over[0].detail


def test_committed_cid_that_is_not_a_cid_is_handled_misconduct_of_that_participant(fed: Fed) -> None:
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    _commit_raw(fed, 2, rid, digest=b"\x01" * 32, cid="this-is-not-a-cid")
    assert fed.aggregator.finalize(rid).finalized

    report = fed.auditor().audit()

    assert [(f.kind.value, f.responsible.value, f.responsible_address, f.severity.value) for f in report.findings] == [
        ("invalid_cid", "participant", fed.participants[2].address, "handled")
    ]
    assert "this-is-not-a-cid" in report.findings[0].detail
    assert report.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT


def test_copied_update_rejected_as_a_duplicate_is_handled_misconduct_of_the_copier(fed: Fed) -> None:
    victim, copier, honest = fed.participants
    rid = fed.open_round()
    victim.submit(rid)
    (seen,) = fed.reader.commitments(rid)
    stolen = decode_update(fed.store.get(seen.cid))
    mine = dataclasses.replace(stolen, participant=copier.address, num_samples=fed.clients[1].num_samples)
    blob = encode_update(mine)
    copier.ledger.commit_update(rid, sha256_digest(blob), fed.store.put(blob), mine.num_samples, metadata_digest(mine))
    honest.submit(rid)
    assert fed.aggregator.finalize(rid).finalized

    report = fed.auditor().audit()

    assert [(f.kind.value, f.responsible_address, f.severity.value) for f in report.findings] == [
        ("update_rejected", copier.address, "handled")
    ]
    assert "duplicate_update" in report.findings[0].detail and victim.address in report.findings[0].detail
    assert report.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT


def test_update_that_makes_the_aggregation_fail_is_blamed_on_its_committer(fed: Fed) -> None:
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    honest = decode_update(_honest_blob(fed, 2, rid))
    # a scalar extra the decoder may accept but no canonical JSON can hold
    bad = encode_update(dataclasses.replace(honest, extras={"loss": float("inf")}))
    _commit_raw(fed, 2, rid, digest=sha256_digest(bad), cid=fed.store.put(bad))
    fed.aggregator.ledger.close_round(rid, "an update breaks the screening")

    report = fed.auditor().audit()

    # the bad update is the participant's (and left out); the two others still make a model
    assert {(f.kind.value, f.responsible.value, f.responsible_address, f.severity.value) for f in report.findings} == {
        ("blob_format", "participant", fed.participants[2].address, "handled"),
        ("close_not_justified", "aggregator", fed.env.accounts.aggregator.address, "error"),
    }


def test_blob_corrupt_in_the_store_before_the_aggregator_fetched_it_is_handled(chain_env, local_store, task_files,
                                                                               tmp_path: Path) -> None:
    fed = make_fed(chain_env, local_store, task_files, tmp_path)
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    blob = _honest_blob(fed, 2, rid)
    update = decode_update(blob)
    cid = local_store.put(blob)
    fed.participants[2].ledger.commit_update(rid, sha256_digest(blob), cid, update.num_samples, metadata_digest(update))
    path = local_store.path_of(cid)
    path.chmod(0o644)
    path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 0xFF]))
    out = fed.aggregator.finalize(rid)
    assert [(r.participant, r.rule) for r in out.rejected] == [(fed.participants[2].address, "blob_integrity")]

    report = fed.auditor().audit()

    assert [(f.kind.value, f.responsible_address, f.severity.value) for f in report.findings] == [
        ("blob_cid_mismatch", fed.participants[2].address, "handled")
    ]
    assert report.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT


def test_commit_reveal_round_with_a_seal_never_revealed(fed: Fed, advance_time) -> None:
    import os

    from fedchain.ports import update_seal

    digest, base_cid = fed.aggregator.transport.base_model(fed.doc)
    opened = fed.aggregator.ledger.open_round(digest, base_cid, 600, 2, 600)
    rid = RoundId(int(opened.round_id or 1))
    reveals = []
    for i, p in enumerate(fed.participants):
        blob = _honest_blob(fed, i, rid)
        update = decode_update(blob)
        cid, salt = fed.store.put(blob), os.urandom(32)
        args = (sha256_digest(blob), cid, update.num_samples, metadata_digest(update))
        p.ledger.seal_update(rid, update_seal(int(rid), p.address, *args, salt))
        reveals.append((p, args, salt))
    for p, args, salt in reveals[:2]:  # the third participant withholds its update
        p.ledger.reveal_update(rid, *args, salt)
    advance_time(1300)  # past the reveal deadline (commit deadline + reveal duration)
    assert fed.reader.reveal_phase_over(rid)
    assert fed.aggregator.finalize(rid, commit_timeout_s=30).finalized

    report = fed.auditor().audit()

    withheld = fed.participants[2].address
    assert [(f.kind.value, f.responsible.value, f.responsible_address, f.severity.value) for f in report.findings] == [
        ("seal_not_revealed", "participant", withheld, "handled")
    ]
    assert report.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT

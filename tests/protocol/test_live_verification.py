"""Live verification by the members on the real devnet and IPFS node: each included participant
replays a finalised round with the audit's code and attests it on chain before training on its
model; an attestation policy holds the next round until they have; a dishonest aggregator gets
negative attestations citing a findings blob; a dispute falls back to the round's base model and
the next round opens from it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from fedchain import reverts
from fedchain.audit.findings import AuditFindings, FindingKind, Party
from fedchain.audit.live import LiveVerifier, verify_round
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import AggregationError
from fedchain.ports import RoundAttested, RoundStatus
from fedchain.protocol.blobs import initial_global
from fedchain.protocol.participant import TxJournal
from fedchain.types import RoundId
from tests.protocol.harness import Fed, make_fed


def _verifying(fed: Fed) -> list[LiveVerifier]:
    """Give every participant agent of ``fed`` the live verifier the CLI gives it."""
    verifiers = []
    for p in fed.participants:
        live = LiveVerifier(p)
        p.verifier = live
        verifiers.append(live)
    return verifiers


def _attestations(fed: Fed, rid: int) -> list[RoundAttested]:
    return [ev for ev in fed.reader.history() if isinstance(ev, RoundAttested) and int(ev.round_id) == rid]


def test_each_included_participant_attests_a_finalised_round_once(fed: Fed) -> None:
    verifiers = _verifying(fed)
    out = fed.run_round()
    assert out.finalized and len(out.included) == 3

    for p in fed.participants:
        p.check_finalised_rounds()
    for p in fed.participants:
        p.check_finalised_rounds()  # journaled: a second look attests nothing more

    assert fed.reader.attestation_counts(RoundId(1)) == (3, 0)
    assert {int(fed.reader.attestation_of(RoundId(1), p.address)) for p in fed.participants} == {1}
    events = _attestations(fed, 1)
    assert sorted(ev.participant for ev in events) == sorted(p.address for p in fed.participants)
    assert all(ev.ok and bytes(ev.model_digest) == bytes(out.model_digest or b"") for ev in events)
    assert [len(v.verifications) for v in verifiers] == [1, 1, 1]
    assert all(v.verifications[0].ok and v.verifications[0].gas_used > 0 for v in verifiers)
    assert ["verified"] == [e.event for e in TxJournal(fed.participants[0].journal.path).entries()
                            if e.event in ("verified", "contested", "excluded")]


def test_restarted_agent_does_not_attest_again(fed: Fed, tmp_path: Path) -> None:
    from fedchain.protocol.participant import ParticipantAgent

    _verifying(fed)
    fed.run_round()
    first = fed.participants[0]
    first.check_finalised_rounds()

    again = ParticipantAgent(first.ledger, fed.store, first.data_path, first.state_dir)
    calls: list[int] = []
    again.verifier = lambda rnd: calls.append(int(rnd.round_id))
    again.check_finalised_rounds()

    assert calls == []  # the journal says round 1 was verified
    assert fed.reader.attestation_counts(RoundId(1)) == (1, 0)


def test_attestation_quorum_holds_the_next_round_until_the_members_attest(fed: Fed, caplog) -> None:
    _verifying(fed)
    fed.admin.set_verification_policy(50)  # 2 of the 3 included
    fed.run_round()
    transport = fed.aggregator.transport
    assert fed.reader.attestation_quorum(RoundId(1)) == 2

    transport.attestation_timeout_s = 0.5
    with pytest.raises(AggregationError, match="0 of the 2 attestations"):
        transport.open_round()
    with pytest.raises(reverts.FederationAttestationQuorumNotMet) as refused:
        fed.aggregator.ledger.open_round(fed.outcomes[0].model_digest, fed.outcomes[0].model_cid, 600, 2)
    assert (refused.value.round_id, refused.value.attestations, refused.value.required) == (1, 0, 2)

    waiting = threading.Event()

    class _Waiting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "attestations in" in record.getMessage():
                waiting.set()

    handler = _Waiting()
    logging.getLogger("fedchain.engine.ledger").addHandler(handler)
    transport.attestation_timeout_s = 120.0
    opened: list[Any] = []
    failed: list[BaseException] = []

    def open_next() -> None:
        try:
            opened.append(transport.open_round())
        except BaseException as err:  # reported by the test's thread
            failed.append(err)

    caplog.set_level(logging.INFO, logger="fedchain.engine.ledger")
    thread = threading.Thread(target=open_next)
    try:
        thread.start()
        assert waiting.wait(60), "the engine never said it waits for attestations"
        assert opened == [] and fed.reader.latest_round_id() == 1
        fed.participants[0].check_finalised_rounds()
        fed.participants[1].check_finalised_rounds()
        thread.join(120)
    finally:
        logging.getLogger("fedchain.engine.ledger").removeHandler(handler)
    assert not failed, failed
    assert [int(o.round_id) for o in opened] == [2]
    assert "round 1: 0 of 2 attestations in" in caplog.text
    assert fed.reader.round(RoundId(2)).base_model_digest == fed.outcomes[0].model_digest


def test_dishonest_aggregator_gets_negative_attestations_citing_a_findings_blob(chain_env, ipfs_store, task_files,
                                                                                tmp_path: Path) -> None:
    fed = make_fed(chain_env, ipfs_store, task_files, tmp_path, dishonest="shift-model")
    _verifying(fed)
    fed.run_round()

    for p in fed.participants:
        p.check_finalised_rounds()

    assert fed.reader.attestation_counts(RoundId(1)) == (0, 3)
    aggregator = fed.env.accounts.aggregator.address
    for ev in _attestations(fed, 1):
        assert not ev.ok and ev.findings_cid
        data = fed.store.get(ev.findings_cid)
        assert sha256_digest(data) == bytes(ev.findings_digest)
        blob = AuditFindings.from_bytes(data)
        assert (blob.round, blob.accused, blob.accused_address) == (1, Party.AGGREGATOR, aggregator)
        assert blob.verified_by == ev.participant
        assert FindingKind.MODEL_MISMATCH in {f.kind for f in blob.findings}
        assert blob.replayed_digest is not None and blob.replayed_digest != blob.published_digest
        assert bytes.fromhex(blob.replayed_digest[2:]) == bytes(ev.model_digest)


def test_dispute_falls_back_to_the_round_base_and_the_next_round_opens_from_it(chain_env, ipfs_store, task_files,
                                                                               tmp_path: Path) -> None:
    fed = make_fed(chain_env, ipfs_store, task_files, tmp_path)
    _verifying(fed)
    fed.admin.set_verification_policy(50)
    first = fed.run_round()
    for p in fed.participants:
        p.check_finalised_rounds()
    fed.aggregator.dishonest = "shift-model"
    fed.run_round()
    for p in fed.participants:
        p.check_finalised_rounds()
    assert fed.reader.attestation_counts(RoundId(2)) == (0, 3)
    negative = _attestations(fed, 2)[0]

    fed.admin.dispute_round(RoundId(2), fed.env.accounts.aggregator.address, negative.findings_digest,
                            negative.findings_cid, "the published model is not the aggregate")
    fed.aggregator.dishonest = None
    third = fed.run_round()

    assert fed.reader.round(RoundId(2)).status == RoundStatus.DISPUTED
    assert fed.reader.round(RoundId(3)).base_model_digest == first.model_digest  # round 2's base
    assert third.finalized and len(third.included) == 3
    report = fed.auditor().audit()
    disputed = [f for f in report.findings if f.kind is FindingKind.ROUND_DISPUTED]
    assert [(f.round, f.severity.value) for f in disputed] == [(2, "warning")]
    assert report.governance is not None
    (line,) = report.governance.disputes
    assert (line.round, line.accused, line.findings_check) == (2, fed.env.accounts.aggregator.address, "ok")
    assert line.fallback_model_digest is not None and bytes.fromhex(line.fallback_model_digest[2:]) == first.model_digest
    assert "model_mismatch" in line.cited
    assert {f.round for f in report.findings if f.severity.value == "error"} == {2}  # the cheat itself, nothing after
    assert report.governance.built_on_disputed == ()


def test_dispute_of_the_first_round_falls_back_to_the_initial_model(chain_env, ipfs_store, task_files,
                                                                    tmp_path: Path) -> None:
    fed = make_fed(chain_env, ipfs_store, task_files, tmp_path, dishonest="shift-model")
    fed.run_round()
    verdict = verify_round(fed.participants[0].ledger, fed.store, RoundId(1))
    assert not verdict.ok and verdict.findings_blob is not None
    cid = fed.store.put(verdict.findings_blob)

    fed.admin.dispute_round(RoundId(1), fed.env.accounts.aggregator.address, sha256_digest(verdict.findings_blob), cid,
                            "shifted model")
    fed.aggregator.dishonest = None
    second = fed.run_round()

    initial = sha256_digest(initial_global(fed.doc.spec(), fed.doc.seed))
    assert bytes(fed.reader.round(RoundId(2)).base_model_digest) == initial
    assert second.finalized
    assert int(fed.reader.current_model_round()) == 2


def test_agent_verifies_once_the_policy_asks_for_it(fed: Fed) -> None:
    _verifying(fed)
    p = fed.participants[0]
    p.verify_now = lambda: int(p.ledger.verification_policy()) > 0
    fed.run_round()

    p.check_finalised_rounds()
    assert fed.reader.attestation_of(RoundId(1), p.address) == 0  # no policy: nothing to attest yet
    fed.admin.set_verification_policy(50)  # the next round now needs round 1 attested
    p.check_finalised_rounds()

    assert fed.reader.attestation_of(RoundId(1), p.address) == 1


def test_participant_run_verifies_by_default_under_a_policy_and_reports_it(fed: Fed, ipfs_api_url: str,
                                                                            tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from fedchain.cli.main import cli

    fed.run_round()

    def run(index: int, *flags: str) -> dict[str, Any]:
        p = fed.participants[index]
        key = fed.env.accounts.participants[index].key.hex()
        result = CliRunner(env={"FEDCHAIN_PRIVATE_KEY": key}).invoke(cli, [
            "participant", "run", "--data", str(p.data_path), "--work-dir", str(p.state_dir), "--until-round", "1",
            *flags, "--json", "--rpc-url", fed.env.url, "--address", fed.env.deployment.address, "--store", "ipfs",
            "--ipfs-api", ipfs_api_url, "--state-dir", str(tmp_path / "state")])
        assert result.exit_code == 0, result.output
        out: dict[str, Any] = json.loads(result.stdout)
        return out

    assert run(0)["verifications"] == []  # no policy on chain: the default does not verify
    fed.admin.set_verification_policy(50)
    (done,) = run(0)["verifications"]
    assert (done["round"], done["ok"]) == (1, True) and done["gas_used"] > 0 and done["seconds"] > 0
    assert run(1, "--no-verify")["verifications"] == []
    assert run(2, "--verify")["verifications"][0]["ok"] is True
    assert [int(fed.reader.attestation_of(RoundId(1), p.address)) for p in fed.participants] == [1, 0, 1]

"""The audit's governance section on the real devnet and store: admin actions matched to the
executed, quorate proposal behind each; an EOA admin; an account holding the admin role beside
the timelock; attestations against the policy; disputes and the findings blob they cite; rounds
built on a disputed model; exclusion contests answered, denied and never answered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedchain.audit.findings import AuditFindings, FindingKind, Party, Severity
from fedchain.audit.html import render_html
from fedchain.audit.live import LiveVerdict, attest_verdict, inclusion_of, verify_round
from fedchain.audit.replay import Auditor
from fedchain.chain.federation import ADMIN_ROLE, FederationContract, GovernanceParams
from fedchain.chain.governance import (
    Governance,
    ProposalCall,
    Support,
    admit_call,
    advance,
    configure_task_call,
    deploy_governed,
    set_verification_call,
)
from fedchain.chain.ledger import ChainLedger
from fedchain.cli.audit import governance_records
from fedchain.cli.main import cli
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import ExitCode
from fedchain.ports import Contest, RoundStatus
from fedchain.types import RoundId
from tests.protocol.harness import Fed, make_fed

PARAMS = GovernanceParams(voting_delay=1, voting_period=4, quorum_percent=50, timelock_delay_s=1)


def _auditor(fed: Fed) -> Auditor:
    """The auditor ``fedchain audit`` builds: with the deployment's governance records."""
    return Auditor(fed.reader, fed.store, contract=fed.env.deployment.address, chain_id=fed.env.conn.chain_id,
                   governance=governance_records(fed.env.conn, fed.env.deployment))


def _findings(report: Any, kind: FindingKind) -> list[Any]:
    return [f for f in report.findings if f.kind is kind]


# --- who governs -------------------------------------------------------------------------------
def test_eoa_admin_is_reported_as_such_and_its_actions_listed(fed: Fed) -> None:
    fed.run_round()

    report = _auditor(fed).audit()

    admin = fed.env.accounts.admin.address
    (eoa,) = _findings(report, FindingKind.ROLE_HELD_BY_EOA)
    assert (eoa.severity, eoa.responsible, eoa.responsible_address) == (Severity.WARNING, Party.GOVERNANCE, admin)
    assert "admin is an EOA" in eoa.detail
    assert report.ok and report.exit_code == ExitCode.OK
    g = report.governance
    assert g is not None and g.mode == "eoa"
    assert [a.action for a in g.admin_actions if a.verdict == "by the admin account (no governance)"] == [
        "task_configuration", "admission", "admission", "admission"]
    assert {a.action for a in g.admin_actions if a.verdict == "set up by the Federation's constructor"} == {"role_grant"}
    assert {(h.role, h.account, h.contract) for h in g.role_holders} >= {("ADMIN_ROLE", admin, False),
                                                                         ("DEFAULT_ADMIN_ROLE", admin, False)}
    assert "No governance: the admin is an EOA" in render_html(report)


def test_fedchain_audit_json_has_the_governance_section(fed: Fed, ipfs_api_url: str) -> None:
    fed.run_round()

    result = CliRunner().invoke(cli, ["audit", "--rpc-url", fed.env.url, "--state-dir", str(fed.env.state_dir),
                                      "--ipfs-api", ipfs_api_url, "--store", "ipfs", "--json"])

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["governance"]["mode"] == "eoa"
    assert set(doc["governance"]) == {"mode", "governor", "timelock", "membership", "admin_actions", "role_holders",
                                      "attestations", "disputes", "contests", "built_on_disputed"}
    assert [f["kind"] for f in doc["findings"]] == ["role_held_by_eoa"]


def _pass(govs: list[Governance], calls: list[ProposalCall], description: str, conn: Any) -> tuple[int, Any]:
    """Propose ``calls`` as the first founder, vote for (two) and abstain (one), queue, wait out the
    delay, execute; returns the proposal id and the execution's report."""
    pid, _ = govs[0].propose(calls, description)
    advance(conn, blocks=PARAMS.voting_delay + 1)
    govs[0].vote(pid, Support.FOR)
    govs[1].vote(pid, Support.FOR, "we need them")
    govs[2].vote(pid, Support.ABSTAIN)
    advance(conn, blocks=PARAMS.voting_period + 1)
    govs[0].queue(pid)
    advance(conn, seconds=PARAMS.timelock_delay_s + 1)
    return pid, govs[1].execute(pid)


@pytest.fixture()
def governed(chain_env, ipfs_store, task_files) -> dict[str, Any]:
    """A governed federation (three founders), a participant registered, and one executed proposal
    that admits it, configures the task and sets a verification policy."""
    env = chain_env
    founders = env.accounts.participants[:3]
    contract, deployment, _ = deploy_governed(env.conn, env.accounts.admin, env.accounts.aggregator.address,
                                              [a.address for a in founders], PARAMS)
    newcomer = env.accounts.participants[3]
    FederationContract(env.conn, deployment.address, None, newcomer).register("newcomer", "health", b"\x02" + bytes(32), 100)
    govs = [Governance.from_deployment(env.conn, deployment, a) for a in founders]
    doc = task_files.doc
    cid = ipfs_store.put(doc.to_bytes())
    calls = [admit_call(contract, newcomer.address),
             configure_task_call(contract, doc.model_spec_digest(), doc.strategy_digest(), doc.data_schema_digest(), cid,
                                 doc.max_commit_duration),
             set_verification_call(contract, 50)]
    pid, executed = _pass(govs, calls, "admit the newcomer, configure the task, verify live", env.conn)
    reader = ChainLedger(FederationContract(env.conn, deployment.address, None, None))
    return {"env": env, "deployment": deployment, "contract": contract, "govs": govs, "pid": pid,
            "executed": executed, "reader": reader, "store": ipfs_store, "newcomer": newcomer}


def _governed_audit(g: dict[str, Any]) -> Any:
    return Auditor(g["reader"], g["store"], contract=g["deployment"].address, chain_id=g["env"].conn.chain_id,
                   governance=governance_records(g["env"].conn, g["deployment"])).audit()


def test_every_admin_action_is_matched_to_its_executed_proposal(governed: dict[str, Any]) -> None:
    report = _governed_audit(governed)

    assert report.ok and report.findings == (), report.findings
    g = report.governance
    assert g is not None and g.mode == "governed" and g.timelock == governed["deployment"].timelock
    voted = [a for a in g.admin_actions if a.proposal_id is not None]
    assert [a.action for a in voted] == ["admission", "task_configuration", "verification_policy"]
    assert {(a.proposal_id, a.votes_for, a.votes_against, a.votes_abstain, a.quorum, a.execution_block, a.verdict)
            for a in voted} == {(governed["pid"], 2, 0, 1, 1, governed["executed"].block_number,
                                 "executed proposal, quorum met")}
    assert all(a.verdict == "set up by the Federation's constructor" for a in g.admin_actions if a.proposal_id is None)
    holders = {(h.role, h.account): h.contract for h in g.role_holders}
    assert holders[("ADMIN_ROLE", governed["deployment"].timelock)] is True
    assert holders[("timelock PROPOSER_ROLE", governed["deployment"].governor)] is True
    html = render_html(report)
    assert "Governed by the members" in html and str(governed["pid"])[:12] in html
    line = next(a for a in report.to_json()["governance"]["admin_actions"] if a["action"] == "admission")
    assert line["proposal_id"] == str(governed["pid"]) and line["votes"] == {"for": 2, "against": 0, "abstain": 1}


def test_a_participant_leaving_by_itself_is_no_admin_action(governed: dict[str, Any]) -> None:
    newcomer = governed["newcomer"]
    FederationContract(governed["env"].conn, governed["deployment"].address, None, newcomer).leave("closing the site")

    report = _governed_audit(governed)

    assert report.ok and report.findings == (), report.findings
    assert report.governance is not None
    assert not [a for a in report.governance.admin_actions if a.action == "removal"]


def test_an_account_given_the_admin_role_and_acting_without_a_vote_is_caught(governed: dict[str, Any]) -> None:
    env, contract = governed["env"], governed["contract"]
    insider = env.accounts.outsider
    grant = ProposalCall(contract.address, 0, contract.codec.encode_call("grantRole", ADMIN_ROLE, insider.address))
    pid, _ = _pass(governed["govs"], [grant], "give the insider the admin role", env.conn)
    FederationContract(env.conn, contract.address, None, insider).set_verification_policy(10)

    report = _governed_audit(governed)

    (held,) = _findings(report, FindingKind.ROLE_HELD_BY_EOA)
    assert (held.severity, held.responsible_address) == (Severity.ERROR, insider.address)
    (unvoted,) = _findings(report, FindingKind.ADMIN_ACTION_WITHOUT_PROPOSAL)
    assert unvoted.responsible_address == insider.address and "not by the timelock" in unvoted.detail
    assert unvoted.severity is Severity.ERROR and report.exit_code == ExitCode.AUDIT_FINDINGS
    granted = next(a for a in report.governance.admin_actions if a.action == "role_grant" and a.proposal_id is not None)
    assert granted.proposal_id == pid and insider.address in granted.detail


# --- attestations ------------------------------------------------------------------------------
def test_round_short_of_its_attestation_quorum_is_reported(fed: Fed) -> None:
    from fedchain.audit.live import LiveVerifier

    fed.admin.set_verification_policy(50)
    fed.run_round()
    LiveVerifier(fed.participants[0])(fed.reader.round(RoundId(1)))

    report = fed.auditor().audit()

    (missing,) = _findings(report, FindingKind.ATTESTATION_QUORUM_MISSING)
    assert missing.round == 1 and missing.severity is Severity.WARNING and "1 of the 2" in missing.detail
    (line,) = report.governance.attestations
    assert (line.policy, line.included, line.required, line.ok, line.negative) == (50, 3, 2, 1, 0)
    assert line.attesters == ((fed.participants[0].address, True, ""),)


def _forged(fed: Fed, index: int, ok: bool) -> None:
    """Participant ``index`` attests round 1 ``ok`` whatever its replay says."""
    p = fed.participants[index]
    rid = RoundId(1)
    honest = verify_round(p.ledger, fed.store, rid)
    blob = AuditFindings(1, "0x" + bytes(honest.published_digest).hex(), None, Party.AGGREGATOR,
                         fed.env.accounts.aggregator.address, (), p.address).to_bytes()
    lie = LiveVerdict(rid, ok, honest.published_digest, None, (), None if ok else blob)
    mine = p.own_commitment(rid)
    assert mine is not None
    inclusion = inclusion_of(fed.store, fed.reader.round(rid), mine, fed.reader.commitments(rid))
    assert inclusion is not None
    attest_verdict(p.ledger, fed.store, lie, inclusion)


def test_ok_attestation_of_a_shifted_model_is_contradicted_by_the_replay(chain_env, ipfs_store, task_files,
                                                                         tmp_path: Path) -> None:
    fed = make_fed(chain_env, ipfs_store, task_files, tmp_path, dishonest="shift-model")
    fed.run_round()
    _forged(fed, 0, ok=True)

    report = fed.auditor().audit()

    (colluder,) = _findings(report, FindingKind.ATTESTATION_CONTRADICTED)
    assert (colluder.severity, colluder.responsible, colluder.responsible_address) == (
        Severity.ERROR, Party.PARTICIPANT, fed.participants[0].address)
    assert "model_mismatch" in colluder.detail


def test_negative_attestation_of_a_clean_round_is_a_warning_against_the_attester(fed: Fed) -> None:
    fed.run_round()
    _forged(fed, 1, ok=False)

    report = fed.auditor().audit()

    (false_alarm,) = _findings(report, FindingKind.ATTESTATION_CONTRADICTED)
    assert (false_alarm.severity, false_alarm.responsible_address) == (Severity.WARNING, fed.participants[1].address)
    assert report.ok


# --- disputes ------------------------------------------------------------------------------------
def test_dispute_citing_a_blob_that_is_not_a_findings_blob_is_an_error(fed: Fed) -> None:
    fed.run_round()
    junk = b"these are not findings"
    cid = fed.store.put(junk)
    fed.admin.dispute_round(RoundId(1), fed.env.accounts.aggregator.address, sha256_digest(junk), cid, "because")

    report = fed.auditor().audit()

    (disputed,) = _findings(report, FindingKind.ROUND_DISPUTED)
    assert (disputed.severity, disputed.responsible) == (Severity.ERROR, Party.GOVERNANCE)
    assert "is not a findings blob" in disputed.detail
    assert report.governance.disputes[0].findings_check.startswith(f"findings blob {cid} is not a findings blob")


def test_dispute_whose_digest_does_not_match_its_blob_is_an_error(chain_env, ipfs_store, task_files,
                                                                  tmp_path: Path) -> None:
    fed = make_fed(chain_env, ipfs_store, task_files, tmp_path, dishonest="shift-model")
    fed.run_round()
    verdict = verify_round(fed.reader, fed.store, RoundId(1))
    assert verdict.findings_blob is not None
    cid = fed.store.put(verdict.findings_blob)
    fed.admin.dispute_round(RoundId(1), fed.env.accounts.aggregator.address, sha256_digest(b"other"), cid, "shifted")

    report = fed.auditor().audit()

    (disputed,) = _findings(report, FindingKind.ROUND_DISPUTED)
    assert disputed.severity is Severity.ERROR and "does not hash to the digest" in disputed.detail


def test_rounds_built_on_a_disputed_model_are_flagged(fed: Fed) -> None:
    fed.run_round()
    fed.run_round()  # round 2 builds on round 1's model
    verdict = verify_round(fed.reader, fed.store, RoundId(1))
    assert verdict.ok
    blob = AuditFindings(1, "0x" + bytes(verdict.published_digest).hex(), None, Party.AGGREGATOR,
                         fed.env.accounts.aggregator.address, verdict.findings, "").to_bytes()
    fed.admin.dispute_round(RoundId(1), fed.env.accounts.aggregator.address, sha256_digest(blob), fed.store.put(blob),
                            "late doubts")
    fed.run_round()  # round 2's model is still the current one: round 3 descends from the disputed model

    report = fed.auditor().audit()

    assert report.governance.built_on_disputed == (2, 3)
    flagged = {f.round: f for f in _findings(report, FindingKind.BUILT_ON_DISPUTED_MODEL)}
    assert flagged[2].severity is Severity.WARNING and "before the dispute" in flagged[2].detail
    assert flagged[3].severity is Severity.ERROR and flagged[3].responsible is Party.AGGREGATOR
    (line,) = report.governance.disputes
    assert line.fallback_model_digest is None  # the disputed model was no longer the current one
    assert fed.reader.round(RoundId(1)).status == RoundStatus.DISPUTED


# --- exclusion contests --------------------------------------------------------------------------
def _excluded(chain_env, local_store, task_files, tmp_path: Path, monkeypatch, dishonest: str | None = None) -> Fed:
    """Round 1 finalised without participant 2, whose blob the aggregator could not fetch (it was
    away from the store then); the blob is back, and participant 2 contested the exclusion."""
    monkeypatch.setattr("fedchain.protocol.rounds.FETCH_RETRY_WINDOW_S", 0.3)
    fed = make_fed(chain_env, local_store, task_files, tmp_path, dishonest=dishonest)
    rid = fed.open_round()
    for p in fed.participants:
        p.submit(rid)
    away = _hide(fed, 2, rid)
    out = fed.aggregator.finalize(rid)
    assert [(r.participant, r.rule) for r in out.rejected] == [(fed.participants[2].address, "blob_unavailable")]
    away()
    fed.participants[2].check_finalised_rounds()
    assert fed.reader.contest_of(rid, fed.participants[2].address) == Contest.OPEN
    return fed


def _hide(fed: Fed, index: int, rid: RoundId) -> Any:
    """Move participant ``index``'s committed blob out of the local store; returns what puts it back."""
    mine = fed.participants[index].own_commitment(rid)
    assert mine is not None
    path = fed.store.path_of(mine.cid)
    aside = path.with_name(path.name + ".away")
    path.rename(aside)
    return lambda: aside.rename(path)


def test_exclusion_contest_answered_available_is_a_warning(chain_env, local_store, task_files, tmp_path: Path,
                                                           monkeypatch) -> None:
    fed = _excluded(chain_env, local_store, task_files, tmp_path, monkeypatch)
    who = fed.participants[2].address

    fed.run_round()  # the aggregator answers the contest before it opens round 2

    assert fed.reader.contest_of(RoundId(1), who) == Contest.AVAILABLE
    report = fed.auditor().audit()
    (warned,) = _findings(report, FindingKind.REJECTED_UNAVAILABLE_NOW_AVAILABLE)
    assert (warned.round, warned.participant, warned.severity, warned.responsible) == (
        1, who, Severity.WARNING, Party.AGGREGATOR)
    assert "answered it available" in warned.detail
    assert not _findings(report, FindingKind.EXCLUSION_CONTEST_UNANSWERED)
    (line,) = report.governance.contests
    assert (line.round, line.participant, line.answer, line.available_now) == (1, who, "available", True)
    assert report.ok and "Exclusion contests" in render_html(report)


def test_exclusion_contest_never_answered_is_an_error_of_the_aggregator(chain_env, local_store, task_files,
                                                                        tmp_path: Path, monkeypatch) -> None:
    fed = _excluded(chain_env, local_store, task_files, tmp_path, monkeypatch, dishonest="ignore-contests")
    who = fed.participants[2].address
    pending = fed.auditor().audit()
    (waiting,) = _findings(pending, FindingKind.EXCLUSION_CONTEST_UNANSWERED)
    assert waiting.severity is Severity.WARNING and "not answered yet" in waiting.detail

    fed.run_round()  # round 2 opens without an answer

    report = fed.auditor().audit()
    (unanswered,) = _findings(report, FindingKind.EXCLUSION_CONTEST_UNANSWERED)
    assert (unanswered.round, unanswered.participant, unanswered.severity, unanswered.responsible,
            unanswered.responsible_address) == (1, who, Severity.ERROR, Party.AGGREGATOR,
                                                fed.env.accounts.aggregator.address)
    assert "opened round 2 since" in unanswered.detail
    assert report.exit_code == ExitCode.AUDIT_FINDINGS


def test_exclusion_contest_answered_unavailable_of_a_blob_that_is_there_is_an_error(
        chain_env, local_store, task_files, tmp_path: Path, monkeypatch) -> None:
    fed = _excluded(chain_env, local_store, task_files, tmp_path, monkeypatch)
    who = fed.participants[2].address
    back = _hide(fed, 2, RoundId(1))
    fed.run_round()  # the aggregator cannot fetch it now and answers unavailable
    back()

    assert fed.reader.contest_of(RoundId(1), who) == Contest.UNAVAILABLE
    report = fed.auditor().audit()
    (denied,) = _findings(report, FindingKind.EXCLUSION_CONTEST_DENIED)
    assert (denied.participant, denied.severity, denied.responsible) == (who, Severity.ERROR, Party.AGGREGATOR)
    assert report.governance.contests[0].answer == "unavailable"


def test_exclusion_never_contested_keeps_the_warning(chain_env, local_store, task_files, tmp_path: Path,
                                                     monkeypatch) -> None:
    monkeypatch.setattr("fedchain.protocol.rounds.FETCH_RETRY_WINDOW_S", 0.3)
    fed = make_fed(chain_env, local_store, task_files, tmp_path)
    rid = fed.open_round()
    for p in fed.participants:
        p.submit(rid)
    _hide(fed, 2, rid)()  # put back at once: nothing hidden
    away = _hide(fed, 2, rid)
    fed.aggregator.finalize(rid)
    away()

    report = fed.auditor().audit()

    (warned,) = _findings(report, FindingKind.REJECTED_UNAVAILABLE_NOW_AVAILABLE)
    assert (warned.severity, warned.responsible) == (Severity.WARNING, Party.PARTICIPANT)
    assert report.governance.contests == ()


def test_governed_federation_disputes_a_cheating_round_by_vote_and_goes_on_from_the_fallback(
        chain_env, ipfs_store, task_files, tmp_path: Path) -> None:
    """The whole story under governance: members admitted and the task configured by vote, a
    cheating aggregator caught by the members' negative attestations, a dispute proposal that
    also replaces the aggregator, the next round from the fallback model, and the audit's lines."""
    from fedchain.audit.live import LiveVerifier
    from fedchain.chain.governance import dispute_call, grant_aggregator_call, revoke_aggregator_call
    from fedchain.engine.ledger import LedgerTransport
    from fedchain.engine.loop import run_round
    from fedchain.ports import RoundAttested
    from fedchain.protocol.blobs import initial_global
    from fedchain.protocol.participant import ParticipantAgent

    env, store, doc = chain_env, ipfs_store, task_files.doc
    founders = env.accounts.participants[:3]
    cheat, honest = env.accounts.aggregator, env.accounts.outsider
    contract, deployment, _ = deploy_governed(env.conn, env.accounts.admin, cheat.address,
                                              [a.address for a in founders], PARAMS)

    def ledger(account: Any) -> ChainLedger:
        return ChainLedger(FederationContract(env.conn, deployment.address, None, account))

    agents = []
    for i, (account, client) in enumerate(zip(founders, task_files.clients, strict=True)):
        ledger(account).register(client.name, "healthcare", b"\x02" + bytes(32), client.num_samples)
        agent = ParticipantAgent(ledger(account), store, client.path, tmp_path / f"p{i}")
        agent.verifier = LiveVerifier(agent)
        agents.append(agent)
    govs = [Governance.from_deployment(env.conn, deployment, a) for a in founders]
    cid = store.put(doc.to_bytes())
    _pass(govs, [*(admit_call(contract, a.address) for a in founders),
                 configure_task_call(contract, doc.model_spec_digest(), doc.strategy_digest(), doc.data_schema_digest(),
                                     cid, doc.max_commit_duration),
                 set_verification_call(contract, 50)], "set up", env.conn)

    def one_round(transport: LedgerTransport) -> Any:
        transport.on_open = lambda rid: [a.submit(rid) for a in agents]
        out = run_round(transport, commit_timeout_s=600.0)
        for a in agents:
            a.check_finalised_rounds()
        return out

    one_round(LedgerTransport(ledger(cheat), store, dishonest="shift-model"))
    reader = ledger(None)
    assert reader.attestation_counts(RoundId(1)) == (0, 3)
    negative = next(ev for ev in reader.history() if isinstance(ev, RoundAttested))
    pid, executed = _pass(govs, [dispute_call(contract, 1, cheat.address, negative.findings_digest,
                                              negative.findings_cid, "the published model is not the aggregate"),
                                 grant_aggregator_call(contract, honest.address),
                                 revoke_aggregator_call(contract, cheat.address)],
                          "dispute round 1 and replace the aggregator", env.conn)
    second = one_round(LedgerTransport(ledger(honest), store))

    initial = sha256_digest(initial_global(doc.spec(), doc.seed))
    assert bytes(reader.round(RoundId(2)).base_model_digest) == initial and second.finalized
    report = Auditor(reader, store, contract=deployment.address, chain_id=env.conn.chain_id,
                     governance=governance_records(env.conn, deployment)).audit()
    g = report.governance
    assert g is not None and g.mode == "governed"
    assert not _findings(report, FindingKind.ADMIN_ACTION_WITHOUT_PROPOSAL)
    assert not _findings(report, FindingKind.ROLE_HELD_BY_EOA)
    (line,) = g.disputes
    assert (line.round, line.accused, line.proposal_id, line.findings_check) == (1, cheat.address, pid, "ok")
    assert line.fallback_model_digest is not None and bytes.fromhex(line.fallback_model_digest[2:]) == initial
    by_vote = {(a.action, a.proposal_id, a.execution_block) for a in g.admin_actions if a.proposal_id == pid}
    assert by_vote == {("dispute", pid, executed.block_number), ("role_grant", pid, executed.block_number),
                       ("role_revoke", pid, executed.block_number)}
    errors = [f for f in report.findings if f.severity is Severity.ERROR]
    assert errors and {(f.round, f.responsible_address) for f in errors} == {(1, cheat.address)}
    assert [(t.round, t.ok, t.negative) for t in g.attestations] == [(1, 0, 3), (2, 3, 0)]
    assert g.built_on_disputed == ()

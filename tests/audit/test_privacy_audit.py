"""The audit's privacy section: each participant's epsilon recomputed from the accountant inputs its
updates carry and checked against its claims, the task's policy and budget, and (client-level DP)
the presence of its noise share.

The pure tests build the section from synthetic commitments (:func:`private_commit`), one finding
each; the devnet test audits a private round on the real chain and IPFS node end to end."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from fedchain.audit.findings import AuditReport, FindingKind, Party, Severity, Verdict
from fedchain.audit.html import epsilon_svg, render_html
from fedchain.audit.privacy import (
    INCLUDED,
    LEFT_OUT,
    UNDECIDED,
    PolicyLine,
    PrivacyAudit,
    PrivateCommit,
    audit_privacy,
    parameter_differences,
    private_commit,
)
from fedchain.fl.privacy import AccountantInputs, PrivacyPolicy, epsilon, epsilon_fixed
from fedchain.fl.records import ClientUpdate
from fedchain.types import ZERO_DIGEST, Address, Digest, RoundId

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
EPOCHS = 2
DPSGD = PrivacyPolicy(mechanism="dpsgd", clip=1.0, noise_multiplier=1.1, sample_rate=0.05, delta=1e-5,
                      accountant="rdp", epsilon_budget=8.0)
CLIENT = PrivacyPolicy(mechanism="client", clip=1.0, noise_multiplier=1.0, sample_rate=1.0, delta=1e-5,
                       accountant="rdp", epsilon_budget=50.0, min_clients=2)
DIM = 2000


def _tensors(policy: PrivacyPolicy, *, noised: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """A client update clipped to norm C, with (or without) its noise share N(0, (z C / sqrt m)^2)."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=DIM)
    clipped = raw * min(1.0, policy.clip / float(np.linalg.norm(raw)))
    if noised:
        clipped = clipped + rng.normal(scale=policy.noise_std(), size=DIM)
    return {"w": clipped.astype(np.float32).reshape(40, 50)}


def _update(who: str, rid: int, extras: dict[str, Any], tensors: dict[str, np.ndarray] | None = None) -> ClientUpdate:
    return ClientUpdate(Address(who), RoundId(rid), 10, tensors or {"w": np.zeros((2, 2), np.float32)},
                        Digest(b"\x01" * 32), extras=extras)


def _commit(rid: int, who: str = ALICE, *, policy: PrivacyPolicy = DPSGD, inputs: AccountantInputs | None = None,
            claim: int | None = None, digest: bytes | None = None, outcome: str = INCLUDED,
            extras: dict[str, Any] | None = None, update: bool = True, noised: bool = True,
            history: list[AccountantInputs] | None = None) -> PrivateCommit:
    """One commitment: by default the policy's inputs, their digest, and the honest cumulative claim
    over ``history`` (the participant's earlier rounds' inputs) plus this round's."""
    mine = inputs if inputs is not None else policy.round_inputs(EPOCHS)
    past = [*(history or []), mine]
    honest = epsilon_fixed(epsilon(past))
    tensors = _tensors(policy, noised=noised, seed=rid) if policy.mechanism == "client" else None
    blob = _update(who, rid, dict(mine.to_extras()) if extras is None else extras, tensors) if update else None
    return private_commit(round_id=rid, participant=who, task_version=1, policy=policy, local_epochs=EPOCHS,
                          epsilon_spent=honest if claim is None else claim,
                          accountant_digest=Digest(bytes(mine.digest()) if digest is None else digest),
                          outcome=outcome, update=blob, tx_hash=f"0x{rid:064x}")


def _honest_history(rounds: int, *who: str) -> list[PrivateCommit]:
    commits: list[PrivateCommit] = []
    for p in who:
        seen: list[AccountantInputs] = []
        for rid in range(1, rounds + 1):
            commits.append(_commit(rid, p, history=list(seen)))
            seen.append(DPSGD.round_inputs(EPOCHS))
    return sorted(commits, key=lambda c: (c.round_id, c.participant))


def _kinds(section: PrivacyAudit) -> list[FindingKind]:
    return [f.kind for f in section.findings]


# --- a clean history ---------------------------------------------------------------------------
def test_honest_dpsgd_history_audits_clean_with_an_epsilon_curve_per_participant() -> None:
    commits = _honest_history(3, ALICE, BOB)
    section = audit_privacy(commits)
    assert section.findings == ()
    assert [p.participant for p in section.participants] == [ALICE, BOB]
    curve = section.participants[0].curve
    assert [pt.round for pt in curve] == [1, 2, 3]
    assert [pt.claimed for pt in curve] == [c.epsilon_spent for c in commits if c.participant == ALICE]
    claims = [pt.claimed for pt in curve]
    assert claims == sorted(claims) and claims[0] < claims[-1]  # composition: epsilon grows with rounds
    assert all(pt.recomputed is not None and epsilon_fixed(pt.recomputed) == pt.claimed for pt in curve)
    assert section.participants[0].spent == claims[-1] and section.participants[0].budget == DPSGD.budget_fixed()


def test_privacy_section_json_shape() -> None:
    section = audit_privacy(_honest_history(2, ALICE))
    data = section.to_json()
    assert set(data) == {"policy", "policies", "participants", "complete"}
    assert data["complete"] is True
    policy = data["policy"]
    assert {k: policy[k] for k in ("mechanism", "clip", "noise_multiplier", "sample_rate", "delta", "accountant",
                                   "epsilon_budget", "min_clients")} == {
        "mechanism": "dpsgd", "clip": 1.0, "noise_multiplier": 1.1, "sample_rate": 0.05, "delta": 1e-5,
        "accountant": "rdp", "epsilon_budget": 8.0, "min_clients": 1}
    assert policy["budget"] == 8_000_000 and policy["steps_per_round"] == EPOCHS * 20 and policy["task_version"] == 1
    assert policy["policy_digest"] == "0x" + bytes(DPSGD.digest()).hex()
    (line,) = data["participants"]
    assert set(line) == {"participant", "spent", "spent_epsilon", "recomputed", "recomputed_epsilon", "budget",
                         "budget_epsilon", "curve"}
    assert line["budget"] == 8_000_000 and line["budget_epsilon"] == 8.0 and line["recomputed"] == line["spent"]
    point = line["curve"][1]
    assert set(point) == {"round", "claimed", "claimed_epsilon", "recomputed", "recomputed_epsilon", "inputs",
                          "outcome", "noise_check"}
    assert point["round"] == 2 and point["inputs"] == "update" and point["outcome"] == "included"
    assert point["claimed"] == point["recomputed"] and math.isclose(point["claimed_epsilon"], point["claimed"] / 1e6)
    assert point["noise_check"] is None  # DP-SGD's noise is in the steps, not checkable in the update


# --- under-reported epsilon ----------------------------------------------------------------------
@pytest.mark.parametrize(("outcome", "severity"), [(INCLUDED, Severity.ERROR), (LEFT_OUT, Severity.HANDLED),
                                                   (UNDECIDED, Severity.WARNING)])
def test_under_reported_epsilon_is_flagged_naming_claimed_and_recomputed(outcome: str, severity: Severity) -> None:
    first = _commit(1)
    honest = _commit(2, history=[DPSGD.round_inputs(EPOCHS)])
    low = replace(honest, epsilon_spent=first.epsilon_spent, outcome=outcome)  # claims round 1's figure again
    section = audit_privacy([first, low])
    (finding,) = section.findings
    assert finding.kind is FindingKind.EPSILON_UNDER_REPORTED and finding.round == 2
    assert finding.responsible is Party.PARTICIPANT and finding.responsible_address == ALICE
    assert finding.severity is severity
    assert f"claimed {first.epsilon_spent / 1e6:.6f}" in finding.detail
    assert f"recomputes {epsilon(2 * [DPSGD.round_inputs(EPOCHS)]):.6f} ({honest.epsilon_spent})" in finding.detail
    assert section.participants[0].curve[1].recomputed is not None


def test_claim_one_micro_epsilon_below_the_accountant_is_flagged() -> None:
    honest = _commit(1)
    assert audit_privacy([honest]).findings == ()
    assert _kinds(audit_privacy([replace(honest, epsilon_spent=honest.epsilon_spent - 1)])) == [
        FindingKind.EPSILON_UNDER_REPORTED]


def test_over_reported_epsilon_is_no_finding() -> None:
    honest = _commit(1)
    assert audit_privacy([replace(honest, epsilon_spent=honest.epsilon_spent + 10)]).findings == ()


# --- parameters against the policy ----------------------------------------------------------------
@pytest.mark.parametrize(("field", "value", "text"), [
    ("noise_multiplier", 0.5, "noise_multiplier 0.5 below the policy's 1.1"),
    ("clip", 4.0, "clip 4 above the policy's 1"),
    ("sample_rate", 0.1, "sample_rate 0.1 above the policy's 0.05"),
    ("steps", 80, "steps 80 above the policy's 40"),
    ("delta", 1e-3, "delta 0.001 above the policy's 1e-05"),
    ("accountant", "prv", "accountant 'prv', the policy's is 'rdp'"),
])
def test_inputs_spending_more_than_the_policy_are_flagged_naming_both_values(field: str, value: Any,
                                                                            text: str) -> None:
    inputs = replace(DPSGD.round_inputs(EPOCHS), **{field: value})
    # the participant claims what its own inputs cost: only the parameters differ
    section = audit_privacy([_commit(1, inputs=inputs)])
    (finding,) = [f for f in section.findings if f.kind is FindingKind.PRIVACY_PARAMETERS_MISMATCH]
    assert finding.severity is Severity.ERROR and text in finding.detail
    # what is left: at most the budget the weaker parameters overspend (never an under-reported claim)
    assert {f.kind for f in section.findings} - {finding.kind} <= {FindingKind.PRIVACY_BUDGET_EXCEEDED}


def test_a_noise_multiplier_below_the_policy_with_the_policys_claim_is_also_under_reported() -> None:
    weak = replace(DPSGD.round_inputs(EPOCHS), noise_multiplier=0.9)  # still within the budget
    policy_claim = _commit(1).epsilon_spent
    section = audit_privacy([_commit(1, inputs=weak, claim=policy_claim)])
    assert sorted(k.value for k in _kinds(section)) == ["epsilon_under_reported", "privacy_parameters_mismatch"]


def test_another_mechanism_is_flagged() -> None:
    inputs = replace(CLIENT.round_inputs(EPOCHS), steps=DPSGD.steps_per_round(EPOCHS))
    section = audit_privacy([_commit(1, inputs=inputs)])
    (finding,) = [f for f in section.findings if f.kind is FindingKind.PRIVACY_PARAMETERS_MISMATCH]
    assert "mechanism 'client', the policy's is 'dpsgd'" in finding.detail


def test_inputs_spending_less_than_the_policy_are_a_warning() -> None:
    inputs = replace(DPSGD.round_inputs(EPOCHS), noise_multiplier=2.0, steps=20)
    section = audit_privacy([_commit(1, inputs=inputs)])
    (finding,) = section.findings
    assert finding.kind is FindingKind.PRIVACY_PARAMETERS_MISMATCH and finding.severity is Severity.WARNING
    assert "noise_multiplier 2 above the policy's 1.1" in finding.detail and "steps 20 below" in finding.detail


def test_parameter_differences_of_the_policys_own_inputs_are_none() -> None:
    assert parameter_differences(DPSGD.round_inputs(3), DPSGD.round_inputs(3)) == ([], [])


# --- digests, missing inputs, missing claims ----------------------------------------------------------
def test_accountant_digest_mismatch_is_flagged() -> None:
    section = audit_privacy([_commit(1, digest=b"\x07" * 32)])
    (finding,) = section.findings
    assert finding.kind is FindingKind.ACCOUNTANT_DIGEST_MISMATCH
    assert "0x" + bytes(DPSGD.round_inputs(EPOCHS).digest()).hex() in finding.detail and "0x" + "07" * 32 in finding.detail


def test_update_without_accountant_inputs_is_flagged() -> None:
    section = audit_privacy([_commit(1, extras={"loss": 0.5})])
    assert _kinds(section) == [FindingKind.PRIVACY_INPUTS_MISSING]
    assert "carry no accountant inputs" in section.findings[0].detail
    assert section.participants[0].curve[0].inputs == "digest"  # the committed digest is the policy's inputs'


def test_update_with_partial_accountant_inputs_is_flagged_as_malformed() -> None:
    extras = dict(DPSGD.round_inputs(EPOCHS).to_extras())
    del extras["dp_delta"]
    section = audit_privacy([_commit(1, extras=extras)])
    assert _kinds(section) == [FindingKind.PRIVACY_INPUTS_MISSING]
    assert "malformed" in section.findings[0].detail and "dp_delta" in section.findings[0].detail


def test_private_round_commit_without_a_privacy_claim_is_flagged() -> None:
    section = audit_privacy([_commit(1, claim=0, digest=bytes(ZERO_DIGEST), outcome=LEFT_OUT)])
    (finding,) = section.findings
    assert finding.kind is FindingKind.PRIVACY_CLAIM_MISSING and finding.severity is Severity.HANDLED
    assert "without a privacy claim" in finding.detail


def test_an_unreadable_blob_is_accounted_with_the_policys_inputs_and_no_privacy_finding() -> None:
    # the replay reports the blob; the privacy section still composes the round it cost
    commits = [_commit(1, update=False), _commit(2, history=[DPSGD.round_inputs(EPOCHS)])]
    section = audit_privacy(commits)
    assert section.findings == ()
    assert [pt.inputs for pt in section.participants[0].curve] == ["digest", "update"]
    assumed = audit_privacy([_commit(1, update=False, digest=b"\x05" * 32)])
    assert assumed.findings == () and assumed.participants[0].curve[0].inputs == "assumed"


def test_an_audit_of_one_round_composes_only_the_rounds_it_saw_and_says_so() -> None:
    second = _commit(2, history=[DPSGD.round_inputs(EPOCHS)])  # honest over two rounds
    partial = audit_privacy([second], complete=False)
    assert partial.findings == () and partial.to_json()["complete"] is False
    point = partial.participants[0].curve[0]
    assert point.recomputed is not None and epsilon_fixed(point.recomputed) < point.claimed  # a lower bound
    below_one_round = audit_privacy([replace(second, epsilon_spent=_commit(1).epsilon_spent - 1)], complete=False)
    (finding,) = below_one_round.findings
    assert finding.kind is FindingKind.EPSILON_UNDER_REPORTED and "round(s) seen by this audit" in finding.detail


# --- the budget ----------------------------------------------------------------------------------
def test_spend_over_the_budget_is_flagged() -> None:
    tight = replace(DPSGD, epsilon_budget=0.5)
    honest = _commit(1, policy=tight)
    assert honest.epsilon_spent > tight.budget_fixed()  # one round costs more than the budget
    section = audit_privacy([honest])
    (finding,) = section.findings
    assert finding.kind is FindingKind.PRIVACY_BUDGET_EXCEEDED and "over the budget 0.500000" in finding.detail
    assert "claimed" in finding.detail and "recomputed" in finding.detail


def test_an_under_reported_claim_within_budget_does_not_hide_the_overspend() -> None:
    tight = replace(DPSGD, epsilon_budget=0.5)
    section = audit_privacy([_commit(1, policy=tight, claim=400_000)])
    assert sorted(k.value for k in _kinds(section)) == ["epsilon_under_reported", "privacy_budget_exceeded"]
    (over,) = [f for f in section.findings if f.kind is FindingKind.PRIVACY_BUDGET_EXCEEDED]
    assert "claimed" not in over.detail and "recomputed" in over.detail


# --- client-level DP: the noise share -----------------------------------------------------------------
def _client_history(*, noised: bool, outcome: str = INCLUDED) -> list[PrivateCommit]:
    return [_commit(1, ALICE, policy=CLIENT, noised=True),
            _commit(1, BOB, policy=CLIENT, noised=noised, outcome=outcome)]


def test_honest_client_dp_updates_pass_the_noise_check() -> None:
    section = audit_privacy(_client_history(noised=True))
    assert section.findings == ()
    checks = [p.curve[0].noise for p in section.participants]
    assert all(n is not None and n.passed and n.dimension == DIM for n in checks)


@pytest.mark.parametrize(("outcome", "severity"), [(INCLUDED, Severity.ERROR), (LEFT_OUT, Severity.HANDLED)])
def test_client_update_without_its_noise_share_is_flagged_with_the_statistic(outcome: str,
                                                                             severity: Severity) -> None:
    section = audit_privacy(_client_history(noised=False, outcome=outcome))
    (finding,) = section.findings
    assert finding.kind is FindingKind.DP_NOISE_MISSING and finding.participant == BOB
    assert finding.severity is severity
    noise = section.participants[1].curve[0].noise
    assert noise is not None and not noise.passed and noise.statistic < noise.threshold
    assert "update lacks its noise share" in finding.detail
    assert f"{noise.statistic:.6g}" in finding.detail and f"{noise.threshold:.6g}" in finding.detail
    assert "false-alarm rate 1e-06" in finding.detail
    assert section.to_json()["participants"][1]["curve"][0]["noise_check"]["passed"] is False


# --- the report ----------------------------------------------------------------------------------
def _report(section: PrivacyAudit) -> AuditReport:
    return AuditReport(contract="0xfed", chain_id=31337, rounds_checked=(1, 2), findings=section.findings,
                       privacy=section)


def test_report_verdicts_follow_the_severity_of_privacy_findings() -> None:
    first = _commit(1)
    low = replace(_commit(2, history=[DPSGD.round_inputs(EPOCHS)]), epsilon_spent=first.epsilon_spent)
    assert _report(audit_privacy([first, low])).exit_code == 51
    handled = _report(audit_privacy([first, replace(low, outcome=LEFT_OUT)]))
    assert handled.verdict is Verdict.PARTICIPANT_MISCONDUCT and handled.exit_code == 52
    clean = _report(audit_privacy(_honest_history(2, ALICE)))
    assert clean.exit_code == 0 and clean.to_json()["privacy"]["participants"][0]["participant"] == ALICE
    assert AuditReport(contract="", chain_id=0, rounds_checked=(), findings=()).to_json()["privacy"] is None


def test_html_report_shows_the_policy_and_the_epsilon_curves() -> None:
    section = audit_privacy(_honest_history(3, ALICE, BOB), [PolicyLine(1, DPSGD, EPOCHS)])
    page = render_html(_report(section))
    assert "<h2>Privacy</h2>" in page and "Noise multiplier z" in page and "dpsgd" in page
    assert page.count(f"<code>{ALICE}</code>") >= 1 and "Epsilon spent per participant" in page
    svg = epsilon_svg(section.curves(), DPSGD.epsilon_budget)
    assert svg.startswith("<svg") and svg.count("<polyline") == 2 and "budget 8" in svg
    assert epsilon_svg({}) == ""



def test_privacy_lines_for_people() -> None:
    lines = audit_privacy(_honest_history(2, ALICE), complete=False).lines()
    assert lines[0].startswith("privacy (task v1): dpsgd, clip 1, noise multiplier 1.1, sample rate 0.05, delta 1e-05")
    assert "one round audited" in lines[1] and lines[2].startswith(f"  {ALICE}: epsilon ") and "of 8 claimed" in lines[2]
    assert lines[2].endswith("over rounds 1, 2")


# --- end to end on the devnet -------------------------------------------------------------------
class UnderReporting:
    """A participant's ledger that commits half the epsilon its agent computed (the contract cannot tell)."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    def commit_private_update(self, round_id: Any, update_digest: Any, cid: Any, num_samples: int,
                              metadata_digest: Any, epsilon_spent: int, accountant_digest: Any) -> Any:
        return self._ledger.commit_private_update(round_id, update_digest, cid, num_samples, metadata_digest,
                                                  epsilon_spent // 2, accountant_digest)


@pytest.mark.devnet
def test_private_rounds_audit_recomputes_every_claim_and_flags_the_under_reported_one(
        chain_env: Any, ipfs_store: Any, tmp_path: Any) -> None:
    from fedchain.sim.config import PrivacyRequest
    from tests.protocol.harness import make_fed, make_task_files

    files = make_task_files(tmp_path / "task", rounds=2, privacy=PrivacyRequest("dpsgd", 8.0, noise_multiplier=1.1))
    assert files.doc.privacy is not None
    fed = make_fed(chain_env, ipfs_store, files, tmp_path)
    cheat = fed.participants[2]
    cheat.ledger = UnderReporting(cheat.ledger)
    for _ in range(2):
        fed.run_round()
    report = fed.auditor().audit()

    privacy = report.privacy
    assert privacy is not None and privacy.complete
    assert privacy.policy is not None and privacy.policy.policy == files.doc.privacy
    lines = {p.participant.lower(): p for p in privacy.participants}
    assert set(lines) == {p.address.lower() for p in fed.participants}
    for agent in fed.participants[:2]:
        curve = lines[agent.address.lower()].curve
        assert [pt.round for pt in curve] == [1, 2] and [pt.inputs for pt in curve] == ["update", "update"]
        assert all(pt.recomputed is not None and pt.claimed == epsilon_fixed(pt.recomputed) for pt in curve)
        assert lines[agent.address.lower()].spent == int(fed.reader.epsilon_spent(agent.address))
    under = [f for f in report.findings if f.kind is FindingKind.EPSILON_UNDER_REPORTED]
    assert [(f.round, f.participant.lower() if f.participant else None) for f in under] == [
        (1, cheat.address.lower()), (2, cheat.address.lower())]
    assert all(f.severity is Severity.ERROR and f.responsible is Party.PARTICIPANT for f in under)
    assert [f for f in report.findings if f.severity is not Severity.WARNING] == under, report.findings
    assert report.exit_code == 51
    data = report.to_json()["privacy"]
    assert data["policy"]["policy_digest"] == "0x" + bytes(files.doc.privacy.digest()).hex()
    assert "<h2>Privacy</h2>" in render_html(report)
    assert report.governance is not None
    (configured,) = [a for a in report.governance.admin_actions if a.action == "task_configuration"]
    assert f"with privacy policy 0x{bytes(files.doc.privacy.digest()).hex()}" in configured.detail
    partial = fed.auditor().audit(round_filter=2)
    assert partial.privacy is not None and not partial.privacy.complete
    assert all([pt.round for pt in line.curve] == [2] for line in partial.privacy.participants)
    assert {f.participant.lower() for f in partial.findings if f.participant and f.severity is not Severity.WARNING} \
        <= {cheat.address.lower()}


@pytest.mark.devnet
def test_client_dp_round_audit_flags_the_update_without_its_noise_share_as_handled(
        chain_env: Any, ipfs_store: Any, tmp_path: Any) -> None:
    from fedchain.fl.attacks import AttackSpec
    from fedchain.protocol.rounds import RULE_DP_NOISE
    from fedchain.sim.config import PrivacyRequest
    from tests.protocol.harness import make_fed, make_task_files

    files = make_task_files(tmp_path / "task", rounds=1,
                            privacy=PrivacyRequest("client", 50.0, noise_multiplier=1.0, min_clients=2))
    fed = make_fed(chain_env, ipfs_store, files, tmp_path, attacks={2: AttackSpec("skip_noise")})
    skipper = fed.participants[2].address
    outcome = fed.run_round()
    assert [r.rule for r in outcome.rejected] == [RULE_DP_NOISE]
    report = fed.auditor().audit()

    assert report.privacy is not None
    (missing,) = [f for f in report.findings if f.kind is FindingKind.DP_NOISE_MISSING]
    assert missing.participant is not None and missing.participant.lower() == skipper.lower()
    assert missing.severity is Severity.HANDLED and "update lacks its noise share" in missing.detail
    lines = {p.participant.lower(): p for p in report.privacy.participants}
    checks = {who: line.curve[0].noise for who, line in lines.items()}
    assert all(n is not None and n.passed == (who != skipper.lower()) for who, n in checks.items())
    assert {f.kind for f in report.findings if f.severity is not Severity.WARNING} == {
        FindingKind.DP_NOISE_MISSING, FindingKind.UPDATE_REJECTED}
    assert report.exit_code == 52


@pytest.mark.devnet
def test_honest_private_round_audits_clean_through_the_cli(chain_env: Any, ipfs_store: Any, ipfs_api_url: str,
                                                           tmp_path: Any) -> None:
    import json

    from click.testing import CliRunner

    from fedchain.cli.main import cli
    from fedchain.sim.config import PrivacyRequest
    from tests.protocol.harness import make_fed, make_task_files

    files = make_task_files(tmp_path / "task", rounds=1, privacy=PrivacyRequest("dpsgd", 8.0, noise_multiplier=1.1))
    fed = make_fed(chain_env, ipfs_store, files, tmp_path)
    fed.run_round()
    args = ["audit", "--rpc-url", fed.env.url, "--address", fed.env.deployment.address, "--ipfs-api", ipfs_api_url,
            "--store", "ipfs"]

    result = CliRunner().invoke(cli, [*args, "--json"])

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["findings"] == [] and doc["privacy"]["policy"]["epsilon_budget"] == 8.0
    lines = doc["privacy"]["participants"]
    assert len(lines) == len(fed.participants)
    assert all(x["spent"] == x["recomputed"] > 0 and x["budget"] == 8_000_000 for x in lines)
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0 and "privacy (task v1): dpsgd" in text.output
    assert all(f"{p.address}: epsilon" in text.output for p in fed.participants)

"""The incentives commands: the finding a slash proposal cites (checked before anything is sent),
and on the real devnet deposits, withdrawals, slashes by vote and reward claims from the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak

from fedchain.audit.findings import AuditFinding, AuditFindings, FindingKind, Party
from fedchain.chain.federation import read_deployment
from fedchain.chain.governance import ProposalState, Support, admit_call, configure_task_call
from fedchain.chain.incentives import Incentives
from fedchain.cli.incentives import check_slash_finding
from fedchain.cli.main import cli
from fedchain.cli.options import role_settings
from fedchain.cli.round import aggregator_transport
from fedchain.codec.canonical import sha256_digest
from fedchain.codec.merkle import MerkleTree
from fedchain.errors import BlobFormatError, ExitCode, GovernanceError
from fedchain.fl.records import Rejection
from fedchain.protocol.evidence import Evidence
from fedchain.protocol.rewards import build_rewards_doc
from fedchain.protocol.rounds import leaf_of
from fedchain.protocol.task import TaskDocument
from fedchain.storage.local import LocalStore
from fedchain.types import Address, Cid, Digest, RoundId, Wei
from tests.cli.test_gov import BASE, PARAMS, GovEnv, _deploy_args, _doc, _ok, _refused, _unchanged
from tests.fixtures_devnet import TASK_CID, TASK_DIGESTS, DevnetEnv

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


# --- refused before any chain is reached ---------------------------------------------------------


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["rewards", "claim", "--round", "1", "--all"], ExitCode.USAGE, "--round N or --all, not both"),
    (["devnet", "deploy", "--reward-supply", "5"], ExitCode.USAGE, "--reward-supply only with --incentives"),
    (["gov", "propose", "set-deposit", "--amount", "0.1", "--delay", "5", "--description", "x"], ExitCode.USAGE,
     "not an integer amount: '0.1'"),
    (["gov", "propose", "set-budget", "--per-round", str(2**256), "--description", "x"], ExitCode.USAGE,
     "out of range"),
    (["gov", "propose", "slash", "0x" + "ab" * 20, "--amount", "0", "--finding", "bafy", "--description", "x"],
     ExitCode.USAGE, "must be above 0"),
    (["gov", "propose", "configure-task", "--rewards", "loo", "--description", "x"], ExitCode.CONFIG,
     "rule 'loo' needs a validation set"),
    (["gov", "propose", "configure-task", "--reward-param", "permutations=5", "--description", "x"], ExitCode.USAGE,
     "only with --rewards RULE"),
])
def test_bad_input_is_refused_before_the_chain(args: list[str], code: ExitCode, fragment: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [*args, "--state-dir", str(tmp_path), "--rpc-url", "http://127.0.0.1:9"])
    assert result.exit_code == code, result.output
    assert fragment in result.output


# --- on the devnet: a governed deployment with incentives, driven from the CLI -------------------

DEPOSIT = 10**17
DELAY = 100
BUDGET = 1_000
POOL = 5_000


def _pass(env: GovEnv, doc: dict[str, Any]) -> None:
    """Vote (every founder for), queue and execute the proposal a `gov propose` JSON names."""
    pid = int(doc["proposal"]["proposal_id"])
    governance = env.governance(env.founders[0])
    env.advance(blocks=PARAMS.voting_delay + 1)
    for founder in env.founders:
        env.governance(founder).vote(pid, Support.FOR)
    env.advance(blocks=PARAMS.voting_period + 1)
    governance.queue(pid)
    env.advance(seconds=PARAMS.timelock_delay_s + 1)
    governance.execute(pid)
    assert governance.state(pid) == ProposalState.EXECUTED


def _propose(env: GovEnv, *args: str) -> dict[str, Any]:
    doc: dict[str, Any] = _doc(env.gov("propose", *args, "--description", f"{args[0]} {len(args)}",
                                       key=env.founders[0]))
    return doc


@pytest.fixture()
def inc_env(chain_env: DevnetEnv, tmp_path: Path) -> GovEnv:
    """A governed deployment with incentives, its deposit policy, budget and pool set by vote from the CLI."""
    founders = chain_env.accounts.participants[:3]
    env = GovEnv(chain_env, tmp_path / "incentives", None, founders)  # type: ignore[arg-type]
    _doc(env.run(*_deploy_args(founders, chain_env.accounts.aggregator), "--incentives", "--reward-supply",
                 str(10**6), key=chain_env.accounts.admin))
    env.deployment = read_deployment(env.state_dir, chain_env.conn.chain_id)
    assert env.deployment.incentives is not None and env.deployment.timelock is not None
    _pass(env, _propose(env, "set-deposit", "--amount", str(DEPOSIT), "--delay", str(DELAY)))  # treasury: the timelock
    _pass(env, _propose(env, "set-budget", "--per-round", str(BUDGET)))
    _pass(env, _propose(env, "fund-pool", "--amount", str(POOL)))
    return env


def _incentives(env: GovEnv, account: LocalAccount | None = None) -> Incentives:
    return Incentives(env.chain.conn, env.deployment, account)


def test_the_policy_budget_and_pool_were_set_by_vote(inc_env: GovEnv) -> None:
    client = _incentives(inc_env)
    policy = client.deposit_policy()
    assert (policy.amount, policy.withdrawal_delay_s, policy.treasury) == (DEPOSIT, DELAY, inc_env.deployment.timelock)
    assert client.reward_budget() == BUDGET
    assert client.token_balance(Address(inc_env.deployment.incentives)) == POOL


def test_register_deposits_and_a_withdrawal_waits_for_the_delay(inc_env: GovEnv) -> None:
    site = inc_env.chain.accounts.participants[4]
    doc = _doc(inc_env.run("participant", "register", "--organisation", "Clinic Süd", "--samples", "100", key=site))
    assert doc["deposit"] == DEPOSIT and doc["deposit_tx"]["function"]
    shown = _doc(inc_env.run("deposit", "show", site.address))
    assert shown["deposit"]["held"] == DEPOSIT and shown["status"] == "pending"
    assert [e["amount"] for e in shown["history"]] == [DEPOSIT]

    # still registered: the withdrawal is refused before anything is sent
    _unchanged(inc_env, inc_env.run("deposit", "request-withdrawal", key=site), ExitCode.INCENTIVES,
               "is still pending", "participant leave")
    left = _doc(inc_env.run("participant", "leave", "--reason", "the project ended", key=site))
    assert (left["status"], left["deposit_held"]) == ("removed", DEPOSIT)
    _unchanged(inc_env, inc_env.run("participant", "leave", "--reason", "again", key=site), ExitCode.PARTICIPANT,
               "status is removed")
    _unchanged(inc_env, inc_env.run("deposit", "withdraw", key=site), ExitCode.INCENTIVES, "has not requested")
    requested = _doc(inc_env.run("deposit", "request-withdrawal", key=site))
    available_at = requested["deposit"]["available_at"]
    assert requested["deposit"]["requested"] is True
    line = _unchanged(inc_env, inc_env.run("deposit", "withdraw", key=site), ExitCode.INCENTIVES,
                      "not available yet", f"available from chain time {available_at}")
    assert "in " in line
    inc_env.advance(seconds=DELAY + 1)
    before = inc_env.chain.conn.balance(site.address)
    withdrawn = _doc(inc_env.run("deposit", "withdraw", key=site))
    assert withdrawn["withdrawn"] == DEPOSIT and withdrawn["deposit"]["held"] == 0
    fee = withdrawn["tx"]["gas_used"] * withdrawn["tx"]["effective_gas_price"]
    assert inc_env.chain.conn.balance(site.address) == before + DEPOSIT - fee


def test_configure_task_records_the_rewards_rule(inc_env: GovEnv) -> None:
    doc = _propose(inc_env, "configure-task", "--rewards", "samples", "--min-updates", "2", "--store", "local")
    call = doc["proposal"]["calls"][0]["call"]  # configureTask(0x..., 0x..., 0x..., 'CID', 86400)
    task = TaskDocument.from_bytes(inc_env.store().get(Cid(call.split("'")[1])))
    assert task.rewards is not None and task.rewards.rule == "samples"


def _registered(env: GovEnv, site: LocalAccount) -> None:
    _doc(env.run("participant", "register", "--organisation", f"org-{site.address[:8]}", "--samples", "100", key=site))


def test_a_slash_citing_a_finding_that_names_the_participant_executes(inc_env: GovEnv) -> None:
    cheat, honest = inc_env.chain.accounts.participants[3:5]
    for site in (cheat, honest):
        _registered(inc_env, site)
    finding = AuditFinding.of(1, cheat.address, FindingKind.BLOB_DIGEST_MISMATCH, "the blob is not the update")
    blob = AuditFindings(1, "0x" + "11" * 32, None, Party.PARTICIPANT, cheat.address, (finding,),
                         verified_by=honest.address).to_bytes()
    cid = inc_env.store().put(blob)
    doc = _propose(inc_env, "slash", cheat.address, "--amount", str(DEPOSIT // 2), "--finding", cid,
                   "--store", "local")
    assert "slash(" in doc["proposal"]["calls"][0]["call"]
    _pass(inc_env, doc)
    assert _incentives(inc_env).deposit_of(Address(cheat.address)).held == DEPOSIT - DEPOSIT // 2
    shown = _doc(inc_env.run("deposit", "show", cheat.address))
    assert shown["deposit"]["held"] == DEPOSIT // 2
    assert [e["finding_cid"] for e in shown["history"] if "finding_cid" in e] == [cid]
    text = _ok(inc_env.run("deposit", "show", cheat.address, json_out=False)).stdout
    assert "holds 0.05 ETH" in text and "Slashed 0.05 ETH" in text and f"citing {cid}" in text

    # a finding that does not name the participant: one line, nothing sent
    proposals = len(inc_env.governance().proposals())
    _unchanged(inc_env, inc_env.gov("propose", "slash", honest.address, "--amount", "1", "--finding", cid,
                                    "--store", "local", "--description", "slash the honest one", key=inc_env.founders[0]),
               ExitCode.GOVERNANCE, f"does not name {honest.address} as responsible")
    assert len(inc_env.governance().proposals()) == proposals
    # more than it holds, and a finding missing from the store
    _unchanged(inc_env, inc_env.gov("propose", "slash", cheat.address, "--amount", str(DEPOSIT), "--finding", cid,
                                    "--store", "local", "--description", "too much", key=inc_env.founders[0]),
               ExitCode.INCENTIVES, f"it holds {DEPOSIT // 2} wei")
    missing = LocalStore(inc_env.state_dir / "elsewhere").put(blob + b" ")
    _unchanged(inc_env, inc_env.gov("propose", "slash", cheat.address, "--amount", "1", "--finding", missing,
                                    "--store", "local", "--description", "gone", key=inc_env.founders[0]),
               ExitCode.BLOB_NOT_FOUND)


# --- rewards: a finalised round, its scores blob and root published by the aggregator ------------


@dataclass
class Published:
    env: GovEnv
    round_id: int
    trainers: tuple[LocalAccount, ...]
    amounts: dict[str, int]
    cid: Cid


def _finalise_round(env: GovEnv, trainers: Sequence[LocalAccount]) -> RoundId:
    """Task and trainers voted in, round 1 opened, committed by every trainer and finalised."""
    for t in trainers:
        _registered(env, t)
    fed = env.federation()
    env.pass_proposal([configure_task_call(fed, *TASK_DIGESTS, Cid(TASK_CID), 86_400),
                       *(admit_call(fed, t.address) for t in trainers)], "Task and first participants")
    aggregator = env.ledger(env.chain.accounts.aggregator)
    rid = aggregator.open_round(BASE, Cid("bafkreibasemodel"), 600, len(trainers)).round_id
    for i, t in enumerate(trainers):
        env.ledger(t).commit_update(rid, Digest(keccak(b"u%d" % i)), Cid(f"bafkreiupdate{i}"), 10 + i,
                                    Digest(keccak(b"m%d" % i)))
    commitments = aggregator.commitments(rid)
    tree = MerkleTree.build([leaf_of(c) for c in commitments])
    aggregator.finalize_round(rid, Digest(keccak(b"global-1")), Cid("bafkreimodel"), tree.root, BASE, BASE,
                              Cid("bafkreievidence"), len(commitments))
    return rid


def _publish(env: GovEnv, rid: RoundId, amounts: dict[str, int], *, total: int | None = None,
             blob_budget: int = BUDGET) -> Cid:
    scores = {Address(a): Fraction(v) for a, v in amounts.items()}
    doc = build_rewards_doc(rid, "samples", {}, blob_budget, None, scores, {Address(a): v for a, v in amounts.items()})
    data = doc.to_bytes()
    cid = env.store().put(data)
    _incentives(env, env.chain.accounts.aggregator).publish_rewards(
        rid, doc.root, doc.total if total is None else total, sha256_digest(data), cid)
    return cid


@pytest.fixture()
def published(inc_env: GovEnv) -> Published:
    trainers = tuple(inc_env.chain.accounts.participants[3:5])
    rid = _finalise_round(inc_env, trainers)
    amounts = {trainers[0].address: 400, trainers[1].address: 600}
    cid = _publish(inc_env, rid, amounts)
    return Published(inc_env, int(rid), trainers, amounts, cid)


def test_rewards_show_lists_scores_amounts_and_claims(published: Published) -> None:
    env = published.env
    doc = _doc(env.run("rewards", "show", "--store", "local"))
    assert (doc["round"], doc["budget"], doc["total"], doc["claimed"], doc["scores_cid"]) == (1, BUDGET, 1000, 0,
                                                                                              published.cid)
    assert {p["participant"]: (p["amount"], p["claimed"]) for p in doc["participants"]} == {
        a: (v, False) for a, v in published.amounts.items()}
    assert _doc(env.run("rewards", "show", "--round", "1", "--store", "local")) == doc
    _refused(env.run("rewards", "show", "--round", "2", "--store", "local"), ExitCode.INCENTIVES,
             "round 2 has no published rewards")
    text = _ok(env.run("rewards", "show", "--store", "local", json_out=False)).stdout
    assert "total 1000 of budget 1000" in text and "unclaimed" in text


def test_a_claim_pays_once(published: Published) -> None:
    env, site = published.env, published.trainers[0]
    doc = _doc(env.run("rewards", "claim", "--round", "1", "--store", "local", key=site))
    assert doc["claimed"] == 400 and doc["token_balance"] == 400 and doc["claims"][0]["round"] == 1
    assert _incentives(env).has_claimed(1, Address(site.address))
    _unchanged(env, env.run("rewards", "claim", "--round", "1", "--store", "local", key=site), ExitCode.INCENTIVES,
               "claimed its reward for round 1 already")
    again = _doc(env.run("rewards", "claim", "--all", "--store", "local", key=site))
    assert again["claims"] == [] and "already" in again["skipped"][0]["why"]
    shown = _doc(env.run("rewards", "show", "--store", "local"))
    assert shown["claimed"] == 400
    assert [p["claimed"] for p in shown["participants"] if p["participant"] == site.address] == [True]
    outsider = env.chain.accounts.outsider
    _unchanged(env, env.run("rewards", "claim", "--store", "local", key=outsider), ExitCode.INCENTIVES,
               "owes", "nothing")


def test_claim_all_claims_every_round(published: Published) -> None:
    env, site = published.env, published.trainers[1]
    doc = _doc(env.run("rewards", "claim", "--all", "--store", "local", key=site))
    assert [(c["round"], c["amount"]) for c in doc["claims"]] == [(1, 600)] and doc["token_balance"] == 600


def test_a_root_paying_one_participant_double_is_refused_once_the_budget_is_reached(inc_env: GovEnv) -> None:
    trainers = tuple(inc_env.chain.accounts.participants[3:5])
    rid = _finalise_round(inc_env, trainers)
    # the blob pays 700 + 700 though the round's budget is 1000; the published total claims 1000
    _publish(inc_env, rid, {trainers[0].address: 700, trainers[1].address: 700}, total=BUDGET, blob_budget=1400)
    _doc(inc_env.run("rewards", "claim", "--store", "local", key=trainers[0]))
    _unchanged(inc_env, inc_env.run("rewards", "claim", "--store", "local", key=trainers[1]), ExitCode.INCENTIVES,
               "exceeds the round's remaining budget of 300")
    assert _incentives(inc_env).token_balance(Address(trainers[1].address)) == 0


def test_a_scores_blob_that_is_not_the_published_one(published: Published) -> None:
    env = published.env
    (env.store().path_of(published.cid)).unlink()
    _refused(env.run("rewards", "show", "--store", "local"), ExitCode.BLOB_NOT_FOUND)


def test_register_without_the_deposit_is_refused_before_registering(inc_env: GovEnv) -> None:
    poor = Account.from_key(keccak(b"a site that cannot pay the deposit"))
    inc_env.chain.conn.fund_from_dev_account(poor.address, Wei(10**16))  # gas, but not the 0.1 ETH deposit
    _unchanged(inc_env, inc_env.run("participant", "register", "--organisation", "Poor", "--samples", "10", key=poor),
               ExitCode.INCENTIVES, "less than the deposit of 100000000000000000 wei")
    assert inc_env.federation().participant(Address(poor.address)).status.name.lower() == "none"


def test_the_aggregator_gets_the_incentives_contract(inc_env: GovEnv, chain_env: DevnetEnv) -> None:
    settings = role_settings(inc_env.state_dir, inc_env.chain.url, None, "local", None)
    transport = aggregator_transport(settings, None, account=inc_env.chain.accounts.aggregator)
    assert isinstance(transport.incentives, Incentives)
    assert transport.incentives.sender == inc_env.chain.accounts.aggregator.address
    plain = role_settings(chain_env.state_dir, chain_env.url, None, "local", None)  # deployed without incentives
    assert aggregator_transport(plain, None, account=chain_env.accounts.aggregator).incentives is None

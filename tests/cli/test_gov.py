"""`fedchain gov` and `fedchain devnet deploy --governance` against the real devnet: a governed
federation deployed from the CLI, a proposal's whole life from the CLI, and every refusal as one
clear line with the governance exit code and nothing changed on chain."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak

from fedchain.audit.findings import AuditFinding, AuditFindings, FindingKind, Party
from fedchain.chain.federation import ADMIN_ROLE, AGGREGATOR_ROLE, Deployment, FederationContract, read_deployment
from fedchain.chain.governance import (
    Governance,
    GovernanceParams,
    ProposalCall,
    ProposalState,
    Support,
    admit_call,
    configure_task_call,
)
from fedchain.chain.ledger import ChainLedger
from fedchain.cli.main import cli
from fedchain.codec.canonical import sha256_digest
from fedchain.codec.merkle import MerkleTree
from fedchain.errors import ExitCode
from fedchain.ports import Inclusion, ParticipantStatus, RoundStatus
from fedchain.protocol.rounds import leaf_of
from fedchain.storage.local import LocalStore
from fedchain.types import Cid, Digest, RoundId, Wei, digest_hex
from tests.fixtures_devnet import TASK_CID, TASK_DIGESTS, DevnetEnv

PARAMS = GovernanceParams(voting_delay=1, voting_period=5, quorum_percent=50, timelock_delay_s=60)
BASE = Digest(keccak(b"base-model"))
FUNDING = Wei(10**18)


@dataclass
class GovEnv:
    """A governed federation deployed by the CLI into its own state directory on the session devnet."""

    chain: DevnetEnv
    state_dir: Path
    deployment: Deployment
    founders: tuple[LocalAccount, ...]

    def run(self, *args: str, key: LocalAccount | None = None, json_out: bool = True) -> Result:
        extra = {"FEDCHAIN_PRIVATE_KEY": key.key.hex()} if key is not None else {}
        base = ["--state-dir", str(self.state_dir), "--rpc-url", self.chain.url] + (["--json"] if json_out else [])
        return CliRunner(env=extra).invoke(cli, [*args, *base])

    def gov(self, *args: str, key: LocalAccount | None = None, json_out: bool = True) -> Result:
        return self.run("gov", *args, key=key, json_out=json_out)

    def governance(self, account: LocalAccount | None = None) -> Governance:
        return Governance.from_deployment(self.chain.conn, self.deployment, account)

    def federation(self, account: LocalAccount | None = None) -> FederationContract:
        return FederationContract.from_deployment(self.chain.conn, self.deployment, account)

    def ledger(self, account: LocalAccount | None = None) -> ChainLedger:
        return ChainLedger(self.federation(account))

    def store(self) -> LocalStore:
        return LocalStore(self.state_dir / "blobs")

    def advance(self, blocks: int = 0, seconds: int = 0) -> None:
        args = [*(["--blocks", str(blocks)] if blocks else []), *(["--seconds", str(seconds)] if seconds else [])]
        result = self.gov("advance", *args)
        assert result.exit_code == 0, result.output

    def pass_proposal(self, calls: Sequence[ProposalCall], description: str) -> int:
        """Propose, vote (every founder for), queue and execute, through the client, for set-up."""
        proposer = self.governance(self.founders[0])
        proposal_id, _ = proposer.propose(calls, description)
        self.advance(blocks=PARAMS.voting_delay + 1)
        for founder in self.founders:
            self.governance(founder).vote(proposal_id, Support.FOR)
        self.advance(blocks=PARAMS.voting_period + 1)
        proposer.queue(proposal_id)
        self.advance(seconds=PARAMS.timelock_delay_s + 1)
        proposer.execute(proposal_id)
        assert proposer.state(proposal_id) == ProposalState.EXECUTED
        return proposal_id


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def _doc(result: Result) -> Any:
    return json.loads(_ok(result).stdout)


def _refused(result: Result, code: ExitCode, *fragments: str) -> str:
    """The one error line of a refused command, checked for its exit code and what it names."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    if result.stdout:  # with --json: nothing but the one error object, the line's message and the exit code
        error = json.loads(result.stdout)["error"]
        assert (error["code"], f"error: {error['message']}".splitlines()[0]) == (int(code), lines[0]), result.stdout
    return lines[0]


def _deploy_args(founders: Sequence[LocalAccount], aggregator: LocalAccount) -> list[str]:
    args = ["devnet", "deploy", "--governance", "--aggregator", aggregator.address,
            "--voting-delay", str(PARAMS.voting_delay), "--voting-period", str(PARAMS.voting_period),
            "--quorum", str(PARAMS.quorum_percent), "--timelock-delay", str(PARAMS.timelock_delay_s)]
    for founder in founders:
        args += ["--founder", founder.address]
    return args


@pytest.fixture()
def gov_env(chain_env: DevnetEnv, tmp_path: Path) -> GovEnv:
    founders = chain_env.accounts.participants[:3]
    state_dir = tmp_path / "governed"
    env = GovEnv(chain_env, state_dir, None, founders)  # type: ignore[arg-type]
    result = env.run(*_deploy_args(founders, chain_env.accounts.aggregator), key=chain_env.accounts.admin)
    assert result.exit_code == 0, result.output
    env.deployment = read_deployment(state_dir, chain_env.conn.chain_id)
    return env


def _register(env: GovEnv, account: LocalAccount, organisation: str = "Clinic Nord") -> None:
    env.federation(account).register(organisation, "healthcare", b"\x02" * 33, 500)


# --- deployment ------------------------------------------------------------------------------


def test_deploy_governance_records_the_stack_and_the_deployer_keeps_no_admin_power(gov_env: GovEnv) -> None:
    deployment, governance = gov_env.deployment, gov_env.governance()
    assert deployment.governed and deployment.governance == PARAMS
    assert deployment.admin == deployment.timelock
    fed = gov_env.federation()
    assert fed.has_role(ADMIN_ROLE, deployment.timelock)
    assert not fed.has_role(ADMIN_ROLE, gov_env.chain.accounts.admin.address)
    assert fed.has_role(AGGREGATOR_ROLE, gov_env.chain.accounts.aggregator.address)
    assert [governance.is_member(f.address) for f in gov_env.founders] == [True, True, True]
    assert governance.member_count() == 3 and governance.settings() == PARAMS


def test_deploy_governance_json_names_every_contract(chain_env: DevnetEnv, tmp_path: Path) -> None:
    founders = chain_env.accounts.participants[:2]
    env = GovEnv(chain_env, tmp_path / "s", None, founders)  # type: ignore[arg-type]
    doc = _doc(env.run(*_deploy_args(founders, chain_env.accounts.aggregator), key=chain_env.accounts.admin))
    assert {"governor", "timelock", "membership", "governance"} <= set(doc["deployment"])
    assert doc["deployment"]["governance"] == {"voting_delay": 1, "voting_period": 5, "quorum_percent": 50,
                                               "timelock_delay_s": 60}
    assert doc["founders"] == [f.address for f in founders]
    assert [tx["function"] for tx in doc["txs"]] == ["deploy FederationTimelock", "deploy Federation",
                                                    "deploy FederationGovernor"]


def test_deploy_founders_from_keystores(chain_env: DevnetEnv, tmp_path: Path) -> None:
    state_dir = tmp_path / "ks"
    env = GovEnv(chain_env, state_dir, None, ())  # type: ignore[arg-type]
    runner = CliRunner(env={"FEDCHAIN_PASSWORD": "pw"})
    addresses = []
    for name in ("st-mary", "nordbank"):
        made = runner.invoke(cli, ["account", "new", "--name", name, "--state-dir", str(state_dir), "--json"])
        assert made.exit_code == 0, made.output
        addresses.append(json.loads(made.stdout)["address"])
    doc = _doc(env.run("devnet", "deploy", "--governance", "--founders-from-keystores", "st-mary,nordbank",
                       key=chain_env.accounts.admin))
    assert doc["founders"] == addresses
    deployment = read_deployment(state_dir, chain_env.conn.chain_id)
    governance = Governance.from_deployment(chain_env.conn, deployment)
    assert [governance.is_member(a) for a in addresses] == [True, True]
    assert deployment.governance == GovernanceParams()  # the defaults the --help text names

    # a keystore signs, and an address argument may be a keystore's name
    st_mary = str(state_dir / "keystores" / "st-mary.json")
    chain_env.conn.fund_from_dev_account(addresses[0], FUNDING)
    delegated = runner.invoke(cli, ["gov", "delegate", "nordbank", "--keystore", st_mary, "--state-dir",
                                    str(state_dir), "--rpc-url", chain_env.url, "--json"])
    assert json.loads(_ok(delegated).stdout)["delegate"] == addresses[1]
    assert governance.votes_of(addresses[1]) == 2
    unknown = runner.invoke(cli, ["gov", "delegate", "no-such-site", "--keystore", st_mary, "--state-dir",
                                  str(state_dir), "--rpc-url", chain_env.url])
    assert unknown.exit_code == ExitCode.USAGE and "neither an address nor the name of a keystore" in unknown.output


def test_deploy_help_names_the_governance_defaults() -> None:
    text = " ".join(CliRunner().invoke(cli, ["devnet", "deploy", "--help"]).stdout.split())
    defaults = GovernanceParams()
    for option, value in (("--voting-delay", defaults.voting_delay), ("--voting-period", defaults.voting_period),
                          ("--quorum", defaults.quorum_percent), ("--timelock-delay", defaults.timelock_delay_s)):
        after = text.split(option, 1)[1]
        assert f"[default: {value}]" in after.split(" --", 1)[0], option


@pytest.mark.parametrize(("args", "message"), [
    (["--governance"], "--governance needs founding members"),
    (["--founder", "0x" + "11" * 20], "--founder only with --governance"),
    (["--governance", "--founder", "0x" + "11" * 20, "--admin", "0x" + "22" * 20], "exclude each other"),
    (["--governance", "--founder", "not-an-address"], "not an address"),
])
def test_deploy_bad_governance_options_are_usage_errors(chain_env: DevnetEnv, tmp_path: Path, args: list[str],
                                                        message: str) -> None:
    block = chain_env.conn.block_number()
    env = GovEnv(chain_env, tmp_path / "bad", None, ())  # type: ignore[arg-type]
    result = env.run("devnet", "deploy", *args, key=chain_env.accounts.admin)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert message in result.output
    assert chain_env.conn.block_number() == block


def test_deploy_without_governance_stays_an_admin_eoa_deployment(chain_env: DevnetEnv, tmp_path: Path) -> None:
    env = GovEnv(chain_env, tmp_path / "eoa", None, ())  # type: ignore[arg-type]
    doc = _doc(env.run("devnet", "deploy", key=chain_env.accounts.admin))
    assert doc["deployment"]["admin"] == chain_env.accounts.admin.address
    assert doc["deployment"]["governor"] is None
    refused = env.gov("list")
    _refused(refused, ExitCode.GOVERNANCE, "is not governed", chain_env.accounts.admin.address)


def test_admin_commands_on_a_governed_deployment_name_the_proposal_to_make(gov_env: GovEnv) -> None:
    newcomer = gov_env.chain.accounts.participants[5]
    _register(gov_env, newcomer)
    block = gov_env.chain.conn.block_number()
    admit = gov_env.run("admin", "admit", newcomer.address, key=gov_env.chain.accounts.admin)
    _refused(admit, ExitCode.GOVERNANCE, f"timelock {gov_env.deployment.timelock} holds the admin role",
             f"fedchain gov propose admit {newcomer.address} --description")
    remove = gov_env.run("admin", "remove", newcomer.address, "--reason", "left us", key=gov_env.chain.accounts.admin)
    _refused(remove, ExitCode.GOVERNANCE, f"fedchain gov propose remove {newcomer.address} --reason 'left us'")
    task = gov_env.run("admin", "configure-task", "--strategy", "fedprox", "--strategy-param", "mu=0.01", "--store",
                       "local", key=gov_env.chain.accounts.admin)
    _refused(task, ExitCode.GOVERNANCE,
             "fedchain gov propose configure-task --strategy fedprox --strategy-param mu=0.01 --description")
    assert gov_env.chain.conn.block_number() == block
    assert not [p for p in gov_env.state_dir.glob("blobs/**/*") if p.is_file()]  # no task document stored


# --- the life of a proposal -------------------------------------------------------------------


def test_admission_by_vote_from_the_cli(gov_env: GovEnv) -> None:
    newcomer = gov_env.chain.accounts.participants[5]
    _register(gov_env, newcomer)
    a, b, c = gov_env.founders

    proposed = _doc(gov_env.gov("propose", "admit", newcomer.address, "--description", "Admit Clinic Nord", key=a))
    assert proposed["number"] == 1
    assert proposed["proposal"]["state"] == "pending"
    assert [call["call"] for call in proposed["proposal"]["calls"]] == [f"admit({newcomer.address})"]
    assert proposed["tx"]["gas_used"] > 0

    gov_env.advance(blocks=PARAMS.voting_delay + 1)
    for founder, support in ((a, "for"), (b, "for"), (c, "against")):
        voted = _doc(gov_env.gov("vote", "1", support, "--reason", f"{support} it", key=founder))
        assert voted["support"] == support
    shown = _doc(gov_env.gov("show", "1"))["proposal"]
    assert (shown["state"], shown["votes"], shown["quorum"]) == ("active", {"for": 2, "against": 1, "abstain": 0}, 1)
    assert [(v["voter"], v["support"], v["weight"], v["reason"]) for v in shown["voters"]] == [
        (a.address, "for", 1, "for it"), (b.address, "for", 1, "for it"), (c.address, "against", 1, "against it")]

    gov_env.advance(blocks=PARAMS.voting_period + 1)
    assert _doc(gov_env.gov("show", "1"))["proposal"]["state"] == "succeeded"
    queued = _doc(gov_env.gov("queue", "1", key=c))["proposal"]
    assert queued["state"] == "queued" and queued["eta"] >= gov_env.chain.conn.block_timestamp() + 59

    gov_env.advance(seconds=PARAMS.timelock_delay_s + 1)
    executed = _doc(gov_env.gov("execute", "1", key=gov_env.chain.accounts.outsider))["proposal"]
    assert executed["state"] == "executed" and executed["executed_block"] == gov_env.chain.conn.block_number()

    assert gov_env.federation().participant(newcomer.address).status == ParticipantStatus.ACTIVE
    assert gov_env.governance().is_member(newcomer.address)
    assert gov_env.governance().votes_of(newcomer.address) == 1
    members = _doc(gov_env.gov("members"))
    assert members["count"] == 4
    assert [m["address"] for m in members["members"]] == [*(f.address for f in gov_env.founders), newcomer.address]
    assert members["members"][3]["organisation"] == "Clinic Nord"
    listed = _doc(gov_env.gov("list"))["proposals"]
    assert [(p["number"], p["proposal"]["state"]) for p in listed] == [(1, "executed")]


def test_human_output_is_short_and_names_the_next_step(gov_env: GovEnv) -> None:
    newcomer = gov_env.chain.accounts.participants[5]
    _register(gov_env, newcomer)
    proposed = gov_env.gov("propose", "admit", newcomer.address, "--description", "Admit Clinic Nord",
                           key=gov_env.founders[0], json_out=False)
    assert proposed.exit_code == 0, proposed.output
    assert proposed.stdout.splitlines()[0].startswith("proposal #1 created by ")
    assert "fedchain gov vote 1 for|against|abstain" in proposed.stdout
    shown = gov_env.gov("show", "#1", json_out=False)
    assert shown.exit_code == 0, shown.output
    assert "proposal #1: pending" in shown.stdout and f"1. admit({newcomer.address})" in shown.stdout
    listed = gov_env.gov("list", json_out=False)
    assert listed.stdout.splitlines() == ["1 proposal(s)", "#1   pending   for 0 / against 0 / abstain 0  Admit Clinic Nord"]


def test_a_proposal_is_named_by_its_number_or_its_full_id(gov_env: GovEnv) -> None:
    newcomer = gov_env.chain.accounts.participants[5]
    _register(gov_env, newcomer)
    proposed = _doc(gov_env.gov("propose", "admit", newcomer.address, "--description", "x", key=gov_env.founders[0]))
    pid = int(proposed["proposal"]["proposal_id"])
    for ref in ("1", "#1", str(pid), hex(pid)):
        assert _doc(gov_env.gov("show", ref))["proposal"]["proposal_id"] == str(pid)


def test_several_admissions_in_one_proposal(gov_env: GovEnv) -> None:
    first, second = gov_env.chain.accounts.participants[5:7]
    _register(gov_env, first, "Clinic Nord")
    _register(gov_env, second, "Bank Süd")
    doc = _doc(gov_env.gov("propose", "admit", first.address, second.address, "--description", "Two newcomers",
                           key=gov_env.founders[0]))
    assert [c["call"] for c in doc["proposal"]["calls"]] == [f"admit({first.address})", f"admit({second.address})"]


def test_configure_task_and_set_verification_by_vote(gov_env: GovEnv) -> None:
    a = gov_env.founders[0]
    doc = _doc(gov_env.gov("propose", "configure-task", "--strategy", "fedprox", "--strategy-param", "mu=0.01",
                           "--min-updates", "2", "--store", "local", "--description", "FedProx, mu 0.01", key=a))
    (call,) = doc["proposal"]["calls"]
    assert call["call"].startswith("configureTask(")
    stored = [p for p in (gov_env.state_dir / "blobs").rglob("*") if p.is_file()]
    assert len(stored) == 1  # the task document is in the store before the vote
    policy = _doc(gov_env.gov("propose", "set-verification", "--quorum", "60", "--description", "Attest rounds",
                              key=a))
    assert [c["call"] for c in policy["proposal"]["calls"]] == ["setVerificationPolicy(60)"]

    governance = gov_env.governance()
    ids = [int(doc["proposal"]["proposal_id"]), int(policy["proposal"]["proposal_id"])]
    gov_env.advance(blocks=PARAMS.voting_delay + 1)
    for founder in gov_env.founders[:2]:
        for number in ("1", "2"):
            _doc(gov_env.gov("vote", number, "for", key=founder))
    gov_env.advance(blocks=PARAMS.voting_period + 1)
    for number in ("1", "2"):
        _doc(gov_env.gov("queue", number, key=a))
    gov_env.advance(seconds=PARAMS.timelock_delay_s + 1)
    for number in ("1", "2"):
        _doc(gov_env.gov("execute", number, key=a))
    assert [governance.state(i) for i in ids] == [ProposalState.EXECUTED, ProposalState.EXECUTED]
    task = gov_env.ledger().task()
    assert task is not None and task.version == 1 and task.config_cid == call["call"].split("'")[1]
    assert gov_env.ledger().verification_policy() == 60


def test_grant_and_revoke_the_aggregator_role_by_proposal(gov_env: GovEnv) -> None:
    aggregator, successor = gov_env.chain.accounts.aggregator, gov_env.chain.accounts.participants[7]
    granted = _doc(gov_env.gov("propose", "grant-aggregator", successor.address, "--description", "New aggregator",
                               key=gov_env.founders[0]))
    assert [c["call"] for c in granted["proposal"]["calls"]] == [f"grantRole(AGGREGATOR_ROLE, {successor.address})"]
    revoked = _doc(gov_env.gov("propose", "revoke-aggregator", aggregator.address, "--description", "Old one out",
                               key=gov_env.founders[0]))
    assert [c["call"] for c in revoked["proposal"]["calls"]] == [f"revokeRole(AGGREGATOR_ROLE, {aggregator.address})"]
    block = gov_env.chain.conn.block_number()
    _refused(gov_env.gov("propose", "grant-aggregator", aggregator.address, "--description", "again",
                         key=gov_env.founders[0]), ExitCode.GOVERNANCE, "already holds it")
    _refused(gov_env.gov("propose", "revoke-aggregator", successor.address, "--description", "not yet",
                         key=gov_env.founders[0]), ExitCode.GOVERNANCE, "does not hold it")
    assert gov_env.chain.conn.block_number() == block


def test_cancel_by_the_proposer_while_pending(gov_env: GovEnv) -> None:
    newcomer = gov_env.chain.accounts.participants[5]
    _register(gov_env, newcomer)
    _doc(gov_env.gov("propose", "admit", newcomer.address, "--description", "x", key=gov_env.founders[0]))
    block = gov_env.chain.conn.block_number()
    _refused(gov_env.gov("cancel", "1", key=gov_env.founders[1]), ExitCode.GOVERNANCE, "only its proposer")
    assert gov_env.chain.conn.block_number() == block
    assert _doc(gov_env.gov("cancel", "1", key=gov_env.founders[0]))["proposal"]["state"] == "canceled"


def test_delegate_moves_the_vote(gov_env: GovEnv) -> None:
    a, b, _ = gov_env.founders
    doc = _doc(gov_env.gov("delegate", b.address, key=a))
    assert (doc["delegator"], doc["delegate"], doc["votes_of_delegate"]) == (a.address, b.address, 2)
    members = {m["address"]: m for m in _doc(gov_env.gov("members"))["members"]}
    assert (members[a.address]["votes"], members[a.address]["delegate"]) == (0, b.address)


def test_advance_until_each_step_of_a_proposal(proposal: GovEnv) -> None:
    a = proposal.founders[0]
    _refused(proposal.gov("advance", "--until-executable", "1"), ExitCode.GOVERNANCE,
             "proposal #1 is pending: it will not become executable")
    assert _doc(proposal.gov("advance", "--until-voting", "1"))["mined"] >= 1
    _doc(proposal.gov("vote", "1", "for", key=a))
    again = _doc(proposal.gov("advance", "--until-voting", "1"))
    assert again["mined"] == 0 and "takes votes already" in again["next_step"]
    _doc(proposal.gov("vote", "1", "for", key=proposal.founders[1]))
    _doc(proposal.gov("advance", "--until-closed", "1"))
    _doc(proposal.gov("queue", "1", key=a))
    stepped = _doc(proposal.gov("advance", "--until-executable", "1"))
    assert stepped["next_step"] == "proposal #1 is executable: fedchain gov execute 1"
    assert _doc(proposal.gov("execute", "1", key=a))["proposal"]["state"] == "executed"
    _refused(proposal.gov("advance", "--until-voting", "1"), ExitCode.GOVERNANCE, "it will not take votes")
    both = proposal.gov("advance", "--until-closed", "1", "--blocks", "2")
    assert both.exit_code == ExitCode.USAGE and "give one of" in both.output


def test_advance_mines_blocks_and_moves_the_clock(gov_env: GovEnv) -> None:
    block, stamp = gov_env.chain.conn.block_number(), gov_env.chain.conn.block_timestamp()
    doc = _doc(gov_env.gov("advance", "--blocks", "3", "--seconds", "100"))
    assert doc["block_number"] == block + 3 and doc["mined"] == 3
    assert doc["timestamp"] >= stamp + 100
    bare = gov_env.gov("advance")
    assert bare.exit_code == ExitCode.USAGE and "--blocks N" in bare.output


# --- refusals: one line, the governance exit code, nothing changed --------------------------------


@pytest.fixture()
def proposal(gov_env: GovEnv) -> GovEnv:
    """gov_env with proposal #1 (admit a registered newcomer) just made: pending."""
    newcomer = gov_env.chain.accounts.participants[5]
    _register(gov_env, newcomer)
    _doc(gov_env.gov("propose", "admit", newcomer.address, "--description", "Admit Clinic Nord",
                     key=gov_env.founders[0]))
    return gov_env


def _unchanged(env: GovEnv, result: Result, code: ExitCode, *fragments: str) -> str:
    block = env.chain.conn.block_number()
    line = _refused(result, code, *fragments)
    assert env.chain.conn.block_number() == block
    return line


def test_vote_on_an_unknown_proposal(proposal: GovEnv) -> None:
    block = proposal.chain.conn.block_number()
    _refused(proposal.gov("vote", "7", "for", key=proposal.founders[0]), ExitCode.GOVERNANCE,
             "no proposal 7", "1 proposal(s)")
    _refused(proposal.gov("vote", str(2**200), "for", key=proposal.founders[0]), ExitCode.GOVERNANCE, "no proposal")
    _refused(proposal.gov("vote", "first", "for", key=proposal.founders[0]), ExitCode.GOVERNANCE, "names no proposal")
    assert proposal.chain.conn.block_number() == block


def test_vote_on_a_pending_proposal(proposal: GovEnv) -> None:
    block = proposal.chain.conn.block_number()
    line = _refused(proposal.gov("vote", "1", "for", key=proposal.founders[0]), ExitCode.GOVERNANCE,
                    "cannot vote on proposal #1: it is pending", "voting opens at block")
    assert proposal.chain.conn.block_number() == block
    assert proposal.governance().proposals()[0].voters == ()
    _doc(proposal.run(*_advice(line)))  # what the line says to do is enough
    assert _doc(proposal.gov("vote", "1", "for", key=proposal.founders[0]))["proposal"]["votes"]["for"] == 1


def _advice(line: str) -> list[str]:
    """The arguments of the line's `(on a devnet: fedchain gov advance ...)`."""
    return ["gov", "advance", *line.split("fedchain gov advance ")[1].rstrip(")").split()]


def test_vote_on_a_closed_proposal(proposal: GovEnv) -> None:
    proposal.advance(blocks=PARAMS.voting_delay + PARAMS.voting_period + 2)
    block = proposal.chain.conn.block_number()
    _refused(proposal.gov("vote", "1", "for", key=proposal.founders[0]), ExitCode.GOVERNANCE,
             "cannot vote on proposal #1: it is defeated", "did not pass")
    assert proposal.chain.conn.block_number() == block


def test_double_vote(proposal: GovEnv) -> None:
    proposal.advance(blocks=PARAMS.voting_delay + 1)
    _doc(proposal.gov("vote", "1", "for", key=proposal.founders[0]))
    block = proposal.chain.conn.block_number()
    _refused(proposal.gov("vote", "1", "against", key=proposal.founders[0]), ExitCode.GOVERNANCE,
             f"{proposal.founders[0].address} already voted on proposal #1")
    assert proposal.chain.conn.block_number() == block
    assert proposal.governance().proposals()[0].votes_against == 0


def test_a_non_member_votes(proposal: GovEnv) -> None:
    proposal.advance(blocks=PARAMS.voting_delay + 1)
    outsider = proposal.chain.accounts.outsider
    _unchanged(proposal, proposal.gov("vote", "1", "for", key=outsider), ExitCode.GOVERNANCE,
               f"{outsider.address} is not a member with a vote")


def test_a_non_member_proposing_a_task_stores_nothing(gov_env: GovEnv) -> None:
    outsider = gov_env.chain.accounts.outsider
    _unchanged(gov_env, gov_env.gov("propose", "configure-task", "--store", "local", "--description", "x",
                                    key=outsider), ExitCode.GOVERNANCE, f"{outsider.address} is not a member")
    assert not [p for p in gov_env.state_dir.glob("blobs/**/*") if p.is_file()]


def test_a_non_member_proposes(gov_env: GovEnv) -> None:
    newcomer = gov_env.chain.accounts.participants[5]
    _register(gov_env, newcomer)
    outsider = gov_env.chain.accounts.outsider
    _unchanged(gov_env, gov_env.gov("propose", "admit", newcomer.address, "--description", "x", key=outsider),
               ExitCode.GOVERNANCE, f"{outsider.address} is not a member with a vote")
    assert gov_env.governance().proposals() == []


def test_queue_before_the_vote_ended_and_execute_before_the_delay(proposal: GovEnv) -> None:
    proposal.advance(blocks=PARAMS.voting_delay + 1)
    for founder in proposal.founders[:2]:
        _doc(proposal.gov("vote", "1", "for", key=founder))
    line = _unchanged(proposal, proposal.gov("queue", "1", key=proposal.founders[0]), ExitCode.GOVERNANCE,
                      "cannot queue proposal #1: it is active", "voting closes after block")
    _doc(proposal.run(*_advice(line)))
    _doc(proposal.gov("queue", "1", key=proposal.founders[0]))
    line = _unchanged(proposal, proposal.gov("execute", "1", key=proposal.founders[0]), ExitCode.GOVERNANCE,
                      "cannot execute proposal #1: it is queued", "timelock delay ends at")
    assert proposal.federation().participant(proposal.chain.accounts.participants[5].address).status == \
        ParticipantStatus.PENDING
    _doc(proposal.run(*_advice(line)))
    _doc(proposal.gov("execute", "1", key=proposal.founders[0]))
    assert proposal.federation().participant(proposal.chain.accounts.participants[5].address).status == \
        ParticipantStatus.ACTIVE


def test_execute_twice(proposal: GovEnv) -> None:
    proposal.advance(blocks=PARAMS.voting_delay + 1)
    for founder in proposal.founders[:2]:
        _doc(proposal.gov("vote", "1", "for", key=founder))
    proposal.advance(blocks=PARAMS.voting_period + 1)
    _doc(proposal.gov("queue", "1", key=proposal.founders[0]))
    proposal.advance(seconds=PARAMS.timelock_delay_s + 1)
    executed = _doc(proposal.gov("execute", "1", key=proposal.founders[0]))["proposal"]
    _unchanged(proposal, proposal.gov("execute", "1", key=proposal.founders[0]), ExitCode.GOVERNANCE,
               "cannot execute proposal #1: it is executed", f"executed in block {executed['executed_block']}")


def test_proposals_that_would_fail_are_refused_before_sending(gov_env: GovEnv) -> None:
    stranger = gov_env.chain.accounts.participants[6]
    a = gov_env.founders[0]
    _unchanged(gov_env, gov_env.gov("propose", "admit", stranger.address, "--description", "x", key=a),
               ExitCode.GOVERNANCE, f"cannot propose to admit {stranger.address}: its registration is none",
               "fedchain participant register")
    _unchanged(gov_env, gov_env.gov("propose", "remove", stranger.address, "--reason", "r", "--description", "x",
                                    key=a), ExitCode.GOVERNANCE, "its status is none")
    _unchanged(gov_env, gov_env.gov("propose", "dispute", "1", "--reason", "r", "--description", "x", key=a),
               ExitCode.GOVERNANCE, "cannot propose to dispute round 1: the latest round is 0")
    bad = gov_env.gov("propose", "admit", "0x123", "--description", "x", key=a)
    assert bad.exit_code == ExitCode.USAGE and "not an address" in bad.output
    assert gov_env.governance().proposals() == []


def test_the_same_proposal_twice_is_refused(proposal: GovEnv) -> None:
    newcomer = proposal.chain.accounts.participants[5]
    _unchanged(proposal, proposal.gov("propose", "admit", newcomer.address, "--description", "Admit Clinic Nord",
                                      key=proposal.founders[1]), ExitCode.GOVERNANCE, "exists already")


# --- disputes ---------------------------------------------------------------------------------


@dataclass
class FinalizedRound:
    env: GovEnv
    round_id: RoundId
    trainers: tuple[LocalAccount, ...]
    inclusions: dict[str, Inclusion]
    model: Digest


@pytest.fixture()
def finalized(gov_env: GovEnv) -> FinalizedRound:
    """A governed federation whose task and two participants were voted in, with round 1 finalised."""
    trainers = gov_env.chain.accounts.participants[3:5]
    for t in trainers:
        _register(gov_env, t, f"org-{t.address[:8]}")
    fed = gov_env.federation()
    gov_env.pass_proposal([configure_task_call(fed, *TASK_DIGESTS, Cid(TASK_CID), 86_400),
                           *(admit_call(fed, t.address) for t in trainers)], "Task and first participants")
    aggregator = gov_env.ledger(gov_env.chain.accounts.aggregator)
    rid = aggregator.open_round(BASE, Cid("bafkreibasemodel"), 600, 2).round_id
    for i, t in enumerate(trainers):
        gov_env.ledger(t).commit_update(rid, Digest(keccak(b"u%d" % i)), Cid(f"bafkreiupdate{i}"), 10 + i,
                                        Digest(keccak(b"m%d" % i)))
    commitments = aggregator.commitments(rid)
    tree = MerkleTree.build([leaf_of(c) for c in commitments])
    model = Digest(keccak(b"global-1"))
    aggregator.finalize_round(rid, model, Cid("bafkreimodel"), tree.root, BASE, BASE, Cid("bafkreievidence"),
                              len(commitments))
    inclusions = {c.participant: Inclusion(c.update_digest, c.cid, c.num_samples, c.metadata_digest,
                                           tuple(tree.proof(leaf_of(c)))) for c in commitments}
    return FinalizedRound(gov_env, rid, tuple(trainers), inclusions, model)


def _findings(rnd: FinalizedRound, round_id: int | None = None) -> bytes:
    aggregator = rnd.env.chain.accounts.aggregator.address
    return AuditFindings(
        round=int(rnd.round_id) if round_id is None else round_id, published_digest=digest_hex(rnd.model),
        replayed_digest=digest_hex(keccak(b"what the replay computed")), accused=Party.AGGREGATOR,
        accused_address=aggregator,
        findings=(AuditFinding.of(int(rnd.round_id), None, FindingKind.MODEL_MISMATCH, "replayed model differs",
                                  address=aggregator),),
        verified_by=rnd.trainers[0].address,
    ).to_bytes()


def _attest_negative(rnd: FinalizedRound, blob: bytes, digest: Digest | None = None) -> Cid:
    cid = rnd.env.store().put(blob)
    attester = rnd.trainers[0]
    rnd.env.ledger(attester).attest_round(rnd.round_id, Digest(keccak(b"what the replay computed")), False,
                                          digest if digest is not None else sha256_digest(blob), cid,
                                          rnd.inclusions[attester.address])
    return cid


def test_dispute_from_a_negative_attestation_revokes_and_replaces_the_aggregator(finalized: FinalizedRound) -> None:
    env, rid = finalized.env, finalized.round_id
    blob = _findings(finalized)
    cid = _attest_negative(finalized, blob)
    aggregator, successor = env.chain.accounts.aggregator.address, env.chain.accounts.participants[7].address
    a, b, _ = env.founders

    proposed = env.gov("propose", "dispute", str(rid), "--revoke-aggregator", "--new-aggregator", successor,
                       "--reason", "the published model is not the aggregate", "--description",
                       "Dispute round 1", "--store", "local", key=a)
    doc = _doc(proposed)
    assert f"fetching findings blob {cid}" in proposed.stderr
    digest = digest_hex(sha256_digest(blob))
    assert [c["call"] for c in doc["proposal"]["calls"]] == [
        f"disputeRound(1, {aggregator}, {digest}, '{cid}', 'the published model is not the aggregate')",
        f"revokeRole(AGGREGATOR_ROLE, {aggregator})",
        f"grantRole(AGGREGATOR_ROLE, {successor})",
    ]
    number = str(doc["number"])
    env.advance(blocks=PARAMS.voting_delay + 1)
    for founder in (a, b):
        _doc(env.gov("vote", number, "for", key=founder))
    env.advance(blocks=PARAMS.voting_period + 1)
    _doc(env.gov("queue", number, key=a))
    env.advance(seconds=PARAMS.timelock_delay_s + 1)
    _doc(env.gov("execute", number, key=a))

    ledger = env.ledger()
    assert ledger.round(rid).status == RoundStatus.DISPUTED
    assert ledger.current_model_digest() == BASE  # the federation falls back to the last undisputed model
    (dispute,) = ledger.events.disputes(rid)
    assert (dispute.accused, bytes(dispute.findings_digest), dispute.findings_cid) == (aggregator,
                                                                                      sha256_digest(blob), cid)
    fed = env.federation()
    assert not fed.has_role(AGGREGATOR_ROLE, aggregator) and fed.has_role(AGGREGATOR_ROLE, successor)


def test_dispute_with_a_missing_findings_blob(finalized: FinalizedRound) -> None:
    env = finalized.env
    never_stored = LocalStore(env.state_dir / "elsewhere").put(_findings(finalized))
    _unchanged(env, env.gov("propose", "dispute", "1", "--findings", never_stored, "--reason", "r",
                            "--description", "x", "--store", "local", key=env.founders[0]),
               ExitCode.BLOB_NOT_FOUND, never_stored)
    assert len(env.governance().proposals()) == 1  # the set-up's only


def test_dispute_with_a_tampered_findings_blob(finalized: FinalizedRound) -> None:
    env = finalized.env
    attested = _findings(finalized)
    # the attester recorded the digest of one blob, the CID it cites holds another
    cid = _attest_negative(finalized, attested.replace(b"replayed model differs", b"replayed model is fine"),
                           digest=sha256_digest(attested))
    line = _unchanged(env, env.gov("propose", "dispute", "1", "--reason", "r", "--description", "x", "--store",
                                   "local", key=env.founders[0]),
                      ExitCode.INTEGRITY, f"findings blob {cid} has digest", "the blob is not the one attested")
    assert digest_hex(sha256_digest(attested)) in line
    assert len(env.governance().proposals()) == 1  # the set-up's only


def test_dispute_with_a_findings_digest_that_does_not_match(finalized: FinalizedRound) -> None:
    env = finalized.env
    cid = env.store().put(_findings(finalized))
    wrong = digest_hex(keccak(b"another blob"))
    _unchanged(env, env.gov("propose", "dispute", "1", "--findings", cid, "--findings-digest", wrong, "--reason", "r",
                            "--description", "x", "--store", "local", key=env.founders[0]),
               ExitCode.INTEGRITY, f"not the {wrong} given")


@pytest.mark.parametrize(("blob", "code", "message"), [
    (b'{"not":"findings"}', ExitCode.BLOB_FORMAT, "not a findings blob"),
    (None, ExitCode.GOVERNANCE, "is about round 2, not round 1"),
])
def test_dispute_with_a_blob_that_is_not_the_rounds_findings(finalized: FinalizedRound, blob: bytes | None,
                                                             code: ExitCode, message: str) -> None:
    env = finalized.env
    cid = env.store().put(blob if blob is not None else _findings(finalized, round_id=2))
    _unchanged(env, env.gov("propose", "dispute", "1", "--findings", cid, "--reason", "r", "--description", "x",
                            "--store", "local", key=env.founders[0]), code, message)


def test_dispute_without_a_negative_attestation_needs_the_findings_named(finalized: FinalizedRound) -> None:
    env = finalized.env
    _unchanged(env, env.gov("propose", "dispute", "1", "--reason", "r", "--description", "x", "--store", "local",
                            key=env.founders[0]),
               ExitCode.GOVERNANCE, "round 1 has no negative attestation", "--findings CID")
    cid = env.store().put(_findings(finalized))
    doc = _doc(env.gov("propose", "dispute", "1", "--findings", cid, "--accused", env.founders[2].address,
                       "--reason", "r", "--description", "x", "--store", "local", key=env.founders[0]))
    assert doc["proposal"]["calls"][0]["call"].startswith(f"disputeRound(1, {env.founders[2].address}, ")


def test_dispute_of_a_round_that_is_not_finalized(finalized: FinalizedRound) -> None:
    env = finalized.env
    rid = env.ledger(env.chain.accounts.aggregator).open_round(finalized.model, Cid("bafkreimodel"), 600, 1).round_id
    _unchanged(env, env.gov("propose", "dispute", str(rid), "--findings", "bafkreibasemodel", "--reason", "r",
                            "--description", "x", "--store", "local", key=env.founders[0]),
               ExitCode.GOVERNANCE, f"cannot propose to dispute round {rid}: it is open, not finalized")


def test_a_private_task_is_configured_by_vote(gov_env: GovEnv) -> None:
    a = gov_env.founders[0]
    doc = _doc(gov_env.gov("propose", "configure-task", "--dp", "dpsgd", "--epsilon-budget", "2", "--dp-sample-rate",
                           "0.1", "--noise-multiplier", "1.2", "--min-updates", "2", "--store", "local",
                           "--description", "DP-SGD, epsilon 2", key=a))
    (call,) = doc["proposal"]["calls"]
    assert call["call"].startswith("configurePrivateTask(") and call["call"].endswith(", 2000000)")
    gov_env.advance(blocks=PARAMS.voting_delay + 1)
    for founder in gov_env.founders[:2]:
        _doc(gov_env.gov("vote", "1", "for", key=founder))
    gov_env.advance(blocks=PARAMS.voting_period + 1)
    _doc(gov_env.gov("queue", "1", key=a))
    gov_env.advance(seconds=PARAMS.timelock_delay_s + 1)
    _doc(gov_env.gov("execute", "1", key=a))
    task = gov_env.ledger().task()
    assert task is not None and task.epsilon_budget == 2_000_000 and any(task.privacy_policy_digest)


def test_a_signed_round_task_is_proposed_with_its_inbox_and_escape_window(gov_env: GovEnv) -> None:
    from fedchain.protocol.task import TaskDocument

    doc = _doc(gov_env.gov("propose", "configure-task", "--signed-commits", "--inbox", "http://127.0.0.1:8547",
                           "--escape-duration", "45", "--store", "local", "--description", "signed rounds",
                           key=gov_env.founders[0]))
    (call,) = doc["proposal"]["calls"]
    assert call["call"].startswith("configureTask(")
    (stored,) = [p for p in (gov_env.state_dir / "blobs").rglob("*") if p.is_file()]
    task = TaskDocument.from_bytes(stored.read_bytes())  # what the members vote on
    assert task.signed_commits is not None
    assert (task.signed_commits.inbox, task.signed_commits.escape_duration) == ("http://127.0.0.1:8547", 45)
    _unchanged(gov_env, gov_env.gov("propose", "configure-task", "--signed-commits", "--store", "local",
                                    "--description", "x", key=gov_env.founders[0]),
               ExitCode.CONFIG, "--signed-commits needs --inbox")

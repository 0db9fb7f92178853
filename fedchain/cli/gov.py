"""``fedchain gov``: the consortium governs its federation through proposals.

On a governed deployment (``fedchain devnet deploy --governance``) a timelock holds the
Federation's admin role, a Governor queues into it what the members voted for, and every member
organisation holds one non-transferable membership token: one vote. A member proposes a batch of
Federation calls (``gov propose ...``), the members vote while the proposal is active, anyone
queues a proposal that succeeded and executes it once the timelock delay is over.

A proposal is named by its number in ``gov list`` (1, 2, ...) or by its full id (decimal or
``0x`` hex); an account by its address or by the name of a keystore in the state directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fedchain.cli.admin import rewards_config, store_validation, task_document, task_document_options
from fedchain.cli.incentives import check_slash_finding
from fedchain.cli.options import (
    address_or_keystore,
    emit,
    ipfs_api_option,
    json_option,
    keystore_option,
    privacy_options,
    privacy_request,
    role_signer,
    rpc_url_option,
    secagg_config,
    secagg_options,
    settings_from,
    signed_commit_options,
    signed_commits_config,
    state_dir_option,
    store_option,
    to_jsonable,
)
from fedchain.config import Settings
from fedchain.errors import (
    BlobFormatError,
    DepositError,
    GovernanceError,
    IntegrityError,
    NoIncentivesError,
    NotAMemberError,
    NotGovernedError,
    ProposalStateError,
)
from fedchain.types import Address, Cid, Digest, RoundId, digest_hex, parse_digest

if TYPE_CHECKING:  # web3 is imported only when a command runs
    from fedchain.audit.findings import AuditFindings
    from fedchain.chain.connection import Connection
    from fedchain.chain.federation import Deployment, FederationContract
    from fedchain.chain.governance import Governance, Proposal, ProposalCall
    from fedchain.chain.ledger import ChainLedger
    from fedchain.chain.signer import Signer
    from fedchain.ports import TxReport

F = TypeVar("F", bound=Callable[..., Any])


def gov_options(f: F) -> F:
    """Where the governed deployment is: ``--state-dir``, ``--rpc-url``, ``--chain-id``."""
    f = click.option("--chain-id", type=int, default=None, help="Expected chain id; refuse another chain.")(f)
    return rpc_url_option(state_dir_option(f))


def _settings(state_dir: Path | None, rpc_url: str | None, chain_id: int | None, *, keystore: Path | None = None,
              store: str | None = None, ipfs_api: str | None = None) -> Settings:
    return settings_from(state_dir=state_dir, rpc_url=rpc_url, chain_id=chain_id, keystore=keystore, store=store,
                         ipfs_api=ipfs_api)


@dataclass(frozen=True)
class GovSession:
    """One governed deployment as a command sees it: the connection, the record, the governance
    client (signing as ``account``) and a read-only ledger of its Federation."""

    conn: Connection
    deployment: Deployment
    governance: Governance
    ledger: ChainLedger
    account: Signer | None

    @property
    def federation(self) -> FederationContract:
        """The Federation contract (read-only: the proposal builders only encode calls to it)."""
        return self.ledger.contract


def open_session(settings: Settings, *, signed: bool) -> GovSession:
    """Connect to the governed deployment recorded under the state directory; GovernanceError when
    the recorded deployment has no governance (an admin EOA holds its admin role)."""
    from fedchain.chain.connection import Connection
    from fedchain.chain.federation import FederationContract, load_deployment
    from fedchain.chain.governance import Governance
    from fedchain.chain.ledger import ChainLedger
    from fedchain.sim.wiring import rpc_url_of

    conn = Connection(rpc_url_of(settings), expected_chain_id=settings.chain_id, timeout_s=settings.http_timeout_s,
                      tx_timeout_s=settings.tx_timeout_s)
    deployment = load_deployment(settings.state_dir, conn)
    if not deployment.governed:
        raise NotGovernedError(
            f"the Federation at {deployment.address} on chain {deployment.chain_id} is not governed: the account "
            f"{deployment.admin} holds its admin role (use `fedchain admin ...`, or deploy with "
            "`fedchain devnet deploy --governance`)"
        )
    account = role_signer(settings) if signed else None
    governance = Governance.from_deployment(conn, deployment, account)
    ledger = ChainLedger(FederationContract.from_deployment(conn, deployment, None))
    return GovSession(conn, deployment, governance, ledger, account)


# --- naming proposals -----------------------------------------------------------------------


def resolve(session: GovSession, ref: str) -> tuple[int, Proposal]:
    """(number, proposal) of ``ref``: a number from ``gov list`` (``3`` or ``#3``) or a full proposal id."""
    from fedchain.chain.governance import ProposalCreated

    ids = [e.proposal_id for e in session.governance.history() if isinstance(e, ProposalCreated)]
    text = ref.strip().removeprefix("#")
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise GovernanceError(
            f"{ref!r} names no proposal: give its number in `fedchain gov list` or its full id"
        ) from None
    if not text.lower().startswith("0x") and 1 <= value <= len(ids):
        return value, session.governance.proposal(ids[value - 1])
    if value in ids:
        return ids.index(value) + 1, session.governance.proposal(value)
    count = f"{len(ids)} proposal(s): #1..#{len(ids)}" if ids else "no proposals yet"
    raise GovernanceError(f"no proposal {ref} on the governor {session.deployment.governor} ({count})")


@contextmanager
def named(session: GovSession, number: int, proposal_id: int, *, hint: bool = True) -> Iterator[None]:
    """Governance errors raised inside name the proposal by its number (``#3``) instead of its
    78-digit id; a refusal for the proposal's state says what comes next (when the vote opens or
    closes, how it ended)."""
    try:
        yield
    except GovernanceError as err:
        text = str(err).replace(str(int(proposal_id)), f"#{number}")
        if hint and isinstance(err, ProposalStateError):
            step = _next_step(session, number, session.governance.proposal(int(proposal_id)))
            text = f"{text}; {step}" if step else text
        err.args = (text,)
        raise


def _next_step(session: GovSession, number: int, proposal: Proposal) -> str:
    """What a proposal waits for, or how it ended, in a few words."""
    from fedchain.chain.governance import ProposalState

    now = session.conn.block_number()
    # the state a transaction sent now meets: the one of the next block
    state = session.governance.state(int(proposal.proposal_id), pending=True)
    if state == ProposalState.PENDING:
        return (f"voting opens at block {proposal.snapshot_block + 1}, now block {now} "
                f"(on a devnet: fedchain gov advance --until-voting {number})")
    if state == ProposalState.ACTIVE:
        return (f"voting closes after block {proposal.deadline_block}, now block {now} "
                f"(on a devnet: fedchain gov advance --until-closed {number})")
    tally = (f"for {proposal.votes_for}, against {proposal.votes_against}, abstain {proposal.votes_abstain}, "
             f"quorum {proposal.quorum}")
    if state == ProposalState.DEFEATED:
        return f"the vote closed at block {proposal.deadline_block} and it did not pass ({tally})"
    if state == ProposalState.SUCCEEDED:
        return f"the vote closed at block {proposal.deadline_block} and it passed ({tally}): fedchain gov queue {number}"
    if state == ProposalState.QUEUED:
        return f"on a devnet: fedchain gov advance --until-executable {number}"
    if state == ProposalState.EXECUTED:
        return f"it was executed in block {proposal.executed_block} (tx {proposal.executed_tx})"
    return ""


def _state(proposal: Proposal) -> str:
    return proposal.state.label


def calls_abi(session: GovSession) -> list[dict[str, Any]]:
    """The ABI a proposal's calls are decoded with: the Federation's, and with incentives also the
    incentives contract's and the reward token's."""
    abi = list(session.federation.abi)
    if session.deployment.incentives is not None:
        from fedchain.chain.compiler import load_artifact

        names = {item.get("name") for item in abi if item.get("type") == "function"}
        for contract in ("FederationIncentives", "FederationRewardToken"):
            extra = [item for item in load_artifact(contract)["abi"]
                     if item.get("type") == "function" and item.get("name") not in names]
            names |= {item.get("name") for item in extra}
            abi += extra
    return abi


def describe_calls(session: GovSession, calls: Sequence[ProposalCall]) -> list[str]:
    """Each call decoded against the deployment's ABIs (:func:`calls_abi`), e.g. ``admit(0xabc...)``."""
    abi = calls_abi(session)
    return [call.describe(abi) for call in calls]


def proposal_line(number: int, proposal: Proposal) -> str:
    """One line about a proposal: number, state, votes and the description's first line."""
    title = proposal.description.strip().splitlines()[0] if proposal.description.strip() else "(no description)"
    return (f"#{number:<3} {_state(proposal):9} for {proposal.votes_for} / against {proposal.votes_against} / "
            f"abstain {proposal.votes_abstain}  {title}")


def proposal_text(session: GovSession, number: int, proposal: Proposal) -> str:
    """The human form of ``gov show``."""
    now = session.conn.block_number()
    turnout = proposal.votes_for + proposal.votes_abstain
    quorum = "met" if turnout >= proposal.quorum else f"not met: {turnout} of {proposal.quorum}"
    lines = [
        f"proposal #{number}: {_state(proposal)}  (id {int(proposal.proposal_id)})",
        f"  description: {proposal.description}",
        f"  proposer: {proposal.proposer} (block {proposal.created_block}, tx {proposal.created_tx})",
        f"  votes: for {proposal.votes_for}, against {proposal.votes_against}, abstain {proposal.votes_abstain}; "
        f"quorum {proposal.quorum} ({quorum})",
        f"  voting: from block {proposal.snapshot_block + 1} through block {proposal.deadline_block} (now block {now})",
        f"  eta: {proposal.eta if proposal.eta else '-'}"
        + (f" (chain time now {session.conn.block_timestamp()})" if proposal.eta else ""),
    ]
    if proposal.executed_block is not None:
        lines.append(f"  executed: block {proposal.executed_block} (tx {proposal.executed_tx})")
    lines.append(f"  calls ({len(proposal.calls)}):")
    lines += [f"    {i}. {text}" for i, text in enumerate(describe_calls(session, proposal.calls), start=1)]
    if proposal.voters:
        lines.append("  voters:")
        for v in proposal.voters:
            reason = f"  \"{v.reason}\"" if v.reason else ""
            lines.append(f"    {v.voter} {v.support.name.lower():7} weight {v.weight} (block {v.block_number}){reason}")
    return "\n".join(lines)


def proposal_json(session: GovSession, number: int, proposal: Proposal, report: TxReport | None = None) -> dict[str, Any]:
    """The JSON form of a proposal, with its number and the decoded calls (and the transaction)."""
    doc: dict[str, Any] = {"number": number, "proposal": proposal.to_json(calls_abi(session))}
    if report is not None:
        doc["tx"] = to_jsonable(report)
    return doc


def _tx(report: TxReport) -> str:
    return f"tx {report.tx_hash}, gas {report.gas_used}"


def _note(text: str) -> None:
    """A progress note on stderr (never on stdout: ``--json`` prints one document there)."""
    click.echo(text, err=True)


# --- the group ------------------------------------------------------------------------------


@click.group()
def gov() -> None:
    """Propose, vote on, queue and execute the consortium's decisions (a governed deployment).

    ID is a proposal's number in `gov list` (or its full id); an ADDRESS may also be the name of a
    keystore in <state-dir>/keystores. A refused action (an unknown proposal, one not in the state
    the action needs, a second vote, a proposer or voter without a vote) prints one line and exits
    29 with nothing sent; a dispute's findings blob missing from the store exits 34, one that does
    not match its digest 32, one that is not a findings blob 33."""


@gov.group()
def propose() -> None:
    """Propose Federation calls to the members (a member's account signs; one vote needed)."""


def _signed_options(f: F) -> F:
    f = json_option(f)
    f = gov_options(f)
    return keystore_option(f)


def _description_option(f: F) -> F:
    return click.option("--description", required=True,
                        help="What the proposal does and why; recorded on chain (and part of its id).")(f)


def _submit(session: GovSession, calls: Sequence[ProposalCall], description: str, as_json: bool) -> None:
    if not description.strip():
        raise click.BadParameter("must not be empty", param_hint="'--description'")
    proposal_id, report = session.governance.propose(calls, description)
    number, proposal = resolve(session, str(proposal_id))
    emit(as_json, proposal_json(session, number, proposal, report), lambda: "\n".join([
        f"proposal #{number} created by {proposal.proposer} (id {int(proposal_id)}; {_tx(report)})",
        *[f"  {i}. {text}" for i, text in enumerate(describe_calls(session, proposal.calls), start=1)],
        f"  voting from block {proposal.snapshot_block + 1} through block {proposal.deadline_block}; "
        f"vote with `fedchain gov vote {number} for|against|abstain`",
    ]))


def _participant_status(session: GovSession, address: Address) -> str:
    return session.federation.participant(address).status.name.lower()


def _checked_address(value: str, what: str, state_dir: Path | None) -> Address:
    """``value`` as a checksummed address: an address, or the name of a keystore in the state
    directory (``fedchain account new --name NAME``)."""
    return address_or_keystore(value, what, state_dir)


@propose.command("admit")
@click.argument("participants", nargs=-1, required=True, metavar="ADDRESS...")
@_description_option
@_signed_options
def propose_admit(participants: tuple[str, ...], description: str, keystore: Path | None, state_dir: Path | None,
                  rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Admit registered (pending) participants; each gets a membership token, so a vote."""
    from fedchain.chain.governance import admit_call

    addresses = [_checked_address(p, "ADDRESS", state_dir) for p in participants]
    session = open_session(_settings(state_dir, rpc_url, chain_id, keystore=keystore), signed=True)
    for address in addresses:
        status = _participant_status(session, address)
        if status != "pending":
            raise GovernanceError(
                f"cannot propose to admit {address}: its registration is {status}, not pending"
                + (" (it must run `fedchain participant register` first)" if status == "none" else "")
            )
    _submit(session, [admit_call(session.federation, a) for a in addresses], description, as_json)


@propose.command("remove")
@click.argument("participant", metavar="ADDRESS")
@click.option("--reason", required=True, help="Why the participant is removed; recorded on chain.")
@_description_option
@_signed_options
def propose_remove(participant: str, reason: str, description: str, keystore: Path | None, state_dir: Path | None,
                   rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Remove a participant; its membership token is burned, so it loses its vote."""
    from fedchain.chain.governance import remove_call

    address = _checked_address(participant, "ADDRESS", state_dir)
    session = open_session(_settings(state_dir, rpc_url, chain_id, keystore=keystore), signed=True)
    status = _participant_status(session, address)
    if status not in ("pending", "active"):
        raise GovernanceError(f"cannot propose to remove {address}: its status is {status}, not pending or active")
    _submit(session, [remove_call(session.federation, address, reason)], description, as_json)


@propose.command("configure-task")
@task_document_options
@privacy_options
@secagg_options
@signed_commit_options
@click.option("--dp-rounds", type=click.IntRange(1), default=None,
              help="With --dp and no --noise-multiplier: calibrate the noise so that this many rounds fit the budget.")
@_description_option
@store_option
@ipfs_api_option
@_signed_options
def propose_configure_task(dataset: str, arch: str | None, strategy: str, strategy_params: tuple[str, ...],
                           robust: str | None, local_epochs: int, batch_size: int, lr: float, seed: int,
                           min_updates: int, commit_duration: int, max_commit_duration: int, reveal_duration: int,
                           rewards_rule: str | None, reward_params: tuple[str, ...], validation: Path | None,
                           dp: str | None, epsilon_budget: float | None, dp_delta: float, dp_clip: float,
                           noise_multiplier: float | None, dp_sample_rate: float | None, dp_accountant: str,
                           dp_min_clients: int | None, dp_rounds: int | None, secagg: bool, secagg_clip: float,
                           secagg_degree: int | None, secagg_max_summands: int, secagg_phase: int,
                           signed_commits: bool, inbox: str | None, escape_duration: int,
                           description: str, store: str | None,
                           ipfs_api: str | None, keystore: Path | None,
                           state_dir: Path | None, rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Configure the next task version (the options of `fedchain admin configure-task`): the task
    document is stored now, its digests and CID are what the members vote on."""
    from dataclasses import replace

    from fedchain.protocol.task import check_private_model
    from fedchain.sim.federation import task_call
    from fedchain.sim.wiring import open_blob_store

    rewards_config(rewards_rule, reward_params, None if validation is None else (Digest(bytes(32)), Cid("x")))
    privacy = privacy_request(dp, epsilon_budget, dp_delta, dp_clip, noise_multiplier, dp_sample_rate, dp_accountant,
                              dp_min_clients)
    doc = task_document(dataset, arch, strategy, strategy_params, robust, local_epochs, batch_size, lr, seed,
                        min_updates, commit_duration, max_commit_duration, reveal_duration, privacy=privacy,
                        dp_rounds=dp_rounds,
                        secagg=secagg_config(secagg, secagg_clip, secagg_degree, secagg_max_summands, secagg_phase))
    signed = signed_commits_config(signed_commits, inbox, escape_duration)
    if signed is not None:
        doc = replace(doc, signed_commits=signed)
    check_private_model(doc)
    settings = _settings(state_dir, rpc_url, chain_id, keystore=keystore, store=store, ipfs_api=ipfs_api)
    session = open_session(settings, signed=True)
    assert session.account is not None
    votes = session.governance.votes_of(session.account.address)
    if votes == 0:  # the Governor would refuse the proposal: store nothing either
        raise NotAMemberError("propose", session.account.address, 0, 1)
    _note(f"storing the task document ({doc.dataset}, {doc.strategy_config().name}) ...")
    blobs = open_blob_store(settings)
    try:
        rewards = rewards_config(rewards_rule, reward_params, store_validation(blobs, validation))
        if rewards is not None:
            doc = replace(doc, rewards=rewards)
        cid = blobs.put(doc.to_bytes())
    finally:
        blobs.close()
    _submit(session, [task_call(session.federation, doc, cid)], description, as_json)


def _aggregator_holder(session: GovSession, address: str) -> bool:
    from fedchain.chain.federation import AGGREGATOR_ROLE

    return session.ledger.contract.has_role(AGGREGATOR_ROLE, address)


@propose.command("grant-aggregator")
@click.argument("account", metavar="ADDRESS")
@_description_option
@_signed_options
def propose_grant_aggregator(account: str, description: str, keystore: Path | None, state_dir: Path | None,
                             rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Grant the aggregator role (open and finalise rounds) to ADDRESS."""
    from fedchain.chain.governance import grant_aggregator_call

    address = _checked_address(account, "ADDRESS", state_dir)
    session = open_session(_settings(state_dir, rpc_url, chain_id, keystore=keystore), signed=True)
    if _aggregator_holder(session, address):
        raise GovernanceError(f"cannot propose to grant the aggregator role to {address}: it already holds it")
    _submit(session, [grant_aggregator_call(session.federation, address)], description, as_json)


@propose.command("revoke-aggregator")
@click.argument("account", metavar="ADDRESS")
@_description_option
@_signed_options
def propose_revoke_aggregator(account: str, description: str, keystore: Path | None, state_dir: Path | None,
                              rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Revoke the aggregator role from ADDRESS."""
    from fedchain.chain.governance import revoke_aggregator_call

    address = _checked_address(account, "ADDRESS", state_dir)
    session = open_session(_settings(state_dir, rpc_url, chain_id, keystore=keystore), signed=True)
    if not _aggregator_holder(session, address):
        raise GovernanceError(f"cannot propose to revoke the aggregator role from {address}: it does not hold it")
    _submit(session, [revoke_aggregator_call(session.federation, address)], description, as_json)


@propose.command("set-verification")
@click.option("--quorum", "quorum_percent", type=click.IntRange(0, 100), required=True, metavar="PCT",
              help="Percentage of a round's included participants that must attest it before the next round "
                   "opens; 0: no live verification.")
@_description_option
@_signed_options
def propose_set_verification(quorum_percent: int, description: str, keystore: Path | None, state_dir: Path | None,
                             rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Set the live verification policy (the attestation quorum)."""
    from fedchain.chain.governance import set_verification_call

    session = open_session(_settings(state_dir, rpc_url, chain_id, keystore=keystore), signed=True)
    _submit(session, [set_verification_call(session.federation, quorum_percent)], description, as_json)


def _incentives_of(session: GovSession, action: str) -> Address:
    """The deployment's incentives contract; NoIncentivesError when it has none."""
    if session.deployment.incentives is None:
        raise NoIncentivesError(f"cannot propose to {action}: the Federation at {session.deployment.address} has no "
                              "incentives contract (deploy with `fedchain devnet deploy --governance --incentives`)")
    return Address(session.deployment.incentives)


def _wei(value: str, what: str) -> int:
    """A non-negative integer amount given in decimal (or ``0x`` hex)."""
    text = value.strip().replace("_", "")
    try:
        amount = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise click.BadParameter(f"not an integer amount: {value!r}", param_hint=what) from None
    if not 0 <= amount < 2**256:
        raise click.BadParameter(f"{amount} is out of range (0 to 2**256-1)", param_hint=what)
    return amount


@propose.command("set-deposit")
@click.option("--amount", required=True, metavar="WEI", help="The deposit each participant locks (wei of native ETH).")
@click.option("--delay", "delay_s", type=click.IntRange(0, 2**64 - 1), required=True, metavar="SECONDS",
              help="Seconds between a withdrawal request and the withdrawal.")
@click.option("--treasury", default=None, metavar="ADDRESS",
              help="Where slashed deposits go [default: the timelock, so the members decide what becomes of them].")
@_description_option
@_signed_options
def propose_set_deposit(amount: str, delay_s: int, treasury: str | None, description: str, keystore: Path | None,
                        state_dir: Path | None, rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Set the deposit policy: the amount each participant locks when it registers, the withdrawal
    delay and the treasury slashed funds go to."""
    wei = _wei(amount, "'--amount'")
    from fedchain.chain.incentives import set_deposit_policy_call

    chosen = _checked_address(treasury, "'--treasury'", state_dir) if treasury else None
    session = open_session(_settings(state_dir, rpc_url, chain_id, keystore=keystore), signed=True)
    incentives = _incentives_of(session, "set the deposit policy")
    address = chosen or Address(str(session.deployment.timelock))
    _submit(session, [set_deposit_policy_call(incentives, wei, delay_s, address)], description, as_json)


@propose.command("set-budget")
@click.option("--per-round", required=True, metavar="N",
              help="The reward budget of each round, in reward token units; 0: no rewards.")
@_description_option
@_signed_options
def propose_set_budget(per_round: str, description: str, keystore: Path | None, state_dir: Path | None,
                       rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Set the reward budget per round (the most a round's rewards may pay)."""
    budget = _wei(per_round, "'--per-round'")
    from fedchain.chain.incentives import set_budget_call

    session = open_session(_settings(state_dir, rpc_url, chain_id, keystore=keystore), signed=True)
    incentives = _incentives_of(session, "set the reward budget")
    _submit(session, [set_budget_call(incentives, budget)], description, as_json)


@propose.command("fund-pool")
@click.option("--amount", required=True, metavar="N", help="Reward tokens the timelock transfers to the pool.")
@_description_option
@_signed_options
def propose_fund_pool(amount: str, description: str, keystore: Path | None, state_dir: Path | None,
                      rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Fund the reward pool: a reward token transfer from the timelock to the incentives contract."""
    tokens = _wei(amount, "'--amount'")
    if tokens == 0:
        raise click.BadParameter("must be above 0", param_hint="'--amount'")
    from fedchain.chain.incentives import Incentives, fund_pool_call

    session = open_session(_settings(state_dir, rpc_url, chain_id, keystore=keystore), signed=True)
    incentives = _incentives_of(session, "fund the reward pool")
    token = session.deployment.reward_token
    assert token is not None and session.deployment.timelock is not None
    held = Incentives(session.conn, session.deployment).token_balance(session.deployment.timelock)
    if held < tokens:
        raise DepositError(f"cannot propose to fund the pool with {tokens}: the timelock "
                              f"{session.deployment.timelock} holds {held} reward tokens")
    _submit(session, [fund_pool_call(Address(token), incentives, tokens)], description, as_json)


@propose.command("slash")
@click.argument("participant", metavar="ADDRESS")
@click.option("--amount", required=True, metavar="WEI", help="How much of the participant's deposit to slash (wei).")
@click.option("--finding", "finding_cid", required=True, metavar="CID",
              help="CID of the finding blob in the store: an audit findings blob, or the evidence of a round "
                   "that rejected the participant's update; it must name ADDRESS as responsible.")
@_description_option
@store_option
@ipfs_api_option
@_signed_options
def propose_slash(participant: str, amount: str, finding_cid: str, description: str, store: str | None,
                  ipfs_api: str | None, keystore: Path | None, state_dir: Path | None, rpc_url: str | None,
                  chain_id: int | None, as_json: bool) -> None:
    """Slash part or all of ADDRESS's deposit, citing a finding that names it as responsible; the
    finding blob is fetched and checked before anything is sent."""
    address = _checked_address(participant, "ADDRESS", state_dir)
    wei = _wei(amount, "'--amount'")
    if wei == 0:
        raise click.BadParameter("must be above 0", param_hint="'--amount'")
    from fedchain.chain.incentives import Incentives, slash_call
    from fedchain.sim.wiring import open_blob_store
    from fedchain.storage.cid import parse_cid

    settings = _settings(state_dir, rpc_url, chain_id, keystore=keystore, store=store, ipfs_api=ipfs_api)
    session = open_session(settings, signed=True)
    incentives = _incentives_of(session, f"slash {address}")
    held = Incentives(session.conn, session.deployment).deposit_of(address).held
    if wei > held:
        raise DepositError(f"cannot propose to slash {wei} wei of {address}: it holds {held} wei")
    parse_cid(finding_cid)
    _note(f"fetching finding blob {finding_cid} ...")
    blobs = open_blob_store(settings)
    try:
        data = blobs.get(Cid(finding_cid))
    finally:
        blobs.close()
    checked = check_slash_finding(Cid(finding_cid), data, address)
    _note(f"finding blob {checked.cid} ({checked.kind}, round {checked.round_id}, digest "
          f"{digest_hex(checked.digest)}) names {address}: {checked.reasons[0]}")
    call = slash_call(incentives, address, wei, checked.digest, checked.cid)
    _submit(session, [call], description, as_json)


@dataclass(frozen=True)
class CheckedFindings:
    """A findings blob fetched from the store and checked: its CID, digest and contents."""

    cid: Cid
    digest: Digest
    size: int
    findings: AuditFindings


def check_findings(session: GovSession, settings: Settings, round_id: RoundId, cid: Cid | None,
                   expected_digest: Digest | None) -> CheckedFindings:
    """Fetch the findings blob ``cid`` (None: the one the signer's negative attestation of the
    round cites, else the earliest negative attestation's), check that it is a findings blob about
    ``round_id`` and that its digest is the one expected (``expected_digest``, and the one every
    negative attestation of the round citing it recorded).

    BlobNotFoundError when the store has no such blob, BlobFormatError when it is not a findings
    blob, IntegrityError on a digest mismatch, GovernanceError when it is about another round or
    no blob is named and the round has no negative attestation."""
    from fedchain.audit.findings import AuditFindings
    from fedchain.codec.canonical import sha256_digest
    from fedchain.sim.wiring import open_blob_store
    from fedchain.storage.cid import parse_cid

    negative = [a for a in session.ledger.events.attestations(round_id) if not a.ok]
    if cid is None:
        if not negative:
            raise GovernanceError(f"round {round_id} has no negative attestation to take the findings blob from: "
                                  "name it with --findings CID")
        signer = session.account.address.lower() if session.account is not None else ""
        chosen = next((a for a in negative if a.participant.lower() == signer), negative[0])
        cid = Cid(chosen.findings_cid)
        _note(f"citing the findings of {chosen.participant}'s negative attestation (tx {chosen.tx_hash}); "
              f"{len(negative)} of round {round_id}")
    parse_cid(cid)
    _note(f"fetching findings blob {cid} ...")
    blobs = open_blob_store(settings)
    try:
        data = blobs.get(cid)
    finally:
        blobs.close()
    findings = AuditFindings.from_bytes(data)
    if findings.round != int(round_id):
        raise GovernanceError(f"findings blob {cid} is about round {findings.round}, not round {round_id}")
    digest = sha256_digest(data)
    if expected_digest is not None and digest != expected_digest:
        raise IntegrityError(
            f"findings blob {cid} has digest {digest_hex(digest)}, not the {digest_hex(expected_digest)} given"
        )
    for event in negative:
        if event.findings_cid == cid and bytes(event.findings_digest) != bytes(digest):
            raise IntegrityError(
                f"findings blob {cid} has digest {digest_hex(digest)}, but {event.participant}'s negative "
                f"attestation of round {round_id} recorded {digest_hex(event.findings_digest)} for it "
                f"(tx {event.tx_hash}): the blob is not the one attested"
            )
    return CheckedFindings(cid, digest, len(data), findings)


@propose.command("dispute")
@click.argument("round_id", metavar="ROUND", type=click.IntRange(1))
@click.option("--findings", "findings_cid", default=None, metavar="CID",
              help="CID of the findings blob in the store [default: the one your negative attestation of the "
                   "round cites, else the earliest negative attestation's].")
@click.option("--findings-digest", default=None, metavar="HEX",
              help="The digest the findings blob must have (e.g. the one a negative attestation recorded).")
@click.option("--accused", default=None, metavar="ADDRESS",
              help="The party the dispute accuses [default: the findings blob's accused, else the aggregator who "
                   "finalised the round].")
@click.option("--revoke-aggregator", is_flag=True,
              help="In the same proposal, revoke the aggregator role from the accused.")
@click.option("--new-aggregator", default=None, metavar="ADDRESS",
              help="In the same proposal, grant the aggregator role to ADDRESS.")
@click.option("--reason", required=True, help="Why the round is disputed; recorded on chain.")
@_description_option
@store_option
@ipfs_api_option
@_signed_options
def propose_dispute(round_id: int, findings_cid: str | None, findings_digest: str | None, accused: str | None,
                    revoke_aggregator: bool, new_aggregator: str | None, reason: str, description: str,
                    store: str | None, ipfs_api: str | None, keystore: Path | None, state_dir: Path | None,
                    rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Mark finalised round ROUND disputed: when executed, the federation falls back to the last
    undisputed model; the findings blob is checked before anything is sent."""
    from fedchain.chain.governance import dispute_call, grant_aggregator_call, revoke_aggregator_call
    from fedchain.codec.abi import is_address, to_checksum_address
    from fedchain.ports import RoundFinalized, RoundStatus

    expected: Digest | None = None
    if findings_digest is not None:
        try:
            expected = parse_digest(findings_digest)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="'--findings-digest'") from err
    accused_address = _checked_address(accused, "'--accused'", state_dir) if accused else None
    new_address = _checked_address(new_aggregator, "'--new-aggregator'", state_dir) if new_aggregator else None
    settings = _settings(state_dir, rpc_url, chain_id, keystore=keystore, store=store, ipfs_api=ipfs_api)
    session = open_session(settings, signed=True)
    rid = RoundId(round_id)
    latest = int(session.ledger.latest_round_id())
    if rid > latest:
        raise GovernanceError(f"cannot propose to dispute round {rid}: the latest round is {latest}")
    status = session.ledger.contract.get_round(rid).status
    if status != RoundStatus.FINALIZED:
        raise GovernanceError(f"cannot propose to dispute round {rid}: it is {status.name.lower()}, not finalized")
    checked = check_findings(session, settings, rid, Cid(findings_cid) if findings_cid else None, expected)
    if accused_address is None and checked.findings.accused_address:
        if not is_address(checked.findings.accused_address):
            raise BlobFormatError(f"findings blob {checked.cid}: accused_address is not an address: "
                                  f"{checked.findings.accused_address!r}")
        accused_address = Address(to_checksum_address(checked.findings.accused_address))
    if accused_address is None:
        finals = [e for e in session.ledger.events.round_events(rid) if isinstance(e, RoundFinalized)]
        accused_address = finals[-1].finalized_by if finals else None
        if accused_address is None:
            raise GovernanceError(f"round {rid} has no RoundFinalized event; name the accused with --accused")
    calls = [dispute_call(session.federation, rid, accused_address, checked.digest, checked.cid, reason)]
    if revoke_aggregator:
        if not _aggregator_holder(session, accused_address):
            raise GovernanceError(f"cannot revoke the aggregator role from {accused_address}: it does not hold it")
        calls.append(revoke_aggregator_call(session.federation, accused_address))
    if new_address is not None:
        if _aggregator_holder(session, new_address):
            raise GovernanceError(f"cannot grant the aggregator role to {new_address}: it already holds it")
        calls.append(grant_aggregator_call(session.federation, new_address))
    errors = sum(1 for f in checked.findings.findings if f.severity.value == "error")
    _note(f"findings blob {checked.cid}: {len(checked.findings.findings)} finding(s), {errors} error(s), accusing "
          f"{checked.findings.accused.value} {accused_address}; digest {digest_hex(checked.digest)}")
    _submit(session, calls, description, as_json)


# --- the life of a proposal ---------------------------------------------------------------

SUPPORT_CHOICES = ("for", "against", "abstain")


@gov.command()
@click.argument("ref", metavar="ID")
@click.argument("support", type=click.Choice(SUPPORT_CHOICES, case_sensitive=False))
@click.option("--reason", default="", help="Why; recorded on chain with the vote.")
@_signed_options
def vote(ref: str, support: str, reason: str, keystore: Path | None, state_dir: Path | None, rpc_url: str | None,
         chain_id: int | None, as_json: bool) -> None:
    """Vote on proposal ID: for, against or abstain (one vote per member, counted at the snapshot)."""
    from fedchain.chain.governance import Support

    session = open_session(_settings(state_dir, rpc_url, chain_id, keystore=keystore), signed=True)
    number, found = resolve(session, ref)
    pid = int(found.proposal_id)
    with named(session, number, pid):
        report = session.governance.vote(pid, Support[support.upper()], reason)
    proposal = session.governance.proposal(pid)
    emit(as_json, {**proposal_json(session, number, proposal, report), "support": support.lower()},
         f"voted {support.lower()} on proposal #{number} ({_tx(report)}); now for {proposal.votes_for}, "
         f"against {proposal.votes_against}, abstain {proposal.votes_abstain}, quorum {proposal.quorum}")


def _lifecycle(verb: str, ref: str, keystore: Path | None, state_dir: Path | None, rpc_url: str | None,
               chain_id: int | None, as_json: bool, act: Callable[[Governance, int], TxReport],
               after: Callable[[Proposal], str]) -> None:
    session = open_session(_settings(state_dir, rpc_url, chain_id, keystore=keystore), signed=True)
    number, found = resolve(session, ref)
    pid = int(found.proposal_id)
    with named(session, number, pid, hint=verb != "canceled"):
        report = act(session.governance, pid)
    proposal = session.governance.proposal(pid)
    emit(as_json, proposal_json(session, number, proposal, report),
         f"{verb} proposal #{number} ({_tx(report)}); {after(proposal)}")


@gov.command()
@click.argument("ref", metavar="ID")
@_signed_options
def queue(ref: str, keystore: Path | None, state_dir: Path | None, rpc_url: str | None, chain_id: int | None,
          as_json: bool) -> None:
    """Queue a proposal that succeeded in the timelock; it may be executed after the delay."""
    _lifecycle("queued", ref, keystore, state_dir, rpc_url, chain_id, as_json, lambda g, pid: g.queue(pid),
               lambda p: f"executable from chain time {p.eta}")


@gov.command()
@click.argument("ref", metavar="ID")
@_signed_options
def execute(ref: str, keystore: Path | None, state_dir: Path | None, rpc_url: str | None, chain_id: int | None,
            as_json: bool) -> None:
    """Execute a queued proposal once the timelock delay is over (anyone may)."""
    _lifecycle("executed", ref, keystore, state_dir, rpc_url, chain_id, as_json, lambda g, pid: g.execute(pid),
               lambda p: f"{len(p.calls)} call(s) made by the timelock")


@gov.command()
@click.argument("ref", metavar="ID")
@_signed_options
def cancel(ref: str, keystore: Path | None, state_dir: Path | None, rpc_url: str | None, chain_id: int | None,
           as_json: bool) -> None:
    """Cancel a proposal (its proposer, while it is pending)."""
    _lifecycle("canceled", ref, keystore, state_dir, rpc_url, chain_id, as_json, lambda g, pid: g.cancel(pid),
               lambda p: f"it is {_state(p)}")


@gov.command("list")
@gov_options
@json_option
def list_(state_dir: Path | None, rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Every proposal with its state and votes, oldest first."""
    session = open_session(_settings(state_dir, rpc_url, chain_id), signed=False)
    proposals = session.governance.proposals()
    emit(as_json, {"proposals": [proposal_json(session, n, p) for n, p in enumerate(proposals, start=1)]},
         lambda: "\n".join([f"{len(proposals)} proposal(s)"]
                           + [proposal_line(n, p) for n, p in enumerate(proposals, start=1)]))


@gov.command()
@click.argument("ref", metavar="ID")
@gov_options
@json_option
def show(ref: str, state_dir: Path | None, rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """One proposal: state, votes, quorum, voting blocks, eta, the decoded calls and the voters."""
    session = open_session(_settings(state_dir, rpc_url, chain_id), signed=False)
    number, proposal = resolve(session, ref)
    emit(as_json, proposal_json(session, number, proposal), lambda: proposal_text(session, number, proposal))


@gov.command()
@click.argument("to", metavar="ADDRESS")
@_signed_options
def delegate(to: str, keystore: Path | None, state_dir: Path | None, rpc_url: str | None, chain_id: int | None,
             as_json: bool) -> None:
    """Delegate your membership vote to ADDRESS (yourself to take it back)."""
    address = _checked_address(to, "ADDRESS", state_dir)
    session = open_session(_settings(state_dir, rpc_url, chain_id, keystore=keystore), signed=True)
    assert session.account is not None
    report = session.governance.delegate(address)
    emit(as_json, {"delegator": session.account.address, "delegate": address, "tx": report,
                   "votes_of_delegate": session.governance.votes_of(address)},
         f"{session.account.address} delegates its vote to {address} ({_tx(report)})")


MILESTONES = {"until_voting": "voting", "until_closed": "closed", "until_executable": "executable"}


@gov.command()
@click.option("--blocks", type=click.IntRange(0), default=0, show_default=True, help="Blocks to mine.")
@click.option("--seconds", type=click.IntRange(0), default=0, show_default=True,
              help="Seconds to move the chain clock forward (then one block is mined).")
@click.option("--until-voting", default=None, metavar="ID",
              help="Instead: just far enough that proposal ID takes votes (nothing if it does already).")
@click.option("--until-closed", default=None, metavar="ID",
              help="Instead: just far enough that the vote on proposal ID is over.")
@click.option("--until-executable", default=None, metavar="ID",
              help="Instead: just far enough that queued proposal ID's timelock delay is over.")
@gov_options
@json_option
def advance(blocks: int, seconds: int, until_voting: str | None, until_closed: str | None,
            until_executable: str | None, state_dir: Path | None, rpc_url: str | None, chain_id: int | None,
            as_json: bool) -> None:
    """Devnet only: mine blocks and move the clock, so a voting period or a timelock delay need not
    be waited for."""
    from fedchain.chain.governance import advance as advance_chain

    targets = {name: ref for name, ref in (("until_voting", until_voting), ("until_closed", until_closed),
                                           ("until_executable", until_executable)) if ref is not None}
    if len(targets) > 1 or (targets and (blocks or seconds)):
        raise click.UsageError("give one of --until-voting, --until-closed, --until-executable, or --blocks/--seconds")
    if not targets and blocks == 0 and seconds == 0:
        raise click.UsageError("give --blocks N and/or --seconds S, or --until-voting/--until-closed/--until-executable ID")
    session = open_session(_settings(state_dir, rpc_url, chain_id), signed=False)
    before = session.conn.block_number()
    step = ""
    for name, ref in targets.items():
        number, proposal = resolve(session, ref)
        blocks, seconds, step = _wait_for(session, number, proposal, MILESTONES[name])
    if blocks > 50:
        _note(f"mining {blocks} blocks ...")
    if blocks or seconds:
        advance_chain(session.conn, blocks=blocks, seconds=seconds)
    block, stamp = session.conn.block_number(), session.conn.block_timestamp()
    emit(as_json, {"block_number": block, "timestamp": stamp, "mined": block - before, "next_step": step or None},
         f"now block {block} (mined {block - before}), chain time {stamp}" + (f"; {step}" if step else ""))


def _wait_for(session: GovSession, number: int, proposal: Proposal, milestone: str) -> tuple[int, int, str]:
    """(blocks, seconds, what then) to move a devnet on until ``milestone`` of the proposal
    (``voting``, ``closed``, ``executable``); a transaction sent afterwards meets the state of the
    block after the latest. GovernanceError when the proposal can no longer reach it."""
    from fedchain.chain.governance import ProposalState

    state = session.governance.state(int(proposal.proposal_id), pending=True)
    now = session.conn.block_number()
    if milestone == "voting":
        if state == ProposalState.PENDING:
            return max(proposal.snapshot_block - now, 1), 0, f"proposal #{number} takes votes until block " \
                f"{proposal.deadline_block}"
        if state == ProposalState.ACTIVE:
            return 0, 0, f"proposal #{number} takes votes already, until block {proposal.deadline_block}"
    elif milestone == "closed":
        if state in (ProposalState.PENDING, ProposalState.ACTIVE):
            return max(proposal.deadline_block - now, 1), 0, f"the vote on proposal #{number} is over"
        if state in (ProposalState.DEFEATED, ProposalState.SUCCEEDED, ProposalState.QUEUED, ProposalState.EXECUTED):
            return 0, 0, f"the vote on proposal #{number} is over already ({state.label})"
    elif state == ProposalState.QUEUED:
        wait = proposal.eta - session.conn.block_timestamp()
        return 0, max(wait, 0), f"proposal #{number} is executable: fedchain gov execute {number}"
    never = {"voting": "take votes", "closed": "have a vote to close",
             "executable": "become executable (only a queued proposal does)"}[milestone]
    raise GovernanceError(f"proposal #{number} is {state.label}: it will not {never}")


@gov.command()
@gov_options
@json_option
def members(state_dir: Path | None, rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Every member organisation (a membership token holder) with its votes and delegate."""
    session = open_session(_settings(state_dir, rpc_url, chain_id), signed=False)
    records = member_records(session)
    emit(as_json, {"members": records, "count": len(records), "membership": session.deployment.membership},
         lambda: "\n".join([f"{len(records)} member(s) (membership token {session.deployment.membership})"]
                           + [f"  {m.address}  votes {m.votes}  {m.organisation or '(founder)'}"
                              + ("" if m.delegate == m.address else f"  delegates to {m.delegate}")
                              for m in records]))


@dataclass(frozen=True)
class MemberRecord:
    """A member organisation: its address, since when, its current votes and delegate, and its
    participant record's organisation and status when it registered as a participant."""

    address: Address
    joined_block: int
    votes: int
    delegate: Address
    organisation: str
    participant_status: str


def member_records(session: GovSession) -> list[MemberRecord]:
    """The holders of a membership token, from its mints and burns, in the order they joined."""
    from fedchain.chain.governance import MembershipChanged

    joined: dict[str, int] = {}
    for event in session.governance.history():
        if isinstance(event, MembershipChanged):
            if event.joined:
                joined[event.member] = event.block_number
            else:
                joined.pop(event.member, None)
    records = []
    for address, block in joined.items():
        member = Address(address)
        participant = session.ledger.participant(member)
        records.append(MemberRecord(member, block, session.governance.votes_of(member),
                                    session.governance.delegate_of(member), participant.organisation,
                                    participant.status.name.lower()))
    return records

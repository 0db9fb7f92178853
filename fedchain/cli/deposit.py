"""``fedchain deposit``: a participant's deposit with the incentives contract (native ETH).

A participant locks the amount governance set when it registers (``fedchain participant
register`` does it), asks for it back once it has left the federation (``participant leave``,
or removed by vote) and withdraws it when the withdrawal delay has passed; a slash executed by
vote takes part or all of it first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fedchain.cli.gov import _checked_address, gov_options
from fedchain.cli.incentives import IncentivesSession, eth, open_incentives, when
from fedchain.cli.options import emit, json_option, keystore_option, role_signer, settings_from, to_jsonable
from fedchain.errors import DepositError
from fedchain.types import Address


def _settings(state_dir: Path | None, rpc_url: str | None, chain_id: int | None, keystore: Path | None) -> Any:
    return settings_from(state_dir=state_dir, rpc_url=rpc_url, chain_id=chain_id, keystore=keystore)


@click.group()
def deposit() -> None:
    """Show, release and withdraw a participant's deposit (native ETH).

    A refusal (no deposit, still participating, the withdrawal delay not over, no incentives
    contract) prints one line and exits with the incentives code, with nothing sent."""


def deposit_json(session: IncentivesSession, who: Address) -> dict[str, Any]:
    """A participant's deposit, the policy, its participant status and its deposit history."""
    record = session.incentives.deposit_of(who)
    policy = session.incentives.deposit_policy()
    status = session.ledger.participant(who).status.name.lower()
    history = [e for e in session.incentives.history() if str(getattr(e, "participant", "")).lower() == who.lower()]
    return {"participant": who, "status": status, "deposit": to_jsonable(record), "policy": to_jsonable(policy),
            "now": session.conn.block_timestamp(), "history": [to_jsonable(e) for e in history],
            "incentives": session.deployment.incentives}


@deposit.command()
@click.argument("participant_address", metavar="[ADDRESS]", required=False)
@keystore_option
@gov_options
@json_option
def show(participant_address: str | None, keystore: Path | None, state_dir: Path | None, rpc_url: str | None,
         chain_id: int | None, as_json: bool) -> None:
    """The deposit of ADDRESS (default: the keystore's account): held, whether its withdrawal was
    requested and from when it is available, the policy in force and its history."""
    settings = _settings(state_dir, rpc_url, chain_id, keystore)
    who = (_checked_address(participant_address, "ADDRESS", state_dir) if participant_address
           else Address(role_signer(settings).address))
    session = open_incentives(settings, signed=False)
    doc = deposit_json(session, who)
    record = session.incentives.deposit_of(who)
    policy = session.incentives.deposit_policy()

    def human() -> str:
        lines = [f"{who} ({doc['status']}): holds {eth(record.held)} ({record.held} wei)"
                 + (f", withdrawal requested, available from {when(record.available_at, doc['now'])}"
                    if record.requested else "")]
        lines.append(f"  policy: {eth(policy.amount)} per participant, withdrawal delay {policy.withdrawal_delay_s} s, "
                     f"slashed funds to {policy.treasury}")
        lines += [f"  block {e.block_number}: {type(e).__name__} {eth(int(getattr(e, 'amount', 0)))} (tx {e.tx_hash})"
                  + (f" citing {e.finding_cid}" if hasattr(e, "finding_cid") else "")
                  for e in session.incentives.history() if str(getattr(e, "participant", "")).lower() == who.lower()]
        return "\n".join(lines)

    emit(as_json, doc, human)


@deposit.command("request-withdrawal")
@keystore_option
@gov_options
@json_option
def request_withdrawal(keystore: Path | None, state_dir: Path | None, rpc_url: str | None, chain_id: int | None,
                       as_json: bool) -> None:
    """Ask for the deposit back once this participant has left (or was removed); the withdrawal
    delay starts now."""
    session = open_incentives(_settings(state_dir, rpc_url, chain_id, keystore), signed=True)
    who = session.sender
    record = session.incentives.deposit_of(who)
    if record.held == 0:
        raise DepositError(f"{who} holds no deposit with the incentives contract {session.deployment.incentives}")
    if record.requested:
        raise DepositError(f"{who} requested its withdrawal already: available from "
                              f"{when(record.available_at, session.conn.block_timestamp())}")
    status = session.ledger.participant(who).status.name.lower()
    if status != "removed":
        raise DepositError(f"{who} is still {status}: leave first (`fedchain participant leave --reason TEXT`), "
                              "then request the withdrawal")
    report = session.incentives.request_withdrawal()
    record = session.incentives.deposit_of(who)
    emit(as_json, {**deposit_json(session, who), "tx": report},
         f"withdrawal of {eth(record.held)} requested by {who}: available from chain time {record.available_at} "
         f"(tx {report.tx_hash}, gas {report.gas_used}); then `fedchain deposit withdraw`")


@deposit.command()
@keystore_option
@gov_options
@json_option
def withdraw(keystore: Path | None, state_dir: Path | None, rpc_url: str | None, chain_id: int | None,
             as_json: bool) -> None:
    """Withdraw the deposit once the withdrawal delay has passed (pull payment to the keystore's account)."""
    session = open_incentives(_settings(state_dir, rpc_url, chain_id, keystore), signed=True)
    who = session.sender
    record = session.incentives.deposit_of(who)
    if not record.requested:
        what = "no deposit" if record.held == 0 else f"{eth(record.held)}"
        raise DepositError(f"{who} has not requested its withdrawal (it holds {what}): "
                              "`fedchain deposit request-withdrawal` first")
    now = session.conn.block_timestamp("pending")  # the time of the block a transaction sent now meets
    if record.available_at > now:
        raise DepositError(f"the deposit of {who} is not available yet: available from "
                              f"{when(record.available_at, now)}")
    held = record.held
    report = session.incentives.withdraw()
    emit(as_json, {**deposit_json(session, who), "withdrawn": held, "tx": report},
         f"withdrew {eth(held)} ({held} wei) to {who} (tx {report.tx_hash}, gas {report.gas_used})")

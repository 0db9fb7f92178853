"""``fedchain round``: open, inspect and finalise rounds (signed by the aggregator)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fedchain.cli.options import emit, json_option, keystore_option, role_options, role_settings, role_signer
from fedchain.config import Settings
from fedchain.types import RoundId, digest_hex

if TYPE_CHECKING:
    from fedchain.chain.signer import Signer
    from fedchain.engine.ledger import LedgerTransport
    from fedchain.engine.reports import RoundReport
    from fedchain.ports import RoundRecord

log = logging.getLogger(__name__)


def aggregator_transport(settings: Settings, address: str | None, *, dishonest: str | None = None,
                         commit_duration: int | None = None, min_updates: int | None = None,
                         resume: bool = False, account: Signer | None = None) -> LedgerTransport:
    """The ledger transport of the aggregator role, signing with ``account`` (default: the
    role's keystore)."""
    from fedchain.cli.incentives import incentives_for
    from fedchain.cli.quiet_chain import OperatorTransport, devnet_connection
    from fedchain.sim.wiring import connect_ledger, open_blob_store

    signer = account or role_signer(settings)
    ledger = connect_ledger(settings, account=signer, address=address)
    transport = OperatorTransport(ledger, open_blob_store(settings), dishonest=dishonest,
                                  commit_duration=commit_duration, min_updates=min_updates, resume=resume,
                                  incentives=incentives_for(ledger, settings, address, signer))
    transport.devnet = devnet_connection(ledger)  # a local devnet is asked for a block past a deadline
    return transport


def describe_round(out: RoundReport) -> str:
    """One line about a finished round."""
    if out.finalized:
        return (f"round {out.round_id} finalised: model {digest_hex(out.model_digest or b'')} ({out.model_cid}), "
                f"{len(out.included)} included, {len(out.rejected)} rejected, gas {out.gas_used}")
    return f"round {out.round_id} closed without a model: {out.close_reason}"


def open_warnings(rnd: RoundRecord) -> list[str]:
    """What an operator should know about a round just opened: a minimum of updates that its
    eligible participants (those active when it opened) cannot reach."""
    if rnd.min_updates > rnd.eligible_count:
        return [f"round {rnd.round_id} needs {rnd.min_updates} included updates but only {rnd.eligible_count} "
                f"participant(s) are eligible (active): it can only close without a model; admit more participants "
                f"or open rounds with --min-updates {max(rnd.eligible_count, 1)}"]
    return []


@click.group("round")
def round_() -> None:
    """Open, inspect and finalise rounds (aggregator)."""


@round_.command("open")
@click.option("--commit-duration", type=int, default=None, help="Seconds participants have to commit [default: the task's].")
@click.option("--min-updates", type=int, default=None, help="Minimum included updates [default: the task's].")
@keystore_option
@role_options
@json_option
def open_(commit_duration: int | None, min_updates: int | None, keystore: Path | None, state_dir: Path | None,
          rpc_url: str | None, ipfs_api: str | None, store: str | None, address: str | None, chain_id: int | None,
          as_json: bool) -> None:
    """Open the next round on the latest finalised model (or the task's initial model)."""
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    transport = aggregator_transport(settings, address, commit_duration=commit_duration, min_updates=min_updates)
    rid = transport.open_round().round_id
    rnd = transport.ledger.round(rid)
    warnings = open_warnings(rnd)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    emit(as_json, {"round": int(rid), "base_model_digest": rnd.base_model_digest, "base_model_cid": rnd.base_model_cid,
                   "deadline": rnd.deadline, "min_updates": rnd.min_updates, "eligible": rnd.eligible_count,
                   "warnings": warnings, "tx": transport.reports[-1]},
         f"round {rid} open on {digest_hex(rnd.base_model_digest)} until {rnd.deadline} (min {rnd.min_updates} updates)")


@round_.command()
@click.argument("round_id", type=int, required=False)
@role_options
@json_option
def status(round_id: int | None, state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None,
           address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Show a round (default: the latest) and its commitments."""
    from fedchain.sim.wiring import connect_ledger

    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id)
    ledger = connect_ledger(settings, address=address)
    rid = RoundId(round_id if round_id is not None else int(ledger.latest_round_id()))
    if rid < 1:
        emit(as_json, {"round": None}, "no round has been opened yet")
        return
    rnd = ledger.round(rid)
    commits = ledger.commitments(rid)
    payload = {"round": rnd, "active_participants": ledger.active_count(), "commitments": commits}
    emit(as_json, payload, lambda: "\n".join(
        [f"round {rid}: {rnd.status.name.lower()}, {rnd.commit_count} commitment(s) of {rnd.eligible_count} eligible, "
         f"min {rnd.min_updates}, deadline {rnd.deadline}"]
        + ([f"  commit-reveal: {rnd.seal_count} sealed, {rnd.commit_count} revealed, "
            f"reveal deadline {rnd.reveal_deadline}"] if rnd.commit_reveal else [])
        + ([f"  model {digest_hex(rnd.model_digest)} ({rnd.model_cid}), {rnd.included_count} included"] if rnd.model_cid else [])
        + ([f"  closed: {rnd.close_reason}"] if rnd.close_reason else [])
        + [f"  {c.participant} {c.cid} ({c.num_samples} samples, block {c.block_number})" for c in commits]))


@round_.command()
@click.argument("round_id", type=int, required=False)
@click.option("--wait/--no-wait", default=False, help="Wait for the commit phase to end instead of failing.")
@click.option("--dishonest", type=click.Choice(["drop-update", "shift-model"]), default=None, hidden=True,
              help="Demonstration only: cheat, so that the audit has something to catch.")
@keystore_option
@role_options
@json_option
def finalize(round_id: int | None, wait: bool, dishonest: str | None, keystore: Path | None, state_dir: Path | None,
             rpc_url: str | None, ipfs_api: str | None, store: str | None, address: str | None, chain_id: int | None,
             as_json: bool) -> None:
    """Aggregate the committed updates and finalise the round (or close it below the minimum)."""
    from fedchain.engine.loop import finish_round
    from fedchain.errors import AggregationError

    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    transport = aggregator_transport(settings, address, dishonest=dishonest)
    rid = RoundId(round_id if round_id is not None else int(transport.ledger.latest_round_id()))
    if rid < 1:
        raise AggregationError("no round has been opened yet")
    opened = transport.attach(rid)
    if not wait and not transport.wait_commit_phase(rid, 0.0):
        rnd = transport.ledger.round(rid)
        raise AggregationError(f"round {rid}: commit phase still running ({rnd.commit_count} of "
                               f"{rnd.eligible_count} eligible committed, deadline {rnd.deadline}); use --wait")
    out = finish_round(transport, opened, commit_timeout_s=None if wait else 60.0)
    emit(as_json, out.to_json(), lambda: describe_round(out))


@round_.command()
@click.argument("round_id", type=int, required=False)
@click.option("--reason", required=True, help="Why the round ends without a model (recorded on chain).")
@click.option("--wait/--no-wait", default=False, help="Wait for the deadline to pass instead of failing.")
@keystore_option
@role_options
@json_option
def close(round_id: int | None, reason: str, wait: bool, keystore: Path | None, state_dir: Path | None,
          rpc_url: str | None, ipfs_api: str | None, store: str | None, address: str | None, chain_id: int | None,
          as_json: bool) -> None:
    """Close an open round (default: the latest) without a model, once its commit phase is over."""
    from fedchain.errors import AggregationError

    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    transport = aggregator_transport(settings, address)
    rid = RoundId(round_id if round_id is not None else int(transport.ledger.latest_round_id()))
    if rid < 1:
        raise AggregationError("no round has been opened yet")
    report = transport.close(rid, reason, timeout_s=None if wait else 0.0)
    rnd = transport.ledger.round(rid)
    emit(as_json, {"round": int(rid), "status": rnd.status, "reason": rnd.close_reason,
                   "commit_count": rnd.commit_count, "tx": report},
         f"round {rid} closed without a model: {reason} ({rnd.commit_count} commitment(s); tx {report.tx_hash})")

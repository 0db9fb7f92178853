"""``fedchain admin``: the consortium administrator's actions (admission, removal, task, members).

These are the calls the ADMIN_ROLE makes on the Federation contract; a governance contract can
hold that role later and make the same calls through proposals."""

from __future__ import annotations

from pathlib import Path

import click

from fedchain.cli.options import emit, json_option, keystore_option
from fedchain.cli.participant import _ledger, _settings, role_options
from fedchain.ledger import ParticipantAdmitted, ParticipantRegistered, ParticipantRemoved, ParticipantStatus
from fedchain.types import Address


@click.group()
def admin() -> None:
    """Admit and remove participants; inspect the task and the membership."""


@admin.command()
@click.argument("participant")
@keystore_option
@role_options
@json_option
def admit(participant: str, keystore: Path | None, state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None,
          store: str | None, address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Admit a registered (pending) PARTICIPANT address."""
    settings = _settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    ledger = _ledger(settings, address)
    report = ledger.admit(Address(participant))
    emit(as_json, {"participant": participant, "status": "active", "tx": report},
         f"admitted {participant} (tx {report.tx_hash}, gas {report.gas_used})")


@admin.command()
@click.argument("participant")
@click.option("--reason", required=True, help="Why the participant is removed; recorded on chain.")
@keystore_option
@role_options
@json_option
def remove(participant: str, reason: str, keystore: Path | None, state_dir: Path | None, rpc_url: str | None,
           ipfs_api: str | None, store: str | None, address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Remove PARTICIPANT; its later commits are refused by the contract."""
    settings = _settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    ledger = _ledger(settings, address)
    report = ledger.remove(Address(participant), reason)
    emit(as_json, {"participant": participant, "status": "removed", "reason": reason, "tx": report},
         f"removed {participant}: {reason} (tx {report.tx_hash}, gas {report.gas_used})")


@admin.command()
@role_options
@json_option
def members(state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None,
            address: str | None, chain_id: int | None, as_json: bool) -> None:
    """List every registered participant with its current status, from the event log."""
    settings = _settings(state_dir, rpc_url, ipfs_api, store, chain_id)
    ledger = _ledger(settings, address, signed=False)
    seen: dict[str, None] = {}
    for event in ledger.history():
        if isinstance(event, (ParticipantRegistered, ParticipantAdmitted, ParticipantRemoved)):
            seen.setdefault(event.participant, None)
    records = [ledger.participant(Address(p)) for p in seen]
    active = sum(1 for r in records if r.status == ParticipantStatus.ACTIVE)

    def human() -> str:
        lines = [f"{len(records)} participant(s), {active} active"]
        lines += [f"  {r.address}  {r.status.name.lower():8}  {r.organisation} ({r.industry or '-'})" for r in records]
        return "\n".join(lines)

    emit(as_json, {"participants": records, "active": active}, human)


@admin.command()
@role_options
@json_option
def task(state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None,
         address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Show the task configuration recorded on chain (digests and the task document's CID)."""
    settings = _settings(state_dir, rpc_url, ipfs_api, store, chain_id)
    ledger = _ledger(settings, address, signed=False)
    config = ledger.task()
    if config is None:
        emit(as_json, {"task": None}, "no task configured yet")
        return
    emit(as_json, {"task": config},
         lambda: "\n".join(f"{k}: {('0x' + v.hex()) if isinstance(v, bytes) else v}" for k, v in vars(config).items()))

"""``fedchain account``: encrypted keystores (eth-account), balances and devnet funding."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from fedchain.cli.options import emit, json_option, rpc_url_option, settings_from, state_dir_option
from fedchain.errors import ConfigError
from fedchain.types import Address, Wei

WEI_PER_ETH = 10**18


def parse_eth(text: str) -> Wei:
    """A decimal ETH amount ('1.5') as integer wei; ConfigError when it is not one."""
    try:
        value = Decimal(text)
    except InvalidOperation as err:
        raise ConfigError(f"amount is not a decimal number of ETH: {text!r}") from err
    wei = value * WEI_PER_ETH
    if not value.is_finite() or value <= 0 or wei != wei.to_integral_value():
        raise ConfigError(f"amount must be a positive ETH amount with at most 18 decimals, got {text!r}")
    return Wei(int(wei))


@click.group()
def account() -> None:
    """Encrypted keystores: create, list, show, fund."""


@account.command()
@click.option("--name", default=None, help="Keystore name [default: the address].")
@click.option("--from-env", is_flag=True, help="Import the key in FEDCHAIN_PRIVATE_KEY instead of generating one.")
@state_dir_option
@json_option
def new(name: str | None, from_env: bool, state_dir: Path | None, as_json: bool) -> None:
    """Create a new encrypted keystore (password from FEDCHAIN_PASSWORD or a prompt)."""
    from fedchain.chain.accounts import PRIVATE_KEY_ENV, account_from_env, create_keystore, password_from

    settings = settings_from(state_dir=state_dir)
    key = None
    if from_env:
        imported = account_from_env()
        if imported is None:
            raise ConfigError(f"--from-env given but {PRIVATE_KEY_ENV} is not set")
        key = imported.key
    password = password_from(prompt=lambda what: click.prompt(what, hide_input=True, confirmation_prompt=True, err=True))
    entry = create_keystore(settings.state_dir, password, name=name, private_key=key)
    emit(as_json, entry, f"created keystore {entry.name} for {entry.address} at {entry.path}")


@account.command("list")
@state_dir_option
@json_option
def list_(state_dir: Path | None, as_json: bool) -> None:
    """List the keystores under the state directory (unreadable files are listed as skipped)."""
    from fedchain.chain.accounts import scan_keystores

    entries, skipped = scan_keystores(settings_from(state_dir=state_dir).state_dir)

    def human() -> str:
        lines = [f"{e.name}\t{e.address}" for e in entries] or ["no keystores"]
        return "\n".join(lines + [f"skipped {b.path}: {b.reason}" for b in skipped])

    emit(as_json, {"accounts": entries, "skipped": skipped}, human)


@account.command()
@click.argument("name_or_address")
@rpc_url_option
@state_dir_option
@json_option
def show(name_or_address: str, rpc_url: str | None, state_dir: Path | None, as_json: bool) -> None:
    """Show a keystore's address, file and (when a chain answers) balance."""
    from fedchain.chain.accounts import find_keystore
    from fedchain.chain.connection import Connection
    from fedchain.services.devnet import read_devnet

    settings = settings_from(state_dir=state_dir, rpc_url=rpc_url)
    entry = find_keystore(settings.state_dir, name_or_address)
    url = settings.rpc_url
    if url is None:
        info = read_devnet(settings.state_dir)
        url = info.url if info else None
    balance = Connection(url).balance(entry.address) if url else None
    payload = {"name": entry.name, "address": entry.address, "path": entry.path, "balance_wei": balance, "rpc_url": url}
    human = f"{entry.name}\t{entry.address}\t{entry.path}"
    if balance is not None:
        human += f"\tbalance {Decimal(balance) / WEI_PER_ETH} ETH"
    emit(as_json, payload, human)


@account.command()
@click.argument("name_or_address")
@click.option("--amount", default="10", show_default=True, help="ETH to send (decimal).")
@rpc_url_option
@state_dir_option
@json_option
def fund(name_or_address: str, amount: str, rpc_url: str | None, state_dir: Path | None, as_json: bool) -> None:
    """Send ETH to an address or keystore from the devnet's first unlocked dev account."""
    from fedchain.chain.accounts import find_keystore
    from fedchain.chain.connection import Connection
    from fedchain.codec.abi import is_address, to_checksum_address
    from fedchain.services.devnet import devnet_url

    settings = settings_from(state_dir=state_dir, rpc_url=rpc_url)
    wei = parse_eth(amount)
    if is_address(name_or_address):
        address = Address(to_checksum_address(name_or_address))
    else:
        address = find_keystore(settings.state_dir, name_or_address).address
    conn = Connection(settings.rpc_url or devnet_url(settings.state_dir), expected_chain_id=settings.chain_id)
    tx_hash = conn.fund_from_dev_account(address, wei)
    payload = {"address": address, "amount_wei": wei, "tx_hash": tx_hash, "balance_wei": conn.balance(address)}
    emit(as_json, payload, f"sent {amount} ETH to {address} (tx {tx_hash})")

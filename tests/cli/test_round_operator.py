"""Operator conveniences of the tour: ``devnet deploy --aggregator/--admin`` take a keystore name as well as an
address (``fedchain account new --name NAME``); a name that is neither is a usage error naming the folder."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from fedchain.chain.accounts import create_keystore
from fedchain.cli.devnet import role_address


def test_a_role_is_an_address_or_a_keystore_name(tmp_path: Path) -> None:
    entry = create_keystore(tmp_path, "pw", name="nordbank", iterations=2**10)
    assert role_address("nordbank", "--aggregator", tmp_path) == entry.address
    assert role_address(entry.address.lower(), "--aggregator", tmp_path) == entry.address  # checksummed
    with pytest.raises(click.BadParameter, match=r"not an address nor a keystore name: 'sudbank'.*keystores"):
        role_address("sudbank", "--aggregator", tmp_path)
    with pytest.raises(click.BadParameter, match="not an address"):
        role_address("0x1234", "--admin", tmp_path)

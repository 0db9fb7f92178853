"""Encrypted keystores and the ``fedchain account`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account

from fedchain.chain.accounts import (
    account_from_env,
    create_keystore,
    decrypt_keystore,
    find_keystore,
    list_keystores,
    load_signer,
)
from fedchain.cli.main import cli
from fedchain.errors import ExitCode, KeystoreError
from tests.fixtures_devnet import DevnetEnv

FAST = 2**10  # scrypt work factor for tests only


def test_keystore_round_trip_never_stores_the_key(tmp_path: Path) -> None:
    key = Account.create().key
    entry = create_keystore(tmp_path, "s3cret", name="alice", private_key=key, iterations=FAST)
    assert entry.path == tmp_path / "keystores" / "alice.json"
    assert entry.path.stat().st_mode & 0o077 == 0
    assert key.hex() not in entry.path.read_text() and key.hex()[2:] not in entry.path.read_text()
    assert decrypt_keystore(entry.path, "s3cret").key == key
    assert find_keystore(tmp_path, entry.address.lower()) == entry
    assert list_keystores(tmp_path) == [entry]


def test_wrong_password(tmp_path: Path) -> None:
    entry = create_keystore(tmp_path, "right", name="bob", iterations=FAST)
    with pytest.raises(KeystoreError, match="wrong password") as info:
        decrypt_keystore(entry.path, "wrong")
    assert info.value.exit_code == ExitCode.KEYSTORE


def test_refuses_overwrite_and_duplicates(tmp_path: Path) -> None:
    key = Account.create().key
    create_keystore(tmp_path, "pw", name="carol", private_key=key, iterations=FAST)
    with pytest.raises(KeystoreError, match="already exists"):
        create_keystore(tmp_path, "pw", name="carol", iterations=FAST)
    with pytest.raises(KeystoreError, match="already has a keystore"):
        create_keystore(tmp_path, "pw", name="carol2", private_key=key, iterations=FAST)
    with pytest.raises(KeystoreError, match="invalid keystore name"):
        create_keystore(tmp_path, "pw", name="../evil", iterations=FAST)


def test_garbage_keystore_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(KeystoreError, match="not valid JSON"):
        decrypt_keystore(bad, "pw")
    bad.write_text('{"address": "00"}')
    with pytest.raises(KeystoreError, match="not an encrypted keystore"):
        decrypt_keystore(bad, "pw")


def test_signer_resolution(tmp_path: Path) -> None:
    env_key = Account.create()
    assert load_signer(tmp_path, env={"FEDCHAIN_PRIVATE_KEY": env_key.key.hex()}).address == env_key.address
    with pytest.raises(KeystoreError, match="FEDCHAIN_PRIVATE_KEY is not a valid"):
        account_from_env({"FEDCHAIN_PRIVATE_KEY": "0x1234"})
    with pytest.raises(KeystoreError, match="no keystores"):
        load_signer(tmp_path, env={})
    entry = create_keystore(tmp_path, "pw", name="dave", iterations=FAST)
    assert load_signer(tmp_path, env={"FEDCHAIN_PASSWORD": "pw"}).address == entry.address
    assert load_signer(tmp_path, "dave", env={}, prompt=lambda _: "pw").address == entry.address
    with pytest.raises(KeystoreError, match="no password"):
        load_signer(tmp_path, "dave", env={})
    with pytest.raises(KeystoreError, match="wrong password"):
        load_signer(tmp_path, entry.path, env={"FEDCHAIN_PASSWORD": "nope"})


def test_account_cli_new_list_show(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"FEDCHAIN_PASSWORD": "pw", "FEDCHAIN_RPC_URL": ""}
    created = runner.invoke(cli, ["account", "new", "--name", "erin", "--state-dir", str(tmp_path), "--json"], env=env)
    assert created.exit_code == 0, created.output
    entry = json.loads(created.stdout)
    assert entry["name"] == "erin" and entry["address"].startswith("0x")
    listed = json.loads(runner.invoke(cli, ["account", "list", "--state-dir", str(tmp_path), "--json"]).stdout)
    assert [a["address"] for a in listed["accounts"]] == [entry["address"]]
    shown = json.loads(runner.invoke(cli, ["account", "show", "erin", "--state-dir", str(tmp_path), "--json"], env=env).stdout)
    assert shown["address"] == entry["address"] and shown["balance_wei"] is None
    missing = runner.invoke(cli, ["account", "show", "nobody", "--state-dir", str(tmp_path)], env=env)
    assert missing.exit_code == ExitCode.KEYSTORE and "no keystore named 'nobody'" in missing.output


def test_account_cli_fund(chain_env: DevnetEnv, tmp_path: Path) -> None:
    target = Account.create().address
    result = CliRunner().invoke(
        cli, ["account", "fund", target, "--amount", "1.5", "--rpc-url", chain_env.url, "--state-dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["amount_wei"] == 1_500_000_000_000_000_000 == chain_env.conn.balance(target)
    bad = CliRunner().invoke(cli, ["account", "fund", target, "--amount", "-1", "--rpc-url", chain_env.url])
    assert bad.exit_code == ExitCode.CONFIG and "positive ETH amount" in bad.output


def test_deploy_with_wrong_keystore_password_exits_with_keystore_code(chain_env: DevnetEnv, tmp_path: Path) -> None:
    from fedchain.chain.federation import deployment_path

    create_keystore(tmp_path, "right", name="ops", iterations=FAST)
    result = CliRunner().invoke(
        cli,
        ["devnet", "deploy", "--rpc-url", chain_env.url, "--keystore", "ops", "--state-dir", str(tmp_path)],
        env={"FEDCHAIN_PASSWORD": "wrong", "FEDCHAIN_PRIVATE_KEY": ""},
    )
    assert result.exit_code == ExitCode.KEYSTORE
    assert "wrong password for keystore" in result.output
    assert not deployment_path(tmp_path, chain_env.conn.chain_id).exists()

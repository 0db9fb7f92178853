"""Encrypted keystores and the ``fedchain account`` commands."""

from __future__ import annotations

import json
import os
import stat
import time
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


# --- unreadable keystores, absurd KDF parameters, file modes -------------------------------


def _corrupt_keystores(tmp_path: Path) -> None:
    directory = tmp_path / "keystores"
    (directory / "broken.json").write_text('{"crypto": {"kdf": "scrypt"', encoding="utf-8")
    (directory / "notes.json").write_text('{"hello": "world"}', encoding="utf-8")
    (directory / "huge.json").write_text(" " * (70 * 1024) + "{}", encoding="utf-8")


def test_one_corrupt_keystore_does_not_break_the_others(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = create_keystore(tmp_path, "pw", name="frank", iterations=FAST)
    _corrupt_keystores(tmp_path)

    with caplog.at_level("WARNING", logger="fedchain.chain.accounts"):
        listed = list_keystores(tmp_path)

    assert listed == [good]
    for name in ("broken.json", "notes.json", "huge.json"):
        assert f"skipping keystore {tmp_path / 'keystores' / name}" in caplog.text
    assert find_keystore(tmp_path, "frank") == good
    assert find_keystore(tmp_path, good.address) == good
    assert load_signer(tmp_path, env={"FEDCHAIN_PASSWORD": "pw"}).address == good.address  # the only usable one
    other = create_keystore(tmp_path, "pw", name="grace", iterations=FAST)  # the duplicate check reads them all
    assert [e.name for e in list_keystores(tmp_path)] == ["frank", "grace"] and other.name == "grace"


def test_asking_for_a_corrupt_keystore_by_name_says_what_is_wrong(tmp_path: Path) -> None:
    create_keystore(tmp_path, "pw", name="heidi", iterations=FAST)
    _corrupt_keystores(tmp_path)

    with pytest.raises(KeystoreError, match=r"keystore 'broken' cannot be used: .*not valid JSON"):
        find_keystore(tmp_path, "broken")
    with pytest.raises(KeystoreError, match=r"keystore 'huge' cannot be used: .*larger than 65536 bytes"):
        find_keystore(tmp_path, "huge")
    with pytest.raises(KeystoreError, match=r"notes\.json is not an encrypted keystore"):
        load_signer(tmp_path, tmp_path / "keystores" / "notes.json", env={"FEDCHAIN_PASSWORD": "pw"})


def test_account_list_reports_the_skipped_files(tmp_path: Path) -> None:
    create_keystore(tmp_path, "pw", name="ivan", iterations=FAST)
    _corrupt_keystores(tmp_path)

    result = CliRunner().invoke(cli, ["account", "list", "--state-dir", str(tmp_path), "--json"])

    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [a["name"] for a in listed["accounts"]] == ["ivan"]
    assert sorted(Path(s["path"]).name for s in listed["skipped"]) == ["broken.json", "huge.json", "notes.json"]
    assert all(s["reason"] for s in listed["skipped"])


def _tampered(tmp_path: Path, kdf: str, **params: object) -> Path:
    """A real keystore whose KDF parameters were edited afterwards."""
    key = Account.create().key
    keyfile = Account.encrypt(key, "pw", kdf=kdf, iterations=FAST if kdf == "scrypt" else 1000)
    keyfile["crypto"]["kdfparams"].update(params)
    path = tmp_path / f"tampered-{kdf}.json"
    path.write_text(json.dumps(keyfile), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("kdf", "params", "message"),
    [
        ("pbkdf2", {"c": 10**9}, r"pbkdf2 parameter 'c' = 1000000000 is above the ceiling 10000000"),
        ("pbkdf2", {"c": True}, r"pbkdf2 parameter 'c' is missing or not an integer"),
        ("pbkdf2", {"prf": "hmac-md5"}, r"pbkdf2 parameter 'prf' must be 'hmac-sha256'"),
        ("pbkdf2", {"dklen": 10**9}, r"pbkdf2 parameter 'dklen' = 1000000000 is above the ceiling 64"),
        ("scrypt", {"n": 2**30}, r"scrypt parameter 'n' = 1073741824 is above the ceiling 1048576"),
        ("scrypt", {"n": 3000}, r"scrypt parameter 'n' = 3000 is not a power of two"),
        ("scrypt", {"r": 1000}, r"scrypt parameter 'r' = 1000 is above the ceiling 32"),
        ("scrypt", {"p": 10**6}, r"scrypt parameter 'p' = 1000000 is above the ceiling 16"),
        ("scrypt", {"n": 2**20, "r": 32}, r"scrypt parameters 'n' = 1048576 and 'r' = 32 need 4294967296 bytes"),
        ("scrypt", {"n": 2**20, "r": 8, "p": 4}, r"scrypt parameters 'n' \* 'r' \* 'p' = 33554432 are above"),
        ("scrypt", {"dklen": 16}, r"scrypt parameter 'dklen' = 16 is below 32"),
    ],
)
def test_absurd_kdf_parameters_are_refused_before_any_work(
    tmp_path: Path, kdf: str, params: dict[str, object], message: str
) -> None:
    path = _tampered(tmp_path, kdf, **params)
    started = time.monotonic()

    with pytest.raises(KeystoreError, match=message) as info:
        decrypt_keystore(path, "pw")

    assert time.monotonic() - started < 1.0  # refused, not derived
    assert str(path) in str(info.value) and info.value.exit_code == ExitCode.KEYSTORE


def test_an_unknown_kdf_is_refused_naming_it(tmp_path: Path) -> None:
    path = _tampered(tmp_path, "scrypt")
    keyfile = json.loads(path.read_text(encoding="utf-8"))
    keyfile["crypto"]["kdf"] = "argon2id"
    path.write_text(json.dumps(keyfile), encoding="utf-8")

    with pytest.raises(KeystoreError, match="unsupported key derivation function 'argon2id'"):
        decrypt_keystore(path, "pw")


def test_kdf_parameters_within_the_ceilings_still_decrypt(tmp_path: Path) -> None:
    key = Account.create().key
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(Account.encrypt(key, "pw", kdf="pbkdf2", iterations=5000)), encoding="utf-8")

    assert decrypt_keystore(path, "pw").key == key


def test_keystore_directory_is_private_and_an_open_one_is_narrowed(tmp_path: Path) -> None:
    (tmp_path / "keystores").mkdir(mode=0o755)
    os.chmod(tmp_path / "keystores", 0o755)

    entry = create_keystore(tmp_path, "pw", name="judy", iterations=FAST)

    assert stat.S_IMODE((tmp_path / "keystores").stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    fresh = create_keystore(tmp_path / "new-state", "pw", name="ken", iterations=FAST)
    assert stat.S_IMODE((tmp_path / "new-state").stat().st_mode) == 0o700
    assert stat.S_IMODE(fresh.path.parent.stat().st_mode) == 0o700

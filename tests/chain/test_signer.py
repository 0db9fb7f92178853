"""LocalSigner (EIP-1559 transactions, digests) and keystore decryption, against eth-account as the oracle."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.chain.accounts import create_keystore, decrypt_keystore, load_local_signer, signer_from_env, unlock_keystore
from fedchain.chain.signer import LocalSigner, decrypt_keyfile, raw_signed_transaction
from fedchain.codec.abi import keccak, to_checksum_address
from fedchain.codec.secp256k1 import SECP256K1_N, recover_address
from fedchain.errors import AbiEncodingError, KeystoreError
from tests.fixtures_devnet import DevnetEnv

FAST = 2**10  # scrypt work factor for tests only
keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
uint256 = st.integers(min_value=0, max_value=2**256 - 1)
uint64 = st.integers(min_value=0, max_value=2**64 - 1)
access_lists = st.lists(
    st.fixed_dictionaries({"address": addresses, "storageKeys": st.lists(st.binary(min_size=32, max_size=32).map(
        lambda b: "0x" + b.hex()), max_size=3)}),
    max_size=3,
)
txs = st.fixed_dictionaries(
    {
        "type": st.just(2),
        "chainId": st.integers(min_value=1, max_value=2**64),
        "nonce": st.integers(min_value=0, max_value=2**64 - 2),
        "maxPriorityFeePerGas": uint256,
        "maxFeePerGas": uint256,
        "gas": st.integers(min_value=0, max_value=2**63),
        "value": uint256,
        "data": st.binary(max_size=300),
    },
    optional={"to": addresses, "accessList": access_lists},
)


@settings(max_examples=80, deadline=None)
@given(key=keys, tx=txs)
def test_raw_transaction_is_eth_accounts(key: bytes, tx: dict[str, Any]) -> None:
    signer = LocalSigner.from_key(key)
    theirs = Account.sign_transaction(copy.deepcopy(tx), key)
    assert signer.sign_transaction(tx) == bytes(theirs.raw_transaction)


@settings(max_examples=20, deadline=None)
@given(key=keys, tx=txs)
def test_from_the_signer_is_accepted_and_changes_nothing(key: bytes, tx: dict[str, Any]) -> None:
    signer = LocalSigner.from_key(key)
    assert signer.sign_transaction({**tx, "from": signer.address.lower()}) == signer.sign_transaction(tx)


@settings(max_examples=20, deadline=None)
@given(key=keys, tx=txs)
def test_either_kind_of_signer_gives_the_same_raw_transaction(key: bytes, tx: dict[str, Any]) -> None:
    assert raw_signed_transaction(LocalSigner.from_key(key), tx) == raw_signed_transaction(Account.from_key(key), tx)


@settings(max_examples=30, deadline=None)
@given(key=keys, digest=st.binary(min_size=32, max_size=32))
def test_digest_signature_is_eth_accounts_and_recovers(key: bytes, digest: bytes) -> None:
    signer = LocalSigner.from_key(key)
    assert signer.address == Account.from_key(key).address
    assert signer.sign_digest(digest) == bytes(Account.unsafe_sign_hash(digest, key).signature)
    assert recover_address(digest, signer.sign_digest(digest)) == signer.address


def test_hex_keys_and_the_key_property() -> None:
    key = keccak(b"alice")
    for form in (key.hex(), "0x" + key.hex(), " 0x" + key.hex().upper() + "\n"):
        assert LocalSigner.from_key(form) == LocalSigner.from_key(key)
    assert LocalSigner.from_key(key).key == key


def test_repr_and_str_never_show_the_key() -> None:
    key = keccak(b"alice")
    signer = LocalSigner.from_key(key)
    for shown in (repr(signer), str(signer), f"{signer}"):
        assert key.hex() not in shown.lower() and signer.address in shown


@pytest.mark.parametrize("bad", ["0x1234", "zz" * 32, b"\x01" * 31, bytes(32), SECP256K1_N.to_bytes(32, "big"), 7])
def test_an_invalid_key_is_refused_without_showing_it(bad: Any) -> None:
    with pytest.raises(KeystoreError) as caught:
        LocalSigner.from_key(bad)
    assert not isinstance(bad, str) or bad not in str(caught.value)


def test_a_key_that_is_not_the_address_is_refused() -> None:
    with pytest.raises(KeystoreError, match="not the key of"):
        LocalSigner(LocalSigner.from_key(keccak(b"bob")).address, keccak(b"alice"))


BASE_TX = {"type": 2, "chainId": 31337, "nonce": 0, "maxPriorityFeePerGas": 1, "maxFeePerGas": 2, "gas": 21000,
           "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "value": 1, "data": b""}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"gasPrice": 1}, "gasPrice"),
        ({"type": 0}, "type 2"),
        ({"from": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}, "'from'"),
        ({"value": -1}, "'value'"),
        ({"nonce": 2**64}, "'nonce'"),
        ({"gas": True}, "'gas'"),
        ({"chainId": "31337"}, "'chainId'"),
        ({"to": "0x70997970c51812dc3A010C7d01b50e0d17dc79C8"}, "checksum"),
        ({"to": "0x1234"}, "'to'"),
        ({"data": "0xzz"}, "'data'"),
        ({"accessList": [{"address": BASE_TX["to"], "storageKeys": ["0x00"]}]}, "32 bytes"),
    ],
)
def test_malformed_transactions_are_refused_naming_the_field(change: dict[str, Any], named: str) -> None:
    with pytest.raises(AbiEncodingError, match=named):
        LocalSigner.from_key(keccak(b"alice")).sign_transaction({**BASE_TX, **change})
    required = {k: v for k, v in BASE_TX.items() if k != "chainId"}
    with pytest.raises(AbiEncodingError, match="chainId"):
        LocalSigner.from_key(keccak(b"alice")).sign_transaction(required)


# --- keystores -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kdf", "iterations"), [("scrypt", FAST), ("pbkdf2", 1000)])
def test_eth_account_keystores_decrypt_to_their_key(kdf: str, iterations: int) -> None:
    key = keccak(kdf.encode())
    keyfile = Account.encrypt(key, "pässwörd", kdf=kdf, iterations=iterations)
    signer = decrypt_keyfile(json.loads(json.dumps(keyfile)), "pässwörd")
    assert signer.key == key == bytes(Account.decrypt(keyfile, "pässwörd"))
    assert signer.address == Account.from_key(key).address


def _keyfile(kdf: str = "scrypt") -> dict[str, Any]:
    return dict(Account.encrypt(keccak(b"carol"), "right", kdf=kdf, iterations=FAST if kdf == "scrypt" else 1000))


@pytest.mark.parametrize("kdf", ["scrypt", "pbkdf2"])
def test_wrong_password(kdf: str) -> None:
    with pytest.raises(KeystoreError, match="wrong password"):
        decrypt_keyfile(_keyfile(kdf), "wrong")


@pytest.mark.parametrize("part", ["mac", "ciphertext"])
def test_a_tampered_mac_or_ciphertext_is_refused(part: str) -> None:
    keyfile = _keyfile()
    value = keyfile["crypto"][part]
    keyfile["crypto"][part] = value[:-1] + ("0" if value[-1] != "0" else "1")
    with pytest.raises(KeystoreError, match="MAC does not match"):
        decrypt_keyfile(keyfile, "right")


def test_a_keystore_whose_key_is_not_its_address_is_refused() -> None:
    keyfile = _keyfile()
    keyfile["address"] = "70997970c51812dc3a010c7d01b50e0d17dc79c8"
    with pytest.raises(KeystoreError, match="records address"):
        decrypt_keyfile(keyfile, "right")


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"n": 2**40}, "'n' = 1099511627776 is above the ceiling"),
        ({"n": 2**20, "r": 16}, "bytes of memory"),
        ({"n": 2**18, "r": 8, "p": 16}, "'p' ="),
        ({"n": 1000}, "power of two"),
        ({"dklen": 2**30}, "'dklen'"),
        ({"r": "8"}, "'r' is missing or not an integer"),
    ],
)
def test_absurd_scrypt_parameters_are_refused_before_any_work(params: dict[str, Any], named: str) -> None:
    keyfile = _keyfile()
    keyfile["crypto"]["kdfparams"].update(params)
    started = time.perf_counter()
    with pytest.raises(KeystoreError, match=named):
        decrypt_keyfile(keyfile, "right")
    assert time.perf_counter() - started < 0.5


def test_absurd_pbkdf2_iterations_are_refused() -> None:
    keyfile = _keyfile("pbkdf2")
    keyfile["crypto"]["kdfparams"]["c"] = 10**12
    with pytest.raises(KeystoreError, match="'c' = 1000000000000 is above the ceiling"):
        decrypt_keyfile(keyfile, "right")


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda k: k.update(version=4), "version 4"),
        (lambda k: k["crypto"].update(cipher="aes-256-gcm"), "cipher"),
        (lambda k: k["crypto"]["cipherparams"].update(iv="00"), "'iv' is 1 bytes"),
        (lambda k: k["crypto"].update(ciphertext="xyz"), "'ciphertext' is not hex"),
        (lambda k: k["crypto"].pop("mac"), "'mac' is missing"),
        (lambda k: k["crypto"].update(kdf="argon2"), "unsupported key derivation"),
    ],
)
def test_malformed_keystores_are_refused(edit: Any, named: str) -> None:
    keyfile = _keyfile()
    edit(keyfile)
    with pytest.raises(KeystoreError, match=named):
        decrypt_keyfile(keyfile, "right")


# --- the state directory's keystores, and a transaction signed without eth-account -------------------------


def test_keystores_made_by_create_keystore_unlock_into_a_local_signer(tmp_path: Path) -> None:
    key = keccak(b"dave")
    entry = create_keystore(tmp_path, "pw", name="dave", private_key=key, iterations=FAST)
    signer = unlock_keystore(entry.path, "pw")
    assert isinstance(signer, LocalSigner) and signer.key == key and signer.address == entry.address
    assert load_local_signer(tmp_path, env={"FEDCHAIN_PASSWORD": "pw"}) == signer
    assert load_local_signer(tmp_path, "dave", env={}, prompt=lambda _: "pw") == signer
    assert bytes(decrypt_keystore(entry.path, "pw").key) == key  # the eth-account form holds the same key
    with pytest.raises(KeystoreError, match="wrong password"):
        unlock_keystore(entry.path, "wrong")


def test_the_environments_key_is_a_local_signer(tmp_path: Path) -> None:
    key = keccak(b"erin")
    assert signer_from_env({"FEDCHAIN_PRIVATE_KEY": "0x" + key.hex()}) == LocalSigner.from_key(key)
    assert load_local_signer(tmp_path, env={"FEDCHAIN_PRIVATE_KEY": key.hex()}).key == key
    assert signer_from_env({}) is None
    with pytest.raises(KeystoreError, match="FEDCHAIN_PRIVATE_KEY is not a valid"):
        signer_from_env({"FEDCHAIN_PRIVATE_KEY": "0x1234"})


PROBE = """
import json, sys, time
from pathlib import Path
started = time.process_time()
from fedchain.chain.accounts import load_local_signer
from fedchain.chain.connection import Connection
state_dir, url, to = sys.argv[1:4]
signer = load_local_signer(Path(state_dir), env={"FEDCHAIN_PASSWORD": "pw"})
report = Connection(url).transfer(signer, to, 12345)
heavy = sorted(m for m in ("eth_account", "eth_keyfile", "eth_keys", "py_ecc", "pydantic", "eth_utils", "rlp")
               if m in sys.modules)
print(json.dumps({"tx": report.tx_hash, "sender": signer.address, "heavy": heavy, "cpu_s": time.process_time() - started}))
"""


def test_a_keystore_is_unlocked_and_a_transaction_signed_and_sent_without_eth_account(
    chain_env: DevnetEnv, tmp_path: Path
) -> None:
    sender, to = chain_env.accounts.outsider, chain_env.accounts.participants[-1].address
    create_keystore(tmp_path, "pw", name="outsider", private_key=bytes(sender.key), iterations=FAST)
    before = chain_env.conn.balance(to)
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), chain_env.url, to], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["heavy"] == [], f"signing imported {probe['heavy']}"
    assert probe["sender"] == sender.address
    assert chain_env.conn.balance(to) == before + 12345
    tx = chain_env.conn.request("eth_getTransactionByHash", [probe["tx"]])
    assert to_checksum_address(tx["from"]) == sender.address and int(tx["type"], 16) == 2


SIGN_PROBE = """
import json, sys
from pathlib import Path
import fedchain.chain.connection, fedchain.chain.incentives, fedchain.chain.governance
from fedchain.chain.accounts import load_local_signer
from fedchain.codec.eip712 import commitment_digest
signer = load_local_signer(Path(sys.argv[1]), env={"FEDCHAIN_PASSWORD": "pw"})
raw = signer.sign_transaction({"chainId": 1, "nonce": 0, "maxPriorityFeePerGas": 1, "maxFeePerGas": 2, "gas": 21000,
                               "to": None, "value": 0, "data": b"\\x00"})
digest = commitment_digest(1, signer.address, 1, signer.address, bytes(32), "bafy", 1, bytes(32))
signature = signer.sign_digest(digest)
heavy = sorted(m for m in ("eth_account", "eth_keyfile", "eth_keys", "py_ecc", "pydantic", "eth_utils", "rlp")
               if m in sys.modules)
print(json.dumps({"raw": raw.hex(), "signature": signature.hex(), "heavy": heavy}))
"""


def test_unlocking_and_signing_import_no_eth_account(tmp_path: Path) -> None:
    key = keccak(b"frank")
    create_keystore(tmp_path, "pw", name="frank", private_key=key, iterations=FAST)
    done = subprocess.run([sys.executable, "-c", SIGN_PROBE, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["heavy"] == [], f"unlocking and signing imported {probe['heavy']}"
    tx = {"type": 2, "chainId": 1, "nonce": 0, "maxPriorityFeePerGas": 1, "maxFeePerGas": 2, "gas": 21000, "value": 0,
          "data": b"\x00"}
    assert bytes.fromhex(probe["raw"]) == bytes(Account.sign_transaction(tx, key).raw_transaction)

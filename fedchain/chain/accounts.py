"""Accounts: encrypted eth-account keystores, or a key from the environment.

Keystores (Web3 Secret Storage JSON, ``Account.encrypt``) live under
``<state_dir>/keystores/<name>.json``. The password comes from ``FEDCHAIN_PASSWORD`` or a
prompt; ``FEDCHAIN_PRIVATE_KEY`` may supply a key directly. Plaintext keys are never
written anywhere and never logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from fedchain.errors import KeystoreError
from fedchain.types import Address

log = logging.getLogger(__name__)

PASSWORD_ENV = "FEDCHAIN_PASSWORD"
PRIVATE_KEY_ENV = "FEDCHAIN_PRIVATE_KEY"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class KeystoreEntry:
    """A keystore file in the state directory: its name (the file stem), its account and its path."""

    name: str
    address: Address
    path: Path


def keystore_dir(state_dir: Path) -> Path:
    """The directory holding the keystores of ``state_dir``."""
    return Path(state_dir) / "keystores"


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise KeystoreError(
            f"invalid keystore name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def create_keystore(
    state_dir: Path,
    password: str,
    *,
    name: str | None = None,
    private_key: str | bytes | None = None,
    iterations: int | None = None,
) -> KeystoreEntry:
    """Create (or import ``private_key`` into) an encrypted keystore; refuses to overwrite.

    ``iterations`` is the KDF work factor (scrypt ``n``); None uses eth-account's default."""
    if not password:
        raise KeystoreError("refusing to create a keystore with an empty password")
    try:
        account: LocalAccount = Account.from_key(private_key) if private_key is not None else Account.create()
    except (ValueError, TypeError) as err:
        raise KeystoreError("the private key is not a valid 32-byte secp256k1 key") from err
    address = Address(to_checksum_address(account.address))
    name = _check_name(name or address)
    directory = keystore_dir(state_dir)
    path = directory / f"{name}.json"
    if path.exists():
        raise KeystoreError(f"keystore {path} already exists")
    for entry in list_keystores(state_dir):
        if entry.address == address:
            raise KeystoreError(f"{address} already has a keystore: {entry.path}")
    keyfile: dict[str, Any] = Account.encrypt(account.key, password, iterations=iterations)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(keyfile, handle)
    os.replace(tmp, path)
    log.info("created keystore %s for %s", path, address)
    return KeystoreEntry(name=name, address=address, path=path)


def _read_keyfile(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise KeystoreError(f"keystore not found: {path}") from err
    except (OSError, ValueError) as err:
        raise KeystoreError(f"keystore {path} is not valid JSON: {err}") from err
    if not isinstance(data, dict) or "crypto" not in data and "Crypto" not in data:
        raise KeystoreError(f"{path} is not an encrypted keystore (no 'crypto' section)")
    return data


def keystore_address(path: Path) -> Address:
    """The checksummed address a keystore file records, read without decrypting it."""
    data = _read_keyfile(path)
    raw = str(data.get("address", ""))
    if not is_address(raw if raw.startswith("0x") else "0x" + raw):
        raise KeystoreError(f"keystore {path} has no valid address field")
    return Address(to_checksum_address(raw if raw.startswith("0x") else "0x" + raw))


def list_keystores(state_dir: Path) -> list[KeystoreEntry]:
    """The keystores in ``state_dir``, sorted by file name."""
    directory = keystore_dir(state_dir)
    if not directory.is_dir():
        return []
    return [
        KeystoreEntry(name=path.stem, address=keystore_address(path), path=path)
        for path in sorted(directory.glob("*.json"))
    ]


def find_keystore(state_dir: Path, name_or_address: str) -> KeystoreEntry:
    """A keystore by its name or its address (case-insensitive)."""
    wanted = name_or_address.lower()
    for entry in list_keystores(state_dir):
        if entry.name.lower() == wanted or entry.address.lower() == wanted:
            return entry
    raise KeystoreError(f"no keystore named {name_or_address!r} under {keystore_dir(state_dir)}")


def decrypt_keystore(path: Path, password: str) -> LocalAccount:
    """Unlock a keystore; a wrong password raises :class:`KeystoreError`."""
    data = _read_keyfile(path)
    try:
        key = Account.decrypt(data, password)
    except ValueError as err:
        raise KeystoreError(f"wrong password for keystore {path}") from err
    except (KeyError, TypeError, NotImplementedError) as err:
        raise KeystoreError(f"keystore {path} is malformed: {err}") from err
    account: LocalAccount = Account.from_key(key)
    return account


def password_from(
    env: Mapping[str, str] | None = None, prompt: Callable[[str], str] | None = None, *, what: str = "Keystore password"
) -> str:
    """``FEDCHAIN_PASSWORD`` if set, else ``prompt(what)``; KeystoreError when neither is available."""
    env = os.environ if env is None else env
    value = env.get(PASSWORD_ENV)
    if value:
        return value
    if prompt is None:
        raise KeystoreError(f"no password: set {PASSWORD_ENV} or run interactively")
    return prompt(what)


def account_from_env(env: Mapping[str, str] | None = None) -> LocalAccount | None:
    """The account of ``FEDCHAIN_PRIVATE_KEY``, or None when unset."""
    env = os.environ if env is None else env
    raw = env.get(PRIVATE_KEY_ENV)
    if not raw:
        return None
    try:
        account: LocalAccount = Account.from_key(raw.strip())
    except (ValueError, TypeError) as err:
        raise KeystoreError(f"{PRIVATE_KEY_ENV} is not a valid 32-byte hex private key") from err
    return account


def load_signer(
    state_dir: Path,
    keystore: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] | None = None,
) -> LocalAccount:
    """The signing account: ``FEDCHAIN_PRIVATE_KEY``, else the given keystore (a path, a
    name or an address under ``state_dir``), else the only keystore under ``state_dir``."""
    from_env = account_from_env(env)
    if from_env is not None:
        return from_env
    if keystore is not None:
        candidate = Path(keystore)
        path = candidate if candidate.suffix == ".json" or candidate.exists() else find_keystore(state_dir, str(keystore)).path
    else:
        entries = list_keystores(state_dir)
        if len(entries) != 1:
            raise KeystoreError(
                f"{'no' if not entries else len(entries)} keystores under {keystore_dir(state_dir)}: "
                f"pass --keystore or set {PRIVATE_KEY_ENV}"
            )
        path = entries[0].path
    return decrypt_keystore(path, password_from(env, prompt))

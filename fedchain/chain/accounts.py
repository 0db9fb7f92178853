"""Accounts: encrypted keystores, or a key from the environment, unlocked into a :class:`LocalSigner`.

Keystores (Web3 Secret Storage JSON, made by eth-account's ``Account.encrypt``, unlocked by
:func:`fedchain.chain.signer.decrypt_keyfile` without importing eth-account) live under
``<state_dir>/keystores/<name>.json`` (the directory 0700, each file 0600). The password comes
from ``FEDCHAIN_PASSWORD`` or a prompt; ``FEDCHAIN_PRIVATE_KEY`` may supply a key directly.
Plaintext keys are never written anywhere and never logged.

A keystore that cannot be read (not JSON, no ``crypto`` section, no valid address, larger than
:data:`MAX_KEYSTORE_BYTES`) is skipped by every lookup with a warning naming it, so one broken
file does not take the others down; asking for it by name says what is wrong with it. Before a
keystore is decrypted its KDF parameters are checked against ceilings (:data:`MAX_PBKDF2_C`,
:data:`MAX_SCRYPT_N`, ...): a keystore whose KDF would run for minutes or exhaust memory is refused
with a :class:`~fedchain.errors.KeystoreError` naming the parameter, before any work is done.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain.chain.signer import (
    DKLEN_RANGE,
    MAX_PBKDF2_C,
    MAX_SCRYPT_MEMORY,
    MAX_SCRYPT_N,
    MAX_SCRYPT_P,
    MAX_SCRYPT_R,
    MAX_SCRYPT_WORK,
    LocalSigner,
    check_kdf,
    decrypt_keyfile,
)
from fedchain.codec.abi import is_address, to_checksum_address
from fedchain.config import open_private, private_dir
from fedchain.errors import KeystoreError
from fedchain.types import Address

if TYPE_CHECKING:
    from eth_account.account import Account as AccountClass
    from eth_account.signers.local import LocalAccount

log = logging.getLogger(__name__)

PASSWORD_ENV = "FEDCHAIN_PASSWORD"
PRIVATE_KEY_ENV = "FEDCHAIN_PRIVATE_KEY"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

MAX_KEYSTORE_BYTES = 64 * 1024
"""A keystore is about 500 bytes; a larger file is not one."""
__all__ = [
    "DKLEN_RANGE",
    "MAX_KEYSTORE_BYTES",
    "MAX_PBKDF2_C",
    "MAX_SCRYPT_MEMORY",
    "MAX_SCRYPT_N",
    "MAX_SCRYPT_P",
    "MAX_SCRYPT_R",
    "MAX_SCRYPT_WORK",
    "PASSWORD_ENV",
    "PRIVATE_KEY_ENV",
    "KeystoreEntry",
    "LocalSigner",
    "SkippedKeystore",
    "account_from_env",
    "check_kdf",
    "create_keystore",
    "decrypt_keystore",
    "find_keystore",
    "keystore_address",
    "keystore_dir",
    "list_keystores",
    "load_local_signer",
    "load_signer",
    "password_from",
    "scan_keystores",
    "signer_from_env",
    "unlock_keystore",
]


@dataclass(frozen=True)
class KeystoreEntry:
    """A keystore file in the state directory: its name (the file stem), its account and its path."""

    name: str
    address: Address
    path: Path


def _account() -> type[AccountClass]:
    """eth-account's ``Account``, imported only to make a keystore (a one-off command; it costs about a second,
    which unlocking a keystore, reading a key or signing does not pay)."""
    from eth_account import Account

    return Account


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
    if private_key is None:
        account = LocalSigner.from_key(bytes(_account().create().key))
    else:
        try:
            account = LocalSigner.from_key(private_key)
        except KeystoreError as err:
            raise KeystoreError("the private key is not a valid 32-byte secp256k1 key") from err
    address = account.address
    name = _check_name(name or address)
    directory = keystore_dir(state_dir)
    path = directory / f"{name}.json"
    if path.exists():
        raise KeystoreError(f"keystore {path} already exists")
    for entry in list_keystores(state_dir):
        if entry.address == address:
            raise KeystoreError(f"{address} already has a keystore: {entry.path}")
    keyfile: dict[str, Any] = _account().encrypt(account.key, password, iterations=iterations)
    private_dir(Path(state_dir), tighten=False)
    private_dir(directory)
    tmp = path.with_suffix(".json.tmp")
    with open_private(tmp) as handle:
        handle.write(json.dumps(keyfile).encode("utf-8"))
    os.replace(tmp, path)
    log.info("created keystore %s for %s", path, address)
    return KeystoreEntry(name=name, address=address, path=path)


def _read_keyfile(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_KEYSTORE_BYTES + 1)
    except FileNotFoundError as err:
        raise KeystoreError(f"keystore not found: {path}") from err
    except OSError as err:
        raise KeystoreError(f"keystore {path} cannot be read: {err}") from err
    if len(raw) > MAX_KEYSTORE_BYTES:
        raise KeystoreError(f"keystore {path} is larger than {MAX_KEYSTORE_BYTES} bytes: not a keystore")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
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


@dataclass(frozen=True)
class SkippedKeystore:
    """A file in the keystores directory that is not a usable keystore, and why."""

    path: Path
    reason: str


def scan_keystores(state_dir: Path) -> tuple[list[KeystoreEntry], list[SkippedKeystore]]:
    """The readable keystores under ``state_dir`` and the files skipped (each logged as a warning)."""
    directory = keystore_dir(state_dir)
    if not directory.is_dir():
        return [], []
    entries: list[KeystoreEntry] = []
    skipped: list[SkippedKeystore] = []
    for path in sorted(directory.glob("*.json")):
        try:
            entries.append(KeystoreEntry(name=path.stem, address=keystore_address(path), path=path))
        except KeystoreError as err:
            log.warning("skipping keystore %s: %s", path, err)
            skipped.append(SkippedKeystore(path=path, reason=str(err)))
    return entries, skipped


def list_keystores(state_dir: Path) -> list[KeystoreEntry]:
    """The readable keystores under ``state_dir``, sorted by file name; unreadable ones are
    skipped with a warning naming them."""
    return scan_keystores(state_dir)[0]


def find_keystore(state_dir: Path, name_or_address: str) -> KeystoreEntry:
    """A keystore by its name or its address (case-insensitive). A keystore named so that
    cannot be read is an error saying why; other unreadable ones are skipped with a warning."""
    wanted = name_or_address.lower()
    entries, skipped = scan_keystores(state_dir)
    for entry in entries:
        if entry.name.lower() == wanted or entry.address.lower() == wanted:
            return entry
    for bad in skipped:
        if bad.path.stem.lower() == wanted:
            raise KeystoreError(f"keystore {name_or_address!r} cannot be used: {bad.reason}")
    raise KeystoreError(f"no keystore named {name_or_address!r} under {keystore_dir(state_dir)}")


def unlock_keystore(path: Path, password: str) -> LocalSigner:
    """Unlock a keystore into a :class:`LocalSigner` (:func:`fedchain.chain.signer.decrypt_keyfile`: no eth-account);
    a wrong password raises :class:`KeystoreError`, and so do KDF parameters above the ceilings (checked first, see
    :func:`check_kdf`)."""
    return decrypt_keyfile(_read_keyfile(path), password, path=path)


def _as_account(signer: LocalSigner) -> LocalAccount:
    account: LocalAccount = _account().from_key(signer.key)
    return account


def decrypt_keystore(path: Path, password: str) -> LocalAccount:
    """:func:`unlock_keystore` as an eth-account ``LocalAccount`` (for callers typed for one; it imports
    eth-account, about a second of CPU, which :func:`unlock_keystore` does not)."""
    return _as_account(unlock_keystore(path, password))


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


def signer_from_env(env: Mapping[str, str] | None = None) -> LocalSigner | None:
    """The signer of ``FEDCHAIN_PRIVATE_KEY``, or None when unset."""
    env = os.environ if env is None else env
    raw = env.get(PRIVATE_KEY_ENV)
    if not raw:
        return None
    try:
        return LocalSigner.from_key(raw.strip())
    except KeystoreError as err:
        raise KeystoreError(f"{PRIVATE_KEY_ENV} is not a valid 32-byte hex private key") from err


def account_from_env(env: Mapping[str, str] | None = None) -> LocalAccount | None:
    """:func:`signer_from_env` as an eth-account ``LocalAccount`` (imports eth-account), or None when unset."""
    signer = signer_from_env(env)
    return None if signer is None else _as_account(signer)


def load_local_signer(
    state_dir: Path,
    keystore: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] | None = None,
) -> LocalSigner:
    """The signer: ``FEDCHAIN_PRIVATE_KEY``, else the given keystore (a path, a name or an address under
    ``state_dir``), else the only keystore under ``state_dir``; no eth-account is imported."""
    from_env = signer_from_env(env)
    if from_env is not None:
        return from_env
    if keystore is not None:
        candidate = Path(keystore)
        # a path names a file (a folder of the keystore's name in the working directory is not one)
        path = candidate if candidate.suffix == ".json" or candidate.is_file() else find_keystore(state_dir, str(keystore)).path
    else:
        entries, skipped = scan_keystores(state_dir)
        if len(entries) != 1:
            unusable = f" ({len(skipped)} unreadable skipped: {', '.join(b.path.name for b in skipped)})" if skipped else ""
            raise KeystoreError(
                f"{'no' if not entries else len(entries)} keystores under {keystore_dir(state_dir)}{unusable}: "
                f"pass --keystore or set {PRIVATE_KEY_ENV}"
            )
        path = entries[0].path
    return unlock_keystore(path, password_from(env, prompt))


def load_signer(
    state_dir: Path,
    keystore: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] | None = None,
) -> LocalAccount:
    """:func:`load_local_signer` as an eth-account ``LocalAccount`` (for callers typed for one; imports eth-account)."""
    return _as_account(load_local_signer(state_dir, keystore, env=env, prompt=prompt))

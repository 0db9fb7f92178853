"""Configuration, parsed once into a frozen object.

Precedence: CLI flag > ``FEDCHAIN_*`` environment variable > ``fedchain.toml`` > defaults.
Private keys are never read from the config file: only from an encrypted keystore or
the ``FEDCHAIN_PRIVATE_KEY`` environment variable (see :mod:`fedchain.chain.accounts`).
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import IO, Any

from fedchain.errors import ConfigError
from fedchain.types import digest_hex, parse_digest

__all__ = [
    "CONFIG_FILE_NAME",
    "ENV_PREFIX",
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "Settings",
    "load_settings",
    "open_private",
    "private_dir",
]

ENV_PREFIX = "FEDCHAIN_"
CONFIG_FILE_NAME = "fedchain.toml"
_FORBIDDEN_KEYS = {"private_key", "privatekey", "key", "mnemonic", "password"}


@dataclass(frozen=True)
class Settings:
    """All tunables of a fedchain process."""

    state_dir: Path = Path(".fedchain")
    rpc_url: str | None = None  # None: the devnet recorded under state_dir
    chain_id: int | None = None  # expected chain id; None: whatever the deployment says
    ipfs_api: str | None = None  # None: the IPFS node recorded under state_dir
    store: str = "ipfs"  # "ipfs" or "local"
    keystore: Path | None = None
    toolchain: Path | None = None  # the Node toolchain dir; None: the checkout's hardhat-local/
    max_blob_bytes: int = 256 * 1024 * 1024
    http_timeout_s: float = 30.0
    tx_timeout_s: float = 120.0
    devnet_block_time_s: float = 1.0  # interval mining of the managed devnet (0: a block per transaction only)
    trusted_models: tuple[str, ...] = ()  # digests of custom model sources a participant runs (--trust-model)

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with the given non-None values applied (CLI flags)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return _coerce(replace(self, **given)) if given else self


def _coerce(s: Settings) -> Settings:
    if s.store not in ("ipfs", "local"):
        raise ConfigError(f"store must be 'ipfs' or 'local', got {s.store!r}")
    if s.max_blob_bytes <= 0:
        raise ConfigError(f"max_blob_bytes must be positive, got {s.max_blob_bytes}")
    if not 0 <= s.devnet_block_time_s <= 3600:
        raise ConfigError(f"devnet_block_time_s must be between 0 (off) and 3600 seconds, got {s.devnet_block_time_s}")
    trusted = []
    for entry in s.trusted_models:
        try:
            trusted.append(digest_hex(parse_digest(str(entry).strip())))
        except ValueError as err:
            raise ConfigError(f"trusted_models: {entry!r} is not a model digest (0x and 64 hex digits): {err}") from err
    return replace(
        s,
        trusted_models=tuple(dict.fromkeys(trusted)),
        state_dir=Path(s.state_dir),
        keystore=Path(s.keystore) if s.keystore is not None else None,
        toolchain=Path(s.toolchain) if s.toolchain is not None else None,
    )


def _convert(name: str, raw: Any, source: str) -> Any:
    types = {f.name: f.type for f in fields(Settings)}
    kind = str(types[name])
    try:
        if kind.startswith("tuple"):  # a TOML array, or a comma-separated environment variable
            items = raw.split(",") if isinstance(raw, str) else raw
            if not isinstance(items, (list, tuple)):
                raise TypeError(f"expected a list, got {type(raw).__name__}")
            return tuple(str(item).strip() for item in items if str(item).strip())
        if "int" in kind and "Path" not in kind:
            return int(raw)
        if "float" in kind:
            return float(raw)
        if "Path" in kind:
            return Path(str(raw))
        return str(raw)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: {name} has an invalid value {raw!r}") from err


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    **cli_overrides: Any,
) -> Settings:
    """Build :class:`Settings` from defaults, ``fedchain.toml``, environment and CLI flags."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    known = {f.name for f in fields(Settings)}

    path = config_file or Path(env.get(ENV_PREFIX + "CONFIG", CONFIG_FILE_NAME))
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"cannot read {path}: {err}") from err
        section = data.get("fedchain", data)
        for key, raw in section.items():
            if key.lower() in _FORBIDDEN_KEYS:
                raise ConfigError(f"{path}: '{key}' must not be stored in a config file; use a keystore")
            if key not in known:
                raise ConfigError(f"{path}: unknown setting '{key}'")
            values[key] = _convert(key, raw, str(path))
    elif config_file is not None:
        raise ConfigError(f"config file not found: {config_file}")

    for name in known:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw not in (None, ""):
            values[name] = _convert(name, raw, ENV_PREFIX + name.upper())

    settings = _coerce(Settings(**values))
    return settings.with_overrides(**cli_overrides)


# --- files of the state directory ----------------------------------------------------------

PRIVATE_DIR_MODE = 0o700
"""Directories fedchain creates for state, keys, blobs and participant data: owner only."""
PRIVATE_FILE_MODE = 0o600
"""Files in them: readable and writable by the owner only."""


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """Create ``path`` and any missing parents owner-only (0700) and return it.

    An existing ``path`` is made 0700 too when ``tighten`` (a directory fedchain names itself:
    ``keystores/``, ``devnet/``, a blob store); pass ``tighten=False`` for a directory the user
    may have chosen (the state directory itself), which is then left as it is."""
    path = Path(path)
    missing: list[Path] = []
    cursor = path
    while not cursor.exists() and cursor != cursor.parent:
        missing.append(cursor)
        cursor = cursor.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            pass  # made meanwhile by another process
        os.chmod(directory, PRIVATE_DIR_MODE)  # mkdir's mode passes through the umask
    if not path.is_dir():
        raise ConfigError(f"{path} exists and is not a directory")
    if tighten and path not in missing and stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, PRIVATE_DIR_MODE)
    return path


def open_private(path: Path, *, append: bool = False) -> IO[bytes]:
    """Open ``path`` for binary writing (created, truncated unless ``append``) with mode 0600,
    also when it existed with a wider mode."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab" if append else "wb")

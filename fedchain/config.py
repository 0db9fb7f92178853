"""Configuration, parsed once into a frozen object.

Precedence: CLI flag > ``FEDCHAIN_*`` environment variable > ``fedchain.toml`` > defaults.
Private keys are never read from the config file: only from an encrypted keystore or
the ``FEDCHAIN_PRIVATE_KEY`` environment variable (see :mod:`fedchain.chain.accounts`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from fedchain.errors import ConfigError

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

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with the given non-None values applied (CLI flags)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return _coerce(replace(self, **given)) if given else self


def _coerce(s: Settings) -> Settings:
    if s.store not in ("ipfs", "local"):
        raise ConfigError(f"store must be 'ipfs' or 'local', got {s.store!r}")
    if s.max_blob_bytes <= 0:
        raise ConfigError(f"max_blob_bytes must be positive, got {s.max_blob_bytes}")
    return replace(
        s,
        state_dir=Path(s.state_dir),
        keystore=Path(s.keystore) if s.keystore is not None else None,
        toolchain=Path(s.toolchain) if s.toolchain is not None else None,
    )


def _convert(name: str, raw: Any, source: str) -> Any:
    types = {f.name: f.type for f in fields(Settings)}
    kind = str(types[name])
    try:
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

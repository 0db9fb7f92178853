import os
import stat
from pathlib import Path

import pytest

from fedchain.config import Settings, load_settings, open_private, private_dir
from fedchain.errors import ConfigError, ExitCode


def test_defaults_when_nothing_is_configured(tmp_path: Path) -> None:
    settings = load_settings(config_file=None, env={"FEDCHAIN_CONFIG": str(tmp_path / "absent.toml")})
    assert settings == Settings()


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    cfg = tmp_path / "fedchain.toml"
    cfg.write_text('[fedchain]\nrpc_url = "http://file"\nipfs_api = "http://file-ipfs"\nstore = "local"\n')
    env = {"FEDCHAIN_RPC_URL": "http://env"}
    settings = load_settings(config_file=cfg, env=env, rpc_url="http://flag", store=None)
    assert settings.rpc_url == "http://flag"
    assert settings.ipfs_api == "http://file-ipfs"
    assert settings.store == "local"
    assert load_settings(config_file=cfg, env=env).rpc_url == "http://env"


def test_env_values_are_typed(tmp_path: Path) -> None:
    env = {"FEDCHAIN_CHAIN_ID": "31337", "FEDCHAIN_STATE_DIR": str(tmp_path), "FEDCHAIN_HTTP_TIMEOUT_S": "2.5"}
    settings = load_settings(env=env | {"FEDCHAIN_CONFIG": str(tmp_path / "none.toml")})
    assert settings.chain_id == 31337
    assert settings.state_dir == tmp_path
    assert settings.http_timeout_s == 2.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('private_key = "0xabc"', "must not be stored"),
        ('colour = "blue"', "unknown setting 'colour'"),
        ('store = "s3"', "store must be"),
        ("chain_id = 'x'", "chain_id has an invalid value"),
        ("not toml [", "cannot read"),
    ],
)
def test_bad_config_file_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "fedchain.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(config_file=cfg, env={})
    assert info.value.exit_code == ExitCode.CONFIG


def test_explicit_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(config_file=tmp_path / "nope.toml", env={})


# --- files of the state directory ------------------------------------------------------------


def test_private_dir_creates_missing_parents_owner_only_and_narrows_an_open_leaf(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "a" / "b" / "c")
    assert all(stat.S_IMODE((tmp_path / p).stat().st_mode) == 0o700 for p in ("a", "a/b", "a/b/c"))
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o755)
    private_dir(open_dir, tighten=False)
    assert stat.S_IMODE(open_dir.stat().st_mode) == 0o755  # a directory the user chose is left alone
    private_dir(open_dir)
    assert stat.S_IMODE(open_dir.stat().st_mode) == 0o700
    assert made == tmp_path / "a" / "b" / "c"


def test_private_dir_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        private_dir(tmp_path / "taken")


def test_open_private_narrows_an_existing_open_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("old")
    os.chmod(path, 0o644)
    with open_private(path) as handle:
        handle.write(b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    with open_private(path, append=True) as handle:
        handle.write(b"er")
    assert path.read_bytes() == b"newer"


def test_devnet_block_time_setting_is_typed_and_bounded(tmp_path: Path) -> None:
    none = {"FEDCHAIN_CONFIG": str(tmp_path / "none.toml")}
    assert load_settings(env=none).devnet_block_time_s == 1.0
    assert load_settings(env={**none, "FEDCHAIN_DEVNET_BLOCK_TIME_S": "0.5"}).devnet_block_time_s == 0.5
    with pytest.raises(ConfigError, match="devnet_block_time_s must be between 0"):
        load_settings(env={**none, "FEDCHAIN_DEVNET_BLOCK_TIME_S": "-1"})

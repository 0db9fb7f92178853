from pathlib import Path

import pytest

from fedchain.config import Settings, load_settings
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

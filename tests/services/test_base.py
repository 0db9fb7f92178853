"""The Node toolchain setting (flag > env > fedchain.toml > the checkout's hardhat-local/) and the
shared service record: unit tests, no process is started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedchain.config import load_settings
from fedchain.errors import ConfigError, ServiceError, ToolchainNotFoundError
from fedchain.services import base
from fedchain.services.base import ServiceRecord, toolchain_dir
from fedchain.services.devnet import DevnetInfo, anvil_binary

REPO = Path(__file__).resolve().parents[2]


def test_checkout_default_is_hardhat_local(tmp_path: Path) -> None:
    assert toolchain_dir(load_settings(env={"FEDCHAIN_CONFIG": str(tmp_path / "none.toml")})) == REPO / "hardhat-local"


def test_flag_over_env_over_file(tmp_path: Path) -> None:
    flag, env, file = (tmp_path / name for name in ("flag", "env", "file"))
    for path in (flag, env, file):
        path.mkdir()
    (tmp_path / "c.toml").write_text(f'[fedchain]\ntoolchain = "{file}"\n', encoding="utf-8")
    cfg = {"FEDCHAIN_CONFIG": str(tmp_path / "c.toml")}
    assert toolchain_dir(load_settings(env=cfg)) == file
    assert toolchain_dir(load_settings(env={**cfg, "FEDCHAIN_TOOLCHAIN": str(env)})) == env
    assert toolchain_dir(load_settings(env={**cfg, "FEDCHAIN_TOOLCHAIN": str(env)}, toolchain=flag)) == flag


def test_a_configured_toolchain_that_is_no_directory_names_the_setting(tmp_path: Path) -> None:
    settings = load_settings(env={"FEDCHAIN_CONFIG": str(tmp_path / "none.toml"), "FEDCHAIN_TOOLCHAIN": str(tmp_path / "gone")})
    with pytest.raises(ConfigError, match=r"the toolchain setting \(--toolchain, FEDCHAIN_TOOLCHAIN") as info:
        toolchain_dir(settings)
    assert not isinstance(info.value, ToolchainNotFoundError)


def test_outside_a_checkout_without_a_setting_names_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(base, "checkout_toolchain", lambda: None)
    with pytest.raises(ToolchainNotFoundError, match="set the toolchain setting"):
        toolchain_dir(load_settings(env={"FEDCHAIN_CONFIG": str(tmp_path / "none.toml")}))


def test_anvil_falls_back_to_path_without_a_toolchain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "anvil"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n", encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setattr(base, "checkout_toolchain", lambda: None)
    monkeypatch.delenv("FEDCHAIN_ANVIL", raising=False)
    monkeypatch.delenv("FEDCHAIN_TOOLCHAIN", raising=False)
    monkeypatch.setenv("FEDCHAIN_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("PATH", str(fake.parent))
    assert anvil_binary() == fake
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="anvil is not on PATH, and the Node toolchain was not found"):
        anvil_binary()


def _info(pid: int) -> DevnetInfo:
    return DevnetInfo("anvil", pid, "http://127.0.0.1:1", 1, 31337, None, "anvil.log", 0.0)


def test_record_round_trips_while_its_process_runs(tmp_path: Path) -> None:
    record = ServiceRecord("thing", "thing.json", DevnetInfo.from_json, lambda _info: "python")
    record.write(tmp_path, _info(os.getpid()))
    assert record.read(tmp_path) == _info(os.getpid())
    record.remove(tmp_path)
    assert record.read(tmp_path) is None


def test_record_of_another_process_is_not_ours(tmp_path: Path) -> None:
    record = ServiceRecord("thing", "thing.json", DevnetInfo.from_json, lambda _info: "no-such-marker-xyz")
    record.write(tmp_path, _info(os.getpid()))
    assert record.read(tmp_path) is None
    assert record.stop(tmp_path, timeout_s=1.0) is None
    assert not record.path(tmp_path).exists()


def test_unreadable_record_is_a_service_error(tmp_path: Path) -> None:
    record = ServiceRecord("thing", "thing.json", DevnetInfo.from_json, lambda _info: "python")
    record.path(tmp_path).write_text('{"engine": "geth"}', encoding="utf-8")
    with pytest.raises(ServiceError, match=r"thing record .*thing\.json is unreadable"):
        record.read(tmp_path)

"""``fedchain store`` and ``fedchain ipfs``, in-process with CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fedchain.cli.main import cli
from fedchain.errors import ExitCode
from fedchain.services.ipfs import node_status, stop_node
from fedchain.storage import compute_cid


@pytest.fixture()
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray fedchain.toml
    for name in ("FEDCHAIN_STORE", "FEDCHAIN_IPFS_API", "FEDCHAIN_STATE_DIR", "FEDCHAIN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture()
def blob_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(np.random.default_rng(1).bytes(700_000))
    return path


def test_cid_is_computed_offline_and_stores_nothing(runner: CliRunner, blob_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["store", "cid", str(blob_file), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"cid": compute_cid(blob_file.read_bytes()), "size": 700_000}
    assert not (tmp_path / ".fedchain").exists()


def test_put_then_get_through_the_local_store(runner: CliRunner, blob_file: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    put = runner.invoke(cli, ["store", "put", str(blob_file), "--store", "local", "--state-dir", str(state)])
    assert put.exit_code == 0, put.output
    cid = put.output.strip()
    assert cid == compute_cid(blob_file.read_bytes())

    out = tmp_path / "fetched.bin"
    got = runner.invoke(cli, ["store", "get", cid, "-o", str(out), "--store", "local", "--state-dir", str(state), "--json"])
    assert got.exit_code == 0, got.output
    assert json.loads(got.output)["verified"] is True
    assert out.read_bytes() == blob_file.read_bytes()


def test_get_of_a_tampered_local_blob_fails_with_the_integrity_code(
    runner: CliRunner, blob_file: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    cid = runner.invoke(cli, ["store", "put", str(blob_file), "--store", "local", "--state-dir", str(state)]).output.strip()
    stored = next((state / "blobs").rglob(cid))
    stored.write_bytes(stored.read_bytes()[:-1] + b"\x00")
    result = runner.invoke(cli, ["store", "get", cid, "-o", str(tmp_path / "x"), "--store", "local", "--state-dir", str(state)])
    assert result.exit_code == ExitCode.INTEGRITY
    assert "corrupt" in result.output
    assert not (tmp_path / "x").exists()


def test_get_rejects_a_malformed_cid_as_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["store", "get", "Qmnotacid", "-o", str(tmp_path / "x"), "--store", "local"])
    assert result.exit_code == ExitCode.USAGE
    assert "CID" in result.output


def test_put_to_ipfs_without_a_node_exits_storage_unavailable(runner: CliRunner, blob_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["store", "put", str(blob_file), "--store", "ipfs", "--state-dir", str(tmp_path / "s")])
    assert result.exit_code == ExitCode.STORAGE_UNAVAILABLE
    assert "fedchain ipfs start" in result.output


def test_put_and_get_through_an_explicit_ipfs_api(
    runner: CliRunner, blob_file: Path, tmp_path: Path, ipfs_api_url: str
) -> None:
    args = ["--store", "ipfs", "--ipfs-api", ipfs_api_url]
    put = runner.invoke(cli, ["store", "put", str(blob_file), *args, "--json"])
    assert put.exit_code == 0, put.output
    cid = json.loads(put.output)["cid"]
    assert cid == compute_cid(blob_file.read_bytes())
    out = tmp_path / "back.bin"
    got = runner.invoke(cli, ["store", "get", cid, "-o", str(out), *args])
    assert got.exit_code == 0, got.output
    assert out.read_bytes() == blob_file.read_bytes()


@pytest.mark.ipfs
def test_ipfs_start_status_stop(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A relative state dir (like the default .fedchain) must work: the node runs from another cwd.
    monkeypatch.chdir(tmp_path)
    state = Path("state")
    try:
        started = runner.invoke(cli, ["ipfs", "start", "--state-dir", str(state), "--json"])
        assert started.exit_code == 0, started.output
        first = json.loads(started.output)
        assert first["started"] is True and first["node"]["api_url"].startswith("http://127.0.0.1:")

        again = json.loads(runner.invoke(cli, ["ipfs", "start", "--state-dir", str(state), "--json"]).output)
        assert again["started"] is False and again["node"]["pid"] == first["node"]["pid"]

        status = json.loads(runner.invoke(cli, ["ipfs", "status", "--state-dir", str(state), "--json"]).output)
        assert status["running"] is True and status["node"]["api_url"] == first["node"]["api_url"]

        stopped = json.loads(runner.invoke(cli, ["ipfs", "stop", "--state-dir", str(state), "--json"]).output)
        assert stopped["stopped"] is True
        assert node_status(state).running is False
        after = runner.invoke(cli, ["ipfs", "status", "--state-dir", str(state)])
        assert after.exit_code == 0 and "not running" in after.output
    finally:
        stop_node(state)

"""Many participant agents per process: ``participant host`` and ``simulate --participants-per-process``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedchain.chain.accounts import create_keystore
from fedchain.cli.main import cli
from fedchain.errors import ExitCode
from fedchain.protocol.participant import READY_FILE
from fedchain.services.base import port_is_free
from fedchain.sim.federation import AGENT_FAILED_FILE
from tests.protocol.harness import Fed

PASSWORD = "test-password"


def _simulate(chain_env, tmp_path: Path, name: str, per_process: int) -> dict[str, object]:
    result = CliRunner().invoke(cli, [
        "simulate", "--clients", "4", "--rounds", "2", "--store", "local", "--rpc-url", chain_env.url,
        "--state-dir", str(tmp_path / name / "state"), "--out", str(tmp_path / name / "out"),
        "--participants-per-process", str(per_process), "--json",
    ])
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


@pytest.mark.slow
def test_simulate_with_three_agents_per_process_audits_clean(chain_env, tmp_path: Path) -> None:
    hosted = _simulate(chain_env, tmp_path, "hosted", 3)

    assert hosted["audit"]["ok"] is True and hosted["audit"]["rounds_checked"] == [1, 2]  # type: ignore[index]
    assert [len(r["included"]) for r in hosted["rounds"]] == [4, 4]  # type: ignore[attr-defined,index]
    assert [p["exit_code"] for p in hosted["participants"]] == [0, 0, 0, 0]  # type: ignore[attr-defined,index]
    assert hosted["gas"]["commitUpdate"]["count"] == 8  # type: ignore[index]
    # two host processes (3 agents, then 1), each logging to its own file
    assert sorted(p.name for p in (tmp_path / "hosted" / "out" / "run" / "logs").iterdir()) == [
        "host-0-0.log", "host-1-3.log"]


def test_simulate_refuses_zero_participants_per_process(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["simulate", "--participants-per-process", "0", "--state-dir",
                                      str(tmp_path / "state"), "--out", str(tmp_path / "out")])

    assert result.exit_code == ExitCode.CONFIG
    assert "--participants-per-process must be >= 1, got 0" in result.output


@pytest.mark.slow
def test_simulate_on_an_ephemeral_devnet_leaves_no_chain_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = CliRunner().invoke(cli, [
        "simulate", "--clients", "3", "--rounds", "2", "--store", "local", "--devnet", "ephemeral",
        "--participants-per-process", "3", "--state-dir", str(state), "--out", str(tmp_path / "out"), "--json",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["devnet"] == "ephemeral" and summary["audit"]["ok"] is True
    assert [len(r["included"]) for r in summary["rounds"]] == [3, 3]
    # no managed devnet was started: no record, no state file; and the run's own chain is gone
    assert not (state / "devnet.json").exists() and not (state / "devnet").exists()
    port = int(summary["rpc_url"].rsplit(":", 1)[1])
    assert port_is_free(port, wait_s=5.0)


def test_an_ephemeral_devnet_neither_outlives_the_run_nor_replaces_a_given_node(tmp_path: Path) -> None:
    base = ["simulate", "--devnet", "ephemeral", "--state-dir", str(tmp_path / "state"), "--out", str(tmp_path / "out")]
    for extra in (["--keep-services"], ["--rpc-url", "http://127.0.0.1:1"]):
        result = CliRunner().invoke(cli, [*base, *extra])
        assert result.exit_code == 2, result.output  # a usage error, before anything starts
        assert "--devnet ephemeral is a fresh chain of this run's own" in result.output
    assert not (tmp_path / "state").exists()


def test_a_host_reports_the_agent_with_bad_data_and_runs_the_others(fed: Fed, ipfs_api_url: str, tmp_path: Path) -> None:
    entries = []
    for i in range(2):
        keystore = create_keystore(tmp_path / f"keys-{i}", PASSWORD, private_key=bytes(fed.env.accounts.participants[i].key),
                                   iterations=2**10).path
        data = fed.clients[i].path if i == 0 else tmp_path / "missing.npz"
        entries.append({"keystore": str(keystore), "data": str(data), "work_dir": str(tmp_path / f"work-{i}"),
                        "max_idle": 0.5})
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(entries), encoding="utf-8")

    result = CliRunner().invoke(cli, [
        "participant", "host", "--manifest", str(manifest), "--rpc-url", fed.env.url,
        "--address", fed.env.deployment.address, "--store", "ipfs", "--ipfs-api", ipfs_api_url,
        "--state-dir", str(tmp_path / "state"), "--json",
    ], env={"FEDCHAIN_PASSWORD": PASSWORD, "FEDCHAIN_PRIVATE_KEY": None})

    doc = json.loads(result.stdout)
    good, bad = doc["agents"]
    assert good["exit_code"] == 0 and good["error"] is None
    assert good["participant"].lower() == fed.env.accounts.participants[0].address.lower()
    assert (tmp_path / "work-0" / READY_FILE).is_file()
    assert bad["exit_code"] != 0 and "missing.npz" in bad["error"]
    assert "missing.npz" in (tmp_path / "work-1" / AGENT_FAILED_FILE).read_text(encoding="utf-8")
    assert result.exit_code == bad["exit_code"]


class _ResettingProxy:
    """A loopback TCP proxy to ``target`` that resets its first ``resets`` connections at once (what an
    overloaded node does to a burst of new connections) and forwards every later one."""

    def __init__(self, target: str, resets: int) -> None:
        import socket
        import struct
        import threading
        from urllib.parse import urlsplit

        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.resets_left = resets
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._linger = struct.pack("ii", 1, 0)
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.resets_left > 0:
                self.resets_left -= 1
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, self._linger)
                client.close()  # RST: "connection reset by peer" on the other side
                continue
            upstream = socket.create_connection(self._target)
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                t.start()

    @staticmethod
    def _pipe(src, dst) -> None:  # type: ignore[no-untyped-def]
        import socket

        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._server.close()


def test_host_agents_ride_out_a_node_that_resets_their_first_connections(fed: Fed, ipfs_api_url: str,
                                                                         tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    proxy = _ResettingProxy(fed.env.url, resets=4)
    entries = []
    for i in range(2):
        keystore = create_keystore(tmp_path / f"keys-{i}", PASSWORD, private_key=bytes(fed.env.accounts.participants[i].key),
                                   iterations=2**10).path
        entries.append({"keystore": str(keystore), "data": str(fed.clients[i].path), "work_dir": str(tmp_path / f"w-{i}"),
                        "max_idle": 0.5, "max_outage": 60})
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(entries), encoding="utf-8")
    try:
        result = CliRunner().invoke(cli, [
            "participant", "host", "--manifest", str(manifest), "--stagger", "0", "--rpc-url", proxy.url,
            "--address", fed.env.deployment.address, "--store", "ipfs", "--ipfs-api", ipfs_api_url,
            "--state-dir", str(tmp_path / "state"), "--json",
        ], env={"FEDCHAIN_PASSWORD": PASSWORD, "FEDCHAIN_PRIVATE_KEY": None})
    finally:
        proxy.close()

    assert result.exit_code == 0, result.output
    assert proxy.resets_left == 0
    assert [a["error"] for a in json.loads(result.stdout)["agents"]] == [None, None]
    assert all((tmp_path / f"w-{i}" / READY_FILE).is_file() for i in range(2))
    assert "Connection reset by peer; retrying in" in caplog.text


def test_an_agent_gives_up_on_an_unreachable_node_after_its_max_outage(fed: Fed, tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    keystore = create_keystore(tmp_path / "keys", PASSWORD, private_key=bytes(fed.env.accounts.participants[0].key),
                               iterations=2**10).path

    result = CliRunner().invoke(cli, [
        "participant", "run", "--keystore", str(keystore), "--data", str(fed.clients[0].path), "--max-outage", "0.3",
        "--rpc-url", "http://127.0.0.1:9", "--address", fed.env.deployment.address, "--store", "local",
        "--state-dir", str(tmp_path / "state"),
    ], env={"FEDCHAIN_PASSWORD": PASSWORD, "FEDCHAIN_PRIVATE_KEY": None})

    assert result.exit_code == ExitCode.RPC_UNAVAILABLE, result.output
    assert "127.0.0.1:9" in result.output and "127.0.0.1:9" in caplog.text and "retrying in" in caplog.text

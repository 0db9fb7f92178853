"""The managed IPFS node comes back on the ports it last bound, so the URLs agents hold stay valid;
a port someone took meanwhile is replaced, with a warning naming it."""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import time
from pathlib import Path

import pytest

from fedchain.services.base import HOST
from fedchain.services.ipfs import read_node, start_node, stop_node
from fedchain.storage.ipfs import IpfsStore

pytestmark = pytest.mark.ipfs


def test_a_killed_node_comes_back_on_its_old_ports_with_its_blobs(tmp_path: Path) -> None:
    try:
        first, _ = start_node(tmp_path)
        with IpfsStore(first.api_url) as store:
            cid = store.put(b"kept across a SIGKILL")
        os.killpg(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while read_node(tmp_path) is not None and time.monotonic() < deadline:  # the kill is asynchronous
            time.sleep(0.02)
        assert read_node(tmp_path) is None

        again, started = start_node(tmp_path)

        assert started and again.pid != first.pid
        assert (again.api_url, again.gateway_url, again.rpc_url) == (first.api_url, first.gateway_url, first.rpc_url)
        with IpfsStore(first.api_url) as store:  # the URL an agent was given before the outage
            assert store.get(cid) == b"kept across a SIGKILL"
    finally:
        stop_node(tmp_path)
    home = tmp_path / "ipfs"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700 and stat.S_IMODE((home / "repo").stat().st_mode) == 0o700
    for path in home.iterdir():
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_a_taken_port_is_replaced_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    try:
        first, _ = start_node(tmp_path)
        stop_node(tmp_path)
        api_port = int(first.api_url.rsplit(":", 1)[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
            squatter.bind((HOST, api_port))
            squatter.listen()
            with caplog.at_level(logging.WARNING, logger="fedchain.services.ipfs"):
                again, _ = start_node(tmp_path)

        assert again.api_url != first.api_url
        assert again.gateway_url == first.gateway_url  # the free ones are kept
        assert f"last api port {api_port} is taken" in caplog.text
    finally:
        stop_node(tmp_path)

"""The local IPFS node (js-ipfs 0.66, Kubo-compatible RPC API), started by fedchain.

``hardhat-local/ipfs-node.mjs`` runs the node from the pinned ``node_modules``: its repo
is initialised with the ``test`` profile and kept on this machine (API, gateway and gRPC
on 127.0.0.1 with ports picked by the OS, no swarm listeners, routing ``none``, no
bootstrap peers, no delegates, no preload, no MDNS, no NAT mapping, libp2p never started:
it never dials anywhere). When every server listens it writes the bound URLs to a ready
file; fedchain then polls ``/api/v0/version`` until the API answers (no fixed sleeps).

A *managed* node belongs to a state directory (:class:`IpfsService`, the
:class:`~fedchain.services.base.ManagedService` of the node): :func:`start_node` runs it detached
with its repo in ``<state_dir>/ipfs/repo`` and records pid and URLs in ``<state_dir>/ipfs.json``;
:func:`stop_node` sends SIGTERM and waits. A node comes back on the ports it last bound
(``<home>/ports.json``) when they are free, so the URLs agents were given stay valid across a
restart; a port someone else took meanwhile is replaced by a fresh one, with a warning. An
*ephemeral* node (:class:`IpfsNode` as a context manager) is what tests and benchmarks use.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import httpx

from fedchain.config import open_private, private_dir
from fedchain.errors import ServiceError
from fedchain.services.base import (
    PORT_RELEASE_WAIT_S,
    ServiceRecord,
    log_tail,
    port_is_free,
    process_alive,
    terminate_pid,
    toolchain_dir,
)

__all__ = [
    "IPFS",
    "IpfsNode",
    "IpfsService",
    "NodeInfo",
    "NodeStatus",
    "api_version",
    "node_binary",
    "node_script",
    "node_status",
    "node_url",
    "read_node",
    "record_path",
    "start_node",
    "stop_node",
]

log = logging.getLogger(__name__)

RECORD_NAME = "ipfs.json"
SCRIPT_NAME = "ipfs-node.mjs"
PORTS_NAME = "ports.json"
_PORT_KINDS = ("api", "gateway", "rpc")
_POLL_S = 0.05


def node_script(toolchain: Path | None = None) -> Path:
    """The node launcher script in ``toolchain`` (default: the configured toolchain, see
    :func:`~fedchain.services.base.toolchain_dir`); its ``node_modules`` must hold ``ipfs`` 0.66.1."""
    root = toolchain_dir(override=toolchain)
    script = root / SCRIPT_NAME
    if not script.is_file():
        raise ServiceError(f"IPFS node script not found: {script}")
    if not (root / "node_modules" / "ipfs-core").is_dir():
        raise ServiceError(f"js-ipfs is not installed in {root}: run scripts/setup (npm ci in hardhat-local/)")
    return script


def node_binary() -> str:
    """The Node.js executable: ``FEDCHAIN_NODE`` or ``node`` on ``PATH``."""
    env = os.environ.get("FEDCHAIN_NODE")
    found = env or shutil.which("node")
    if not found:
        raise ServiceError("Node.js not found: install node (>= 18) or set FEDCHAIN_NODE")
    return found


@dataclass(frozen=True)
class NodeInfo:
    """What fedchain records about a running node."""

    pid: int
    api_url: str
    gateway_url: str
    rpc_url: str
    repo: Path
    log: Path
    version: str

    @property
    def url(self) -> str:
        """The RPC API URL (what :class:`~fedchain.storage.ipfs.IpfsStore` talks to)."""
        return self.api_url

    def to_json(self) -> dict[str, Any]:
        """The record as stored in ``ipfs.json``."""
        data = asdict(self)
        data["repo"] = str(self.repo)
        data["log"] = str(self.log)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeInfo:
        """Parse a stored record; ServiceError when malformed."""
        try:
            return cls(
                pid=int(data["pid"]),
                api_url=str(data["api_url"]),
                gateway_url=str(data["gateway_url"]),
                rpc_url=str(data["rpc_url"]),
                repo=Path(data["repo"]),
                log=Path(data["log"]),
                version=str(data["version"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ServiceError(f"IPFS node record is malformed: {err}") from err


@dataclass(frozen=True)
class NodeStatus:
    """``fedchain ipfs status``: whether the recorded node runs and answers."""

    running: bool
    state_dir: Path
    node: NodeInfo | None
    api_version: str | None


def api_version(api_url: str, *, timeout_s: float = 2.0) -> str | None:
    """The node's version string, or None if the API does not answer."""
    try:
        response = httpx.post(api_url.rstrip("/") + "/api/v0/version", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return str(data.get("Version")) if isinstance(data, dict) and "Version" in data else None


class IpfsNode:
    """One js-ipfs node process with its repo in ``home/repo``.

    ``start`` launches it (in its own session, so it outlives the caller if ``detach``)
    and waits until ``/api/v0/version`` answers; ``stop`` sends SIGTERM and waits.
    """

    def __init__(self, home: Path, *, toolchain: Path | None = None) -> None:
        # Absolute: the node process runs from the toolchain directory, not from ours.
        self.home = Path(home).resolve()
        self.toolchain = toolchain  # None: the configured one, looked up on start
        self.repo = self.home / "repo"
        self.ready_file = self.home / "ready.json"
        self.log_path = self.home / "node.log"
        self.pid_file = self.home / "node.pid"
        self.ports_file = self.home / PORTS_NAME
        self._proc: subprocess.Popen[bytes] | None = None
        self.info: NodeInfo | None = None

    @property
    def api_url(self) -> str:
        """The RPC API URL of the started node."""
        if self.info is None:
            raise ServiceError("IPFS node is not started")
        return self.info.api_url

    def start(self, timeout_s: float = 90.0) -> NodeInfo:
        """Launch the node (on its last ports when free) and wait until its API answers;
        ServiceError otherwise."""
        script = node_script(self.toolchain)
        private_dir(self.home)
        if self.repo.is_dir():
            private_dir(self.repo)  # a repo made before fedchain kept it private: close it at the top
        self._clear_stale_lock()
        ports = self._reusable_ports()
        try:
            self.info = self._launch(script, ports, timeout_s)
        except ServiceError as err:
            if not any(ports.values()) or "EADDRINUSE" not in str(err):
                raise
            log.warning("an old IPFS port was taken while the node started (%s): starting on fresh ports", err)
            self.info = self._launch(script, dict.fromkeys(_PORT_KINDS, 0), timeout_s)
        self._record_ports(self.info)
        log.info("IPFS node %s ready at %s (pid %d)", self.info.version, self.info.api_url, self.info.pid)
        return self.info

    def _reusable_ports(self) -> dict[str, int]:
        """The ports the node bound last time, each one only if it is free now (else 0: any)."""
        try:
            recorded = json.loads(self.ports_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = {}
        ports: dict[str, int] = {}
        for kind in _PORT_KINDS:
            value = recorded.get(kind) if isinstance(recorded, dict) else None
            port = value if isinstance(value, int) and 0 < value < 65536 else 0
            if port and not port_is_free(port, wait_s=PORT_RELEASE_WAIT_S):
                log.warning("the IPFS node's last %s port %d is taken: it gets a new one (recorded URLs go stale)",
                            kind, port)
                port = 0
            ports[kind] = port
        return ports

    def _record_ports(self, info: NodeInfo) -> None:
        ports = {kind: _port_of(url) for kind, url in zip(_PORT_KINDS, (info.api_url, info.gateway_url, info.rpc_url),
                                                           strict=True)}
        tmp = self.ports_file.with_suffix(".tmp")
        with open_private(tmp) as handle:
            handle.write(json.dumps({k: v for k, v in ports.items() if v}).encode("utf-8"))
        os.replace(tmp, self.ports_file)

    def _launch(self, script: Path, ports: dict[str, int], timeout_s: float) -> NodeInfo:
        self.ready_file.unlink(missing_ok=True)
        cmd = [node_binary(), str(script), "--repo", str(self.repo), "--ready-file", str(self.ready_file)]
        for kind in _PORT_KINDS:
            if ports.get(kind):
                cmd += [f"--{kind}-port", str(ports[kind])]
        env = dict(os.environ)
        env.pop("DEBUG", None)
        log.info("starting IPFS node: %s", " ".join(cmd))
        out: IO[bytes]
        with open_private(self.log_path, append=True) as out:
            self._proc = subprocess.Popen(
                cmd,
                cwd=script.parent,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=0o077,  # the repo (every block) is the owner's only
                env=env,
            )
        with open_private(self.pid_file) as handle:
            handle.write(f"{self._proc.pid}\n".encode("ascii"))
        try:
            return self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _clear_stale_lock(self) -> None:
        """Remove the repo lock a killed node left behind (js-ipfs would refuse to start for
        20 s); refuse if the node that took it still runs."""
        lock = self.repo / "repo.lock"
        if not lock.exists():
            return
        try:
            previous = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            previous = None
        if previous is not None and process_alive(previous, SCRIPT_NAME):
            raise ServiceError(f"IPFS repo {self.repo} is in use by node pid {previous}; stop it first")
        log.warning("removing stale IPFS repo lock %s (its node is gone)", lock)
        if lock.is_dir():
            shutil.rmtree(lock, ignore_errors=True)
        else:
            lock.unlink(missing_ok=True)

    def _wait_ready(self, timeout_s: float) -> NodeInfo:
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        ready: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise ServiceError(
                    f"IPFS node exited with code {code} while starting; log {self.log_path}:\n"
                    f"{log_tail(self.log_path) or '(no log)'}"
                )
            if ready is None and self.ready_file.is_file():
                try:
                    ready = json.loads(self.ready_file.read_text())
                except (OSError, ValueError):
                    ready = None
            if ready is not None:
                version = api_version(str(ready["api"]))
                if version is not None:
                    return NodeInfo(
                        pid=self._proc.pid,
                        api_url=str(ready["api"]),
                        gateway_url=str(ready["gateway"]),
                        rpc_url=str(ready["rpc"]),
                        repo=self.repo,
                        log=self.log_path,
                        version=version,
                    )
            time.sleep(_POLL_S)
        raise ServiceError(
            f"IPFS node did not answer /api/v0/version within {timeout_s:.0f}s; log {self.log_path}:\n"
            f"{log_tail(self.log_path) or '(no log)'}"
        )

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the node and wait for it to exit."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            terminate_pid(self._proc.pid, timeout_s=timeout_s, marker=SCRIPT_NAME, what="IPFS node")
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:  # pragma: no cover - terminate_pid already killed it
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        self.info = None

    def __enter__(self) -> Self:
        if self.info is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the managed node of a state directory ---------------------------------------


class IpfsService:
    """The managed IPFS node of a state directory, as a :class:`~fedchain.services.base.ManagedService`."""

    name = "ipfs"

    def __init__(self) -> None:
        self.record: ServiceRecord[NodeInfo] = ServiceRecord(
            "IPFS node", RECORD_NAME, NodeInfo.from_json, lambda _info: SCRIPT_NAME
        )

    def read(self, state_dir: Path) -> NodeInfo | None:
        """The recorded node if its process still runs, else None."""
        return self.record.read(state_dir)

    def start(
        self, state_dir: Path, *, timeout_s: float = 90.0, toolchain: Path | None = None
    ) -> tuple[NodeInfo, bool]:
        """Start the state directory's node unless it already runs; ``(info, started)``."""
        state_dir = Path(state_dir)
        running = self.read(state_dir)
        if running is not None and api_version(running.api_url) is not None:
            return running, False
        if running is not None:
            raise ServiceError(
                f"IPFS node pid {running.pid} is recorded in {self.record.path(state_dir)} but its API "
                f"{running.api_url} does not answer; run `fedchain ipfs stop` first"
            )
        private_dir(state_dir, tighten=False)
        info = IpfsNode(state_dir / "ipfs", toolchain=toolchain).start(timeout_s=timeout_s)
        self.record.write(state_dir, info)
        return info, True

    def stop(self, state_dir: Path, *, timeout_s: float = 20.0) -> NodeInfo | None:
        """Stop the state directory's node; what was stopped (None if nothing ran)."""
        return self.record.stop(state_dir, timeout_s=timeout_s)

    def status(self, state_dir: Path) -> NodeStatus:
        """Whether the recorded node runs and its API answers."""
        info = self.read(state_dir)
        version = api_version(info.api_url) if info is not None else None
        return NodeStatus(running=version is not None, state_dir=Path(state_dir), node=info, api_version=version)

    def url(self, state_dir: Path) -> str:
        """The API URL of the running managed node; ServiceError if there is none."""
        info = self.read(state_dir)
        if info is None:
            raise ServiceError(f"no IPFS node is running for {state_dir}: run `fedchain ipfs start` or pass --ipfs-api")
        return info.api_url


def _port_of(url: str) -> int:
    """The TCP port of a URL (``http://127.0.0.1:5001``) or multiaddr (``/ip4/.../tcp/5002``); 0 if none."""
    found = re.search(r"/tcp/(\d+)", url) if url.startswith("/") else None
    if found is not None:
        return int(found.group(1))
    try:
        return urlsplit(url).port or 0
    except ValueError:
        return 0


IPFS = IpfsService()
"""The managed IPFS node; the functions below are its short forms."""

if TYPE_CHECKING:  # mypy holds the service to the one shape
    from fedchain.services.base import ManagedService

    _SHAPE: ManagedService[NodeInfo, NodeStatus] = IPFS


def record_path(state_dir: Path) -> Path:
    """``<state_dir>/ipfs.json``."""
    return IPFS.record.path(state_dir)


def read_node(state_dir: Path) -> NodeInfo | None:
    """The recorded node if its process still runs, else None."""
    return IPFS.read(state_dir)


def start_node(state_dir: Path, *, timeout_s: float = 90.0, toolchain: Path | None = None) -> tuple[NodeInfo, bool]:
    """Start the state directory's node unless it already runs; return it and whether it was started."""
    return IPFS.start(state_dir, timeout_s=timeout_s, toolchain=toolchain)


def stop_node(state_dir: Path, *, timeout_s: float = 20.0) -> NodeInfo | None:
    """Stop the state directory's node; return what was stopped (None if nothing ran)."""
    return IPFS.stop(state_dir, timeout_s=timeout_s)


def node_status(state_dir: Path) -> NodeStatus:
    """Whether the recorded node runs and its API answers."""
    return IPFS.status(state_dir)


def node_url(state_dir: Path) -> str:
    """The API URL of the running managed node; ServiceError if there is none."""
    return IPFS.url(state_dir)

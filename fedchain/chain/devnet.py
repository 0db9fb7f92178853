"""The local Ethereum devnet: anvil (default) or a Hardhat node, on loopback.

A *managed* devnet belongs to a state directory: :func:`start_devnet` launches it
detached, records engine, pid, URL and chain id in ``<state_dir>/devnet.json`` and (for
anvil) keeps the chain in ``<state_dir>/devnet/state.json`` - loaded on start, dumped on
a clean stop and every few seconds meanwhile - so a restart loses nothing.
:func:`stop_devnet` sends SIGTERM and waits, so the state is dumped.

An *ephemeral* devnet (:class:`DevnetProcess` used as a context manager) is what tests and
benchmarks use: a fresh chain on a free port, gone when the block exits.

Readiness is detected by polling ``eth_chainId``; there are no fixed sleeps.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Literal

import httpx

from fedchain.errors import ServiceError
from fedchain.services import HOST, free_port, log_tail, process_alive, terminate_pid, toolchain_dir, write_record

log = logging.getLogger(__name__)

Engine = Literal["anvil", "hardhat"]
ENGINES: tuple[str, ...] = ("anvil", "hardhat")
HARDFORK = "prague"
STATE_INTERVAL_S = 10
RECORD_NAME = "devnet.json"
_PROCESS_MARKERS = {"anvil": "anvil", "hardhat": "hardhat"}


def _platform_suffix() -> str:
    system = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system(), platform.system().lower())
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"{system}-{arch}"


def anvil_binary() -> Path:
    """Locate anvil: ``FEDCHAIN_ANVIL``, the platform package under the toolchain's
    ``node_modules``, its ``.bin`` launcher, then ``PATH``."""
    candidates: list[Path] = []
    env = os.environ.get("FEDCHAIN_ANVIL")
    if env:
        candidates.append(Path(env))
    modules = toolchain_dir() / "node_modules"
    candidates.append(modules / "@foundry-rs" / f"anvil-{_platform_suffix()}" / "bin" / "anvil")
    candidates.extend(sorted((modules / "@foundry-rs").glob("anvil-*/bin/anvil")))
    candidates.append(modules / ".bin" / "anvil")
    found = shutil.which("anvil")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise ServiceError(
        "anvil not found: run scripts/setup (installs hardhat-local/node_modules) or set FEDCHAIN_ANVIL"
    )


def _hardhat_command() -> list[str]:
    root = toolchain_dir()
    launcher = root / "node_modules" / ".bin" / "hardhat"
    if not launcher.exists():
        raise ServiceError(f"hardhat not installed under {root / 'node_modules'}: run scripts/setup")
    if not any((root / name).exists() for name in ("hardhat.config.js", "hardhat.config.cjs", "hardhat.config.ts")):
        raise ServiceError(f"no hardhat.config.js in {root}: the Hardhat engine needs one")
    node = shutil.which("node")
    if node is None:
        raise ServiceError("node is not on PATH: the Hardhat engine needs Node.js")
    return [node, str(launcher.resolve()), "node"]


def rpc_call(url: str, method: str, params: list[Any] | None = None, *, timeout_s: float = 5.0) -> Any:
    """One raw JSON-RPC call (used for readiness and status, without web3)."""
    payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    response = httpx.post(url, json=payload, timeout=timeout_s)
    response.raise_for_status()
    body = response.json()
    if "error" in body:
        raise ServiceError(f"{method} on {url} failed: {body['error']}")
    return body["result"]


@dataclass(frozen=True)
class DevnetInfo:
    """A running devnet, as recorded in ``<state_dir>/devnet.json``."""

    engine: str
    pid: int
    url: str
    port: int
    chain_id: int
    state_file: str | None
    log_file: str
    started_at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DevnetInfo":
        return cls(
            engine=str(data["engine"]),
            pid=int(data["pid"]),
            url=str(data["url"]),
            port=int(data["port"]),
            chain_id=int(data["chain_id"]),
            state_file=data.get("state_file"),
            log_file=str(data["log_file"]),
            started_at=float(data["started_at"]),
        )


@dataclass(frozen=True)
class DevnetStatus:
    running: bool
    engine: str | None = None
    url: str | None = None
    pid: int | None = None
    chain_id: int | None = None
    block_number: int | None = None
    state_file: str | None = None


class DevnetProcess:
    """One devnet process. As a context manager it is ephemeral (stopped on exit)."""

    def __init__(
        self,
        engine: str = "anvil",
        port: int | None = None,
        *,
        state_file: Path | None = None,
        log_file: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise ServiceError(f"unknown devnet engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.engine = engine
        self._requested_port = port
        self.port = port or 0
        self.state_file = state_file
        self.log_file = log_file
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None
        self.chain_id = 0
        self._log_handle: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServiceError("devnet not started")
        return self.process.pid

    def _command(self) -> tuple[list[str], Path]:
        if self.engine == "anvil":
            cmd = [str(anvil_binary()), "--host", HOST, "--port", str(self.port), "--hardfork", HARDFORK]
            if self.state_file is not None:
                cmd += ["--state", str(self.state_file), "--state-interval", str(STATE_INTERVAL_S)]
            return cmd + self.extra_args, Path.cwd()
        cmd = _hardhat_command() + ["--hostname", HOST, "--port", str(self.port)]
        return cmd + self.extra_args, toolchain_dir()

    def start(self, timeout_s: float = 60.0) -> "DevnetProcess":
        """Launch and wait until ``eth_chainId`` answers; ServiceError otherwise."""
        attempts = 1 if self._requested_port else 3
        last_error: ServiceError | None = None
        for _ in range(attempts):
            self.port = self._requested_port or free_port()
            try:
                self._launch_once(timeout_s)
                return self
            except ServiceError as err:
                last_error = err
                self.stop()
                if "in use" not in str(err).lower():
                    break
        assert last_error is not None
        raise last_error

    def _launch_once(self, timeout_s: float) -> None:
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = open(self.log_file, "ab")
            out: Any = self._log_handle
        else:
            out = subprocess.DEVNULL
        cmd, cwd = self._command()
        log.info("starting %s devnet on %s", self.engine, self.url)
        try:
            # Hardhat asks about telemetry on first use; a node started by fedchain never asks, never reports.
            env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
            self.process = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as err:
            raise ServiceError(f"cannot launch {self.engine}: {err}") from err
        self.chain_id = self._wait_ready(timeout_s)
        log.info("%s devnet ready on %s (chain id %d, pid %d)", self.engine, self.url, self.chain_id, self.pid)

    def _wait_ready(self, timeout_s: float) -> int:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            code = self.process.poll()
            if code is not None:
                tail = log_tail(self.log_file) if self.log_file else ""
                raise ServiceError(f"{self.engine} exited with code {code} before answering on {self.url}\n{tail}".strip())
            try:
                return int(rpc_call(self.url, "eth_chainId", timeout_s=2.0), 16)
            except (httpx.HTTPError, ServiceError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.engine} did not answer eth_chainId on {self.url} within {timeout_s:.0f}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the process group, wait (anvil dumps its state), SIGKILL as a last resort."""
        if self.process is not None:
            terminate_pid(self.process.pid, timeout_s=timeout_s, what=f"{self.engine} devnet")
            try:
                self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:  # pragma: no cover - killed above
                pass
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> "DevnetProcess":
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the managed devnet of a state directory ----------------------------------------


def record_path(state_dir: Path) -> Path:
    return Path(state_dir) / RECORD_NAME


def read_devnet(state_dir: Path) -> DevnetInfo | None:
    """The recorded devnet of ``state_dir`` if its process is still alive, else None."""
    path = record_path(state_dir)
    if not path.exists():
        return None
    try:
        info = DevnetInfo.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ServiceError(f"devnet record {path} is unreadable: {err}") from err
    return info if process_alive(info.pid, _PROCESS_MARKERS[info.engine]) else None


def start_devnet(
    state_dir: Path, *, engine: str = "anvil", port: int | None = None, timeout_s: float = 60.0
) -> tuple[DevnetInfo, bool]:
    """Start the devnet of ``state_dir``, or reuse the running one.

    Returns ``(info, reused)``. A running devnet of another engine is an error."""
    state_dir = Path(state_dir)
    running = read_devnet(state_dir)
    if running is not None:
        if running.engine != engine:
            raise ServiceError(
                f"a {running.engine} devnet is already running at {running.url} (pid {running.pid}); stop it first"
            )
        if port is not None and running.port != port:
            raise ServiceError(f"the devnet is already running on port {running.port}, not {port}; stop it first")
        return running, True
    last_port_file = state_dir / "devnet" / "last_port"
    if port is None and last_port_file.exists():
        port = _reusable_port(last_port_file)
    state_file = (state_dir / "devnet" / "state.json").resolve() if engine == "anvil" else None
    log_file = (state_dir / "devnet" / f"{engine}.log").resolve()
    process = DevnetProcess(engine, port, state_file=state_file, log_file=log_file).start(timeout_s)
    info = DevnetInfo(
        engine=engine,
        pid=process.pid,
        url=process.url,
        port=process.port,
        chain_id=process.chain_id,
        state_file=str(state_file) if state_file else None,
        log_file=str(log_file),
        started_at=time.time(),
    )
    write_record(record_path(state_dir), info.to_json())
    last_port_file.write_text(str(info.port), encoding="utf-8")
    return info, False


def _reusable_port(path: Path) -> int | None:
    """The port the devnet last used, if it is free again (so URLs survive a restart)."""
    try:
        port = int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # lingering TIME_WAIT is fine
        try:
            sock.bind((HOST, port))
        except OSError:
            return None
    return port


def stop_devnet(state_dir: Path, *, timeout_s: float = 30.0) -> DevnetInfo | None:
    """Stop the devnet of ``state_dir`` (state dumped); returns what was stopped, or None."""
    path = record_path(state_dir)
    info = read_devnet(state_dir)
    if info is not None:
        log.info("stopping %s devnet pid %d", info.engine, info.pid)
        terminate_pid(info.pid, timeout_s=timeout_s, marker=_PROCESS_MARKERS[info.engine], what="devnet")
    path.unlink(missing_ok=True)
    return info


def devnet_status(state_dir: Path) -> DevnetStatus:
    """Is the devnet of ``state_dir`` running, and at which block?"""
    info = read_devnet(state_dir)
    if info is None:
        return DevnetStatus(running=False)
    try:
        block = int(rpc_call(info.url, "eth_blockNumber", timeout_s=3.0), 16)
    except (httpx.HTTPError, ServiceError, ValueError) as err:
        raise ServiceError(f"devnet pid {info.pid} is alive but {info.url} does not answer: {err}") from err
    return DevnetStatus(
        running=True,
        engine=info.engine,
        url=info.url,
        pid=info.pid,
        chain_id=info.chain_id,
        block_number=block,
        state_file=info.state_file,
    )


def devnet_url(state_dir: Path) -> str:
    """The URL of the running managed devnet; ServiceError if there is none."""
    info = read_devnet(state_dir)
    if info is None:
        raise ServiceError(f"no devnet is running for {state_dir}: run `fedchain devnet start` or pass --rpc-url")
    return info.url

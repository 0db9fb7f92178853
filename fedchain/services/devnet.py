"""The local Ethereum devnet: anvil (default) or a Hardhat node, on loopback.

A *managed* devnet belongs to a state directory (:class:`DevnetService`, the
:class:`~fedchain.services.base.ManagedService` of the devnet): :func:`start_devnet` launches it
detached, records engine, pid, URL and chain id in ``<state_dir>/devnet.json``. A managed anvil
runs under the devnet supervisor (:mod:`fedchain.services.supervisor`): the chain is kept in
``<state_dir>/devnet/state.json.gz``, loaded on start and written before any answer reveals a
mined transaction, so a SIGKILL of anvil (which the supervisor restarts), of the supervisor or of
both loses no mined transaction; and no answer shows a head older than ``block_time_s`` seconds
(interval mining while anyone watches, so deadlines pass on a quiet devnet; 0: off).
:func:`stop_devnet` sends SIGTERM and waits, so the state is written a last time. The devnet comes
back on the port it last used when that port is free, so recorded URLs stay valid.

An *ephemeral* devnet (:class:`DevnetProcess` used as a context manager) is what tests and
benchmarks use: a fresh chain on a free port, gone when the block exits.

Readiness is detected by polling ``eth_chainId``; there are no fixed sleeps.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Self
from urllib.parse import urlsplit

from fedchain.config import open_private, private_dir
from fedchain.errors import ConfigError, DevnetNotRunningError, ServiceError, ToolchainNotFoundError
from fedchain.services.base import (
    HOST,
    PORT_RELEASE_WAIT_S,
    ServiceRecord,
    free_port,
    log_tail,
    port_is_free,
    terminate_pid,
    toolchain_dir,
)

__all__ = [
    "DEFAULT_BLOCK_TIME_S",
    "DEVNET",
    "ENGINES",
    "DevnetInfo",
    "DevnetProcess",
    "DevnetService",
    "DevnetStatus",
    "anvil_binary",
    "devnet_status",
    "devnet_url",
    "read_devnet",
    "record_path",
    "rpc_call",
    "start_devnet",
    "stop_devnet",
]

log = logging.getLogger(__name__)

Engine = Literal["anvil", "hardhat"]
ENGINES: tuple[str, ...] = ("anvil", "hardhat")
HARDFORK = "prague"
STATE_INTERVAL_S = 10  # an unsupervised anvil with a state file (not the managed devnet): its own dump interval
RECORD_NAME = "devnet.json"
STATE_NAME = "state.json.gz"
DEFAULT_BLOCK_TIME_S = 1.0
"""Interval mining of the managed devnet: no answer shows a head more than a second old."""
_PROCESS_MARKERS = {"anvil": "anvil", "hardhat": "hardhat"}


def _platform_suffix() -> str:
    system = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system(), platform.system().lower())
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"{system}-{arch}"


def anvil_binary(toolchain: Path | None = None) -> Path:
    """Locate anvil: ``FEDCHAIN_ANVIL``, the platform package under the toolchain's
    ``node_modules`` (``toolchain``, default: the configured one, see
    :func:`~fedchain.services.base.toolchain_dir`), its
    ``.bin`` launcher, then ``PATH`` (also when no toolchain is configured outside a checkout;
    a configured toolchain that is not a directory is a ConfigError). When none has it and no
    toolchain can be found either, the ConfigError names the toolchain setting."""
    candidates: list[Path] = []
    env = os.environ.get("FEDCHAIN_ANVIL")
    if env:
        candidates.append(Path(env))
    missing_toolchain: ToolchainNotFoundError | None = None
    try:
        modules = toolchain_dir(override=toolchain) / "node_modules"
    except ToolchainNotFoundError as err:  # nothing configured: anvil on PATH will do
        missing_toolchain = err
    else:
        candidates.append(modules / "@foundry-rs" / f"anvil-{_platform_suffix()}" / "bin" / "anvil")
        candidates.extend(sorted((modules / "@foundry-rs").glob("anvil-*/bin/anvil")))
        candidates.append(modules / ".bin" / "anvil")
    found = shutil.which("anvil")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    if missing_toolchain is not None:
        raise ConfigError(f"anvil is not on PATH, and {missing_toolchain}") from missing_toolchain
    raise ServiceError(
        "anvil not found: run scripts/setup (installs hardhat-local/node_modules), put anvil on PATH "
        "or set FEDCHAIN_ANVIL"
    )


def _hardhat_command(root: Path) -> list[str]:
    launcher = root / "node_modules" / ".bin" / "hardhat"
    if not launcher.exists():
        raise ServiceError(f"hardhat not installed under {root / 'node_modules'}: run scripts/setup")
    if not any((root / name).exists() for name in ("hardhat.config.js", "hardhat.config.cjs", "hardhat.config.ts")):
        raise ServiceError(f"no hardhat.config.js in {root}: the Hardhat engine needs one")
    node = shutil.which("node")
    if node is None:
        raise ServiceError("node is not on PATH: the Hardhat engine needs Node.js")
    return [node, str(launcher.resolve()), "node"]


SUPERVISOR_MARKER = "fedchain.services.supervisor"
"""The supervisor's module, as its command line names it (its process marker; checked against the module by a
test). The module itself (its HTTP proxy pulls in an HTTP library) is imported only where a supervised devnet is
started or asked for its persistence, not by every command that reads the devnet's record."""


def rpc_call(url: str, method: str, params: list[Any] | None = None, *, timeout_s: float = 5.0) -> Any:
    """One raw JSON-RPC call (used for readiness and status; the standard library's HTTP client, no proxy):
    ServiceError when the node does not answer, answers an HTTP error, or answers a JSON-RPC error."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServiceError(f"not an http(s) URL: {url!r}")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout_s)
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    try:
        conn.request("POST", parts.path or "/", body=payload, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as err:
        raise ServiceError(f"{method} on {url}: no answer ({err})") from err
    finally:
        conn.close()
    if response.status != 200:
        raise ServiceError(f"{method} on {url}: HTTP {response.status} {response.reason}")
    try:
        body = json.loads(data)
    except ValueError as err:
        raise ServiceError(f"{method} on {url}: the answer is not JSON ({err})") from err
    if not isinstance(body, dict):
        raise ServiceError(f"{method} on {url}: the answer is not a JSON-RPC response")
    if "error" in body:
        raise ServiceError(f"{method} on {url} failed: {body['error']}")
    return body.get("result")


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
    supervised: bool = False
    block_time_s: float = 0.0

    @property
    def marker(self) -> str:
        """What the recorded process's command line contains."""
        return SUPERVISOR_MARKER if self.supervised else _PROCESS_MARKERS[self.engine]

    def to_json(self) -> dict[str, Any]:
        """The record as stored in ``devnet.json``."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DevnetInfo:
        """Parse a stored record (KeyError, TypeError or ValueError when malformed)."""
        if data["engine"] not in ENGINES:
            raise ValueError(f"unknown devnet engine {data['engine']!r}")
        return cls(
            engine=str(data["engine"]),
            pid=int(data["pid"]),
            url=str(data["url"]),
            port=int(data["port"]),
            chain_id=int(data["chain_id"]),
            state_file=data.get("state_file"),
            log_file=str(data["log_file"]),
            started_at=float(data["started_at"]),
            supervised=bool(data.get("supervised", False)),
            block_time_s=float(data.get("block_time_s", 0.0)),
        )


@dataclass(frozen=True)
class DevnetStatus:
    """``fedchain devnet status``: whether the recorded devnet runs, and at which block."""

    running: bool
    engine: str | None = None
    url: str | None = None
    pid: int | None = None
    chain_id: int | None = None
    block_number: int | None = None
    state_file: str | None = None
    block_time_s: float | None = None
    persistence: PersistenceStats | None = None


class DevnetProcess:
    """One devnet process. As a context manager it is ephemeral (stopped on exit).

    ``block_time_s`` > 0 mines a block that often besides the transactions' own (anvil only; under
    the supervisor only while clients ask, see :mod:`fedchain.services.supervisor`);
    ``supervised`` runs anvil under the devnet supervisor, which writes ``state_file`` (required)
    before any answer reveals a mined transaction (see :mod:`fedchain.services.supervisor`)."""

    def __init__(
        self,
        engine: str = "anvil",
        port: int | None = None,
        *,
        state_file: Path | None = None,
        log_file: Path | None = None,
        extra_args: list[str] | None = None,
        toolchain: Path | None = None,
        block_time_s: float = 0.0,
        supervised: bool = False,
    ) -> None:
        if engine not in ENGINES:
            raise ServiceError(f"unknown devnet engine {engine!r}; choose one of {', '.join(ENGINES)}")
        if block_time_s < 0 or block_time_s != block_time_s:
            raise ConfigError(f"devnet block time must be >= 0 seconds (0: mine only transactions), got {block_time_s}")
        if block_time_s > 0 and engine != "anvil":
            raise ConfigError(f"interval mining (block time {block_time_s:g} s) needs the anvil engine, not {engine}")
        if supervised and (engine != "anvil" or state_file is None):
            raise ServiceError("the devnet supervisor runs anvil with a state file")
        self.block_time_s = block_time_s
        self.supervised = supervised
        self.engine = engine
        self._requested_port = port
        self.port = port or 0
        self.state_file = state_file
        self.log_file = log_file
        self.extra_args = list(extra_args or [])
        self.toolchain = toolchain  # None: the configured one, looked up when needed
        self.process: subprocess.Popen[bytes] | None = None
        self.chain_id = 0
        self._log_handle: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The node's JSON-RPC URL on loopback."""
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        """The node's process id; ServiceError before it is started."""
        if self.process is None:
            raise ServiceError("devnet not started")
        return self.process.pid

    def _command(self) -> tuple[list[str], Path]:
        if self.engine == "anvil" and self.supervised:
            assert self.state_file is not None
            cmd = [
                sys.executable, "-m", SUPERVISOR_MARKER, "--anvil", str(anvil_binary(self.toolchain)),
                "--port", str(self.port), "--state", str(self.state_file), "--block-time", f"{self.block_time_s:g}",
                "--", "--hardfork", HARDFORK,
            ]
            return cmd + self.extra_args, Path.cwd()
        if self.engine == "anvil":
            cmd = [str(anvil_binary(self.toolchain)), "--host", HOST, "--port", str(self.port), "--hardfork", HARDFORK]
            if self.block_time_s > 0:
                cmd += ["--block-time", f"{self.block_time_s:g}", "--mixed-mining"]
            if self.state_file is not None:
                cmd += ["--state", str(self.state_file), "--state-interval", str(STATE_INTERVAL_S)]
            return cmd + self.extra_args, Path.cwd()
        root = toolchain_dir(override=self.toolchain)
        cmd = _hardhat_command(root) + ["--hostname", HOST, "--port", str(self.port)]
        return cmd + self.extra_args, root

    def start(self, timeout_s: float = 60.0) -> Self:
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
            private_dir(self.state_file.parent)
        if self.log_file is not None:
            private_dir(self.log_file.parent)
            self._log_handle = open_private(self.log_file, append=True)  # the process writes to it until stop()
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
                start_new_session=True, umask=0o077,  # what it writes (state, logs) is the owner's only
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
            except (ServiceError, ValueError, TypeError):
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

    def __enter__(self) -> Self:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the managed devnet of a state directory ----------------------------------------


class DevnetService:
    """The managed devnet of a state directory, as a :class:`~fedchain.services.base.ManagedService`."""

    name = "devnet"

    def __init__(self) -> None:
        self.record: ServiceRecord[DevnetInfo] = ServiceRecord(
            "devnet", RECORD_NAME, DevnetInfo.from_json, lambda info: info.marker
        )

    def read(self, state_dir: Path) -> DevnetInfo | None:
        """The recorded devnet of ``state_dir`` if its process is still alive, else None."""
        return self.record.read(state_dir)

    def start(
        self,
        state_dir: Path,
        *,
        timeout_s: float = 60.0,
        engine: str = "anvil",
        port: int | None = None,
        toolchain: Path | None = None,
        block_time_s: float = DEFAULT_BLOCK_TIME_S,
    ) -> tuple[DevnetInfo, bool]:
        """Start the devnet of ``state_dir``, or reuse the running one; ``(info, started)``.

        anvil runs under the devnet supervisor with interval mining every ``block_time_s``
        seconds (0: off); Hardhat runs as it is (no state file, no interval mining: a
        ``block_time_s`` > 0 is ignored for it). A running devnet of another engine, or on
        another ``port``, is an error; one with another block time is reused as it is."""
        state_dir = Path(state_dir)
        running = self.read(state_dir)
        if running is not None:
            if running.engine != engine:
                raise ServiceError(
                    f"a {running.engine} devnet is already running at {running.url} (pid {running.pid}); stop it first"
                )
            if port is not None and running.port != port:
                raise ServiceError(f"the devnet is already running on port {running.port}, not {port}; stop it first")
            if running.block_time_s != block_time_s and engine == "anvil":
                log.info("reusing the running devnet with block time %g s (asked for %g s)", running.block_time_s,
                         block_time_s)
            return running, False
        private_dir(state_dir)
        devnet_dir = private_dir(state_dir / "devnet")
        last_port_file = devnet_dir / "last_port"
        if port is None and last_port_file.exists():
            port = _reusable_port(last_port_file)
        anvil = engine == "anvil"
        state_file = (devnet_dir / STATE_NAME).resolve() if anvil else None
        log_file = (devnet_dir / f"{engine}.log").resolve()
        process = DevnetProcess(
            engine, port, state_file=state_file, log_file=log_file, toolchain=toolchain,
            block_time_s=block_time_s if anvil else 0.0, supervised=anvil,
        ).start(timeout_s)
        info = DevnetInfo(
            engine=engine,
            pid=process.pid,
            url=process.url,
            port=process.port,
            chain_id=process.chain_id,
            state_file=str(state_file) if state_file else None,
            log_file=str(log_file),
            started_at=time.time(),
            supervised=process.supervised,
            block_time_s=process.block_time_s,
        )
        self.record.write(state_dir, info)
        with open_private(last_port_file) as handle:
            handle.write(str(info.port).encode("ascii"))
        return info, True

    def stop(self, state_dir: Path, *, timeout_s: float = 30.0) -> DevnetInfo | None:
        """Stop the devnet of ``state_dir`` (anvil dumps its state); what was stopped, or None."""
        return self.record.stop(state_dir, timeout_s=timeout_s)

    def status(self, state_dir: Path) -> DevnetStatus:
        """Is the devnet of ``state_dir`` running, and at which block?"""
        from fedchain.services.supervisor import STATUS_METHOD, PersistenceStats

        info = self.read(state_dir)
        if info is None:
            return DevnetStatus(running=False)
        try:
            block = int(rpc_call(info.url, "eth_blockNumber", timeout_s=3.0), 16)
            persistence = (
                PersistenceStats.from_json(rpc_call(info.url, STATUS_METHOD, timeout_s=3.0)) if info.supervised else None
            )
        except (ServiceError, ValueError, KeyError, TypeError) as err:
            raise ServiceError(f"devnet pid {info.pid} is alive but {info.url} does not answer: {err}") from err
        return DevnetStatus(
            running=True,
            engine=info.engine,
            url=info.url,
            pid=info.pid,
            chain_id=info.chain_id,
            block_number=block,
            state_file=info.state_file,
            block_time_s=info.block_time_s,
            persistence=persistence,
        )

    def url(self, state_dir: Path) -> str:
        """The URL of the running managed devnet; DevnetNotRunningError (a connection error: there is no chain to
        talk to) if there is none."""
        info = self.read(state_dir)
        if info is None:
            raise DevnetNotRunningError(f"no devnet is running for {state_dir}: run `fedchain devnet start` or pass --rpc-url")
        return info.url


DEVNET = DevnetService()
"""The managed devnet; the functions below are its short forms."""

if TYPE_CHECKING:  # mypy holds the service to the one shape
    from fedchain.services.base import ManagedService
    from fedchain.services.supervisor import PersistenceStats

    _SHAPE: ManagedService[DevnetInfo, DevnetStatus] = DEVNET


def _reusable_port(path: Path) -> int | None:
    """The port the devnet last used, if it is free again (so URLs survive a restart)."""
    try:
        port = int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    if port_is_free(port, wait_s=PORT_RELEASE_WAIT_S):
        return port
    log.warning("the devnet's last port %d is taken: starting on another one (recorded URLs go stale)", port)
    return None


def record_path(state_dir: Path) -> Path:
    """``<state_dir>/devnet.json``."""
    return DEVNET.record.path(state_dir)


def read_devnet(state_dir: Path) -> DevnetInfo | None:
    """The recorded devnet of ``state_dir`` if its process is still alive, else None."""
    return DEVNET.read(state_dir)


def start_devnet(
    state_dir: Path,
    *,
    engine: str = "anvil",
    port: int | None = None,
    timeout_s: float = 60.0,
    toolchain: Path | None = None,
    block_time_s: float = DEFAULT_BLOCK_TIME_S,
) -> tuple[DevnetInfo, bool]:
    """Start the devnet of ``state_dir``, or reuse the running one (see :meth:`DevnetService.start`).

    Returns ``(info, reused)``. A running devnet of another engine is an error."""
    info, started = DEVNET.start(
        state_dir, timeout_s=timeout_s, engine=engine, port=port, toolchain=toolchain, block_time_s=block_time_s
    )
    return info, not started


def stop_devnet(state_dir: Path, *, timeout_s: float = 30.0) -> DevnetInfo | None:
    """Stop the devnet of ``state_dir`` (state dumped); returns what was stopped, or None."""
    return DEVNET.stop(state_dir, timeout_s=timeout_s)


def devnet_status(state_dir: Path) -> DevnetStatus:
    """Is the devnet of ``state_dir`` running, and at which block?"""
    return DEVNET.status(state_dir)


def devnet_url(state_dir: Path) -> str:
    """The URL of the running managed devnet; DevnetNotRunningError if there is none."""
    return DEVNET.url(state_dir)

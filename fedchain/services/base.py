"""The shape every managed local service has (the devnet, the IPFS node), and its process plumbing.

A *managed* service belongs to a state directory: ``start`` launches it detached (or reuses the
running one) and writes a JSON record - pid, URL, log - to ``<state_dir>/<name>.json``; ``read``
returns that record while its process still runs; ``stop`` sends SIGTERM and waits; ``status``
says whether it runs and answers; ``url`` is where it answers, or a :class:`ServiceError` saying
how to start it. :class:`ManagedService` is that shape; :class:`ServiceRecord` is the record file
handling both services compose.

Neither web3 nor IPFS specifics live here: finding the pinned Node toolchain, a free loopback
port, whether a recorded pid is still the service we started, stopping a process group politely,
and writing a service record atomically.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from fedchain.config import Settings, load_settings, open_private, private_dir
from fedchain.errors import ConfigError, ServiceError, ToolchainNotFoundError

__all__ = [
    "HOST",
    "PORT_RELEASE_WAIT_S",
    "TOOLCHAIN_SETTING",
    "ManagedService",
    "ServiceInfo",
    "ServiceRecord",
    "ServiceStatus",
    "checkout_toolchain",
    "free_port",
    "log_tail",
    "port_is_free",
    "process_alive",
    "signal_group",
    "terminate_pid",
    "toolchain_dir",
    "write_record",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PORT_RELEASE_WAIT_S = 5.0
"""How long a restarting service waits for its old port to be released before taking another."""
TOOLCHAIN_SETTING = "toolchain"
"""The :class:`~fedchain.config.Settings` field naming the Node toolchain directory
(``--toolchain``, ``FEDCHAIN_TOOLCHAIN``, ``toolchain = "..."`` in ``fedchain.toml``)."""
_HOW_TO_SET = "--toolchain, FEDCHAIN_TOOLCHAIN or `toolchain` in fedchain.toml"


# --- the shape ---------------------------------------------------------------------


class ServiceInfo(Protocol):
    """What a service records about its running process."""

    @property
    def pid(self) -> int:
        """The process id of the running service."""
        ...

    @property
    def url(self) -> str:
        """The URL the service answers on."""
        ...

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object, as the state file stores it."""
        ...


class ServiceStatus(Protocol):
    """What ``status`` reports; each service adds its own details."""

    @property
    def running(self) -> bool:
        """Whether the service's process is running."""
        ...


InfoT = TypeVar("InfoT", bound=ServiceInfo)
InfoT_co = TypeVar("InfoT_co", bound=ServiceInfo, covariant=True)
StatusT_co = TypeVar("StatusT_co", bound=ServiceStatus, covariant=True)


class ManagedService(Protocol[InfoT_co, StatusT_co]):
    """A local service fedchain starts, records under a state directory, inspects and stops."""

    name: str

    def start(self, state_dir: Path, *, timeout_s: float) -> tuple[InfoT_co, bool]:
        """Start the service of ``state_dir`` or reuse the running one; ``(info, started)``."""
        ...

    def stop(self, state_dir: Path, *, timeout_s: float) -> InfoT_co | None:
        """Stop the recorded service; what was stopped, or None if nothing ran."""
        ...

    def read(self, state_dir: Path) -> InfoT_co | None:
        """The recorded service while its process runs, else None."""
        ...

    def status(self, state_dir: Path) -> StatusT_co:
        """Whether the recorded service runs (and answers)."""
        ...

    def url(self, state_dir: Path) -> str:
        """Where the running service answers; ServiceError naming the start command if none runs."""
        ...


class ServiceRecord(Generic[InfoT]):
    """The JSON record ``<state_dir>/<file_name>`` of one managed service.

    ``parse`` turns the stored JSON back into the service's info (raising ServiceError,
    KeyError, TypeError or ValueError on a malformed record); ``marker`` is what the process's
    command line must contain for a recorded pid to count as that service (a recycled pid
    does not)."""

    def __init__(
        self,
        what: str,
        file_name: str,
        parse: Callable[[dict[str, Any]], InfoT],
        marker: Callable[[InfoT], str],
    ) -> None:
        self.what = what
        self.file_name = file_name
        self._parse = parse
        self._marker = marker

    def path(self, state_dir: Path) -> Path:
        """Where the record of ``state_dir`` lives."""
        return Path(state_dir) / self.file_name

    def marker(self, info: InfoT) -> str:
        """The command-line marker of the recorded process."""
        return self._marker(info)

    def read(self, state_dir: Path) -> InfoT | None:
        """The recorded info while its process still runs, else None; ServiceError if unreadable."""
        path = self.path(state_dir)
        if not path.is_file():
            return None
        try:
            info = self._parse(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ServiceError(f"{self.what} record {path} is unreadable: {err}") from err
        return info if process_alive(info.pid, self._marker(info)) else None

    def write(self, state_dir: Path, info: InfoT) -> None:
        """Record ``info`` atomically."""
        write_record(self.path(state_dir), info.to_json())

    def remove(self, state_dir: Path) -> None:
        """Forget the record (harmless when there is none)."""
        self.path(state_dir).unlink(missing_ok=True)

    def stop(self, state_dir: Path, *, timeout_s: float) -> InfoT | None:
        """Stop the recorded process (SIGTERM, wait, SIGKILL as a last resort) and forget the
        record; return what was stopped, or None if nothing ran."""
        info = self.read(state_dir)
        self.remove(state_dir)
        if info is None:
            return None
        marker = self._marker(info)
        log.info("stopping %s pid %d", self.what, info.pid)
        terminate_pid(info.pid, timeout_s=timeout_s, marker=marker, what=self.what)
        if process_alive(info.pid, marker):
            raise ServiceError(f"{self.what} pid {info.pid} would not stop")
        return info


# --- the Node toolchain --------------------------------------------------------------

DEVNET_UNAVAILABLE_CODE = -32050
"""JSON-RPC error code with which the managed devnet's supervisor answers while its anvil is down or
restarting (a server error in the implementation-defined range): clients ride it out like an
unreachable node."""


def checkout_toolchain() -> Path | None:
    """``hardhat-local/`` of the repository when fedchain runs from a checkout, else None."""
    candidate = Path(__file__).resolve().parents[2] / "hardhat-local"
    return candidate if candidate.is_dir() else None


def toolchain_dir(settings: Settings | None = None, *, override: Path | None = None) -> Path:
    """The pinned Node toolchain (solc-js, anvil, Hardhat, js-ipfs under ``node_modules``).

    ``override`` when given (a caller's explicit choice, already the merged setting), else the
    ``toolchain`` setting of ``settings`` (flag > ``FEDCHAIN_TOOLCHAIN`` > ``fedchain.toml``;
    ``settings`` defaults to :func:`~fedchain.config.load_settings`), else the checkout's
    ``hardhat-local/``. ConfigError naming the setting when the configured path is not a
    directory; :class:`ToolchainNotFoundError` (a ConfigError naming it too) when nothing is
    configured outside a checkout."""
    if override is not None:
        configured: Path | None = override
    else:
        configured = (settings if settings is not None else load_settings()).toolchain
    if configured is not None:
        path = Path(configured).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(
                f"the {TOOLCHAIN_SETTING} setting ({_HOW_TO_SET}) names {path}, which is not a directory"
            )
        return path
    found = checkout_toolchain()
    if found is None:
        raise ToolchainNotFoundError(
            f"the Node toolchain was not found: this fedchain is not a checkout with hardhat-local/; "
            f"set the {TOOLCHAIN_SETTING} setting ({_HOW_TO_SET}) to a directory set up like hardhat-local/ "
            "(npm ci)"
        )
    return found


# --- processes -----------------------------------------------------------------------


def free_port() -> int:
    """A currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def idle_socket_unusable(sock: socket.socket | None) -> bool:
    """Whether an idle kept-alive socket can no longer carry a request: gone, or readable (the peer
    closed it, or sent what nobody asked for)."""
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def port_is_free(port: int, *, wait_s: float = 0.0) -> bool:
    """Whether ``port`` on the loopback interface can be bound (a lingering TIME_WAIT is fine),
    waiting up to ``wait_s`` for it to become free: a process killed a moment ago may still be
    tearing down its threads, and holds its sockets until the last one is gone."""
    deadline = time.monotonic() + wait_s
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
                return True
            except OSError:
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def process_alive(pid: int, marker: str | None = None) -> bool:
    """True if ``pid`` is a live, non-zombie process and, when ``marker`` is given, its
    command line contains ``marker`` (so a recycled pid is not mistaken for our service).
    Reaps ``pid`` if it is an exited child of ours."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: probe with a signal
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return marker is None  # someone else's process: never "our" service
    proc = Path("/proc") / str(pid)
    if not proc.exists():
        return True
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if marker is not None:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            return marker in cmdline
    except (OSError, IndexError):
        return False
    return True


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to ``pid``'s process group (services run in their own session), or to
    ``pid`` alone when it has none of its own."""
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def terminate_pid(pid: int, *, timeout_s: float, marker: str | None = None, what: str = "process") -> None:
    """SIGTERM ``pid``'s process group and wait for it to exit; SIGKILL if it outlives
    ``timeout_s``. Returns at once when the process is already gone."""
    if not process_alive(pid, marker):
        return
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while process_alive(pid, marker):
        if time.monotonic() > deadline:
            log.warning("%s pid %d ignored SIGTERM for %.0fs; killing it", what, pid, timeout_s)
            signal_group(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 5.0
            while process_alive(pid, marker) and time.monotonic() < kill_deadline:
                time.sleep(0.05)
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a service log ("" when there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Write a service record as JSON atomically (temp file + rename), readable by the owner only."""
    private_dir(path.parent, tighten=False)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open_private(tmp) as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))
    os.replace(tmp, path)

"""Process plumbing shared by the managed local services (the devnet, the IPFS node).

Neither web3 nor IPFS specifics live here: finding the pinned Node toolchain, a free loopback
port, whether a recorded pid is still the service we started, stopping a process group
politely, and writing a service record atomically."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def toolchain_dir() -> Path:
    """The pinned Node toolchain, ``hardhat-local/`` at the repository root.

    ``FEDCHAIN_TOOLCHAIN_DIR`` overrides it."""
    env = os.environ.get("FEDCHAIN_TOOLCHAIN_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "hardhat-local"


def free_port() -> int:
    """A currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


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
    """Write a service record as JSON atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)

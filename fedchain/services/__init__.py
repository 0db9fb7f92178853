"""Managed local services: the devnet and the IPFS node, both one :class:`ManagedService` shape.

A leaf adapter layer: it imports only :mod:`fedchain.errors`, :mod:`fedchain.types` and
:mod:`fedchain.config` (no web3, no torch; httpx and eth-hash), so every layer above may use it.

- :mod:`fedchain.services.base`: the shape (:class:`ManagedService`, :class:`ServiceRecord`),
  process plumbing (``free_port``, ``process_alive``, ``terminate_pid``, ``log_tail``) and the
  Node toolchain lookup (:func:`toolchain_dir`, the ``toolchain`` setting).
- :mod:`fedchain.services.devnet`: anvil or Hardhat (``start_devnet``, ``DevnetProcess``, ...).
- :mod:`fedchain.services.supervisor`: the managed anvil's supervisor, a JSON-RPC proxy that
  writes the chain before any answer reveals a new block and restarts anvil when it dies.
- :mod:`fedchain.services.ipfs`: the js-ipfs node (``start_node``, ``IpfsNode``, ...), back on its
  old ports after a restart.
"""

from __future__ import annotations

from fedchain.errors import ToolchainNotFoundError
from fedchain.services.base import (
    HOST,
    TOOLCHAIN_SETTING,
    ManagedService,
    ServiceInfo,
    ServiceRecord,
    ServiceStatus,
    checkout_toolchain,
    free_port,
    log_tail,
    process_alive,
    terminate_pid,
    toolchain_dir,
)

__all__ = [
    "HOST",
    "TOOLCHAIN_SETTING",
    "ManagedService",
    "ServiceInfo",
    "ServiceRecord",
    "ServiceStatus",
    "ToolchainNotFoundError",
    "checkout_toolchain",
    "free_port",
    "log_tail",
    "process_alive",
    "terminate_pid",
    "toolchain_dir",
]

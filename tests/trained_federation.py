"""A federation that finished two rounds on the session devnet, its blobs in a local store under its own
state dir: the fixture of the model-export and notebook-API tests. Module-scoped (training three
participants twice is the slow part), the chain is snapshot before and reverted after the module; a
test that changes the chain takes its own snapshot with :func:`chain_snapshot`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fedchain.storage.local import LocalStore
from tests.protocol.harness import Fed, make_fed, make_task_files


@dataclass
class Trained:
    fed: Fed
    store: LocalStore
    state_dir: Path  # the local store lives in state_dir/blobs

    @property
    def env(self) -> Any:
        return self.fed.env

    def role_args(self) -> list[str]:
        """The connection options of a CLI command reading this federation."""
        return ["--state-dir", str(self.state_dir), "--store", "local", "--rpc-url", self.env.url,
                "--address", self.env.deployment.address]


@contextmanager
def chain_snapshot(env: Any) -> Iterator[None]:
    """Revert the chain to its state at entry on exit."""
    snapshot = env.conn.request("evm_snapshot")
    try:
        yield
    finally:
        env.conn.request("evm_revert", [snapshot])


@pytest.fixture(scope="module", name="trained")
def trained_fixture(devnet_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    work = tmp_path_factory.mktemp("trained")
    state_dir = work / "state"
    store = LocalStore(state_dir / "blobs")
    with chain_snapshot(devnet_env):
        fed = make_fed(devnet_env, store, make_task_files(work, rounds=2), work / "agents")
        for _ in range(2):
            assert fed.run_round().finalized
        yield Trained(fed, store, state_dir)

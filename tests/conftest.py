"""Session-wide fixtures: one real devnet (anvil) and one real IPFS node, each started
on a free loopback port on first use and stopped at the end of the session.

The ``devnet`` and ``ipfs`` markers are applied here, from the fixtures a test uses (directly or
through other fixtures), so ``pytest -m "not devnet and not ipfs"`` starts neither. A test that
starts a devnet or a node by other means (the CLI, a subprocess) carries the marker by hand.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures_devnet", "tests.fixtures_ipfs"]

# Every fixture that needs the session devnet (tests.fixtures_devnet; tests.protocol.harness's
# ``fed`` builds on ``chain_env``) or the session IPFS node (tests.fixtures_ipfs).
DEVNET_FIXTURES = frozenset({"devnet", "devnet_env", "chain_env", "federation_env", "advance_time", "mine_block"})
IPFS_FIXTURES = frozenset({"ipfs_node", "ipfs_api_url", "ipfs_store"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # the closure of every fixture the test requests, however indirectly
        used = set(getattr(item, "fixturenames", ()))
        if used & DEVNET_FIXTURES:
            item.add_marker(pytest.mark.devnet)
        if used & IPFS_FIXTURES:
            item.add_marker(pytest.mark.ipfs)

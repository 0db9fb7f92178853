"""Session-wide fixtures: one real devnet (anvil) and one real IPFS node, each started
on a free loopback port on first use and stopped at the end of the session."""

pytest_plugins = ["tests.fixtures_devnet", "tests.fixtures_ipfs"]

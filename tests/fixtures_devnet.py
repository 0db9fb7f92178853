"""pytest plugin: one real anvil devnet for the whole session, with a deployed Federation.

Loaded by ``tests/conftest.py``. Nothing starts unless a test asks for one of these
fixtures, so unit tests pay nothing.

Session scope
    ``devnet``      the :class:`fedchain.services.devnet.DevnetProcess` (anvil on a free
                    loopback port, ``--hardfork prague``; stopped in ``finally``).
    ``devnet_env``  a :class:`DevnetEnv`: ``url``, ``conn`` (a
                    :class:`fedchain.chain.connection.Connection`), ``accounts`` (a
                    :class:`TestAccounts`: ``admin``, ``aggregator``, ``participants`` (8
                    ``LocalAccount``\\ s) and ``outsider``, each funded with 100 ETH),
                    ``deployment`` (``Federation(admin, aggregator)``), ``state_dir`` (holding
                    ``deployments/<chain_id>.json``), and helpers ``federation(account)`` (the
                    contract wrapper signing as ``account``; admin by default) and
                    ``ledger(account)`` (a :class:`fedchain.chain.ledger.ChainLedger`).

Function scope
    ``chain_env``   the same :class:`DevnetEnv`, with the test wrapped in ``evm_snapshot`` /
                    ``evm_revert``: every test starts from the freshly deployed contract.
    ``federation_env``  ``chain_env`` plus a configured task (version 1, commit windows of at most
                    ``TASK_MAX_COMMIT_DURATION`` s) and the first three participants registered with
                    ``DECLARED_SAMPLES`` samples each and admitted (``env.admitted``).
    ``advance_time`` a callable ``advance_time(seconds)`` that moves the chain clock forward
                    (``evm_increaseTime`` + ``evm_mine``) and returns the new block timestamp.
    ``mine_block``  a callable that mines one empty block and returns its number.

Example::

    def test_commit(federation_env, advance_time):
        agg = federation_env.ledger(federation_env.accounts.aggregator)
        rid = agg.open_round(digest, cid, 60, 1).round_id
        ...
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak

from fedchain.chain.connection import Connection
from fedchain.chain.federation import Deployment, FederationContract, deploy
from fedchain.chain.ledger import ChainLedger
from fedchain.services.devnet import DevnetProcess
from fedchain.types import Wei

FUNDING_WEI = Wei(100 * 10**18)
N_PARTICIPANTS = 8


def dev_account(name: str) -> LocalAccount:
    """A deterministic test-only account (never use outside tests)."""
    account: LocalAccount = Account.from_key(keccak(b"fedchain-test-account:" + name.encode()))
    return account


@dataclass(frozen=True)
class TestAccounts:
    __test__ = False  # not a test class

    admin: LocalAccount
    aggregator: LocalAccount
    participants: tuple[LocalAccount, ...]
    outsider: LocalAccount

    def all(self) -> list[LocalAccount]:
        return [self.admin, self.aggregator, *self.participants, self.outsider]


@dataclass
class DevnetEnv:
    url: str
    conn: Connection
    accounts: TestAccounts
    deployment: Deployment
    state_dir: Path
    admitted: list[LocalAccount] = field(default_factory=list)

    def federation(self, account: LocalAccount | None = None) -> FederationContract:
        return FederationContract.from_deployment(self.conn, self.deployment, account or self.accounts.admin)

    def ledger(self, account: LocalAccount | None = None) -> ChainLedger:
        return ChainLedger(self.federation(account))


@pytest.fixture(scope="session")
def devnet() -> Iterator[DevnetProcess]:
    log_dir = Path(os.environ.get("FEDCHAIN_TEST_LOG_DIR", "")) if os.environ.get("FEDCHAIN_TEST_LOG_DIR") else None
    process = DevnetProcess("anvil", log_file=log_dir / "anvil.log" if log_dir else None)
    try:
        process.start(timeout_s=60)
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def devnet_env(devnet: DevnetProcess, tmp_path_factory: pytest.TempPathFactory) -> DevnetEnv:
    conn = Connection(devnet.url, tx_timeout_s=30)
    accounts = TestAccounts(
        admin=dev_account("admin"),
        aggregator=dev_account("aggregator"),
        participants=tuple(dev_account(f"participant-{i}") for i in range(N_PARTICIPANTS)),
        outsider=dev_account("outsider"),
    )
    for account in accounts.all():
        conn.fund_from_dev_account(account.address, FUNDING_WEI)
    state_dir = tmp_path_factory.mktemp("fedchain-state")
    _, deployment, _ = deploy(
        conn, accounts.admin, accounts.admin.address, accounts.aggregator.address, state_dir=state_dir
    )
    return DevnetEnv(url=devnet.url, conn=conn, accounts=accounts, deployment=deployment, state_dir=state_dir)


@pytest.fixture()
def chain_env(devnet_env: DevnetEnv) -> Iterator[DevnetEnv]:
    snapshot = devnet_env.conn.request("evm_snapshot")
    try:
        yield devnet_env
    finally:
        devnet_env.admitted.clear()
        devnet_env.conn.request("evm_revert", [snapshot])


TASK_DIGESTS = (keccak(b"test-model-spec"), keccak(b"test-strategy"), keccak(b"test-data-schema"))
TASK_CID = "bafkreitestconfigcid"
TASK_MAX_COMMIT_DURATION = 86_400
DECLARED_SAMPLES = 1_000  # the dataset size each participant of federation_env declares (and is approved)


@pytest.fixture()
def federation_env(chain_env: DevnetEnv) -> DevnetEnv:
    admin = chain_env.federation()
    admin.configure_task(*TASK_DIGESTS, TASK_CID, TASK_MAX_COMMIT_DURATION)
    for account in chain_env.accounts.participants[:3]:
        chain_env.federation(account).register(f"org-{account.address[:8]}", "test", b"\x02" + bytes(32), DECLARED_SAMPLES)
        admin.admit(account.address)
        chain_env.admitted.append(account)
    return chain_env


@pytest.fixture()
def advance_time(chain_env: DevnetEnv) -> Callable[[int], int]:
    def advance(seconds: int) -> int:
        chain_env.conn.request("evm_increaseTime", [int(seconds)])
        chain_env.conn.request("evm_mine")
        return chain_env.conn.block_timestamp()

    return advance


@pytest.fixture()
def mine_block(chain_env: DevnetEnv) -> Callable[[], int]:
    def mine() -> int:
        chain_env.conn.request("evm_mine")
        return chain_env.conn.block_number()

    return mine

"""Connect a role to the ledger and the blob store from :class:`fedchain.config.Settings`."""

from __future__ import annotations

from typing import Any

from fedchain.config import Settings


def rpc_url_of(settings: Settings) -> str:
    if settings.rpc_url:
        return settings.rpc_url
    from fedchain.chain.devnet import devnet_url

    return devnet_url(settings.state_dir)


def connect_ledger(settings: Settings, *, account: Any = None, address: str | None = None) -> Any:
    """A :class:`fedchain.chain.ledger.ChainLedger` on the recorded deployment (or ``address``).

    Raises RpcUnavailableError for an unreachable RPC URL, ChainIdMismatchError when
    ``settings.chain_id`` differs from the node's, DeploymentNotFoundError when there is no
    deployment for the node's chain (or no code at ``address``)."""
    from fedchain.chain.connection import Connection
    from fedchain.chain.federation import FederationContract, load_deployment
    from fedchain.chain.ledger import ChainLedger
    from fedchain.errors import DeploymentNotFoundError

    conn = Connection(
        rpc_url_of(settings),
        expected_chain_id=settings.chain_id,
        timeout_s=settings.http_timeout_s,
        tx_timeout_s=settings.tx_timeout_s,
    )
    if address:
        if not conn.code_at(address):
            raise DeploymentNotFoundError(f"no contract code at {address} on chain {conn.chain_id} ({conn.url})")
        return ChainLedger(FederationContract(conn, address, None, account))
    deployment = load_deployment(settings.state_dir, conn)
    return ChainLedger(FederationContract.from_deployment(conn, deployment, account))


def open_blob_store(settings: Settings) -> Any:
    from fedchain.storage.factory import open_store

    return open_store(settings)


def gas_lookup(ledger: Any) -> Any:
    """A function tx hash -> gas used, reading receipts through the ledger's connection."""
    conn = ledger.conn
    cache: dict[str, int] = {}

    def gas_of(tx_hash: str) -> int:
        if tx_hash not in cache:
            receipt = conn.request("eth_getTransactionReceipt", [tx_hash])
            cache[tx_hash] = int(receipt["gasUsed"], 16) if isinstance(receipt["gasUsed"], str) else int(receipt["gasUsed"])
        return cache[tx_hash]

    return gas_of

"""Connect a role to the ledger and the blob store from :class:`fedchain.config.Settings`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from fedchain.config import Settings
from fedchain.services.devnet import devnet_url

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the chain layer pulls in web3; import it only where it is used
    from fedchain.audit.governance import GovernanceRecords
    from fedchain.chain.connection import Connection
    from fedchain.chain.federation import Deployment
    from fedchain.chain.ledger import ChainLedger
    from fedchain.chain.signer import Signer
    from fedchain.ports import BlobStore


def rpc_url_of(settings: Settings) -> str:
    """The RPC URL of ``settings``, else the managed devnet's."""
    if settings.rpc_url:
        return settings.rpc_url
    return devnet_url(settings.state_dir)


def connect_ledger(settings: Settings, *, account: Signer | None = None, address: str | None = None) -> ChainLedger:
    """A :class:`fedchain.chain.ledger.ChainLedger` on the recorded deployment (or ``address``).

    Raises RpcUnavailableError for an unreachable RPC URL, ChainIdMismatchError when
    ``settings.chain_id`` differs from the node's, DeploymentNotFoundError when there is no
    deployment for the node's chain, or when the code at ``address`` is not this Federation."""
    from fedchain.chain.connection import Connection
    from fedchain.chain.federation import FederationContract, load_deployment, verify_federation_code
    from fedchain.chain.ledger import ChainLedger

    conn = Connection(
        rpc_url_of(settings),
        expected_chain_id=settings.chain_id,
        timeout_s=settings.http_timeout_s,
        tx_timeout_s=settings.tx_timeout_s,
    )
    if address:
        verify_federation_code(conn, address)
        return ChainLedger(FederationContract(conn, address, None, account))
    deployment = load_deployment(settings.state_dir, conn)
    return ChainLedger(FederationContract.from_deployment(conn, deployment, account))


def open_blob_store(settings: Settings) -> BlobStore:
    """The blob store ``settings`` names (see :func:`fedchain.storage.factory.open_store`)."""
    from fedchain.storage.factory import open_store

    return open_store(settings)


def gas_lookup(ledger: ChainLedger) -> Callable[[str], int]:
    """A function tx hash -> gas used, reading receipts through the ledger's connection."""
    conn = ledger.conn
    cache: dict[str, int] = {}

    def gas_of(tx_hash: str) -> int:
        if tx_hash not in cache:
            receipt = conn.request("eth_getTransactionReceipt", [tx_hash])
            cache[tx_hash] = int(receipt["gasUsed"], 16) if isinstance(receipt["gasUsed"], str) else int(receipt["gasUsed"])
        return cache[tx_hash]

    return gas_of


class ServiceFollower:
    """Where a role's services answer now, for an agent that rides out an outage.

    A URL given explicitly (``settings.rpc_url``, ``settings.ipfs_api``) is kept as it is; one
    that came from the state directory's records (the managed devnet and IPFS node) is read
    again on every :meth:`moved`, so an agent follows a node that came back elsewhere."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.follows_rpc = not settings.rpc_url
        self.follows_ipfs = settings.store == "ipfs" and not settings.ipfs_api
        self.rpc_url = rpc_url_of(settings)
        self.ipfs_api = self._ipfs_now() if settings.store == "ipfs" else None

    def _ipfs_now(self) -> str:
        from fedchain.storage.factory import resolve_ipfs_api

        return resolve_ipfs_api(self.settings)

    def moved(self) -> tuple[str | None, str | None]:
        """(the new RPC URL, the new IPFS API URL), each None when it did not move (or is
        given explicitly). Raises ServiceError/StorageUnavailableError while a recorded
        service is not running."""
        rpc = ipfs = None
        if self.follows_rpc:
            now = devnet_url(self.settings.state_dir)
            if now != self.rpc_url:
                self.rpc_url = rpc = now
        if self.follows_ipfs:
            api = self._ipfs_now()
            if api != self.ipfs_api:
                self.ipfs_api = ipfs = api
        return rpc, ipfs

    def settings_now(self) -> Settings:
        """The settings with the URLs as last looked up."""
        return self.settings.with_overrides(rpc_url=self.rpc_url, ipfs_api=self.ipfs_api)


class _Reconnectable(Protocol):
    """An agent or transport that talks to the ledger and the blob store through these attributes."""

    ledger: ChainLedger | Any
    store: BlobStore | Any


def follow_services(settings: Settings, holder: _Reconnectable, *, account: Signer | None, address: str | None,
                    close_replaced: bool = True,
                    on_new_store: Callable[[BlobStore], None] | None = None) -> Callable[[], None]:
    """After an outage, reconnect ``holder`` to a managed devnet or IPFS node that came back on
    another URL (only for URLs read from the state dir, never for ones given explicitly).

    The replaced store is closed unless ``close_replaced`` is false (its owner closes it);
    ``on_new_store`` is told of every store opened here."""
    follower = ServiceFollower(settings)

    def follow() -> None:
        rpc, ipfs = follower.moved()
        if rpc is not None:
            log.warning("the devnet answers on %s now; reconnecting", rpc)
            holder.ledger = connect_ledger(follower.settings_now(), account=account, address=address)
        if ipfs is not None:
            log.warning("the IPFS node answers on %s now; reconnecting", ipfs)
            old, holder.store = holder.store, open_blob_store(follower.settings_now())
            if close_replaced:
                old.close()
            if on_new_store is not None:
                on_new_store(holder.store)

    return follow


def governance_records(conn: Connection, deployment: Deployment) -> GovernanceRecords:
    """The audit's :class:`~fedchain.audit.governance.GovernanceRecords` of a recorded deployment:
    its governor's proposals and its timelock's calls and roles, or, for a deployment whose admin
    is an account, the statement that it has no governance."""
    from fedchain.audit.governance import GovernanceRecords
    from fedchain.chain.governance import Governance

    def is_contract(address: str) -> bool:
        return len(conn.code_at(address)) > 0

    if not deployment.governed or deployment.governor is None or deployment.timelock is None:
        return GovernanceRecords.eoa(deployment.tx_hash, is_contract)
    gov = Governance.from_deployment(conn, deployment)
    return GovernanceRecords.from_governance(gov, governor=deployment.governor, timelock=deployment.timelock,
                                             membership=deployment.membership, deployment_tx=deployment.tx_hash,
                                             is_contract=is_contract)

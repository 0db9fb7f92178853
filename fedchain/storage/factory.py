"""Choose the blob store a process uses, from :class:`~fedchain.config.Settings`."""

from __future__ import annotations

import logging

from fedchain.config import Settings
from fedchain.errors import StorageUnavailableError
from fedchain.ports import BlobStore
from fedchain.services.ipfs import read_node, record_path
from fedchain.storage.ipfs import IpfsStore
from fedchain.storage.local import LocalStore

__all__ = ["open_store", "resolve_ipfs_api"]

log = logging.getLogger(__name__)


def resolve_ipfs_api(settings: Settings) -> str:
    """``settings.ipfs_api``, else the API URL of the managed node recorded under the state dir."""
    if settings.ipfs_api:
        return settings.ipfs_api
    node = read_node(settings.state_dir)
    if node is None:
        raise StorageUnavailableError(
            f"no IPFS node is running for state dir {settings.state_dir} (nothing live recorded in "
            f"{record_path(settings.state_dir)}): start one with `fedchain ipfs start`, pass --ipfs-api URL, "
            "or use --store local"
        )
    return node.api_url


def open_store(settings: Settings) -> BlobStore:
    """The store ``settings.store`` names: ``"local"`` -> files under ``<state_dir>/blobs``;
    ``"ipfs"`` -> ``settings.ipfs_api`` or the managed node (StorageUnavailableError if none)."""
    if settings.store == "local":
        return LocalStore(settings.state_dir / "blobs", max_bytes=settings.max_blob_bytes)
    api = resolve_ipfs_api(settings)
    log.debug("blob store: IPFS API %s", api)
    return IpfsStore(api, timeout_s=settings.http_timeout_s, max_bytes=settings.max_blob_bytes)

"""The :class:`BlobStore` protocol: content-addressed blobs, verified on the way out.

Two implementations: :class:`~fedchain.storage.ipfs.IpfsStore` (a Kubo-compatible RPC
API: js-ipfs, Kubo, or an IPFS Cluster proxy) and :class:`~fedchain.storage.local.LocalStore`
(files under ``<state_dir>/blobs``). Both address a blob by the CIDv1 that
``ipfs add --cid-version=1 --raw-leaves`` gives it (:mod:`fedchain.storage.cid`), so a blob
put into one store is found under the same CID in the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from fedchain.errors import BlobFormatError, IntegrityError
from fedchain.storage.cid import CidBuilder, compute_cid, parse_cid
from fedchain.types import Cid

__all__ = ["BlobStore", "verify_bytes", "check_size", "COPY_BUFFER"]

COPY_BUFFER = 1024 * 1024


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed blob storage.

    ``get`` and ``get_file`` return bytes only after checking them against the CID; a
    mismatch raises :class:`~fedchain.errors.IntegrityError`, a missing blob
    :class:`~fedchain.errors.BlobNotFoundError`, an unreachable backend
    :class:`~fedchain.errors.StorageUnavailableError`.
    """

    def put(self, data: bytes) -> Cid:
        """Store ``data`` (pinned) and return its CID."""
        ...

    def get(self, cid: Cid) -> bytes:
        """The bytes filed under ``cid``, verified against it."""
        ...

    def pin(self, cid: Cid) -> None:
        """Keep ``cid`` from garbage collection; it must be available."""
        ...

    def has(self, cid: Cid) -> bool:
        """Whether the store holds ``cid`` (pinned)."""
        ...

    def put_file(self, path: Path) -> Cid:
        """Stream a file into the store (pinned) and return its CID, without reading it whole."""
        ...

    def get_file(self, cid: Cid, dest: Path) -> int:
        """Stream ``cid`` into ``dest`` (atomically, only once verified); return its size."""
        ...

    def describe(self) -> str:
        """A one-line description for logs and CLI output (``ipfs http://...``, ``local DIR``)."""
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...

    def __enter__(self) -> "BlobStore":
        ...

    def __exit__(self, *exc: object) -> None:
        """Calls :meth:`close`."""
        ...


def check_size(size: int, max_bytes: int, what: str) -> None:
    """Raise :class:`BlobFormatError` if ``size`` exceeds the configured blob limit."""
    if size > max_bytes:
        raise BlobFormatError(f"{what} is {size} bytes, over the limit of {max_bytes} bytes (max_blob_bytes)")


def verify_bytes(cid: Cid, data: bytes | bytearray | memoryview, where: str) -> None:
    """Raise :class:`IntegrityError` unless ``data`` hashes to ``cid``."""
    parse_cid(cid)
    actual = compute_cid(data)
    if actual != cid:
        raise IntegrityError(f"{where}: content does not match {cid} (it hashes to {actual})")


def verify_builder(cid: Cid, builder: CidBuilder, where: str) -> None:
    """Like :func:`verify_bytes`, for content streamed through a :class:`CidBuilder`."""
    actual = builder.cid()
    if actual != cid:
        raise IntegrityError(f"{where}: content does not match {cid} (it hashes to {actual})")

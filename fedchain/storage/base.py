"""Helpers shared by the :class:`~fedchain.ports.BlobStore` implementations: size limits and
CID checks on the way out.

Two implementations: :class:`~fedchain.storage.ipfs.IpfsStore` (a Kubo-compatible RPC
API: js-ipfs, Kubo, or an IPFS Cluster proxy) and :class:`~fedchain.storage.local.LocalStore`
(files under ``<state_dir>/blobs``). Both address a blob by the CIDv1 that
``ipfs add --cid-version=1 --raw-leaves`` gives it (:mod:`fedchain.storage.cid`), so a blob
put into one store is found under the same CID in the other.
"""

from __future__ import annotations

from fedchain.errors import BlobFormatError, IntegrityError
from fedchain.storage.cid import CidBuilder, compute_cid, parse_cid
from fedchain.types import Cid

__all__ = ["verify_bytes", "verify_builder", "check_size", "COPY_BUFFER"]

COPY_BUFFER = 1024 * 1024


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

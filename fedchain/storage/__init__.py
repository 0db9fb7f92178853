"""Blob storage: the :class:`BlobStore` protocol, an IPFS store (Kubo RPC API), a local
content-addressed store with identical CIDs, and the canonical blob and JSON document formats.
The js-ipfs node process itself is managed by :mod:`fedchain.services.ipfs`.

Submodules are imported on first use: ``from fedchain.storage import encode_json_doc``
does not pull in httpx, and ``LocalStore`` does not pull in numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "BlobStore",
    "LocalStore",
    "IpfsStore",
    "open_store",
    "compute_cid",
    "CidBuilder",
    "parse_cid",
    "BlobKind",
    "BlobHeader",
    "encode_blob",
    "decode_blob",
    "decode_header",
    "blob_digest",
    "encode_json_doc",
    "decode_json_doc",
]

_HOMES = {
    "BlobStore": "fedchain.ports",
    "LocalStore": "fedchain.storage.local",
    "IpfsStore": "fedchain.storage.ipfs",
    "open_store": "fedchain.storage.factory",
    "compute_cid": "fedchain.storage.cid",
    "CidBuilder": "fedchain.storage.cid",
    "parse_cid": "fedchain.storage.cid",
    "BlobKind": "fedchain.codec.blob",
    "BlobHeader": "fedchain.codec.blob",
    "encode_blob": "fedchain.codec.blob",
    "decode_blob": "fedchain.codec.blob",
    "decode_header": "fedchain.codec.blob",
    "blob_digest": "fedchain.codec.blob",
    "encode_json_doc": "fedchain.codec.blob",
    "decode_json_doc": "fedchain.codec.blob",
}

if TYPE_CHECKING:
    from fedchain.codec.blob import (
        BlobHeader,
        BlobKind,
        blob_digest,
        decode_blob,
        decode_header,
        decode_json_doc,
        encode_blob,
        encode_json_doc,
    )
    from fedchain.ports import BlobStore
    from fedchain.storage.cid import CidBuilder, compute_cid, parse_cid
    from fedchain.storage.factory import open_store
    from fedchain.storage.ipfs import IpfsStore
    from fedchain.storage.local import LocalStore


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'fedchain.storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)

"""Update and global-model blobs: the federation's records in the canonical blob format.

An update blob is a :class:`fedchain.fl.records.ClientUpdate` (header: kind ``update``, round,
participant, base model digest, sample count; extras carry the update kind and the client's
scalar extras as canonical JSON strings). A global blob holds the model weights plus the
strategy's server state under the ``server/`` prefix (SCAFFOLD's c, FedAdam's moments), so the
next round - and the auditor - can continue from the blob alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fedchain.codec.bounded_json import JsonLimits, parse_json
from fedchain.errors import BlobFormatError
from fedchain.types import ZERO_DIGEST, Address, Digest, RoundId, digest_hex

if TYPE_CHECKING:
    from fedchain.fl.models import ModelSpec
    from fedchain.fl.records import ClientUpdate, ExtraValue

SERVER_PREFIX = "server/"
KIND_UPDATE = "update"
KIND_GLOBAL = "global"
_EXTRA_PREFIX = "x."
_UPDATE_KIND_KEY = "update_kind"
# An update's scalar extra: one JSON number or string (the blob header bounds its length).
_EXTRA_LIMITS = JsonLimits(max_bytes=4096, max_depth=0, max_members=1, max_values=1)


@dataclass(frozen=True, eq=False)
class GlobalModel:
    """A decoded global-model blob: the weights, the strategy's server state and the round behind them."""

    round_id: RoundId  # the round that produced it (0: the initial model)
    base_model_digest: Digest
    weights: Mapping[str, np.ndarray]
    server_state: Mapping[str, np.ndarray]
    num_samples: int


METADATA_FORMAT = "fedchain.update-meta/1"


def metadata_digest(update: ClientUpdate) -> Digest:
    """Digest of an update's metadata (round, participant, base model, kind and scalar extras),
    the ``metadataDigest`` a participant commits on chain next to the blob's digest."""
    from fedchain.codec.canonical import canonical_json, sha256_digest

    return sha256_digest(
        canonical_json(
            {
                "format": METADATA_FORMAT,
                "round": int(update.round_id),
                "participant": str(update.participant),
                "base_model_digest": digest_hex(update.base_model_digest),
                "kind": update.kind.value,
                "extras": dict(update.extras),
            }
        )
    )


def encode_update(update: ClientUpdate) -> bytes:
    """Canonical blob bytes of a ClientUpdate."""
    from fedchain.codec.blob import BlobHeader, BlobKind, encode_blob

    extras = {_UPDATE_KIND_KEY: str(update.kind.value)}
    for key, value in update.extras.items():
        extras[_EXTRA_PREFIX + key] = json.dumps(value, sort_keys=True)
    header = BlobHeader(
        kind=BlobKind(KIND_UPDATE),
        round=int(update.round_id),
        participant=str(update.participant),
        base_model_digest=Digest(bytes(update.base_model_digest)),
        num_samples=int(update.num_samples),
        extras=extras,
    )
    return bytes(encode_blob(header, dict(update.tensors)))


def decode_update(data: bytes) -> ClientUpdate:
    """ClientUpdate from blob bytes; BlobFormatError if it is not a well-formed update blob."""
    from fedchain.codec.blob import decode_blob
    from fedchain.fl.records import ClientUpdate, UpdateKind

    header, tensors = decode_blob(data)
    if header.kind != KIND_UPDATE:
        raise BlobFormatError(f"expected an update blob, got kind {header.kind!r}")
    extras: dict[str, ExtraValue] = {}
    try:
        kind = UpdateKind(header.extras.get(_UPDATE_KIND_KEY, "delta"))
        for key, raw in header.extras.items():
            if key.startswith(_EXTRA_PREFIX):
                value = parse_json(raw.encode("utf-8"), _EXTRA_LIMITS, f"update extra {key!r}")
                if not isinstance(value, (int, float, str)) or isinstance(value, bool):
                    raise ValueError(f"extra {key} is not a number or string")
                extras[key[len(_EXTRA_PREFIX) :]] = value
        return ClientUpdate(
            participant=Address(str(header.participant)),
            round_id=RoundId(int(header.round)),
            num_samples=int(header.num_samples),
            tensors=dict(tensors),
            base_model_digest=Digest(bytes(header.base_model_digest)),
            kind=kind,
            extras=extras,
        )
    except (ValueError, TypeError) as err:
        raise BlobFormatError(f"malformed update blob: {err}") from err


def encode_global(
    *,
    round_id: int,
    base_model_digest: bytes,
    weights: Mapping[str, np.ndarray],
    server_state: Mapping[str, np.ndarray],
    num_samples: int,
) -> bytes:
    """Canonical blob bytes of a global model (weights + server state)."""
    from fedchain.codec.blob import BlobHeader, BlobKind, encode_blob

    tensors: dict[str, np.ndarray] = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    for name, value in server_state.items():
        tensors[SERVER_PREFIX + name] = np.asarray(value, dtype=np.float32)
    header = BlobHeader(
        kind=BlobKind(KIND_GLOBAL),
        round=int(round_id),
        participant="",
        base_model_digest=Digest(bytes(base_model_digest)),
        num_samples=int(num_samples),
        extras={},
    )
    return bytes(encode_blob(header, tensors))


def decode_global(data: bytes) -> GlobalModel:
    """Decode a global-model blob; BlobFormatError for any other blob."""
    from fedchain.codec.blob import decode_blob

    header, tensors = decode_blob(data)
    if header.kind != KIND_GLOBAL:
        raise BlobFormatError(f"expected a global model blob, got kind {header.kind!r}")
    weights = {k: v for k, v in tensors.items() if not k.startswith(SERVER_PREFIX)}
    state = {k[len(SERVER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(SERVER_PREFIX)}
    return GlobalModel(
        round_id=RoundId(int(header.round)),
        base_model_digest=Digest(bytes(header.base_model_digest)),
        weights=weights,
        server_state=state,
        num_samples=int(header.num_samples),
    )


def initial_global(spec: ModelSpec, seed: int) -> bytes:
    """The round-0 global blob: the model built from ``spec`` with the task seed."""
    from fedchain.fl.models import build_model, get_weights

    model = build_model(spec, seed)
    return encode_global(
        round_id=0, base_model_digest=ZERO_DIGEST, weights=get_weights(model), server_state={}, num_samples=0
    )

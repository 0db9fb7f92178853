"""The federation's global models as the chain records them: located by round, fetched from the
blob store and checked against the digest on chain before anything is decoded or written, then
exported as safetensors or a torch state dict, or evaluated on a participant's data.

Everything here talks to the :class:`~fedchain.ports.Ledger` and :class:`~fedchain.ports.BlobStore`
ports only, so the ``fedchain model`` commands and the notebook API (:mod:`fedchain.api`) share
one verified load, :func:`load_verified_model`.
"""

from __future__ import annotations

import io
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fedchain import __version__
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import ConfigError, IntegrityError, ModelNotAvailableError
from fedchain.ports import BlobStore, Ledger, RoundStatus
from fedchain.protocol.blobs import GlobalModel, decode_global
from fedchain.protocol.task import TaskDocument, load_model_source, load_task_document
from fedchain.types import ZERO_DIGEST, Cid, Digest, RoundId, digest_hex

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_METADATA_FORMAT",
    "ExportedModel",
    "ModelLocation",
    "VerifiedModel",
    "build_module",
    "evaluate_model",
    "export_format",
    "export_model",
    "load_verified_model",
    "locate_model",
]

EXPORT_FORMATS: Mapping[str, str] = {".safetensors": "safetensors", ".pt": "torch"}
"""Export file suffix -> format."""
EXPORT_METADATA_FORMAT = "fedchain.global-model/1"


@dataclass(frozen=True)
class ModelLocation:
    """Where the chain says a global model is: its digest and CID, the round behind it, its task version."""

    round_id: RoundId | None  # the finalised round that produced it (0: the initial model); None: read from the blob
    model_digest: Digest
    model_cid: Cid
    task_version: int


@dataclass(frozen=True, eq=False)
class VerifiedModel:
    """A global model whose blob matched the digest the chain records for it, with the verified task behind it."""

    round_id: RoundId  # the finalised round that produced it (0: the initial model)
    model_digest: Digest
    model_cid: Cid
    task_version: int
    task: TaskDocument
    model: GlobalModel
    blob_bytes: int

    @property
    def weights(self) -> Mapping[str, np.ndarray]:
        """The model's weights by torch state-dict name (float32), without the strategy's server state."""
        return self.model.weights

    def num_parameters(self) -> int:
        """The number of scalars in the weights."""
        return sum(int(np.asarray(v).size) for v in self.model.weights.values())

    def metadata(self, *, chain_id: int, contract: str) -> dict[str, str]:
        """The provenance written into an exported file (all strings, as safetensors requires)."""
        return {
            "format": EXPORT_METADATA_FORMAT,
            "fedchain_version": __version__,
            "chain_id": str(int(chain_id)),
            "contract": str(contract),
            "round": str(int(self.round_id)),
            "model_digest": digest_hex(self.model_digest),
            "model_cid": str(self.model_cid),
            "task_version": str(int(self.task_version)),
            "model_spec_digest": digest_hex(self.task.model_spec_digest()),
            "dataset": self.task.dataset,
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary: round, digest, CID, task and parameter count."""
        spec = self.task.spec()
        return {
            "round": int(self.round_id),
            "model_digest": digest_hex(self.model_digest),
            "model_cid": str(self.model_cid),
            "task_version": int(self.task_version),
            "dataset": self.task.dataset,
            "model_spec_digest": digest_hex(self.task.model_spec_digest()),
            "arch": spec.arch,
            "input_shape": list(spec.input_shape),
            "num_classes": int(spec.num_classes),
            "parameters": self.num_parameters(),
            "tensors": {name: list(np.asarray(v).shape) for name, v in sorted(self.model.weights.items())},
            "num_samples": int(self.model.num_samples),
            "blob_bytes": int(self.blob_bytes),
        }


@dataclass(frozen=True)
class ExportedModel:
    """A model file written by :func:`export_model`."""

    path: Path
    format: str  # "safetensors" or "torch"
    bytes: int
    sha256: str  # of the file written
    metadata: Mapping[str, str]


def locate_model(ledger: Ledger, round_id: int | None = None) -> ModelLocation:
    """Where the chain records the model of ``round_id`` (a finalised round; 0: the initial model,
    round 1's base) or, for None, the current model. ModelNotAvailableError for a round that does
    not exist, is not finalised or was disputed, and when no round was finalised yet."""
    latest = int(ledger.latest_round_id())
    if round_id is None:
        return _current_model(ledger, latest)
    rid = int(round_id)
    if latest == 0:
        raise ModelNotAvailableError(f"round {rid} does not exist: no round was opened yet")
    if not 0 <= rid <= latest:
        raise ModelNotAvailableError(f"round {rid} does not exist (rounds 1 to {latest} were opened)")
    if rid == 0:
        first = ledger.round(RoundId(1))
        return ModelLocation(RoundId(0), first.base_model_digest, first.base_model_cid, int(first.task_version))
    rnd = ledger.round(RoundId(rid))
    if rnd.status == RoundStatus.DISPUTED:
        raise ModelNotAvailableError(
            f"round {rid} was disputed: the members refuted its model {digest_hex(rnd.model_digest)}, so it is not "
            "served (see `fedchain audit --round " + str(rid) + "`)")
    if rnd.status != RoundStatus.FINALIZED or not rnd.model_cid:
        why = f" ({rnd.close_reason})" if rnd.close_reason else ""
        raise ModelNotAvailableError(
            f"round {rid} is {rnd.status.name.lower()}{why}, not finalised: it has no global model")
    return ModelLocation(RoundId(rid), rnd.model_digest, rnd.model_cid, int(rnd.task_version))


def _current_model(ledger: Ledger, latest: int) -> ModelLocation:
    current = ledger.current_model_digest()
    if bytes(current) == bytes(ZERO_DIGEST):
        raise ModelNotAvailableError("the federation has no global model yet: no round was finalised")
    rid = int(ledger.current_model_round())
    if rid > 0:
        rnd = ledger.round(RoundId(rid))
        if rnd.status != RoundStatus.FINALIZED or bytes(rnd.model_digest) != bytes(current) or not rnd.model_cid:
            raise IntegrityError(f"the current model {digest_hex(current)} is not the model of round {rid} on the ledger")
        return ModelLocation(RoundId(rid), rnd.model_digest, rnd.model_cid, int(rnd.task_version))
    # after a dispute the federation fell back to the disputed round's base model: some round's base
    for r in range(latest, 0, -1):
        rnd = ledger.round(RoundId(r))
        if bytes(rnd.base_model_digest) == bytes(current) and rnd.base_model_cid:
            return ModelLocation(None, Digest(bytes(current)), rnd.base_model_cid, int(rnd.task_version))
    raise IntegrityError(f"the current model {digest_hex(current)} is neither a finalised round's model nor a "
                         "round's base model on the ledger")


def load_verified_model(ledger: Ledger, store: BlobStore, round_id: int | None = None) -> VerifiedModel:
    """The global model of ``round_id`` (None: the current one), its blob fetched and checked against
    the digest on chain before it is decoded, with its verified task document.

    IntegrityError when the blob's sha256 is not the digest on chain, or the blob names another
    round; ModelNotAvailableError as :func:`locate_model`."""
    where = locate_model(ledger, round_id)
    data = store.get(where.model_cid)
    actual = sha256_digest(data)
    if bytes(actual) != bytes(where.model_digest):
        what = "the current model" if round_id is None else f"round {round_id}'s model"
        raise IntegrityError(
            f"the blob {where.model_cid} the store returned for {what} has sha256 {digest_hex(actual)}, but the chain "
            f"records {digest_hex(where.model_digest)}: refused")
    model = decode_global(data)
    if where.round_id is not None and int(model.round_id) != int(where.round_id):
        raise IntegrityError(f"the model blob {where.model_cid} names round {model.round_id}, the chain files it under "
                             f"round {where.round_id}")
    _, task = load_task_document(ledger, store, where.task_version)
    load_model_source(task, store, None)  # a custom model's source, checked against its digest, for build_module
    return VerifiedModel(
        round_id=RoundId(int(model.round_id)) if where.round_id is None else where.round_id,
        model_digest=where.model_digest,
        model_cid=where.model_cid,
        task_version=where.task_version,
        task=task,
        model=model,
        blob_bytes=len(data),
    )


def export_format(path: Path) -> str:
    """The export format of ``path`` by its suffix; ConfigError for another suffix."""
    fmt = EXPORT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(f"cannot export a model to {path}: the file name must end in "
                          f"{' or '.join(EXPORT_FORMATS)}, got {Path(path).suffix or 'no suffix'!r}")
    return fmt


def _tensors(model: VerifiedModel) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(np.asarray(value, dtype=np.float32)) for name, value in sorted(model.weights.items())}


def _encode(model: VerifiedModel, fmt: str, metadata: dict[str, str]) -> bytes:
    if fmt == "safetensors":
        from safetensors.numpy import save

        return bytes(save(_tensors(model), metadata=metadata))
    import torch

    buffer = io.BytesIO()
    torch.save({name: torch.from_numpy(value.copy()) for name, value in _tensors(model).items()}, buffer)
    return buffer.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, renamed over it once complete."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException as err:  # an interrupt too: never leave a partial temporary file behind
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise ConfigError(f"cannot write the model to {path}: {err.strerror or err}") from err
        raise


def export_model(model: VerifiedModel, path: Path, *, chain_id: int, contract: str) -> ExportedModel:
    """Write ``model``'s weights to ``path`` by its suffix: ``.safetensors`` (state-dict names as keys, the
    provenance of :meth:`VerifiedModel.metadata` in the header) or ``.pt`` (a torch state dict for
    ``load_state_dict``). Atomic: the file appears complete or not at all. ConfigError for another suffix."""
    path = Path(path)
    fmt = export_format(path)
    metadata = model.metadata(chain_id=chain_id, contract=contract)
    data = _encode(model, fmt, metadata)
    _write_atomically(path, data)
    return ExportedModel(path, fmt, len(data), digest_hex(sha256_digest(data)), metadata)


def build_module(model: VerifiedModel) -> nn.Module:
    """The task's model (:func:`fedchain.fl.models.build_model` of its model spec) holding ``model``'s weights."""
    from fedchain.fl.models import build_model, set_weights

    module = build_model(model.task.spec(), model.task.seed)
    set_weights(module, dict(model.weights))
    module.eval()
    return module


def evaluate_model(model: VerifiedModel, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy, mean cross-entropy loss, samples (and AUC for two classes) of ``model`` on ``(x, y)``;
    NaN accuracy and loss for a model with non-finite weights."""
    from fedchain.fl.models import evaluate

    if not all(np.isfinite(v).all() for v in model.weights.values()):
        return {"accuracy": math.nan, "loss": math.nan, "n": float(len(y))}
    return {k: float(v) for k, v in evaluate(build_module(model), x, y).items()}

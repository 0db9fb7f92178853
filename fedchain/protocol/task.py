"""The task configuration document.

The chain's ``TaskConfigured`` event records three digests (model spec, strategy, data schema)
and the CID of this document. The document carries everything a participant needs to train
(dataset name, data schema, model spec, strategy config - whose parameters include the local
training config (epochs, batch size, learning rate, mu, q) and so are covered by the strategy
digest on chain - seed and round parameters); its three spec digests must equal the chain's, which :func:`verify_task` checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, TypeVar

from fedchain.errors import ConfigError, IntegrityError, ParticipantError
from fedchain.ports import Ledger, TaskConfig, TaskConfigured, TxReport
from fedchain.types import Cid, Digest, digest_hex

if TYPE_CHECKING:
    from fedchain.fl.models import ModelSpec
    from fedchain.fl.records import StrategyConfig
    from fedchain.fl.schema import DataSchema
    from fedchain.ports import BlobStore

_Spec = TypeVar("_Spec", "DataSchema", "ModelSpec")

TASK_FORMAT = "fedchain.task/1"


@dataclass(frozen=True)
class TaskDocument:
    """The task configuration document (canonical JSON, stored in the blob store)."""

    dataset: str
    data_schema: DataSchema
    model_spec: ModelSpec
    strategy: StrategyConfig
    seed: int
    min_updates: int
    commit_duration: int
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.min_updates < 1:
            raise ConfigError(f"min_updates must be >= 1, got {self.min_updates}")
        if self.commit_duration < 1:
            raise ConfigError(f"commit_duration must be >= 1 s, got {self.commit_duration}")

    # --- typed views ------------------------------------------------------------------
    def schema(self) -> DataSchema:
        """The data schema participants' data must match."""
        return self.data_schema

    def spec(self) -> ModelSpec:
        """The model every participant trains."""
        return self.model_spec

    def strategy_config(self) -> StrategyConfig:
        """The strategy, its local-training parameters and its robust rules."""
        return self.strategy

    # --- digests ------------------------------------------------------------------------
    def model_spec_digest(self) -> Digest:
        return Digest(bytes(self.spec().digest()))

    def data_schema_digest(self) -> Digest:
        return Digest(bytes(self.schema().digest()))

    def strategy_digest(self) -> Digest:
        return Digest(bytes(self.strategy_config().digest()))

    # --- serialisation -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": TASK_FORMAT,
            "dataset": self.dataset,
            "data_schema": _to_json(self.data_schema),
            "model_spec": _to_json(self.model_spec),
            "strategy": _to_json(self.strategy),
            "seed": self.seed,
            "min_updates": self.min_updates,
            "commit_duration": self.commit_duration,
            "extras": dict(self.extras),
        }

    def to_bytes(self) -> bytes:
        from fedchain.codec.blob import encode_json_doc

        return bytes(encode_json_doc(self.to_json()))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TaskDocument":
        if not isinstance(data, Mapping) or data.get("format") != TASK_FORMAT:
            raise ConfigError(f"not a task document (format {data.get('format') if isinstance(data, Mapping) else None!r})")
        from fedchain.fl.models import ModelSpec
        from fedchain.fl.schema import DataSchema

        try:
            return cls(
                dataset=str(data["dataset"]),
                data_schema=_from_json(DataSchema, dict(data["data_schema"]), "data schema"),
                model_spec=_from_json(ModelSpec, dict(data["model_spec"]), "model spec"),
                strategy=strategy_config_from_json(dict(data["strategy"])),
                seed=int(data["seed"]),
                min_updates=int(data["min_updates"]),
                commit_duration=int(data["commit_duration"]),
                extras=dict(data.get("extras", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"task document is malformed: {err}") from err

    @classmethod
    def from_bytes(cls, data: bytes) -> "TaskDocument":
        from fedchain.codec.blob import decode_json_doc

        return cls.from_json(decode_json_doc(data))

    @classmethod
    def build(
        cls,
        *,
        dataset: str,
        schema: DataSchema,
        spec: ModelSpec,
        strategy: StrategyConfig,
        seed: int,
        min_updates: int,
        commit_duration: int,
        extras: Mapping[str, Any] | None = None,
    ) -> "TaskDocument":
        """Build a document from the typed FL objects (DataSchema, ModelSpec, StrategyConfig)."""
        return cls(
            dataset=dataset,
            data_schema=schema,
            model_spec=spec,
            strategy=strategy,
            seed=seed,
            min_updates=min_updates,
            commit_duration=commit_duration,
            extras=dict(extras or {}),
        )


def verify_task(doc: TaskDocument, task: TaskConfig) -> None:
    """Raise IntegrityError unless the document's spec digests equal the chain's TaskConfig."""
    pairs = (
        ("model spec", doc.model_spec_digest(), task.model_spec_digest),
        ("strategy", doc.strategy_digest(), task.strategy_digest),
        ("data schema", doc.data_schema_digest(), task.data_schema_digest),
    )
    for name, mine, chain in pairs:
        if bytes(mine) != bytes(chain):
            raise IntegrityError(
                f"task v{task.version}: {name} digest of document {task.config_cid} is {digest_hex(mine)}, "
                f"the chain records {digest_hex(chain)}"
            )


def strategy_config_from_json(data: Mapping[str, Any]) -> StrategyConfig:
    """Rebuild a :class:`fedchain.fl.records.StrategyConfig` from its canonical JSON object."""
    from fedchain.fl.records import CODE_VERSION, RobustConfig, StrategyConfig

    if data.get("code_version") != CODE_VERSION:
        raise ConfigError(
            f"task document: strategy code version {data.get('code_version')!r} is not this build's {CODE_VERSION!r}"
        )
    try:
        return StrategyConfig(
            name=str(data["strategy"]),
            params=dict(data.get("params", {})),
            robust=tuple(RobustConfig(str(r["name"]), dict(r.get("params", {}))) for r in data.get("robust", [])),
        )
    except (KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"task document: invalid strategy config: {err}") from err


def _to_json(obj: DataSchema | ModelSpec | StrategyConfig) -> dict[str, Any]:
    raw = obj.to_dict() if hasattr(obj, "to_dict") else obj.to_json()
    if isinstance(raw, (bytes, str)):
        raw = json.loads(raw)
    return dict(raw)


def _from_json(cls: type[_Spec], data: Mapping[str, Any], what: str) -> _Spec:
    from fedchain.errors import FedchainError

    try:
        if hasattr(cls, "from_dict"):
            return cls.from_dict(dict(data))
        return cls.from_json(json.dumps(dict(data), sort_keys=True))
    except FedchainError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"task document: invalid {what}: {err}") from err


def publish_task(ledger: Ledger, store: BlobStore, doc: TaskDocument) -> tuple[Cid, TxReport]:
    """Store the document and configure it on chain (admin role); returns (CID, TxReport).

    The document is stored first; nothing is written on chain unless that succeeded."""
    cid = store.put(doc.to_bytes())
    report = ledger.configure_task(doc.model_spec_digest(), doc.strategy_digest(), doc.data_schema_digest(), cid)
    return cid, report


def load_task_document(ledger: Ledger, store: BlobStore, version: int | None = None) -> tuple[TaskConfig, TaskDocument]:
    """Fetch the task document of ``version`` (default: current) and verify it against the chain."""
    task = ledger.task()
    if task is None:
        raise ParticipantError("no task is configured on the federation contract yet")
    if version is not None and int(task.version) != int(version):
        task = task_version(ledger, version)
    data = store.get(task.config_cid)
    doc = TaskDocument.from_bytes(data)
    verify_task(doc, task)
    return task, doc


def task_version(ledger: Ledger, version: int) -> TaskConfig:
    """The task configuration of ``version`` from the ``TaskConfigured`` events."""
    for event in ledger.history():
        if isinstance(event, TaskConfigured) and int(event.version) == int(version):
            return TaskConfig(
                version=event.version,
                model_spec_digest=event.model_spec_digest,
                strategy_digest=event.strategy_digest,
                data_schema_digest=event.data_schema_digest,
                config_cid=event.config_cid,
            )
    raise ParticipantError(f"task version {version} is not on the ledger")

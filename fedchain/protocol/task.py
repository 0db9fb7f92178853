"""The task configuration document.

The chain's ``TaskConfigured`` event records three digests (model spec, strategy, data schema),
the CID of this document and the longest commit phase a round may be opened with. The document
carries everything a participant needs to train (dataset name, data schema, model spec, strategy
config - whose parameters include the local training config (epochs, batch size, learning rate,
mu, q), the cap on a participant's weight share and the robust rules, and so are covered by the
strategy digest on chain - seed and round parameters): ``commit_duration`` (seconds a round's
commit phase lasts), ``max_commit_duration`` (the longest one the contract lets a round of this
task be opened with; default 86,400) and ``reveal_duration`` (seconds of the reveal phase after
the commit phase of a sealed, commit-reveal round; 0, the default: no commit-reveal). Its three
spec digests and its ``max_commit_duration`` must equal the chain's, which :func:`verify_task`
checks. A document written before ``max_commit_duration`` and ``reveal_duration`` existed reads
with their defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

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

DEFAULT_MAX_COMMIT_DURATION = 86_400
"""The longest commit phase (seconds) a round of the task may be opened with, when the document
does not say (documents written before the field existed): one day."""

MAX_DURATION = 2**64 - 1
"""Durations are ``uint64`` seconds on chain."""


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
    max_commit_duration: int = DEFAULT_MAX_COMMIT_DURATION
    reveal_duration: int = 0
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("seed", "min_updates", "commit_duration", "max_commit_duration", "reveal_duration"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"task document: {name} must be an integer, got {value!r}")
        if self.min_updates < 1:
            raise ConfigError(f"min_updates must be >= 1, got {self.min_updates}")
        if self.commit_duration < 1:
            raise ConfigError(f"commit_duration must be >= 1 s, got {self.commit_duration}")
        if not self.commit_duration <= self.max_commit_duration <= MAX_DURATION:
            raise ConfigError(
                f"max_commit_duration must be in [commit_duration = {self.commit_duration}, {MAX_DURATION}] s, "
                f"got {self.max_commit_duration}"
            )
        if not 0 <= self.reveal_duration <= MAX_DURATION:
            raise ConfigError(
                f"reveal_duration must be in [0, {MAX_DURATION}] s (0: no commit-reveal), got {self.reveal_duration}"
            )

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
        """The digest of the model spec, as the ledger records it for the task."""
        return Digest(bytes(self.spec().digest()))

    def data_schema_digest(self) -> Digest:
        """The digest of the data schema, as the ledger records it for the task."""
        return Digest(bytes(self.schema().digest()))

    def strategy_digest(self) -> Digest:
        """The digest of the strategy configuration, as the ledger records it for the task."""
        return Digest(bytes(self.strategy_config().digest()))

    # --- serialisation -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The task document as a JSON object."""
        return {
            "format": TASK_FORMAT,
            "dataset": self.dataset,
            "data_schema": _to_json(self.data_schema),
            "model_spec": _to_json(self.model_spec),
            "strategy": _to_json(self.strategy),
            "seed": self.seed,
            "min_updates": self.min_updates,
            "commit_duration": self.commit_duration,
            "max_commit_duration": self.max_commit_duration,
            "reveal_duration": self.reveal_duration,
            "extras": dict(self.extras),
        }

    def to_bytes(self) -> bytes:
        """The task document's canonical bytes, as stored under its CID."""
        from fedchain.codec.blob import encode_json_doc

        return bytes(encode_json_doc(self.to_json()))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskDocument:
        """The task document from its JSON object; ConfigError when it is not one or is malformed."""
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
                commit_duration=_integer(data, "commit_duration"),
                max_commit_duration=_integer(data, "max_commit_duration", DEFAULT_MAX_COMMIT_DURATION),
                reveal_duration=_integer(data, "reveal_duration", 0),
                extras=dict(data.get("extras", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"task document is malformed: {err}") from err

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskDocument:
        """The task document from its bytes."""
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
        max_commit_duration: int = DEFAULT_MAX_COMMIT_DURATION,
        reveal_duration: int = 0,
        extras: Mapping[str, Any] | None = None,
    ) -> TaskDocument:
        """Build a document from the typed FL objects (DataSchema, ModelSpec, StrategyConfig)."""
        return cls(
            dataset=dataset,
            data_schema=schema,
            model_spec=spec,
            strategy=strategy,
            seed=seed,
            min_updates=min_updates,
            commit_duration=commit_duration,
            max_commit_duration=max_commit_duration,
            reveal_duration=reveal_duration,
            extras=dict(extras or {}),
        )


def _integer(data: Mapping[str, Any], key: str, default: int | None = None) -> int:
    """``data[key]`` as an int (``default`` when absent and a default is given); a bool, a
    fraction or a non-number is a ConfigError naming the field."""
    if key not in data and default is not None:
        return default
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"task document: {key} must be an integer, got {value!r}")
    return value


def verify_task(doc: TaskDocument, task: TaskConfig) -> None:
    """Raise IntegrityError unless the document's three spec digests and its ``max_commit_duration``
    equal the chain's TaskConfig."""
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
    if int(doc.max_commit_duration) != int(task.max_commit_duration):
        raise IntegrityError(
            f"task v{task.version}: document {task.config_cid} allows commit phases of up to {doc.max_commit_duration} s, "
            f"the chain records {task.max_commit_duration} s"
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
    report = ledger.configure_task(
        doc.model_spec_digest(), doc.strategy_digest(), doc.data_schema_digest(), cid, doc.max_commit_duration
    )
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
                max_commit_duration=event.max_commit_duration,
            )
    raise ParticipantError(f"task version {version} is not on the ledger")

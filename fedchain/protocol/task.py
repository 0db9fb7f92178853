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

``rewards`` (optional, :class:`RewardsConfig`) names the contribution rule that scores a round's
included updates, its parameters, the consortium's validation set (an ``.npz`` blob in the store,
by digest and CID) and the per-round budget the task expects (informative: the incentives contract
holds the budget in force). A document without it has no ``rewards`` key in its JSON, so documents
written before the field existed keep their bytes and CIDs.

``privacy`` (optional, :class:`fedchain.fl.privacy.PrivacyPolicy`) is the task's differential-privacy
policy: mechanism (record-level DP-SGD or client-level DP-FedAvg), clipping norm, noise multiplier,
sampling rate, delta, accountant and the epsilon budget of each participant. Its digest and budget
are recorded on chain with the task (``configurePrivateTask``), which then refuses any commitment
that would take a participant past the budget. Absent: no ``privacy`` key in the JSON.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fedchain.errors import ConfigError, IntegrityError, ModelTrustError, ParticipantError, TaskNotConfiguredError
from fedchain.ports import Ledger, PrivacyPolicySet, TaskConfig, TaskConfigured, TxReport
from fedchain.protocol.secure import SecAggConfig, check_secagg_task
from fedchain.types import ZERO_DIGEST, Cid, Digest, digest_hex, parse_digest

if TYPE_CHECKING:
    from fedchain.fl.models import ModelSpec
    from fedchain.fl.privacy import PrivacyPolicy
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

REWARD_RULES = ("samples", "loo", "shapley")
"""The contribution rules a task may name (``fedchain.fl.contribution``)."""
VALIDATION_RULES = frozenset({"loo", "shapley"})
"""The rules whose utility is measured on the consortium's validation set."""


@dataclass(frozen=True)
class RewardsConfig:
    """How a task's rounds are rewarded: rule, its parameters, the validation set, the budget."""

    rule: str
    params: Mapping[str, Any] = field(default_factory=dict)
    validation_digest: Digest | None = None  # SHA-256 of the validation set's .npz bytes
    validation_cid: Cid | None = None
    budget: int = 0  # informative: the per-round budget (token base units) the task expects

    def __post_init__(self) -> None:
        if self.rule not in REWARD_RULES:
            raise ConfigError(f"rewards: unknown rule {self.rule!r}; expected one of {', '.join(REWARD_RULES)}")
        if not isinstance(self.params, Mapping) or not all(isinstance(k, str) for k in self.params):
            raise ConfigError(f"rewards: params must be an object with string keys, got {self.params!r}")
        for key, value in self.params.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"rewards: param {key!r} must be a number, got {value!r}")
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or not 0 <= self.budget < 2**256:
            raise ConfigError(f"rewards: budget must be an integer in [0, 2**256), got {self.budget!r}")
        if (self.validation_digest is None) != (self.validation_cid is None):
            raise ConfigError("rewards: the validation set needs both its digest and its CID")
        if self.validation_digest is not None and (
            not isinstance(self.validation_digest, bytes) or len(self.validation_digest) != 32
        ):
            raise ConfigError(f"rewards: validation digest must be 32 bytes, got {self.validation_digest!r}")
        if self.validation_cid is not None and (not isinstance(self.validation_cid, str) or not self.validation_cid):
            raise ConfigError(f"rewards: validation CID must be a non-empty string, got {self.validation_cid!r}")
        if self.rule in VALIDATION_RULES and self.validation_digest is None:
            raise ConfigError(f"rewards: rule {self.rule!r} needs a validation set (its digest and CID)")
        from fedchain.fl.contribution import ContributionRule  # torch: loaded only with a rewards config

        try:
            ContributionRule(self.rule, dict(self.params))
        except ConfigError as err:
            raise ConfigError(f"rewards: {err}") from err

    def to_json(self) -> dict[str, Any]:
        """The config as a JSON object (params sorted by the canonical encoding)."""
        return {
            "rule": self.rule,
            "params": dict(self.params),
            "validation_digest": None if self.validation_digest is None else digest_hex(self.validation_digest),
            "validation_cid": self.validation_cid,
            "budget": str(self.budget),
        }

    @classmethod
    def from_json(cls, data: Any) -> RewardsConfig:
        """The config from its JSON object; ConfigError naming the field that is wrong."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"task document: rewards must be an object, got {type(data).__name__}")
        unknown = set(data) - {"rule", "params", "validation_digest", "validation_cid", "budget"}
        if unknown:
            raise ConfigError(f"task document: rewards has unknown field(s) {', '.join(sorted(unknown))}")
        digest_text = data.get("validation_digest")
        digest: Digest | None = None
        if digest_text is not None:
            if not isinstance(digest_text, str):
                raise ConfigError(f"task document: rewards.validation_digest must be a hex string, got {digest_text!r}")
            try:
                digest = parse_digest(digest_text)
            except ValueError as err:
                raise ConfigError(f"task document: rewards.validation_digest: {err}") from err
        budget = data.get("budget", "0")
        if not isinstance(budget, str) or not budget.isdigit():
            raise ConfigError(f"task document: rewards.budget must be a decimal string, got {budget!r}")
        cid = data.get("validation_cid")
        return cls(
            rule=str(data.get("rule")),
            params=dict(data.get("params") or {}),
            validation_digest=digest,
            validation_cid=None if cid is None else Cid(str(cid)),
            budget=int(budget),
        )


@dataclass(frozen=True)
class SignedCommitsConfig:
    """Signed rounds: each participant signs its commitment off chain (EIP-712) and sends it to the aggregator's
    ``inbox``; at the end of the commit phase the aggregator stores the signed set as a blob and posts one Merkle root
    and count on chain; a participant left out of the set commits on chain (``commitUpdate``) within
    ``escape_duration`` seconds after the set is posted."""

    inbox: str  # the aggregator's commitment inbox, http://host:port
    escape_duration: int = 60

    def __post_init__(self) -> None:
        from urllib.parse import urlsplit

        if isinstance(self.escape_duration, bool) or not isinstance(self.escape_duration, int) or not (
            1 <= self.escape_duration <= MAX_DURATION
        ):
            raise ConfigError(f"signed commitments: escape_duration must be an integer in [1, {MAX_DURATION}] s, "
                              f"got {self.escape_duration!r}")
        try:
            parts = urlsplit(self.inbox) if isinstance(self.inbox, str) else None
            port = parts.port if parts is not None else None
        except ValueError:
            parts, port = None, None
        if parts is None or parts.scheme != "http" or not parts.hostname or port is None or parts.path not in ("", "/"):
            raise ConfigError(f"signed commitments: inbox must be an http://host:port URL, got {self.inbox!r}")

    def to_json(self) -> dict[str, Any]:
        """The config as a JSON object."""
        return {"inbox": self.inbox, "escape_duration": self.escape_duration}

    @classmethod
    def from_json(cls, data: Any) -> SignedCommitsConfig:
        """The config from its JSON object; ConfigError naming the field that is wrong."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"task document: signed_commits must be an object, got {type(data).__name__}")
        unknown = set(data) - {"inbox", "escape_duration"}
        if unknown:
            raise ConfigError(f"task document: signed_commits has unknown field(s) {', '.join(sorted(unknown))}")
        if not isinstance(data.get("inbox"), str):
            raise ConfigError(f"task document: signed_commits.inbox must be a string, got {data.get('inbox')!r}")
        return cls(inbox=data["inbox"], escape_duration=_integer(data, "escape_duration", 60))


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
    rewards: RewardsConfig | None = None
    privacy: PrivacyPolicy | None = None
    secagg: SecAggConfig | None = None  # rounds run with secure aggregation (the aggregator sees only the sum)
    signed_commits: SignedCommitsConfig | None = None  # rounds are signed rounds (one root of signed commitments)

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
        if self.privacy is not None:
            check_privacy_task(self)
        if self.secagg is not None and self.rewards is not None:
            raise ConfigError(
                "a secure-aggregation task cannot carry a rewards rule: rewards score each participant's update, "
                "which secure aggregation hides from everyone"
            )
        if self.signed_commits is not None:
            other = ("a privacy budget" if self.privacy is not None else "secure aggregation" if self.secagg is not None
                     else "commit-reveal" if self.reveal_duration else None)
            if other is not None:
                raise ConfigError(f"signed commitments cannot be combined with {other}: their commitments are "
                                  "on-chain records of their own")
            if self.signed_commits.escape_duration > self.max_commit_duration:
                raise ConfigError(f"signed commitments: escape_duration {self.signed_commits.escape_duration} s is "
                                  f"longer than max_commit_duration {self.max_commit_duration} s")
        if self.secagg is not None:
            check_secagg_task(
                self.strategy, self.secagg, reveal_duration=self.reveal_duration,
                max_commit_duration=self.max_commit_duration,
                privacy_mechanism=None if self.privacy is None else self.privacy.mechanism, min_updates=self.min_updates,
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

    def privacy_digest(self) -> Digest | None:
        """The digest of the privacy policy, as the ledger records it for the task (None: no policy)."""
        return None if self.privacy is None else Digest(bytes(self.privacy.digest()))

    def local_epochs(self) -> int:
        """Local epochs per round (the strategy's ``local_epochs`` parameter; 1 by default)."""
        value = self.strategy_config().params.get("local_epochs", 1)
        return int(value)

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
            **({} if self.rewards is None else {"rewards": self.rewards.to_json()}),
            **({} if self.privacy is None else {"privacy": self.privacy.to_json()}),
            **({} if self.secagg is None else {"secagg": self.secagg.to_json()}),
            **({} if self.signed_commits is None else {"signed_commits": self.signed_commits.to_json()}),
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
        from fedchain.fl.privacy import PrivacyPolicy
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
                rewards=None if data.get("rewards") is None else RewardsConfig.from_json(data["rewards"]),
                privacy=None if data.get("privacy") is None else PrivacyPolicy.from_json(data["privacy"]),
                secagg=None if data.get("secagg") is None else SecAggConfig.from_json(data["secagg"]),
                signed_commits=(None if data.get("signed_commits") is None
                                else SignedCommitsConfig.from_json(data["signed_commits"])),
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
        rewards: RewardsConfig | None = None,
        privacy: PrivacyPolicy | None = None,
        secagg: SecAggConfig | None = None,
        signed_commits: SignedCommitsConfig | None = None,
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
            rewards=rewards,
            privacy=privacy,
            secagg=secagg,
            signed_commits=signed_commits,
        )


PRIVATE_ALGORITHMS = {"dpsgd": ("fedavg",), "client": ("fedavg", "fedprox")}
"""The strategies each privacy mechanism supports: DP-SGD trains with plain (Opacus) SGD steps; client-level
DP clips and noises a model delta, which FedAvg and FedProx average."""


def check_privacy_task(doc: TaskDocument) -> None:
    """ConfigError unless the task's privacy policy fits its strategy and round parameters: a supported
    strategy; under client-level DP, uniform aggregation weights (each update counts once: the sensitivity
    of the sum to one client is the clipping norm) and rounds that need at least ``min_clients`` included
    updates (the noise shares of fewer would sum to less than the policy's noise)."""
    policy = doc.privacy
    if policy is None:
        return
    strategy = doc.strategy_config()
    supported = PRIVATE_ALGORITHMS[policy.mechanism]
    if strategy.name not in supported:
        raise ConfigError(
            f"privacy mechanism {policy.mechanism} supports the strategies {', '.join(supported)}, "
            f"not {strategy.name!r}"
        )
    if policy.mechanism == "client":
        if int(strategy.params.get("uniform_weights", 0)) != 1:
            raise ConfigError(
                "client-level DP needs uniform aggregation weights (strategy parameter uniform_weights = 1): "
                "weighting updates by their sample counts would let one client's update weigh more than the "
                "clipping norm the noise is calibrated to"
            )
        needed = policy.min_clients
        for name, value in (("min_updates", doc.min_updates), ("strategy min_updates",
                                                                int(strategy.params.get("min_updates", 1)))):
            if value < needed:
                raise ConfigError(
                    f"client-level DP with min_clients = {needed}: {name} must be >= {needed} (got {value}); "
                    f"each client adds only 1/sqrt({needed}) of the noise"
                )


def check_private_model(doc: TaskDocument) -> None:
    """ConfigError when the task's model cannot be trained with DP-SGD (a layer Opacus cannot compute
    per-sample gradients for, BatchNorm above all). Builds the model (torch)."""
    if doc.privacy is None or doc.privacy.mechanism != "dpsgd":
        return
    from fedchain.fl.models import build_model
    from fedchain.fl.privacy import check_private_model as check_module

    check_module(build_model(doc.spec(), 0))


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
    policy_digest = doc.privacy_digest()
    budget = 0 if doc.privacy is None else doc.privacy.budget_fixed()
    if bytes(policy_digest or ZERO_DIGEST) != bytes(task.privacy_policy_digest) or budget != int(task.epsilon_budget):
        raise IntegrityError(
            f"task v{task.version}: document {task.config_cid} has privacy policy "
            f"{'none' if policy_digest is None else digest_hex(policy_digest)} (budget {budget} micro-epsilon), "
            f"the chain records {digest_hex(task.privacy_policy_digest) if any(task.privacy_policy_digest) else 'none'} "
            f"(budget {task.epsilon_budget})"
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

    The document is stored first; nothing is written on chain unless that succeeded. A custom model's
    source must be in the store already (:func:`store_model_source`), with the bytes its digest names:
    otherwise nothing is stored."""
    load_model_source(doc, store, None)
    check_private_model(doc)
    cid = store.put(doc.to_bytes())
    if doc.privacy is not None:
        report = ledger.configure_private_task(
            doc.model_spec_digest(), doc.strategy_digest(), doc.data_schema_digest(), cid, doc.max_commit_duration,
            doc.privacy.digest(), doc.privacy.budget_fixed(),
        )
    else:
        report = ledger.configure_task(
            doc.model_spec_digest(), doc.strategy_digest(), doc.data_schema_digest(), cid, doc.max_commit_duration
        )
    return cid, report


def store_model_source(
    store: BlobStore,
    path: str | Path,
    *,
    factory: str,
    params: Mapping[str, Any],
    input_shape: tuple[int, ...],
    num_classes: int,
) -> ModelSpec:
    """Validate the model file ``path`` (:func:`fedchain.fl.models.custom_model_spec`), put its source
    in ``store`` and return the custom spec naming its CID: what a task document of that model needs
    stored before it is published."""
    from fedchain.fl.models import custom_model_spec

    spec, source = custom_model_spec(path, factory, params, input_shape, num_classes)
    return dataclasses.replace(spec, source_cid=store.put(source))


def load_model_source(doc: TaskDocument, store: BlobStore, trusted: Collection[str] | None) -> str | None:
    """Make the task's custom model buildable in this process: check its digest against ``trusted``
    (None: trust it, for whoever configured or replays the task), fetch its source by CID, check
    the bytes against the digest and register them. Returns the digest (None: a builtin model, nothing
    to do). ModelTrustError, before anything is fetched or run, for a digest not in ``trusted``;
    IntegrityError when the stored bytes are not the ones the spec's digest names; ConfigError for a
    custom spec without a CID or a malformed trusted digest."""
    spec = doc.spec()
    if spec.arch != "custom":
        return None
    from fedchain.fl.models import model_source_digest, register_model_source

    if trusted is not None:
        allowed = set()
        for entry in trusted:
            try:
                allowed.add(digest_hex(parse_digest(str(entry).strip())))
            except ValueError as err:
                raise ConfigError(f"trusted model digest {entry!r}: {err}") from err
        if spec.source_digest not in allowed:
            raise ModelTrustError(spec.source_digest, spec.source_cid)
    if not spec.source_cid:
        raise ConfigError(f"the task's model {spec.source_digest} names no source CID: its file was never stored "
                          "(store_model_source stores it before the task is published)")
    source = store.get(Cid(spec.source_cid))
    actual = model_source_digest(source)
    if actual != spec.source_digest:
        raise IntegrityError(f"the task's model source {spec.source_cid} has sha256 {actual}, but the model spec "
                             f"names {spec.source_digest}: refused, nothing of it was run")
    return register_model_source(source)


def load_task_document(ledger: Ledger, store: BlobStore, version: int | None = None) -> tuple[TaskConfig, TaskDocument]:
    """Fetch the task document of ``version`` (default: current) and verify it against the chain."""
    task = ledger.task()
    if task is None:
        raise TaskNotConfiguredError("no task is configured on the federation contract yet: the admin sets one with "
                                     "`fedchain admin configure-task`")
    if version is not None and int(task.version) != int(version):
        task = task_version(ledger, version)
    data = store.get(task.config_cid)
    doc = TaskDocument.from_bytes(data)
    verify_task(doc, task)
    return task, doc


def task_version(ledger: Ledger, version: int) -> TaskConfig:
    """The task configuration of ``version`` from the ``TaskConfigured`` events."""
    configured: TaskConfigured | None = None
    policy: PrivacyPolicySet | None = None
    for event in ledger.history():
        if isinstance(event, TaskConfigured) and int(event.version) == int(version):
            configured = event
        elif isinstance(event, PrivacyPolicySet) and int(event.version) == int(version):
            policy = event
    if configured is None:
        raise ParticipantError(f"task version {version} is not on the ledger")
    return TaskConfig(
        version=configured.version,
        model_spec_digest=configured.model_spec_digest,
        strategy_digest=configured.strategy_digest,
        data_schema_digest=configured.data_schema_digest,
        config_cid=configured.config_cid,
        max_commit_duration=configured.max_commit_duration,
        privacy_policy_digest=policy.policy_digest if policy is not None else ZERO_DIGEST,
        epsilon_budget=int(policy.epsilon_budget) if policy is not None else 0,
    )

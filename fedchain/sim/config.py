"""The one experiment configuration, and what both transports derive from it: the task
document, the dataset (optionally a seeded subset), the participants' partitions and who attacks.

:class:`ExperimentConfig` drives an in-memory run (:func:`fedchain.sim.memory.run_in_memory`)
and a whole federation on the ledger (:func:`fedchain.sim.federation.run_federation`) alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fedchain.errors import ConfigError
from fedchain.fl.attacks import ATTACK_KINDS, ATTACK_SYNTAX, AttackSpec
from fedchain.fl.datasets import Dataset, load_dataset, subset
from fedchain.fl.models import ModelSpec, default_model_spec
from fedchain.fl.partition import PartitionSpec, partition, partition_names
from fedchain.fl.privacy import PrivacyPolicy
from fedchain.fl.records import RobustConfig, StrategyConfig
from fedchain.fl.schema import save_client_data
from fedchain.fl.strategies import strategy_from_config
from fedchain.protocol.secure import SecAggConfig
from fedchain.protocol.task import SignedCommitsConfig, TaskDocument

DEFAULT_MAX_UPDATE_NORM = 100.0
"""The default task's bound on an update's L2 norm (its model tensors); a larger update is left
out (rule ``norm_clip`` with ``reject``). Honest updates of the built-in models stay far below
it: the largest norm measured over logreg, mlp and cnn on breast_cancer, german_credit, digits
and mnist - learning rates up to 0.5, up to 20 local epochs, a whole dataset on one participant,
FedAvg, FedNova and q-FedAvg (q up to 1, whose updates are scaled by 1/lr) - was 13.7, and at the
default settings (lr 0.05, one epoch) 0.2 to 5.5. The bound is a sanity bound against absurd
values (an update of 1e30s), not a robust rule against small, well-aimed ones."""

DEFAULT_ROBUST: tuple[RobustConfig, ...] = (
    RobustConfig("norm_clip", {"max_norm": DEFAULT_MAX_UPDATE_NORM, "reject": True}),
)
"""The robust rules of a task that names none: the update-norm bound. ``--robust none`` (or
any explicit ``--robust``) replaces it."""

DEFAULT_MAX_WEIGHT_SHARE = 0.3
"""The default task's cap on any one participant's share of the aggregation weight (strategy
parameter ``max_weight_share``; see :func:`fedchain.fl.aggregate.cap_weight_shares`). A sample count
is only a claim: with no cap, one participant claiming 10^12 samples decides the mean alone. At
0.3 the others always weigh more than twice as much: on breast_cancer with 4 or 10 participants,
one of them sign-flipping its update while claiming 10^12 samples leaves the model within 0.02
of the honest accuracy after 3 to 5 rounds (0.5 stalls the model near 0.6, no cap drives it to
0.07). With 3 participants or fewer every participant weighs the same."""

DEFAULT_MAX_COMMIT_DURATION = 86_400
"""The default task's longest commit phase a round may be opened with (one day, in seconds)."""


@dataclass(frozen=True)
class AttackerGroup:
    """``count`` participants that play ``attack`` (the last participants by index)."""

    attack: AttackSpec
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"invalid attack {self.attack.to_text()}: the count must be >= 1, got {self.count}")

    def to_text(self) -> str:
        """``KIND:COUNT`` or ``KIND:COUNT:STRENGTH``, as :func:`parse_attack` reads it."""
        tail = "" if self.attack.strength is None else ":" + self.attack.to_text().partition(":")[2]
        return f"{self.attack.kind}:{self.count}{tail}"


@dataclass(frozen=True)
class ExperimentConfig:
    """One federation to run: data, partition, strategy, participants, rounds and attacks."""

    dataset: str = "breast_cancer"
    partition: str = "iid"
    alpha: float = 0.5
    strategy: str = "fedavg"
    strategy_params: tuple[tuple[str, float], ...] = ()
    robust: tuple[RobustConfig, ...] = DEFAULT_ROBUST
    max_weight_share: float = DEFAULT_MAX_WEIGHT_SHARE
    arch: str | None = None
    model: ModelSpec | None = None  # an explicit model (overrides ``arch``)
    clients: int = 4
    rounds: int = 3
    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    seed: int = 0
    min_updates: int | None = None
    commit_duration: int = 300
    max_commit_duration: int = DEFAULT_MAX_COMMIT_DURATION
    reveal_duration: int = 0
    attacks: tuple[AttackerGroup, ...] = ()
    dishonest: str | None = None
    max_train_samples: int | None = None
    max_test_samples: int | None = None
    round_timeout_s: float = 600.0
    governance: bool = False  # a consortium governs the run through the Governor (sim/governance.py)
    verification_quorum: int = 50  # under governance: % of a round's included participants that must attest it
    rewards: str | None = None  # under governance: the rewards rule (samples, loo, shapley); deposits, budget, claims
    reward_budget: int = 1_000_000  # reward token base units per round
    privacy: PrivacyRequest | None = None  # differential privacy: what --dp asks for (the policy: privacy_policy)
    secagg: SecAggConfig | None = None  # secure aggregation: the aggregator sees only the sum of the updates
    dropout: float = 0.0  # in secure rounds: each participant drops out with this probability, at a random stage
    participants_per_process: int = 1  # participant agents per OS process (``participant host`` when more than 1)
    signed_commits: SignedCommitsConfig | None = None  # signed rounds: one root of signed commitments per round

    def __post_init__(self) -> None:
        if isinstance(self.participants_per_process, bool) or self.participants_per_process < 1:
            raise ConfigError(f"--participants-per-process must be >= 1, got {self.participants_per_process}")
        if self.clients < 1 or self.rounds < 1:
            raise ConfigError(f"need at least one client and one round (got {self.clients} clients, {self.rounds} rounds)")
        if self.governance and self.clients < 2:
            raise ConfigError(f"--governance needs at least 2 clients (founders and one member voted in), got {self.clients}")
        if self.rewards is not None and not self.governance:
            raise ConfigError("--rewards needs --governance: deposits, budgets and slashes are voted")
        if not 0 <= self.verification_quorum <= 100:
            raise ConfigError(f"--verification-quorum must be a percentage in [0, 100], got {self.verification_quorum}")
        attackers = sum(g.count for g in self.attacks)
        if attackers > self.clients:
            raise ConfigError(f"{attackers} attackers but only {self.clients} clients")
        if self.min_updates is not None and self.min_updates < 1:
            raise ConfigError(f"min_updates must be >= 1, got {self.min_updates}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be a probability in [0, 1), got {self.dropout}")
        if self.dropout and self.secagg is None:
            raise ConfigError("--dropout simulates participants dropping out of secure rounds: it needs --secagg")
        if self.secagg is not None and self.dishonest == "drop-update":
            raise ConfigError("--dishonest-aggregator drop-update needs individual updates; under --secagg use shift-model")
        for name in ("max_train_samples", "max_test_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")

    @property
    def effective_min_updates(self) -> int:
        """The minimum number of included updates (default: half the participants)."""
        return self.min_updates if self.min_updates is not None else max(1, self.clients // 2)

    def attack_of(self) -> dict[int, AttackSpec]:
        """Which participant index plays which attack: the last ones, group by group."""
        out: dict[int, AttackSpec] = {}
        i = 0
        for group in self.attacks:
            for _ in range(group.count):
                out[self.clients - 1 - i] = group.attack
                i += 1
        return out

    def to_json(self) -> dict[str, Any]:
        """The configuration as one JSON object."""
        data = asdict(replace(self, robust=()))  # the rules' parameters are read-only mappings asdict cannot copy
        data["attacks"] = [g.to_text() for g in self.attacks]
        data["strategy_params"] = dict(self.strategy_params)
        data["robust"] = [r.to_json() for r in self.robust]
        data["model"] = None if self.model is None else self.model.to_dict()
        return data


def parse_attack(text: str) -> AttackerGroup:
    """``KIND[:COUNT[:STRENGTH]]`` (e.g. ``sign_flip:1``, ``scaling:2:10``)."""
    kind, _, rest = text.partition(":")
    count_text, _, strength = rest.partition(":")
    try:
        count = int(count_text) if count_text else 1
    except ValueError as err:
        raise ConfigError(f"--attack {text!r}: COUNT must be an integer") from err
    if kind not in ATTACK_KINDS:
        raise ConfigError(f"--attack {text!r}: unknown kind {kind!r}; expected one of {', '.join(ATTACK_KINDS)}")
    try:
        spec = AttackSpec.parse(f"{kind}:{strength}" if strength else kind)
    except ConfigError as err:
        raise ConfigError(f"--attack {text!r}: {err}; attacks are {ATTACK_SYNTAX}") from err
    return AttackerGroup(spec, count)


def parse_strategy_params(items: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    """``--strategy-param KEY=VALUE`` values as (key, number) pairs (ints stay ints)."""
    params: list[tuple[str, float]] = []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--strategy-param {item!r}: expected KEY=VALUE")
        try:
            params.append((key, int(value) if value.lstrip("-").isdigit() else float(value)))
        except ValueError as err:
            raise ConfigError(f"--strategy-param {item!r}: VALUE must be a number") from err
    return tuple(params)


def parse_robust(text: str | None) -> tuple[RobustConfig, ...]:
    """``--robust``: ``NAME[:k=v,...]`` rules joined by ``+``, applied in that order (a bare number
    is trimmed_mean's beta, krum's f), e.g. ``median``, ``trimmed_mean:0.2``, ``multi_krum:f=1,m=2``,
    ``norm_clip:max_norm=5``, ``norm_clip:max_norm=100,reject=true+trimmed_mean:0.2``.

    None (no ``--robust``) is the default task's :data:`DEFAULT_ROBUST`; ``none`` is no rule at all.
    The rules' names and parameters are checked when the strategy is built."""
    if text is None:
        return DEFAULT_ROBUST
    if text.strip().lower() == "none":
        return ()
    return tuple(_parse_rule(text, part) for part in text.split("+"))


def _parse_rule(text: str, rule: str) -> RobustConfig:
    name, _, rest = rule.strip().partition(":")
    if not name:
        raise ConfigError(f"--robust {text!r}: expected a rule name (or 'none'), got {rule!r}")
    params: dict[str, bool | int | float] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            key, value = {"trimmed_mean": "beta", "norm_clip": "max_norm", "krum": "f", "multi_krum": "f"}.get(name, ""), part
            if not key:
                raise ConfigError(f"--robust {text!r}: expected key=value, got {part!r}")
        if value.lower() in ("true", "false"):
            params[key] = value.lower() == "true"
            continue
        try:
            params[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError as err:
            raise ConfigError(f"--robust {text!r}: {key} must be a number") from err
    return RobustConfig(name, params)


# --- task and data ---------------------------------------------------------------------------


def load_task_dataset(cfg: ExperimentConfig) -> Dataset:
    """The dataset, optionally cut to a seeded subset (MNIST on small machines)."""
    return subset(load_dataset(cfg.dataset, seed=cfg.seed), cfg.max_train_samples, cfg.max_test_samples, cfg.seed)


def model_spec(cfg: ExperimentConfig, ds: Dataset) -> ModelSpec:
    """The model: the configured one, else the dataset's default (in the configured architecture)."""
    if cfg.model is not None:
        return cfg.model
    spec = default_model_spec(ds)
    if cfg.arch is not None and cfg.arch != spec.arch:
        hidden = (64,) if cfg.arch in ("mlp", "cnn") else ()
        channels = (8, 16) if cfg.arch == "cnn" else ()
        spec = ModelSpec(arch=cfg.arch, input_shape=spec.input_shape, num_classes=spec.num_classes,
                         hidden=hidden, channels=channels)
    return spec


def strategy_config(cfg: ExperimentConfig) -> StrategyConfig:
    """The strategy with its local-training parameters, validated (one clear error now)."""
    params: dict[str, float] = {
        "local_epochs": cfg.local_epochs,
        "batch_size": cfg.batch_size,
        "lr": float(cfg.lr),
        "min_updates": cfg.effective_min_updates,
        "max_weight_share": float(cfg.max_weight_share),
    }
    params.update(dict(cfg.strategy_params))
    robust = cfg.robust
    if cfg.secagg is not None:
        params["uniform_weights"] = 1  # the masked sum is a sum of equally weighted deltas
        if robust == DEFAULT_ROBUST:
            robust = ()  # robust rules need individual updates, which secure aggregation hides
    if cfg.privacy is not None and cfg.privacy.mechanism == "client":
        params["uniform_weights"] = 1  # each clipped, noised update counts once (the noise is calibrated to that)
        if robust == DEFAULT_ROBUST:
            robust = ()  # clipping bounds every update; the norm bound would see the noise, not the update
    strategy = StrategyConfig(cfg.strategy, params, robust)
    strategy_from_config(strategy)
    _check_krum_fits(strategy, cfg.clients)
    return strategy


def build_task(cfg: ExperimentConfig, ds: Dataset) -> TaskDocument:
    """The task document of the experiment."""
    return TaskDocument.build(
        dataset=ds.name,
        schema=ds.schema,
        spec=model_spec(cfg, ds),
        strategy=strategy_config(cfg),
        seed=cfg.seed,
        min_updates=cfg.effective_min_updates,
        commit_duration=cfg.commit_duration,
        max_commit_duration=cfg.max_commit_duration,
        reveal_duration=cfg.reveal_duration,
        privacy=None if cfg.privacy is None else resolve_privacy(cfg, ds),
        secagg=cfg.secagg,
        signed_commits=cfg.signed_commits,
    )


DEFAULT_DELTA = 1e-5
DEFAULT_CLIP = 1.0


@dataclass(frozen=True)
class PrivacyRequest:
    """``--dp MECHANISM --epsilon-budget E`` and its tuning options, before calibration."""

    mechanism: str
    epsilon_budget: float
    delta: float = DEFAULT_DELTA
    clip: float = DEFAULT_CLIP
    noise_multiplier: float | None = None  # None: calibrated so that the run's rounds fit the budget
    sample_rate: float | None = None  # DP-SGD: None is batch_size / the smallest participant's records
    accountant: str = "rdp"
    min_clients: int | None = None  # client-level DP: None is the run's minimum included updates


def resolve_privacy(cfg: ExperimentConfig, ds: Dataset) -> PrivacyPolicy:
    """The task's privacy policy for ``cfg.privacy`` on dataset ``ds``: the noise multiplier calibrated so
    that ``cfg.rounds`` rounds fit the budget exactly, unless given."""
    req = cfg.privacy
    if req is None:
        raise ConfigError("no privacy was asked for")
    sample_rate = req.sample_rate
    if req.mechanism == "dpsgd" and sample_rate is None:
        smallest = max(1, len(ds.x_train) // max(1, cfg.clients))
        sample_rate = min(1.0, cfg.batch_size / smallest)
    min_clients = 1 if req.mechanism == "dpsgd" else (req.min_clients or cfg.effective_min_updates)
    return privacy_policy(
        req.mechanism, epsilon_budget=req.epsilon_budget, rounds=cfg.rounds, local_epochs=cfg.local_epochs,
        delta=req.delta, clip=req.clip, noise_multiplier=req.noise_multiplier, sample_rate=sample_rate,
        accountant=req.accountant, min_clients=min_clients,
    )


def privacy_policy(
    mechanism: str,
    *,
    epsilon_budget: float,
    rounds: int,
    local_epochs: int = 1,
    delta: float = DEFAULT_DELTA,
    clip: float = DEFAULT_CLIP,
    noise_multiplier: float | None = None,
    sample_rate: float | None = None,
    accountant: str = "rdp",
    min_clients: int = 1,
) -> PrivacyPolicy:
    """The privacy policy of ``--dp MECHANISM --epsilon-budget E``: without ``noise_multiplier``, the smallest
    one (the accountant's calibration) with which ``rounds`` rounds cost at most the budget. DP-SGD samples
    records at ``sample_rate`` (required); client-level DP takes every included client (rate 1: on a public
    ledger who took part is public, so there is no amplification by client sampling to claim)."""
    if mechanism == "dpsgd":
        if sample_rate is None:
            raise ConfigError("DP-SGD needs a record sampling rate (--dp-sample-rate)")
        q = float(sample_rate)
        min_clients = 1
    else:
        if sample_rate not in (None, 1.0):
            raise ConfigError(
                f"client-level DP takes every included client (sampling rate 1.0), got {sample_rate}: who commits is "
                "public on the ledger, so a smaller rate would claim an amplification that does not hold"
            )
        q = 1.0
    if noise_multiplier is None:
        from fedchain.fl.privacy import calibrate_noise_multiplier

        probe = PrivacyPolicy(mechanism, clip, 1.0, q, delta, accountant, epsilon_budget, min_clients)
        steps = rounds * probe.steps_per_round(local_epochs)
        noise_multiplier = calibrate_noise_multiplier(mechanism, accountant, q, delta, epsilon_budget, steps)
    return PrivacyPolicy(mechanism, clip, float(noise_multiplier), q, delta, accountant, epsilon_budget, min_clients)


def _check_krum_fits(strategy: StrategyConfig, clients: int) -> None:
    """Krum scores need ``n >= 2f + 3`` updates and Multi-Krum keeps at most ``n``: refuse a
    rule that could never work with this many clients instead of closing every round."""
    for rule in strategy.robust:
        if rule.name not in ("krum", "multi_krum"):
            continue
        f = int(rule.params.get("f", 0))
        if clients < 2 * f + 3:
            raise ConfigError(
                f"--robust {rule.name} with f={f} needs at least 2f+3 = {2 * f + 3} clients, got {clients}; "
                "use more clients or a smaller f"
            )
        m = rule.params.get("m")
        if rule.name == "multi_krum" and m is not None and int(m) > clients:
            raise ConfigError(f"--robust multi_krum keeps m={m} updates but there are only {clients} clients")


@dataclass(frozen=True, eq=False)
class ClientPartition:
    """One participant's share of the training set."""

    name: str
    x: np.ndarray
    y: np.ndarray

    @property
    def num_samples(self) -> int:
        """How many samples it holds."""
        return int(len(self.y))


def partition_clients(cfg: ExperimentConfig, ds: Dataset) -> list[ClientPartition]:
    """Partition the training set over the participants (seeded)."""
    spec = PartitionSpec(scheme=cfg.partition, num_clients=cfg.clients, alpha=cfg.alpha, seed=cfg.seed,
                         min_samples=min(10, max(1, len(ds.y_train) // (2 * cfg.clients))))
    parts = partition(ds.y_train, spec, x=ds.x_train, feature_names=ds.feature_names)
    names = partition_names(spec, ds.num_classes)
    return [ClientPartition(names[i], ds.x_train[idx], ds.y_train[idx]) for i, idx in enumerate(parts)]


@dataclass(frozen=True)
class ClientData:
    """A participant's data file."""

    name: str
    path: Path
    num_samples: int


def write_partitions(cfg: ExperimentConfig, ds: Dataset, out_dir: Path) -> list[ClientData]:
    """Partition the training set and write one data file per participant."""
    out: list[ClientData] = []
    for i, part in enumerate(partition_clients(cfg, ds)):
        path = save_client_data(Path(out_dir) / f"client_{i}.npz", part.x, part.y, ds.schema)
        out.append(ClientData(part.name, Path(path), part.num_samples))
    return out

"""A whole federation end to end: services, accounts, deployment, task, participants as
separate OS processes, an aggregator, R rounds, then the audit.

The orchestrator only sets things up and watches: participants run ``fedchain participant run``
in their own processes and speak to the aggregator solely through the chain and the blob store.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from fedchain.config import Settings
from fedchain.errors import ConfigError, ServiceError
from fedchain.protocol.task import TaskDocument
from fedchain.protocol.training import ATTACKS
from fedchain.ports import TxReport
from fedchain.types import Address, Wei, digest_hex

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from fedchain.audit.findings import AuditReport
    from fedchain.fl.datasets import Dataset
    from fedchain.fl.records import RobustConfig, StrategyConfig

log = logging.getLogger(__name__)

ATTACK_KINDS = ATTACKS
FUND_WEI = Wei(10 * 10**18)
KEYSTORE_ITERATIONS = 2**12  # simulation accounts only: fast to decrypt in every process


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate."""

    dataset: str = "breast_cancer"
    partition: str = "iid"
    alpha: float = 0.5
    strategy: str = "fedavg"
    strategy_params: tuple[tuple[str, float], ...] = ()
    robust: str | None = None
    arch: str | None = None
    clients: int = 4
    rounds: int = 3
    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    seed: int = 0
    min_updates: int | None = None
    commit_duration: int = 300
    attacks: tuple[tuple[str, int], ...] = ()
    dishonest: str | None = None
    max_train_samples: int | None = None
    max_test_samples: int | None = None
    round_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.clients < 1 or self.rounds < 1:
            raise ConfigError(f"need at least one client and one round (got {self.clients} clients, {self.rounds} rounds)")
        attackers = sum(n for _, n in self.attacks)
        if attackers > self.clients:
            raise ConfigError(f"{attackers} attackers but only {self.clients} clients")
        for kind, n in self.attacks:
            if kind not in ATTACK_KINDS or n < 1:
                raise ConfigError(f"invalid attack {kind}:{n}; kinds are {', '.join(ATTACK_KINDS)}, counts >= 1")

    @property
    def effective_min_updates(self) -> int:
        return self.min_updates if self.min_updates is not None else max(1, self.clients // 2)


def parse_attack(text: str) -> tuple[str, int]:
    """``KIND:COUNT`` (e.g. ``sign_flip:1``)."""
    kind, _, count = text.partition(":")
    try:
        n = int(count) if count else 1
    except ValueError as err:
        raise ConfigError(f"--attack {text!r}: COUNT must be an integer") from err
    if kind not in ATTACK_KINDS:
        raise ConfigError(f"--attack {text!r}: unknown kind {kind!r}; expected one of {', '.join(ATTACK_KINDS)}")
    return kind, n


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
    """``NAME[:k=v,...]`` (a bare number is trimmed_mean's beta), e.g. ``median``,
    ``trimmed_mean:0.2``, ``multi_krum:f=1,m=2``, ``norm_clip:max_norm=5``."""
    from fedchain.fl.records import RobustConfig

    if not text or text == "none":
        return ()
    name, _, rest = text.partition(":")
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
    return (RobustConfig(name, params),)


# --- task and data ---------------------------------------------------------------------------


def load_task_dataset(cfg: SimulationConfig) -> Dataset:
    """The dataset, optionally cut to a seeded subset (MNIST on small machines)."""
    from fedchain.fl.datasets import load_dataset

    ds = load_dataset(cfg.dataset, seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    changes: dict[str, np.ndarray] = {}
    if cfg.max_train_samples is not None and cfg.max_train_samples < len(ds.y_train):
        idx = np.sort(rng.permutation(len(ds.y_train))[: cfg.max_train_samples])
        changes.update(x_train=ds.x_train[idx], y_train=ds.y_train[idx])
    if cfg.max_test_samples is not None and cfg.max_test_samples < len(ds.y_test):
        idx = np.sort(rng.permutation(len(ds.y_test))[: cfg.max_test_samples])
        changes.update(x_test=ds.x_test[idx], y_test=ds.y_test[idx])
    return replace(ds, **changes) if changes else ds  # type: ignore[arg-type]  # only array fields change


def build_task(cfg: SimulationConfig, ds: Dataset) -> TaskDocument:
    from fedchain.fl.models import ModelSpec, default_model_spec
    from fedchain.fl.records import StrategyConfig

    spec = default_model_spec(ds)
    if cfg.arch is not None and cfg.arch != spec.arch:
        hidden = (64,) if cfg.arch in ("mlp", "cnn") else ()
        channels = (8, 16) if cfg.arch == "cnn" else ()
        spec = ModelSpec(arch=cfg.arch, input_shape=spec.input_shape, num_classes=spec.num_classes,
                         hidden=hidden, channels=channels)
    params: dict[str, float] = {
        "local_epochs": cfg.local_epochs,
        "batch_size": cfg.batch_size,
        "lr": float(cfg.lr),
        "min_updates": cfg.effective_min_updates,
    }
    params.update(dict(cfg.strategy_params))
    strategy = StrategyConfig(cfg.strategy, params, parse_robust(cfg.robust))
    from fedchain.fl.strategies import strategy_from_config

    strategy_from_config(strategy)  # validate names and parameters now, with one clear error
    _check_krum_fits(strategy, cfg.clients)
    return TaskDocument.build(
        dataset=ds.name,
        schema=ds.schema,
        spec=spec,
        strategy=strategy,
        seed=cfg.seed,
        min_updates=cfg.effective_min_updates,
        commit_duration=cfg.commit_duration,
    )


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


@dataclass(frozen=True)
class ClientData:
    name: str
    path: Path
    num_samples: int


def write_partitions(cfg: SimulationConfig, ds: Dataset, out_dir: Path) -> list[ClientData]:
    """Partition the training set and write one data file per participant."""
    from fedchain.fl.partition import PartitionSpec, partition, partition_names
    from fedchain.fl.schema import save_client_data

    spec = PartitionSpec(scheme=cfg.partition, num_clients=cfg.clients, alpha=cfg.alpha, seed=cfg.seed,
                         min_samples=min(10, max(1, len(ds.y_train) // (2 * cfg.clients))))
    parts = partition(ds.y_train, spec, x=ds.x_train, feature_names=ds.feature_names)
    names = partition_names(spec, ds.num_classes)
    out: list[ClientData] = []
    for i, idx in enumerate(parts):
        path = save_client_data(Path(out_dir) / f"client_{i}.npz", ds.x_train[idx], ds.y_train[idx], ds.schema)
        out.append(ClientData(names[i], Path(path), int(len(idx))))
    return out


def evaluate_global(doc: TaskDocument, model_blob: bytes, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from fedchain.protocol.blobs import decode_global
    from fedchain.fl.models import build_model, evaluate, set_weights

    model = build_model(doc.spec(), doc.seed)
    set_weights(model, dict(decode_global(model_blob).weights))
    return {k: float(v) for k, v in evaluate(model, x, y).items()}


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class SimulationResult:
    summary: dict[str, Any]
    audit: AuditReport
    out_dir: Path


@dataclass
class _Services:
    rpc_url: str
    ipfs_api: str | None
    started_devnet: bool = False
    started_ipfs: bool = False


def _start_services(settings: Settings) -> _Services:
    if settings.rpc_url:
        rpc, started_devnet = settings.rpc_url, False
    else:
        from fedchain.chain.devnet import start_devnet

        info, reused = start_devnet(settings.state_dir)
        rpc, started_devnet = info.url, not reused
    api: str | None = None
    started_ipfs = False
    if settings.store == "ipfs":
        if settings.ipfs_api:
            api = settings.ipfs_api
        else:
            from fedchain.storage.node import start_node

            try:
                node, started_ipfs = start_node(settings.state_dir)
            except BaseException:
                _stop_services(settings, _Services(rpc, None, started_devnet, False))
                raise
            api = node.api_url
    return _Services(rpc, api, started_devnet, started_ipfs)


def _stop_services(settings: Settings, services: _Services) -> None:
    if services.started_ipfs:
        from fedchain.storage.node import stop_node

        stop_node(settings.state_dir)
    if services.started_devnet:
        from fedchain.chain.devnet import stop_devnet

        stop_devnet(settings.state_dir)


class _Progress:
    """rich progress bars on stderr (or nothing)."""

    def __init__(self, enabled: bool) -> None:
        self._progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                      TimeElapsedColumn(), console=Console(stderr=True), transient=False)

    def __enter__(self) -> "_Progress":
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)

    def task(self, description: str, total: int) -> Callable[..., None]:
        if self._progress is None:
            return lambda advance=1, description=None: None
        tid = self._progress.add_task(description, total=total)
        progress = self._progress

        def update(advance: int = 1, description: str | None = None) -> None:
            if description is not None:
                progress.update(tid, advance=advance, description=description)
            else:
                progress.update(tid, advance=advance)

        return update


def participant_command(
    *, keystore: Path, data: Path, rpc_url: str, address: str, settings: Settings, ipfs_api: str | None,
    until_round: int, work_dir: Path, attack: str | None = None,
) -> list[str]:
    """The command line of one participant process."""
    cmd = [
        sys.executable, "-m", "fedchain", "participant", "run",
        "--keystore", str(keystore), "--data", str(data), "--rpc-url", rpc_url, "--address", address,
        "--store", settings.store, "--state-dir", str(settings.state_dir), "--work-dir", str(work_dir),
        "--until-round", str(until_round), "--json",
    ]
    if ipfs_api:
        cmd += ["--ipfs-api", ipfs_api]
    if attack:
        cmd += ["--attack", attack]
    return cmd


def run_simulation(
    cfg: SimulationConfig,
    settings: Settings,
    out_dir: Path,
    *,
    progress: bool = True,
    keep_services: bool = False,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> SimulationResult:
    """Run the whole federation, then audit it; write report.json, audit.html and plots to ``out_dir``."""
    from fedchain.audit.html import write_html
    from fedchain.audit.replay import Auditor
    from fedchain.chain.accounts import create_keystore, decrypt_keystore
    from fedchain.chain.connection import Connection
    from fedchain.chain.federation import deploy
    from fedchain.chain.ledger import ChainLedger
    from fedchain.protocol.aggregator import AggregatorAgent
    from fedchain.sim.wiring import gas_lookup, open_blob_store

    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = out_dir / "run"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    ds = load_task_dataset(cfg)
    doc = build_task(cfg, ds)
    clients = write_partitions(cfg, ds, run_dir / "data")

    # absolute paths: participant processes and the service managers may run elsewhere
    settings = settings.with_overrides(state_dir=Path(settings.state_dir).resolve())
    t_services = time.perf_counter()
    services = _start_services(settings)
    timing: dict[str, float] = {"prepare_s": t_services - t_start, "services_s": time.perf_counter() - t_services}
    t_setup = time.perf_counter()
    settings = settings.with_overrides(rpc_url=services.rpc_url, ipfs_api=services.ipfs_api)
    procs: list[subprocess.Popen[str]] = []
    cleanup = ExitStack()  # participant log handles and the blob store, closed whatever happens
    try:
        with _Progress(progress) as bars:
            setup = bars.task("set-up", 4 + cfg.clients)
            conn = Connection(services.rpc_url, timeout_s=settings.http_timeout_s, tx_timeout_s=settings.tx_timeout_s)
            password = secrets.token_hex(16)
            accounts = {}
            for name in ["admin", "aggregator"] + [f"participant-{i}" for i in range(cfg.clients)]:
                entry = create_keystore(run_dir, password, name=name, iterations=KEYSTORE_ITERATIONS)
                accounts[name] = (entry.path, decrypt_keystore(entry.path, password))
                conn.fund_from_dev_account(entry.address, FUND_WEI)
            setup()
            admin_acct, agg_acct = accounts["admin"][1], accounts["aggregator"][1]
            contract, deployment, deploy_report = deploy(
                conn, admin_acct, admin_acct.address, agg_acct.address, state_dir=settings.state_dir
            )
            gas: dict[str, list[int]] = {"deploy": [deploy_report.gas_used]}

            def record(report: TxReport) -> None:
                gas.setdefault(report.function, []).append(int(report.gas_used))

            admin = ChainLedger(contract.with_account(admin_acct))
            store = open_blob_store(settings)
            cleanup.callback(store.close)
            setup()
            from fedchain.protocol.task import publish_task

            task_bytes = doc.to_bytes()
            task_cid, task_report = publish_task(admin, store, doc)
            record(task_report)
            setup()
            attack_of: dict[int, str] = {}
            i = 0
            for kind, count in cfg.attacks:
                for _ in range(count):
                    attack_of[cfg.clients - 1 - i] = kind
                    i += 1
            for idx, client in enumerate(clients):
                acct = accounts[f"participant-{idx}"][1]
                ledger = ChainLedger(contract.with_account(acct))
                record(ledger.register(client.name, ds.domain or "research", _public_key(acct)))
                record(admin.admit(Address(acct.address)))
                setup()
            env = dict(os.environ, FEDCHAIN_PASSWORD=password)
            env.pop("FEDCHAIN_PRIVATE_KEY", None)
            logs_dir = run_dir / "logs"
            logs_dir.mkdir()
            for idx, client in enumerate(clients):
                path, acct = accounts[f"participant-{idx}"]
                cmd = participant_command(
                    keystore=path, data=client.path, rpc_url=services.rpc_url, address=deployment.address,
                    settings=settings, ipfs_api=services.ipfs_api, until_round=cfg.rounds,
                    work_dir=run_dir / "participants" / acct.address, attack=attack_of.get(idx),
                )
                stderr = cleanup.enter_context((logs_dir / f"participant-{idx}.log").open("w"))
                procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env))
            setup()

            timing["setup_s"] = time.perf_counter() - t_setup
            t_ready = time.perf_counter()
            _wait_ready(procs, [run_dir / "participants" / accounts[f"participant-{i}"][1].address for i in range(cfg.clients)],
                        logs_dir, timeout_s=cfg.round_timeout_s)
            timing["participants_start_s"] = time.perf_counter() - t_ready
            t_rounds = time.perf_counter()
            aggregator = AggregatorAgent(ChainLedger(contract.with_account(agg_acct)), store, dishonest=cfg.dishonest)
            round_bar = bars.task("rounds", cfg.rounds)
            per_round: list[dict[str, Any]] = []
            bytes_down = bytes_up = bytes_part_down = 0
            for r in range(1, cfg.rounds + 1):
                t_round = time.perf_counter()
                rid = aggregator.open_round()
                t_open = time.perf_counter()
                if not aggregator.wait_commit_phase(rid, cfg.round_timeout_s):
                    raise ServiceError(f"round {rid}: commit phase did not end within {cfg.round_timeout_s:.0f} s")
                t_commits = time.perf_counter()
                outcome = aggregator.finalize(rid)
                t_final = time.perf_counter()
                bytes_down += outcome.bytes_downloaded
                bytes_up += outcome.bytes_uploaded
                row: dict[str, Any] = {
                    "round": int(rid),
                    "finalized": outcome.finalized,
                    "included": len(outcome.included),
                    "rejected": [{"participant": p, "rule": rule, "reason": why} for p, rule, why in outcome.rejected],
                    "commits": outcome.commit_count,
                    "model_digest": digest_hex(outcome.model_digest) if outcome.model_digest else None,
                    "model_cid": outcome.model_cid,
                    "close_reason": outcome.close_reason,
                    "wall_s": round(time.perf_counter() - t_round, 3),
                    "phases_s": {"open": round(t_open - t_round, 3), "commit_phase": round(t_commits - t_open, 3),
                                 "finalize": round(t_final - t_commits, 3)},
                    "bytes_downloaded_by_aggregator": outcome.bytes_downloaded,
                    "bytes_uploaded_by_aggregator": outcome.bytes_uploaded,
                    "bytes_uploaded_by_participants": 0,
                }
                if outcome.finalized and outcome.model_cid:
                    row.update(evaluate_global(doc, store.get(outcome.model_cid), ds.x_test, ds.y_test))
                per_round.append(row)
                if on_round is not None:
                    on_round(row)
                acc = row.get("accuracy")
                round_bar(description=f"rounds (last accuracy {acc:.3f})" if acc is not None else "rounds")
            timing["rounds_s"] = time.perf_counter() - t_rounds
            for tx in aggregator.reports:
                record(tx)
            participant_out = _collect(procs, timeout_s=120.0)
            _require_clean_exits(procs, logs_dir)
            timing["participants_cpu_s"] = sum(float(o.get("cpu_s", 0.0)) for o in participant_out)
            timing["participants_train_s"] = sum(float(r.get("train_seconds", 0.0)) for o in participant_out
                                                 for r in o.get("results", []))
            for out in participant_out:
                for res in out.get("results", []):
                    if res.get("gas_used"):
                        gas.setdefault("commitUpdate", []).append(int(res["gas_used"]))
                    bytes_up += int(res.get("bytes_uploaded", 0))
                    bytes_part_down += int(res.get("bytes_downloaded", 0))
                    for row in per_round:
                        if row["round"] == res.get("round"):
                            row["bytes_uploaded_by_participants"] += int(res.get("bytes_uploaded", 0))
            run_wall = time.perf_counter() - t_start
            t_audit = time.perf_counter()

            audit_bar = bars.task("audit", 1)
            reader = ChainLedger(contract.with_account(agg_acct))
            auditor = Auditor(reader, store, gas_of=gas_lookup(reader), contract=deployment.address, chain_id=conn.chain_id)
            report = auditor.audit()
            timing["audit_s"] = time.perf_counter() - t_audit
            audit_bar()
        gas_by_round = {r.round: dict(r.gas) for r in report.rounds}
        for row in per_round:
            row["gas"] = gas_by_round.get(row["round"], {})
        write_html(report, out_dir / "audit.html")
        (out_dir / "audit.json").write_text(json.dumps(report.to_json(), indent=2, sort_keys=True), encoding="utf-8")
        summary = {
            "config": _config_json(cfg),
            "contract": deployment.address,
            "chain_id": conn.chain_id,
            "rpc_url": services.rpc_url,
            "store": store.describe(),
            "task_cid": task_cid,
            "rounds": per_round,
            "final_accuracy": next((r.get("accuracy") for r in reversed(per_round) if "accuracy" in r), None),
            "gas": {k: {"count": len(v), "total": sum(v), "mean": round(sum(v) / len(v)), "max": max(v)} for k, v in sorted(gas.items())},
            "bytes": {"uploaded": bytes_up, "downloaded_by_aggregator": bytes_down, "task_document": len(task_bytes),
                      "downloaded_by_participants": bytes_part_down, "total": bytes_up + bytes_down + bytes_part_down},
            "participants": [
                {"name": c.name, "address": accounts[f"participant-{i}"][1].address, "samples": c.num_samples,
                 "attack": attack_of.get(i), "exit_code": procs[i].returncode}
                for i, c in enumerate(clients)
            ],
            "wall_time_s": round(run_wall, 3),
            "timing": {k: round(v, 3) for k, v in timing.items()},
            "audit": {"ok": report.ok, "findings": [f.to_json() for f in report.findings],
                      "rounds_checked": list(report.rounds_checked), "wall_time_s": round(report.wall_time_s, 3)},
            "out_dir": str(out_dir),
        }
        _plot_rounds(per_round, out_dir / "accuracy.png")
        (out_dir / "report.json").write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
        return SimulationResult(summary, report, out_dir)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        cleanup.close()
        if not keep_services:
            _stop_services(settings, services)


def _wait_ready(procs: Sequence[subprocess.Popen[str]], work_dirs: Sequence[Path], logs_dir: Path, timeout_s: float) -> None:
    """Wait until every participant process reports it is admitted, loaded and watching."""
    from fedchain.cli.participant import READY_FILE

    deadline = time.monotonic() + timeout_s
    pending = set(range(len(procs)))
    while pending:
        for i in list(pending):
            if (work_dirs[i] / READY_FILE).exists():
                pending.discard(i)
            elif procs[i].poll() is not None:
                raise ServiceError(f"participant process {i} exited with code {procs[i].returncode}: {_log_tail(logs_dir, i)}")
        if pending and time.monotonic() > deadline:
            raise ServiceError(f"participant process(es) {sorted(pending)} not ready within {timeout_s:.0f} s")
        if pending:
            time.sleep(0.1)


def _log_tail(logs_dir: Path, index: int) -> str:
    path = logs_dir / f"participant-{index}.log"
    lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines() if path.is_file() else []
    return " ".join(lines[-1:])


def _require_clean_exits(procs: Sequence[subprocess.Popen[str]], logs_dir: Path) -> None:
    """A participant process that failed makes the run fail: its rounds are not what was asked for."""
    failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode != 0]
    if failed:
        raise ServiceError("; ".join(f"participant process {i} exited with code {code}: {_log_tail(logs_dir, i)}"
                                     for i, code in failed))


def _public_key(account: LocalAccount) -> bytes:
    from eth_keys import keys

    return bytes(keys.PrivateKey(bytes(account.key)).public_key.to_bytes())


def _collect(procs: Sequence[subprocess.Popen[str]], timeout_s: float) -> list[dict[str, Any]]:
    outs: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    for i, p in enumerate(procs):
        try:
            stdout, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.terminate()
            stdout, _ = p.communicate()
        if p.returncode != 0:
            log.warning("participant process %d exited with code %s", i, p.returncode)
        try:
            outs.append(json.loads(stdout) if stdout.strip() else {})
        except json.JSONDecodeError:
            outs.append({})
    return outs


def _config_json(cfg: SimulationConfig) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(cfg)
    data["attacks"] = [f"{k}:{n}" for k, n in cfg.attacks]
    data["strategy_params"] = dict(cfg.strategy_params)
    return data


def _plot_rounds(per_round: list[dict[str, Any]], path: Path) -> None:
    rows = [r for r in per_round if "accuracy" in r]
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([r["round"] for r in rows], [r["accuracy"] for r in rows], marker="o", label="accuracy")
    ax.plot([r["round"] for r in rows], [r["loss"] for r in rows], marker="s", label="loss")
    ax.set_xticks([r["round"] for r in rows])
    ax.set_xlabel("round"), ax.set_title("Global model on the test set"), ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = [
    "SimulationConfig",
    "SimulationResult",
    "build_task",
    "load_task_dataset",
    "parse_attack",
    "parse_robust",
    "participant_command",
    "run_simulation",
    "write_partitions",
]
